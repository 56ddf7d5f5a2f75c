//! The controller: the thin async shell around [`crate::render`] and [`crate::status`].
//!
//! Watched: FailoverPeers, Pools (mapped to their `failoverPeerRef`) and, when the API
//! server serves them, Nodes and the owned ConfigMaps/StatefulSets. Every reconcile is one
//! pass over the whole world (all FailoverPeers, Pools and nodes), because a node's server
//! hosts every relationship placed on it: list, render, apply the ConfigMaps and StatefulSets
//! (when the API server serves them), ask each server for its `/v1/status`, write every CR's
//! status by server-side apply, publish Events for condition changes. ConfigMaps are always
//! applied; a StatefulSet's new pod template only when [`crate::rollout::plan`] says so (one
//! node at a time, gated on NORMAL). A node's objects are deleted (pruned) once it hosts no
//! relationship. Passes are serialized; a pass whose inputs (generations, node facts,
//! versions of the applied objects) did not change since the last one, which ran less than
//! `resync / 2` ago, is skipped (unless a rollout is under way), so the watch events of our
//! own writes do not loop. With `--leader-election` only the holder of the Lease runs passes
//! ([`crate::leader`]). Errors are logged and retried; nothing here panics on what the API or
//! a server says.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Node};
use k8s_openapi::chrono::Utc;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use serde::Serialize;
use serde_json::{json, Value};
use tokio::sync::Mutex;

use crate::api::{FailoverPeer, Pool};
use crate::leader;
use crate::render::{render, CrKind, NodeFacts, Rendered, Settings};
use crate::rollout::{self, LiveNode, Plan};
use crate::status::{
    render_peer_status, render_pool_status, status_events, ServerView, ServerViews, StatusEvent,
};

/// The one field manager of every server-side apply.
pub const FIELD_MANAGER: &str = "dhcpair-operator";

/// The label selector of the objects the operator applies (see `render`).
const MANAGED_BY: &str = "app.kubernetes.io/managed-by=dhcpair-operator";

/// Why a pass failed (it is retried).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("kubernetes api: {0}")]
    Kube(#[from] kube::Error),
    #[error("serializing {what}: {source}")]
    Json {
        what: String,
        source: serde_json::Error,
    },
    /// Another replica holds the Lease now, or it could not be renewed: the process must
    /// stop reconciling (and exit, so its Deployment restarts it as a standby).
    #[error("leadership lost: {0}")]
    LeaderLost(String),
}

/// How the controller runs.
#[derive(Debug, Clone)]
pub struct Options {
    pub settings: Settings,
    /// Only this namespace; None: all.
    pub namespace: Option<String>,
    /// Node facts to use when the API server does not serve Nodes (a CRD-only test server).
    pub node_file: Option<Vec<NodeFacts>>,
    /// Timeout of one `/v1/status` request.
    pub status_timeout: Duration,
    /// How often status is refreshed when nothing changes.
    pub resync: Duration,
    /// Run passes only while holding the Lease; None: always (one replica).
    pub leader_election: Option<LeaderElection>,
}

/// Leader election settings (see [`crate::leader`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderElection {
    /// The Lease's namespace; None: the client's default namespace.
    pub namespace: Option<String>,
    /// This replica's `holderIdentity`.
    pub identity: String,
}

/// How soon to look again while a rollout is under way (a node becoming NORMAL is seen by
/// asking its server, not by a watch).
const ROLLOUT_POLL: Duration = Duration::from_secs(5);

/// Which optional APIs the server serves (a CRD-only test apiserver serves neither).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServedApis {
    pub nodes: bool,
    pub config_maps: bool,
    pub stateful_sets: bool,
}

#[derive(Debug, Default)]
struct LastPass {
    inputs: Option<Inputs>,
    at: Option<Instant>,
    /// The last pass's rollout had something left to do or to watch.
    rollout_pending: bool,
}

/// What a pass depends on, apart from the servers' answers.
#[derive(Debug, Clone, PartialEq)]
struct Inputs {
    generations: BTreeSet<(String, String, String, String, Option<i64>)>,
    nodes: Vec<NodeFacts>,
    /// (kind, namespace, name, resourceVersion) of the applied objects: one deleted or changed
    /// by someone else is applied again at once.
    owned: BTreeSet<(String, String, String, String)>,
}

struct Ctx {
    client: Client,
    recorder: Recorder,
    /// Whether a failed Event was logged at warn already (then debug).
    event_failed: std::sync::atomic::AtomicBool,
    opts: Options,
    served: ServedApis,
    last: Mutex<LastPass>,
}

impl std::fmt::Debug for Ctx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ctx")
            .field("opts", &self.opts)
            .field("served", &self.served)
            .finish_non_exhaustive()
    }
}

fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(r) if r.code == 404)
}

/// Probe one list endpoint: served unless it answers 404; None when the API server could not
/// be asked (probed again).
async fn probe<K>(api: Api<K>, what: &str) -> Option<bool>
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    match api.list_metadata(&ListParams::default().limit(1)).await {
        Ok(_) => Some(true),
        Err(e) if is_not_found(&e) => {
            tracing::warn!(
                api = what,
                "the API server does not serve {what}; not using them"
            );
            Some(false)
        }
        Err(kube::Error::Api(r)) if r.code == 403 => {
            tracing::warn!(
                api = what,
                message = %r.message,
                "the operator may not list {what}; not using them"
            );
            Some(false)
        }
        Err(e) => {
            tracing::warn!(api = what, error = %e, "probing {what} failed; retrying");
            None
        }
    }
}

/// Find out which optional APIs the server serves (logged once); retries until the API
/// server answers.
pub async fn probe_served(client: &Client, namespace: Option<&str>) -> ServedApis {
    let mut delay = Duration::from_millis(500);
    loop {
        let nodes = probe(Api::<Node>::all(client.clone()), "nodes").await;
        let config_maps = probe(scoped::<ConfigMap>(client, namespace), "configmaps").await;
        let stateful_sets = probe(scoped::<StatefulSet>(client, namespace), "statefulsets").await;
        if let (Some(nodes), Some(config_maps), Some(stateful_sets)) =
            (nodes, config_maps, stateful_sets)
        {
            return ServedApis {
                nodes,
                config_maps,
                stateful_sets,
            };
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(30));
    }
}

fn scoped<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    K::DynamicType: Default,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// Resolves on SIGTERM or SIGINT.
async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
}

