//! `bench-responder`: a stateless DHCPv4 responder used as the benchmark's
//! ceiling.
//!
//! It answers DISCOVER with OFFER and REQUEST with ACK, deriving the address
//! from a hash of `chaddr` (so the same client always gets the same address)
//! and keeping no state at all. Replies carry only the options a client needs
//! (message type, server identifier, lease time, subnet mask) and go where a
//! real server would send them: to the relay at `giaddr:67` when the request
//! was relayed, otherwise to `ciaddr:68` or broadcast to port 68.
//!
//! One socket, one thread, a blocking `recv_from` loop: whatever rate it
//! cannot sustain is the load generator's limit, not a server's.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::process::ExitCode;

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

const BOOTREQUEST: u8 = 1;
const BOOTREPLY: u8 = 2;
const MAGIC: [u8; 4] = [99, 130, 83, 99];
/// Fixed BOOTP header length, up to and including the magic cookie.
const HDR: usize = 240;

const OPT_PAD: u8 = 0;
const OPT_MASK: u8 = 1;
const OPT_LEASE_TIME: u8 = 51;
const OPT_MSG_TYPE: u8 = 53;
const OPT_SERVER_ID: u8 = 54;
const OPT_END: u8 = 255;

const DISCOVER: u8 = 1;
const OFFER: u8 = 2;
const REQUEST: u8 = 3;
const ACK: u8 = 5;

#[derive(Debug, Clone)]
struct Config {
    bind: Ipv4Addr,
    port: u16,
    server_id: Ipv4Addr,
    pool_start: Ipv4Addr,
    pool_size: u32,
    mask: Ipv4Addr,
    lease_time: u32,
    rcvbuf: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            bind: Ipv4Addr::UNSPECIFIED,
            port: 67,
            server_id: Ipv4Addr::new(10, 77, 0, 1),
            pool_start: Ipv4Addr::new(10, 77, 1, 0),
            pool_size: 61_440,
            mask: Ipv4Addr::new(255, 255, 0, 0),
            lease_time: 3600,
            rcvbuf: 4 << 20,
        }
    }
}

const USAGE: &str = "usage: bench-responder [--bind IP] [--port N] [--server-id IP] \
[--pool-start IP] [--pool-size N] [--mask IP] [--lease-time SECS] [--rcvbuf BYTES]";

fn parse_args() -> Result<Config, String> {
    let mut c = Config::default();
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        if flag == "-h" || flag == "--help" {
            return Err(USAGE.to_string());
        }
        let val = args
            .next()
            .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
        let bad = |e: &dyn std::fmt::Display| format!("{flag} {val}: {e}");
        match flag.as_str() {
            "--bind" => c.bind = val.parse().map_err(|e| bad(&e))?,
            "--port" => c.port = val.parse().map_err(|e| bad(&e))?,
            "--server-id" => c.server_id = val.parse().map_err(|e| bad(&e))?,
            "--pool-start" => c.pool_start = val.parse().map_err(|e| bad(&e))?,
            "--pool-size" => c.pool_size = val.parse().map_err(|e| bad(&e))?,
            "--mask" => c.mask = val.parse().map_err(|e| bad(&e))?,
            "--lease-time" => c.lease_time = val.parse().map_err(|e| bad(&e))?,
            "--rcvbuf" => c.rcvbuf = val.parse().map_err(|e| bad(&e))?,
            _ => return Err(format!("unknown flag {flag}\n{USAGE}")),
        }
    }
    if c.pool_size == 0 {
        return Err("--pool-size must be > 0".to_string());
    }
    Ok(c)
}

/// FNV-1a over the client hardware address.
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// What the options of a request told us.
#[derive(Debug, Default)]
struct ReqOpts {
    msg_type: Option<u8>,
    server_id: Option<[u8; 4]>,
}

