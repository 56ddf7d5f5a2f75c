//! Known-answer tests against a live ISC dhcpd 4.4.3 failover pair, recorded by the project's
//! own lab: `scripts/record-isc-capture.sh` wrote everything in `tests/data/isc-pair/` (the
//! capture, both configs, logs and lease files; its README.md tells the scenario). Every
//! failover message ISC sent is decoded, re-encoded and compared byte for byte; selected
//! messages are checked field by field, rebuilt with the `Message` constructors, and compared
//! with ISC's own lease files and log of the same run.
//!
//! Expected values come from the recorded configs (pool 10.77.0.100-119, mclt 300, split 128,
//! default lease time 3600), ISC's logs and lease files and ISC's documented behaviour; each was
//! cross-checked with tshark's independent decode of the same capture
//! (`tshark -r isc-pair.pcap -d tcp.port==647,dhcpfo -V`, which swaps the names of message
//! types 7 and 9). A missing or unreadable data file fails the tests. The constants are those
//! of the committed recording: recording again changes the times, and the xids and counts that
//! depend on keepalive timing (CONTACT), so they are updated with it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use dhcpair_wire::failover::{
    decode, frame_len, Binding, BindingStatus, Decoded, Handshake, Message, MessageType,
    RejectReason, ServerState, SERVER_FLAG_STARTUP,
};
use dhcpair_wire::hash::Hba;

/// The lab's output directory (committed test data).
const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/isc-pair");
const PCAP: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/data/isc-pair/isc-pair.pcap"
);
const REGENERATE: &str = "sudo scripts/record-isc-capture.sh";

const PRIMARY: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
const SECONDARY: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 2);
const FAILOVER_PORT: u16 = 647;
/// `mclt 300;` and `default-lease-time 3600;` of primary.conf.
const MCLT: u32 = 300;
const LEASE_TIME: u32 = 3600;

// The run's timeline, in ISC's own records (lease files, UTC) and the script's README.
/// 2026-12-04 17:14:13 UTC: both servers start in RECOVER (README: started at unix time
/// 1796404453; both lease files: `my state recover at 5 2026/12/04 17:14:13`).
const T0: u32 = 1_796_404_453;
/// 17:14:21: the secondary ACKs client 1 (primary.leases, 10.77.0.109 active:
/// `starts 5 2026/12/04 17:14:21`).
const T_CLIENT1: u32 = T0 + 8;
/// 17:14:32 and 17:14:43: the primary ACKs clients 2 and 3 (primary.leases, 10.77.0.110 and
/// 10.77.0.111: `starts`, `cltt`).
const T_CLIENT2: u32 = T0 + 19;
const T_CLIENT3: u32 = T0 + 30;
/// 17:14:52: client 1 releases (primary.leases, 10.77.0.109 free: `ends 5 2026/12/04 17:14:52`).
const T_RELEASE: u32 = T0 + 39;
/// 17:15:00: the primary sees the killed secondary's connection close (primary.leases:
/// `my state communications-interrupted at 5 2026/12/04 17:15:00`).
const T_INTERRUPTED: u32 = T0 + 47;
/// 17:15:02: the restarted secondary reconnects, the primary is NORMAL again (primary.leases:
/// `my state normal at 5 2026/12/04 17:15:02`).
const T_RECONNECT: u32 = T0 + 49;

/// `range 10.77.0.100 10.77.0.119;`
fn pool() -> Vec<Ipv4Addr> {
    (100..=119).map(|h| Ipv4Addr::new(10, 77, 0, h)).collect()
}

/// A file of the lab's output; a missing one is a test failure, never a skip.
fn data_file(name: &str) -> Vec<u8> {
    let path = format!("{DATA}/{name}");
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read the ISC failover test data {path}: {e}. It is committed with the \
             repository (restore it with `git checkout -- server/wire/tests/data/isc-pair`) \
             or recorded again with `{REGENERATE}`."
        )
    })
}

fn data_text(name: &str) -> String {
    String::from_utf8(data_file(name)).unwrap()
}

// ---------------------------------------------------------------------------------------------
// A tiny capture reader: pcapng (what tshark writes) or classic pcap, Ethernet, IPv4, TCP.

fn u16_at(b: &[u8], off: usize, le: bool) -> u16 {
    let x = [b[off], b[off + 1]];
    if le {
        u16::from_le_bytes(x)
    } else {
        u16::from_be_bytes(x)
    }
}

