//! A relay-mode load client: it binds UDP port 67 on its own address (as a relay agent does),
//! sets `giaddr` to that address and runs many DISCOVER/OFFER/REQUEST/ACK exchanges for
//! distinct MACs against a server's address, bounded in count and in time.
//!
//! Every ACK is appended to a file as `ack <mac> <ip>` with one unbuffered write, so the file is
//! an accurate record of every lease the server promised even if the server (or this client)
//! is killed mid-run. [`run_load`] is the engine (run by the `dhcp-load` binary inside a
//! namespace); [`LoadClient`] starts that binary from a test and reads its record.

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use dhcproto::v4::{DhcpOption, Message, MessageType, OptionCode};
use dhcproto::{Decodable, Encodable};
use serde::{Deserialize, Serialize};

use crate::netns::Netns;
use crate::process::Process;
use crate::{mac_string, wait_until, TestEnv};

/// What one load run does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadOptions {
    /// Our address: bound on port `port`, sent as giaddr.
    pub bind: Ipv4Addr,
    /// The server's address (port `port`).
    pub server: Ipv4Addr,
    pub port: u16,
    /// MACs `02:e2:<tag>:<i>` for `i` in `first..first + count`.
    pub mac_tag: u8,
    pub first: u32,
    pub count: u32,
    /// Exchanges in flight at once.
    pub concurrency: u32,
    /// New exchanges started per second at most (`None`: as fast as replies come). Makes a
    /// run's length independent of the server's speed, e.g. to kill it mid-run.
    pub rate: Option<u32>,
    /// Wait for a reply before retransmitting.
    pub timeout: Duration,
    /// Retransmissions of one message before the exchange is given up.
    pub retries: u32,
    /// The whole run stops after this, finished or not.
    pub deadline: Duration,
    /// The ACK record.
    pub out: PathBuf,
}

impl LoadOptions {
    /// Defaults for `count` clients from `bind` to `server`, recording into `out`.
    pub fn new(bind: Ipv4Addr, server: Ipv4Addr, count: u32, out: PathBuf) -> LoadOptions {
        LoadOptions {
            bind,
            server,
            port: 67,
            mac_tag: 0,
            first: 0,
            count,
            concurrency: 16,
            rate: None,
            timeout: Duration::from_millis(500),
            retries: 4,
            deadline: Duration::from_secs(30),
            out,
        }
    }

    /// The MAC of client `i`.
    pub fn mac(&self, i: u32) -> [u8; 6] {
        let b = i.to_be_bytes();
        [0x02, 0xe2, self.mac_tag, b[1], b[2], b[3]]
    }
}

/// The summary the `dhcp-load` binary prints as its last stdout line (JSON).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoadReport {
    pub acked: u32,
    pub naks: u32,
    /// Exchanges given up after every retransmission.
    pub failed: u32,
    /// Exchanges never finished because the deadline came.
    pub unfinished: u32,
    pub elapsed_ms: u64,
}

#[derive(Debug, Clone, Copy)]
enum Phase {
    Selecting,
    Requesting {
        offered: Ipv4Addr,
        server_id: Ipv4Addr,
    },
}

#[derive(Debug)]
struct Exchange {
    index: u32,
    phase: Phase,
    sent_at: Instant,
    tries: u32,
    naks: u32,
}

