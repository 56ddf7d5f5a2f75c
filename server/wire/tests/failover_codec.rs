//! Failover codec: ISC's acceptance rules (reference §1.3), encoding order, enums, and
//! properties (round trip, no panics on any input).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicUsize, Ordering};

use dhcpair_wire::failover::{
    code, decode, frame_len, option_name, BindingStatus, DecodeError, Decoded, EncodeError,
    FrameError, Message, MessageType, Options, RejectReason, ServerState, MAX_MESSAGE_LEN,
};
use proptest::prelude::*;

/// A message from raw parts: the length field is filled in, options are (code, data).
fn raw(kind: u8, offset: u8, gap: &[u8], opts: &[(u16, &[u8])]) -> Vec<u8> {
    let mut b = vec![0, 0, kind, offset, 0x6b, 0x02, 0xa8, 0x61, 0, 0, 0, 7];
    b.extend_from_slice(gap);
    for (c, d) in opts {
        b.extend_from_slice(&c.to_be_bytes());
        b.extend_from_slice(&(d.len() as u16).to_be_bytes());
        b.extend_from_slice(d);
    }
    let len = b.len() as u16;
    b[..2].copy_from_slice(&len.to_be_bytes());
    b
}

fn msg(bytes: &[u8]) -> Message {
    match decode(bytes).unwrap() {
        Decoded::Message(m) => m,
        other => panic!("expected a message, got {other:?}"),
    }
}

const IP: &[u8] = &[10, 77, 0, 100];

// --- framing -----------------------------------------------------------------------------------

#[test]
fn frame_len_waits_for_the_whole_message() {
    assert_eq!(frame_len(&[]), Ok(None));
    assert_eq!(frame_len(&[0]), Ok(None));
    assert_eq!(frame_len(&[0, 12]), Ok(None));
    assert_eq!(frame_len(&[0, 12, 11, 12, 0, 0, 0, 0, 0, 0, 0]), Ok(None));
    let contact = Message::contact(1, 2).encode().unwrap();
    assert_eq!(frame_len(&contact), Ok(Some(12)));
    let mut two = contact.clone();
    two.extend_from_slice(&contact[..5]);
    assert_eq!(frame_len(&two), Ok(Some(12)));
}

#[test]
fn frame_len_refuses_lengths_outside_12_to_2048() {
    assert_eq!(frame_len(&[0, 0]), Err(FrameError::TooShort(0)));
    assert_eq!(frame_len(&[0, 11]), Err(FrameError::TooShort(11)));
    assert_eq!(frame_len(&[0x08, 0x01]), Err(FrameError::TooLong(2049)));
    assert_eq!(frame_len(&[0xff, 0xff]), Err(FrameError::TooLong(65535)));
    assert_eq!(frame_len(&[0x08, 0x00]), Ok(None));
    let mut max = vec![0u8; 2048];
    max[0] = 0x08;
    assert_eq!(frame_len(&max), Ok(Some(2048)));
    assert_eq!(frame_len(&max[..2047]), Ok(None));
}

#[test]
fn decode_checks_the_header() {
    assert_eq!(
        decode(&[]),
        Err(DecodeError::Frame(FrameError::TooShort(0)))
    );
    assert_eq!(
        decode(&[0]),
        Err(DecodeError::Frame(FrameError::TooShort(1)))
    );
    assert_eq!(
        decode(&[0, 12, 11]),
        Err(DecodeError::LengthMismatch {
            declared: 12,
            actual: 3
        })
    );
    let mut m = raw(11, 12, &[], &[]);
    m[1] = 11;
    assert_eq!(
        decode(&m),
        Err(DecodeError::Frame(FrameError::TooShort(11)))
    );
    m[1] = 13;
    assert_eq!(
        decode(&m),
        Err(DecodeError::LengthMismatch {
            declared: 13,
            actual: 12
        })
    );
    let mut long = raw(11, 12, &[], &[]);
    long[..2].copy_from_slice(&2049u16.to_be_bytes());
    assert_eq!(
        decode(&long),
        Err(DecodeError::Frame(FrameError::TooLong(2049)))
    );
}