fn u32_at(b: &[u8], off: usize, le: bool) -> u32 {
    let x = [b[off], b[off + 1], b[off + 2], b[off + 3]];
    if le {
        u32::from_le_bytes(x)
    } else {
        u32::from_be_bytes(x)
    }
}

/// The link-layer frames of a capture file.
fn frames(file: &[u8]) -> Vec<&[u8]> {
    let magic = u32_at(file, 0, true);
    let mut out = Vec::new();
    if magic == 0x0a0d_0d0a {
        // pcapng: blocks of (type, total length, body, total length).
        let mut le = true;
        let mut off = 0;
        while off + 12 <= file.len() {
            let kind = u32_at(file, off, le);
            if kind == 0x0a0d_0d0a {
                le = u32_at(file, off + 8, true) == 0x1a2b_3c4d;
            }
            let len = u32_at(file, off + 4, le) as usize;
            assert!(
                len >= 12 && off + len <= file.len(),
                "bad pcapng block at {off}"
            );
            let body = &file[off + 8..off + len - 4];
            match kind {
                1 => assert_eq!(u16_at(body, 0, le), 1, "link type must be Ethernet"),
                6 => {
                    let cap = u32_at(body, 12, le) as usize;
                    out.push(&body[20..20 + cap]);
                }
                _ => {}
            }
            off += len;
        }
    } else {
        // Classic pcap, either byte order, micro- or nanosecond timestamps.
        let le = match magic {
            0xa1b2_c3d4 | 0xa1b2_3c4d => true,
            0xd4c3_b2a1 | 0x4d3c_b2a1 => false,
            other => panic!("not a capture file (magic {other:08x})"),
        };
        assert_eq!(u32_at(file, 20, le), 1, "link type must be Ethernet");
        let mut off = 24;
        while off + 16 <= file.len() {
            let cap = u32_at(file, off + 8, le) as usize;
            out.push(&file[off + 16..off + 16 + cap]);
            off += 16 + cap;
        }
    }
    out
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Flow {
    src: Ipv4Addr,
    sport: u16,
    dst: Ipv4Addr,
    dport: u16,
}

#[derive(Default)]
struct Direction {
    first_frame: usize,
    isn: Option<u32>,
    segments: Vec<(u32, Vec<u8>)>,
}

/// The reassembled TCP byte stream of each direction of each connection to or from port 647,
/// in the order the directions first appear.
fn failover_streams(file: &[u8]) -> Vec<(Flow, Vec<u8>)> {
    let mut dirs: BTreeMap<Flow, Direction> = BTreeMap::new();
    for (i, eth) in frames(file).into_iter().enumerate() {
        if eth.len() < 14 || u16::from_be_bytes([eth[12], eth[13]]) != 0x0800 {
            continue;
        }
        let ip = &eth[14..];
        let ihl = usize::from(ip[0] & 0x0f) * 4;
        let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
        if ip[9] != 6 {
            continue;
        }
        let tcp = &ip[ihl..total];
        let flow = Flow {
            src: Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]),
            dst: Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]),
            sport: u16::from_be_bytes([tcp[0], tcp[1]]),
            dport: u16::from_be_bytes([tcp[2], tcp[3]]),
        };
        if flow.sport != FAILOVER_PORT && flow.dport != FAILOVER_PORT {
            continue;
        }
        let seq = u32::from_be_bytes([tcp[4], tcp[5], tcp[6], tcp[7]]);
        let data_off = usize::from(tcp[12] >> 4) * 4;
        let syn = tcp[13] & 0x02 != 0;
        let d = dirs.entry(flow).or_insert_with(|| Direction {
            first_frame: i,
            ..Direction::default()
        });
        if syn {
            d.isn = Some(seq.wrapping_add(1));
        }
        if tcp.len() > data_off {
            d.segments.push((seq, tcp[data_off..].to_vec()));
        }
    }
    let mut out: Vec<(usize, Flow, Vec<u8>)> = dirs
        .into_iter()
        .map(|(flow, d)| {
            let start = d
                .isn
                .or_else(|| d.segments.iter().map(|s| s.0).min())
                .unwrap_or(0);
            // Order by position in the stream; retransmissions overlap and are trimmed.
            let mut segs: Vec<(u32, Vec<u8>)> = d
                .segments
                .into_iter()
                .map(|(seq, p)| (seq.wrapping_sub(start), p))
                .collect();
            segs.sort_by_key(|s| s.0);
            let mut bytes = Vec::new();
            for (rel, p) in segs {
                let rel = rel as usize;
                assert!(rel <= bytes.len(), "hole in the TCP stream of {flow:?}");
                let skip = bytes.len() - rel;
                if skip < p.len() {
                    bytes.extend_from_slice(&p[skip..]);
                }
            }
            (d.first_frame, flow, bytes)
        })
        .collect();
    out.sort_by_key(|x| x.0);
    out.into_iter().map(|(_, f, b)| (f, b)).collect()
}

