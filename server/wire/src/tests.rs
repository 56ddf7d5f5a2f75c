#![allow(clippy::unwrap_used)]
use super::*;
use dhcproto::v4::{DhcpOption, MessageType};

fn discover_with_agent_info() -> Vec<u8> {
    let mut m = Message::new_with_id(
        0x1234_5678,
        [0, 0, 0, 0].into(),
        [0, 0, 0, 0].into(),
        [0, 0, 0, 0].into(),
        [10, 1, 0, 1].into(),
        &[0x52, 0x54, 0, 0x12, 0x34, 0x56],
    );
    m.opts_mut()
        .insert(DhcpOption::MessageType(MessageType::Discover));
    let mut buf = Vec::new();
    m.encode(&mut Encoder::new(&mut buf)).unwrap();
    // Append option 82 by hand, with sub-options in an order a HashMap would not keep.
    let end = buf.len() - 1;
    let rai = [
        82u8, 12, 2, 4, 0xde, 0xad, 0xbe, 0xef, 1, 4, b'e', b't', b'h', b'0',
    ];
    buf.splice(end..end, rai[..].iter().copied());
    // Fix the length of option 82 (12 bytes of data are 2+4+2+4 = 12).
    buf
}

#[test]
fn relay_agent_information_is_echoed_byte_for_byte() {
    let raw = discover_with_agent_info();
    let inbound = decode_request(&raw).unwrap();
    let rai = inbound.relay_agent_info.clone().unwrap();
    assert_eq!(
        rai,
        vec![82, 12, 2, 4, 0xde, 0xad, 0xbe, 0xef, 1, 4, b'e', b't', b'h', b'0']
    );
    let mut reply = inbound.msg.clone();
    reply
        .opts_mut()
        .remove(dhcproto::v4::OptionCode::RelayAgentInformation);
    reply.set_opcode(Opcode::BootReply);
    let out = encode_reply(&reply, Some(&rai), &ReplyShape::default()).unwrap();
    assert!(out.len() >= MIN_REPLY_LEN);
    let found = find_option(&out[OPTIONS_OFFSET..], 82).unwrap().unwrap();
    assert_eq!(found, &rai[..]);
}

#[test]
fn short_and_foreign_packets_are_refused_with_reasons() {
    assert_eq!(decode_request(&[0u8; 10]), Err(DecodeError::TooShort));
    let mut raw = discover_with_agent_info();
    raw[236] = 0;
    assert_eq!(decode_request(&raw), Err(DecodeError::BadCookie));
    let mut raw = discover_with_agent_info();
    raw[0] = 2;
    assert_eq!(decode_request(&raw), Err(DecodeError::NotARequest));
    let mut raw = discover_with_agent_info();
    raw.truncate(raw.len() - 5); // cut inside option 82
    assert_eq!(decode_request(&raw), Err(DecodeError::BadOptions));
}

#[test]
fn options_dhcproto_would_assert_on_are_dropped_not_fatal() {
    let mut raw = discover_with_agent_info();
    raw.truncate(OPTIONS_OFFSET);
    // Option 94 with length 0 and option 80 with length 2 (dhcproto debug-asserts on both),
    // option 81 shorter than its 3 fixed bytes, then a valid message type.
    raw.extend_from_slice(&[94, 0, 80, 2, 0, 0, 81, 1, 0, 53, 1, 1, 255]);
    let inbound = decode_request(&raw).unwrap();
    assert_eq!(inbound.msg.opts().msg_type(), Some(MessageType::Discover));
    assert!(inbound
        .msg
        .opts()
        .get(dhcproto::v4::OptionCode::ClientFQDN)
        .is_none());
}

#[test]
fn a_message_type_that_cannot_be_read_refuses_the_packet() {
    // Two bytes long, or given twice (RFC 3396 concatenates repeated options): either way
    // the packet is not a readable DHCP message and must not pass for BOOTP.
    for opts in [&[53u8, 2, 1, 1, 255][..], &[53, 1, 1, 53, 1, 3, 255]] {
        let mut raw = discover_with_agent_info();
        raw.truncate(OPTIONS_OFFSET);
        raw.extend_from_slice(opts);
        assert_eq!(
            decode_request(&raw),
            Err(DecodeError::BadOptions),
            "{opts:?}"
        );
    }
}

#[test]
fn a_parameter_request_list_split_over_two_options_is_read_whole() {
    let mut raw = discover_with_agent_info();
    raw.truncate(OPTIONS_OFFSET);
    raw.extend_from_slice(&[53, 1, 1, 55, 2, 1, 3, 55, 2, 66, 150, 255]);
    let m = decode_request(&raw).unwrap().msg;
    assert_eq!(ReplyShape::of(&m).order, vec![1, 3, 66, 150]);
}