/// Run the load (blocking) and return its report.
pub fn run_load(opts: &LoadOptions) -> Result<LoadReport> {
    let start = Instant::now();
    let sock = UdpSocket::bind(SocketAddrV4::new(opts.bind, opts.port))
        .with_context(|| format!("bind {}:{}", opts.bind, opts.port))?;
    sock.set_read_timeout(Some(Duration::from_millis(10)))?;
    let server = SocketAddrV4::new(opts.server, opts.port);
    let mut out = File::options()
        .create(true)
        .append(true)
        .open(&opts.out)
        .with_context(|| format!("open {}", opts.out.display()))?;

    let clock = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let nonce = clock ^ std::process::id().rotate_left(16);
    let mut seq: u32 = 0;
    let mut next = opts.first;
    let end = opts.first.saturating_add(opts.count);
    let mut inflight: HashMap<u32, Exchange> = HashMap::new();
    let mut report = LoadReport::default();
    let mut buf = [0u8; 1500];

    let send = |xid: u32, ex: &Exchange| -> Result<()> {
        let bytes = encode_request(opts, xid, ex)?;
        sock.send_to(&bytes, server)?;
        Ok(())
    };

    while start.elapsed() < opts.deadline && (next < end || !inflight.is_empty()) {
        let allowed = match opts.rate {
            Some(r) => opts.first.saturating_add(
                u32::try_from(start.elapsed().as_millis() * u128::from(r) / 1000 + 1)
                    .unwrap_or(u32::MAX),
            ),
            None => end,
        };
        while next < end.min(allowed) && (inflight.len() as u32) < opts.concurrency {
            seq = seq.wrapping_add(1);
            let xid = nonce.wrapping_add(seq);
            let ex = Exchange {
                index: next,
                phase: Phase::Selecting,
                sent_at: Instant::now(),
                tries: 0,
                naks: 0,
            };
            send(xid, &ex)?;
            inflight.insert(xid, ex);
            next += 1;
        }

        match sock.recv_from(&mut buf) {
            Ok((n, _)) => {
                let Some(reply) = buf.get(..n).and_then(|b| Message::from_bytes(b).ok()) else {
                    continue;
                };
                let xid = reply.xid();
                let Some(mut ex) = inflight.remove(&xid) else {
                    continue;
                };
                if reply.chaddr().get(..6) != Some(&opts.mac(ex.index)[..]) {
                    inflight.insert(xid, ex);
                    continue;
                }
                match (reply.opts().msg_type(), ex.phase) {
                    (Some(MessageType::Offer), Phase::Selecting) => {
                        let server_id = match reply.opts().get(OptionCode::ServerIdentifier) {
                            Some(DhcpOption::ServerIdentifier(s)) => *s,
                            _ => opts.server,
                        };
                        ex.phase = Phase::Requesting {
                            offered: reply.yiaddr(),
                            server_id,
                        };
                        ex.tries = 0;
                        ex.sent_at = Instant::now();
                        send(xid, &ex)?;
                        inflight.insert(xid, ex);
                    }
                    (Some(MessageType::Ack), Phase::Requesting { offered, .. }) => {
                        let ip = reply.yiaddr();
                        let line = format!("ack {} {ip}\n", mac_string(&opts.mac(ex.index)));
                        // One unbuffered write per ACK: the record survives any kill.
                        out.write_all(line.as_bytes())?;
                        if ip != offered {
                            eprintln!(
                                "client {}: ACK for {ip} but {offered} was offered",
                                ex.index
                            );
                        }
                        report.acked += 1;
                    }
                    (Some(MessageType::Nak), _) => {
                        report.naks += 1;
                        ex.naks += 1;
                        if ex.naks > 3 {
                            report.failed += 1;
                            eprintln!("client {}: gave up after {} NAKs", ex.index, ex.naks);
                        } else {
                            // Back to DISCOVER under a fresh xid.
                            seq = seq.wrapping_add(1);
                            let xid = nonce.wrapping_add(seq);
                            ex.phase = Phase::Selecting;
                            ex.tries = 0;
                            ex.sent_at = Instant::now();
                            send(xid, &ex)?;
                            inflight.insert(xid, ex);
                        }
                    }
                    // A duplicate or late reply: keep waiting for the one we need.
                    _ => {
                        inflight.insert(xid, ex);
                    }
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => return Err(e).context("recv"),
        }

        let now = Instant::now();
        let expired: Vec<u32> = inflight
            .iter()
            .filter(|(_, ex)| now.duration_since(ex.sent_at) >= opts.timeout)
            .map(|(xid, _)| *xid)
            .collect();
        for xid in expired {
            let Some(mut ex) = inflight.remove(&xid) else {
                continue;
            };
            if ex.tries >= opts.retries {
                report.failed += 1;
                eprintln!("client {}: no reply after {} tries", ex.index, ex.tries + 1);
                continue;
            }
            ex.tries += 1;
            ex.sent_at = now;
            send(xid, &ex)?;
            inflight.insert(xid, ex);
        }
    }
    report.unfinished = inflight.len() as u32 + end.saturating_sub(next);
    report.elapsed_ms = start.elapsed().as_millis() as u64;
    Ok(report)
}

fn encode_request(opts: &LoadOptions, xid: u32, ex: &Exchange) -> Result<Vec<u8>> {
    let unspecified = Ipv4Addr::UNSPECIFIED;
    let mac = opts.mac(ex.index);
    let mut m = Message::new_with_id(xid, unspecified, unspecified, unspecified, opts.bind, &mac);
    m.set_hops(1);
    m.set_secs(u16::try_from(ex.tries).unwrap_or(u16::MAX));
    let o = m.opts_mut();
    match ex.phase {
        Phase::Selecting => {
            o.insert(DhcpOption::MessageType(MessageType::Discover));
        }
        Phase::Requesting { offered, server_id } => {
            o.insert(DhcpOption::MessageType(MessageType::Request));
            o.insert(DhcpOption::RequestedIpAddress(offered));
            o.insert(DhcpOption::ServerIdentifier(server_id));
        }
    }
    o.insert(DhcpOption::ParameterRequestList(vec![
        OptionCode::SubnetMask,
        OptionCode::Router,
        OptionCode::DomainNameServer,
        OptionCode::DomainName,
    ]));
    Ok(m.to_vec()?)
}

/// One line of the ACK record.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ack {
    pub mac: String,
    pub ip: Ipv4Addr,
}

/// Read an ACK record (complete lines only).
pub fn read_acks(path: &Path) -> Vec<Ack> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.split_inclusive('\n')
        .filter(|l| l.ends_with('\n'))
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            (w.next()? == "ack").then_some(())?;
            Some(Ack {
                mac: w.next()?.to_string(),
                ip: w.next()?.parse().ok()?,
            })
        })
        .collect()
}

