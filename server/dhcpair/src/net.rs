//! DHCP sockets: one UDP socket per configured interface, bound to the server port on
//! 0.0.0.0 with SO_BINDTODEVICE, so every packet's arrival interface is known and broadcast
//! replies leave on the interface the request came in on.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};

use anyhow::{bail, Context};
use dhcpair_engine::Destination;
use socket2::{Domain, Protocol, Socket, Type};

/// A configured interface with its socket and IPv4 addresses.
#[derive(Debug)]
pub struct Interface {
    pub name: String,
    pub addrs: Vec<Ipv4Addr>,
    pub socket: UdpSocket,
}

/// IPv4 addresses of an interface, primary first.
pub fn interface_addrs(name: &str) -> anyhow::Result<Vec<Ipv4Addr>> {
    let mut found = false;
    let mut addrs = Vec::new();
    for ifa in nix::ifaddrs::getifaddrs().context("cannot list interfaces")? {
        if ifa.interface_name != name {
            continue;
        }
        found = true;
        if let Some(sin) = ifa.address.as_ref().and_then(|a| a.as_sockaddr_in()) {
            addrs.push(sin.ip());
        }
    }
    if !found {
        bail!("interface {name:?} does not exist on this host");
    }
    Ok(addrs)
}

pub fn open(name: &str, port: u16) -> anyhow::Result<Interface> {
    let addrs = interface_addrs(name)?;
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    s.set_reuse_address(true)?;
    s.set_broadcast(true)?;
    s.bind_device(Some(name.as_bytes()))
        .with_context(|| format!("cannot bind to device {name} (needs CAP_NET_RAW or root)"))?;
    // Bigger buffers absorb bursts (a commit, a checkpoint). SO_RCVBUFFORCE passes
    // net.core.rmem_max when we may (root / CAP_NET_ADMIN); otherwise take what the limit allows.
    if nix::sys::socket::setsockopt(&s, nix::sys::socket::sockopt::RcvBufForce, &(8 << 20)).is_err()
    {
        let _ = s.set_recv_buffer_size(8 << 20);
    }
    let _ = s.set_send_buffer_size(4 << 20);
    s.bind(&SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)).into())
        .with_context(|| format!("cannot bind UDP port {port} on {name}"))?;
    let socket: UdpSocket = s.into();
    // The engine thread polls every socket and reads until EAGAIN.
    socket.set_nonblocking(true)?;
    Ok(Interface {
        name: name.to_string(),
        addrs,
        socket,
    })
}

/// RFC 2131 §4.1: the socket address a reply goes to.
pub fn reply_addr(dest: Destination, server_port: u16, client_port: u16) -> SocketAddrV4 {
    match dest {
        Destination::Relay(giaddr) => SocketAddrV4::new(giaddr, server_port),
        Destination::Client(ciaddr) => SocketAddrV4::new(ciaddr, client_port),
        Destination::Broadcast => SocketAddrV4::new(Ipv4Addr::BROADCAST, client_port),
    }
}