/// The option codes of an encoded reply, in wire order.
fn codes_on_wire(buf: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let opts = &buf[OPTIONS_OFFSET..];
    let mut i = 0;
    while i < opts.len() && opts[i] != 255 {
        if opts[i] == 0 {
            i += 1;
            continue;
        }
        out.push(opts[i]);
        i += 2 + opts[i + 1] as usize;
    }
    out
}

fn reply_with(options: &[(u8, usize)]) -> Message {
    let mut m = Message::default();
    m.set_opcode(Opcode::BootReply);
    m.opts_mut()
        .insert(DhcpOption::MessageType(MessageType::Ack));
    m.opts_mut()
        .insert(DhcpOption::ServerIdentifier([10, 0, 0, 1].into()));
    m.opts_mut().insert(DhcpOption::AddressLeaseTime(600));
    for (code, len) in options {
        m.opts_mut()
            .insert(DhcpOption::Unknown(dhcproto::v4::UnknownOption::new(
                (*code).into(),
                vec![7; *len],
            )));
    }
    m
}

#[test]
fn options_follow_the_request_list_order_after_type_server_id_and_times() {
    let m = reply_with(&[(1, 4), (3, 4), (66, 5), (150, 4), (6, 8), (224, 2)]);
    let shape = ReplyShape {
        order: vec![150, 6, 66, 3, 1],
        ..ReplyShape::default()
    };
    let out = encode_reply(&m, Some(&[82, 2, 1, 0]), &shape).unwrap();
    // Written by hand from RFC 2132 §3.3, §9.8 and RFC 3046 §2.2: the subnet mask before
    // the router, the other requested options in the client's order, the rest by code,
    // option 82 last.
    assert_eq!(
        codes_on_wire(&out),
        vec![53, 54, 51, 1, 150, 6, 66, 3, 224, 82]
    );
}

#[test]
fn a_long_option_is_split_within_the_options_field_or_across_file_when_it_must_be() {
    // 300 bytes of option 43 become two options (255 + 45, RFC 3396).
    let m = reply_with(&[(43, 300), (3, 4)]);
    let big = ReplyShape {
        order: vec![3, 43],
        max_message_size: 1500,
    };
    let out = encode_reply(&m, None, &big).unwrap();
    assert_eq!(codes_on_wire(&out), vec![53, 54, 51, 3, 43, 43]);
    let total_43: usize = {
        let opts = &out[OPTIONS_OFFSET..];
        let mut i = 0;
        let mut n = 0;
        while opts[i] != 255 {
            if opts[i] == 43 {
                n += opts[i + 1] as usize;
            }
            i += 2 + opts[i + 1] as usize;
        }
        n
    };
    assert_eq!(total_43, 300);
    // With 576 bytes (28 of them IP and UDP headers) the options field has 548 - 240 - 1
    // (END) - 3 (option 52) - 15 (53, 54, 51) - 6 (option 3) = 283 bytes: 255 of option 43
    // go there, the other 45 into `file` (RFC 3396 §6: the client joins the pieces).
    let small = ReplyShape {
        order: vec![3, 43],
        max_message_size: 576,
    };
    let out = encode_reply(&m, None, &small).unwrap();
    assert!(out.len() <= 576 - 28);
    assert_eq!(codes_on_wire(&out), vec![53, 54, 51, 3, 43, 52]);
    assert_eq!(codes_in(&out[108..236]), vec![43]);
    assert_eq!(out[108 + 1], 45);
}

/// The options of the `file` (108..236) or `sname` (44..108) field, up to END.
fn codes_in(field: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < field.len() && field[i] != 255 {
        if field[i] == 0 {
            i += 1;
            continue;
        }
        out.push(field[i]);
        i += 2 + field[i + 1] as usize;
    }
    out
}

#[test]
fn options_that_overflow_576_bytes_go_into_file_then_sname_with_option_52() {
    // Worked out by hand. 576 - 28 = 548 bytes; the options field has 548 - 240 - 1 (END)
    // - 3 (option 52) = 304, less 15 for 53, 54 and 51: 289. In rank order: 3 (52 bytes on
    // the wire) fits (237 left), 43 (200) fits (37 left), 66 (100) goes to `file` (127 - 1
    // for END: 27 left). 67 (88 bytes of data) fits no area whole, so it is split: 35 bytes
    // in the options field, 25 in `file`, 28 in `sname` (33 left there). 150 (48 bytes of
    // data) fits nowhere any more and is left out: it ranks last.
    let m = reply_with(&[(43, 198), (66, 98), (67, 88), (150, 48), (3, 50)]);
    let shape = ReplyShape {
        order: vec![3, 43, 66, 67, 150],
        max_message_size: 576,
    };
    let out = encode_reply(&m, None, &shape).unwrap();
    assert!(out.len() <= 548, "{}", out.len());
    assert_eq!(codes_on_wire(&out), vec![53, 54, 51, 3, 43, 67, 52]);
    assert_eq!(codes_in(&out[108..236]), vec![66, 67]);
    assert_eq!(codes_in(&out[44..108]), vec![67]);
    let opts = &out[OPTIONS_OFFSET..];
    let at = opts.windows(3).position(|w| w == [52, 1, 3]);
    assert!(at.is_some(), "option 52 says both fields are used");
}