/// Run the controller until SIGTERM/SIGINT; with leader election, first wait to hold the
/// Lease (a standby stops cleanly on a signal too), and return [`Error::LeaderLost`] when it
/// is lost.
pub async fn run(client: Client, opts: Options) -> Result<(), Error> {
    let Some(le) = opts.leader_election.clone() else {
        return run_controller(client, opts).await;
    };
    let namespace = le
        .namespace
        .clone()
        .unwrap_or_else(|| client.default_namespace().to_string());
    let config = leader::Config::new(namespace.clone(), le.identity.clone());
    let api = Api::namespaced(client.clone(), &namespace);
    tracing::info!(lease = %config.name, %namespace, identity = %config.identity,
        "leader election: waiting to hold the lease");
    let mut leadership = tokio::select! {
        l = leader::acquire(api, config) => l,
        () = shutdown_signal() => {
            tracing::info!("stopped while standing by");
            return Ok(());
        }
    };
    tokio::select! {
        res = run_controller(client, opts) => {
            leadership.release().await;
            res
        }
        why = leadership.lost() => {
            tracing::error!(reason = %why, "leadership lost; stopping");
            Err(Error::LeaderLost(why))
        }
    }
}

async fn run_controller(client: Client, opts: Options) -> Result<(), Error> {
    let served = probe_served(&client, opts.namespace.as_deref()).await;
    if !served.nodes && opts.node_file.is_none() {
        tracing::warn!("no Nodes API and no --nodes file: every placement will be NodeNotFound");
    }
    let ns = opts.namespace.clone();
    let peers: Api<FailoverPeer> = scoped(&client, ns.as_deref());
    let pools: Api<Pool> = scoped(&client, ns.as_deref());
    let reporter = Reporter {
        controller: FIELD_MANAGER.to_string(),
        instance: std::env::var("POD_NAME").ok(),
    };
    let ctx = Arc::new(Ctx {
        recorder: Recorder::new(client.clone(), reporter),
        event_failed: std::sync::atomic::AtomicBool::new(false),
        client,
        opts,
        served,
        last: Mutex::new(LastPass::default()),
    });
    // One pass before any FailoverPeer exists, so orphaned Pools get a status too.
    if let Err(e) = pass(&ctx).await {
        tracing::warn!(error = %e, "initial pass failed");
    }
    let mut controller = Controller::new(peers, watcher::Config::default())
        .with_config(ControllerConfig::default().debounce(Duration::from_millis(300)))
        .watches(pools, watcher::Config::default(), |pool: Pool| {
            let ns = pool.namespace()?;
            Some(ObjectRef::<FailoverPeer>::new(&pool.spec.failover_peer_ref).within(&ns))
        });
    if ctx.served.nodes {
        // A node's address or labels changed: a pass covers every CR, so one trigger will do.
        let store = controller.store();
        controller = controller.watches(
            Api::<Node>::all(ctx.client.clone()),
            watcher::Config::default(),
            move |_node: Node| {
                store
                    .state()
                    .first()
                    .map(|p| ObjectRef::from_obj(p.as_ref()))
            },
        );
    }
    let owned = watcher::Config::default().labels(MANAGED_BY);
    if ctx.served.config_maps {
        controller = controller.owns(
            scoped::<ConfigMap>(&ctx.client, ns.as_deref()),
            owned.clone(),
        );
    }
    if ctx.served.stateful_sets {
        controller = controller.owns(scoped::<StatefulSet>(&ctx.client, ns.as_deref()), owned);
    }
    controller
        .shutdown_on_signal()
        .run(reconcile, error_policy, ctx)
        .for_each(|res| async move {
            match res {
                Ok((obj, _)) => tracing::debug!(object = %obj, "reconciled"),
                // A Pool that names a FailoverPeer that does not exist lands here; the
                // pass of any other trigger writes its InvalidSpec.
                Err(e) => tracing::debug!(error = %e, "reconcile trigger"),
            }
        })
        .await;
    Ok(())
}

async fn reconcile(peer: Arc<FailoverPeer>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    use tracing::Instrument;
    let span = tracing::info_span!("reconcile", peer = %peer.name_any(),
        namespace = %peer.namespace().unwrap_or_default());
    pass(&ctx).instrument(span).await?;
    if ctx.last.lock().await.rollout_pending {
        return Ok(Action::requeue(ROLLOUT_POLL.min(ctx.opts.resync)));
    }
    Ok(Action::requeue(ctx.opts.resync))
}

fn error_policy(_peer: Arc<FailoverPeer>, error: &Error, _ctx: Arc<Ctx>) -> Action {
    tracing::warn!(%error, "pass failed; retrying in 10s");
    Action::requeue(Duration::from_secs(10))
}

fn key<K: Resource<DynamicType = ()>>(k: &K) -> (String, String, String, String, Option<i64>) {
    (
        K::kind(&()).to_string(),
        k.namespace().unwrap_or_default(),
        k.name_any(),
        k.uid().unwrap_or_default(),
        k.meta().generation,
    )
}

async fn node_facts(ctx: &Ctx) -> Result<Vec<NodeFacts>, Error> {
    if !ctx.served.nodes {
        return Ok(ctx.opts.node_file.clone().unwrap_or_default());
    }
    let nodes = Api::<Node>::all(ctx.client.clone())
        .list(&ListParams::default())
        .await?;
    Ok(nodes
        .items
        .into_iter()
        .map(|n| NodeFacts {
            internal_ip: n
                .status
                .as_ref()
                .and_then(|s| s.addresses.as_ref())
                .and_then(|a| {
                    a.iter()
                        .filter(|a| a.type_ == "InternalIP")
                        .find_map(|a| a.address.parse::<Ipv4Addr>().ok())
                }),
            labels: n.metadata.labels.clone().unwrap_or_default(),
            name: n.name_any(),
        })
        .collect())
}

fn version<K: Resource<DynamicType = ()>>(k: &K) -> (String, String, String, String) {
    (
        K::kind(&()).to_string(),
        k.namespace().unwrap_or_default(),
        k.name_any(),
        k.resource_version().unwrap_or_default(),
    )
}

/// The objects the operator applied (by its label), as they are now.
#[derive(Debug, Default)]
struct Live {
    /// (namespace, name, resourceVersion) of the ConfigMaps.
    config_maps: Vec<(String, String, String)>,
    stateful_sets: Vec<StatefulSet>,
}

impl Live {
    fn versions(&self) -> BTreeSet<(String, String, String, String)> {
        let cms = self.config_maps.iter().map(|(ns, name, rv)| {
            (
                "ConfigMap".to_string(),
                ns.clone(),
                name.clone(),
                rv.clone(),
            )
        });
        cms.chain(self.stateful_sets.iter().map(version)).collect()
    }