// ---------------------------------------------------------------------------------------------

/// One failover message as ISC sent it.
struct Sent {
    /// Which TCP connection (0-based, in order of appearance) carried it.
    conn: usize,
    from: Ipv4Addr,
    raw: Vec<u8>,
    msg: Message,
}

/// Every failover message of the capture. Connection 0 carries none: the secondary started
/// first and its connection to the not yet listening primary was refused (SYN, RST).
/// Connection 1 is the main link, opened by the primary; connection 2 is the link after the
/// secondary's restart, opened by the secondary.
fn load() -> Vec<Sent> {
    let file = data_file("isc-pair.pcap");
    assert!(
        file.len() >= 24,
        "{PCAP} is {} bytes long, not a capture; restore it with `git checkout -- \
         server/wire/tests/data/isc-pair` or record it again with `{REGENERATE}`",
        file.len()
    );
    let mut conns: Vec<(Ipv4Addr, u16, Ipv4Addr, u16)> = Vec::new();
    let mut out = Vec::new();
    for (flow, bytes) in failover_streams(&file) {
        let key = if flow.sport < flow.dport {
            (flow.src, flow.sport, flow.dst, flow.dport)
        } else {
            (flow.dst, flow.dport, flow.src, flow.sport)
        };
        let conn = match conns.iter().position(|c| *c == key) {
            Some(i) => i,
            None => {
                conns.push(key);
                conns.len() - 1
            }
        };
        let mut rest = &bytes[..];
        while !rest.is_empty() {
            let n = frame_len(rest)
                .expect("valid length")
                .expect("stream ends on a message boundary");
            let raw = &rest[..n];
            let msg = match decode(raw).unwrap() {
                Decoded::Message(m) => m,
                Decoded::Ignored { kind } => panic!("ISC sent ignorable type {kind}"),
            };
            out.push(Sent {
                conn,
                from: flow.src,
                raw: raw.to_vec(),
                msg,
            });
            rest = &rest[n..];
        }
    }
    assert_eq!(conns.len(), 3, "TCP connections on port 647: {conns:?}");
    assert!(
        !out.is_empty(),
        "{PCAP} holds no failover message; record it again with `{REGENERATE}`"
    );
    out
}

fn of(sent: &[Sent], kind: MessageType) -> impl Iterator<Item = &Sent> {
    sent.iter().filter(move |s| s.msg.kind == kind)
}

fn handshake() -> Handshake<'static> {
    Handshake {
        relationship_name: b"ref",
        max_unacked: 10,
        receive_timer: 30,
        vendor_class: b"isc-4.4.3-P1",
    }
}

// ---------------------------------------------------------------------------------------------
// ISC's lease files: `lease A.B.C.D { ... }` blocks and `failover peer "ref" state { ... }`.

/// `5 2026/12/04 17:14:21` (weekday, date, time; UTC) as UNIX seconds.
fn isc_time(s: &str) -> u32 {
    let mut w = s.split_whitespace();
    let _weekday = w.next();
    let num = |part: &str, sep: char| -> Vec<i64> {
        part.split(sep).map(|x| x.parse().unwrap()).collect()
    };
    let date = num(w.next().unwrap(), '/');
    let time = num(w.next().unwrap(), ':');
    // Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil).
    let (y, m, d) = (date[0] - i64::from(date[1] <= 2), date[1], date[2]);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
    let days = era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468;
    u32::try_from(days * 86_400 + time[0] * 3600 + time[1] * 60 + time[2]).unwrap()
}

/// Every lease block in file order: address and its statements (`starts` → `5 2026/...`,
/// `binding state` → `active`, `hardware ethernet` → `52:54:...`).
fn lease_blocks(text: &str) -> Vec<(Ipv4Addr, BTreeMap<&str, &str>)> {
    const KEYS: [&str; 8] = [
        "binding state",
        "hardware ethernet",
        "starts",
        "ends",
        "tstp",
        "tsfp",
        "atsfp",
        "cltt",
    ];
    let mut out = Vec::new();
    let mut cur: Option<(Ipv4Addr, BTreeMap<&str, &str>)> = None;
    for line in text.lines().map(str::trim) {
        if let Some(ip) = line.strip_prefix("lease ") {
            cur = Some((
                ip.trim_end_matches('{').trim().parse().unwrap(),
                BTreeMap::new(),
            ));
        } else if line == "}" {
            out.extend(cur.take());
        } else if let Some((_, stmts)) = cur.as_mut() {
            let line = line.trim_end_matches(';');
            for key in KEYS {
                if let Some(v) = line.strip_prefix(key).and_then(|v| v.strip_prefix(' ')) {
                    stmts.insert(key, v);
                }
            }
        }
    }
    out
}

