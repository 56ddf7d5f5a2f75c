//! The server-state reactions of ISC dhcpd 4.4 (reference §5.2), as pure functions.

use dhcpair_wire::failover::ServerState as S;

/// What to do when the partner reports a state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reaction {
    Stay,
    MoveTo(S),
    /// Ask the partner for every binding (we lost ours).
    RequestAll,
    /// Ask the partner for the bindings it has not sent yet.
    Request,
    /// Send what is queued; then NORMAL.
    SyncThenNormal,
}

/// `me` is our state (the saved one while in STARTUP), `peer` what the partner reports.
/// `peer_startup`: the STARTUP flag on the partner's STATE. `primary`: our role.
pub(crate) fn on_peer_state(
    me: S,
    peer: S,
    peer_startup: bool,
    was_startup: bool,
    primary: bool,
) -> Reaction {
    use Reaction::*;
    match me {
        S::Normal => match peer {
            S::Normal => Stay,
            S::PartnerDown if was_startup => MoveTo(S::Recover),
            S::PartnerDown => MoveTo(S::PotentialConflict),
            // ISC moves itself to SHUTDOWN here; a peer in conflict resolution while we
            // were NORMAL means something is badly wrong. We stop serving the same way.
            S::PotentialConflict | S::ResolutionInterrupted | S::ConflictDone => {
                MoveTo(S::Shutdown)
            }
            S::Recover | S::Shutdown => MoveTo(S::PartnerDown),
            S::Paused => MoveTo(S::CommunicationsInterrupted),
            _ => Stay,
        },
        S::Recover => match peer {
            // ISC also moves to POTENTIAL-CONFLICT when the partner says NORMAL; draft-12
            // §9.5.2 does not, and the simulator showed why: an amnesic server would skip
            // RECOVER-WAIT. We ask for everything and wait (the partner moves to PARTNER-DOWN
            // when it sees our RECOVER).
            S::Recover | S::PartnerDown | S::CommunicationsInterrupted | S::Normal => RequestAll,
            S::PotentialConflict | S::ResolutionInterrupted | S::ConflictDone => {
                MoveTo(S::PotentialConflict)
            }
            S::Shutdown => MoveTo(S::PartnerDown),
            _ => Stay,
        },
        S::PotentialConflict => match peer {
            S::Normal => MoveTo(S::Shutdown),
            S::ConflictDone if !primary => Request,
            S::Recover => MoveTo(S::Recover),
            S::Shutdown => MoveTo(S::PartnerDown),
            _ => Stay,
        },
        S::ConflictDone => match peer {
            S::Normal => MoveTo(S::Normal),
            S::Shutdown => MoveTo(S::Shutdown),
            // ISC exits here (log_fatal); we stay and keep not serving.
            _ => Stay,
        },
        S::PartnerDown => {
            if peer_startup {
                return Stay;
            }
            match peer {
                S::Recover | S::RecoverWait => Stay,
                // Our updates made while the partner was away go first (see SyncThenNormal).
                S::RecoverDone => SyncThenNormal,
                S::Normal
                | S::PotentialConflict
                | S::PartnerDown
                | S::CommunicationsInterrupted
                | S::ResolutionInterrupted
                | S::ConflictDone => MoveTo(S::PotentialConflict),
                _ => Stay,
            }
        }
        S::CommunicationsInterrupted => match peer {
            S::Recover => MoveTo(S::PartnerDown),
            S::Normal | S::CommunicationsInterrupted | S::RecoverDone | S::RecoverWait => {
                SyncThenNormal
            }
            S::PotentialConflict | S::PartnerDown | S::ResolutionInterrupted | S::ConflictDone => {
                MoveTo(S::PotentialConflict)
            }
            S::Shutdown => MoveTo(S::PartnerDown),
            _ => Stay,
        },
        S::ResolutionInterrupted => match peer {
            S::Shutdown => MoveTo(S::PartnerDown),
            S::Paused | S::Unknown | S::Startup => Stay,
            _ => MoveTo(S::PotentialConflict),
        },
        S::RecoverDone => match peer {
            S::Normal | S::RecoverDone => MoveTo(S::Normal),
            S::Shutdown => MoveTo(S::PartnerDown),
            _ => Stay,
        },
        // RECOVER-WAIT waits for its timer; SHUTDOWN, PAUSED and unknown never move by themselves.
        _ => Stay,
    }
}