#[test]
fn payload_offset_below_12_is_an_error() {
    // Draft-12 says 8; ISC underflows on it (reference §0 fact 1).
    for off in [0, 8, 11] {
        let m = raw(10, off, &[], &[(24, &[2])]);
        assert!(
            matches!(decode(&m), Err(DecodeError::BadPayloadOffset { offset, .. }) if offset == off)
        );
    }
    // Past the end of the message.
    let m = raw(11, 13, &[], &[]);
    assert!(matches!(
        decode(&m),
        Err(DecodeError::BadPayloadOffset {
            offset: 13,
            len: 12
        })
    ));
}

#[test]
fn bytes_between_12_and_the_payload_offset_are_skipped() {
    let m = msg(&raw(
        10,
        16,
        &[0xde, 0xad, 0xbe, 0xef],
        &[(24, &[2]), (23, &[0])],
    ));
    assert_eq!(m.kind, MessageType::State);
    assert_eq!(m.time, 0x6b02_a861);
    assert_eq!(m.xid, 7);
    assert_eq!(m.options.server_state, Some(2));
    assert_eq!(m.options.server_flags, Some(0));
    // An offset equal to the length: no options.
    let m = msg(&raw(11, 14, &[1, 2], &[]));
    assert_eq!(m, Message::contact(0x6b02_a861, 7));
}

// --- message types -----------------------------------------------------------------------------

#[test]
fn unknown_type_without_options_is_ignored() {
    assert_eq!(
        decode(&raw(200, 12, &[], &[])),
        Ok(Decoded::Ignored { kind: 200 })
    );
    assert_eq!(
        decode(&raw(13, 12, &[], &[])),
        Ok(Decoded::Ignored { kind: 13 })
    );
    // Header bytes skipped by the offset are not options.
    assert_eq!(
        decode(&raw(200, 20, &[0; 8], &[])),
        Ok(Decoded::Ignored { kind: 200 })
    );
}

#[test]
fn unknown_type_with_an_option_is_a_protocol_error() {
    // ISC: "FAILOVER: invalid message type: 13", then the link drops [LAB].
    assert_eq!(
        decode(&raw(13, 12, &[], &[(24, &[2])])),
        Err(DecodeError::InvalidMessageType(13))
    );
    assert_eq!(
        decode(&raw(255, 12, &[], &[(99, &[])])),
        Err(DecodeError::InvalidMessageType(255))
    );
    // Even a lone byte counts.
    assert_eq!(
        decode(&raw(128, 12, &[0], &[])),
        Err(DecodeError::InvalidMessageType(128))
    );
}

#[test]
fn type_0_is_walked_then_ignored() {
    assert_eq!(
        decode(&raw(0, 12, &[], &[(2, IP), (2, IP)])),
        Ok(Decoded::Ignored { kind: 0 })
    );
    assert!(matches!(
        decode(&raw(0, 12, &[0, 2, 0, 9], &[])),
        Err(DecodeError::OptionOverflow { code: 2 })
    ));
}

#[test]
fn message_type_numbers_follow_the_draft_not_wireshark() {
    assert_eq!(MessageType::from_wire(7), Some(MessageType::UpdReqAll));
    assert_eq!(MessageType::from_wire(9), Some(MessageType::UpdReq));
    assert_eq!(MessageType::from_wire(0), None);
    assert_eq!(MessageType::from_wire(13), None);
    for (i, k) in MessageType::ALL.into_iter().enumerate() {
        assert_eq!(usize::from(k.to_wire()), i + 1);
        assert_eq!(MessageType::from_wire(k.to_wire()), Some(k));
    }
    assert_eq!(MessageType::UpdReqAll.to_string(), "UPDREQALL");
    assert_eq!(MessageType::UpdReqAll.isc_name(), "update-request-all");
    assert_eq!(MessageType::BndUpd.label(), "bndupd");
}

