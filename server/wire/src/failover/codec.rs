//! Framing, decoding and encoding of failover messages (draft-12 §6; ISC's
//! `dhcp_failover_link_signal`, `do_a_failover_option`, `dhcp_failover_put_message`).

use std::net::Ipv4Addr;

use super::{code, option_name, Message, MessageType, Options, HEADER_LEN, MAX_MESSAGE_LEN};

/// The 2-byte length at the start of the byte stream is unusable; the connection must close
/// (ISC: `message length wait: protocol error`, no DISCONNECT).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("message length {0} is shorter than the 12-byte header")]
    TooShort(u16),
    #[error("message length {0} is above the 2048-byte maximum")]
    TooLong(u16),
}

impl FrameError {
    /// A stable label for metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            FrameError::TooShort(_) => "frame_too_short",
            FrameError::TooLong(_) => "frame_too_long",
        }
    }
}

/// A message ISC would treat as a protocol error. Every one ends the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error(transparent)]
    Frame(#[from] FrameError),
    #[error("length field says {declared} bytes but the frame has {actual}")]
    LengthMismatch { declared: u16, actual: usize },
    #[error("payload offset {offset} outside 12..={len}")]
    BadPayloadOffset { offset: u8, len: u16 },
    #[error("message type {0} carries options")]
    InvalidMessageType(u8),
    #[error("option header at byte {at} runs past the end of the message")]
    TruncatedOptionHeader { at: usize },
    #[error("option {code} ({}) runs past the end of the message", option_name(*.code))]
    OptionOverflow { code: u16 },
    #[error("duplicate option {} ({})", .0, option_name(*.0))]
    DuplicateOption(u16),
    #[error("option {code} ({}) has length {len}, expected {expected}", option_name(*.code))]
    BadOptionLength { code: u16, len: u16, expected: u16 },
}

impl DecodeError {
    /// A stable label for metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            DecodeError::Frame(e) => e.as_str(),
            DecodeError::LengthMismatch { .. } => "length_mismatch",
            DecodeError::BadPayloadOffset { .. } => "bad_payload_offset",
            DecodeError::InvalidMessageType(_) => "invalid_message_type",
            DecodeError::TruncatedOptionHeader { .. } => "truncated_option_header",
            DecodeError::OptionOverflow { .. } => "option_overflow",
            DecodeError::DuplicateOption(_) => "duplicate_option",
            DecodeError::BadOptionLength { .. } => "bad_option_length",
        }
    }
}

/// A message could not be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    #[error("encoded message would be {0} bytes, above the 2048-byte maximum")]
    TooLong(usize),
}

impl EncodeError {
    /// A stable label for metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            EncodeError::TooLong(_) => "too_long",
        }
    }
}

/// The outcome of decoding one well-framed message.
// Not boxed: a decoded message is moved once, into the engine; `Ignored` is rare.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded {
    Message(Message),
    /// A message of a type this protocol does not define (0 or above 12) that ISC silently
    /// ignores: one above 12 with no option bytes, or type 0 with well-formed options.
    Ignored {
        kind: u8,
    },
}

/// How many bytes the next message occupies at the start of `buf`: `Ok(None)` until the whole
/// message has arrived, an error if its length field is outside 12..=2048 (draft-12 §6.1; ISC
/// `DHCP_FAILOVER_MIN/MAX_MESSAGE_SIZE`).
pub fn frame_len(buf: &[u8]) -> Result<Option<usize>, FrameError> {
    let Some(&[hi, lo]) = buf.first_chunk::<2>() else {
        return Ok(None);
    };
    let len = u16::from_be_bytes([hi, lo]);
    if usize::from(len) < HEADER_LEN {
        return Err(FrameError::TooShort(len));
    }
    if usize::from(len) > MAX_MESSAGE_LEN {
        return Err(FrameError::TooLong(len));
    }
    Ok((buf.len() >= usize::from(len)).then_some(usize::from(len)))
}

