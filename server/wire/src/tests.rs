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

    #[test]
    fn arbitrary_options_after_a_valid_header_never_panic(opts in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
        let mut raw = discover_with_agent_info();
        raw.truncate(OPTIONS_OFFSET);
        raw.extend_from_slice(&opts);
        if let Ok(inbound) = decode_request(&raw) {
            let _ = encode_reply(&inbound.msg, inbound.relay_agent_info.as_deref());
        }
    }
}
