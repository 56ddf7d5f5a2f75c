//! The property: for random sequences of client actions (a seeded RNG; fixed seed by default,
//! bounded count), dhcpair and Kea agree on whether each packet is answered and with which
//! message type, except where an intended divergence (scenario `property/<action>`, field
//! `reply`) says otherwise.
//!
//! The action list is drawn once per sequence; each server then plays it with its own view of
//! the world ("REQUEST the address *you* offered me"), so different allocation orders do not
//! make the servers look different.

use std::net::Ipv4Addr;

use crate::compare::{Row, Verdict};
use crate::divergences;
use crate::lane::{Lane, StepResult};
use crate::packet::type_name;
use crate::scenario::{self, Client, Id, Pkt, Via, A};
use crate::spec::{Spec, Topology};

/// splitmix64: small, seedable, good enough to draw actions.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

pub const CLIENTS: u8 = 6;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Discover(u8),
    Select(u8),
    InitReboot(u8),
    /// INIT-REBOOT for the address another client holds.
    InitRebootOther(u8, u8),
    Renew(u8),
    Rebind(u8),
    Release(u8),
    Decline(u8),
    Inform(u8),
    /// INIT-REBOOT for an address of no configured subnet.
    InitRebootForeign(u8),
    /// INFORM from 0.0.0.0 without ciaddr.
    InformNoCiaddr(u8),
}

impl Action {
    pub fn name(self) -> &'static str {
        match self {
            Action::Discover(_) => "discover",
            Action::Select(_) => "select",
            Action::InitReboot(_) => "init-reboot",
            Action::InitRebootOther(..) => "init-reboot-other",
            Action::Renew(_) => "renew",
            Action::Rebind(_) => "rebind",
            Action::Release(_) => "release",
            Action::Decline(_) => "decline",
            Action::Inform(_) => "inform",
            Action::InitRebootForeign(_) => "init-reboot-foreign",
            Action::InformNoCiaddr(_) => "inform-no-ciaddr",
        }
    }

    fn client(self) -> u8 {
        match self {
            Action::Discover(c)
            | Action::Select(c)
            | Action::InitReboot(c)
            | Action::InitRebootOther(c, _)
            | Action::Renew(c)
            | Action::Rebind(c)
            | Action::Release(c)
            | Action::Decline(c)
            | Action::Inform(c)
            | Action::InitRebootForeign(c)
            | Action::InformNoCiaddr(c) => c,
        }
    }
}

/// What the generator believes a client is doing (assuming the server said yes), so that
/// most drawn actions are ones a real client in that state could send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Believed {
    Idle,
    Offered,
    Bound,
}

/// Draw `n` actions. Declines are capped (each takes an address out of the pool).
pub fn draw(rng: &mut Rng, n: usize) -> Vec<Action> {
    let mut out = Vec::with_capacity(n);
    let mut declines = 0;
    let mut st = [Believed::Idle; CLIENTS as usize];
    while out.len() < n {
        let c = rng.below(u64::from(CLIENTS)) as u8;
        let other = (c + 1 + rng.below(u64::from(CLIENTS) - 1) as u8) % CLIENTS;
        let r = rng.below(20);
        // One draw in eight is a client out of step with the protocol, whatever its state.
        let a = if rng.below(8) == 0 {
            match rng.below(4) {
                0 => Action::InformNoCiaddr(c),
                1 => Action::InitRebootForeign(c),
                2 => Action::InitRebootOther(c, other),
                _ => Action::Inform(c),
            }
        } else {
            match st[c as usize] {
                Believed::Idle => match r {
                    0..=11 => Action::Discover(c),
                    12 | 13 => Action::InitRebootOther(c, other),
                    14 => Action::InitRebootForeign(c),
                    15 => Action::InformNoCiaddr(c),
                    16 => Action::Inform(c),
                    _ => Action::Select(c),
                },
                Believed::Offered => match r {
                    0..=14 => Action::Select(c),
                    15..=17 => Action::Discover(c),
                    _ => Action::InitRebootOther(c, other),
                },
                Believed::Bound => match r {
                    0..=3 => Action::Renew(c),
                    4 | 5 => Action::Rebind(c),
                    6..=8 => Action::InitReboot(c),
                    9 | 10 => Action::Inform(c),
                    11 | 12 => Action::Discover(c),
                    13 | 14 => Action::Release(c),
                    15 if declines < 2 => {
                        declines += 1;
                        Action::Decline(c)
                    }
                    16 => Action::InitRebootOther(c, other),
                    _ => Action::Renew(c),
                },
            }
        };
        st[c as usize] = match a {
            Action::Discover(_) => Believed::Offered,
            Action::Select(_) if st[c as usize] == Believed::Offered => Believed::Bound,
            Action::Release(_) | Action::Decline(_) => Believed::Idle,
            _ => st[c as usize],
        };
        out.push(a);
    }
    out
}

