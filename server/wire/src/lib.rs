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
const OPT_OVERLOAD: u8 = 52;
/// Where the `sname` (64 bytes) and `file` (128 bytes) fields start in the BOOTP header.
const SNAME: usize = 44;
const SNAME_LEN: usize = 64;
const FILE: usize = 108;
const FILE_LEN: usize = 128;

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

/// A copy of the packet whose options hold only well-formed [`kept_option`]s. An option that
/// appears several times is one option whose data is the concatenation (RFC 3396 §7), so a
/// repeated message type is two bytes long and the packet is refused: a DHCP message whose
/// type cannot be read must not pass for BOOTP.
fn sanitize(buf: &[u8]) -> Result<Vec<u8>, DecodeError> {
    let mut found: Vec<(u8, Vec<u8>)> = Vec::new();
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
                match found.iter_mut().find(|(c, _)| *c == code) {
                    Some((_, d)) => d.extend_from_slice(data),
                    None => found.push((code, data.to_vec())),
                }
                i += 2 + len;
            }
        }
    }
    let mut out = Vec::with_capacity(buf.len().min(576));
    out.extend_from_slice(&buf[..OPTIONS_OFFSET]);
    for (code, mut data) in found {
        // A message type that is not one byte, or a client identifier shorter than its
        // minimum of 2 (RFC 2132 §9.14): the packet cannot be read as its sender meant it.
        if (code == 53 && data.len() != 1) || (code == 61 && data.len() < 2) {
            return Err(DecodeError::BadOptions);
        }
        if code == 55 {
            // A request list longer than one option can only repeat codes.
            data.truncate(255);
        }
        if data.len() <= 255 && kept_option(code, &data) {
            out.push(code);
            out.push(data.len() as u8);
            out.extend_from_slice(&data);
        }
    }
    out.push(OPT_END);
    Ok(out)
}

/// Relay agent sub-options a server acts on (RFC 3046 §2.0 numbering).
pub mod relay {
    /// RFC 3527: the subnet the client is on, when giaddr cannot say it.
    pub const LINK_SELECTION: u8 = 5;
    /// RFC 5107: the address the client must see as the server identifier.
    pub const SERVER_ID_OVERRIDE: u8 = 11;
}

/// The data of sub-option `sub` of a relay agent information option given whole (code,
/// length, sub-options), if it is there and well-formed.
pub fn relay_sub_option(relay_agent_info: &[u8], sub: u8) -> Option<&[u8]> {
    let len = usize::from(*relay_agent_info.get(1)?);
    let subs = relay_agent_info.get(2..2 + len)?;
    let mut i = 0;
    while i + 1 < subs.len() {
        let (code, n) = (subs[i], usize::from(subs[i + 1]));
        let data = subs.get(i + 2..i + 2 + n)?;
        if code == sub {
            return Some(data);
        }
        i += 2 + n;
    }
    None
}

/// An IPv4 address carried by relay sub-option `sub`.
pub fn relay_sub_option_addr(relay_agent_info: &[u8], sub: u8) -> Option<std::net::Ipv4Addr> {
    let d: [u8; 4] = relay_sub_option(relay_agent_info, sub)?.try_into().ok()?;
    let ip = std::net::Ipv4Addr::from(d);
    (!ip.is_unspecified()).then_some(ip)
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

/// RFC 2132 §9.10: the smallest maximum message size a client may announce, and the size
/// every client must accept.
pub const MIN_MAX_MESSAGE_SIZE: u16 = 576;
/// IPv4 and UDP headers, which the maximum message size includes (as ISC dhcpd counts it).
const IP_UDP_HEADERS: usize = 28;

/// How a reply's options are laid out for one client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplyShape {
    /// The client's parameter request list in its order: RFC 2132 §9.8 asks the server to
    /// try to insert the requested options in that order.
    pub order: Vec<u8>,
    /// The largest DHCP message the client accepts, IP and UDP headers included (option 57,
    /// RFC 2132 §9.10; at least 576).
    pub max_message_size: u16,
}

impl Default for ReplyShape {
    fn default() -> ReplyShape {
        ReplyShape {
            order: Vec::new(),
            max_message_size: MIN_MAX_MESSAGE_SIZE,
        }
    }
}

impl ReplyShape {
    /// The shape a request asks for.
    pub fn of(request: &Message) -> ReplyShape {
        use dhcproto::v4::{DhcpOption, OptionCode};
        let order = match request.opts().get(OptionCode::ParameterRequestList) {
            Some(DhcpOption::ParameterRequestList(l)) => l.iter().map(|c| u8::from(*c)).collect(),
            _ => Vec::new(),
        };
        let max_message_size = match request.opts().get(OptionCode::MaxMessageSize) {
            Some(DhcpOption::MaxMessageSize(n)) => (*n).max(MIN_MAX_MESSAGE_SIZE),
            _ => MIN_MAX_MESSAGE_SIZE,
        };
        ReplyShape {
            order,
            max_message_size,
        }
    }

    /// Where an option goes: message type, server id, the lease times and the subnet mask
    /// first (as ISC and Kea place them), then the requested options in the client's order, then the rest by
    /// code. Option 82 is placed last by [`encode_reply`] itself.
    fn rank(&self, code: u8) -> (usize, u8) {
        // RFC 2132 §3.3: the subnet mask comes before the router option.
        const FIRST: [u8; 6] = [53, 54, 51, 58, 59, 1];
        if let Some(i) = FIRST.iter().position(|c| *c == code) {
            return (i, 0);
        }
        match self.order.iter().position(|c| *c == code) {
            Some(i) => (FIRST.len() + i, 0),
            None => (usize::MAX, code),
        }
    }
}

