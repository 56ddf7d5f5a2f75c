//! The `dhcpair` server under test: config written from the server's own schema types
//! ([`dhcpair_config::raw`]), started in a namespace, ready when `GET /readyz` answers 200.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use dhcpair_config::raw::{RawConfig, RawPool, RawRange};
use serde::Deserialize;

use crate::netns::Netns;
use crate::process::{run, Process};
use crate::{dhcpair_bin, wait_until, Net24, TestEnv};

/// The server's log filter unless `DHCPAIR_LOG` is set: a line per packet from dhcpair's crates.
pub const SERVER_LOG: &str = "info,dhcpair=debug,dhcpair_engine=debug,dhcpair_store=debug";

/// Where the server's HTTP listens inside its namespace unless the config says otherwise.
pub const DEFAULT_HTTP: &str = "127.0.0.1:9167";

/// A server config serving `interfaces`, with every other field at its default. Built by
/// parsing YAML so that fields added to the schema later default as they do for users.
pub fn server_config(interfaces: &[&str], server_id: Ipv4Addr) -> RawConfig {
    let ifaces = interfaces
        .iter()
        .map(|i| format!("\"{i}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let yaml = format!("server: {{interfaces: [{ifaces}], serverId: {server_id}}}\npools: []\n");
    match serde_yaml::from_str(&yaml) {
        Ok(c) => c,
        Err(e) => panic!("harness server_config does not parse: {e}\n{yaml}"),
    }
}

/// A pool on `net` with one range `net.host(first)..=net.host(last)` and every other field at
/// its default; set options, lease times, permits and reservations on the result.
pub fn pool(name: &str, net: Net24, first: u8, last: u8) -> RawPool {
    let yaml = format!("name: {name}\nsubnet: {}\n", net.cidr());
    let mut p: RawPool = match serde_yaml::from_str(&yaml) {
        Ok(p) => p,
        Err(e) => panic!("harness pool does not parse: {e}\n{yaml}"),
    };
    p.ranges = vec![RawRange {
        start: net.host(first),
        end: net.host(last),
    }];
    p
}

/// One row of `dhcpair leases --json`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Lease {
    pub ip: Ipv4Addr,
    pub state: String,
    #[serde(default)]
    pub client: Option<String>,
    #[serde(default)]
    pub hardware_address: Option<String>,
    #[serde(default)]
    pub hostname: Option<String>,
    #[serde(default)]
    pub pool: Option<String>,
    #[serde(default)]
    pub starts: Option<i64>,
    #[serde(default)]
    pub ends: Option<i64>,
}

/// `GET /v1/status`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Status {
    pub pools: Vec<PoolStatus>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PoolStatus {
    pub name: String,
    #[serde(default)]
    pub subnet: String,
    #[serde(default)]
    pub total: u64,
    #[serde(default)]
    pub free: u64,
    #[serde(default)]
    pub active: u64,
    #[serde(default)]
    pub expired: u64,
    #[serde(default)]
    pub released: u64,
    #[serde(default)]
    pub abandoned: u64,
    #[serde(default)]
    pub reserved: u64,
}

impl Status {
    pub fn pool(&self, name: &str) -> Option<&PoolStatus> {
        self.pools.iter().find(|p| p.name == name)
    }
}

/// A running (or stopped) `dhcpair serve`.
#[derive(Debug)]
pub struct Server {
    name: String,
    ns: String,
    config_path: PathBuf,
    data_dir: PathBuf,
    log: PathBuf,
    http: SocketAddr,
    process: Option<Process>,
    starts: u32,
    /// Extra `dhcpair serve` arguments.
    args: Vec<String>,
}

impl Server {
    /// Write `config` (with `dataDir` and, unless set, `http` filled in) under the test
    /// directory, start `dhcpair serve` in `ns`, and wait for `/readyz`.
    pub fn start(env: &TestEnv, ns: &Netns, name: &str, config: RawConfig) -> Result<Server> {
        Self::start_with_args(env, ns, name, config, &[])
    }

    /// `start` with extra `dhcpair serve` arguments.
    pub fn start_with_args(
        env: &TestEnv,
        ns: &Netns,
        name: &str,
        mut config: RawConfig,
        args: &[&str],
    ) -> Result<Server> {
        let bin = dhcpair_bin();
        if !bin.is_file() {
            bail!(
                "dhcpair binary not found at {} (run `cargo build --workspace --bins` or set DHCPAIR_BIN)",
                bin.display()
            );
        }
        let data_dir = env.path(&format!("{name}-data"));
        std::fs::create_dir_all(&data_dir)?;
        config.server.data_dir = data_dir.display().to_string();
        let http = match config.server.http {
            Some(h) => h,
            None => {
                let h: SocketAddr = DEFAULT_HTTP.parse()?;
                config.server.http = Some(h);
                h
            }
        };
        let yaml = serde_yaml::to_string(&config)?;
        let config_path = env.path(&format!("{name}.yaml"));
        std::fs::write(&config_path, &yaml)?;
        // Refuse a config the server's own parser refuses, with its message, before starting.
        dhcpair_config::Config::from_yaml(&config_path.display().to_string(), &yaml)
            .map_err(|e| anyhow::anyhow!("test config is invalid: {e}"))?;
        let mut server = Server {
            name: name.to_string(),
            ns: ns.name().to_string(),
            config_path,
            data_dir,
            log: env.path(&format!("{name}.log")),
            http,
            process: None,
            starts: 0,
            args: args.iter().map(|a| a.to_string()).collect(),
        };
        server.spawn()?;
        Ok(server)
    }

    fn spawn(&mut self) -> Result<()> {
        self.starts += 1;
        append(
            &self.log,
            &format!("===== e2e: start #{} of {} =====\n", self.starts, self.name),
        );
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.ns])
            .arg(dhcpair_bin())
            .arg("serve")
            .arg("--config")
            .arg(&self.config_path)
            .args(&self.args)
            .env(
                "DHCPAIR_LOG",
                std::env::var("DHCPAIR_LOG").unwrap_or_else(|_| SERVER_LOG.into()),
            )
            .env("RUST_BACKTRACE", "1");
        self.process = Some(Process::spawn_command(&self.name, &self.log, cmd)?);
        self.wait_ready(Duration::from_secs(15))
    }

    /// Poll `GET /readyz` until 200; fail at once (with the log) if the process exits.
    pub fn wait_ready(&mut self, timeout: Duration) -> Result<()> {
        let url = self.url("/readyz");
        let ns = self.ns.clone();
        let name = self.name.clone();
        let log = self.log.clone();
        let Some(process) = self.process.as_mut() else {
            bail!("{name} is not running");
        };
        let mut died = None;
        let r = wait_until(format!("{name} GET /readyz == 200"), timeout, || {
            if let Some(status) = process.try_wait() {
                died = Some(status);
                return Some(());
            }
            (http_code(&ns, &url).as_deref() == Some("200")).then_some(())
        });
        if let Some(status) = died {
            bail!(
                "{name} exited ({status}) before it was ready; log:\n{}",
                tail(&log, 40)
            );
        }
        r.with_context(|| format!("{name} log:\n{}", tail(&log, 40)))
    }

    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(Process::pid)
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// The server's log (all starts).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL: no chance to flush anything.
    pub fn kill9(&mut self) {
        if let Some(mut p) = self.process.take() {
            p.kill9();
            append(&self.log, "===== e2e: killed with SIGKILL =====\n");
        }
    }

    /// SIGTERM and wait for a graceful exit; an error if it needed SIGKILL or exited non-zero.
    pub fn stop(&mut self) -> Result<()> {
        let Some(mut p) = self.process.take() else {
            return Ok(());
        };
        let (status, graceful) = p.terminate(Duration::from_secs(10));
        append(
            &self.log,
            &format!("===== e2e: stopped: {status:?} =====\n"),
        );
        if !graceful {
            bail!("{} ignored SIGTERM for 10 s and was killed", self.name);
        }
        match status {
            Some(s) if s.success() => Ok(()),
            other => bail!("{} exited with {other:?} after SIGTERM", self.name),
        }
    }

    /// Start again with the same config and data directory (stopping first if running).
    pub fn restart(&mut self) -> Result<()> {
        self.stop()?;
        self.spawn()
    }

    /// Exit status if the server has exited by itself.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.process.as_mut().and_then(Process::try_wait)
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.http)
    }

    /// `GET path` on the server's HTTP endpoint (from inside its namespace).
    pub fn http_get(&self, path: &str) -> Result<String> {
        run(Command::new("ip").args([
            "netns",
            "exec",
            &self.ns,
            "curl",
            "-sS",
            "-f",
            "-m",
            "5",
            &self.url(path),
        ]))
    }

    pub fn status(&self) -> Result<Status> {
        let body = self.http_get("/v1/status")?;
        serde_json::from_str(&body).with_context(|| format!("parse /v1/status: {body}"))
    }

    pub fn metrics(&self) -> Result<String> {
        self.http_get("/metrics")
    }

    /// `dhcpair leases --data-dir DIR --json` (works whether or not the server runs).
    pub fn leases(&self) -> Result<Vec<Lease>> {
        let out = run(Command::new(dhcpair_bin())
            .args(["leases", "--json", "--data-dir"])
            .arg(&self.data_dir))?;
        serde_json::from_str(&out).with_context(|| format!("parse `dhcpair leases --json`: {out}"))
    }

    /// The lease row for `ip`, if any.
    pub fn lease(&self, ip: Ipv4Addr) -> Result<Option<Lease>> {
        Ok(self.leases()?.into_iter().find(|l| l.ip == ip))
    }
}

/// `curl -w %{http_code}` inside `ns`; `None` if curl could not connect at all.
fn http_code(ns: &str, url: &str) -> Option<String> {
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            ns,
            "curl",
            "-s",
            "-o",
            "/dev/null",
            "-m",
            "2",
            "-w",
            "%{http_code}",
            url,
        ])
        .output()
        .ok()?;
    let code = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (code != "000" && !code.is_empty()).then_some(code)
}

fn append(path: &Path, text: &str) {
    use std::io::Write;
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        let _ = f.write_all(text.as_bytes());
    }
}

/// The last `n` lines of a file.
pub fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
