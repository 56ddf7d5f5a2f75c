//! DHCPv4 on the wire, written here by hand so that every byte is the scenario's choice:
//! a BOOTP header with raw options in the order given (repeated codes allowed, RFC 3396
//! splitting done by the caller or by [`Request::long_option`]), malformed variants, the
//! Ethernet/IPv4/UDP frame around it, and a parser for the replies that keeps every option's
//! raw bytes (concatenating split options and following option overload, RFC 3396 / 2132 §9.3).
//!
//! Nothing here comes from dhcpair's own crates: the harness must not share its bugs.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

pub const MAGIC_COOKIE: [u8; 4] = [99, 130, 83, 99];
pub const BOOTREQUEST: u8 = 1;
pub const BOOTREPLY: u8 = 2;
pub const BROADCAST_FLAG: u16 = 0x8000;

/// DHCP message types (RFC 2132 §9.6).
pub mod mt {
    pub const DISCOVER: u8 = 1;
    pub const OFFER: u8 = 2;
    pub const REQUEST: u8 = 3;
    pub const DECLINE: u8 = 4;
    pub const ACK: u8 = 5;
    pub const NAK: u8 = 6;
    pub const RELEASE: u8 = 7;
    pub const INFORM: u8 = 8;
}

pub fn type_name(t: u8) -> String {
    match t {
        1 => "DISCOVER".into(),
        2 => "OFFER".into(),
        3 => "REQUEST".into(),
        4 => "DECLINE".into(),
        5 => "ACK".into(),
        6 => "NAK".into(),
        7 => "RELEASE".into(),
        8 => "INFORM".into(),
        n => format!("TYPE{n}"),
    }
}

/// A BOOTP/DHCP request exactly as it will be sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub op: u8,
    pub htype: u8,
    pub hlen: u8,
    pub hops: u8,
    pub xid: u32,
    pub secs: u16,
    pub flags: u16,
    pub ciaddr: Ipv4Addr,
    pub yiaddr: Ipv4Addr,
    pub siaddr: Ipv4Addr,
    pub giaddr: Ipv4Addr,
    pub chaddr: [u8; 16],
    pub sname: Vec<u8>,
    pub file: Vec<u8>,
    pub cookie: [u8; 4],
    /// (code, value) in wire order; each must be at most 255 bytes.
    pub options: Vec<(u8, Vec<u8>)>,
    /// Append the END option (255).
    pub end: bool,
    /// Pad the message with zeros to at least this many bytes (BOOTP's 300 by default).
    pub pad_to: usize,
}

impl Request {
    pub fn new(xid: u32, chaddr: &[u8]) -> Request {
        let mut c = [0u8; 16];
        let n = chaddr.len().min(16);
        c[..n].copy_from_slice(&chaddr[..n]);
        Request {
            op: BOOTREQUEST,
            htype: 1,
            hlen: 6,
            hops: 0,
            xid,
            secs: 0,
            flags: 0,
            ciaddr: Ipv4Addr::UNSPECIFIED,
            yiaddr: Ipv4Addr::UNSPECIFIED,
            siaddr: Ipv4Addr::UNSPECIFIED,
            giaddr: Ipv4Addr::UNSPECIFIED,
            chaddr: c,
            sname: Vec::new(),
            file: Vec::new(),
            cookie: MAGIC_COOKIE,
            options: Vec::new(),
            end: true,
            pad_to: 300,
        }
    }

    /// An option longer than 255 bytes, split into consecutive instances (RFC 3396 §5).
    pub fn long_option(&mut self, code: u8, value: &[u8]) {
        if value.is_empty() {
            self.options.push((code, Vec::new()));
        }
        for chunk in value.chunks(255) {
            self.options.push((code, chunk.to_vec()));
        }
    }

    /// The first instance of an option.
    pub fn option(&self, code: u8) -> Option<&[u8]> {
        self.options
            .iter()
            .find(|(c, _)| *c == code)
            .map(|(_, v)| v.as_slice())
    }

