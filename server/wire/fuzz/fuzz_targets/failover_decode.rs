//! Failover codec: framing and decoding never panic, and every decoded message survives
//! `decode → encode → decode` unchanged.
#![no_main]

use dhcpair_wire::failover::{decode, frame_len, Decoded};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Treat the input as a TCP byte stream: split it the way the shell does.
    let mut rest = data;
    while let Ok(Some(n)) = frame_len(rest) {
        let (frame, tail) = rest.split_at(n);
        rest = tail;
        let Ok(Decoded::Message(m)) = decode(frame) else {
            continue;
        };
        let bytes = match m.encode() {
            Ok(b) => b,
            Err(e) => panic!("a decoded message must re-encode: {e}"),
        };
        assert_eq!(frame_len(&bytes), Ok(Some(bytes.len())));
        assert_eq!(decode(&bytes), Ok(Decoded::Message(m)));
    }
    // And as a single frame, whatever its length field says.
    let _ = decode(data);
});
