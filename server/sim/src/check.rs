//! The invariants: what failover must guarantee, checked after every step of the world.
//!
//! **Clock slack.** Draft-12 and ISC exchange absolute times on the sender's clock and never
//! correct for skew (reference §0 fact 8, §4.3). A server that reads a partner's `ends` on its
//! own clock is off by exactly the clocks' disagreement, so every "has this lease ended?"
//! below allows the relative skew of the two servers (the CONNECT check bounds it by 60 s)
//! plus 2 s for the engine's whole-second clock, on top of which the statements are exact.
//! A client measures its lease from when it sent the REQUEST (RFC 2131 §4.4.1), which is
//! never later than the server's own record, so a client's view needs no other allowance.
//!
//! 1. **Clients** (must hold without exception): no two clients hold an unexpired ACK for the
//!    same address at the same time.
//! 2. **Servers**: take each server's table — its memory if it is up, its disk if it is down
//!    (what it will come back with). An address is *live* on a server when its row is ACTIVE
//!    and ends more than the slack after that server's clock. No address is live on both
//!    servers for different clients. No MCLT exception is needed for this form: a server
//!    hands a new client only an address in its own free state, which the partner holds as
//!    FREE/BACKUP (not ACTIVE), so the only way to take an address the partner may still
//!    hold ACTIVE is the PARTNER-DOWN takeover, allowed once `max(stos, tsfp) + MCLT` has
//!    passed; by the MCLT rule every lease the down partner granted ends by then, so its
//!    stale ACTIVE row is no longer live. The MCLT rule makes the takeover safe; the check
//!    sees no window at all (a stale row that outlives that bound *is* a duplicate).
//! 3. **MCLT** (draft-12 §5.2.1, reference §4.4): an ACK from a failover pool gives
//!    `ends - now <= max(mclt, tsfp - now + mclt)`, `tsfp` read from the ACKing server just
//!    before the request.
//! 4. **Durability**: right after a group commit, with nothing pending, a server's lease
//!    table and relationship state equal its disk. Anything else is a change a crash would
//!    silently undo after the partner or a client may have been told about it.
//! 5. **Liveness** (in `world.rs`): once every fault has healed, both servers are NORMAL
//!    within two MCLTs plus five minutes and stay there, and from then on a client that
//!    keeps renewing is never NAKed for its unexpired lease and never loses it.

use std::net::Ipv4Addr;

use dhcpair_engine::{BindingState, ClientKey, Lease, Time};

use crate::world::{Side, World, POOL_START};

impl World {
    /// Seconds of clock disagreement allowed (see the module docs).
    fn slack_secs(&self) -> u64 {
        self.sc.relative_skew() + 2
    }

    /// Invariant 1, after client `c` got an ACK (holdings only begin at ACKs, and time only
    /// ends them, so checking here is checking after every step).
    pub(crate) fn check_new_holding(&mut self, c: usize) {
        let horizon = self.now + self.slack_secs() * 1000;
        let Some(b) = self.clients[c].holds(horizon) else {
            return;
        };
        for (j, other) in self.clients.iter().enumerate() {
            if j == c {
                continue;
            }
            if let Some(ob) = other.holds(horizon).filter(|ob| ob.ip == b.ip) {
                self.failure = Some(format!(
                    "duplicate address: clients {j} and {c} both hold {}: client {j} until {:.3}s (ACK at {:.3}s from {}), client {c} until {:.3}s (ACK from {})",
                    b.ip,
                    ob.ends_ms as f64 / 1000.0,
                    ob.acked_ms as f64 / 1000.0,
                    ob.server,
                    b.ends_ms as f64 / 1000.0,
                    b.server,
                ));
                return;
            }
        }
    }

    fn row(&self, side: Side, ip: Ipv4Addr) -> Option<&Lease> {
        let s = &self.servers[side.i()];
        match &s.engine {
            Some(e) => e.lease(ip),
            None => s.disk.leases.get(&ip),
        }
    }

    fn live_holder(&self, side: Side, ip: Ipv4Addr) -> Option<(&ClientKey, Time)> {
        let now = self.clock(side);
        let l = self.row(side, ip)?;
        let live = l.state == BindingState::Active && l.ends > now + self.slack_secs();
        live.then_some(())
            .and(l.client.as_ref().map(|c| (c, l.ends)))
    }

