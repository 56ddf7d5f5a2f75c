//! A real relay agent (ISC dhcrelay) and a packet capture (tshark) to see what crossed a link.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;

use crate::netns::Netns;
use crate::process::Process;
use crate::{wait_until, TestEnv};

/// `dhcrelay -4 -d -a -id DOWN -iu UP SERVER`: relays client broadcasts heard on `down` to
/// `server`, adding option 82 (circuit id = the downstream interface name).
#[derive(Debug)]
pub struct Dhcrelay {
    process: Process,
}

impl Dhcrelay {
    pub fn start(
        env: &TestEnv,
        ns: &Netns,
        down: &str,
        up: &str,
        server: Ipv4Addr,
    ) -> Result<Dhcrelay> {
        env.require("dhcrelay")?;
        let pid = env.path("dhcrelay.pid").display().to_string();
        let server = server.to_string();
        let argv = [
            "dhcrelay", "-4", "-d", "-a", "-pf", &pid, "-id", down, "-iu", up, &server,
        ];
        let process = Process::spawn(ns, "dhcrelay", &env.path("dhcrelay.log"), &argv)?;
        // Ready once it reports the downstream interface it listens on.
        let needle = format!("Listening on LPF/{down}/");
        wait_until("dhcrelay listening", Duration::from_secs(10), || {
            process.log().contains(&needle).then_some(())
        })?;
        Ok(Dhcrelay { process })
    }

    pub fn log(&self) -> String {
        self.process.log()
    }
}

/// One captured DHCP packet, as tshark decodes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    pub src: String,
    pub dst: String,
    /// DHCP message type (1 DISCOVER, 2 OFFER, 3 REQUEST, 5 ACK, 6 NAK, 7 RELEASE, ...).
    pub msg_type: Option<u8>,
    pub giaddr: Option<Ipv4Addr>,
    pub yiaddr: Option<Ipv4Addr>,
    pub chaddr: String,
    /// Option 82 sub-option 1, hex without separators; `None` when absent.
    pub circuit_id: Option<String>,
    /// Option 82 sub-option 2, hex without separators; `None` when absent.
    pub remote_id: Option<String>,
}

impl Packet {
    pub const DISCOVER: u8 = 1;
    pub const OFFER: u8 = 2;
    pub const REQUEST: u8 = 3;
    pub const ACK: u8 = 5;
}

/// `tshark` capturing DHCP (UDP 67/68) on one interface of a namespace, decoded live.
#[derive(Debug)]
pub struct Tshark {
    process: Process,
    out: PathBuf,
}

const FIELDS: [&str; 8] = [
    "ip.src",
    "ip.dst",
    "dhcp.option.dhcp",
    "dhcp.ip.relay",
    "dhcp.ip.your",
    "dhcp.hw.mac_addr",
    "dhcp.option.agent_information_option.agent_circuit_id",
    "dhcp.option.agent_information_option.agent_remote_id",
];

impl Tshark {
    pub fn start(env: &TestEnv, ns: &Netns, iface: &str) -> Result<Tshark> {
        env.require("tshark")?;
        let name = format!("tshark-{iface}");
        let out = env.path(&format!("{name}.tsv"));
        let log = env.path(&format!("{name}.log"));
        let mut cmd = ns.command(&[
            "tshark",
            "-i",
            iface,
            "-n",
            "-l",
            "-f",
            "udp port 67 or udp port 68",
            "-Y",
            "dhcp",
            "-T",
            "fields",
            "-E",
            "separator=/t",
        ]);
        for f in FIELDS {
            cmd.args(["-e", f]);
        }
        let process = Process::spawn_split(&name, &out, &log, cmd)?;
        wait_until(
            format!("tshark capturing on {iface}"),
            Duration::from_secs(20),
            || process.log().contains("Capturing on").then_some(()),
        )?;
        Ok(Tshark { process, out })
    }

    /// Every packet decoded so far.
    pub fn packets(&self) -> Vec<Packet> {
        let text = std::fs::read_to_string(&self.out).unwrap_or_default();
        text.lines()
            .filter_map(|line| {
                let f: Vec<&str> = line.split('\t').collect();
                if f.len() < FIELDS.len() {
                    return None;
                }
                let opt = |s: &str| {
                    let s = s.replace(':', "");
                    (!s.is_empty()).then_some(s)
                };
                Some(Packet {
                    src: f[0].to_string(),
                    dst: f[1].to_string(),
                    msg_type: f[2].split(',').next().and_then(|t| t.parse().ok()),
                    giaddr: f[3].parse().ok(),
                    yiaddr: f[4].parse().ok(),
                    chaddr: f[5].split(',').next().unwrap_or("").to_string(),
                    circuit_id: opt(f[6]),
                    remote_id: opt(f[7]),
                })
            })
            .collect()
    }

    /// Wait for a packet matching `pred`.
    pub fn wait_for(
        &self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&Packet) -> bool,
    ) -> Result<Packet> {
        wait_until(what, timeout, || self.packets().into_iter().find(&pred))
    }

    pub fn log(&self) -> String {
        self.process.log()
    }
}

/// Hex of a string's bytes, as tshark prints an option 82 sub-option.
pub fn hex(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}
