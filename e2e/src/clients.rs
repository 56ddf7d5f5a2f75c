//! Drivers for real DHCP clients: ISC dhclient, busybox udhcpc and dhcpcd.
//!
//! Each client runs in the foreground inside the test's client namespace with a hook script of
//! ours in place of the distribution's: the hook appends its whole environment, one block per
//! call, to `<name>.events` (read back as [`Event`]s), after configuring the leased address
//! itself for dhclient and udhcpc (dhcpcd does that on its own), and never touches
//! `/etc/resolv.conf`. Every file a client keeps (lease, pid, control socket) is in the test
//! directory; dhcpcd's fixed `/run/dhcpcd` and `/var/lib/dhcpcd` are bind-mounted from the test
//! directory in the private mount namespace `ip netns exec` gives each command.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Result};

use crate::netns::Netns;
use crate::process::{run, Process};
use crate::{wait_until, TestEnv};

/// One call of a client's hook script: its environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub vars: BTreeMap<String, String>,
}

impl Event {
    fn var(&self, names: &[&str]) -> Option<&str> {
        names
            .iter()
            .find_map(|n| self.vars.get(*n).map(String::as_str))
            .filter(|v| !v.is_empty())
    }

    /// The reason, upper-cased across clients: `BOUND`, `RENEW`, `REBIND`, `REBOOT`,
    /// `RELEASE`, `EXPIRE`, `NAK`, `DECONFIG` (udhcpc), `LEASEFAIL` (udhcpc), `PREINIT`, ...
    pub fn reason(&self) -> String {
        self.var(&["reason"]).unwrap_or("").to_ascii_uppercase()
    }

    /// The client holds a lease after this call.
    pub fn is_bound(&self) -> bool {
        matches!(
            self.reason().as_str(),
            "BOUND" | "RENEW" | "REBIND" | "REBOOT"
        )
    }

    pub fn ip(&self) -> Option<Ipv4Addr> {
        self.var(&["new_ip_address", "ip"])?.parse().ok()
    }

    pub fn routers(&self) -> Vec<Ipv4Addr> {
        ips(self.var(&["new_routers", "router"]))
    }

    pub fn dns(&self) -> Vec<Ipv4Addr> {
        ips(self.var(&["new_domain_name_servers", "dns"]))
    }

    pub fn domain(&self) -> Option<&str> {
        self.var(&["new_domain_name", "domain"])
    }

    pub fn lease_time(&self) -> Option<u32> {
        self.var(&["new_dhcp_lease_time", "lease"])?.parse().ok()
    }

    pub fn server_id(&self) -> Option<Ipv4Addr> {
        self.var(&["new_dhcp_server_identifier", "serverid"])?
            .parse()
            .ok()
    }
}

fn ips(v: Option<&str>) -> Vec<Ipv4Addr> {
    v.unwrap_or("")
        .split_whitespace()
        .filter_map(|s| s.parse().ok())
        .collect()
}

/// The events file one hook script appends to.
#[derive(Debug, Clone)]
pub struct Events {
    path: PathBuf,
}

impl Events {
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every complete block so far, in order.
    pub fn all(&self) -> Vec<Event> {
        let text = std::fs::read_to_string(&self.path).unwrap_or_default();
        let mut out = Vec::new();
        let mut cur: Option<BTreeMap<String, String>> = None;
        for line in text.lines() {
            match line {
                "@@ begin" => cur = Some(BTreeMap::new()),
                "@@ end" => {
                    if let Some(vars) = cur.take() {
                        out.push(Event { vars });
                    }
                }
                _ => {
                    if let (Some(vars), Some((k, v))) = (cur.as_mut(), line.split_once('=')) {
                        vars.insert(k.to_string(), v.to_string());
                    }
                }
            }
        }
        out
    }

    pub fn count(&self) -> usize {
        self.all().len()
    }