#[test]
fn relay_sub_options_are_found_by_number() {
    // Circuit id "eth0", link selection 10.9.0.0, server id override 10.0.0.2.
    let rai = [
        82u8, 18, 1, 4, b'e', b't', b'h', b'0', 5, 4, 10, 9, 0, 0, 11, 4, 10, 0, 0, 2,
    ];
    assert_eq!(relay_sub_option(&rai, 1), Some(&b"eth0"[..]));
    assert_eq!(
        relay_sub_option_addr(&rai, relay::LINK_SELECTION),
        Some([10, 9, 0, 0].into())
    );
    assert_eq!(
        relay_sub_option_addr(&rai, relay::SERVER_ID_OVERRIDE),
        Some([10, 0, 0, 2].into())
    );
    assert_eq!(relay_sub_option(&rai, 2), None);
    // Truncated sub-options are not read past the option.
    assert_eq!(relay_sub_option(&[82, 4, 5, 4, 10, 9], 5), None);
    assert_eq!(relay_sub_option_addr(&[82, 3, 5, 1, 10], 5), None);
}

#[test]
fn a_client_identifier_shorter_than_two_bytes_refuses_the_packet() {
    // RFC 2132 §9.14: minimum length 2 (Kea and ISC drop such packets too).
    for opts in [&[53u8, 1, 1, 61, 0, 255][..], &[53, 1, 1, 61, 1, 1, 255]] {
        let mut raw = discover_with_agent_info();
        raw.truncate(OPTIONS_OFFSET);
        raw.extend_from_slice(opts);
        assert_eq!(
            decode_request(&raw),
            Err(DecodeError::BadOptions),
            "{opts:?}"
        );
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..600)) {
        let _ = decode_request(&bytes);
    }
}

/// Option bytes after a valid BOOTP header: a quarter plain random bytes (nearly all of which
/// run past the end and are refused), the rest options with consistent lengths, codes both the
/// server reads and any others, ending in END or in a few stray bytes.
fn option_bytes() -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
    use proptest::prelude::*;
    let code = prop_oneof![
        proptest::sample::select(vec![12u8, 50, 51, 53, 54, 55, 57, 61, 82]),
        any::<u8>(),
    ];
    let option = (code, proptest::collection::vec(any::<u8>(), 0..12)).prop_map(|(code, data)| {
        let mut o = vec![code, data.len() as u8];
        o.extend_from_slice(&data);
        o
    });
    let options = (
        proptest::collection::vec(option, 0..12),
        any::<bool>(),
        proptest::collection::vec(any::<u8>(), 0..3),
    )
        .prop_map(|(options, end, stray)| {
            let mut bytes = options.concat();
            if end {
                bytes.push(255);
            } else {
                bytes.extend_from_slice(&stray);
            }
            bytes
        });
    prop_oneof![
        1 => proptest::collection::vec(any::<u8>(), 0..300),
        3 => options,
    ]
}

/// Options after a valid BOOTP header: decoding never panics, and neither does encoding a
/// reply to whatever decoded. How many cases reach the encoding is counted, printed and held to
/// a floor, so that the property cannot end up checking only the decoder's refusals (of plain
/// random bytes, under 2% decode).
#[test]
fn arbitrary_options_after_a_valid_header_never_panic() {
    const CASES: u32 = 2000;
    let encoded = std::sync::atomic::AtomicUsize::new(0);
    let mut runner = proptest::test_runner::TestRunner::new(
        proptest::prelude::ProptestConfig::with_cases(CASES),
    );
    let result = runner.run(&option_bytes(), |opts| {
        let mut raw = discover_with_agent_info();
        raw.truncate(OPTIONS_OFFSET);
        raw.extend_from_slice(&opts);
        if let Ok(inbound) = decode_request(&raw) {
            encoded.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let _ = encode_reply(
                &inbound.msg,
                inbound.relay_agent_info.as_deref(),
                &ReplyShape::of(&inbound.msg),
            );
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    let n = encoded.load(std::sync::atomic::Ordering::Relaxed);
    println!("{n} of {CASES} generated option sets decoded and had a reply encoded");
    assert!(
        n * 4 >= CASES as usize,
        "only {n} of {CASES} generated option sets decoded: the property checked too few"
    );
}