/// Every `my state S at T;` of a lease file, in order: (state, time).
fn my_states(text: &str) -> Vec<(String, u32)> {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("my state "))
        .map(|l| {
            let (state, at) = l.trim_end_matches(';').split_once(" at ").unwrap();
            (state.to_string(), isc_time(at))
        })
        .collect()
}

#[test]
fn isc_lease_file_times_parse() {
    assert_eq!(isc_time("5 2026/12/04 17:14:13"), T0);
    assert_eq!(isc_time("4 1970/01/01 00:00:00"), 0);
    assert_eq!(isc_time("2 2000/02/29 12:00:00"), 951_825_600);
}

// ---------------------------------------------------------------------------------------------

#[test]
fn every_isc_message_reencodes_byte_for_byte() {
    let sent = load();
    for s in &sent {
        assert_eq!(s.msg.encode().unwrap(), s.raw, "{:?}", s.msg);
    }
    let count = |k, from| of(&sent, k).filter(|s| s.from == from).count();
    // What the scenario makes ISC send, by sender (primary, secondary); tshark counts the same
    // (README.md of the data).
    // CONNECT from the primary on both links (ISC's primary sends it whoever connected),
    // CONNECTACK from the secondary.
    assert_eq!(count(MessageType::Connect, PRIMARY), 2);
    assert_eq!(count(MessageType::Connect, SECONDARY), 0);
    assert_eq!(count(MessageType::ConnectAck, SECONDARY), 2);
    assert_eq!(count(MessageType::ConnectAck, PRIMARY), 0);
    // STATE: RECOVER+STARTUP, RECOVER, RECOVER-DONE, NORMAL on the main link, two more each on
    // the link after the restart.
    assert_eq!(count(MessageType::State, PRIMARY), 6);
    assert_eq!(count(MessageType::State, SECONDARY), 6);
    // Each log says `Sent update request all message to ref` twice and `Sent update done
    // message to ref` once.
    assert_eq!(count(MessageType::UpdReqAll, PRIMARY), 2);
    assert_eq!(count(MessageType::UpdReqAll, SECONDARY), 2);
    assert_eq!(count(MessageType::UpdDone, PRIMARY), 1);
    assert_eq!(count(MessageType::UpdDone, SECONDARY), 1);
    // BNDUPD from the primary: 20 FREE (its answer to UPDREQALL, one per pool address), 10
    // BACKUP (log: `balanced pool ... free 10 backup 10`), 2 ACTIVE (clients 2 and 3), 1
    // BACKUP after client 1's release. From the secondary: 20 FREE, 1 ACTIVE (client 1), 1
    // RELEASED, 1 FREE after its restart (secondary-restart.log: `balanced pool ... free 9
    // backup 9`). Every one is acknowledged.
    assert_eq!(count(MessageType::BndUpd, PRIMARY), 20 + 10 + 2 + 1);
    assert_eq!(count(MessageType::BndUpd, SECONDARY), 20 + 1 + 1 + 1);
    assert_eq!(count(MessageType::BndAck, SECONDARY), 33);
    assert_eq!(count(MessageType::BndAck, PRIMARY), 23);
    // CONTACT: the secondary's keepalive after 10 s (max-response-delay 30 / 3) without
    // sending anything, twice while the clients came.
    assert_eq!(count(MessageType::Contact, SECONDARY), 2);
    assert_eq!(count(MessageType::Contact, PRIMARY), 0);
    assert_eq!(sent.len(), 2 + 2 + 12 + 4 + 2 + 56 + 56 + 2);
    assert!(of(&sent, MessageType::Contact).all(|s| s.raw.len() == 12));
    // Reference §1.5: a BNDUPD never has xid 0.
    assert!(of(&sent, MessageType::BndUpd).all(|s| s.msg.xid != 0));
}