/// Communications failure (TCP loss or receive timeout), reference §5.2.
pub(crate) fn on_comm_failure(me: S) -> S {
    match me {
        S::Normal => S::CommunicationsInterrupted,
        S::PotentialConflict | S::Unknown => S::ResolutionInterrupted,
        other => other,
    }
}

/// Does a server in `me`, whose partner is in `peer`, answer DHCP clients? (reference §5.1)
pub(crate) fn responds(me: S, peer: S) -> bool {
    let mine = matches!(
        me,
        S::Normal | S::CommunicationsInterrupted | S::PartnerDown
    );
    let silenced = matches!(
        peer,
        S::PartnerDown | S::PotentialConflict | S::ConflictDone | S::ResolutionInterrupted
    ) && me != S::PartnerDown;
    mine && !silenced
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [S; 13] = [
        S::Unknown,
        S::Startup,
        S::Normal,
        S::CommunicationsInterrupted,
        S::PartnerDown,
        S::PotentialConflict,
        S::Recover,
        S::Paused,
        S::Shutdown,
        S::RecoverDone,
        S::ResolutionInterrupted,
        S::ConflictDone,
        S::RecoverWait,
    ];

    #[test]
    fn every_state_pair_has_a_reaction_and_none_moves_to_startup_or_unknown() {
        for me in ALL {
            for peer in ALL {
                for flags in [(false, false, true), (true, true, false)] {
                    if let Reaction::MoveTo(to) = on_peer_state(me, peer, flags.0, flags.1, flags.2)
                    {
                        assert!(
                            !matches!(to, S::Startup | S::Unknown | S::RecoverWait),
                            "{me:?}+{peer:?} -> {to:?}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn a_fresh_pair_both_in_recover_asks_each_other_for_everything() {
        assert_eq!(
            on_peer_state(S::Recover, S::Recover, true, true, true),
            Reaction::RequestAll
        );
    }

    #[test]
    fn an_amnesic_peer_moves_a_communications_interrupted_server_to_partner_down() {
        assert_eq!(
            on_peer_state(
                S::CommunicationsInterrupted,
                S::Recover,
                false,
                false,
                false
            ),
            Reaction::MoveTo(S::PartnerDown)
        );
    }

    #[test]
    fn partner_down_returns_to_normal_when_the_peer_has_recovered() {
        assert_eq!(
            on_peer_state(S::PartnerDown, S::RecoverDone, false, false, true),
            Reaction::SyncThenNormal
        );
        assert_eq!(
            on_peer_state(S::PartnerDown, S::Recover, true, false, true),
            Reaction::Stay
        );
    }

    #[test]
    fn only_normal_interrupted_and_partner_down_serve_and_a_conflicting_peer_silences() {
        assert!(responds(S::Normal, S::Normal));
        assert!(responds(S::CommunicationsInterrupted, S::Unknown));
        assert!(responds(S::PartnerDown, S::Recover));
        assert!(!responds(S::Normal, S::PartnerDown));
        for me in [
            S::Recover,
            S::RecoverWait,
            S::RecoverDone,
            S::PotentialConflict,
            S::Startup,
            S::Shutdown,
            S::Paused,
        ] {
            assert!(!responds(me, S::Normal), "{me:?}");
        }
    }

    #[test]
    fn losing_the_link_interrupts_normal_and_conflict_resolution_only() {
        assert_eq!(on_comm_failure(S::Normal), S::CommunicationsInterrupted);
        assert_eq!(
            on_comm_failure(S::PotentialConflict),
            S::ResolutionInterrupted
        );
        assert_eq!(on_comm_failure(S::Recover), S::Recover);
        assert_eq!(on_comm_failure(S::PartnerDown), S::PartnerDown);
    }
}
