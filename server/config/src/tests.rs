use super::*;

const GOOD: &str = r#"
server: {interfaces: [eth1], dataDir: /tmp/x, http: "127.0.0.1:9167", serverId: 10.0.0.2}
peers: []
pools:
  - name: lan
    subnet: 10.0.0.0/24
    ranges: [{start: 10.0.0.100, end: 10.0.0.199}]
    options: {routers: [10.0.0.1], domainNameServers: [10.0.0.53], domainName: example.org}
    defaultLeaseTime: 3600
    maxLeaseTime: 86400
    deny: [dynamicBootpClients]
    reservations: [{hardwareAddress: "52:54:00:12:34:56", ipAddress: 10.0.0.10}]
"#;

fn err_of(text: &str) -> String {
    match Config::from_yaml("test.yaml", text) {
        Ok(_) => panic!("config was accepted:\n{text}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn the_issue_sketch_parses_with_its_values() {
    let c = Config::from_yaml("test.yaml", GOOD).unwrap();
    assert_eq!(c.server.interfaces, vec!["eth1"]);
    assert_eq!(c.server.port, 67);
    let p = &c.pools[0];
    assert_eq!(p.size(), 100);
    assert_eq!(
        p.lease_times,
        LeaseTimes {
            default: 3600,
            min: 0,
            max: 86400
        }
    );
    assert_eq!(
        p.options.subnet_mask,
        Some("255.255.255.0".parse().unwrap())
    );
    assert_eq!(p.options.domain_name.as_deref(), Some("example.org"));
    assert!(!p.permits.permits(ClientFacts {
        known: false,
        bootp: true
    }));
    assert!(p.permits.permits(ClientFacts {
        known: false,
        bootp: false
    }));
    assert_eq!(
        p.reservations[0].key,
        ReservationKey::HardwareAddress([0x52, 0x54, 0, 0x12, 0x34, 0x56])
    );
}

#[test]
fn unknown_keys_are_refused_with_their_position() {
    let e = err_of(&GOOD.replace("maxLeaseTime", "maxLeaseTim"));
    assert!(
        e.contains("test.yaml") && e.contains("unknown field `maxLeaseTim`") && e.contains("line"),
        "{e}"
    );
}

#[test]
fn a_range_outside_its_subnet_is_refused_by_field() {
    let e = err_of(&GOOD.replace("end: 10.0.0.199", "end: 10.0.1.5"));
    assert_eq!(
        e,
        "test.yaml: pools[0].ranges[0].end: 10.0.1.5 is outside subnet 10.0.0.0/24"
    );
}

#[test]
fn overlapping_ranges_across_pools_are_refused() {
    let text = format!("{GOOD}  - name: two\n    subnet: 10.0.0.0/24\n    ranges: [{{start: 10.0.0.150, end: 10.0.0.160}}]\n");
    let e = err_of(&text);
    assert!(
        e.contains("pools[1].ranges[0]: 10.0.0.150-10.0.0.160 overlaps pools[0].ranges[0]"),
        "{e}"
    );
}

#[test]
fn duplicate_reservations_are_refused() {
    let text = GOOD.replace(
        "ipAddress: 10.0.0.10}]",
        "ipAddress: 10.0.0.10}, {hardwareAddress: \"52:54:00:12:34:56\", ipAddress: 10.0.0.11}]",
    );
    let e = err_of(&text);
    assert!(
        e.contains(
            "pools[0].reservations[1]: reserves the same client as pools[0].reservations[0]"
        ),
        "{e}"
    );
}

#[test]
fn lease_time_bounds_must_be_ordered() {
    let e = err_of(&GOOD.replace("maxLeaseTime: 86400", "maxLeaseTime: 60"));
    assert!(
        e.contains("defaultLeaseTime") && e.contains("<= maxLeaseTime (60)"),
        "{e}"
    );
}

#[test]
fn a_range_that_covers_the_broadcast_address_is_refused() {
    let e = err_of(&GOOD.replace("end: 10.0.0.199", "end: 10.0.0.255"));
    assert!(e.contains("broadcast"), "{e}");
}

#[test]
fn custom_options_need_exactly_one_value() {
    let text = GOOD.replace(
        "domainName: example.org}",
        "domainName: example.org, custom: [{code: 66, text: a, u8: 1}]}",
    );
    assert!(err_of(&text).contains("more than one value"));
    let text = GOOD.replace(
        "domainName: example.org}",
        "domainName: example.org, custom: [{code: 150, hex: \"0a:00:00:01\"}]}",
    );
    let c = Config::from_yaml("t", &text).unwrap();
    assert_eq!(
        c.pools[0].options.custom[0].bytes().unwrap(),
        vec![10, 0, 0, 1]
    );
}

#[test]
fn secondary_peers_may_not_carry_mclt_or_split() {
    let text = GOOD.replace(
        "peers: []",
        "peers: [{name: a, role: secondary, address: 10.0.0.2, peerAddress: 10.0.0.3, mclt: 300}]",
    );
    assert!(err_of(&text).contains("peers[0].mclt: mclt is set by the primary only"));
}

#[test]
fn innermost_option_scope_wins() {
    let text = format!(
        "options: {{domainName: global.org, ntpServers: [1.1.1.1]}}\nsubnets: [{{subnet: 10.0.0.0/24, options: {{ntpServers: [2.2.2.2]}}}}]\n{GOOD}"
    );
    let c = Config::from_yaml("t", &text).unwrap();
    let o = &c.pools[0].options;
    assert_eq!(o.domain_name.as_deref(), Some("example.org"));
    assert_eq!(o.ntp_servers, Some(vec!["2.2.2.2".parse().unwrap()]));
}

#[test]
fn permit_lists_follow_isc_semantics() {
    let only_known = PermitList {
        allow: vec![Permit::KnownClients],
        deny: vec![],
    };
    assert!(only_known.permits(ClientFacts {
        known: true,
        bootp: false
    }));
    assert!(!only_known.permits(ClientFacts {
        known: false,
        bootp: false
    }));
    let deny_unknown = PermitList {
        allow: vec![],
        deny: vec![Permit::UnknownClients],
    };
    assert!(!deny_unknown.permits(ClientFacts {
        known: false,
        bootp: false
    }));
    assert!(deny_unknown.permits(ClientFacts {
        known: true,
        bootp: false
    }));
}

#[test]
fn a_primary_needs_mclt_and_split_and_split_becomes_isc_hba() {
    let peer = |extra: &str| {
        GOOD.replace("peers: []", &format!("peers: [{{name: a, role: primary, address: 10.0.0.2, peerAddress: 10.0.0.3{extra}}}]"))
    };
    assert!(err_of(&peer(", split: 128")).contains("peers[0].mclt: the primary needs mclt"));
    assert!(err_of(&peer(", mclt: 300")).contains("peers[0].split: the primary needs split"));
    let c = Config::from_yaml("t", &peer(", mclt: 300, split: 4")).unwrap();
    let p = &c.peers[0];
    assert_eq!(
        (
            p.port,
            p.peer_port,
            p.max_response_delay,
            p.max_unacked_updates
        ),
        (647, 647, 20, 100)
    );
    let mut want = [0u8; 32];
    want[0] = 0x0f;
    assert_eq!(p.hba, Some(want));
}

#[test]
fn a_pool_must_name_an_existing_failover_peer() {
    let text = GOOD.replace("name: lan\n", "name: lan\n    failoverPeer: nope\n");
    assert!(err_of(&text).contains("pools[0].failoverPeer: no peer named \"nope\""));
}
