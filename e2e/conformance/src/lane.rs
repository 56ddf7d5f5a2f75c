//! A lane: one server under comparison on its own link. Each lane has a server namespace and
//! a client namespace joined by a veth (the same addresses in every lane, see
//! [`Topology`]), the server process (dhcpair, Kea or ISC dhcpd) started from the scenario's
//! [`Spec`], and the client end's packet socket. Lanes run a scenario's steps in parallel.
//!
//! Everything is removed on drop (also on panic): the server process by PID, then the
//! namespaces (which kills whatever is left inside them by PID).

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Result};
use dhcpair_e2e::failover::IscDhcpd;
use dhcpair_e2e::{wait_until, Lan, Net24, Process, Server, TestEnv};

use crate::adapters;
use crate::link::{parse_mac, Endpoint};
use crate::packet::{udp_frame, Reply, Request};
use crate::scenario::{Client, Mutation, OptVal, Pkt, Step, Via, A};
use crate::spec::{Spec, Topology};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Dhcpair,
    Kea,
    Isc,
}

impl Kind {
    pub const ALL: [Kind; 3] = [Kind::Dhcpair, Kind::Kea, Kind::Isc];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Dhcpair => "dhcpair",
            Kind::Kea => "kea",
            Kind::Isc => "isc",
        }
    }
}

/// Per-packet reply timeout and the extra time to wait for a second reply after the first.
pub const REPLY_TIMEOUT: Duration = Duration::from_millis(1000);
pub const SETTLE: Duration = Duration::from_millis(60);

enum Running {
    Dhcpair(Server),
    Kea(Process),
    Isc(IscDhcpd),
}

impl std::fmt::Debug for Running {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Running::Dhcpair(_) => "dhcpair",
            Running::Kea(_) => "kea",
            Running::Isc(_) => "isc",
        })
    }
}

/// What one step did on one lane.
#[derive(Debug, Clone)]
pub enum StepResult {
    /// The packet as sent, and every reply with its xid.
    Sent {
        req: Request,
        replies: Vec<Reply>,
    },
    /// Not sent: it refers to a reply this server did not give.
    Unresolved(String),
    Waited,
}

impl StepResult {
    pub fn first_yiaddr(&self) -> Option<Ipv4Addr> {
        match self {
            StepResult::Sent { replies, .. } => replies.first().map(|r| r.yiaddr),
            _ => None,
        }
    }
}

/// Fields are dropped in order: the server first, then the socket, the namespaces, and the
/// test directory last.
#[derive(Debug)]
pub struct Lane {
    running: Option<Running>,
    pub ep: Endpoint,
    pub server_mac: [u8; 6],
    pub kind: Kind,
    pub lan: Lan,
    spec_key: Option<String>,
    pub starts: u32,
    /// Replies that came after their step's window (attached to their step, and noted).
    pub late: Vec<String>,
    pub env: TestEnv,
}

impl Lane {
    pub fn new(kind: Kind) -> Result<Lane> {
        // Panics (the run fails, never skips) without root or iproute2.
        let env = TestEnv::setup(&format!("conformance-{}", kind.name()));
        let [a, b, c] = Topology::LAN;
        let lan = Lan::new(Net24::new(a, b, c))?;
        lan.client
            .addr(lan.client_if(), &format!("{}/24", Topology::RELAY))?;
        lan.server.ip(&[
            "route",
            "add",
            &format!("{}/24", Topology::relayed(0)),
            "via",
            &Topology::RELAY.to_string(),
        ])?;
        // No IPv6 chatter on the link.
        for (ns, ifname) in [
            (&lan.server, lan.server_if()),
            (&lan.client, lan.client_if()),
        ] {
            let _ = ns.exec(&[
                "sysctl",
                "-qw",
                &format!("net.ipv6.conf.{ifname}.disable_ipv6=1"),
            ]);
        }
        let server_mac = parse_mac(&lan.server.mac(lan.server_if())?)?;
        let ep = Endpoint::open(&lan.client, lan.client_if(), vec![Topology::RELAY])?;
        Ok(Lane {
            running: None,
            ep,
            server_mac,
            kind,
            lan,
            spec_key: None,
            starts: 0,
            late: Vec::new(),
            env,
        })
    }

