//! The client side of one server's link: an AF_PACKET socket on the client end of the veth,
//! opened inside the client namespace (a helper thread enters it with `setns`; the socket
//! keeps that namespace). It sends whole Ethernet frames (any source MAC, source 0.0.0.0 or a
//! relay's address) and captures every BOOTREPLY that reaches the link, whatever its
//! destination address or MAC. While it waits it answers ARP for addresses the client
//! namespace does not own, so that a server that unicasts to `ciaddr` through its kernel can.

use std::fs::File;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use dhcpair_e2e::Netns;
use nix::sched::CloneFlags;
use pnet_datalink::{Channel, DataLinkReceiver, DataLinkSender};

use crate::packet::{arp_reply, parse_arp_request, parse_reply_frame, Reply};

pub struct Endpoint {
    tx: Box<dyn DataLinkSender>,
    rx: Box<dyn DataLinkReceiver>,
    pub ifname: String,
    pub mac: [u8; 6],
    /// Addresses the client namespace's kernel answers ARP for itself.
    pub own_ips: Vec<Ipv4Addr>,
    /// Replies captured while waiting for another xid (late replies of earlier steps).
    pub stray: Vec<Reply>,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("ifname", &self.ifname)
            .field("mac", &self.mac)
            .finish()
    }
}

pub fn parse_mac(s: &str) -> Result<[u8; 6]> {
    let v: Vec<u8> = s
        .split(':')
        .map(|x| u8::from_str_radix(x, 16))
        .collect::<Result<_, _>>()
        .with_context(|| format!("bad MAC {s:?}"))?;
    v.try_into().map_err(|_| anyhow!("bad MAC {s:?}"))
}

impl Endpoint {
    /// Open the socket on `ifname` inside `ns`.
    pub fn open(ns: &Netns, ifname: &str, own_ips: Vec<Ipv4Addr>) -> Result<Endpoint> {
        let ns_path = format!("/run/netns/{}", ns.name());
        let name = ifname.to_string();
        let (tx, rx) = std::thread::scope(|s| {
            s.spawn(
                || -> Result<(Box<dyn DataLinkSender>, Box<dyn DataLinkReceiver>)> {
                    let f = File::open(&ns_path).with_context(|| format!("open {ns_path}"))?;
                    // This helper thread ends right after; the socket stays in the namespace.
                    nix::sched::setns(&f, CloneFlags::CLONE_NEWNET)
                        .with_context(|| format!("setns {ns_path}"))?;
                    let iface = pnet_datalink::interfaces()
                        .into_iter()
                        .find(|i| i.name == name)
                        .with_context(|| format!("no interface {name} in {ns_path}"))?;
                    let cfg = pnet_datalink::Config {
                        read_timeout: Some(Duration::from_millis(20)),
                        ..Default::default()
                    };
                    match pnet_datalink::channel(&iface, cfg)
                        .with_context(|| format!("AF_PACKET socket on {name}"))?
                    {
                        Channel::Ethernet(tx, rx) => Ok((tx, rx)),
                        _ => bail!("not an Ethernet channel"),
                    }
                },
            )
            .join()
            .map_err(|_| anyhow!("setns helper thread panicked"))?
        })?;
        let mac = parse_mac(&ns.mac(ifname)?)?;
        Ok(Endpoint {
            tx,
            rx,
            ifname: ifname.to_string(),
            mac,
            own_ips,
            stray: Vec::new(),
        })
    }

    pub fn send(&mut self, frame: &[u8]) -> Result<()> {
        match self.tx.send_to(frame, None) {
            Some(Ok(())) => Ok(()),
            Some(Err(e)) => Err(e).context("send frame"),
            None => bail!("send frame: no buffer"),
        }
    }

    /// Keep whatever replies are queued (late replies of earlier steps) in `stray`.
    pub fn drain(&mut self) {
        let until = Instant::now() + Duration::from_millis(5);
        while Instant::now() < until {
            match self.rx.next() {
                Ok(f) => {
                    if let Some(r) = parse_reply_frame(f) {
                        if self.stray.len() < 64 {
                            self.stray.push(r);
                        }
                    }
                }
                Err(_) => break,
            }
        }
    }

    /// Collect BOOTREPLYs with `xid` until `timeout` passes, or `settle` after the first one.
    /// ARP requests for addresses that are not `never_arp` and not the namespace's own are
    /// answered with `arp_mac`.
    pub fn collect(
        &mut self,
        xid: u32,
        timeout: Duration,
        settle: Duration,
        arp_mac: [u8; 6],
        never_arp: &[Ipv4Addr],
    ) -> Vec<Reply> {
        let start = Instant::now();
        let mut deadline = start + timeout;
        let mut out = Vec::new();
        // Bounded: one frame per iteration, at most 20 ms each without traffic, and the
        // deadline never moves later than `timeout` after the start.
        for _ in 0..100_000 {
            if Instant::now() >= deadline {
                break;
            }
            let frame = match self.rx.next() {
                Ok(f) => f.to_vec(),
                Err(_) => continue,
            };
            if let Some((smac, sip, tip)) = parse_arp_request(&frame) {
                if !never_arp.contains(&tip) && !self.own_ips.contains(&tip) && smac != arp_mac {
                    let r = arp_reply(arp_mac, tip, smac, sip);
                    let _ = self.tx.send_to(&r, None);
                }
                continue;
            }
            let Some(reply) = parse_reply_frame(&frame) else {
                continue;
            };
            if reply.xid != xid {
                if self.stray.len() < 64 {
                    self.stray.push(reply);
                }
                continue;
            }
            if out.is_empty() {
                deadline = deadline.min(Instant::now() + settle);
            }
            out.push(reply);
        }
        out
    }
}