    fn stateful_set(&self, namespace: &str, name: &str) -> Option<&StatefulSet> {
        self.stateful_sets
            .iter()
            .find(|s| s.namespace().as_deref() == Some(namespace) && s.name_any() == name)
    }
}

async fn live_objects(ctx: &Ctx) -> Result<Live, Error> {
    let ns = ctx.opts.namespace.as_deref();
    let lp = ListParams::default().labels(MANAGED_BY);
    let mut out = Live::default();
    if ctx.served.config_maps {
        let list = scoped::<ConfigMap>(&ctx.client, ns)
            .list_metadata(&lp)
            .await?;
        out.config_maps = list
            .items
            .iter()
            .map(|m| {
                (
                    m.namespace().unwrap_or_default(),
                    m.name_any(),
                    m.resource_version().unwrap_or_default(),
                )
            })
            .collect();
    }
    if ctx.served.stateful_sets {
        // Whole objects: the rollout needs their annotations, status and pod template.
        out.stateful_sets = scoped::<StatefulSet>(&ctx.client, ns)
            .list(&lp)
            .await?
            .items;
    }
    Ok(out)
}

/// The (namespace, name) of the live objects to delete: those of nodes that host no
/// relationship any more. Nothing is pruned in a namespace where a FailoverPeer could not be
/// rendered: an invalid edit (or a node missing from the node list for a moment) must not
/// take a serving node down; its objects stay as they were until the spec is valid again.
fn prunable<'a>(
    rendered: &Rendered,
    live: impl Iterator<Item = (&'a str, &'a str)>,
) -> Vec<(&'a str, &'a str)> {
    let wanted: BTreeSet<(&str, String)> = rendered
        .nodes
        .iter()
        .map(|n| (n.namespace.as_str(), crate::render::object_name(&n.node)))
        .collect();
    let held: BTreeSet<&str> = rendered
        .errors
        .iter()
        .filter(|e| e.kind == CrKind::FailoverPeer)
        .map(|e| e.namespace.as_str())
        .collect();
    live.filter(|(ns, name)| !held.contains(ns) && !wanted.contains(&(*ns, (*name).to_string())))
        .collect()
}

/// Delete the objects of nodes that host no relationship any more (see [`prunable`]);
/// failures are logged.
async fn prune(ctx: &Ctx, rendered: &Rendered, live: &Live) {
    let sts = live.stateful_sets.iter().map(|s| {
        (
            s.metadata.namespace.as_deref().unwrap_or_default(),
            s.metadata.name.as_deref().unwrap_or_default(),
        )
    });
    for (ns, name) in prunable(rendered, sts) {
        delete::<StatefulSet>(ctx, ns, name, "StatefulSet").await;
    }
    let cms = live
        .config_maps
        .iter()
        .map(|(ns, name, _)| (ns.as_str(), name.as_str()));
    for (ns, name) in prunable(rendered, cms) {
        delete::<ConfigMap>(ctx, ns, name, "ConfigMap").await;
    }
}

async fn delete<K>(ctx: &Ctx, namespace: &str, name: &str, kind: &str)
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned,
{
    let api: Api<K> = Api::namespaced(ctx.client.clone(), namespace);
    match api.delete(name, &DeleteParams::background()).await {
        Ok(_) => tracing::info!(%namespace, %name, "pruned {kind}: its node hosts no relationship"),
        Err(e) if is_not_found(&e) => {}
        Err(e) => tracing::warn!(%namespace, %name, error = %e, "pruning {kind} failed"),
    }
}

/// One pass over the whole world.
async fn pass(ctx: &Ctx) -> Result<(), Error> {
    let mut last = ctx.last.lock().await;
    let ns = ctx.opts.namespace.as_deref();
    let peers = scoped::<FailoverPeer>(&ctx.client, ns)
        .list(&ListParams::default())
        .await?
        .items;
    let pools = scoped::<Pool>(&ctx.client, ns)
        .list(&ListParams::default())
        .await?
        .items;
    let nodes = node_facts(ctx).await?;
    let live = live_objects(ctx).await?;
    let inputs = Inputs {
        generations: peers.iter().map(key).chain(pools.iter().map(key)).collect(),
        nodes: nodes.clone(),
        owned: live.versions(),
    };
    // While a rollout is under way the servers' answers matter too: look again sooner.
    let gap = if last.rollout_pending {
        (ROLLOUT_POLL / 2).min(ctx.opts.resync / 2)
    } else {
        ctx.opts.resync / 2
    };
    let fresh = last.at.is_some_and(|t| t.elapsed() < gap);
    if fresh && last.inputs.as_ref() == Some(&inputs) {
        tracing::debug!("inputs unchanged since the last pass; skipped");
        return Ok(());
    }
    let rendered = render(&peers, &pools, &nodes, &ctx.opts.settings);
    for e in &rendered.errors {
        tracing::info!(error = %e, "invalid spec");
    }
    let views = fetch_views(ctx, &rendered).await;
    let port = ctx.opts.settings.http_port;
    // The rollout is planned only where StatefulSets are applied.
    let plan = ctx.served.stateful_sets.then(|| {
        let live_nodes: Vec<LiveNode> = live
            .stateful_sets
            .iter()
            .filter_map(LiveNode::from_stateful_set)
            .collect();
        rollout::plan(&rendered, &live_nodes, &views, port)
    });
    apply_objects(ctx, &rendered, plan.as_ref(), &live).await;
    prune(ctx, &rendered, &live).await;
    let now = Utc::now();
    for peer in &peers {
        let mut status = render_peer_status(peer, &rendered, &views, port, now);
        let placement = rendered.placements.iter().find(|p| {
            Some(&p.namespace) == peer.metadata.namespace.as_ref() && p.name == peer.name_any()
        });
        let invalid = status
            .conditions
            .iter()
            .any(|c| c.type_ == crate::api::condition::INVALID_SPEC && c.status == "True");
        if let (Some(plan), Some(placement), false) = (&plan, placement, invalid) {
            let previous = peer.status.as_ref().map(|s| s.conditions.as_slice());
            status.conditions.push(rollout::peer_condition(
                previous.unwrap_or_default(),
                plan,
                placement,
                peer.metadata.generation,
                now,
            ));
        }
        let old = peer.status.as_ref().map(|s| s.conditions.as_slice());
        let events = status_events(old.unwrap_or_default(), &status.conditions);
        apply_status(&ctx.client, peer, &status).await?;
        publish(ctx, peer, events).await;
    }
    for pool in &pools {
        let status = render_pool_status(pool, &rendered, &views, port, now);
        let old = pool.status.as_ref().map(|s| s.conditions.as_slice());
        let events = status_events(old.unwrap_or_default(), &status.conditions);
        apply_status(&ctx.client, pool, &status).await?;
        publish(ctx, pool, events).await;
    }
    last.inputs = Some(inputs);
    last.at = Some(Instant::now());
    last.rollout_pending = plan.as_ref().is_some_and(Plan::pending);
    tracing::info!(
        peers = peers.len(),
        pools = pools.len(),
        nodes = rendered.nodes.len(),
        invalid = rendered.errors.len(),
        answered = views.len(),
        "pass done"
    );
    Ok(())
}