/// Options a reply never loses to the size limit: without them it is not a DHCP reply.
fn essential(code: u8) -> bool {
    matches!(code, 53 | 54 | 51 | 58 | 59 | 61)
}

/// Encode a reply. Options are ordered per [`ReplyShape::rank`]; `relay_agent_info` (a whole
/// option as received) is placed last before END, byte for byte (RFC 3046 §2.2). When the
/// options do not fit the client's maximum message size, the unused `file` and `sname`
/// fields carry the overflow (option overload), and what still does not fit is left out, the
/// options ranked last first. Replies are padded to [`MIN_REPLY_LEN`].
pub fn encode_reply(
    msg: &Message,
    relay_agent_info: Option<&[u8]>,
    shape: &ReplyShape,
) -> Result<Vec<u8>, EncodeError> {
    let mut buf = Vec::with_capacity(576);
    msg.encode(&mut Encoder::new(&mut buf))
        .map_err(|e| EncodeError(e.to_string()))?;
    if buf.len() < OPTIONS_OFFSET {
        return Err(EncodeError("dhcproto wrote a short header".into()));
    }
    let mut opts = split_options(&buf[OPTIONS_OFFSET..])?;
    opts.sort_by_key(|(code, _)| shape.rank(*code));
    // Whole options (a long one, RFC 3396, is several TLVs of one code), in rank order.
    let mut groups: Vec<(u8, Vec<&[u8]>)> = Vec::new();
    for (code, data) in opts {
        match groups.last_mut() {
            Some((c, parts)) if *c == code => parts.push(data),
            _ => groups.push((code, vec![data])),
        }
    }
    let size = |parts: &[&[u8]]| parts.iter().map(|d| 2 + d.len()).sum::<usize>();
    let limit = usize::from(shape.max_message_size).saturating_sub(IP_UDP_HEADERS);
    let rai = relay_agent_info.unwrap_or(&[]);
    let room = limit.saturating_sub(OPTIONS_OFFSET + rai.len() + 1);
    let total: usize = groups.iter().map(|(_, p)| size(p)).sum();
    // Areas: the options field, then (RFC 2131 §4.1, RFC 2132 §9.3, as ISC does) the
    // unused `file` and `sname` fields, each ending with END. Options go whole into the first
    // area with room, in rank order; what fits nowhere is left out, the lowest ranked first.
    let overload = total > room && buf[SNAME..OPTIONS_OFFSET - 4].iter().all(|b| *b == 0);
    let mut rooms = if overload {
        [room.saturating_sub(3), FILE_LEN - 1, SNAME_LEN - 1]
    } else {
        [room, 0, 0]
    };
    let mut areas: [Vec<u8>; 3] = Default::default();
    for (code, parts) in &groups {
        let need = size(parts);
        let fits = if essential(*code) {
            // Without these it is not a reply: they stay in the options field, whatever it
            // costs the client's limit.
            Some(0)
        } else {
            (0..3).find(|a| rooms[*a] >= need)
        };
        if let Some(a) = fits {
            rooms[a] = rooms[a].saturating_sub(need);
            for d in parts {
                areas[a].push(*code);
                areas[a].push(d.len() as u8);
                areas[a].extend_from_slice(d);
            }
            continue;
        }
        // Whole it fits nowhere: split across what is left of the areas, in the order a
        // client concatenates them (options field, `file`, `sname`; RFC 3396 §6), if the
        // pieces' headers leave room for all of it.
        let data: Vec<u8> = parts.concat();
        let usable = |r: usize| r.saturating_sub(2).min(255);
        if overload && rooms.iter().map(|r| usable(*r)).sum::<usize>() >= data.len() {
            let mut rest = &data[..];
            for a in 0..3 {
                let n = usable(rooms[a]).min(rest.len());
                if n == 0 {
                    continue;
                }
                areas[a].push(*code);
                areas[a].push(n as u8);
                areas[a].extend_from_slice(&rest[..n]);
                rooms[a] -= n + 2;
                rest = &rest[n..];
            }
        }
    }
    let mut out = Vec::with_capacity(limit.max(MIN_REPLY_LEN));
    out.extend_from_slice(&buf[..OPTIONS_OFFSET]);
    let used = u8::from(!areas[1].is_empty()) | (u8::from(!areas[2].is_empty()) << 1);
    for (a, (at, len)) in [(1, (FILE, FILE_LEN)), (2, (SNAME, SNAME_LEN))] {
        if !areas[a].is_empty() {
            let field = &mut out[at..at + len];
            field.fill(OPT_PAD);
            field[..areas[a].len()].copy_from_slice(&areas[a]);
            field[areas[a].len()] = OPT_END;
        }
    }
    out.extend_from_slice(&areas[0]);
    if used != 0 {
        out.extend_from_slice(&[OPT_OVERLOAD, 1, used]);
    }
    out.extend_from_slice(rai);
    out.push(OPT_END);
    if out.len() < MIN_REPLY_LEN {
        out.resize(MIN_REPLY_LEN, OPT_PAD);
    }
    Ok(out)
}

/// The option TLVs of an options field, up to END (pads dropped).
fn split_options(opts: &[u8]) -> Result<Vec<(u8, &[u8])>, EncodeError> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < opts.len() {
        match opts[i] {
            OPT_PAD => i += 1,
            OPT_END => break,
            code => {
                let len = *opts
                    .get(i + 1)
                    .ok_or_else(|| EncodeError("option without length".into()))?
                    as usize;
                let data = opts
                    .get(i + 2..i + 2 + len)
                    .ok_or_else(|| EncodeError("option longer than the message".into()))?;
                out.push((code, data));
                i += 2 + len;
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