#[test]
fn isc_connect_matches_the_reference_and_our_constructor() {
    let sent = load();
    let connects: Vec<&Sent> = of(&sent, MessageType::Connect).collect();
    assert_eq!(connects.len(), 2);
    for c in &connects {
        // CONNECT is sent by the primary on every link, including the one the secondary
        // opened (reference §1.1: connection 2 is the secondary's outbound one).
        assert_eq!(c.from, PRIMARY);
        assert_eq!(c.raw.len(), 105);
        assert_eq!(c.raw[3], 12, "payload offset");
        let o = &c.msg.options;
        assert_eq!(c.msg.xid, 0);
        assert_eq!(o.relationship_name.as_deref(), Some(&b"ref"[..]));
        assert_eq!(o.max_unacked, Some(10));
        assert_eq!(o.receive_timer, Some(30));
        assert_eq!(o.vendor_class.as_deref(), Some(&b"isc-4.4.3-P1"[..]));
        assert_eq!(o.protocol_version, Some(1));
        assert_eq!(o.tls_request, Some(0));
        assert_eq!(o.mclt, Some(MCLT));
        // split 128: the primary owns buckets 0-127, ISC sends them as the first 16 bytes set.
        let hba = Hba::from_bytes(o.hba.as_deref().unwrap()).unwrap();
        assert_eq!(hba, Hba::split(128));
        assert_eq!(&hba.as_bytes()[..16], &[0xff; 16]);
        assert_eq!(&hba.as_bytes()[16..], &[0x00; 16]);
        let ours = Message::connect(c.msg.time, 0, &handshake(), MCLT, &Hba::split(128));
        assert_eq!(ours.encode().unwrap(), c.raw);
    }
    assert_eq!(
        connects
            .iter()
            .map(|c| (c.conn, c.msg.time))
            .collect::<Vec<_>>(),
        [(1, T0), (2, T_RECONNECT)]
    );
}

#[test]
fn isc_connectack_accepts_with_tls_reply_and_matches_our_constructor() {
    let sent = load();
    let acks: Vec<&Sent> = of(&sent, MessageType::ConnectAck).collect();
    assert_eq!(acks.len(), 2);
    for a in &acks {
        assert_eq!(a.from, SECONDARY);
        assert_eq!(a.raw.len(), 61);
        assert_eq!(a.msg.xid, 0, "the CONNECT's xid");
        let o = &a.msg.options;
        assert_eq!(o.relationship_name.as_deref(), Some(&b"ref"[..]));
        assert_eq!((o.max_unacked, o.receive_timer), (Some(10), Some(30)));
        assert_eq!(o.tls_reply, Some(0));
        assert_eq!((o.reject_reason, o.message.as_ref()), (None, None));
        let ours = Message::connect_ack(a.msg.time, 0, &handshake());
        assert_eq!(ours.encode().unwrap(), a.raw);
    }
    assert_eq!(
        acks.iter()
            .map(|a| (a.conn, a.msg.time))
            .collect::<Vec<_>>(),
        [(1, T0), (2, T_RECONNECT)]
    );
}