/// Decode exactly one message (`frame` as delimited by [`frame_len`]). Never panics.
///
/// ISC's acceptance rules (reference §1.3, `do_a_failover_option` in 4.4.3), in order:
/// - the length field must equal the frame length and be 12..=2048; the payload offset must be
///   at least 12 (bytes between 12 and the offset are skipped) and at most the length;
/// - a type above 12 is [`Decoded::Ignored`] if no bytes follow the payload offset, else
///   [`DecodeError::InvalidMessageType`]; type 0 is ignored after its options are walked;
/// - each option's 4-byte header and its data must fit in the message;
/// - codes 0 and above 29 are skipped;
/// - options the message type does not carry ([`MessageType::carried_options`]) are skipped
///   without any further check (ISC skips them before its size check, and never marks them
///   present, so even a repeated one is accepted);
/// - a carried option seen twice is [`DecodeError::DuplicateOption`];
/// - a carried fixed-size option must have its exact length (u8: 1, IP-flags: 2, u32 and IP
///   address: 4); variable ones may have any length, 0 included.
///
/// One deliberate leniency: DDNS (9) is skipped in BNDUPD/BNDACK too, whatever its length.
/// ISC 4.4.3 treats a DDNS option there as a protocol error (reference §0 fact 3); we never act
/// on DDNS, so we drop the option rather than the link.
pub fn decode(frame: &[u8]) -> Result<Decoded, DecodeError> {
    let Some(&[l0, l1]) = frame.first_chunk::<2>() else {
        return Err(FrameError::TooShort(frame.len() as u16).into());
    };
    let len = u16::from_be_bytes([l0, l1]);
    if usize::from(len) < HEADER_LEN {
        return Err(FrameError::TooShort(len).into());
    }
    if usize::from(len) > MAX_MESSAGE_LEN {
        return Err(FrameError::TooLong(len).into());
    }
    let mismatch = DecodeError::LengthMismatch {
        declared: len,
        actual: frame.len(),
    };
    if usize::from(len) != frame.len() {
        return Err(mismatch);
    }
    let Some(&[_, _, kind, offset, t0, t1, t2, t3, x0, x1, x2, x3]) =
        frame.first_chunk::<HEADER_LEN>()
    else {
        return Err(mismatch);
    };
    let payload = match frame.get(usize::from(offset)..) {
        Some(p) if usize::from(offset) >= HEADER_LEN => p,
        _ => return Err(DecodeError::BadPayloadOffset { offset, len }),
    };
    let time = u32::from_be_bytes([t0, t1, t2, t3]);
    let xid = u32::from_be_bytes([x0, x1, x2, x3]);

    let Some(kind_t) = MessageType::from_wire(kind) else {
        if kind != 0 {
            // ISC checks the type only when it is about to read an option.
            return if payload.is_empty() {
                Ok(Decoded::Ignored { kind })
            } else {
                Err(DecodeError::InvalidMessageType(kind))
            };
        }
        // Type 0 is within ISC's table, with no option carried: walk, keep nothing.
        walk(payload, usize::from(offset), |_, _| Ok(()))?;
        return Ok(Decoded::Ignored { kind });
    };

    let mut options = Options::default();
    let mut seen = [false; code::MAX as usize + 1];
    walk(payload, usize::from(offset), |c, data| {
        if c == code::DDNS || !kind_t.carries(c) {
            return Ok(());
        }
        let slot = &mut seen[usize::from(c)];
        if *slot {
            return Err(DecodeError::DuplicateOption(c));
        }
        *slot = true;
        options.set(c, data)
    })?;
    Ok(Decoded::Message(Message {
        kind: kind_t,
        time,
        xid,
        options,
    }))
}

/// Walk the option TLVs of `payload` (which starts at byte `base` of the message), calling
/// `f(code, data)` for each code in 1..=29.
fn walk(
    payload: &[u8],
    base: usize,
    mut f: impl FnMut(u16, &[u8]) -> Result<(), DecodeError>,
) -> Result<(), DecodeError> {
    let mut rest = payload;
    while !rest.is_empty() {
        let at = base + (payload.len() - rest.len());
        let Some((&[c0, c1, n0, n1], tail)) = rest.split_first_chunk::<4>() else {
            return Err(DecodeError::TruncatedOptionHeader { at });
        };
        let c = u16::from_be_bytes([c0, c1]);
        let n = usize::from(u16::from_be_bytes([n0, n1]));
        let Some((data, tail)) = tail.split_at_checked(n) else {
            return Err(DecodeError::OptionOverflow { code: c });
        };
        if (1..=code::MAX).contains(&c) {
            f(c, data)?;
        }
        rest = tail;
    }
    Ok(())
}

/// A borrowed option value, for encoding.
enum Value<'a> {
    U8(u8),
    U16(u16),
    U32(u32),
    Ip(Ipv4Addr),
    Bytes(&'a [u8]),
}

/// Read a fixed-size value, or report the expected length.
fn fixed<const N: usize>(c: u16, data: &[u8]) -> Result<[u8; N], DecodeError> {
    <[u8; N]>::try_from(data).map_err(|_| DecodeError::BadOptionLength {
        code: c,
        len: u16::try_from(data.len()).unwrap_or(u16::MAX),
        expected: N as u16,
    })
}

