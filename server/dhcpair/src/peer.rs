//! Failover transport (reference §1.1): both sides listen and connect; outgoing connections
//! are bound to the configured address; inbound ones are matched to a relationship by source
//! IP only (`peerAddress`), anything else is refused. Frames are length-delimited (§1.2).
//!
//! Each connection is a tokio task that decodes frames into engine inputs and writes what the
//! engine thread queues for it. The engine decides everything else (handshake, duplicates).

use std::collections::HashMap;
use std::net::{SocketAddr, SocketAddrV4};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use dhcpair_config::Peer;
use dhcpair_engine::ConnId;
use dhcpair_wire::failover::{decode, frame_len, Decoded, Message};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};
use tracing::{debug, info, warn};

use crate::serve::{Input, InputTx};

/// Reconnect delay after a lost link (ISC: 5 s).
const RECONNECT: Duration = Duration::from_secs(5);

/// What the engine thread sends to a connection task.
#[derive(Debug)]
pub enum Out {
    Frame(Vec<u8>),
    Close,
}

/// Shared between the engine thread and the transport tasks.
#[derive(Debug)]
pub struct Transport {
    pub peers: Vec<Peer>,
    /// Per relationship: the engine has an established link (no new outbound attempts).
    pub linked: Vec<AtomicBool>,
    next_conn: AtomicU64,
    pub open_conns: AtomicUsize,
}

impl Transport {
    pub fn new(peers: Vec<Peer>) -> Arc<Transport> {
        let linked = peers.iter().map(|_| AtomicBool::new(false)).collect();
        Arc::new(Transport {
            peers,
            linked,
            next_conn: AtomicU64::new(1),
            open_conns: AtomicUsize::new(0),
        })
    }
}

/// Start listeners (one per distinct address:port) and one connector per relationship.
pub async fn start(t: Arc<Transport>, input: InputTx) -> anyhow::Result<()> {
    let mut listeners: HashMap<SocketAddrV4, Vec<usize>> = HashMap::new();
    for (i, p) in t.peers.iter().enumerate() {
        listeners
            .entry(SocketAddrV4::new(p.address, p.port))
            .or_default()
            .push(i);
    }
    for (addr, rels) in listeners {
        let l = TcpListener::bind(addr)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen for failover on {addr}: {e}"))?;
        info!(%addr, "failover listening");
        tokio::spawn(accept_loop(l, rels, Arc::clone(&t), input.clone()));
    }
    for i in 0..t.peers.len() {
        tokio::spawn(connect_loop(i, Arc::clone(&t), input.clone()));
    }
    Ok(())
}

async fn accept_loop(l: TcpListener, rels: Vec<usize>, t: Arc<Transport>, input: InputTx) {
    loop {
        let (stream, remote) = match l.accept().await {
            Ok(x) => x,
            Err(e) => {
                warn!(error = %e, "failover accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let SocketAddr::V4(remote) = remote else {
            continue;
        };
        match rels
            .iter()
            .copied()
            .find(|r| t.peers[*r].peer_address == *remote.ip())
        {
            Some(peer) => {
                info!(%remote, relationship = %t.peers[peer].name, "failover connection accepted");
                tokio::spawn(run_conn(stream, peer, Arc::clone(&t), input.clone()));
            }
            None => {
                // Reference §0 fact 10: ISC's words for a connection from an unknown address.
                warn!(%remote, "failover: listener: no matching state");
                drop(stream);
            }
        }
    }
}

async fn connect_loop(peer: usize, t: Arc<Transport>, input: InputTx) {
    let p = t.peers[peer].clone();
    let to = SocketAddrV4::new(p.peer_address, p.peer_port);
    loop {
        if !t.linked[peer].load(Ordering::Relaxed) && !input.is_closed() {
            let sock = TcpSocket::new_v4().and_then(|s| {
                s.set_reuseaddr(true)?;
                s.bind(SocketAddr::V4(SocketAddrV4::new(p.address, 0)))?;
                Ok(s)
            });
            match sock {
                Ok(s) => match tokio::time::timeout(RECONNECT, s.connect(SocketAddr::V4(to))).await
                {
                    Ok(Ok(stream)) => {
                        info!(%to, relationship = %p.name, "failover connected");
                        run_conn(stream, peer, Arc::clone(&t), input.clone()).await;
                    }
                    Ok(Err(e)) => debug!(%to, error = %e, "failover connect failed"),
                    Err(_) => debug!(%to, "failover connect timed out"),
                },
                Err(e) => warn!(address = %p.address, error = %e, "cannot bind failover socket"),
            }
        }
        if input.is_closed() {
            return;
        }
        tokio::time::sleep(RECONNECT).await;
    }
}

/// One connection: read frames into the engine, write what it queues.
async fn run_conn(stream: TcpStream, peer: usize, t: Arc<Transport>, input: InputTx) {
    let conn = ConnId(t.next_conn.fetch_add(1, Ordering::Relaxed));
    let _ = stream.set_nodelay(true);
    let (tx, rx) = unbounded_channel::<Out>();
    t.open_conns.fetch_add(1, Ordering::Relaxed);
    if !input.send(Input::PeerConnected { peer, conn, tx }) {
        t.open_conns.fetch_sub(1, Ordering::Relaxed);
        return;
    }
    let (rd, wr) = stream.into_split();
    let reader = read_frames(rd, peer, conn, input.clone());
    let writer = write_frames(wr, rx);
    tokio::select! {
        _ = reader => {}
        _ = writer => {}
    }
    input.send(Input::PeerClosed { peer, conn });
    t.open_conns.fetch_sub(1, Ordering::Relaxed);
}

async fn read_frames(
    mut rd: tokio::net::tcp::OwnedReadHalf,
    peer: usize,
    conn: ConnId,
    input: InputTx,
) {
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    loop {
        loop {
            match frame_len(&buf) {
                Ok(Some(n)) => {
                    match decode(&buf[..n]) {
                        Ok(Decoded::Message(msg)) => {
                            if !input.send(Input::PeerMessage {
                                peer,
                                conn,
                                msg: Box::new(msg),
                            }) {
                                return;
                            }
                        }
                        Ok(Decoded::Ignored { kind }) => {
                            debug!(kind, "ignored failover message type")
                        }
                        Err(e) => {
                            // Reference §1.3: a protocol error drops the connection.
                            warn!(error = %e, "FAILOVER: {e}; message length wait: protocol error");
                            return;
                        }
                    }
                    buf.drain(..n);
                }
                Ok(None) => break,
                Err(e) => {
                    warn!(error = %e, "failover framing error; message length wait: protocol error");
                    return;
                }
            }
        }
        match rd.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

async fn write_frames(mut wr: tokio::net::tcp::OwnedWriteHalf, mut rx: UnboundedReceiver<Out>) {
    while let Some(out) = rx.recv().await {
        match out {
            Out::Frame(bytes) => {
                if wr.write_all(&bytes).await.is_err() {
                    return;
                }
            }
            Out::Close => {
                let _ = wr.shutdown().await;
                return;
            }
        }
    }
}

/// Encode a message for the wire; a message the codec refuses is a bug, logged and dropped.
pub fn frame(msg: &Message) -> Option<Vec<u8>> {
    match msg.encode() {
        Ok(b) => Some(b),
        Err(e) => {
            warn!(error = %e, kind = %msg.kind, "failover message not encodable");
            None
        }
    }
}

pub type ConnTx = UnboundedSender<Out>;