#[test]
fn isc_state_messages_follow_the_lab_sequence() {
    let sent = load();
    let states = |conn: usize, from: Ipv4Addr| -> Vec<(u8, u8, u32, u32)> {
        of(&sent, MessageType::State)
            .filter(|s| s.conn == conn && s.from == from)
            .map(|s| {
                let o = &s.msg.options;
                assert_eq!(s.raw.len(), 30);
                assert_eq!(
                    Message::state(
                        s.msg.time,
                        s.msg.xid,
                        ServerState::from_wire(o.server_state.unwrap()).unwrap(),
                        o.server_flags.unwrap(),
                        o.stos.unwrap(),
                    )
                    .encode()
                    .unwrap(),
                    s.raw
                );
                (
                    o.server_state.unwrap(),
                    o.server_flags.unwrap(),
                    o.stos.unwrap(),
                    s.msg.xid,
                )
            })
            .collect()
    };
    let (recover, done, normal, ci) = (6, 9, 2, 3);
    let st = SERVER_FLAG_STARTUP;
    // Main link: both start in RECOVER with the STARTUP flag, then RECOVER-DONE, then NORMAL,
    // all in the first second. Xids count every message the sender originates on the link:
    // the secondary's 20 FREE BNDUPDs (xids 4-23, after STATEs 0-1 and UPDREQALLs 2-3) come
    // before its RECOVER-DONE; the primary's (5-24) after STATEs 1-2 and UPDREQALLs 3-4.
    assert_eq!(
        states(1, SECONDARY),
        [
            (recover, st, T0, 0),
            (recover, 0, T0, 1),
            (done, 0, T0, 24),
            (normal, 0, T0, 25)
        ]
    );
    assert_eq!(
        states(1, PRIMARY),
        [
            (recover, st, T0, 1),
            (recover, 0, T0, 2),
            (done, 0, T0, 25),
            (normal, 0, T0, 26)
        ]
    );
    // After the secondary's restart: it reports its saved NORMAL with STARTUP and its old
    // STOS; the primary reports COMMUNICATIONS-INTERRUPTED (since the connection closed), then
    // NORMAL.
    assert_eq!(
        states(2, SECONDARY),
        [(normal, st, T0, 0), (normal, 0, T0, 1)]
    );
    assert_eq!(
        states(2, PRIMARY),
        [(ci, 0, T_INTERRUPTED, 1), (normal, 0, T_RECONNECT, 2)]
    );
    assert_eq!(
        ServerState::from_wire(ci).unwrap().isc_name(),
        "communications-interrupted"
    );

    // The same moves at the same times in ISC's own records of its state.
    let primary = my_states(&data_text("primary.leases"));
    for (state, at) in [
        ("recover", T0),
        ("recover-done", T0),
        ("normal", T0),
        ("communications-interrupted", T_INTERRUPTED),
        ("normal", T_RECONNECT),
    ] {
        assert!(
            primary.contains(&(state.to_string(), at)),
            "primary.leases: no `my state {state}` at {at}: {primary:?}"
        );
    }
    let secondary = my_states(&data_text("secondary.leases"));
    assert!(
        secondary.contains(&("normal".to_string(), T0)),
        "{secondary:?}"
    );
}

#[test]
fn updreqall_and_upddone_carry_the_request_xid() {
    let sent = load();
    let xids = |kind, from| -> Vec<u32> {
        of(&sent, kind)
            .filter(|s| s.from == from)
            .map(|s| s.msg.xid)
            .collect()
    };
    // Each side asks twice (`requesting full update from peer` twice in each log).
    assert_eq!(xids(MessageType::UpdReqAll, PRIMARY), [3, 4]);
    assert_eq!(xids(MessageType::UpdReqAll, SECONDARY), [2, 3]);
    // Reference §2: a second UPDREQALL replaces the first (`Received update request while old
    // update still flying!`); UPDDONE has the newer xid.
    assert_eq!(xids(MessageType::UpdDone, SECONDARY), [4]);
    assert_eq!(xids(MessageType::UpdDone, PRIMARY), [3]);
    assert!(of(&sent, MessageType::UpdReqAll).all(|s| s.raw.len() == 12 && s.conn == 1));
    assert!(of(&sent, MessageType::UpdDone).all(|s| s.raw.len() == 12 && s.conn == 1));
}