/// The path of the `dhcp-load` binary, for tests of this package.
#[macro_export]
macro_rules! load_bin {
    () => {
        env!("CARGO_BIN_EXE_dhcp-load")
    };
}

/// The `dhcp-load` binary running in a namespace.
#[derive(Debug)]
pub struct LoadClient {
    process: Process,
    acks: PathBuf,
    stdout: PathBuf,
}

impl LoadClient {
    /// Start `bin` (use [`load_bin!`]) in `ns`; it binds `opts.bind:opts.port` there.
    pub fn start(
        env: &TestEnv,
        ns: &Netns,
        name: &str,
        bin: &str,
        opts: &LoadOptions,
    ) -> Result<LoadClient> {
        let stdout = env.path(&format!("{name}.out"));
        let log = env.path(&format!("{name}.log"));
        let mut cmd = ns.command(&[bin]);
        cmd.arg("--bind")
            .arg(opts.bind.to_string())
            .arg("--server")
            .arg(opts.server.to_string())
            .arg("--port")
            .arg(opts.port.to_string())
            .arg("--mac-tag")
            .arg(opts.mac_tag.to_string())
            .arg("--first")
            .arg(opts.first.to_string())
            .arg("--count")
            .arg(opts.count.to_string())
            .arg("--concurrency")
            .arg(opts.concurrency.to_string())
            .arg("--timeout-ms")
            .arg(opts.timeout.as_millis().to_string())
            .arg("--retries")
            .arg(opts.retries.to_string())
            .arg("--deadline-ms")
            .arg(opts.deadline.as_millis().to_string())
            .arg("--out")
            .arg(&opts.out);
        if let Some(r) = opts.rate {
            cmd.arg("--rate").arg(r.to_string());
        }
        let process = Process::spawn_split(name, &stdout, &log, cmd)?;
        Ok(LoadClient {
            process,
            acks: opts.out.clone(),
            stdout,
        })
    }

    /// Every ACK recorded so far.
    pub fn acks(&self) -> Vec<Ack> {
        read_acks(&self.acks)
    }

    /// Wait until at least `n` ACKs are recorded.
    pub fn wait_acks(&self, n: usize, timeout: Duration) -> Result<usize> {
        wait_until(
            format!("{n} ACKs in {}", self.acks.display()),
            timeout,
            || {
                let k = self.acks().len();
                (k >= n).then_some(k)
            },
        )
    }

    /// Wait for the run to end and return its report.
    pub fn wait(&mut self, timeout: Duration) -> Result<LoadReport> {
        let status = self.process.wait_exit(timeout)?;
        let out = std::fs::read_to_string(&self.stdout).unwrap_or_default();
        if !status.success() {
            bail!("dhcp-load exited with {status}: {}", self.process.log());
        }
        let last = out.lines().last().unwrap_or("");
        serde_json::from_str(last).with_context(|| format!("parse dhcp-load report: {out}"))
    }

    pub fn kill9(&mut self) {
        self.process.kill9();
    }
}
