//! The controller: the thin async shell around [`crate::render`] and [`crate::status`].
//!
//! Watched: FailoverPeers, Pools (mapped to their `failoverPeerRef`) and, when the API
//! server serves them, Nodes and the owned ConfigMaps/StatefulSets. Every reconcile is one
//! pass over the whole world (all FailoverPeers, Pools and nodes), because a node's server
//! hosts every relationship placed on it: list, render, apply the ConfigMaps and StatefulSets
//! (when the API server serves them), ask each server for its `/v1/status`, write every CR's
//! status by server-side apply, publish Events for condition changes. Passes are serialized;
//! a pass whose inputs (generations, node facts, versions of the applied objects) did not
//! change since the last one, which ran less than `resync / 2` ago, is skipped, so the watch
//! events of our own writes do not loop. Errors are logged and retried; nothing here panics
//! on what the API or a server says.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Node};
use k8s_openapi::chrono::Utc;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use serde::Serialize;
use serde_json::{json, Value};
use tokio::sync::Mutex;

use crate::api::{FailoverPeer, Pool};
use crate::render::{render, NodeFacts, Rendered, Settings};
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
}

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

/// Run the controller until SIGTERM/SIGINT.
pub async fn run(client: Client, opts: Options) -> Result<(), Error> {
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

async fn owned_versions(ctx: &Ctx) -> Result<BTreeSet<(String, String, String, String)>, Error> {
    let ns = ctx.opts.namespace.as_deref();
    let lp = ListParams::default().labels(MANAGED_BY);
    let mut out = BTreeSet::new();
    if ctx.served.config_maps {
        let list = scoped::<ConfigMap>(&ctx.client, ns)
            .list_metadata(&lp)
            .await?;
        out.extend(list.items.iter().map(version));
    }
    if ctx.served.stateful_sets {
        let list = scoped::<StatefulSet>(&ctx.client, ns)
            .list_metadata(&lp)
            .await?;
        out.extend(list.items.iter().map(version));
    }
    Ok(out)
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
    let inputs = Inputs {
        generations: peers.iter().map(key).chain(pools.iter().map(key)).collect(),
        nodes: nodes.clone(),
        owned: owned_versions(ctx).await?,
    };
    let fresh = last.at.is_some_and(|t| t.elapsed() < ctx.opts.resync / 2);
    if fresh && last.inputs.as_ref() == Some(&inputs) {
        tracing::debug!("inputs unchanged since the last pass; skipped");
        return Ok(());
    }
    let rendered = render(&peers, &pools, &nodes, &ctx.opts.settings);
    for e in &rendered.errors {
        tracing::info!(error = %e, "invalid spec");
    }
    apply_objects(ctx, &rendered).await;
    let views = fetch_views(ctx, &rendered).await;
    let now = Utc::now();
    let port = ctx.opts.settings.http_port;
    for peer in &peers {
        let status = render_peer_status(peer, &rendered, &views, port, now);
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

/// Server-side apply of every node's ConfigMap and StatefulSet, when the API serves them.
/// Failures are logged; the status pass still runs.
async fn apply_objects(ctx: &Ctx, rendered: &Rendered) {
    for n in &rendered.nodes {
        if ctx.served.config_maps {
            apply_one(ctx, &n.namespace, &n.node, &n.config_map, "v1", "ConfigMap").await;
        }
        if ctx.served.stateful_sets {
            apply_one(
                ctx,
                &n.namespace,
                &n.node,
                &n.stateful_set,
                "apps/v1",
                "StatefulSet",
            )
            .await;
        }
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

        fn ctx(client: Client, served: ServedApis) -> Ctx {
            let nodes = crate::input::nodes_from_yaml(
                "nodes.facts.yaml",
                include_str!("../../examples/nodes.facts.yaml"),
            );
            let settings = Settings {
                // Nothing listens there: the status requests fail fast.
                http_port: 9,
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
                    node_file: nodes.ok(),
                    status_timeout: Duration::from_millis(50),
                    resync: Duration::from_secs(30),
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
    }
}