impl Options {
    /// Store option `c` (a carried code) from its data, checking fixed lengths.
    fn set(&mut self, c: u16, data: &[u8]) -> Result<(), DecodeError> {
        let u8v = || fixed::<1>(c, data).map(|[b]| b);
        let u32v = || fixed::<4>(c, data).map(u32::from_be_bytes);
        let bytes = || Some(data.to_vec());
        match c {
            code::ADDRESSES_TRANSFERRED => self.addresses_transferred = Some(u32v()?),
            code::ASSIGNED_IP_ADDRESS => {
                self.assigned_ip = Some(Ipv4Addr::from(fixed::<4>(c, data)?));
            }
            code::BINDING_STATUS => self.binding_status = Some(u8v()?),
            code::CLIENT_IDENTIFIER => self.client_id = bytes(),
            code::CHADDR => self.chaddr = bytes(),
            code::CLTT => self.cltt = Some(u32v()?),
            code::REPLY_OPTIONS => self.reply_options = bytes(),
            code::REQUEST_OPTIONS => self.request_options = bytes(),
            code::HBA => self.hba = bytes(),
            code::IP_FLAGS => self.ip_flags = Some(fixed::<2>(c, data).map(u16::from_be_bytes)?),
            code::LEASE_EXPIRY => self.lease_expiry = Some(u32v()?),
            code::MAX_UNACKED => self.max_unacked = Some(u32v()?),
            code::MCLT => self.mclt = Some(u32v()?),
            code::MESSAGE => self.message = Some(String::from_utf8_lossy(data).into_owned()),
            code::POTENTIAL_EXPIRY => self.potential_expiry = Some(u32v()?),
            code::RECEIVE_TIMER => self.receive_timer = Some(u32v()?),
            code::PROTOCOL_VERSION => self.protocol_version = Some(u8v()?),
            code::REJECT_REASON => self.reject_reason = Some(u8v()?),
            code::RELATIONSHIP_NAME => self.relationship_name = bytes(),
            code::SERVER_FLAGS => self.server_flags = Some(u8v()?),
            code::SERVER_STATE => self.server_state = Some(u8v()?),
            code::STOS => self.stos = Some(u32v()?),
            code::TLS_REPLY => self.tls_reply = Some(u8v()?),
            code::TLS_REQUEST => self.tls_request = Some(u8v()?),
            code::VENDOR_CLASS => self.vendor_class = bytes(),
            // Not represented (never carried): DDNS, delayed-service, digest, vendor options.
            _ => {}
        }
        Ok(())
    }

    /// The value of option `c`, if present.
    fn get(&self, c: u16) -> Option<Value<'_>> {
        fn bytes(v: &Option<Vec<u8>>) -> Option<Value<'_>> {
            v.as_deref().map(Value::Bytes)
        }
        match c {
            code::ADDRESSES_TRANSFERRED => self.addresses_transferred.map(Value::U32),
            code::ASSIGNED_IP_ADDRESS => self.assigned_ip.map(Value::Ip),
            code::BINDING_STATUS => self.binding_status.map(Value::U8),
            code::CLIENT_IDENTIFIER => bytes(&self.client_id),
            code::CHADDR => bytes(&self.chaddr),
            code::CLTT => self.cltt.map(Value::U32),
            code::REPLY_OPTIONS => bytes(&self.reply_options),
            code::REQUEST_OPTIONS => bytes(&self.request_options),
            code::HBA => bytes(&self.hba),
            code::IP_FLAGS => self.ip_flags.map(Value::U16),
            code::LEASE_EXPIRY => self.lease_expiry.map(Value::U32),
            code::MAX_UNACKED => self.max_unacked.map(Value::U32),
            code::MCLT => self.mclt.map(Value::U32),
            code::MESSAGE => self.message.as_deref().map(|s| Value::Bytes(s.as_bytes())),
            code::POTENTIAL_EXPIRY => self.potential_expiry.map(Value::U32),
            code::RECEIVE_TIMER => self.receive_timer.map(Value::U32),
            code::PROTOCOL_VERSION => self.protocol_version.map(Value::U8),
            code::REJECT_REASON => self.reject_reason.map(Value::U8),
            code::RELATIONSHIP_NAME => bytes(&self.relationship_name),
            code::SERVER_FLAGS => self.server_flags.map(Value::U8),
            code::SERVER_STATE => self.server_state.map(Value::U8),
            code::STOS => self.stos.map(Value::U32),
            code::TLS_REPLY => self.tls_reply.map(Value::U8),
            code::TLS_REQUEST => self.tls_request.map(Value::U8),
            code::VENDOR_CLASS => bytes(&self.vendor_class),
            _ => None,
        }
    }

    /// Remove option `c`.
    pub(super) fn clear(&mut self, c: u16) {
        match c {
            code::ADDRESSES_TRANSFERRED => self.addresses_transferred = None,
            code::ASSIGNED_IP_ADDRESS => self.assigned_ip = None,
            code::BINDING_STATUS => self.binding_status = None,
            code::CLIENT_IDENTIFIER => self.client_id = None,
            code::CHADDR => self.chaddr = None,
            code::CLTT => self.cltt = None,
            code::REPLY_OPTIONS => self.reply_options = None,
            code::REQUEST_OPTIONS => self.request_options = None,
            code::HBA => self.hba = None,
            code::IP_FLAGS => self.ip_flags = None,
            code::LEASE_EXPIRY => self.lease_expiry = None,
            code::MAX_UNACKED => self.max_unacked = None,
            code::MCLT => self.mclt = None,
            code::MESSAGE => self.message = None,
            code::POTENTIAL_EXPIRY => self.potential_expiry = None,
            code::RECEIVE_TIMER => self.receive_timer = None,
            code::PROTOCOL_VERSION => self.protocol_version = None,
            code::REJECT_REASON => self.reject_reason = None,
            code::RELATIONSHIP_NAME => self.relationship_name = None,
            code::SERVER_FLAGS => self.server_flags = None,
            code::SERVER_STATE => self.server_state = None,
            code::STOS => self.stos = None,
            code::TLS_REPLY => self.tls_reply = None,
            code::TLS_REQUEST => self.tls_request = None,
            code::VENDOR_CLASS => self.vendor_class = None,
            _ => {}
        }
    }
}