    pub fn dir(&self) -> PathBuf {
        self.env.dir().to_path_buf()
    }

    /// Is the server running with this spec (and may a scenario reuse it)?
    pub fn serves(&self, spec: &Spec) -> bool {
        self.running.is_some() && self.spec_key.as_deref() == Some(spec.key().as_str())
    }

    /// Stop the server and forget its leases.
    pub fn stop(&mut self) {
        match self.running.take() {
            Some(Running::Dhcpair(mut s)) => {
                let _ = s.stop();
            }
            Some(Running::Kea(mut p)) => {
                let _ = p.terminate(Duration::from_secs(5));
            }
            Some(Running::Isc(mut i)) => i.kill9(),
            None => {}
        }
        self.spec_key = None;
    }

    /// (Re)start the server with `spec` and an empty lease database.
    pub fn start(&mut self, spec: &Spec) -> Result<()> {
        self.stop();
        self.starts += 1;
        let iface = self.lan.server_if().to_string();
        let running = match self.kind {
            Kind::Dhcpair => {
                let data = self.env.path("dhcpair-data");
                let _ = std::fs::remove_dir_all(&data);
                let cfg = adapters::dhcpair_config(spec, &iface)?;
                Running::Dhcpair(Server::start(&self.env, &self.lan.server, "dhcpair", cfg)?)
            }
            Kind::Kea => {
                let bin = self.env.require("kea-dhcp4")?;
                let leases = self.env.path("kea-leases4.csv");
                let _ = std::fs::remove_file(&leases);
                let conf = self.env.path("kea-dhcp4.json");
                let json = adapters::kea_config(spec, &iface, &leases);
                std::fs::write(&conf, serde_json::to_string_pretty(&json)?)?;
                let log = self.env.path("kea.log");
                let mut cmd = self.lan.server.command(&[&bin.display().to_string(), "-c"]);
                cmd.arg(&conf)
                    .env("KEA_PIDFILE_DIR", self.env.dir())
                    .env("KEA_LOCKFILE_DIR", self.env.dir());
                let mut p = Process::spawn_command("kea-dhcp4", &log, cmd)?;
                let mark = std::fs::read_to_string(&log).map_or(0, |s| s.len());
                let mut died = None;
                wait_until("kea-dhcp4 DHCP4_STARTED", Duration::from_secs(15), || {
                    if let Some(s) = p.try_wait() {
                        died = Some(s);
                        return Some(());
                    }
                    let text = std::fs::read_to_string(&log).unwrap_or_default();
                    text.get(mark..)
                        .is_some_and(|t| t.contains("DHCP4_STARTED"))
                        .then_some(())
                })?;
                if let Some(s) = died {
                    bail!(
                        "kea-dhcp4 exited ({s}) at start:\n{}",
                        dhcpair_e2e::server::tail(&log, 30)
                    );
                }
                Running::Kea(p)
            }
            Kind::Isc => {
                let conf = adapters::isc_config(spec);
                Running::Isc(IscDhcpd::start(&self.env, &self.lan.server, &iface, &conf)?)
            }
        };
        self.running = Some(running);
        self.spec_key = Some(spec.key());
        Ok(())
    }

    /// Is the server process still alive?
    pub fn alive(&mut self) -> bool {
        match self.running.as_mut() {
            Some(Running::Dhcpair(s)) => s.exited().is_none(),
            Some(Running::Kea(p)) => p.is_running(),
            Some(Running::Isc(i)) => i.is_running(),
            None => false,
        }
    }

    /// The server's log so far (for reports).
    pub fn log_path(&self) -> PathBuf {
        match self.kind {
            Kind::Dhcpair => self.env.path("dhcpair.log"),
            Kind::Kea => self.env.path("kea.log"),
            Kind::Isc => self.env.path("isc-dhcpd.log"),
        }
    }