// --- options -----------------------------------------------------------------------------------

#[test]
fn a_second_binding_in_one_bndupd_is_a_duplicate_option() {
    // Reference §0 fact 2: ISC logs "duplicate option assigned-IP-address" and drops the link.
    let two = raw(
        3,
        12,
        &[],
        &[(2, IP), (3, &[1]), (2, &[10, 77, 0, 101]), (3, &[1])],
    );
    let err = decode(&two).unwrap_err();
    assert_eq!(err, DecodeError::DuplicateOption(code::ASSIGNED_IP_ADDRESS));
    assert_eq!(err.to_string(), "duplicate option 2 (assigned-IP-address)");
    assert_eq!(err.as_str(), "duplicate_option");
}

#[test]
fn every_carried_option_twice_is_an_error() {
    for kind in MessageType::ALL {
        for &c in kind.carried_options() {
            let data = sample(c);
            let m = raw(kind.to_wire(), 12, &[], &[(c, &data), (c, &data)]);
            assert_eq!(
                decode(&m),
                Err(DecodeError::DuplicateOption(c)),
                "{kind} option {c}"
            );
        }
    }
}

#[test]
fn options_a_type_does_not_carry_are_skipped_even_when_repeated_or_misshapen() {
    // ISC skips them before its size check and never marks them present.
    let m = msg(&raw(
        10,
        12,
        &[],
        &[
            (24, &[2]),
            (15, &[1, 2]),
            (15, &[]),
            (2, &[1]),
            (23, &[0]),
            (25, &[0, 0, 0, 9]),
        ],
    ));
    let want = Options {
        server_state: Some(2),
        server_flags: Some(0),
        stos: Some(9),
        ..Options::default()
    };
    assert_eq!(m.options, want);
    // A CONTACT carries nothing.
    assert_eq!(
        msg(&raw(11, 12, &[], &[(2, IP), (16, b"x")])),
        Message::contact(0x6b02_a861, 7)
    );
}

#[test]
fn codes_0_and_above_29_are_skipped() {
    let m = msg(&raw(
        11,
        12,
        &[],
        &[
            (0, &[1, 2, 3]),
            (30, &[]),
            (0xffff, &[9; 5]),
            (30, &[]),
            (0, &[]),
        ],
    ));
    assert_eq!(m, Message::contact(0x6b02_a861, 7));
}

#[test]
fn ddns_digest_delayed_service_and_vendor_options_are_skipped() {
    let m = msg(&raw(
        3,
        12,
        &[],
        &[
            (2, IP),
            (9, &[0, 1, 3, b'f', b'o', b'o', 0]),
            (9, &[]),
            (17, &[1; 17]),
            (10, &[1, 2]),
            (29, &[0, 1, 0, 0]),
            (3, &[2]),
        ],
    ));
    assert_eq!(m.options.assigned_ip, Some(Ipv4Addr::new(10, 77, 0, 100)));
    assert_eq!(m.options.binding_status, Some(2));
    let mut rest = m.options.clone();
    rest.assigned_ip = None;
    rest.binding_status = None;
    assert_eq!(rest, Options::default());
}

#[test]
fn fixed_size_options_need_their_exact_length() {
    for kind in MessageType::ALL {
        for &c in kind.carried_options() {
            let good = sample(c);
            if is_variable(c) {
                for n in [0, 1, 2, 3, 4, 5, 31, 32, 33] {
                    let m = raw(kind.to_wire(), 12, &[], &[(c, &vec![b'a'; n])]);
                    assert!(decode(&m).is_ok(), "{kind} option {c} len {n}");
                }
                continue;
            }
            for n in 0..=6 {
                let m = raw(kind.to_wire(), 12, &[], &[(c, &vec![0; n])]);
                let got = decode(&m);
                if n == good.len() {
                    assert!(got.is_ok(), "{kind} option {c} len {n}");
                } else {
                    assert_eq!(
                        got,
                        Err(DecodeError::BadOptionLength {
                            code: c,
                            len: n as u16,
                            expected: good.len() as u16
                        }),
                        "{kind} option {c} len {n}"
                    );
                }
            }
        }
    }
    // IP-flags is 16 bits although the draft's figure says "Len 1".
    let e = decode(&raw(3, 12, &[], &[(12, &[1])])).unwrap_err();
    assert_eq!(
        e.to_string(),
        "option 12 (IP-flags) has length 1, expected 2"
    );
}

