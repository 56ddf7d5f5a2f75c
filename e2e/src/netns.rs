//! Network namespaces, veth links and a bridge "switch", all created by name with `ip` and
//! removed on drop.
//!
//! Names: namespaces are `dpe2e-<pid>-<n>`; interfaces are `v<pid base36><n base36><a|b>`,
//! unique per process and at most 15 bytes, because some clients key files on the interface
//! name (dhcpcd's `/run/dhcpcd/<iface>-4.pid`).

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Once;

use anyhow::{Context, Result};

use crate::process::{run, signal_pid};

const PREFIX: &str = "dpe2e-";

static NEXT_NS: AtomicU32 = AtomicU32::new(0);
static NEXT_IF: AtomicU32 = AtomicU32::new(0);
static CLEANUP: Once = Once::new();

/// A network namespace with its loopback up and its own `/etc/netns/<name>/resolv.conf`
/// (which `ip netns exec` bind-mounts over `/etc/resolv.conf`, so a client script that writes
/// resolv.conf writes the test's copy, never the host's).
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    pub fn new() -> Result<Netns> {
        CLEANUP.call_once(remove_leftovers);
        let n = NEXT_NS.fetch_add(1, Ordering::Relaxed);
        let name = format!("{PREFIX}{}-{n}", std::process::id());
        run(Command::new("ip").args(["netns", "add", &name]))?;
        let ns = Netns { name };
        let etc = ns.etc_dir();
        std::fs::create_dir_all(&etc).with_context(|| format!("create {}", etc.display()))?;
        std::fs::write(
            etc.join("resolv.conf"),
            "# dhcpair e2e: this namespace has no DNS\n",
        )?;
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    fn etc_dir(&self) -> PathBuf {
        PathBuf::from("/etc/netns").join(&self.name)
    }

    /// `ip -n NS args...`
    pub fn ip(&self, args: &[&str]) -> Result<String> {
        run(Command::new("ip").args(["-n", &self.name]).args(args))
    }

    /// Run a command inside the namespace to completion; stdout, or an error with stderr.
    pub fn exec(&self, argv: &[&str]) -> Result<String> {
        run(Command::new("ip")
            .args(["netns", "exec", &self.name])
            .args(argv))
    }

    /// A `Command` that runs `argv` inside the namespace.
    pub fn command(&self, argv: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name]).args(argv);
        c
    }

    /// Add an address (`"10.61.1.1/24"`) to an interface and bring it up.
    pub fn addr(&self, ifname: &str, cidr: &str) -> Result<()> {
        self.ip(&["addr", "add", cidr, "dev", ifname])?;
        self.up(ifname)
    }

    pub fn up(&self, ifname: &str) -> Result<()> {
        self.ip(&["link", "set", ifname, "up"])?;
        Ok(())
    }

    /// Set an interface's MAC address (before a client starts on it).
    pub fn set_mac(&self, ifname: &str, mac: &str) -> Result<()> {
        self.ip(&["link", "set", "dev", ifname, "address", mac])?;
        Ok(())
    }

    /// An interface's MAC address, lower case with colons.
    pub fn mac(&self, ifname: &str) -> Result<String> {
        let out = self.ip(&["-o", "link", "show", "dev", ifname])?;
        let mut w = out.split_whitespace();
        w.position(|x| x == "link/ether")
            .and_then(|_| w.next())
            .map(str::to_string)
            .with_context(|| format!("no link/ether in: {out}"))
    }

    pub fn route(&self, dest: &str, via: Ipv4Addr) -> Result<()> {
        self.ip(&["route", "replace", dest, "via", &via.to_string()])?;
        Ok(())
    }

    /// IPv4 addresses currently on `ifname` (`"10.61.1.100/24"`).
    pub fn addrs(&self, ifname: &str) -> Vec<String> {
        self.ip(&["-4", "-o", "addr", "show", "dev", ifname])
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                let mut w = l.split_whitespace();
                w.position(|x| x == "inet")?;
                w.next().map(str::to_string)
            })
            .collect()
    }

    /// Enable IPv4 forwarding (for a relay namespace).
    pub fn forwarding(&self) -> Result<()> {
        self.exec(&["sysctl", "-qw", "net.ipv4.ip_forward=1"])?;
        Ok(())
    }

    /// PIDs of every process inside the namespace.
    pub fn pids(&self) -> Vec<u32> {
        ns_pids(&self.name)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        destroy(&self.name);
    }
}