fn scan_options(opts: &[u8]) -> ReqOpts {
    let mut r = ReqOpts::default();
    let mut i = 0;
    while i < opts.len() {
        let code = opts[i];
        if code == OPT_PAD {
            i += 1;
            continue;
        }
        if code == OPT_END || i + 1 >= opts.len() {
            break;
        }
        let len = usize::from(opts[i + 1]);
        let start = i + 2;
        let end = start + len;
        if end > opts.len() {
            break;
        }
        let val = &opts[start..end];
        match code {
            OPT_MSG_TYPE if len == 1 => r.msg_type = Some(val[0]),
            OPT_SERVER_ID if len == 4 => r.server_id = Some([val[0], val[1], val[2], val[3]]),
            _ => {}
        }
        i = end;
    }
    r
}

/// Builds the reply to `req` into `out`; returns its length and destination,
/// or `None` when the request gets no answer.
fn respond(cfg: &Config, req: &[u8], out: &mut [u8; 548]) -> Option<(usize, SocketAddrV4)> {
    if req.len() < HDR || req[0] != BOOTREQUEST || req[236..240] != MAGIC {
        return None;
    }
    let opts = scan_options(&req[HDR..]);
    let reply_type = match opts.msg_type? {
        DISCOVER => OFFER,
        REQUEST => {
            // A REQUEST naming another server is that server's business.
            if let Some(sid) = opts.server_id {
                if sid != cfg.server_id.octets() {
                    return None;
                }
            }
            ACK
        }
        _ => return None,
    };

    let hlen = usize::from(req[2]).min(16);
    let idx = (fnv1a(&req[28..28 + hlen]) % u64::from(cfg.pool_size)) as u32;
    let yiaddr = Ipv4Addr::from(u32::from(cfg.pool_start).wrapping_add(idx));

    out.fill(0);
    out[0] = BOOTREPLY;
    out[1..4].copy_from_slice(&req[1..4]); // htype, hlen, hops
    out[4..8].copy_from_slice(&req[4..8]); // xid
                                           // secs = 0; flags copied (broadcast bit).
    out[10..12].copy_from_slice(&req[10..12]);
    if reply_type == ACK {
        out[12..16].copy_from_slice(&req[12..16]); // ciaddr
    }
    out[16..20].copy_from_slice(&yiaddr.octets());
    out[24..28].copy_from_slice(&req[24..28]); // giaddr
    out[28..44].copy_from_slice(&req[28..44]); // chaddr
    out[236..240].copy_from_slice(&MAGIC);

    let mut i = HDR;
    let mut put = |code: u8, val: &[u8]| {
        out[i] = code;
        out[i + 1] = val.len() as u8;
        out[i + 2..i + 2 + val.len()].copy_from_slice(val);
        i += 2 + val.len();
    };
    put(OPT_MSG_TYPE, &[reply_type]);
    put(OPT_SERVER_ID, &cfg.server_id.octets());
    put(OPT_LEASE_TIME, &cfg.lease_time.to_be_bytes());
    put(OPT_MASK, &cfg.mask.octets());
    out[i] = OPT_END;
    // Pad to the classic 300-byte BOOTP minimum.
    let len = (i + 1).max(300);

    let giaddr = Ipv4Addr::new(req[24], req[25], req[26], req[27]);
    let ciaddr = Ipv4Addr::new(req[12], req[13], req[14], req[15]);
    let dst = if !giaddr.is_unspecified() {
        SocketAddrV4::new(giaddr, 67)
    } else if !ciaddr.is_unspecified() {
        SocketAddrV4::new(ciaddr, 68)
    } else {
        SocketAddrV4::new(Ipv4Addr::BROADCAST, 68)
    };
    Some((len, dst))
}

fn open(cfg: &Config) -> io::Result<Socket> {
    let sock = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    sock.set_reuse_address(true)?;
    sock.set_broadcast(true)?;
    // Best effort: the kernel caps it at net.core.rmem_max.
    let _ = sock.set_recv_buffer_size(cfg.rcvbuf);
    let _ = sock.set_send_buffer_size(cfg.rcvbuf);
    sock.bind(&SockAddr::from(SocketAddrV4::new(cfg.bind, cfg.port)))?;
    Ok(sock)
}

