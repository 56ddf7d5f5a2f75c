//! End-to-end harness for dhcpair: network namespaces joined by veth pairs (and an optional
//! bridge), the real `dhcpair` binary, real DHCP clients (ISC dhclient, busybox udhcpc,
//! dhcpcd), a real relay (ISC dhcrelay), packet capture (tshark) and a relay-mode load client
//! of our own (`dhcp-load`).
//!
//! Everything a test starts lives in namespaces the test created and is cleaned up on drop, by
//! PID: [`Netns`] kills every process inside it and deletes itself; [`Process`] kills its child.
//! Namespaces left behind by a killed run (`dpe2e-<pid>-<n>` whose pid is gone) are removed when
//! the next run creates its first namespace. No traffic ever touches the host's interfaces, and
//! no client hook touches `/etc/resolv.conf`.
//!
//! This crate must never depend on the server's internals beyond the config schema
//! (`dhcpair-config`): the scenarios see the server only as a binary, a config file, a data
//! directory and an HTTP endpoint, as an operator would.
//!
//! Start reading at [`TestEnv::setup`] and one scenario in `tests/`; readiness is always polled
//! with [`wait_until`], never slept for.

pub mod clients;
pub mod failover;
pub mod layouts;
pub mod load;
pub mod netns;
pub mod operator;
pub mod process;
pub mod relay;
pub mod rfc3074;
pub mod server;

use std::fmt::Display;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

pub use clients::{Dhclient, Dhcpcd, Event, Events, Udhcpc};
pub use load::{LoadClient, LoadOptions};
pub use netns::{Netns, Switch, Veth};
pub use process::Process;
pub use relay::{Dhcrelay, Tshark};
pub use server::{pool, server_config, Lease, PoolStatus, Server, Status};

/// One test's working directory (configs, data dirs, logs, hook event files).
///
/// Declare it first in a test so that it drops last. On success the directory is removed (kept
/// when `DHCPAIR_E2E_KEEP` is set); when the test fails it is kept and the tail of every log in
/// it is printed.
#[derive(Debug)]
pub struct TestEnv {
    name: String,
    dir: PathBuf,
    dumped: std::cell::Cell<bool>,
}