    /// The first event at index `>= since` with one of `reasons`.
    pub fn wait(&self, since: usize, reasons: &[&str], timeout: Duration) -> Result<Event> {
        let what = format!("a {} event in {}", reasons.join("/"), self.path.display());
        let r = wait_until(what, timeout, || {
            self.all()
                .into_iter()
                .skip(since)
                .find(|e| reasons.contains(&e.reason().as_str()))
        });
        match r {
            Ok(e) => Ok(e),
            Err(e) => bail!("{e}; reasons seen: {:?}", self.reasons()),
        }
    }

    /// The first event that leaves the client bound (BOUND, RENEW, REBIND, REBOOT).
    pub fn wait_bound(&self, since: usize, timeout: Duration) -> Result<Event> {
        self.wait(since, &["BOUND", "RENEW", "REBIND", "REBOOT"], timeout)
    }

    pub fn reasons(&self) -> Vec<String> {
        self.all().iter().map(Event::reason).collect()
    }
}

/// Which client a hook script serves, and so whether it configures the address itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HookKind {
    Dhclient,
    Udhcpc,
    Dhcpcd,
}

/// Write `<name>.hook` (executable) that appends to `<name>.events`.
fn write_hook(env: &TestEnv, name: &str, kind: HookKind) -> Result<(PathBuf, Events)> {
    let events = env.path(&format!("{name}.events"));
    let hook = env.path(&format!("{name}.hook"));
    let configure = match kind {
        HookKind::Dhclient => {
            r#"case "$reason" in
  BOUND|RENEW|REBIND|REBOOT)
    if [ -n "$old_ip_address" ] && [ "$old_ip_address" != "$new_ip_address" ]; then
      ip -4 addr flush dev "$interface"
    fi
    ip addr replace "$new_ip_address/${new_subnet_mask:-255.255.255.255}" dev "$interface"
    if [ -n "$new_routers" ]; then
      set -- $new_routers
      ip route replace default via "$1" dev "$interface"
    fi
    ;;
  EXPIRE|FAIL|RELEASE|STOP)
    ip -4 addr flush dev "$interface"
    ;;
esac"#
        }
        HookKind::Udhcpc => {
            r#"case "$reason" in
  bound|renew)
    ip addr replace "$ip/${mask:-32}" dev "$interface"
    if [ -n "$router" ]; then
      set -- $router
      ip route replace default via "$1" dev "$interface"
    fi
    ;;
  deconfig|leasefail|nak)
    ip -4 addr flush dev "$interface"
    ;;
esac"#
        }
        HookKind::Dhcpcd => "# dhcpcd configures the interface itself",
    };
    let script = format!(
        r#"#!/bin/sh
# dhcpair e2e hook ({kind:?}): configures the address, then records the call's environment
# (so a recorded BOUND means the address is on the interface); never touches resolv.conf.
reason="${{reason:-$1}}"
{configure}
{{
  echo "@@ begin"
  echo "reason=$reason"
  env | grep -v '^reason='
  echo "@@ end"
}} >> '{events}'
exit 0
"#,
        events = events.display()
    );
    std::fs::write(&hook, script)?;
    run(Command::new("chmod").arg("755").arg(&hook))?;
    Ok((hook, Events { path: events }))
}

/// ISC dhclient: `dhclient -4 -v -d -cf CONF -sf HOOK -lf LEASES -pf PID IFACE`.
#[derive(Debug)]
pub struct Dhclient {
    ns: String,
    iface: String,
    conf: PathBuf,
    hook: PathBuf,
    lease_file: PathBuf,
    pid_file: PathBuf,
    log: PathBuf,
    pub events: Events,
    process: Option<Process>,
}