fn client(c: u8) -> Client {
    // Half the clients send option 61.
    Client {
        n: c,
        id: if c % 2 == 0 { Id::Mac } else { Id::None },
    }
}

/// One server's view while it plays a sequence.
#[derive(Debug, Default, Clone)]
struct View {
    offered: [Option<Ipv4Addr>; CLIENTS as usize],
    bound: [Option<Ipv4Addr>; CLIENTS as usize],
}

fn packet(a: Action, v: &View) -> Option<Pkt> {
    let ip = |x: Option<Ipv4Addr>| x.map(A::Ip);
    Some(match a {
        Action::Discover(c) => scenario::discover(client(c)),
        Action::Select(c) => Pkt::new("REQUEST(selecting)", client(c), Some(3))
            .server_id(A::Server)
            .requested(ip(v.offered[c as usize])?)
            .prl(scenario::PRL),
        Action::InitReboot(c) => scenario::init_reboot(client(c), ip(v.bound[c as usize])?),
        Action::InitRebootOther(c, d) => scenario::init_reboot(client(c), ip(v.bound[d as usize])?),
        Action::Renew(c) => scenario::renew(client(c), ip(v.bound[c as usize])?),
        Action::Rebind(c) => scenario::rebind(client(c), ip(v.bound[c as usize])?),
        Action::Release(c) => scenario::release(client(c), ip(v.bound[c as usize])?),
        Action::Decline(c) => scenario::decline(client(c), ip(v.bound[c as usize])?),
        Action::InitRebootForeign(c) => {
            scenario::init_reboot(client(c), A::Ip(Topology::foreign(c + 1)))
        }
        Action::InformNoCiaddr(c) => scenario::inform(client(c), A::Zero),
        Action::Inform(c) => match v.bound[c as usize] {
            Some(b) => scenario::inform(client(c), A::Ip(b)),
            None => scenario::inform(client(c), A::Ip(Topology::lan(230 + c))).via(Via::Unicast),
        },
    })
}

fn update(v: &mut View, a: Action, r: &StepResult) {
    let c = a.client() as usize;
    let first = match r {
        StepResult::Sent { replies, .. } => replies.first(),
        _ => None,
    };
    let kind = first.and_then(|r| r.msg_type());
    match (a, kind) {
        (Action::Discover(_), Some(2)) => v.offered[c] = first.map(|r| r.yiaddr),
        (Action::Discover(_), _) => v.offered[c] = None,
        (Action::Inform(_) | Action::InformNoCiaddr(_), _) => {}
        (Action::Release(_) | Action::Decline(_), _) => {
            v.bound[c] = None;
            v.offered[c] = None;
        }
        (_, Some(5)) => {
            v.bound[c] = first.map(|r| r.yiaddr).filter(|y| !y.is_unspecified());
            v.offered[c] = None;
        }
        (_, Some(6)) => {
            v.bound[c] = None;
            v.offered[c] = None;
        }
        _ => {}
    }
}

fn play(lane: &mut Lane, seq: u16, actions: &[Action]) -> Vec<Option<StepResult>> {
    let mut view = View::default();
    let mut out = Vec::with_capacity(actions.len());
    for (i, a) in actions.iter().enumerate() {
        let Some(p) = packet(*a, &view) else {
            out.push(None);
            continue;
        };
        let r = lane.exchange(seq, xid(seq, i), &p, &[]);
        update(&mut view, *a, &r);
        out.push(Some(r));
        // Replies after their window belong to their packet (and are noted).
        for late in std::mem::take(&mut lane.ep.stray) {
            let Some(j) = (0..out.len()).find(|j| xid(seq, *j) == late.xid) else {
                continue;
            };
            if let Some(Some(StepResult::Sent { replies, .. })) = out.get_mut(j) {
                lane.late
                    .push(format!("{} to packet {} came late", late.kind(), j + 1));
                replies.push(late);
            }
        }
    }
    out
}