fn ns_pids(name: &str) -> Vec<u32> {
    run(Command::new("ip").args(["netns", "pids", name]))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// Kill every process in the namespace by PID, then delete it and its `/etc/netns` directory.
fn destroy(name: &str) {
    for _ in 0..20 {
        let pids = ns_pids(name);
        if pids.is_empty() {
            break;
        }
        for pid in pids {
            let _ = signal_pid(pid, "KILL");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let _ = run(Command::new("ip").args(["netns", "delete", name]));
    let _ = std::fs::remove_dir_all(PathBuf::from("/etc/netns").join(name));
}

/// Remove namespaces of earlier runs whose process is gone (`dpe2e-<pid>-*`, no `/proc/<pid>`).
fn remove_leftovers() {
    let list = run(Command::new("ip").args(["netns", "list"])).unwrap_or_default();
    for line in list.lines() {
        let Some(name) = line.split_whitespace().next() else {
            continue;
        };
        let Some(pid) = name
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.split('-').next())
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            destroy(name);
        }
    }
    // /etc/netns entries whose namespace is already gone.
    if let Ok(entries) = std::fs::read_dir("/etc/netns") {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(pid) = name
                .strip_prefix(PREFIX)
                .and_then(|rest| rest.split('-').next())
                .and_then(|p| p.parse::<u32>().ok())
            {
                if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
    }
}

fn base36(mut n: u32) -> String {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    loop {
        out.push(DIGITS[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8_lossy(&out).into_owned()
}

/// A fresh interface-name stem, unique in this process and across concurrent test processes.
fn if_stem() -> String {
    let n = NEXT_IF.fetch_add(1, Ordering::Relaxed);
    format!("v{}{}", base36(std::process::id()), base36(n))
}

/// A veth pair: `a` lives in the first namespace, `b` in the second. Both are up, without
/// addresses. The pair disappears with either namespace.
#[derive(Debug, Clone)]
pub struct Veth {
    pub a: String,
    pub b: String,
}

impl Veth {
    pub fn new(a: &Netns, b: &Netns) -> Result<Veth> {
        let stem = if_stem();
        let (an, bn) = (format!("{stem}a"), format!("{stem}b"));
        a.ip(&[
            "link",
            "add",
            &an,
            "type",
            "veth",
            "peer",
            "name",
            &bn,
            "netns",
            b.name(),
        ])?;
        a.up(&an)?;
        b.up(&bn)?;
        Ok(Veth { a: an, b: bn })
    }
}

/// An L2 switch: a namespace holding one bridge; [`Switch::attach`] plugs a namespace into it.
#[derive(Debug)]
pub struct Switch {
    ns: Netns,
}

impl Switch {
    const BRIDGE: &'static str = "br0";

    pub fn new() -> Result<Switch> {
        let ns = Netns::new()?;
        ns.ip(&["link", "add", Self::BRIDGE, "type", "bridge"])?;
        // Forward at once: no STP listening/learning delay.
        ns.ip(&[
            "link",
            "set",
            Self::BRIDGE,
            "type",
            "bridge",
            "forward_delay",
            "0",
            "stp_state",
            "0",
        ])?;
        ns.up(Self::BRIDGE)?;
        Ok(Switch { ns })
    }

    pub fn ns(&self) -> &Netns {
        &self.ns
    }

    /// Plug `ns` into the switch; returns the interface name inside `ns` (up, no address).
    pub fn attach(&self, ns: &Netns) -> Result<String> {
        let v = Veth::new(&self.ns, ns)?;
        self.ns.ip(&["link", "set", &v.a, "master", Self::BRIDGE])?;
        Ok(v.b)
    }
}