#[test]
fn isc_bndupd_fields_match_the_reference() {
    let sent = load();
    let upd = |conn: usize, from: Ipv4Addr, xid: u32| {
        of(&sent, MessageType::BndUpd)
            .find(|s| s.from == from && s.msg.xid == xid && s.conn == conn)
            .unwrap_or_else(|| panic!("no BNDUPD {xid} from {from} on connection {conn}"))
    };
    let chaddr = |n: u8| -> Vec<u8> { vec![1, 0x52, 0x54, 0, 0, 0, n] };

    // The answer to UPDREQALL: every pool address FREE, all times 0, 49 bytes (reference §3.2),
    // in address order; the secondary's xids 4-23, the primary's 5-24.
    for (from, first_xid) in [(SECONDARY, 4), (PRIMARY, 5)] {
        for (xid, ip) in (first_xid..).zip(pool()) {
            let free = upd(1, from, xid);
            assert_eq!(free.raw.len(), 49);
            let o = &free.msg.options;
            assert_eq!(o.assigned_ip, Some(ip));
            assert_eq!(o.binding_status, Some(BindingStatus::Free.to_wire()));
            assert_eq!(
                (o.lease_expiry, o.potential_expiry, o.stos),
                (Some(0), Some(0), Some(0))
            );
            assert_eq!(
                (o.client_id.as_ref(), o.chaddr.as_ref(), o.cltt),
                (None, None, None)
            );
        }
    }

    // Pool balancing (`balanced pool ... free 10 backup 10`): the primary gives the secondary
    // the first 10 addresses as BACKUP, potential-expiry = stos = now, xids 27-36.
    for (xid, ip) in (27..=36).zip(pool()) {
        let backup = upd(1, PRIMARY, xid);
        assert_eq!(backup.raw.len(), 49);
        let o = &backup.msg.options;
        assert_eq!(o.assigned_ip, Some(ip));
        assert_eq!(o.binding_status, Some(BindingStatus::Backup.to_wire()));
        assert_eq!(
            (o.lease_expiry, o.potential_expiry, o.stos),
            (Some(0), Some(T0), Some(T0))
        );
    }

    // ACTIVE, one per client: the first lease to a client is MCLT long (lease-expiry = t +
    // 300); potential-expiry is ISC's tstp = t + the desired 3600 + half the granted 300.
    // Client 1 is the secondary's by the hash (10.77.0.109, the last of its 10 BACKUP leases),
    // clients 2 and 3 the primary's (its first free addresses, 10.77.0.110 and .111). The
    // secondary's xid 26 follows its NORMAL (25); the primary's 37 and 38 follow the balancing.
    for (from, xid, ip, client, t) in [
        (SECONDARY, 26, 109, 1, T_CLIENT1),
        (PRIMARY, 37, 110, 2, T_CLIENT2),
        (PRIMARY, 38, 111, 3, T_CLIENT3),
    ] {
        let active = upd(1, from, xid);
        assert_eq!(active.raw.len(), 68);
        let o = &active.msg.options;
        let ip = Ipv4Addr::new(10, 77, 0, ip);
        assert_eq!(o.assigned_ip, Some(ip));
        assert_eq!(o.binding_status, Some(BindingStatus::Active.to_wire()));
        assert_eq!(o.chaddr.as_deref(), Some(&chaddr(client)[..]));
        assert_eq!(o.client_id, None);
        assert_eq!(o.stos, Some(t));
        assert_eq!(o.lease_expiry, Some(t + MCLT));
        assert_eq!(o.potential_expiry, Some(t + LEASE_TIME + MCLT / 2));
        assert_eq!(o.cltt, Some(t));
        assert_eq!(o.ip_flags, None);
        let ours = Message::bndupd(
            active.msg.time,
            xid,
            &Binding {
                assigned_ip: ip,
                status: BindingStatus::Active,
                client_id: None,
                chaddr: Some(&chaddr(client)),
                lease_expiry: t + MCLT,
                potential_expiry: t + LEASE_TIME + MCLT / 2,
                stos: t,
                cltt: t,
                ip_flags: 0,
            },
        );
        assert_eq!(ours.encode().unwrap(), active.raw);
    }

    // RELEASED from the secondary (xid 29: its CONTACTs took 27 and 28): expiry = potential
    // expiry = release time, STOS = the lease's start, CLTT = the last client packet the
    // secondary saw, the ACK's REQUEST (the DHCPRELEASE does not move it; secondary.leases:
    // `cltt 5 2026/12/04 17:14:21`).
    let released = upd(1, SECONDARY, 29);
    assert_eq!(released.raw.len(), 68);
    let o = &released.msg.options;
    assert_eq!(o.assigned_ip, Some(Ipv4Addr::new(10, 77, 0, 109)));
    assert_eq!(o.binding_status, Some(BindingStatus::Released.to_wire()));
    assert_eq!(o.chaddr.as_deref(), Some(&chaddr(1)[..]));
    assert_eq!(
        (o.lease_expiry, o.potential_expiry),
        (Some(T_RELEASE), Some(T_RELEASE))
    );
    assert_eq!((o.stos, o.cltt), (Some(T_CLIENT1), Some(T_CLIENT1)));

    // MAC affinity: the primary then hands the released lease back to the secondary as
    // BACKUP, keeping the last client's chaddr; 60 bytes, no CLTT, every time the release's.
    let affinity = upd(1, PRIMARY, 39);
    assert_eq!(affinity.raw.len(), 60);
    let o = &affinity.msg.options;
    assert_eq!(o.assigned_ip, Some(Ipv4Addr::new(10, 77, 0, 109)));
    assert_eq!(o.binding_status, Some(BindingStatus::Backup.to_wire()));
    assert_eq!(o.chaddr.as_deref(), Some(&chaddr(1)[..]));
    assert_eq!(o.cltt, None);
    assert_eq!(
        (o.lease_expiry, o.potential_expiry, o.stos),
        (Some(T_RELEASE), Some(T_RELEASE), Some(T_RELEASE))
    );

    // After its restart the secondary holds one BACKUP lease too many (secondary-restart.log:
    // `free 8 backup 10 lts 1` → `free 9 backup 9`) and gives it back as FREE, with xid 2 on
    // the new link (after its STATEs 0 and 1).
    let returned = upd(2, SECONDARY, 2);
    assert_eq!(returned.raw.len(), 49);
    let o = &returned.msg.options;
    assert_eq!(o.assigned_ip, Some(Ipv4Addr::new(10, 77, 0, 100)));
    assert_eq!(o.binding_status, Some(BindingStatus::Free.to_wire()));
    assert_eq!(
        (o.lease_expiry, o.potential_expiry, o.stos),
        (Some(0), Some(T_RECONNECT), Some(T_RECONNECT))
    );
}

