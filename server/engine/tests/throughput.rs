#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Engine cost per lease, in process, no I/O: `cargo test --release -p dhcpair-engine --test
//! throughput -- --ignored --nocapture`. A measurement, not a pass/fail timing.

use std::time::Instant;

use dhcpair_config::Config;
use dhcpair_engine::{Arrival, Engine, Outcome};
use dhcpair_wire::decode_request;
use dhcpair_wire::v4::{DhcpOption, Message, MessageType, OptionCode};

#[test]
#[ignore = "measurement; run explicitly in release"]
fn engine_and_wire_cost_per_lease() {
    let conf = Config::from_yaml(
        "t",
        r#"
server: {interfaces: [eth0], serverId: 10.77.0.1}
pools:
  - name: bench
    subnet: 10.77.0.0/16
    ranges: [{start: 10.77.1.0, end: 10.77.240.255}]
    options: {routers: [10.77.0.1], domainNameServers: [10.77.0.53]}
    defaultLeaseTime: 3600
"#,
    )
    .unwrap();
    let mut e = Engine::new(conf, vec![], &[], 1_800_000_000);
    let addrs = [std::net::Ipv4Addr::new(10, 77, 0, 1)];
    let arrival = Arrival {
        interface_addrs: &addrs,
    };
    let n = 50_000u32;
    let encode = |m: &Message| {
        let mut b = Vec::new();
        dhcproto::Encodable::encode(m, &mut dhcproto::Encoder::new(&mut b)).unwrap();
        b
    };
    let mk = |i: u32, t: MessageType| {
        let mac = [
            0x52,
            0x54,
            (i >> 24) as u8,
            (i >> 16) as u8,
            (i >> 8) as u8,
            i as u8,
        ];
        let z = std::net::Ipv4Addr::UNSPECIFIED;
        let mut m = Message::new_with_id(i, z, z, z, std::net::Ipv4Addr::new(10, 77, 0, 2), &mac);
        m.opts_mut().insert(DhcpOption::MessageType(t));
        m.opts_mut().insert(DhcpOption::ParameterRequestList(vec![
            OptionCode::SubnetMask,
            OptionCode::Router,
            OptionCode::DomainNameServer,
        ]));
        m
    };
    let discovers: Vec<Vec<u8>> = (0..n)
        .map(|i| encode(&mk(i, MessageType::Discover)))
        .collect();
    let t0 = Instant::now();
    let mut acks = 0;
    for (i, raw) in discovers.iter().enumerate() {
        let now = 1_800_000_000;
        let inb = decode_request(raw).unwrap();
        let d = e.handle_request(now, &arrival, &inb.msg, inb.relay_agent_info);
        let offer = d.reply.unwrap();
        let _ = offer.encode().unwrap();
        let mut req = mk(i as u32, MessageType::Request);
        req.opts_mut()
            .insert(DhcpOption::RequestedIpAddress(offer.msg.yiaddr()));
        req.opts_mut()
            .insert(DhcpOption::ServerIdentifier(std::net::Ipv4Addr::new(
                10, 77, 0, 1,
            )));
        let raw = encode(&req);
        let t_req = Instant::now();
        let inb = decode_request(&raw).unwrap();
        let d = e.handle_request(now, &arrival, &inb.msg, inb.relay_agent_info);
        let _ = d.reply.as_ref().unwrap().encode().unwrap();
        let _ = t_req;
        if d.outcome == Outcome::Ack {
            acks += 1;
        }
    }
    let el = t0.elapsed();
    eprintln!("{acks} leases in {:?}: {:.2} us per lease (decode+engine+encode, both exchanges, incl. building the REQUEST)", el, el.as_secs_f64() * 1e6 / f64::from(n));
    assert_eq!(acks, n);
}