    /// Run `steps` of scenario number `scenario`: each packet resolved against this lane's
    /// own earlier replies, sent, and its replies collected within [`REPLY_TIMEOUT`].
    pub fn run_steps(&mut self, scenario: u16, steps: &[Step]) -> Vec<StepResult> {
        let mut out: Vec<StepResult> = Vec::with_capacity(steps.len());
        for (i, step) in steps.iter().enumerate() {
            let r = match step {
                Step::Wait(d) => {
                    std::thread::sleep((*d).min(Duration::from_secs(30)));
                    StepResult::Waited
                }
                Step::Send(p) => {
                    let xid = xid_for(scenario, i);
                    match self.resolve(scenario, xid, p, &out) {
                        Err(why) => StepResult::Unresolved(why),
                        Ok((req, frame)) => {
                            self.forget_neighbours();
                            self.ep.drain();
                            let arp_mac = p.client.mac(scenario);
                            match self.ep.send(&frame) {
                                Ok(()) => {
                                    let replies = self.ep.collect(
                                        xid,
                                        REPLY_TIMEOUT,
                                        SETTLE,
                                        arp_mac,
                                        &[Topology::SERVER],
                                    );
                                    StepResult::Sent { req, replies }
                                }
                                Err(e) => StepResult::Unresolved(format!("send failed: {e:#}")),
                            }
                        }
                    }
                }
            };
            out.push(r);
            self.claim_late(scenario, &mut out);
        }
        self.claim_late(scenario, &mut out);
        out
    }

    /// Listen `dur` longer for replies to this scenario's steps (when the servers disagree on
    /// whether a step was answered, a reply held up by a slow disk must not look like none).
    pub fn linger(&mut self, scenario: u16, out: &mut [StepResult], dur: Duration) {
        let never = 0;
        let _ = self
            .ep
            .collect(never, dur, dur, [0; 6], &[Topology::SERVER]);
        self.claim_late(scenario, out);
    }

    /// Attach replies that arrived after their step's window to that step.
    fn claim_late(&mut self, scenario: u16, out: &mut [StepResult]) {
        self.ep.drain();
        for r in std::mem::take(&mut self.ep.stray) {
            let step = out
                .iter()
                .enumerate()
                .position(|(j, _)| xid_for(scenario, j) == r.xid);
            if step.is_none() && r.xid != 0 {
                self.late.push(format!(
                    "{} with xid {:#x} came after its scenario ended (not compared)",
                    r.kind(),
                    r.xid
                ));
            }
            if let Some(j) = step {
                if let StepResult::Sent { replies, .. } = &mut out[j] {
                    self.late.push(format!(
                        "{} to step {} came after the {} ms window",
                        r.kind(),
                        j + 1,
                        REPLY_TIMEOUT.as_millis()
                    ));
                    replies.push(r);
                }
            }
        }
    }

    /// Send one packet and collect its replies (the property test's single step).
    pub fn exchange(
        &mut self,
        scenario: u16,
        xid: u32,
        p: &Pkt,
        earlier: &[StepResult],
    ) -> StepResult {
        match self.resolve(scenario, xid, p, earlier) {
            Err(why) => StepResult::Unresolved(why),
            Ok((req, frame)) => {
                self.forget_neighbours();
                self.ep.drain();
                let arp_mac = p.client.mac(scenario);
                if let Err(e) = self.ep.send(&frame) {
                    return StepResult::Unresolved(format!("send failed: {e:#}"));
                }
                let replies =
                    self.ep
                        .collect(xid, REPLY_TIMEOUT, SETTLE, arp_mac, &[Topology::SERVER]);
                StepResult::Sent { req, replies }
            }
        }
    }

    /// The server's kernel must ask again who has an address: clients of earlier steps and
    /// scenarios had the same addresses with other MACs.
    fn forget_neighbours(&self) {
        let _ = self.lan.server.ip(&["neigh", "flush", "all"]);
    }

    fn addr(&self, a: &A, earlier: &[StepResult]) -> Result<Ipv4Addr, String> {
        match a {
            A::Zero => Ok(Ipv4Addr::UNSPECIFIED),
            A::Ip(ip) => Ok(*ip),
            A::Server => Ok(Topology::SERVER),
            A::Yi(k) => earlier
                .get(*k)
                .and_then(StepResult::first_yiaddr)
                .filter(|ip| !ip.is_unspecified())
                .ok_or_else(|| format!("not sent: step {} got no address", k + 1)),
        }
    }

