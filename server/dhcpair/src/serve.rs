//! `dhcpair serve`: wires the engine to sockets, the store writer, timers and HTTP.
//!
//! Threads: one engine thread that owns all mutable state and polls the DHCP sockets itself
//! (no hand-off per packet), the store writer (group commit; it sends the replies whose leases
//! it made durable), and a small tokio runtime for failover TCP, HTTP and signals, whose inputs
//! reach the engine through a queue plus a wake-up socket.

use std::collections::HashMap;
use std::io::{Read, Write as _};
use std::net::SocketAddrV4;
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender, TryRecvError};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use dhcpair_config::Config;
use dhcpair_engine::{
    Arrival, ConnId, Effect, Engine, Lease, Persist, PoolStats, RelationshipRecord, Time,
};
use dhcpair_store::{
    CommitStats, GroupCommitter, LeaseStore, RelationshipState, SqliteStore, Write,
};
use dhcpair_wire::v4::MessageType;
use dhcpair_wire::Inbound;
use tracing::{debug, info, warn};

use crate::http::{PoolStatus, RelationshipView, Shared, Status};
use crate::metrics::{DecodeLabels, Metrics, MsgType, PacketLabels};
use crate::net::{self, Interface};
use crate::peer::{self, ConnTx, Out, Transport};

/// Writes per group commit at most; more waiting writes go into the next commit.
const MAX_BATCH: usize = 4096;
/// How long the store writer waits for more leases before a commit. Each commit is one fsync;
/// at 10,000 leases/s this gathers ~10 per commit, for at most 1 ms more ACK latency.
const COMMIT_LINGER: Duration = Duration::from_millis(1);
/// Packets read from one socket before the engine looks at its other inputs.
const READ_BURST: usize = 64;

pub enum Input {
    PeerConnected {
        peer: usize,
        conn: ConnId,
        tx: ConnTx,
    },
    PeerClosed {
        peer: usize,
        conn: ConnId,
    },
    PeerMessage {
        peer: usize,
        conn: ConnId,
        msg: Box<dhcpair_wire::failover::Message>,
    },
    PartnerDown {
        name: String,
        reply: tokio::sync::oneshot::Sender<Result<(), String>>,
    },
    /// A new, valid configuration read from the file (`reload.rs`); applied or refused here.
    Reload {
        config: Box<Config>,
        hash: String,
        trigger: crate::reload::Trigger,
    },
    Shutdown,
}

/// The engine's queue for everything but DHCP packets (failover frames, connection events,
/// admin commands, shutdown). Nothing here is ever dropped. A byte on the wake socket tells the
/// polling engine thread to look.
#[derive(Clone, Debug)]
pub struct InputTx {
    tx: Sender<Input>,
    wake: Arc<UnixStream>,
    pending: Arc<AtomicBool>,
    closed: Arc<AtomicBool>,
}

impl InputTx {
    /// Queue an input; false once the engine has stopped.
    pub fn send(&self, i: Input) -> bool {
        if self.tx.send(i).is_err() {
            return false;
        }
        if !self.pending.swap(true, Ordering::AcqRel) {
            let _ = (&*self.wake).write(&[1]);
        }
        true
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Relaxed)
    }
}