#[test]
fn an_option_must_fit_in_the_message() {
    let mut m = raw(3, 12, &[], &[(2, IP)]);
    m.truncate(m.len() - 1);
    let len = m.len() as u16;
    m[..2].copy_from_slice(&len.to_be_bytes());
    assert_eq!(decode(&m), Err(DecodeError::OptionOverflow { code: 2 }));
    for tail in [&[0u8][..], &[0, 2], &[0, 2, 0]] {
        let m = raw(3, 12, tail, &[]);
        assert_eq!(
            decode(&m),
            Err(DecodeError::TruncatedOptionHeader { at: 12 })
        );
    }
}

#[test]
fn short_hba_is_kept_raw_for_the_engine_to_reject() {
    // Reference §1.6: ISC answers a 31-byte HBA with CONNECTACK reason 18.
    let m = msg(&raw(5, 12, &[], &[(22, b"ref"), (11, &[0xff; 31])]));
    assert_eq!(m.options.hba.as_deref(), Some(&[0xff; 31][..]));
    assert_eq!(m.options.relationship_name.as_deref(), Some(&b"ref"[..]));
}

#[test]
fn message_text_is_decoded_lossily() {
    let m = msg(&raw(12, 12, &[], &[(21, &[8]), (16, b"bad \xff name")]));
    assert_eq!(m.options.message.as_deref(), Some("bad \u{fffd} name"));
    assert_eq!(m.options.reject(), Some(RejectReason::InvalidPartner));
}

// --- encoding ----------------------------------------------------------------------------------

#[test]
fn encode_writes_options_in_isc_order_whatever_the_field_order() {
    let mut m = Message::new(MessageType::BndUpd, 5, 6);
    let o = &mut m.options;
    o.ip_flags = Some(1);
    o.cltt = Some(4);
    o.stos = Some(3);
    o.potential_expiry = Some(2);
    o.lease_expiry = Some(1);
    o.chaddr = Some(vec![1, 2, 3, 4, 5, 6, 7]);
    o.client_id = Some(vec![1, 2, 3, 4, 5, 6, 7]);
    o.binding_status = Some(2);
    o.assigned_ip = Some(Ipv4Addr::new(10, 0, 0, 1));
    let bytes = m.encode().unwrap();
    assert_eq!(codes(&bytes), [2, 3, 4, 5, 13, 18, 25, 6, 12]);
    assert_eq!(bytes[3], 12);
    m.options.ip_flags = None;
    let bytes = m.encode().unwrap();
    assert_eq!(
        bytes.len(),
        79,
        "reference §2: ACTIVE with 7-byte uid and chaddr"
    );
}