#[test]
fn isc_active_bndupds_agree_with_the_receivers_lease_file() {
    let sent = load();
    // ISC records a partner's ACTIVE update as it came: starts = STOS, ends = lease-expiry,
    // tsfp (the partner's potential expiry) = potential-expiry, and the client's MAC.
    let leases = |who: Ipv4Addr| {
        let file = if who == PRIMARY {
            "primary.leases"
        } else {
            "secondary.leases"
        };
        data_text(file)
    };
    let mut checked = 0;
    for u in of(&sent, MessageType::BndUpd)
        .filter(|u| u.msg.options.binding_status == Some(BindingStatus::Active.to_wire()))
    {
        let receiver = if u.from == PRIMARY {
            SECONDARY
        } else {
            PRIMARY
        };
        let text = leases(receiver);
        let o = &u.msg.options;
        let ip = o.assigned_ip.unwrap();
        let mac = o.chaddr.as_deref().unwrap()[1..]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(":");
        let blocks = lease_blocks(&text);
        let block = blocks
            .iter()
            .find(|(a, s)| {
                *a == ip
                    && s.get("binding state") == Some(&"active")
                    && s.get("hardware ethernet") == Some(&mac.as_str())
            })
            .unwrap_or_else(|| panic!("no active lease {ip} for {mac} at {receiver}"));
        let time = |key: &str| block.1.get(key).map(|v| isc_time(v));
        assert_eq!(time("starts"), o.stos, "{ip} starts");
        assert_eq!(time("ends"), o.lease_expiry, "{ip} ends");
        assert_eq!(time("tsfp"), o.potential_expiry, "{ip} tsfp");
        checked += 1;
    }
    assert_eq!(checked, 3, "one ACTIVE update per client");
}

#[test]
fn isc_bndacks_echo_the_xid_and_reject_with_reason_16() {
    let sent = load();
    let acks: Vec<&Sent> = of(&sent, MessageType::BndAck).collect();
    assert_eq!(acks.len(), 56);
    let mut rejected = Vec::new();
    for a in &acks {
        let o = &a.msg.options;
        // Every BNDACK answers a BNDUPD from the other side with the same xid and address.
        let upd = of(&sent, MessageType::BndUpd)
            .find(|u| u.conn == a.conn && u.from != a.from && u.msg.xid == a.msg.xid)
            .unwrap();
        assert_eq!(o.assigned_ip, upd.msg.options.assigned_ip);
        let ours = match o.reject() {
            None => {
                assert_eq!(a.raw.len(), 20);
                Message::bndack(a.msg.time, a.msg.xid, o.assigned_ip.unwrap())
            }
            Some(reason) => {
                rejected.push((a.from, upd.msg.xid, o.assigned_ip.unwrap()));
                assert_eq!(reason, RejectReason::LessCriticalBindInfo);
                let text = "incoming update is less critical than outgoing update";
                assert_eq!(o.message.as_deref(), Some(text));
                assert_eq!(a.raw.len(), 82);
                Message::bndack(a.msg.time, a.msg.xid, o.assigned_ip.unwrap())
                    .with_reject(reason, text)
            }
        };
        assert_eq!(ours.encode().unwrap(), a.raw);
    }
    // The duel of the fresh synchronisation (reference §1.6): both sides send every address
    // FREE at once; the primary refuses the secondary's 20 (xids 4-23), and the secondary
    // logs each refusal.
    let expected: Vec<(Ipv4Addr, u32, Ipv4Addr)> = (4..=23)
        .zip(pool())
        .map(|(x, ip)| (PRIMARY, x, ip))
        .collect();
    assert_eq!(rejected, expected);
    let log = data_text("secondary.log");
    let logged = log
        .lines()
        .filter(|l| {
            l.starts_with("bind update on 10.77.0.")
                && l.ends_with(
                    "from ref rejected: incoming update is less critical than outgoing update",
                )
        })
        .count();
    assert_eq!(logged, rejected.len());
}