impl Message {
    /// Write the message: 12-byte header with payload offset 12, then the options that
    /// `self.kind` carries, present ones only, in ISC's order
    /// ([`MessageType::carried_options`]). Fields the type does not carry are not written
    /// (an ISC receiver would skip them). DDNS is never written. Text goes out without NUL.
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        let mut buf = Vec::with_capacity(128);
        self.encode_into(&mut buf)?;
        Ok(buf)
    }

    /// [`encode`](Self::encode), appending to `buf`. On error `buf` is left as it was.
    pub fn encode_into(&self, buf: &mut Vec<u8>) -> Result<(), EncodeError> {
        let start = buf.len();
        buf.extend_from_slice(&[0, 0, self.kind.to_wire(), HEADER_LEN as u8]);
        buf.extend_from_slice(&self.time.to_be_bytes());
        buf.extend_from_slice(&self.xid.to_be_bytes());
        for &c in self.kind.carried_options() {
            let Some(v) = self.options.get(c) else {
                continue;
            };
            let n = match v {
                Value::U8(_) => 1,
                Value::U16(_) => 2,
                Value::U32(_) | Value::Ip(_) => 4,
                Value::Bytes(b) => b.len(),
            };
            // Checked before the option is written so no length is ever truncated.
            let total = buf.len() - start + 4 + n;
            if total > MAX_MESSAGE_LEN {
                buf.truncate(start);
                return Err(EncodeError::TooLong(total));
            }
            buf.extend_from_slice(&c.to_be_bytes());
            buf.extend_from_slice(&(n as u16).to_be_bytes());
            match v {
                Value::U8(x) => buf.push(x),
                Value::U16(x) => buf.extend_from_slice(&x.to_be_bytes()),
                Value::U32(x) => buf.extend_from_slice(&x.to_be_bytes()),
                Value::Ip(a) => buf.extend_from_slice(&a.octets()),
                Value::Bytes(b) => buf.extend_from_slice(b),
            }
        }
        let len = (buf.len() - start) as u16;
        buf[start..start + 2].copy_from_slice(&len.to_be_bytes());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_carried_option_has_a_field() {
        for kind in MessageType::ALL {
            for &c in kind.carried_options() {
                let mut o = Options::default();
                let candidates: [&[u8]; 3] = [&[7], &[0, 7], &[0, 0, 0, 7]];
                let fits = candidates.iter().find(|d| o.clone().set(c, d).is_ok());
                assert!(fits.is_some(), "option {c} accepts no length");
                if let Some(d) = fits {
                    assert_eq!(o.set(c, d), Ok(()));
                }
                assert!(o.get(c).is_some(), "option {c} has no field");
                o.clear(c);
                assert_eq!(o, Options::default(), "option {c} not cleared");
            }
        }
    }
}