    pub fn msg_type(&self) -> Option<u8> {
        self.option(53).and_then(|v| v.first().copied())
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(576);
        b.push(self.op);
        b.push(self.htype);
        b.push(self.hlen);
        b.push(self.hops);
        b.extend_from_slice(&self.xid.to_be_bytes());
        b.extend_from_slice(&self.secs.to_be_bytes());
        b.extend_from_slice(&self.flags.to_be_bytes());
        for a in [self.ciaddr, self.yiaddr, self.siaddr, self.giaddr] {
            b.extend_from_slice(&a.octets());
        }
        b.extend_from_slice(&self.chaddr);
        let mut sname = self.sname.clone();
        sname.resize(64, 0);
        b.extend_from_slice(&sname[..64]);
        let mut file = self.file.clone();
        file.resize(128, 0);
        b.extend_from_slice(&file[..128]);
        b.extend_from_slice(&self.cookie);
        for (code, v) in &self.options {
            b.push(*code);
            if *code != 0 {
                b.push(v.len().min(255) as u8);
                b.extend_from_slice(&v[..v.len().min(255)]);
            }
        }
        if self.end {
            b.push(255);
        }
        if b.len() < self.pad_to {
            b.resize(self.pad_to, 0);
        }
        b
    }
}

/// One captured reply: where it went and what it said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub dst_mac: [u8; 6],
    pub src_ip: Ipv4Addr,
    pub dst_ip: Ipv4Addr,
    pub src_port: u16,
    pub dst_port: u16,
    /// UDP payload length.
    pub len: usize,
    pub op: u8,
    pub htype: u8,
    pub hlen: u8,
    pub hops: u8,
    pub xid: u32,
    pub secs: u16,
    pub flags: u16,
    pub ciaddr: Ipv4Addr,
    pub yiaddr: Ipv4Addr,
    pub siaddr: Ipv4Addr,
    pub giaddr: Ipv4Addr,
    pub chaddr: [u8; 16],
    /// sname and file as sent (trailing zeros cut), unless overloaded with options.
    pub sname: Vec<u8>,
    pub file: Vec<u8>,
    /// Every option, split instances concatenated (RFC 3396), overload followed.
    pub options: BTreeMap<u8, Vec<u8>>,
    /// Option codes in the order they first appear (options field, then file, then sname).
    pub order: Vec<u8>,
    /// Options that appeared more than once (split, RFC 3396).
    pub split: Vec<u8>,
    /// Whether the message had the magic cookie (a BOOTP reply may not).
    pub cookie: bool,
}

impl Reply {
    pub fn msg_type(&self) -> Option<u8> {
        self.options.get(&53).and_then(|v| v.first().copied())
    }

    /// "OFFER", "ACK", ..., or "BOOTREPLY" for a reply without option 53.
    pub fn kind(&self) -> String {
        match self.msg_type() {
            Some(t) => type_name(t),
            None => "BOOTREPLY".into(),
        }
    }
}

fn ip_at(b: &[u8], at: usize) -> Ipv4Addr {
    Ipv4Addr::new(b[at], b[at + 1], b[at + 2], b[at + 3])
}

/// Parse an Ethernet frame; `Some` only for IPv4/UDP carrying a BOOTREPLY.
pub fn parse_reply_frame(frame: &[u8]) -> Option<Reply> {
    if frame.len() < 14 + 20 + 8 || frame[12..14] != [0x08, 0x00] {
        return None;
    }
    let mut dst_mac = [0u8; 6];
    dst_mac.copy_from_slice(&frame[..6]);
    let ip = &frame[14..];
    if ip[0] >> 4 != 4 || ip[9] != 17 {
        return None;
    }
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]])).min(ip.len());
    if ihl < 20 || total < ihl + 8 {
        return None;
    }
    let src_ip = ip_at(ip, 12);
    let dst_ip = ip_at(ip, 16);
    let udp = &ip[ihl..total];
    let src_port = u16::from_be_bytes([udp[0], udp[1]]);
    let dst_port = u16::from_be_bytes([udp[2], udp[3]]);
    let ulen = usize::from(u16::from_be_bytes([udp[4], udp[5]])).min(udp.len());
    if ulen < 8 {
        return None;
    }
    let mut r = parse_bootp(&udp[8..ulen])?;
    if r.op != BOOTREPLY {
        return None;
    }
    r.dst_mac = dst_mac;
    r.src_ip = src_ip;
    r.dst_ip = dst_ip;
    r.src_port = src_port;
    r.dst_port = dst_port;
    Some(r)
}