fn unix_now() -> Time {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Serve with the config file at `path`; `reload_interval`: how often to look for a changed
/// file (`None`: only on SIGHUP); `restart_on_change`: a reload that needs a restart stops the
/// server gracefully (its supervisor starts it again with the new file) instead of being refused.
pub fn run(
    path: &Path,
    reload_interval: Option<Duration>,
    restart_on_change: bool,
) -> anyhow::Result<()> {
    init_tracing();
    let (config, config_hash) = crate::reload::load(path)?;
    let data_dir = config.server.data_dir.clone();
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("cannot create data directory {}", data_dir.display()))?;
    let mut store = SqliteStore::open(&crate::db_path(&data_dir))?;
    let snapshot = store.load()?;
    info!(leases = snapshot.leases.len(), db = %crate::db_path(&data_dir).display(), "lease database loaded");
    let saved: Vec<RelationshipRecord> = snapshot
        .relationships
        .iter()
        .map(|r| RelationshipRecord {
            name: r.name.clone(),
            my_state: r.my_state,
            partner_state: r.partner_state,
            stos: r.stos,
            mclt: r.mclt,
        })
        .collect();
    for p in &config.peers {
        if p.load_balance_max_seconds == 0 {
            warn!(
                "WARNING: load balancing will be disabled for failover peer, {}, because its load balance max secs is 0",
                p.name
            );
        }
    }

    let mut ifaces = Vec::new();
    for name in &config.server.interfaces {
        let i = net::open(name, config.server.port)?;
        info!(interface = %i.name, addrs = ?i.addrs, port = config.server.port, "listening");
        ifaces.push(Arc::new(i));
    }

    let metrics = Arc::new(Metrics::new());
    metrics.config_loaded(&config_hash, unix_now(), false);
    info!(file = %path.display(), hash = %config_hash, "configuration loaded");
    let ready = Arc::new(AtomicBool::new(false));
    let status = Arc::new(RwLock::new(Status {
        version: env!("CARGO_PKG_VERSION"),
        server_id: config.server.server_id.map(|s| s.to_string()),
        interfaces: config.server.interfaces.clone(),
        pools: Vec::new(),
        failover: Vec::new(),
    }));
    let token = crate::control::load_token(&config.server)?;

    let observer_metrics = Arc::clone(&metrics);
    let committer =
        GroupCommitter::spawn_lingering(store, MAX_BATCH, COMMIT_LINGER, move |s: CommitStats| {
            observer_metrics
                .commit_latency
                .observe(s.duration.as_secs_f64());
            observer_metrics.commit_batch.observe(s.batch_writes as f64);
            if !s.ok {
                observer_metrics.commit_errors.inc();
            }
        });

    let engine = Engine::new(config.clone(), snapshot.leases, &saved, unix_now());
    let (raw_tx, rx) = channel::<Input>();
    let (wake_tx, wake_rx) = UnixStream::pair()?;
    wake_tx.set_nonblocking(true)?;
    wake_rx.set_nonblocking(true)?;
    let pending = Arc::new(AtomicBool::new(false));
    let tx = InputTx {
        tx: raw_tx,
        wake: Arc::new(wake_tx),
        pending: Arc::clone(&pending),
        closed: Arc::new(AtomicBool::new(false)),
    };
    let transport = Transport::new(config.peers.clone());
    let ports = (config.server.port, config.server.client_port);
    let worker = EngineThread {
        engine,
        rx,
        wake: wake_rx,
        pending,
        buf: vec![0u8; 4096],
        conns: HashMap::new(),
        transport: Arc::clone(&transport),
        msg_seen: Vec::new(),
        committer,
        ifaces: ifaces.clone(),
        metrics: Arc::clone(&metrics),
        status: Arc::clone(&status),
        ports,
        reclaim_every: Duration::from_secs(u64::from(config.server.reclaim_interval)),
        last_pool_log: None,
        restart_on_change,
    };
    // The engine thread stops on its own only for `--restart-on-change`; then so does the rest.
    let (engine_done_tx, engine_done) = tokio::sync::oneshot::channel::<()>();
    let engine_thread = std::thread::Builder::new()
        .name("engine".into())
        .spawn(move || {
            worker.run();
            let _ = engine_done_tx.send(());
        })?;

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .thread_name("http")
        .build()?;
    let shared = Shared {
        metrics,
        status,
        ready: Arc::clone(&ready),
        input: tx.clone(),
        token,
    };
    let http_addr = config.server.http;
    let peer_tx = tx.clone();
    let peer_transport = Arc::clone(&transport);
    let reload_tx = tx.clone();
    let reload_metrics = Arc::clone(&shared.metrics);
    let config_path = path.to_path_buf();
    rt.block_on(async move {
        // Before "ready": from here on SIGHUP reloads instead of ending the process.
        let hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            .context("cannot install the SIGHUP handler")?;
        tokio::spawn(crate::reload::watch(
            config_path,
            reload_interval,
            hup,
            config_hash,
            reload_tx,
            reload_metrics,
        ));
        peer::start(peer_transport, peer_tx).await?;
        let (sd_tx, sd_rx) = tokio::sync::watch::channel(false);
        let http = match http_addr {
            Some(addr) => {
                let listener = tokio::net::TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("cannot listen for HTTP on {addr}"))?;
                info!(%addr, "http listening");
                let mut rx = sd_rx.clone();
                Some(tokio::spawn(async move {
                    let app = crate::http::router(shared);
                    axum::serve(listener, app)
                        .with_graceful_shutdown(async move {
                            let _ = rx.wait_for(|v| *v).await;
                        })
                        .await
                }))
            }
            None => None,
        };
        ready.store(true, Ordering::Relaxed);
        info!("ready");
        tokio::select! {
            _ = wait_for_signal() => {}
            _ = engine_done => {}
        }
        info!("shutting down");
        ready.store(false, Ordering::Relaxed);
        let _ = sd_tx.send(true);
        if let Some(h) = http {
            let _ = h.await;
        }
        anyhow::Ok(())
    })?;
    tx.send(Input::Shutdown);
    tx.closed.store(true, Ordering::Relaxed);
    let _ = engine_thread.join();
    // Let connection tasks write what the engine queued last (STATE, then close).
    rt.block_on(async {
        for _ in 0..50 {
            if transport.open_conns.load(Ordering::Relaxed) == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    info!("stopped");
    Ok(())
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("DHCPAIR_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr)
        .try_init();
}

fn msg_type(t: Option<MessageType>) -> MsgType {
    match t {
        None => MsgType::bootp,
        Some(MessageType::Discover) => MsgType::discover,
        Some(MessageType::Request) => MsgType::request,
        Some(MessageType::Decline) => MsgType::decline,
        Some(MessageType::Release) => MsgType::release,
        Some(MessageType::Inform) => MsgType::inform,
        Some(_) => MsgType::other,
    }
}

/// A reply ready to leave, once its lease (if any) is durable.
struct Outgoing {
    iface: Arc<Interface>,
    to: SocketAddrV4,
    bytes: Vec<u8>,
    received: Instant,
    metrics: Arc<Metrics>,
}

impl Outgoing {
    fn send(self) {
        match self.iface.socket.send_to(&self.bytes, self.to) {
            Ok(_) => self
                .metrics
                .reply_latency
                .observe(self.received.elapsed().as_secs_f64()),
            Err(e) => {
                self.metrics.send_errors.inc();
                warn!(interface = %self.iface.name, to = %self.to, error = %e, "send failed");
            }
        }
    }
}

struct EngineThread {
    engine: Engine,
    rx: Receiver<Input>,
    wake: UnixStream,
    pending: Arc<AtomicBool>,
    buf: Vec<u8>,
    /// Open failover connections and their writers.
    conns: HashMap<ConnId, ConnTx>,
    transport: Arc<Transport>,
    /// Failover message counts already added to the metrics, per relationship.
    msg_seen: Vec<dhcpair_engine::failover::MessageCounts>,
    committer: GroupCommitter,
    ifaces: Vec<Arc<Interface>>,
    metrics: Arc<Metrics>,
    status: Arc<RwLock<Status>>,
    ports: (u16, u16),
    reclaim_every: Duration,
    last_pool_log: Option<(Instant, Vec<PoolStats>)>,
    restart_on_change: bool,
}

impl EngineThread {
    fn run(mut self) {
        let tick = Duration::from_secs(1);
        let mut next_tick = Instant::now();
        let mut next_reclaim = Instant::now();
        loop {
            let now = Instant::now();
            if now >= next_tick {
                if now >= next_reclaim {
                    self.reclaim();
                    next_reclaim = now + self.reclaim_every;
                }
                self.engine.handle_tick(unix_now());
                self.dispatch(None, None);
                self.sync_linked();
                self.publish();
                next_tick = now + tick;
            }
            // An input queued while the last drain ran may have found `pending` already set
            // and written no wake byte: look again at once instead of sleeping until the tick
            // (a lost wake-up here held failover replies for up to a second).
            let timeout = if self.pending.load(Ordering::Acquire) {
                Duration::ZERO
            } else {
                next_tick.saturating_duration_since(Instant::now())
            };
            let (ready, wake_ready) = match self.wait(timeout) {
                Ok(r) => r,
                Err(e) => {
                    warn!(error = %e, "poll failed");
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                }
            };
            for idx in ready {
                self.read_socket(idx);
            }
            if (wake_ready || self.pending.load(Ordering::Acquire)) && !self.drain_inputs() {
                break;
            }
        }
        // Tell the partners, then flush every queued write; the replies waiting on them go out.
        self.engine.handle_shutdown(unix_now());
        self.dispatch(None, None);
        self.committer.shutdown();
    }

    /// Wait until a DHCP socket or the wake socket is readable, or `timeout` passes.
    /// Returns the readable interfaces and whether the wake socket was readable.
    fn wait(&self, timeout: Duration) -> nix::Result<(Vec<usize>, bool)> {
        use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
        let mut fds: Vec<PollFd> = self
            .ifaces
            .iter()
            .map(|i| PollFd::new(i.socket.as_fd(), PollFlags::POLLIN))
            .collect();
        fds.push(PollFd::new(self.wake.as_fd(), PollFlags::POLLIN));
        let ms = if timeout.is_zero() {
            0
        } else {
            u16::try_from(timeout.as_millis().max(1)).unwrap_or(u16::MAX)
        };
        match poll(&mut fds, PollTimeout::from(ms)) {
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => return Ok((Vec::new(), false)),
            Err(e) => return Err(e),
        }
        let readable = |f: &PollFd| f.revents().is_some_and(|r| !r.is_empty());
        let wake = fds.last().is_some_and(readable);
        let ready = fds[..fds.len() - 1]
            .iter()
            .enumerate()
            .filter(|(_, f)| readable(f))
            .map(|(i, _)| i)
            .collect();
        Ok((ready, wake))
    }

    /// Read and handle up to `READ_BURST` packets from one interface.
    fn read_socket(&mut self, idx: usize) {
        let Some(iface) = self.ifaces.get(idx).cloned() else {
            return;
        };
        for _ in 0..READ_BURST {
            let n = match iface.socket.recv_from(&mut self.buf) {
                Ok((n, _src)) => n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    warn!(interface = %iface.name, error = %e, "receive failed");
                    return;
                }
            };
            let received = Instant::now();
            match dhcpair_wire::decode_request(&self.buf[..n]) {
                Ok(inbound) => self.handle_packet(idx, inbound, received),
                Err(e) => {
                    debug!(interface = %iface.name, reason = e.as_str(), "dropped undecodable packet");
                    self.metrics
                        .decode_errors
                        .get_or_create(&DecodeLabels { reason: e.as_str() })
                        .inc();
                }
            }
        }
    }

    /// Handle every queued non-DHCP input. False on shutdown.
    fn drain_inputs(&mut self) -> bool {
        self.pending.store(false, Ordering::Release);
        let mut sink = [0u8; 64];
        while matches!((&self.wake).read(&mut sink), Ok(n) if n > 0) {}
        loop {
            match self.rx.try_recv() {
                Ok(Input::PeerConnected { peer, conn, tx }) => {
                    self.conns.insert(conn, tx);
                    self.engine.handle_peer_connected(unix_now(), peer, conn);
                }
                Ok(Input::PeerClosed { peer, conn }) => {
                    self.conns.remove(&conn);
                    self.engine.handle_peer_closed(unix_now(), peer, conn);
                }
                Ok(Input::PeerMessage { peer, conn, msg }) => {
                    self.engine
                        .handle_peer_message(unix_now(), peer, conn, *msg);
                }
                Ok(Input::PartnerDown { name, reply }) => {
                    let r = match self.engine.relationship_index(&name) {
                        Some(i) => self.engine.handle_partner_down(unix_now(), i),
                        None => Err(format!("no failover relationship named {name:?}")),
                    };
                    self.dispatch(None, None);
                    let _ = reply.send(r);
                }
                Ok(Input::Reload {
                    config,
                    hash,
                    trigger,
                }) => {
                    if !self.reload(*config, &hash, trigger) {
                        return false;
                    }
                }
                Ok(Input::Shutdown) | Err(TryRecvError::Disconnected) => return false,
                Err(TryRecvError::Empty) => break,
            }
            self.dispatch(None, None);
        }
        self.sync_linked();
        true
    }

    /// Tell the transport which relationships have a link (no new outbound connection then).
    /// Links change only on failover inputs and ticks, never on the DHCP path.
    fn sync_linked(&self) {
        for (i, flag) in self.transport.linked.iter().enumerate() {
            flag.store(self.engine.is_linked(i), Ordering::Relaxed);
        }
    }

    /// Carry out the engine's effects: persist the lease of `decision` and every `Persist`,
    /// then (once durable) send `reply` and every peer message, in order.
    fn dispatch(&mut self, lease: Option<Lease>, reply: Option<Outgoing>) {
        let effects = self.engine.poll_effects();
        let mut writes: Vec<Write> = lease.into_iter().map(Write::Lease).collect();
        let mut sends: Vec<(ConnTx, Out)> = Vec::new();
        for e in effects {
            match e {
                Effect::Persist(Persist::Lease(l)) => writes.push(Write::Lease(l)),
                Effect::Persist(Persist::Relationship(r)) => {
                    writes.push(Write::Relationship(RelationshipState {
                        name: r.name,
                        my_state: r.my_state,
                        partner_state: r.partner_state,
                        stos: r.stos,
                        mclt: r.mclt,
                    }))
                }
                Effect::Send { conn, msg, .. } => {
                    if let (Some(tx), Some(bytes)) = (self.conns.get(&conn), peer::frame(&msg)) {
                        sends.push((tx.clone(), Out::Frame(bytes)));
                    }
                }
                Effect::Close { conn, .. } => {
                    if let Some(tx) = self.conns.get(&conn) {
                        sends.push((tx.clone(), Out::Close));
                    }
                }
            }
        }
        if writes.is_empty() && sends.is_empty() {
            if let Some(r) = reply {
                r.send();
            }
            return;
        }
        // Persist before reply: the ACK and the peer messages leave only from the writer,
        // after the commit (peer messages without writes still go through it to keep order).
        self.committer.submit(
            writes,
            Box::new(move |res| match res {
                Ok(()) => {
                    if let Some(r) = reply {
                        r.send();
                    }
                    for (tx, out) in sends {
                        let _ = tx.send(out);
                    }
                }
                Err(e) => warn!(error = %e, "not durable; replies and peer messages withheld"),
            }),
        );
    }

    fn handle_packet(&mut self, idx: usize, inbound: Inbound, received: Instant) {
        let Some(iface) = self.ifaces.get(idx).cloned() else {
            return;
        };
        let msg = &inbound.msg;
        let kind = msg.opts().msg_type();
        let d = self.engine.handle_request(
            unix_now(),
            &Arrival {
                interface_addrs: &iface.addrs,
            },
            msg,
            inbound.relay_agent_info.clone(),
        );
        self.metrics
            .packets
            .get_or_create(&PacketLabels {
                message_type: msg_type(kind),
                outcome: d.outcome.as_str(),
            })
            .inc();
        debug!(
            xid = format_args!("{:#010x}", msg.xid()),
            chaddr = ?msg.chaddr(),
            giaddr = %msg.giaddr(),
            r#type = ?kind,
            outcome = d.outcome.as_str(),
            "request"
        );
        let outgoing = d.reply.and_then(|r| match r.encode() {
            Ok(bytes) => Some(Outgoing {
                iface,
                to: net::reply_addr(r.dest, self.ports.0, self.ports.1),
                bytes,
                received,
                metrics: Arc::clone(&self.metrics),
            }),
            Err(e) => {
                warn!(error = %e, "reply not encodable");
                None
            }
        });
        self.dispatch(d.persist, outgoing);
    }

    /// Apply a new configuration between two packets, or refuse it (`Engine::reconfigure`).
    /// False: the server should stop (a change that needs a restart, with `restart_on_change`).
    fn reload(&mut self, config: Config, hash: &str, trigger: crate::reload::Trigger) -> bool {
        let trigger = trigger.as_str();
        match self.engine.reconfigure(config, unix_now()) {
            Ok(r) => {
                info!("configuration reloaded ({trigger}, hash {hash}): {r}");
                if r.active_outside_pools > 0 {
                    warn!(
                        "{} active leases are outside every pool now: kept until they end or are released, not renewed",
                        r.active_outside_pools
                    );
                }
                if r.active_reserved_for_another > 0 {
                    warn!(
                        "{} active leases are on addresses now reserved for another client: NAKed at their next request; the reserved clients get the addresses once these bindings end or are released",
                        r.active_reserved_for_another
                    );
                }
                let server = &self.engine.config().server;
                self.reclaim_every = Duration::from_secs(u64::from(server.reclaim_interval));
                let server_id = server.server_id.map(|s| s.to_string());
                match self.status.write() {
                    Ok(mut g) => g.server_id = server_id,
                    Err(p) => p.into_inner().server_id = server_id,
                }
                self.metrics.config_loaded(hash, unix_now(), true);
                // Removed pools (or moved subnets) must not linger; publish() sets them again.
                self.metrics.clear_pools();
                self.last_pool_log = None;
                self.publish();
                true
            }
            Err(e) if self.restart_on_change => {
                warn!("configuration changed ({trigger}, hash {hash}): {e}; stopping gracefully to be restarted with it (--restart-on-change)");
                self.metrics.reload(crate::metrics::ReloadResult::restart);
                false
            }
            Err(e) => {
                warn!("configuration not reloaded ({trigger}, hash {hash}): {e}; the running configuration stays");
                self.metrics.reload(crate::metrics::ReloadResult::rejected);
                true
            }
        }
    }

    fn reclaim(&mut self) {
        let rows = self.engine.handle_reclaim(unix_now());
        if !rows.is_empty() {
            info!(leases = rows.len(), "reclaimed expired leases");
        }
        for l in rows {
            self.dispatch(Some(l), None);
        }
    }

    fn publish(&mut self) {
        let stats = self.engine.pool_stats(unix_now());
        self.metrics.set_pools(&stats);
        let changed = self
            .last_pool_log
            .as_ref()
            .is_none_or(|(at, prev)| *prev != stats && at.elapsed() >= Duration::from_secs(60));
        if changed {
            for s in &stats {
                // ISC's pool line, so people coming from dhcpd can read our logs.
                info!(
                    "pool {} {} total {} free {} backup {} active {} expired {} abandoned {}",
                    s.name, s.subnet, s.total, s.free, s.backup, s.active, s.expired, s.abandoned
                );
            }
            self.last_pool_log = Some((Instant::now(), stats.clone()));
        }
        let pools = stats
            .into_iter()
            .map(|s| PoolStatus {
                name: s.name,
                subnet: s.subnet,
                total: s.total,
                free: s.free,
                active: s.active,
                expired: s.expired,
                released: s.released,
                abandoned: s.abandoned,
                backup: s.backup,
                reserved: s.reserved,
            })
            .collect();
        let rels = self.engine.relationships();
        self.metrics
            .set_relationships(&rels, &mut self.msg_seen, unix_now());
        let failover: Vec<RelationshipView> = rels
            .iter()
            .map(|r| RelationshipView::new(r, unix_now()))
            .collect();
        let mut g = match self.status.write() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        g.pools = pools;
        g.failover = failover;
    }
}