#[test]
fn encode_orders_for_each_isc_message() {
    let full = full_options();
    let expect: [(MessageType, &[u16]); 5] = [
        (MessageType::Connect, &[22, 14, 19, 28, 20, 27, 15, 11]),
        (MessageType::ConnectAck, &[22, 14, 19, 28, 20, 26, 21, 16]),
        (MessageType::State, &[24, 23, 25]),
        (MessageType::PoolResp, &[1]),
        (MessageType::Disconnect, &[21, 16]),
    ];
    for (kind, order) in expect {
        let m = Message {
            kind,
            time: 1,
            xid: 2,
            options: full.clone(),
        };
        assert_eq!(codes(&m.encode().unwrap()), order, "{kind}");
    }
    let m = Message::bndack(1, 2, Ipv4Addr::new(10, 0, 0, 1))
        .with_reject(RejectReason::LessCriticalBindInfo, "");
    assert_eq!(codes(&m.encode().unwrap()), [2, 21, 16]);
    assert_eq!(
        m.options.message.as_deref(),
        Some("Less critical binding information.")
    );
    for kind in [
        MessageType::PoolReq,
        MessageType::UpdReqAll,
        MessageType::UpdDone,
        MessageType::UpdReq,
        MessageType::Contact,
    ] {
        let m = Message {
            kind,
            time: 1,
            xid: 2,
            options: full.clone(),
        };
        assert_eq!(m.encode().unwrap().len(), 12, "{kind}");
    }
}

#[test]
fn encode_leaves_out_options_the_type_does_not_carry() {
    let m = Message {
        kind: MessageType::State,
        time: 1,
        xid: 2,
        options: full_options(),
    };
    let mut want = m.clone();
    want.options.retain_carried(MessageType::State);
    assert_eq!(decode(&m.encode().unwrap()), Ok(Decoded::Message(want)));
}

#[test]
fn encode_refuses_messages_above_2048_bytes() {
    let mut m = Message::new(MessageType::Connect, 1, 2);
    m.options.hba = Some(vec![0; MAX_MESSAGE_LEN - 16]);
    let fits = m.encode().unwrap();
    assert_eq!(fits.len(), MAX_MESSAGE_LEN);
    assert_eq!(frame_len(&fits), Ok(Some(MAX_MESSAGE_LEN)));
    assert_eq!(msg(&fits), m);
    m.options.hba = Some(vec![0; MAX_MESSAGE_LEN - 15]);
    assert_eq!(m.encode(), Err(EncodeError::TooLong(2049)));
    m.options.hba = Some(vec![0; 70_000]);
    let mut buf = vec![9, 9];
    assert_eq!(m.encode_into(&mut buf), Err(EncodeError::TooLong(70_016)));
    assert_eq!(buf, [9, 9], "buffer untouched on error");
}

#[test]
fn encode_into_appends() {
    let mut buf = Message::contact(1, 1).encode().unwrap();
    Message::state(1, 2, ServerState::Normal, 0, 3)
        .encode_into(&mut buf)
        .unwrap();
    assert_eq!(frame_len(&buf), Ok(Some(12)));
    assert_eq!(frame_len(&buf[12..]), Ok(Some(30)));
    assert_eq!(
        msg(&buf[12..]),
        Message::state(1, 2, ServerState::Normal, 0, 3)
    );
}

// --- enums -------------------------------------------------------------------------------------

#[test]
fn server_states_have_the_wire_values_isc_accepts() {
    let valid: Vec<u8> = (0..=255u8)
        .filter(|&v| ServerState::from_wire(v).is_some())
        .collect();
    let mut want: Vec<u8> = (0..=11).collect();
    want.push(254);
    assert_eq!(valid, want);
    for v in want {
        assert_eq!(ServerState::from_wire(v).unwrap().to_wire(), v);
    }
    assert_eq!(ServerState::RecoverWait.to_wire(), 254);
    let names = [
        (ServerState::Unknown, "unknown-state"),
        (ServerState::Startup, "startup"),
        (ServerState::Normal, "normal"),
        (
            ServerState::CommunicationsInterrupted,
            "communications-interrupted",
        ),
        (ServerState::PartnerDown, "partner-down"),
        (ServerState::PotentialConflict, "potential-conflict"),
        (ServerState::Recover, "recover"),
        (ServerState::Paused, "paused"),
        (ServerState::Shutdown, "shutdown"),
        (ServerState::RecoverDone, "recover-done"),
        (ServerState::ResolutionInterrupted, "resolution-interrupted"),
        (ServerState::ConflictDone, "conflict-done"),
        (ServerState::RecoverWait, "recover-wait"),
    ];
    for (s, n) in names {
        assert_eq!(s.isc_name(), n);
        assert_eq!(s.to_string(), n);
    }
}