/// Parse a BOOTP message (addresses of the frame left unset).
pub fn parse_bootp(b: &[u8]) -> Option<Reply> {
    if b.len() < 236 {
        return None;
    }
    let mut chaddr = [0u8; 16];
    chaddr.copy_from_slice(&b[28..44]);
    let trim = |s: &[u8]| -> Vec<u8> {
        let end = s.iter().rposition(|x| *x != 0).map_or(0, |p| p + 1);
        s[..end].to_vec()
    };
    let mut r = Reply {
        dst_mac: [0; 6],
        src_ip: Ipv4Addr::UNSPECIFIED,
        dst_ip: Ipv4Addr::UNSPECIFIED,
        src_port: 0,
        dst_port: 0,
        len: b.len(),
        op: b[0],
        htype: b[1],
        hlen: b[2],
        hops: b[3],
        xid: u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
        secs: u16::from_be_bytes([b[8], b[9]]),
        flags: u16::from_be_bytes([b[10], b[11]]),
        ciaddr: ip_at(b, 12),
        yiaddr: ip_at(b, 16),
        siaddr: ip_at(b, 20),
        giaddr: ip_at(b, 24),
        chaddr,
        sname: trim(&b[44..108]),
        file: trim(&b[108..236]),
        options: BTreeMap::new(),
        order: Vec::new(),
        split: Vec::new(),
        cookie: false,
    };
    if b.len() < 240 || b[236..240] != MAGIC_COOKIE {
        return Some(r);
    }
    r.cookie = true;
    let mut seen: Vec<u8> = Vec::new();
    walk_options(&b[240..], &mut r, &mut seen);
    // Option overload (RFC 2132 §9.3): 1 = file, 2 = sname, 3 = both; file first.
    if let Some(&[ov]) = r.options.get(&52).map(Vec::as_slice) {
        if ov & 1 != 0 {
            walk_options(&b[108..236], &mut r, &mut seen);
            r.file.clear();
        }
        if ov & 2 != 0 {
            walk_options(&b[44..108], &mut r, &mut seen);
            r.sname.clear();
        }
    }
    Some(r)
}

fn walk_options(mut b: &[u8], r: &mut Reply, seen: &mut Vec<u8>) {
    while let Some((&code, rest)) = b.split_first() {
        match code {
            0 => b = rest,
            255 => return,
            _ => {
                let Some((&len, rest)) = rest.split_first() else {
                    return;
                };
                let len = usize::from(len);
                if rest.len() < len {
                    return;
                }
                let value = &rest[..len];
                if seen.contains(&code) {
                    if !r.split.contains(&code) {
                        r.split.push(code);
                    }
                } else {
                    seen.push(code);
                    r.order.push(code);
                }
                r.options.entry(code).or_default().extend_from_slice(value);
                b = &rest[len..];
            }
        }
    }
}