    /// Invariant 2, after any step that changed a lease table (time alone only ends leases).
    pub(crate) fn check_tables(&mut self) {
        for k in 0..self.sc.pool_size {
            let ip = Ipv4Addr::from(u32::from(POOL_START) + k);
            if let (Some((a, ea)), Some((b, eb))) = (
                self.live_holder(Side::Primary, ip),
                self.live_holder(Side::Secondary, ip),
            ) {
                if a != b {
                    self.failure = Some(format!(
                        "duplicate binding: {ip} is ACTIVE on P for {a:?} until {:+} (P's clock {:+}) and on S for {b:?} until {:+} (S's clock {:+})",
                        ea as i64 - crate::world::T0 as i64,
                        self.clock(Side::Primary) as i64 - crate::world::T0 as i64,
                        eb as i64 - crate::world::T0 as i64,
                        self.clock(Side::Secondary) as i64 - crate::world::T0 as i64,
                    ));
                    return;
                }
            }
        }
    }

    /// Invariant 3, for one ACK decided by `side` at `now` (its clock).
    pub(crate) fn check_mclt(
        &mut self,
        side: Side,
        now: Time,
        lease: Option<&Lease>,
        before: Option<&Lease>,
        asked: Option<Ipv4Addr>,
    ) {
        let Some(l) = lease else {
            self.failure = Some(format!("{side} ACKed without a lease to persist"));
            return;
        };
        if asked != Some(l.ip) {
            self.failure = Some(format!(
                "{side} ACKed {} but the client asked for {asked:?}",
                l.ip
            ));
            return;
        }
        self.report.acks[side.i()] += 1;
        // The partner's free state: FREE (or never used) is the primary's, BACKUP the secondary's.
        let peer_free = matches!(
            (side, before.map(|b| b.state)),
            (Side::Primary, Some(BindingState::Backup))
                | (Side::Secondary, Some(BindingState::Free) | None)
        );
        if peer_free {
            self.report.takeover_acks[side.i()] += 1;
        }
        let mclt = i64::from(self.sc.mclt);
        let tsfp = before.map_or(0, |b| b.tsfp) as i64;
        let now = now as i64;
        let given = l.ends as i64 - now;
        let bound = mclt.max(tsfp - now + mclt);
        if given > bound {
            self.failure = Some(format!(
                "MCLT rule: {side} ACKed {} for {given} s at {:+}, but tsfp was {:+} and MCLT {mclt}, so at most {bound} s",
                l.ip,
                now - crate::world::T0 as i64,
                tsfp - crate::world::T0 as i64,
            ));
        }
    }

    /// Invariant 4, right after `side` applied a commit.
    pub(crate) fn check_durable(&mut self, side: Side) {
        let s = &self.servers[side.i()];
        let Some(e) = &s.engine else { return };
        let mut rows = 0;
        for l in e.leases() {
            rows += 1;
            if s.disk.leases.get(&l.ip) != Some(l) {
                self.failure = Some(format!(
                    "durability: after a commit {side} holds {l:?} in memory but {:?} on disk",
                    s.disk.leases.get(&l.ip)
                ));
                return;
            }
        }
        if rows != s.disk.leases.len() {
            self.failure = Some(format!(
                "durability: {side} has {rows} rows in memory, {} on disk",
                s.disk.leases.len()
            ));
            return;
        }
        if let Some(r) = e.relationships().first() {
            let disk = s
                .disk
                .rel
                .as_ref()
                .map(|d| (d.my_state, d.partner_state, d.stos, d.mclt));
            let mem = Some((
                r.my_state.to_wire(),
                r.partner_state.to_wire(),
                r.my_stos,
                r.mclt,
            ));
            if disk != mem {
                self.failure = Some(format!(
                    "durability: after a commit {side}'s relationship is (state, partner, stos, mclt) {mem:?} in memory but {disk:?} on disk"
                ));
            }
        }
    }

    /// Invariant 5 for clients: only judged once the pair has settled (plus a minute for a
    /// client to retransmit into the healed pair).
    pub(crate) fn check_client_liveness(&mut self, c: usize, what: &str) {
        if self.settled_at.is_some_and(|t| self.now >= t + 60_000) {
            self.failure = Some(format!(
                "liveness: client {c} {what} after the pair settled: {}",
                self.states()
            ));
        }
    }
}