impl TestEnv {
    /// The test's environment. Panics (the test FAILS, it is never skipped) when it cannot run
    /// here: not root, or no `ip` tool. A scenario that did not run must not look like one
    /// that passed.
    pub fn setup(test_name: &str) -> TestEnv {
        if !is_root() {
            panic!(
                "{test_name} cannot run: it needs root (network namespaces, veth, port 67); \
                 run the e2e tests as root (sudo ./scripts/test.sh)"
            );
        }
        if which("ip").is_none() {
            panic!(
                "{test_name} cannot run: it needs iproute2's `ip` on PATH or in /usr/sbin, /sbin, \
                 /usr/bin, /bin (scripts/install-deps.sh installs it)"
            );
        }
        let dir = std::env::temp_dir()
            .join("dhcpair-e2e")
            .join(format!("{test_name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        if let Err(e) = std::fs::create_dir_all(&dir) {
            panic!("cannot create {}: {e}", dir.display());
        }
        TestEnv {
            name: test_name.to_string(),
            dir,
            dumped: std::cell::Cell::new(false),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A path inside the test directory.
    pub fn path(&self, file: &str) -> PathBuf {
        self.dir.join(file)
    }

    /// Fail (not skip) when a tool a scenario needs is missing: a missing client must not
    /// look like a passing test.
    pub fn require(&self, tool: &str) -> Result<PathBuf> {
        which(tool).with_context(|| format!("{}: needs `{tool}` on PATH", self.name))
    }

    fn dump_logs(&self) {
        if self.dumped.replace(true) {
            return;
        }
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.extension()
                    .is_some_and(|x| x == "log" || x == "events" || x == "acks")
            })
            .collect();
        files.sort();
        for f in files {
            let text = std::fs::read_to_string(&f).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let tail = &lines[lines.len().saturating_sub(60)..];
            eprintln!("----- {} (last {} lines) -----", f.display(), tail.len());
            for l in tail {
                eprintln!("{l}");
            }
        }
        eprintln!("----- logs kept in {} -----", self.dir.display());
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        if std::thread::panicking() || self.dumped.get() {
            self.dump_logs();
        } else if std::env::var_os("DHCPAIR_E2E_KEEP").is_some() {
            println!("logs kept in {} (DHCPAIR_E2E_KEEP)", self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Run one scenario: fail at once (saying why) when it cannot run here, see [`TestEnv::setup`];
/// otherwise run `body`, and if it fails, print the error and the tail of every log and panic.
/// Everything `body` creates (namespaces, processes) is dropped, so killed and flushed, before
/// the logs are printed.
pub fn scenario(name: &str, body: impl FnOnce(&TestEnv) -> Result<()>) {
    let env = TestEnv::setup(name);
    let started = Instant::now();
    let result = body(&env);
    match result {
        Ok(()) => println!("{name}: passed in {:.1?}", started.elapsed()),
        Err(e) => {
            env.dump_logs();
            panic!("{name} failed after {:.1?}: {e:#}", started.elapsed());
        }
    }
}

/// A server namespace and a client namespace joined by one veth on a /24: the server side
/// (`link.a`) has `net.host(1)`, the client side (`link.b`) is up without an address.
#[derive(Debug)]
pub struct Lan {
    pub net: Net24,
    pub server: Netns,
    pub client: Netns,
    pub link: Veth,
}

impl Lan {
    pub fn new(net: Net24) -> Result<Lan> {
        let server = Netns::new()?;
        let client = Netns::new()?;
        let link = Veth::new(&server, &client)?;
        server.addr(&link.a, &net.addr(1))?;
        Ok(Lan {
            net,
            server,
            client,
            link,
        })
    }

    /// The server's interface.
    pub fn server_if(&self) -> &str {
        &self.link.a
    }

    /// The client's interface.
    pub fn client_if(&self) -> &str {
        &self.link.b
    }
}

/// Poll `f` every 50 ms until it returns `Some`, or fail after `timeout` naming `what`.
pub fn wait_until<T>(
    what: impl Display,
    timeout: Duration,
    mut f: impl FnMut() -> Option<T>,
) -> Result<T> {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return Ok(v);
        }
        if start.elapsed() >= timeout {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A /24 a test owns, e.g. `Net24::new(10, 61, 1)` is 10.61.1.0/24. Tests pick distinct ones so
/// that they can run in parallel and their logs are unambiguous.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Net24(pub [u8; 3]);

impl Net24 {
    pub const fn new(a: u8, b: u8, c: u8) -> Net24 {
        Net24([a, b, c])
    }
    pub fn host(&self, n: u8) -> Ipv4Addr {
        Ipv4Addr::new(self.0[0], self.0[1], self.0[2], n)
    }
    /// `"10.61.1.0/24"`
    pub fn cidr(&self) -> String {
        format!("{}/24", self.host(0))
    }
    /// `"10.61.1.<n>/24"`, an interface address.
    pub fn addr(&self, n: u8) -> String {
        format!("{}/24", self.host(n))
    }
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        ip.octets()[..3] == self.0
    }
}

/// The `dhcpair` binary under test: `$DHCPAIR_BIN`, else `<workspace>/target/debug/dhcpair`.
pub fn dhcpair_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("DHCPAIR_BIN") {
        return PathBuf::from(p);
    }
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("target")
        .join("debug")
        .join("dhcpair")
}

/// Effective uid 0, read from `/proc/self/status` (no unsafe `geteuid`).
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|euid| euid == "0"))
        })
        .unwrap_or(false)
}

/// Full path of `tool` on PATH (plus the sbin directories, which a non-login PATH may lack).
pub fn which(tool: &str) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    let found = path
        .split(':')
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"])
        .map(|d| Path::new(d).join(tool))
        .find(|p| p.is_file());
    found
}

/// Format a MAC address as `52:54:00:12:34:56`.
pub fn mac_string(mac: &[u8]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}