fn xid(seq: u16, i: usize) -> u32 {
    0x5000_0000 | (u32::from(seq & 0x0fff) << 12) | (i as u32 & 0xfff)
}

fn outcome(r: &Option<StepResult>) -> Option<String> {
    match r {
        Some(StepResult::Sent { replies, .. }) => Some(
            replies
                .first()
                .and_then(|x| x.msg_type())
                .map_or_else(|| "no reply".to_string(), type_name),
        ),
        _ => None,
    }
}

#[derive(Debug, Default)]
pub struct PropertyResult {
    pub sequences: usize,
    pub packets: usize,
    /// Packets both servers could send (each had the address the action needs).
    pub compared: usize,
    pub rows: Vec<Row>,
    pub errors: Vec<String>,
    /// Late replies (attached to their packet; not failures).
    pub notes: Vec<String>,
}

impl PropertyResult {
    pub fn failed(&self) -> bool {
        !self.errors.is_empty() || self.rows.iter().any(|r| r.verdict.is_failure())
    }
}

/// The spec the property runs on: the base config with 20 addresses (6 clients, at most 2
/// declines: the pool never runs out, so offer holding cannot matter).
pub fn spec() -> Spec {
    Spec::base().with_lan_range(20)
}

/// Play `sequences` sequences of `steps` actions from `seed` on dhcpair and Kea (`lanes`
/// must be exactly those two, in that order).
pub fn run(lanes: &mut [Lane], seed: u64, sequences: usize, steps: usize) -> PropertyResult {
    let mut res = PropertyResult::default();
    let mut rng = Rng::new(seed);
    for s in 0..sequences {
        let seq = 0xf000u16 | (s as u16 & 0x0fff);
        let actions = draw(&mut rng, steps);
        for r in crate::lane::start_all(lanes, &spec()) {
            if let Err(e) = r {
                res.errors.push(format!("sequence {s}: start: {e:#}"));
            }
        }
        if !res.errors.is_empty() {
            return res;
        }
        let played: Vec<Vec<Option<StepResult>>> = std::thread::scope(|sc| {
            let hs: Vec<_> = lanes
                .iter_mut()
                .map(|lane| {
                    let actions = &actions;
                    sc.spawn(move || play(lane, seq, actions))
                })
                .collect();
            hs.into_iter()
                .map(|h| h.join().unwrap_or_default())
                .collect()
        });
        res.sequences += 1;
        for (i, a) in actions.iter().enumerate() {
            res.packets += 1;
            let d = played.first().and_then(|p| p.get(i)).and_then(outcome);
            let k = played.get(1).and_then(|p| p.get(i)).and_then(outcome);
            let (Some(d), Some(k)) = (d, k) else { continue };
            res.compared += 1;
            if d == k {
                continue;
            }
            let scenario = format!("property/{}", a.name());
            let verdict = match divergences::lookup(&scenario, "reply", &d, &k) {
                Some(id) => Verdict::Intended(id),
                None => Verdict::Fail,
            };
            res.rows.push(Row {
                scenario,
                step: format!("seed {seed:#x} seq {s} #{} {a:?}", i + 1),
                field: "reply".into(),
                values: [d, k, "(not run)".into()],
                verdict,
            });
        }
        for lane in lanes.iter_mut() {
            for l in std::mem::take(&mut lane.late) {
                res.errors.push(format!(
                    "sequence {s}: {}: late reply: {l}",
                    lane.kind.name()
                ));
            }
            if !lane.alive() {
                res.errors
                    .push(format!("sequence {s}: {} died", lane.kind.name()));
            }
        }
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_draws_the_same_actions() {
        let a = draw(&mut Rng::new(7), 50);
        let b = draw(&mut Rng::new(7), 50);
        assert_eq!(a, b);
        assert!(a.iter().filter(|x| matches!(x, Action::Decline(_))).count() <= 2);
    }
}