fn checksum(chunks: &[&[u8]]) -> u16 {
    let mut sum: u32 = 0;
    for c in chunks {
        let mut it = c.chunks(2);
        for w in &mut it {
            let v = if w.len() == 2 {
                u16::from_be_bytes([w[0], w[1]])
            } else {
                u16::from_be_bytes([w[0], 0])
            };
            sum += u32::from(v);
        }
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Ethernet + IPv4 + UDP around `payload`, with both checksums right.
#[allow(clippy::too_many_arguments)]
pub fn udp_frame(
    dst_mac: [u8; 6],
    src_mac: [u8; 6],
    src: Ipv4Addr,
    dst: Ipv4Addr,
    sport: u16,
    dport: u16,
    ttl: u8,
    payload: &[u8],
) -> Vec<u8> {
    let udp_len = 8 + payload.len();
    let total = 20 + udp_len;
    let mut f = Vec::with_capacity(14 + total);
    f.extend_from_slice(&dst_mac);
    f.extend_from_slice(&src_mac);
    f.extend_from_slice(&[0x08, 0x00]);
    let mut ip = vec![
        0x45,
        0x10,
        (total >> 8) as u8,
        total as u8,
        0,
        0,
        0,
        0,
        ttl,
        17,
        0,
        0,
    ];
    ip.extend_from_slice(&src.octets());
    ip.extend_from_slice(&dst.octets());
    let c = checksum(&[&ip]);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(&ip);
    let mut udp = Vec::with_capacity(8);
    udp.extend_from_slice(&sport.to_be_bytes());
    udp.extend_from_slice(&dport.to_be_bytes());
    udp.extend_from_slice(&(udp_len as u16).to_be_bytes());
    udp.extend_from_slice(&[0, 0]);
    let pseudo = {
        let mut p = Vec::with_capacity(12);
        p.extend_from_slice(&src.octets());
        p.extend_from_slice(&dst.octets());
        p.extend_from_slice(&[0, 17]);
        p.extend_from_slice(&(udp_len as u16).to_be_bytes());
        p
    };
    let mut c = checksum(&[&pseudo, &udp, payload]);
    if c == 0 {
        c = 0xffff;
    }
    udp[6..8].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(&udp);
    f.extend_from_slice(payload);
    f
}

/// An ARP request in `frame` asking for an address: (sender MAC, sender IP, target IP).
pub fn parse_arp_request(frame: &[u8]) -> Option<([u8; 6], Ipv4Addr, Ipv4Addr)> {
    if frame.len() < 42 || frame[12..14] != [0x08, 0x06] {
        return None;
    }
    let a = &frame[14..];
    // Ethernet/IPv4, opcode 1 (request).
    if a[0..2] != [0, 1] || a[2..4] != [8, 0] || a[6..8] != [0, 1] {
        return None;
    }
    let mut smac = [0u8; 6];
    smac.copy_from_slice(&a[8..14]);
    Some((smac, ip_at(a, 14), ip_at(a, 24)))
}

/// The ARP reply "`ip` is at `mac`" to a requester.
pub fn arp_reply(mac: [u8; 6], ip: Ipv4Addr, to_mac: [u8; 6], to_ip: Ipv4Addr) -> Vec<u8> {
    let mut f = Vec::with_capacity(42);
    f.extend_from_slice(&to_mac);
    f.extend_from_slice(&mac);
    f.extend_from_slice(&[0x08, 0x06, 0, 1, 8, 0, 6, 4, 0, 2]);
    f.extend_from_slice(&mac);
    f.extend_from_slice(&ip.octets());
    f.extend_from_slice(&to_mac);
    f.extend_from_slice(&to_ip.octets());
    f
}

/// RFC 3397 domain search list to names (compression pointers followed), for comparing
/// encodings that differ only in compression.
pub fn decode_domain_list(b: &[u8]) -> Option<Vec<String>> {
    let mut names = Vec::new();
    let mut pos = 0;
    while pos < b.len() {
        let (name, next) = read_name(b, pos)?;
        names.push(name);
        pos = next;
    }
    Some(names)
}

fn read_name(b: &[u8], mut pos: usize) -> Option<(String, usize)> {
    let mut labels: Vec<String> = Vec::new();
    let mut next = None;
    for _ in 0..64 {
        let len = *b.get(pos)?;
        if len == 0 {
            let end = next.unwrap_or(pos + 1);
            return Some((labels.join("."), end));
        }
        if len & 0xc0 == 0xc0 {
            let off = (usize::from(len & 0x3f) << 8) | usize::from(*b.get(pos + 1)?);
            if next.is_none() {
                next = Some(pos + 2);
            }
            if off >= pos {
                return None;
            }
            pos = off;
            continue;
        }
        let l = usize::from(len);
        let label = b.get(pos + 1..pos + 1 + l)?;
        labels.push(String::from_utf8_lossy(label).into_owned());
        pos += 1 + l;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_parses_back_with_split_options_joined() {
        let mut r = Request::new(0x1234_5678, &[2, 0, 0, 0, 0, 1]);
        r.op = BOOTREPLY;
        r.options.push((53, vec![mt::OFFER]));
        r.long_option(43, &[7u8; 300]);
        let b = r.encode();
        let p = parse_bootp(&b).unwrap_or_else(|| panic!("does not parse"));
        assert_eq!(p.xid, 0x1234_5678);
        assert_eq!(p.msg_type(), Some(mt::OFFER));
        assert_eq!(p.options.get(&43).map(Vec::len), Some(300));
        assert_eq!(p.split, vec![43]);
        assert_eq!(p.order, vec![53, 43]);
    }

    #[test]
    fn a_frame_has_valid_checksums_and_parses() {
        let mut r = Request::new(7, &[2, 0, 0, 0, 0, 1]);
        r.op = BOOTREPLY;
        let f = udp_frame(
            [0xff; 6],
            [2, 0, 0, 0, 0, 9],
            Ipv4Addr::new(192, 0, 2, 1),
            Ipv4Addr::BROADCAST,
            67,
            68,
            64,
            &r.encode(),
        );
        assert_eq!(checksum(&[&f[14..34]]), 0);
        let p = parse_reply_frame(&f).unwrap_or_else(|| panic!("does not parse"));
        assert_eq!((p.dst_ip, p.dst_port, p.xid), (Ipv4Addr::BROADCAST, 68, 7));
    }

    #[test]
    fn domain_lists_with_compression_decode() {
        // example.org, lab.example.org (pointer to offset 0)
        let mut b = vec![7];
        b.extend_from_slice(b"example");
        b.push(3);
        b.extend_from_slice(b"org");
        b.push(0);
        b.push(3);
        b.extend_from_slice(b"lab");
        b.extend_from_slice(&[0xc0, 0]);
        assert_eq!(
            decode_domain_list(&b),
            Some(vec!["example.org".into(), "lab.example.org".into()])
        );
    }
}