impl Dhclient {
    pub fn start(env: &TestEnv, ns: &Netns, iface: &str) -> Result<Dhclient> {
        env.require("dhclient")?;
        let name = format!("dhclient-{iface}");
        let (hook, events) = write_hook(env, &name, HookKind::Dhclient)?;
        let conf = env.path(&format!("{name}.conf"));
        std::fs::write(
            &conf,
            "# dhcpair e2e: no hostname, no client id; fast retries\n\
             request subnet-mask, broadcast-address, routers, domain-name, domain-name-servers;\n\
             initial-interval 1;\nbackoff-cutoff 2;\ntimeout 60;\nretry 1;\n",
        )?;
        let mut c = Dhclient {
            ns: ns.name().to_string(),
            iface: iface.to_string(),
            conf,
            hook,
            lease_file: env.path(&format!("{name}.leases")),
            pid_file: env.path(&format!("{name}.pid")),
            log: env.path(&format!("{name}.log")),
            events,
            process: None,
        };
        c.spawn()?;
        Ok(c)
    }

    fn args(&self, extra: &[&str]) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.ns, "dhclient", "-4", "-v"])
            .args(extra)
            .arg("-cf")
            .arg(&self.conf)
            .arg("-sf")
            .arg(&self.hook)
            .arg("-lf")
            .arg(&self.lease_file)
            .arg("-pf")
            .arg(&self.pid_file)
            .arg(&self.iface);
        cmd
    }

    fn spawn(&mut self) -> Result<()> {
        let cmd = self.args(&["-d"]);
        self.process = Some(Process::spawn_command("dhclient", &self.log, cmd)?);
        Ok(())
    }

    /// `dhclient -r`: send DHCPRELEASE and stop the running instance (by its pid file).
    pub fn release(&mut self) -> Result<()> {
        let out = self.args(&["-r"]).output()?;
        append_log(&self.log, "dhclient -r", &out);
        if !out.status.success() {
            bail!(
                "dhclient -r failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        if let Some(p) = self.process.as_mut() {
            p.wait_exit(Duration::from_secs(5))?;
        }
        Ok(())
    }

    /// Kill the client without a release (as a crash or power loss would).
    pub fn kill(&mut self) {
        if let Some(mut p) = self.process.take() {
            p.kill9();
        }
    }

    /// Forget the lease: a later [`Dhclient::restart`] starts from DISCOVER, not INIT-REBOOT.
    pub fn forget_lease(&self) {
        let _ = std::fs::remove_file(&self.lease_file);
    }

    pub fn restart(&mut self) -> Result<()> {
        self.kill();
        self.spawn()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// busybox udhcpc: `udhcpc -f -i IFACE -s HOOK`; SIGUSR1 renews, SIGUSR2 releases.
#[derive(Debug)]
pub struct Udhcpc {
    pub events: Events,
    process: Process,
}

impl Udhcpc {
    pub fn start(env: &TestEnv, ns: &Netns, iface: &str) -> Result<Udhcpc> {
        env.require("udhcpc")?;
        let name = format!("udhcpc-{iface}");
        let (hook, events) = write_hook(env, &name, HookKind::Udhcpc)?;
        let hook = hook.display().to_string();
        let argv = [
            "udhcpc", "-f", "-i", iface, "-s", &hook, "-t", "20", "-T", "1", "-A", "1",
        ];
        let process = Process::spawn(ns, "udhcpc", &env.path(&format!("{name}.log")), &argv)?;
        Ok(Udhcpc { events, process })
    }

    /// SIGUSR1: renew now (a unicast REQUEST while bound).
    pub fn renew(&self) -> Result<()> {
        self.process.signal("USR1")
    }

    /// SIGUSR2: send DHCPRELEASE and deconfigure.
    pub fn release(&self) -> Result<()> {
        self.process.signal("USR2")
    }

    pub fn log(&self) -> String {
        self.process.log()
    }
}

/// dhcpcd 9 in the foreground, IPv4 only: `dhcpcd -B -4 --noipv4ll -A -f CONF -c HOOK IFACE`;
/// `dhcpcd -4 -n IFACE` rebinds, `dhcpcd -4 -k IFACE` releases (through the control socket in
/// the test's bind-mounted `/run/dhcpcd`).
#[derive(Debug)]
pub struct Dhcpcd {
    ns: String,
    iface: String,
    run_dir: PathBuf,
    db_dir: PathBuf,
    log: PathBuf,
    pub events: Events,
    process: Process,
}

impl Dhcpcd {
    pub fn start(env: &TestEnv, ns: &Netns, iface: &str) -> Result<Dhcpcd> {
        env.require("dhcpcd")?;
        let name = format!("dhcpcd-{iface}");
        let (hook, events) = write_hook(env, &name, HookKind::Dhcpcd)?;
        let run_dir = env.path(&format!("{name}-run"));
        let db_dir = env.path(&format!("{name}-db"));
        std::fs::create_dir_all(&run_dir)?;
        std::fs::create_dir_all(&db_dir)?;
        // The mount points must exist on the host; dhcpcd itself would create /run/dhcpcd.
        std::fs::create_dir_all("/run/dhcpcd")?;
        std::fs::create_dir_all("/var/lib/dhcpcd")?;
        let conf = env.path(&format!("{name}.conf"));
        std::fs::write(
            &conf,
            "# dhcpair e2e: RFC 2132 client id from the MAC, no DUID file, no hostname\n\
             clientid\n\
             option subnet_mask, routers, domain_name_servers, domain_name\n\
             require dhcp_server_identifier\n",
        )?;
        let log = env.path(&format!("{name}.log"));
        let cmd = dhcpcd_command(
            ns.name(),
            &run_dir,
            &db_dir,
            &format!(
                "dhcpcd -B -d -4 --noipv4ll -A -t 0 -f '{}' -c '{}' '{}'",
                conf.display(),
                hook.display(),
                iface
            ),
        );
        let process = Process::spawn_command("dhcpcd", &log, cmd)?;
        Ok(Dhcpcd {
            ns: ns.name().to_string(),
            iface: iface.to_string(),
            run_dir,
            db_dir,
            log,
            events,
            process,
        })
    }

    fn control(&self, flag: &str) -> Result<()> {
        let out = dhcpcd_command(
            &self.ns,
            &self.run_dir,
            &self.db_dir,
            &format!("dhcpcd -4 {flag} '{}'", self.iface),
        )
        .output()?;
        append_log(&self.log, &format!("dhcpcd {flag}"), &out);
        if !out.status.success() {
            bail!(
                "dhcpcd {flag} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    }

    /// `dhcpcd -n IFACE`: rebind now.
    pub fn rebind(&self) -> Result<()> {
        self.control("-n")
    }

    /// `dhcpcd -k IFACE`: release the lease (the daemon sends DHCPRELEASE and exits).
    pub fn release(&self) -> Result<()> {
        self.control("-k")
    }

    pub fn process(&mut self) -> &mut Process {
        &mut self.process
    }

    pub fn log(&self) -> String {
        self.process.log()
    }
}

/// `sh -c` inside the namespace with the test's dirs mounted over dhcpcd's fixed ones (in the
/// command's private mount namespace), then `exec` the dhcpcd command line.
fn dhcpcd_command(ns: &str, run_dir: &Path, db_dir: &Path, dhcpcd: &str) -> Command {
    let script = format!(
        "mount --bind '{}' /run/dhcpcd && mount --bind '{}' /var/lib/dhcpcd && exec {dhcpcd}",
        run_dir.display(),
        db_dir.display()
    );
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", ns, "sh", "-c", &script]);
    cmd
}

fn append_log(log: &Path, what: &str, out: &std::process::Output) {
    use std::io::Write;
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
    {
        let _ = writeln!(f, "===== e2e: {what}: {} =====", out.status);
        let _ = f.write_all(&out.stdout);
        let _ = f.write_all(&out.stderr);
    }
}