fn run(cfg: &Config) -> io::Result<()> {
    let sock: std::net::UdpSocket = open(cfg)?.into();
    eprintln!(
        "bench-responder: listening on {}:{} (server-id {}, pool {} + {})",
        cfg.bind, cfg.port, cfg.server_id, cfg.pool_start, cfg.pool_size
    );
    let mut buf = [0u8; 1500];
    let mut out = [0u8; 548];
    loop {
        let (n, _peer) = match sock.recv_from(&mut buf) {
            Ok(x) => x,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if let Some((len, dst)) = respond(cfg, &buf[..n], &mut out) {
            // A full send queue or an unreachable relay drops the reply, as
            // the network would; keep serving.
            let _ = sock.send_to(&out[..len], SocketAddr::V4(dst));
        }
    }
}

fn main() -> ExitCode {
    let cfg = match parse_args() {
        Ok(c) => c,
        Err(msg) => {
            eprintln!("{msg}");
            return ExitCode::from(2);
        }
    };
    match run(&cfg) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench-responder: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(msg_type: u8, giaddr: [u8; 4], sid: Option<[u8; 4]>) -> Vec<u8> {
        let mut p = vec![0u8; HDR];
        p[0] = BOOTREQUEST;
        p[1] = 1;
        p[2] = 6;
        p[3] = 1;
        p[4..8].copy_from_slice(&[1, 2, 3, 4]);
        p[24..28].copy_from_slice(&giaddr);
        p[28..34].copy_from_slice(&[0, 0x0c, 1, 2, 3, 4]);
        p[236..240].copy_from_slice(&MAGIC);
        p.extend_from_slice(&[OPT_MSG_TYPE, 1, msg_type]);
        if let Some(s) = sid {
            p.extend_from_slice(&[OPT_SERVER_ID, 4]);
            p.extend_from_slice(&s);
        }
        p.push(OPT_END);
        p
    }

    #[test]
    fn discover_gets_offer_sent_to_relay() {
        let cfg = Config::default();
        let mut out = [0u8; 548];
        let req = request(DISCOVER, [10, 77, 0, 2], None);
        let (len, dst) = respond(&cfg, &req, &mut out).unwrap_or_else(|| panic!("no reply"));
        assert_eq!(dst, SocketAddrV4::new(Ipv4Addr::new(10, 77, 0, 2), 67));
        assert_eq!(out[0], BOOTREPLY);
        assert_eq!(&out[4..8], &[1, 2, 3, 4]);
        let opts = scan_options(&out[HDR..len]);
        assert_eq!(opts.msg_type, Some(OFFER));
        assert_eq!(opts.server_id, Some(cfg.server_id.octets()));
        let yi = u32::from(Ipv4Addr::new(out[16], out[17], out[18], out[19]));
        let start = u32::from(cfg.pool_start);
        assert!(yi >= start && yi < start + cfg.pool_size);
    }

    #[test]
    fn request_gets_ack_with_same_address() {
        let cfg = Config::default();
        let mut o1 = [0u8; 548];
        let mut o2 = [0u8; 548];
        let sid = Some(cfg.server_id.octets());
        respond(&cfg, &request(DISCOVER, [10, 77, 0, 2], None), &mut o1)
            .unwrap_or_else(|| panic!("no offer"));
        let (len, _) = respond(&cfg, &request(REQUEST, [10, 77, 0, 2], sid), &mut o2)
            .unwrap_or_else(|| panic!("no ack"));
        assert_eq!(scan_options(&o2[HDR..len]).msg_type, Some(ACK));
        assert_eq!(o1[16..20], o2[16..20]);
    }

    #[test]
    fn ignores_other_servers_and_garbage() {
        let cfg = Config::default();
        let mut out = [0u8; 548];
        let req = request(REQUEST, [10, 77, 0, 2], Some([10, 9, 9, 9]));
        assert!(respond(&cfg, &req, &mut out).is_none());
        assert!(respond(&cfg, &[1u8; 100], &mut out).is_none());
        let release = request(7, [10, 77, 0, 2], None);
        assert!(respond(&cfg, &release, &mut out).is_none());
    }
}