#[test]
fn binding_status_is_1_to_7() {
    let valid: Vec<u8> = (0..=255u8)
        .filter(|&v| BindingStatus::from_wire(v).is_some())
        .collect();
    assert_eq!(valid, (1..=7).collect::<Vec<u8>>());
    assert_eq!(BindingStatus::Backup.to_wire(), 7);
    assert_eq!(BindingStatus::Released.to_string(), "released");
}

#[test]
fn reject_reasons_round_trip_every_byte() {
    for v in 0..=255u8 {
        assert_eq!(RejectReason::from_wire(v).to_wire(), v);
    }
    assert_eq!(RejectReason::from_wire(18), RejectReason::HbaConflict);
    assert_eq!(RejectReason::from_wire(254), RejectReason::Unknown);
    assert_eq!(RejectReason::from_wire(22), RejectReason::Other(22));
    assert_eq!(
        RejectReason::TimeMismatch.to_string(),
        "Connection rejected, time mismatch too great."
    );
    assert_eq!(
        RejectReason::Other(99).to_string(),
        "Undefined-99: This reason code is not defined in the protocol standard."
    );
    assert_eq!(
        RejectReason::DuplicateConnection.label(),
        "duplicate_connection"
    );
}

#[test]
fn option_names_are_isc_names() {
    assert_eq!(option_name(2), "assigned-IP-address");
    assert_eq!(option_name(9), "DDNS");
    assert_eq!(option_name(14), "max-unacked-bndupd");
    assert_eq!(option_name(30), "unknown");
}

#[test]
fn error_messages_are_lowercase_and_labelled() {
    let errors = [
        DecodeError::Frame(FrameError::TooShort(3)),
        DecodeError::Frame(FrameError::TooLong(3000)),
        DecodeError::LengthMismatch {
            declared: 20,
            actual: 12,
        },
        DecodeError::BadPayloadOffset { offset: 8, len: 12 },
        DecodeError::InvalidMessageType(13),
        DecodeError::TruncatedOptionHeader { at: 12 },
        DecodeError::OptionOverflow { code: 3 },
        DecodeError::DuplicateOption(2),
        DecodeError::BadOptionLength {
            code: 9,
            len: 8,
            expected: 0,
        },
    ];
    let mut labels: Vec<&str> = errors.iter().map(|e| e.as_str()).collect();
    for e in &errors {
        let s = e.to_string();
        assert!(s.starts_with(|c: char| c.is_ascii_lowercase()), "{s}");
    }
    labels.sort_unstable();
    labels.dedup();
    assert_eq!(labels.len(), errors.len());
    assert_eq!(EncodeError::TooLong(3000).as_str(), "too_long");
}

// --- properties --------------------------------------------------------------------------------

fn sample(c: u16) -> Vec<u8> {
    match c {
        3 | 10 | 20 | 21 | 23 | 24 | 26 | 27 => vec![1],
        12 => vec![0, 1],
        1 | 2 | 6 | 13 | 14 | 15 | 18 | 19 | 25 => vec![0, 0, 0, 1],
        _ => b"abc".to_vec(),
    }
}

fn is_variable(c: u16) -> bool {
    matches!(c, 4 | 5 | 7 | 8 | 11 | 16 | 22 | 28)
}

/// The option codes of an encoded message, in order.
fn codes(bytes: &[u8]) -> Vec<u16> {
    let mut out = Vec::new();
    let mut i = usize::from(bytes[3]);
    while i < bytes.len() {
        out.push(u16::from_be_bytes([bytes[i], bytes[i + 1]]));
        i += 4 + usize::from(u16::from_be_bytes([bytes[i + 2], bytes[i + 3]]));
    }
    out
}

