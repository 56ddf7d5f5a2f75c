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
    let out = encode_reply(&reply, Some(&rai)).unwrap();
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
fn a_wrong_length_message_type_is_dropped_from_the_options() {
    let mut raw = discover_with_agent_info();
    raw.truncate(OPTIONS_OFFSET);
    raw.extend_from_slice(&[53, 2, 1, 1, 255]);
    assert_eq!(decode_request(&raw).unwrap().msg.opts().msg_type(), None);
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
            let _ = encode_reply(&inbound.msg, inbound.relay_agent_info.as_deref());
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