/// Publish Events about a CR; a failure (no Events API, no permission) is logged, never fatal.
async fn publish<K: Resource<DynamicType = ()>>(ctx: &Ctx, obj: &K, events: Vec<StatusEvent>) {
    let reference = obj.object_ref(&());
    for e in events {
        let ev = Event {
            type_: if e.warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: e.reason,
            note: Some(e.note.chars().take(1024).collect()),
            action: e.action.to_string(),
            secondary: None,
        };
        if let Err(err) = ctx.recorder.publish(&ev, &reference).await {
            if ctx
                .event_failed
                .swap(true, std::sync::atomic::Ordering::Relaxed)
            {
                tracing::debug!(error = %err, "publishing an Event failed");
            } else {
                tracing::warn!(error = %err, "publishing an Event failed (logged once)");
            }
        }
    }
}

/// Server-side apply of a CR's status subresource, skipped when nothing changed.
async fn apply_status<K, S>(client: &Client, obj: &K, status: &S) -> Result<(), Error>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + Serialize
        + std::fmt::Debug,
    S: Serialize,
{
    let what = format!("{} {}", K::kind(&()), obj.name_any());
    let new = serde_json::to_value(status).map_err(|source| Error::Json {
        what: what.clone(),
        source,
    })?;
    let current = serde_json::to_value(obj)
        .ok()
        .and_then(|v| v.get("status").cloned());
    if current.as_ref() == Some(&new) {
        return Ok(());
    }
    let api: Api<K> = Api::namespaced(client.clone(), &obj.namespace().unwrap_or_default());
    let body = json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": new,
    });
    api.patch_status(
        &obj.name_any(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&body),
    )
    .await?;
    tracing::info!(object = %what, "status written");
    Ok(())
}

fn typed<T: Serialize>(obj: &T, api_version: &str, kind: &str) -> Result<Value, Error> {
    let mut v = serde_json::to_value(obj).map_err(|source| Error::Json {
        what: kind.to_string(),
        source,
    })?;
    if let Value::Object(m) = &mut v {
        m.insert("apiVersion".into(), api_version.into());
        m.insert("kind".into(), kind.into());
    }
    Ok(v)
}

/// Server-side apply of every node's ConfigMap (always) and StatefulSet (as the rollout
/// plan says), when the API serves them. Failures are logged; the status pass still runs.
async fn apply_objects(ctx: &Ctx, rendered: &Rendered, plan: Option<&Plan>, live: &Live) {
    for n in &rendered.nodes {
        if ctx.served.config_maps {
            apply_one(ctx, &n.namespace, &n.node, &n.config_map, "v1", "ConfigMap").await;
        }
        let Some(step) = plan.and_then(|p| p.node(&n.namespace, &n.node)) else {
            continue;
        };
        match &step.step {
            rollout::Step::Wait(w) => {
                tracing::info!(node = %n.node, "keeps its pod template for now: it {w}");
            }
            rollout::Step::Update(why) => {
                tracing::info!(node = %n.node, ?why, "applying the new pod template");
            }
            rollout::Step::Create | rollout::Step::Current => {}
        }
        let current = live.stateful_set(&n.namespace, &n.stateful_set.name_any());
        let sts = rollout::stateful_set_to_apply(&n.stateful_set, current, step);
        apply_one(ctx, &n.namespace, &n.node, &sts, "apps/v1", "StatefulSet").await;
    }
}

/// Server-side apply of one namespaced object; a failure is logged, not returned.
async fn apply_one<K>(
    ctx: &Ctx,
    namespace: &str,
    node: &str,
    obj: &K,
    api_version: &str,
    kind: &str,
) where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + std::fmt::Debug
        + Serialize
        + serde::de::DeserializeOwned,
{
    let api: Api<K> = Api::namespaced(ctx.client.clone(), namespace);
    let pp = PatchParams::apply(FIELD_MANAGER).force();
    let res = match typed(obj, api_version, kind) {
        Ok(body) => api
            .patch(&obj.name_any(), &pp, &Patch::Apply(&body))
            .await
            .map(|_| ())
            .map_err(Error::from),
        Err(e) => Err(e),
    };
    if let Err(e) = res {
        tracing::warn!(node = %node, error = %e, "applying {kind} failed");
    }
}

/// Ask every placed server for `/v1/status`, concurrently, each with a short timeout.
async fn fetch_views(ctx: &Ctx, rendered: &Rendered) -> ServerViews {
    let addresses: BTreeSet<Ipv4Addr> = rendered
        .placements
        .iter()
        .flat_map(|p| [p.primary.address, p.secondary.address])
        .collect();
    let port = ctx.opts.settings.http_port;
    let timeout = ctx.opts.status_timeout;
    let tasks = addresses.into_iter().map(|a| async move {
        let addr = SocketAddr::from((a, port));
        let res = tokio::task::spawn_blocking(move || fetch_status(addr, timeout)).await;
        match res {
            Ok(Ok(v)) => Some((a, v)),
            Ok(Err(e)) => {
                tracing::debug!(%addr, error = %e, "no status");
                None
            }
            Err(e) => {
                tracing::warn!(%addr, error = %e, "status task failed");
                None
            }
        }
    });
    futures::future::join_all(tasks)
        .await
        .into_iter()
        .flatten()
        .collect::<BTreeMap<_, _>>()
}