fn full_options() -> Options {
    Options {
        addresses_transferred: Some(1),
        assigned_ip: Some(Ipv4Addr::new(10, 0, 0, 1)),
        binding_status: Some(2),
        client_id: Some(vec![1]),
        chaddr: Some(vec![1, 2]),
        cltt: Some(3),
        reply_options: Some(vec![4]),
        request_options: Some(vec![5]),
        hba: Some(vec![0xff; 32]),
        ip_flags: Some(1),
        lease_expiry: Some(6),
        max_unacked: Some(7),
        mclt: Some(8),
        message: Some("m".into()),
        potential_expiry: Some(9),
        receive_timer: Some(10),
        protocol_version: Some(1),
        reject_reason: Some(16),
        relationship_name: Some(b"ref".to_vec()),
        server_flags: Some(1),
        server_state: Some(2),
        stos: Some(11),
        tls_reply: Some(0),
        tls_request: Some(0),
        vendor_class: Some(b"v".to_vec()),
    }
}

fn bytes() -> impl Strategy<Value = Option<Vec<u8>>> {
    proptest::option::of(proptest::collection::vec(any::<u8>(), 0..40))
}

fn options() -> impl Strategy<Value = Options> {
    (
        (
            any::<Option<u32>>(),
            any::<Option<[u8; 4]>>(),
            any::<Option<u8>>(),
            bytes(),
            bytes(),
            any::<Option<u32>>(),
            bytes(),
            bytes(),
        ),
        (
            bytes(),
            any::<Option<u16>>(),
            any::<Option<u32>>(),
            any::<Option<u32>>(),
            any::<Option<u32>>(),
            proptest::option::of("\\PC{0,30}"),
            any::<Option<u32>>(),
            any::<Option<u32>>(),
        ),
        (
            any::<Option<u8>>(),
            any::<Option<u8>>(),
            bytes(),
            any::<Option<u8>>(),
            any::<Option<u8>>(),
            any::<Option<u32>>(),
            any::<Option<u8>>(),
            any::<Option<u8>>(),
            bytes(),
        ),
    )
        .prop_map(|(a, b, c)| Options {
            addresses_transferred: a.0,
            assigned_ip: a.1.map(Ipv4Addr::from),
            binding_status: a.2,
            client_id: a.3,
            chaddr: a.4,
            cltt: a.5,
            reply_options: a.6,
            request_options: a.7,
            hba: b.0,
            ip_flags: b.1,
            lease_expiry: b.2,
            max_unacked: b.3,
            mclt: b.4,
            message: b.5,
            potential_expiry: b.6,
            receive_timer: b.7,
            protocol_version: c.0,
            reject_reason: c.1,
            relationship_name: c.2,
            server_flags: c.3,
            server_state: c.4,
            stos: c.5,
            tls_reply: c.6,
            tls_request: c.7,
            vendor_class: c.8,
        })
}

/// Well-formed messages: every field is one the type carries.
fn message() -> impl Strategy<Value = Message> {
    (
        proptest::sample::select(MessageType::ALL.to_vec()),
        any::<u32>(),
        any::<u32>(),
        options(),
    )
        .prop_map(|(kind, time, xid, mut options)| {
            options.retain_carried(kind);
            Message {
                kind,
                time,
                xid,
                options,
            }
        })
}

/// Frames with a consistent length field and random option TLVs, to reach deep into decode.
fn structured_frame() -> impl Strategy<Value = Vec<u8>> {
    (
        prop_oneof![0u8..=14, any::<u8>()],
        prop_oneof![Just(12u8), 0u8..=24],
        proptest::collection::vec(any::<u8>(), 0..6),
        proptest::collection::vec(
            (0u16..=32, proptest::collection::vec(any::<u8>(), 0..6)),
            0..10,
        ),
        any::<bool>(),
    )
        .prop_map(|(kind, offset, gap, opts, chop)| {
            let opts: Vec<(u16, &[u8])> = opts.iter().map(|(c, d)| (*c, &d[..])).collect();
            let mut m = raw(kind, offset, &gap, &opts);
            if chop && m.len() > 12 {
                m.pop();
                let len = m.len() as u16;
                m[..2].copy_from_slice(&len.to_be_bytes());
            }
            m
        })
}