    /// The packet as bytes for this lane: the request and the Ethernet frame.
    fn resolve(
        &self,
        scenario: u16,
        xid: u32,
        p: &Pkt,
        earlier: &[StepResult],
    ) -> Result<(Request, Vec<u8>), String> {
        let mac = p.client.mac(scenario);
        let mut r = Request::new(xid, p.chaddr.as_deref().unwrap_or(&mac));
        r.op = p.op;
        r.htype = p.htype;
        r.hlen = p.hlen;
        r.hops = p.hops;
        r.secs = p.secs;
        r.flags = p.flags;
        r.ciaddr = self.addr(&p.ciaddr, earlier)?;
        r.yiaddr = self.addr(&p.yiaddr, earlier)?;
        r.siaddr = self.addr(&p.siaddr, earlier)?;
        r.giaddr = self.addr(&p.giaddr, earlier)?;
        r.sname = p.sname.clone();
        r.file = p.file.clone();
        r.end = p.end;
        r.pad_to = p.pad_to;
        let id = if p.no_id {
            None
        } else {
            p.client.id_bytes(scenario)
        };
        for (i, (code, v)) in p.options.iter().enumerate() {
            match v {
                OptVal::Raw(b) => r.options.push((*code, b.clone())),
                OptVal::Addr(a) => r
                    .options
                    .push((*code, self.addr(a, earlier)?.octets().to_vec())),
                OptVal::Split(parts) => {
                    for part in parts {
                        r.options.push((*code, part.clone()));
                    }
                }
            }
            // The client identifier goes right after the message type.
            if i == 0 && *code == 53 {
                if let Some(id) = &id {
                    if !p.options.iter().any(|(c, _)| *c == 61) {
                        r.options.push((61, id.clone()));
                    }
                }
            }
        }
        if !p.options.iter().any(|(c, _)| *c == 53) {
            if let Some(id) = &id {
                if !p.options.iter().any(|(c, _)| *c == 61) {
                    r.options.push((61, id.clone()));
                }
            }
        }
        let mut payload = r.encode();
        match &p.mutate {
            Some(Mutation::Truncate(n)) => payload.truncate(*n),
            Some(Mutation::Cookie(c)) => payload[236..240].copy_from_slice(c),
            Some(Mutation::Append(b)) => payload.extend_from_slice(b),
            None => {}
        }
        let bcast = [0xff; 6];
        let frame = match p.via {
            Via::Broadcast => udp_frame(
                bcast,
                mac,
                Ipv4Addr::UNSPECIFIED,
                Ipv4Addr::BROADCAST,
                68,
                67,
                64,
                &payload,
            ),
            Via::BroadcastFromCiaddr => udp_frame(
                bcast,
                mac,
                r.ciaddr,
                Ipv4Addr::BROADCAST,
                68,
                67,
                64,
                &payload,
            ),
            Via::Unicast => udp_frame(
                self.server_mac,
                mac,
                r.ciaddr,
                Topology::SERVER,
                68,
                67,
                64,
                &payload,
            ),
            Via::Relay => udp_frame(
                self.server_mac,
                self.ep.mac,
                Topology::RELAY,
                Topology::SERVER,
                67,
                67,
                64,
                &payload,
            ),
        };
        Ok((r, frame))
    }
}

/// A transaction id unique per scenario and step.
pub fn xid_for(scenario: u16, step: usize) -> u32 {
    0x4000_0000 | (u32::from(scenario) << 8) | (step as u32 & 0xff)
}

/// Start (or restart) the servers of all lanes with `spec`, in parallel.
pub fn start_all(lanes: &mut [Lane], spec: &Spec) -> Vec<Result<()>> {
    std::thread::scope(|s| {
        let handles: Vec<_> = lanes
            .iter_mut()
            .map(|lane| s.spawn(move || lane.start(spec)))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("server start panicked")))
            })
            .collect()
    })
}

/// Run `steps` on every lane in parallel.
pub fn run_all(lanes: &mut [Lane], scenario: u16, steps: &[Step]) -> Vec<Vec<StepResult>> {
    std::thread::scope(|s| {
        let handles: Vec<_> = lanes
            .iter_mut()
            .map(|lane| s.spawn(move || lane.run_steps(scenario, steps)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_default())
            .collect()
    })
}

/// A client's MAC as text.
pub fn client_mac(cl: &Client, scenario: u16) -> String {
    dhcpair_e2e::mac_string(&cl.mac(scenario))
}
