//! DHCPv4 wire format for dhcpair: decoding requests and encoding replies on top of
//! `dhcproto`, plus what dhcproto does not keep byte-exact (the relay agent information
//! option, RFC 3046, which a server must echo unchanged).
//!
//! No tokio, no sockets, no clock. Decoding never panics on any input; a packet that is not
//! a well-formed BOOTREQUEST is a [`DecodeError`] with a reason the shell counts and drops.
//! The failover message codec is in [`failover`], the RFC 3074 load-balancing hash in [`hash`].

pub mod failover;
pub mod hash;

use dhcproto::v4::{Message, Opcode};
use dhcproto::{Decodable, Decoder, Encodable, Encoder};

pub use dhcproto::v4;

/// RFC 2131 §3: the magic cookie that starts the options field.
pub const MAGIC_COOKIE: [u8; 4] = [99, 130, 83, 99];
/// Offset of the options field (after the fixed BOOTP header and the cookie).
pub const OPTIONS_OFFSET: usize = 240;
/// RFC 1542 §3.4: replies are padded to at least 300 bytes for old relays and clients.
pub const MIN_REPLY_LEN: usize = 300;
const OPT_PAD: u8 = 0;
const OPT_END: u8 = 255;
const OPT_RELAY_AGENT_INFO: u8 = 82;

/// Why an inbound packet was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("packet shorter than the {OPTIONS_OFFSET}-byte BOOTP header")]
    TooShort,
    #[error("magic cookie missing")]
    BadCookie,
    #[error("op is not BOOTREQUEST")]
    NotARequest,
    #[error("hardware address length above 16")]
    BadHlen,
    #[error("options are malformed")]
    BadOptions,
}

impl DecodeError {
    /// A stable label for metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            DecodeError::TooShort => "too_short",
            DecodeError::BadCookie => "bad_cookie",
            DecodeError::NotARequest => "not_a_request",
            DecodeError::BadHlen => "bad_hlen",
            DecodeError::BadOptions => "bad_options",
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("cannot encode reply: {0}")]
pub struct EncodeError(String);

/// A decoded request plus the raw bytes that must go back unchanged.
#[derive(Debug, Clone, PartialEq)]
pub struct Inbound {
    pub msg: Message,
    /// The whole relay agent information option (code, length, data) as received.
    pub relay_agent_info: Option<Vec<u8>>,
}

/// Decode a packet received on a server port.
pub fn decode_request(buf: &[u8]) -> Result<Inbound, DecodeError> {
    if buf.len() < OPTIONS_OFFSET {
        return Err(DecodeError::TooShort);
    }
    if buf[236..240] != MAGIC_COOKIE {
        return Err(DecodeError::BadCookie);
    }
    if buf[0] != 1 {
        return Err(DecodeError::NotARequest);
    }
    if buf[2] > 16 {
        return Err(DecodeError::BadHlen);
    }
    let relay_agent_info = find_option(&buf[OPTIONS_OFFSET..], OPT_RELAY_AGENT_INFO)?;
    let clean = sanitize(buf)?;
    let msg = Message::decode(&mut Decoder::new(&clean)).map_err(|_| DecodeError::BadOptions)?;
    if msg.opcode() != Opcode::BootRequest {
        return Err(DecodeError::NotARequest);
    }
    Ok(Inbound {
        msg,
        relay_agent_info: relay_agent_info.map(<[u8]>::to_vec),
    })
}

/// The options the server reads, with the exact length each must have (None: any, ≥ 1).
/// Everything else is dropped before dhcproto sees the packet: dhcproto 0.12 asserts on or
/// misreads some options with unexpected lengths (e.g. 80, 94, 81), and a server must not
/// depend on options it never uses being well-formed.
fn kept_option(code: u8, data: &[u8]) -> bool {
    match code {
        53 => data.len() == 1,                                       // message type
        50 | 51 | 54 => data.len() == 4, // requested address, lease time, server id
        57 => data.len() == 2,           // max message size
        55 | 61 => !data.is_empty(),     // parameter request list, client id
        12 => !data.is_empty() && std::str::from_utf8(data).is_ok(), // host name
        _ => false,
    }
}

/// A copy of the packet whose options hold only well-formed [`kept_option`]s.
fn sanitize(buf: &[u8]) -> Result<Vec<u8>, DecodeError> {
    let mut out = Vec::with_capacity(buf.len().min(576));
    out.extend_from_slice(&buf[..OPTIONS_OFFSET]);
    let opts = &buf[OPTIONS_OFFSET..];
    let mut i = 0;
    while i < opts.len() {
        match opts[i] {
            OPT_PAD => i += 1,
            OPT_END => break,
            code => {
                let len = *opts.get(i + 1).ok_or(DecodeError::BadOptions)? as usize;
                let data = opts
                    .get(i + 2..i + 2 + len)
                    .ok_or(DecodeError::BadOptions)?;
                if kept_option(code, data) {
                    out.push(code);
                    out.push(len as u8);
                    out.extend_from_slice(data);
                }
                i += 2 + len;
            }
        }
    }
    out.push(OPT_END);
    Ok(out)
}

/// Walk the option TLVs and return the first option `code` whole (code, length, data).
fn find_option(opts: &[u8], code: u8) -> Result<Option<&[u8]>, DecodeError> {
    let mut i = 0;
    while i < opts.len() {
        match opts[i] {
            OPT_PAD => i += 1,
            OPT_END => return Ok(None),
            c => {
                let len = *opts.get(i + 1).ok_or(DecodeError::BadOptions)? as usize;
                let end = i + 2 + len;
                if end > opts.len() {
                    return Err(DecodeError::BadOptions);
                }
                if c == code {
                    return Ok(Some(&opts[i..end]));
                }
                i = end;
            }
        }
    }
    Ok(None)
}

/// Encode a reply. `relay_agent_info` (a whole option as received) is placed last before END,
/// byte for byte (RFC 3046 §2.2). Replies are padded to [`MIN_REPLY_LEN`].
pub fn encode_reply(
    msg: &Message,
    relay_agent_info: Option<&[u8]>,
) -> Result<Vec<u8>, EncodeError> {
    let mut buf = Vec::with_capacity(576);
    msg.encode(&mut Encoder::new(&mut buf))
        .map_err(|e| EncodeError(e.to_string()))?;
    if let Some(rai) = relay_agent_info {
        // dhcproto ends the options with END; put the option in front of it.
        if buf.last() != Some(&OPT_END) {
            buf.push(OPT_END);
        }
        let end = buf.len() - 1;
        buf.splice(end..end, rai.iter().copied());
    }
    if buf.len() < MIN_REPLY_LEN {
        buf.resize(MIN_REPLY_LEN, OPT_PAD);
    }
    Ok(buf)
}

#[cfg(test)]
mod tests;