/// Frames most of which decode: a known type, the payload right after the gap, each option code
/// once, with a length a fixed-size option has (1, 2 or 4) or any up to 7.
fn plausible_frame() -> impl Strategy<Value = Vec<u8>> {
    let data = prop_oneof![
        proptest::collection::vec(any::<u8>(), 1),
        proptest::collection::vec(any::<u8>(), 2),
        proptest::collection::vec(any::<u8>(), 4),
        proptest::collection::vec(any::<u8>(), 0..8),
    ];
    (
        1u8..=12,
        proptest::collection::vec(any::<u8>(), 0..6),
        proptest::collection::btree_map(0u16..=32, data, 0..8),
    )
        .prop_map(|(kind, gap, opts)| {
            let opts: Vec<(u16, &[u8])> = opts.iter().map(|(c, d)| (*c, &d[..])).collect();
            raw(kind, 12 + gap.len() as u8, &gap, &opts)
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn decode_inverts_encode(m in message()) {
        let bytes = m.encode().unwrap();
        prop_assert_eq!(frame_len(&bytes), Ok(Some(bytes.len())));
        prop_assert_eq!(bytes[3], 12);
        // Options appear in ISC's order for the type, and only carried ones.
        let order = m.kind.carried_options();
        let pos: Vec<usize> = codes(&bytes)
            .iter()
            .map(|c| order.iter().position(|o| o == c).unwrap())
            .collect();
        prop_assert!(pos.windows(2).all(|w| w[0] < w[1]));
        prop_assert!(!codes(&bytes).contains(&code::DDNS));
        prop_assert_eq!(decode(&bytes), Ok(Decoded::Message(m)));
    }

    #[test]
    fn arbitrary_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = frame_len(&b);
        let _ = decode(&b);
    }

    #[test]
    fn a_stream_of_messages_splits_back_into_them(ms in proptest::collection::vec(message(), 0..8)) {
        let mut stream = Vec::new();
        for m in &ms {
            m.encode_into(&mut stream).unwrap();
        }
        let mut got = Vec::new();
        let mut rest = &stream[..];
        while let Some(n) = frame_len(rest).unwrap() {
            got.push(match decode(&rest[..n]).unwrap() {
                Decoded::Message(m) => m,
                Decoded::Ignored { kind } => panic!("ignored {kind}"),
            });
            rest = &rest[n..];
        }
        prop_assert!(rest.is_empty());
        prop_assert_eq!(got, ms);
    }
}

/// Every generated frame that decodes to a message encodes back to one that decodes the same.
/// Half the frames are [`structured_frame`]s, which probe the decoder's refusals and of which
/// few decode; half are [`plausible_frame`]s. How many reach the re-encoding is counted,
/// printed and held to a floor, so that a decoder (or generator) change that makes nearly all
/// of them fail cannot leave this property checking nothing.
#[test]
fn decoded_frames_reencode_to_the_same_message() {
    const CASES: u32 = 2000;
    let reencoded = AtomicUsize::new(0);
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(CASES));
    let frames = prop_oneof![structured_frame(), plausible_frame()];
    let result = runner.run(&frames, |f| {
        prop_assert!(frame_len(&f).is_ok());
        if let Ok(Decoded::Message(m)) = decode(&f) {
            reencoded.fetch_add(1, Ordering::Relaxed);
            let again = m.encode().unwrap();
            prop_assert_eq!(decode(&again), Ok(Decoded::Message(m)));
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    let n = reencoded.load(Ordering::Relaxed);
    println!("{n} of {CASES} generated frames decoded to a message and were re-encoded");
    assert!(
        n * 4 >= CASES as usize,
        "only {n} of {CASES} generated frames decoded to a message: the property checked too few"
    );
}
