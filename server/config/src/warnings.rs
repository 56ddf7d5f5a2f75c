//! Warnings about a valid [`Config`] that does not do what it looks like: nothing here is an
//! error (the server runs such a config as written), but `dhcpair check` says so.

use std::fmt;

use crate::{Config, Permit, Role};

/// One warning: the field it is about (as in [`crate::ConfigError::Invalid`]) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    pub field: String,
    pub message: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

const OFF: &str = "load balancing is off (loadBalanceMaxSeconds 0)";
/// What ISC's dhcpd.conf(5) recommends for `load balance max seconds`.
const ADVICE: &str = "set it to 3 to 5 on both servers, as ISC advises";

/// The warnings of a validated config, in file order.
///
/// - A failover peer with `loadBalanceMaxSeconds` 0 (ISC's default): load balancing is off, so
///   the server answers every client whatever the split; split 256 is then not hot standby.
///   Said of the secondary too: its own setting decides whether it defers to the primary's
///   split, which makes it the member hot standby depends on.
/// - A failover pool that allows `dynamicBootpClients`: dynamic BOOTP is never served from a
///   failover pool (the engine refuses it), so the permit does nothing there. (ISC dhcpd 3.0
///   refused such a pool outright; 3.1 and later serve dynamic BOOTP through failover.)
pub fn warnings(config: &Config) -> Vec<Warning> {
    let mut out = Vec::new();
    for (i, p) in config.peers.iter().enumerate() {
        if p.load_balance_max_seconds != 0 {
            continue;
        }
        let message = match (p.role, p.hba) {
            (Role::Primary, Some(hba)) if hba == [0xff; 32] => format!(
                "{OFF}: both servers answer every client, so split 256 is not hot standby (the \
                 secondary answers too, from its backup addresses); {ADVICE}"
            ),
            (Role::Primary, _) => format!(
                "{OFF}: both servers answer every client and the split (or hba) decides \
                 nothing; {ADVICE}"
            ),
            (Role::Secondary, _) => format!(
                "{OFF}: this server answers every client whatever split the primary sets (so \
                 split 256 is not hot standby); {ADVICE}"
            ),
        };
        out.push(Warning {
            field: format!("peers[{i}].loadBalanceMaxSeconds"),
            message,
        });
    }
    for (i, pool) in config.pools.iter().enumerate() {
        if pool.failover_peer.is_none() || pool.permits.deny.contains(&Permit::DynamicBootpClients)
        {
            continue;
        }
        if let Some(j) = pool
            .permits
            .allow
            .iter()
            .position(|p| *p == Permit::DynamicBootpClients)
        {
            out.push(Warning {
                field: format!("pools[{i}].allow[{j}]"),
                message: "dynamic BOOTP is never served from a failover pool (a BOOTP lease \
                          never ends, and the MCLT rule cannot replicate an infinite lease \
                          safely); reservations still serve BOOTP clients"
                    .to_string(),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A valid config with one primary (`peer` appended to its entry) and one failover pool
    /// (`pool` appended to its entry).
    fn config(role: &str, peer: &str, pool: &str) -> Config {
        let primary_only = if role == "primary" {
            ", mclt: 300, split: 128"
        } else {
            ""
        };
        let text = format!(
            "server: {{interfaces: [eth1], dataDir: /tmp/x}}
peers:
  - {{name: pair, role: {role}, address: 10.0.0.2, peerAddress: 10.0.0.3{primary_only}{peer}}}
pools:
  - name: lan
    subnet: 10.0.0.0/24
    ranges: [{{start: 10.0.0.100, end: 10.0.0.199}}]
    failoverPeer: pair
{pool}"
        );
        match Config::from_yaml("t", &text) {
            Ok(c) => c,
            Err(e) => panic!("{e}\n{text}"),
        }
    }

    fn fields(c: &Config) -> Vec<String> {
        warnings(c).into_iter().map(|w| w.field).collect()
    }

    #[test]
    fn load_balancing_on_with_permits_that_do_what_they_say_gives_no_warning() {
        let c = config(
            "primary",
            ", loadBalanceMaxSeconds: 3",
            "    deny: [dynamicBootpClients]\n",
        );
        assert_eq!(warnings(&c), []);
        let c = config("secondary", ", loadBalanceMaxSeconds: 5", "");
        assert_eq!(warnings(&c), []);
    }

    #[test]
    fn a_primary_with_load_balance_max_seconds_0_is_warned_that_both_servers_answer_every_client() {
        for lbms in ["", ", loadBalanceMaxSeconds: 0"] {
            let w = warnings(&config("primary", lbms, ""));
            assert_eq!(w.len(), 1, "{w:?}");
            assert_eq!(w[0].field, "peers[0].loadBalanceMaxSeconds");
            assert!(
                w[0].message.starts_with(
                    "load balancing is off (loadBalanceMaxSeconds 0): both servers answer every client"
                ),
                "{}",
                w[0].message
            );
            assert!(w[0].message.contains("the split (or hba) decides nothing"));
        }
        // Any other bucket assignment (alternate buckets, split 0: every bucket the
        // secondary's): the same.
        for hba in [[0x55; 32], [0; 32]] {
            let mut c = config("primary", "", "");
            c.peers[0].hba = Some(hba);
            assert_eq!(fields(&c), ["peers[0].loadBalanceMaxSeconds"]);
            assert!(warnings(&c)[0].message.contains("decides nothing"));
        }
    }

    #[test]
    fn split_256_with_load_balance_max_seconds_0_is_warned_that_it_is_not_hot_standby() {
        let mut c = config("primary", "", "");
        c.peers[0].hba = Some([0xff; 32]);
        let w = warnings(&c);
        assert_eq!(w.len(), 1, "{w:?}");
        assert_eq!(
            w[0].to_string(),
            "peers[0].loadBalanceMaxSeconds: load balancing is off (loadBalanceMaxSeconds 0): \
             both servers answer every client, so split 256 is not hot standby (the secondary \
             answers too, from its backup addresses); set it to 3 to 5 on both servers, as ISC \
             advises"
        );
        c.peers[0].load_balance_max_seconds = 3;
        assert_eq!(warnings(&c), []);
    }

    #[test]
    fn a_secondary_with_load_balance_max_seconds_0_is_warned_too() {
        let w = warnings(&config("secondary", "", ""));
        assert_eq!(w.len(), 1, "{w:?}");
        assert_eq!(w[0].field, "peers[0].loadBalanceMaxSeconds");
        assert!(w[0].message.starts_with(
            "load balancing is off (loadBalanceMaxSeconds 0): this server answers every client"
        ));
    }

    #[test]
    fn a_failover_pool_that_allows_dynamic_bootp_is_warned_that_it_is_never_served() {
        let c = config(
            "primary",
            ", loadBalanceMaxSeconds: 3",
            "    allow: [knownClients, dynamicBootpClients]\n",
        );
        let w = warnings(&c);
        assert_eq!(w.len(), 1, "{w:?}");
        assert_eq!(w[0].field, "pools[0].allow[1]");
        assert!(w[0]
            .message
            .starts_with("dynamic BOOTP is never served from a failover pool"));
        assert!(w[0]
            .message
            .contains("reservations still serve BOOTP clients"));
    }

    #[test]
    fn dynamic_bootp_outside_failover_or_denied_as_well_gives_no_warning() {
        let mut c = config(
            "primary",
            ", loadBalanceMaxSeconds: 3",
            "    allow: [dynamicBootpClients]\n",
        );
        c.pools[0].failover_peer = None;
        assert_eq!(warnings(&c), []);
        let c = config(
            "primary",
            ", loadBalanceMaxSeconds: 3",
            "    allow: [dynamicBootpClients]\n    deny: [dynamicBootpClients]\n",
        );
        assert_eq!(warnings(&c), []);
    }

    #[test]
    fn warnings_come_in_file_order_peers_first() {
        let c = config("primary", "", "    allow: [dynamicBootpClients]\n");
        assert_eq!(
            fields(&c),
            ["peers[0].loadBalanceMaxSeconds", "pools[0].allow[0]"]
        );
    }
}