/// Why a server's status could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("connecting or reading: {0}")]
    Io(#[from] std::io::Error),
    #[error("answer is not HTTP 200: {0:?}")]
    Status(String),
    #[error("body is not the status JSON: {0}")]
    Body(#[from] serde_json::Error),
}

/// `GET /v1/status` over a plain TCP connection (HTTP/1.0, so the server closes).
pub fn fetch_status(addr: SocketAddr, timeout: Duration) -> Result<ServerView, FetchError> {
    let mut s = TcpStream::connect_timeout(&addr, timeout)?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    write!(
        s,
        "GET /v1/status HTTP/1.0\r\nHost: {addr}\r\nAccept: application/json\r\nConnection: close\r\n\r\n"
    )?;
    let mut buf = Vec::new();
    // At most 4 MiB: a status is small.
    s.take(4 << 20).read_to_end(&mut buf)?;
    parse_response(&buf)
}

/// Split an HTTP/1.x response into status line and body; only 200 with a JSON body is accepted.
pub fn parse_response(buf: &[u8]) -> Result<ServerView, FetchError> {
    let text = String::from_utf8_lossy(buf);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| FetchError::Status("no end of headers".to_string()))?;
    let status_line = head.lines().next().unwrap_or_default();
    if status_line.split_whitespace().nth(1) != Some("200") {
        return Err(FetchError::Status(status_line.to_string()));
    }
    if head.lines().any(|l| {
        l.to_ascii_lowercase()
            .starts_with("transfer-encoding: chunked")
    }) {
        return Err(FetchError::Status("chunked body".to_string()));
    }
    Ok(serde_json::from_str(body)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_200_json_response_parses_into_a_server_view() {
        let r = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\r\n{\"pools\":[{\"name\":\"p\",\"subnet\":\"192.0.2.0/24\",\"total\":10,\"free\":4,\"backup\":3,\"active\":2,\"expired\":0,\"released\":0,\"abandoned\":0,\"reserved\":0}],\"failover\":[{\"name\":\"lan\",\"role\":\"primary\",\"myState\":\"NORMAL\",\"partnerState\":\"NORMAL\",\"startup\":false,\"connected\":true,\"mclt\":60,\"unackedUpdates\":0,\"queuedUpdates\":0,\"secondsSinceContact\":1,\"skew\":0}]}";
        let v = parse_response(r);
        assert!(v.is_ok(), "{v:?}");
        let v = v.unwrap_or_default();
        assert_eq!(v.pools[0].free, 4);
        assert_eq!(v.failover[0].my_state, "NORMAL");
    }

    #[test]
    fn a_non_200_response_is_an_error() {
        let r = b"HTTP/1.1 503 Service Unavailable\r\n\r\nnot ready";
        assert!(matches!(parse_response(r), Err(FetchError::Status(_))));
    }

    #[test]
    fn an_unreachable_server_times_out_quickly() {
        // A port nobody listens on: refused at once, never a hang.
        let addr = SocketAddr::from(([127, 0, 0, 1], 9));
        let t = Instant::now();
        assert!(fetch_status(addr, Duration::from_millis(500)).is_err());
        assert!(t.elapsed() < Duration::from_secs(3));
    }

    // Mocked-apiserver call-order tests (tower-test): the requests of one pass, in order.
    mod call_order {
        use super::*;
        use http::{Request, Response};
        use kube::client::Body;
        use tower_test::mock;

        type Handle = mock::Handle<Request<Body>, Response<Body>>;

        fn example(kind: &str) -> Vec<Value> {
            let text = include_str!("../../examples/one-pair.yaml");
            let mut out = Vec::new();
            for doc in serde_yaml::Deserializer::from_str(text) {
                let v: Value = match serde::Deserialize::deserialize(doc) {
                    Ok(v) => v,
                    Err(e) => panic!("example: {e}"),
                };
                if v["kind"] == kind {
                    out.push(v);
                }
            }
            for (i, v) in out.iter_mut().enumerate() {
                v["metadata"]["generation"] = json!(1);
                v["metadata"]["uid"] = json!(format!("{kind}-{i}"));
                v["metadata"]["resourceVersion"] = json!("1");
            }
            out
        }

        fn list(kind: &str, items: Vec<Value>) -> Value {
            json!({"apiVersion": "dhcpair.io/v1alpha1", "kind": format!("{kind}List"),
                   "metadata": {"resourceVersion": "1"}, "items": items})
        }

        /// Answer the next request after checking its method and path; returns the query
        /// and the JSON body.
        async fn expect(h: &mut Handle, method: &str, path: &str, reply: Value) -> (String, Value) {
            let next = tokio::time::timeout(Duration::from_secs(10), h.next_request()).await;
            let Ok(Some((req, send))) = next else {
                panic!("no request; wanted {method} {path}");
            };
            let (method_seen, uri) = (req.method().to_string(), req.uri().clone());
            assert_eq!((method_seen.as_str(), uri.path()), (method, path));
            let bytes = match req.into_body().collect_bytes().await {
                Ok(b) => b,
                Err(e) => panic!("body: {e}"),
            };
            let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            // Null: echo the body; a status patch is answered with the object plus that status.
            let reply = match (reply, body.get("status")) {
                (Value::Null, _) => body.clone(),
                (mut obj, Some(st)) if body.get("spec").is_none() => {
                    obj["status"] = st.clone();
                    obj
                }
                (obj, _) => obj,
            };
            let resp = Response::builder()
                .status(if method == "POST" { 201 } else { 200 })
                .body(Body::from(serde_json::to_vec(&reply).unwrap_or_default()));
            match resp {
                Ok(r) => send.send_response(r),
                Err(e) => panic!("response: {e}"),
            }
            (uri.query().unwrap_or_default().to_string(), body)
        }

        /// The example nodes on loopback addresses (127.0.0.11 ...), so status requests
        /// never leave the machine.
        fn loopback_nodes() -> Vec<NodeFacts> {
            let nodes = crate::input::nodes_from_yaml(
                "nodes.facts.yaml",
                include_str!("../../examples/nodes.facts.yaml"),
            )
            .unwrap_or_default();
            nodes
                .into_iter()
                .map(|mut n| {
                    n.internal_ip = n.internal_ip.map(|a| {
                        let [_, _, _, last] = a.octets();
                        Ipv4Addr::new(127, 0, 0, last)
                    });
                    n
                })
                .collect()
        }

        fn ctx(client: Client, served: ServedApis) -> Ctx {
            // Nothing listens there: the status requests fail fast.
            ctx_with(client, served, 9, "ghcr.io/dhcpair/dhcpair:latest")
        }

        fn ctx_with(client: Client, served: ServedApis, http_port: u16, image: &str) -> Ctx {
            let nodes = Some(loopback_nodes());
            let settings = Settings {
                http_port,
                default_image: image.to_string(),
                ..Settings::default()
            };
            Ctx {
                recorder: Recorder::new(
                    client.clone(),
                    Reporter {
                        controller: FIELD_MANAGER.to_string(),
                        instance: None,
                    },
                ),
                event_failed: std::sync::atomic::AtomicBool::new(false),
                client,
                opts: Options {
                    settings,
                    namespace: None,
                    node_file: nodes,
                    status_timeout: Duration::from_secs(2),
                    resync: Duration::from_secs(30),
                    leader_election: None,
                },
                served,
                last: Mutex::new(LastPass::default()),
            }
        }

        #[tokio::test]
        async fn a_pass_lists_then_applies_each_nodes_objects_then_writes_each_status() {
            let (svc, mut h) = mock::pair::<Request<Body>, Response<Body>>();
            let client = Client::new(svc, "default");
            let served = ServedApis {
                nodes: false,
                config_maps: true,
                stateful_sets: true,
            };
            let ctx = ctx(client, served);
            let server = async move {
                let peers = example("FailoverPeer");
                let pools = example("Pool");
                expect(
                    &mut h,
                    "GET",
                    "/apis/dhcpair.io/v1alpha1/failoverpeers",
                    list("FailoverPeer", peers.clone()),
                )
                .await;
                expect(
                    &mut h,
                    "GET",
                    "/apis/dhcpair.io/v1alpha1/pools",
                    list("Pool", pools.clone()),
                )
                .await;
                let empty = json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadataList",
                                   "metadata": {"resourceVersion": "1"}, "items": []});
                let (q, _) = expect(&mut h, "GET", "/api/v1/configmaps", empty.clone()).await;
                assert!(
                    q.contains("labelSelector=app.kubernetes.io%2Fmanaged-by%3Ddhcpair-operator"),
                    "{q}"
                );
                expect(&mut h, "GET", "/apis/apps/v1/statefulsets", empty).await;
                for node in ["node-a", "node-b"] {
                    let (q, cm) = expect(
                        &mut h,
                        "PATCH",
                        &format!("/api/v1/namespaces/dhcp/configmaps/dhcpair-{node}"),
                        Value::Null,
                    )
                    .await;
                    assert!(
                        q.contains("fieldManager=dhcpair-operator") && q.contains("force=true"),
                        "{q}"
                    );
                    assert_eq!(cm["kind"], "ConfigMap");
                    let (_, sts) = expect(
                        &mut h,
                        "PATCH",
                        &format!("/apis/apps/v1/namespaces/dhcp/statefulsets/dhcpair-{node}"),
                        Value::Null,
                    )
                    .await;
                    assert_eq!(sts["kind"], "StatefulSet");
                    assert_eq!(sts["spec"]["template"]["spec"]["hostNetwork"], true);
                }
                let (q, body) = expect(
                    &mut h,
                    "PATCH",
                    "/apis/dhcpair.io/v1alpha1/namespaces/dhcp/failoverpeers/lan/status",
                    peers[0].clone(),
                )
                .await;
                assert!(q.contains("fieldManager=dhcpair-operator"), "{q}");
                assert_eq!(body["status"]["observedGeneration"], 1);
                assert_eq!(body["status"]["primary"]["node"], "node-a");
                let (_, body) = expect(
                    &mut h,
                    "PATCH",
                    "/apis/dhcpair.io/v1alpha1/namespaces/dhcp/pools/lan-192-0-2/status",
                    pools[0].clone(),
                )
                .await;
                assert_eq!(body["kind"], "Pool");
                // Nothing else: a valid CR whose servers do not answer yet gets no Event.
            };
            let (res, ()) = tokio::join!(pass(&ctx), server);
            assert!(res.is_ok(), "{res:?}");
        }

        #[tokio::test]
        async fn without_core_apis_a_bad_cr_gets_invalid_spec_and_a_warning_event_and_nothing_is_applied(
        ) {
            let (svc, mut h) = mock::pair::<Request<Body>, Response<Body>>();
            let client = Client::new(svc, "default");
            let served = ServedApis {
                nodes: false,
                config_maps: false,
                stateful_sets: false,
            };
            let ctx = ctx(client, served);
            let server = async move {
                let mut peers = example("FailoverPeer");
                peers[0]["spec"]["hba"] = json!("ff".repeat(32));
                expect(
                    &mut h,
                    "GET",
                    "/apis/dhcpair.io/v1alpha1/failoverpeers",
                    list("FailoverPeer", peers.clone()),
                )
                .await;
                expect(
                    &mut h,
                    "GET",
                    "/apis/dhcpair.io/v1alpha1/pools",
                    list("Pool", vec![]),
                )
                .await;
                let (_, body) = expect(
                    &mut h,
                    "PATCH",
                    "/apis/dhcpair.io/v1alpha1/namespaces/dhcp/failoverpeers/lan/status",
                    peers[0].clone(),
                )
                .await;
                let conds = body["status"]["conditions"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                assert!(
                    conds.iter().any(|c| c["type"] == "InvalidSpec"
                        && c["status"] == "True"
                        && c["reason"] == "SplitAndHba"),
                    "{conds:?}"
                );
                let (_, ev) = expect(
                    &mut h,
                    "POST",
                    "/apis/events.k8s.io/v1/namespaces/dhcp/events",
                    Value::Null,
                )
                .await;
                assert_eq!(ev["type"], "Warning");
                assert_eq!(ev["reason"], "SplitAndHba");
                assert_eq!(ev["regarding"]["name"], "lan");
            };
            let (res, ()) = tokio::join!(pass(&ctx), server);
            assert!(res.is_ok(), "{res:?}");
        }

        const SERVED: ServedApis = ServedApis {
            nodes: false,
            config_maps: true,
            stateful_sets: true,
        };

        fn typed_examples() -> (Vec<FailoverPeer>, Vec<Pool>) {
            fn de<T: serde::de::DeserializeOwned>(kind: &str) -> Vec<T> {
                example(kind)
                    .into_iter()
                    .filter_map(|v| serde_json::from_value(v).ok())
                    .collect()
            }
            (de("FailoverPeer"), de("Pool"))
        }

        /// What render makes of the example with this image and port.
        fn rendered_with(image: &str, http_port: u16) -> Rendered {
            let (peers, pools) = typed_examples();
            let settings = Settings {
                http_port,
                default_image: image.to_string(),
                ..Settings::default()
            };
            render(&peers, &pools, &loopback_nodes(), &settings)
        }

        /// The example's StatefulSets as the API server would list them: applied with
        /// `image`, rolled out and ready.
        fn live_stateful_sets(image: &str, http_port: u16) -> Vec<Value> {
            rendered_with(image, http_port)
                .nodes
                .iter()
                .map(|n| {
                    let mut v = serde_json::to_value(&n.stateful_set).unwrap_or_default();
                    v["apiVersion"] = json!("apps/v1");
                    v["kind"] = json!("StatefulSet");
                    v["metadata"]["resourceVersion"] = json!("10");
                    v["metadata"]["generation"] = json!(1);
                    v["status"] = json!({"replicas": 1, "readyReplicas": 1, "updatedReplicas": 1,
                        "currentRevision": "r1", "updateRevision": "r1", "observedGeneration": 1});
                    v
                })
                .collect()
        }

        fn metadata_list(items: Vec<Value>) -> Value {
            json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadataList",
                   "metadata": {"resourceVersion": "1"}, "items": items})
        }

        fn object_list(kind: &str, items: Vec<Value>) -> Value {
            json!({"apiVersion": "v1", "kind": format!("{kind}List"),
                   "metadata": {"resourceVersion": "1"}, "items": items})
        }

        /// Stand-in servers answering `/v1/status` on 127.0.0.11 (lan's primary) and
        /// 127.0.0.12 (its secondary) on one port, both NORMAL. The caller aborts the tasks.
        async fn normal_servers() -> (u16, Vec<tokio::task::JoinHandle<()>>) {
            use tokio::net::TcpListener;
            for _ in 0..20 {
                let Ok(a) = TcpListener::bind("127.0.0.11:0").await else {
                    continue;
                };
                let Ok(port) = a.local_addr().map(|x| x.port()) else {
                    continue;
                };
                let Ok(b) = TcpListener::bind(("127.0.0.12", port)).await else {
                    continue;
                };
                let tasks = [(a, "primary"), (b, "secondary")]
                    .into_iter()
                    .map(|(l, role)| tokio::spawn(serve_normal(l, role)))
                    .collect();
                return (port, tasks);
            }
            panic!("no free port on 127.0.0.11 and 127.0.0.12");
        }

        async fn serve_normal(l: tokio::net::TcpListener, role: &'static str) {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let body = json!({"pools": [], "failover": [{"name": "lan", "role": role,
                "myState": "NORMAL", "partnerState": "NORMAL", "connected": true,
                "secondsSinceContact": 1}]})
            .to_string();
            // Bounded: a pass asks each server once.
            for _ in 0..8 {
                let Ok((mut s, _)) = l.accept().await else {
                    return;
                };
                let mut req = Vec::new();
                let mut buf = [0u8; 512];
                while !req.windows(4).any(|w| w == b"\r\n\r\n") && req.len() < 4096 {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => req.extend_from_slice(&buf[..n]),
                    }
                }
                let resp = format!(
                    "HTTP/1.0 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(resp.as_bytes()).await;
                let _ = s.shutdown().await;
            }
        }

        fn annotation(v: &Value, key: &str) -> Option<String> {
            v["metadata"]["annotations"][key].as_str().map(String::from)
        }

        fn image_of(v: &Value) -> Option<String> {
            v["spec"]["template"]["spec"]["containers"][0]["image"]
                .as_str()
                .map(String::from)
        }

        #[tokio::test]
        async fn an_image_change_updates_only_the_first_nodes_stateful_set_while_the_second_waits()
        {
            let (port, servers) = normal_servers().await;
            let (svc, mut h) = mock::pair::<Request<Body>, Response<Body>>();
            let ctx = ctx_with(Client::new(svc, "default"), SERVED, port, "img:2");
            let new_hash = rendered_with("img:2", port).nodes[0]
                .stateful_set
                .annotations()
                .get(rollout::TEMPLATE_HASH)
                .cloned();
            let server = async move {
                let (peers, pools) = (example("FailoverPeer"), example("Pool"));
                let live = live_stateful_sets("img:1", port);
                let old_hash = annotation(&live[1], rollout::TEMPLATE_HASH);
                let base = "/apis/dhcpair.io/v1alpha1";
                let fps = list("FailoverPeer", peers.clone());
                expect(&mut h, "GET", &format!("{base}/failoverpeers"), fps).await;
                let pls = list("Pool", pools.clone());
                expect(&mut h, "GET", &format!("{base}/pools"), pls).await;
                let cms = ["node-a", "node-b"]
                    .iter()
                    .map(|n| {
                        json!({"metadata": {"name": format!("dhcpair-{n}"),
                        "namespace": "dhcp", "resourceVersion": "9"}})
                    })
                    .collect();
                expect(&mut h, "GET", "/api/v1/configmaps", metadata_list(cms)).await;
                let (q, _) = expect(
                    &mut h,
                    "GET",
                    "/apis/apps/v1/statefulsets",
                    object_list("StatefulSet", live),
                )
                .await;
                assert!(q.contains("labelSelector="), "{q}");
                let cm_path = |n: &str| format!("/api/v1/namespaces/dhcp/configmaps/dhcpair-{n}");
                let sts_path =
                    |n: &str| format!("/apis/apps/v1/namespaces/dhcp/statefulsets/dhcpair-{n}");
                // node-a: its turn; the new template, marked as the step in flight.
                let (_, cm) = expect(&mut h, "PATCH", &cm_path("node-a"), Value::Null).await;
                assert_eq!(cm["kind"], "ConfigMap");
                let (_, a) = expect(&mut h, "PATCH", &sts_path("node-a"), Value::Null).await;
                assert_eq!(image_of(&a).as_deref(), Some("img:2"));
                assert_eq!(annotation(&a, rollout::TEMPLATE_HASH), new_hash);
                assert_eq!(annotation(&a, rollout::ROLLOUT_STEP), new_hash);
                // node-b: its ConfigMap is applied, its pod template is kept.
                let (_, cm) = expect(&mut h, "PATCH", &cm_path("node-b"), Value::Null).await;
                assert_eq!(cm["kind"], "ConfigMap");
                let (_, b) = expect(&mut h, "PATCH", &sts_path("node-b"), Value::Null).await;
                assert_eq!(image_of(&b).as_deref(), Some("img:1"));
                assert_eq!(annotation(&b, rollout::TEMPLATE_HASH), old_hash);
                assert_eq!(annotation(&b, rollout::ROLLOUT_STEP), None);
                // No DELETE: both nodes still host lan. The status says who waits.
                let (_, st) = expect(
                    &mut h,
                    "PATCH",
                    &format!("{base}/namespaces/dhcp/failoverpeers/lan/status"),
                    peers[0].clone(),
                )
                .await;
                let conds = st["status"]["conditions"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                let rolled = conds.iter().find(|c| c["type"] == "RolledOut").cloned();
                let rolled = rolled.unwrap_or_default();
                assert_eq!(rolled["status"], "False");
                assert_eq!(rolled["reason"], "RolloutWaiting");
                let msg = rolled["message"].as_str().unwrap_or_default().to_string();
                assert!(
                    msg.contains("node node-b waits: node node-a is updated first"),
                    "{msg}"
                );
                let ready = conds.iter().find(|c| c["type"] == "Ready").cloned();
                assert_eq!(ready.unwrap_or_default()["status"], "True");
                let events = "/apis/events.k8s.io/v1/namespaces/dhcp/events";
                let mut reasons = Vec::new();
                for _ in 0..2 {
                    let (_, ev) = expect(&mut h, "POST", events, Value::Null).await;
                    reasons.push(ev["reason"].as_str().unwrap_or_default().to_string());
                }
                assert_eq!(reasons, ["AllNormal", "RolloutWaiting"]);
                expect(
                    &mut h,
                    "PATCH",
                    &format!("{base}/namespaces/dhcp/pools/lan-192-0-2/status"),
                    pools[0].clone(),
                )
                .await;
                let (_, ev) = expect(&mut h, "POST", events, Value::Null).await;
                assert_eq!(ev["reason"], "AllNormal");
            };
            let (res, ()) = tokio::join!(pass(&ctx), server);
            servers.iter().for_each(|t| t.abort());
            assert!(res.is_ok(), "{res:?}");
            assert!(ctx.last.lock().await.rollout_pending);
        }

        #[tokio::test]
        async fn the_objects_of_a_node_that_hosts_no_relationship_are_deleted() {
            let (svc, mut h) = mock::pair::<Request<Body>, Response<Body>>();
            let ctx = ctx(Client::new(svc, "default"), SERVED);
            let server = async move {
                let base = "/apis/dhcpair.io/v1alpha1";
                let fps = list("FailoverPeer", example("FailoverPeer"));
                expect(&mut h, "GET", &format!("{base}/failoverpeers"), fps).await;
                let pls = list("Pool", example("Pool"));
                expect(&mut h, "GET", &format!("{base}/pools"), pls).await;
                // node-c hosted a relationship once; lan moved away from it.
                let stale = json!({"metadata": {"name": "dhcpair-node-c", "namespace": "dhcp",
                    "resourceVersion": "3", "labels": {"dhcpair.io/node": "node-c"}}});
                let cms = metadata_list(vec![stale.clone()]);
                expect(&mut h, "GET", "/api/v1/configmaps", cms).await;
                let mut sts = stale.clone();
                sts["spec"] = json!({"selector": {}, "serviceName": "dhcpair-node-c",
                    "template": {"spec": {"containers": []}}});
                let stss = object_list("StatefulSet", vec![sts]);
                expect(&mut h, "GET", "/apis/apps/v1/statefulsets", stss).await;
                for node in ["node-a", "node-b"] {
                    let cm = format!("/api/v1/namespaces/dhcp/configmaps/dhcpair-{node}");
                    expect(&mut h, "PATCH", &cm, Value::Null).await;
                    let sts = format!("/apis/apps/v1/namespaces/dhcp/statefulsets/dhcpair-{node}");
                    let (_, body) = expect(&mut h, "PATCH", &sts, Value::Null).await;
                    // Brand new: created with the rendered template, no rollout step.
                    assert_eq!(annotation(&body, rollout::ROLLOUT_STEP), None);
                }
                let gone = json!({"kind": "Status", "apiVersion": "v1", "status": "Success",
                    "metadata": {}});
                let (_, del) = expect(
                    &mut h,
                    "DELETE",
                    "/apis/apps/v1/namespaces/dhcp/statefulsets/dhcpair-node-c",
                    gone.clone(),
                )
                .await;
                // The pod goes with it (garbage collection in the background).
                assert_eq!(del["propagationPolicy"], "Background");
                expect(
                    &mut h,
                    "DELETE",
                    "/api/v1/namespaces/dhcp/configmaps/dhcpair-node-c",
                    gone,
                )
                .await;
                let peer = example("FailoverPeer")[0].clone();
                let (_, st) = expect(
                    &mut h,
                    "PATCH",
                    &format!("{base}/namespaces/dhcp/failoverpeers/lan/status"),
                    peer,
                )
                .await;
                let conds = st["status"]["conditions"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                assert!(
                    conds
                        .iter()
                        .any(|c| c["type"] == "RolledOut" && c["reason"] == "RolloutInProgress"),
                    "{conds:?}"
                );
                let pool = example("Pool")[0].clone();
                expect(
                    &mut h,
                    "PATCH",
                    &format!("{base}/namespaces/dhcp/pools/lan-192-0-2/status"),
                    pool,
                )
                .await;
            };
            let (res, ()) = tokio::join!(pass(&ctx), server);
            assert!(res.is_ok(), "{res:?}");
        }

        #[test]
        fn nothing_is_pruned_in_a_namespace_with_an_invalid_failover_peer() {
            let r = rendered_with("img:1", 9167);
            let live = [
                ("dhcp", "dhcpair-node-a"),
                ("dhcp", "dhcpair-node-c"),
                ("other", "dhcpair-node-d"),
            ];
            let doomed = prunable(&r, live.iter().copied());
            assert_eq!(
                doomed,
                [("dhcp", "dhcpair-node-c"), ("other", "dhcpair-node-d")]
            );
            let mut bad = r.clone();
            bad.errors.push(crate::render::CrError {
                kind: CrKind::FailoverPeer,
                namespace: "dhcp".into(),
                name: "lan2".into(),
                error: crate::render::SpecError::SplitAndHba,
            });
            let doomed = prunable(&bad, live.iter().copied());
            assert_eq!(doomed, [("other", "dhcpair-node-d")]);
            // An invalid Pool does not hold pruning back.
            let mut pool_bad = r;
            pool_bad.errors.push(crate::render::CrError {
                kind: CrKind::Pool,
                namespace: "dhcp".into(),
                name: "p".into(),
                error: crate::render::SpecError::SplitAndHba,
            });
            assert_eq!(prunable(&pool_bad, live.iter().copied()).len(), 2);
        }
    }
}
