//! The rollout of pod-template changes (pure): what is rendered, what the live StatefulSets
//! run and what the servers' `/v1/status` say in, per node "apply the new template now" or
//! "keep the old one, because ..." out. No kube client, no clock.
//!
//! ConfigMaps are not planned: a relationship or pool added, changed or removed changes only
//! a node's ConfigMap, which the server reloads in place (a relationship added to or removed
//! from the node needs a restart, which the server does itself: `--restart-on-change`), and
//! the rendered pod template does not depend on the config (render keeps it so). A change of the pod template (image,
//! resources, tolerations, storage, or a new operator version rendering differently) restarts
//! the node's server, so it is rolled out one node at a time:
//!
//! - A node without a StatefulSet gets one at once (first install, a new node).
//! - A node whose server is not serving (its pod is not ready and it does not answer
//!   `/v1/status`: a node that is down, a crash-looping bad image) gets the new template at
//!   once: there is nothing to protect, and waiting could last forever. Such an update does not
//!   hold the others back, unless the node was already the step in flight (a fixed image for
//!   the node the bad one stopped on keeps the rollout waiting until the fix proves itself).
//! - A serving node gets the new template only when every one of its relationships is NORMAL
//!   on both sides (so its partners carry on alone while it restarts), no other update step
//!   is in flight, and no other node was given its turn in this pass. It is then marked as the
//!   step in flight ([`ROLLOUT_STEP`] on its StatefulSet) until its StatefulSet is rolled out
//!   and ready, it answers `/v1/status`, and its relationships are NORMAL again. A step that
//!   never completes (a bad image) halts the rollout there.
//!
//! Nodes are taken in name order (the rendered order), one at a time across every namespace
//! the operator watches. Start reading at [`plan`].

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::chrono::{DateTime, Utc};
use kube::ResourceExt;

use crate::api::{condition, reason};
use crate::render::{Placement, Rendered};
use crate::status::{relationship_health, ServerViews};

/// StatefulSet annotation: the hash of the pod template it carries ([`template_hash`]).
pub const TEMPLATE_HASH: &str = "dhcpair.io/pod-template-hash";
/// StatefulSet annotation: this node's template update is the rollout step in flight; the
/// value is the template hash it is being rolled to.
pub const ROLLOUT_STEP: &str = "dhcpair.io/rollout-step";
/// The label of a server's objects that names its node (see `render`).
pub const NODE_LABEL: &str = "dhcpair.io/node";

/// A stable hash of a pod template: 64-bit FNV-1a over its JSON (k8s-openapi serializes
/// fields in a fixed order and maps sorted), as 16 hex digits. Stable across Rust releases,
/// unlike `DefaultHasher`, so an operator upgrade alone rolls nothing.
pub fn template_hash(template: &PodTemplateSpec) -> String {
    let bytes = serde_json::to_vec(template).unwrap_or_default();
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// What a live StatefulSet of a node says about the template it runs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LiveNode {
    pub namespace: String,
    pub node: String,
    /// Its [`TEMPLATE_HASH`] annotation (None: written by an older operator or by hand).
    pub template_hash: Option<String>,
    /// Its [`ROLLOUT_STEP`] annotation.
    pub step: Option<String>,
    /// The StatefulSet controller saw the latest spec, every replica runs it and is ready.
    pub rolled_out: bool,
    /// At least one ready replica.
    pub ready: bool,
}

impl LiveNode {
    /// The facts of a live StatefulSet; None when it names no node.
    pub fn from_stateful_set(sts: &StatefulSet) -> Option<LiveNode> {
        let node = sts.labels().get(NODE_LABEL)?.clone();
        let annotation = |k: &str| sts.annotations().get(k).cloned();
        let want = sts.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
        let st = sts.status.as_ref();
        let ready_replicas = st.and_then(|s| s.ready_replicas).unwrap_or(0);
        let rolled_out = st.is_some_and(|s| {
            s.observed_generation.unwrap_or(0) >= sts.metadata.generation.unwrap_or(0)
                && s.update_revision.is_some()
                && s.current_revision == s.update_revision
                && s.updated_replicas.unwrap_or(0) >= want
                && ready_replicas >= want
        });
        Some(LiveNode {
            namespace: sts.namespace().unwrap_or_default(),
            node,
            template_hash: annotation(TEMPLATE_HASH),
            step: annotation(ROLLOUT_STEP),
            rolled_out,
            ready: ready_replicas > 0,
        })
    }
}

/// Why a new template is applied now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpdateWhy {
    /// The server is not serving; nothing to protect.
    NotServing,
    /// A serving node's turn: its relationships are NORMAL and nothing else is in flight.
    Turn,
}

/// Why a node keeps its old template in this pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WaitReason {
    /// Another node's update step has not completed.
    StepInFlight { node: String, detail: String },
    /// Another node got its turn in this pass.
    OneAtATime { node: String },
    /// One of the node's own relationships is not NORMAL on both sides.
    NotNormal { detail: String },
}

impl std::fmt::Display for WaitReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WaitReason::StepInFlight { node, detail } => {
                write!(
                    f,
                    "waits for the update of node {node} to complete ({detail})"
                )
            }
            WaitReason::OneAtATime { node } => {
                write!(
                    f,
                    "waits: node {node} is updated first (one node at a time)"
                )
            }
            WaitReason::NotNormal { detail } => {
                write!(f, "waits for its relationships to be NORMAL ({detail})")
            }
        }
    }
}

/// What happens to a node's StatefulSet in this pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// No StatefulSet yet: created with the new template.
    Create,
    /// It already carries the rendered template (applied for its metadata; no restart).
    Current,
    /// The new template is applied now: the server restarts.
    Update(UpdateWhy),
    /// The old template is kept (the rest of the StatefulSet is applied).
    Wait(WaitReason),
}

/// The plan for one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodePlan {
    pub namespace: String,
    pub node: String,
    pub step: Step,
    /// The [`ROLLOUT_STEP`] annotation to write (None: removed).
    pub mark: Option<String>,
    /// The node's StatefulSet carries the rendered template and no update step of it is in
    /// flight. (Whether its pod is up is the Ready condition's business.)
    pub done: bool,
    /// When not done and not waiting: what it is still waiting for.
    pub progress: Option<String>,
}

/// The plan for every rendered node, in the rendered order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    pub nodes: Vec<NodePlan>,
}

impl Plan {
    pub fn node(&self, namespace: &str, node: &str) -> Option<&NodePlan> {
        self.nodes
            .iter()
            .find(|n| n.namespace == namespace && n.node == node)
    }

    /// Whether a later pass has something to do or to watch: a node created or updated now,
    /// one waiting, a step in flight. (A node that is merely down is not pending.)
    pub fn pending(&self) -> bool {
        self.nodes.iter().any(|n| !n.done)
    }
}

/// What the plan knows about one rendered node.
struct Facts<'a> {
    namespace: &'a str,
    node: &'a str,
    desired: String,
    live: Option<&'a LiveNode>,
    /// It answered `/v1/status` at one of its addresses.
    answering: bool,
    /// Every relationship on it is NORMAL on both sides; Err: why not.
    normal: Result<(), String>,
}

impl Facts<'_> {
    fn current(&self) -> bool {
        self.live
            .is_some_and(|l| l.template_hash.as_deref() == Some(self.desired.as_str()))
    }

    fn serving(&self) -> bool {
        self.answering || self.live.is_some_and(|l| l.ready)
    }

    /// Why an update of this node is not complete yet; None: complete.
    fn incomplete(&self) -> Option<String> {
        if !self.current() {
            return Some("its new pod template is not applied yet".to_string());
        }
        if !self.live.is_some_and(|l| l.rolled_out) {
            return Some("its StatefulSet is not rolled out and ready yet".to_string());
        }
        if !self.answering {
            return Some("its server does not answer /v1/status yet".to_string());
        }
        self.normal.clone().err()
    }
}

fn relationships_of<'a>(
    rendered: &'a Rendered,
    namespace: &'a str,
    node: &'a str,
) -> impl Iterator<Item = &'a Placement> {
    rendered.placements.iter().filter(move |p| {
        p.namespace == namespace && (p.primary.node == node || p.secondary.node == node)
    })
}

/// Plan every rendered node's StatefulSet (see the module doc for the rules). `live` holds
/// the StatefulSets as they are now; `views` the servers' answers by failover address.
pub fn plan(rendered: &Rendered, live: &[LiveNode], views: &ServerViews, http_port: u16) -> Plan {
    let facts: Vec<Facts> = rendered
        .nodes
        .iter()
        .map(|n| {
            let rels: Vec<&Placement> = relationships_of(rendered, &n.namespace, &n.node).collect();
            let answering = rels.iter().any(|p| {
                [&p.primary, &p.secondary]
                    .iter()
                    .any(|s| s.node == n.node && views.contains_key(&s.address))
            });
            let problems: Vec<String> = rels
                .iter()
                .filter_map(|p| {
                    relationship_health(p, views, http_port)
                        .err()
                        .map(|e| format!("{}: {e}", p.name))
                })
                .collect();
            Facts {
                namespace: &n.namespace,
                node: &n.node,
                desired: n
                    .stateful_set
                    .annotations()
                    .get(TEMPLATE_HASH)
                    .cloned()
                    .unwrap_or_default(),
                live: live
                    .iter()
                    .find(|l| l.namespace == n.namespace && l.node == n.node),
                answering,
                normal: if problems.is_empty() {
                    Ok(())
                } else {
                    Err(problems.join("; "))
                },
            }
        })
        .collect();
    // Steps in flight: marked nodes whose update has not completed.
    let in_flight: Vec<(&Facts, String)> = facts
        .iter()
        .filter(|f| f.live.is_some_and(|l| l.step.is_some()))
        .filter_map(|f| f.incomplete().map(|why| (f, why)))
        .collect();
    let mut turn_given: Option<&str> = None;
    let mut out = Plan::default();
    for f in &facts {
        let marked = f.live.and_then(|l| l.step.as_ref()).is_some();
        let (step, mark) = match f.live {
            None => (Step::Create, None),
            Some(_) if f.current() => {
                let keep = marked && f.incomplete().is_some();
                (Step::Current, keep.then(|| f.desired.clone()))
            }
            Some(_) if !f.serving() => (
                Step::Update(UpdateWhy::NotServing),
                marked.then(|| f.desired.clone()),
            ),
            Some(l) => {
                // A node that is itself a step in flight (its template changed again) does
                // not wait for other steps: two marked nodes would wait for each other.
                let other = in_flight
                    .iter()
                    .filter(|_| !marked)
                    .find(|(o, _)| (o.namespace, o.node) != (f.namespace, f.node));
                let wait = if let Some((o, why)) = other {
                    Some(WaitReason::StepInFlight {
                        node: o.node.to_string(),
                        detail: why.clone(),
                    })
                } else if let Some(node) = turn_given {
                    Some(WaitReason::OneAtATime {
                        node: node.to_string(),
                    })
                } else {
                    f.normal
                        .clone()
                        .err()
                        .map(|detail| WaitReason::NotNormal { detail })
                };
                match wait {
                    Some(w) => (Step::Wait(w), l.step.clone()),
                    None => {
                        turn_given = Some(f.node);
                        (Step::Update(UpdateWhy::Turn), Some(f.desired.clone()))
                    }
                }
            }
        };
        let done = step == Step::Current && mark.is_none();
        let progress = match &step {
            Step::Wait(_) => None,
            _ if done => None,
            Step::Create => Some("its StatefulSet is created".to_string()),
            Step::Update(_) => Some("its new pod template is applied now".to_string()),
            _ => f.incomplete(),
        };
        out.nodes.push(NodePlan {
            namespace: f.namespace.to_string(),
            node: f.node.to_string(),
            step,
            mark,
            done,
            progress,
        });
    }
    out
}

/// The StatefulSet to apply for a node: the rendered one, with the rollout mark of the plan;
/// while the node waits, with the live pod template and template hash instead of the new ones
/// (so its pod is not restarted, and the rest of the object still follows the CRs).
pub fn stateful_set_to_apply(
    rendered: &StatefulSet,
    live: Option<&StatefulSet>,
    plan: &NodePlan,
) -> StatefulSet {
    let mut out = rendered.clone();
    let annotations = out.metadata.annotations.get_or_insert_with(BTreeMap::new);
    match &plan.mark {
        Some(m) => annotations.insert(ROLLOUT_STEP.to_string(), m.clone()),
        None => annotations.remove(ROLLOUT_STEP),
    };
    if let (Step::Wait(_), Some(live)) = (&plan.step, live) {
        let live_template = live.spec.as_ref().map(|s| s.template.clone());
        if let (Some(spec), Some(t)) = (out.spec.as_mut(), live_template) {
            spec.template = t;
        }
        match live.annotations().get(TEMPLATE_HASH) {
            Some(h) => annotations.insert(TEMPLATE_HASH.to_string(), h.clone()),
            None => annotations.remove(TEMPLATE_HASH),
        };
    }
    out
}

/// The `RolledOut` condition of a FailoverPeer from the plan of its two nodes: True when both
/// StatefulSets carry the rendered template and no update step is in flight; otherwise False
/// with `RolloutWaiting` (a node keeps its old template for now, and why) or
/// `RolloutInProgress` (created or updated now, or an update step not complete yet).
pub fn peer_condition(
    previous: &[Condition],
    plan: &Plan,
    placement: &Placement,
    generation: Option<i64>,
    now: DateTime<Utc>,
) -> Condition {
    let nodes: Vec<&NodePlan> = [&placement.primary.node, &placement.secondary.node]
        .into_iter()
        .filter_map(|n| plan.node(&placement.namespace, n))
        .collect();
    let waiting: Vec<String> = nodes
        .iter()
        .filter_map(|n| match &n.step {
            Step::Wait(w) => Some(format!("node {} {w}", n.node)),
            _ => None,
        })
        .collect();
    let progress: Vec<String> = nodes
        .iter()
        .filter(|n| !n.done)
        .filter_map(|n| n.progress.as_ref().map(|p| format!("node {}: {p}", n.node)))
        .collect();
    let (status, why, message) = if !waiting.is_empty() {
        (false, reason::ROLLOUT_WAITING, waiting.join("; "))
    } else if !progress.is_empty() || nodes.len() < 2 || nodes.iter().any(|n| !n.done) {
        (false, reason::ROLLOUT_IN_PROGRESS, progress.join("; "))
    } else {
        (
            true,
            reason::UP_TO_DATE,
            "both servers run the rendered pod template".to_string(),
        )
    };
    let status_str = if status { "True" } else { "False" }.to_string();
    let last_transition_time = previous
        .iter()
        .find(|c| c.type_ == condition::ROLLED_OUT && c.status == status_str)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or(Time(now));
    Condition {
        type_: condition::ROLLED_OUT.to_string(),
        status: status_str,
        reason: why.to_string(),
        message,
        observed_generation: generation,
        last_transition_time,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::{render, NodeFacts, Settings};
    use crate::status::{RelationshipView, ServerView, NORMAL};
    use std::net::Ipv4Addr;

    /// Two relationships on four nodes: lan (node-a primary, node-b secondary) and wan
    /// (node-c primary, node-d secondary).
    fn world(image: &str) -> Rendered {
        let text = r#"
apiVersion: dhcpair.io/v1alpha1
kind: FailoverPeer
metadata: {name: lan, namespace: dhcp, uid: u1}
spec:
  primary: {nodeName: node-a}
  secondary: {nodeName: node-b}
  interfaces: [eth1]
---
apiVersion: dhcpair.io/v1alpha1
kind: FailoverPeer
metadata: {name: wan, namespace: dhcp, uid: u2}
spec:
  primary: {nodeName: node-c}
  secondary: {nodeName: node-d}
  interfaces: [eth1]
"#;
        let mut res = crate::input::Resources::default();
        assert!(res.add_yaml("world", text).is_ok());
        let nodes: Vec<NodeFacts> = (0..4u8)
            .map(|i| NodeFacts {
                name: format!("node-{}", char::from(b'a' + i)),
                internal_ip: Some(Ipv4Addr::new(10, 0, 0, 11 + i)),
                labels: BTreeMap::new(),
            })
            .collect();
        let settings = Settings {
            default_image: image.to_string(),
            ..Settings::default()
        };
        let out = render(&res.peers, &res.pools, &nodes, &settings);
        assert!(out.errors.is_empty(), "{:?}", out.errors);
        out
    }

    fn hash_of(r: &Rendered, node: &str) -> String {
        r.nodes
            .iter()
            .find(|n| n.node == node)
            .and_then(|n| n.stateful_set.annotations().get(TEMPLATE_HASH).cloned())
            .unwrap_or_default()
    }

    /// Every node running `r`'s templates, rolled out and ready.
    fn live_at(r: &Rendered) -> Vec<LiveNode> {
        r.nodes
            .iter()
            .map(|n| LiveNode {
                namespace: n.namespace.clone(),
                node: n.node.clone(),
                template_hash: Some(hash_of(r, &n.node)),
                step: None,
                rolled_out: true,
                ready: true,
            })
            .collect()
    }

    fn set(live: &mut [LiveNode], node: &str, f: impl Fn(&mut LiveNode)) {
        for l in live.iter_mut().filter(|l| l.node == node) {
            f(l);
        }
    }

    fn rel(name: &str, role: &str, state: &str) -> RelationshipView {
        RelationshipView {
            name: name.into(),
            role: role.into(),
            my_state: state.into(),
            partner_state: state.into(),
            connected: true,
            seconds_since_contact: Some(1),
        }
    }

    /// Every server answering, every relationship in `state`.
    fn views_all(state: &str) -> ServerViews {
        let mut v = ServerViews::new();
        for (i, (name, role)) in [
            ("lan", "primary"),
            ("lan", "secondary"),
            ("wan", "primary"),
            ("wan", "secondary"),
        ]
        .into_iter()
        .enumerate()
        {
            let last = u8::try_from(11 + i).unwrap_or(0);
            v.insert(
                Ipv4Addr::new(10, 0, 0, last),
                ServerView {
                    pools: vec![],
                    failover: vec![rel(name, role, state)],
                },
            );
        }
        v
    }

    fn steps(p: &Plan) -> Vec<(&str, &Step)> {
        p.nodes.iter().map(|n| (n.node.as_str(), &n.step)).collect()
    }

    #[test]
    fn the_first_install_creates_every_stateful_set() {
        let r = world("img:1");
        let p = plan(&r, &[], &ServerViews::new(), 9167);
        assert!(p.nodes.iter().all(|n| n.step == Step::Create && !n.done));
        assert!(p.pending());
    }

    #[test]
    fn nothing_changed_means_every_node_current_and_done() {
        let r = world("img:1");
        let p = plan(&r, &live_at(&r), &views_all(NORMAL), 9167);
        assert!(p.nodes.iter().all(|n| n.step == Step::Current && n.done));
        assert!(p.nodes.iter().all(|n| n.mark.is_none()));
        assert!(!p.pending());
    }

    #[test]
    fn an_image_change_updates_only_the_first_node_and_marks_it() {
        let old = world("img:1");
        let new = world("img:2");
        assert_ne!(hash_of(&old, "node-a"), hash_of(&new, "node-a"));
        let p = plan(&new, &live_at(&old), &views_all(NORMAL), 9167);
        assert_eq!(
            steps(&p),
            vec![
                ("node-a", &Step::Update(UpdateWhy::Turn)),
                (
                    "node-b",
                    &Step::Wait(WaitReason::OneAtATime {
                        node: "node-a".into()
                    })
                ),
                (
                    "node-c",
                    &Step::Wait(WaitReason::OneAtATime {
                        node: "node-a".into()
                    })
                ),
                (
                    "node-d",
                    &Step::Wait(WaitReason::OneAtATime {
                        node: "node-a".into()
                    })
                ),
            ]
        );
        assert_eq!(
            p.nodes[0].mark.as_deref(),
            Some(hash_of(&new, "node-a").as_str())
        );
        assert!(p.nodes[1..].iter().all(|n| n.mark.is_none()));
    }

    #[test]
    fn the_next_node_waits_until_the_updated_one_is_rolled_out_and_normal_again() {
        let old = world("img:1");
        let new = world("img:2");
        let mut live = live_at(&old);
        // node-a got the new template and is restarting.
        set(&mut live, "node-a", |l| {
            l.template_hash = Some(hash_of(&new, "node-a"));
            l.step = l.template_hash.clone();
            l.rolled_out = false;
            l.ready = false;
        });
        let mut views = views_all(NORMAL);
        views.remove(&Ipv4Addr::new(10, 0, 0, 11));
        views.insert(
            Ipv4Addr::new(10, 0, 0, 12),
            ServerView {
                pools: vec![],
                failover: vec![rel("lan", "secondary", "COMMUNICATIONS-INTERRUPTED")],
            },
        );
        let p = plan(&new, &live, &views, 9167);
        assert_eq!(p.nodes[0].step, Step::Current);
        assert!(p.nodes[0].mark.is_some(), "the step stays marked");
        for n in &p.nodes[1..] {
            assert!(
                matches!(&n.step, Step::Wait(WaitReason::StepInFlight { node, .. }) if node == "node-a"),
                "{n:?}"
            );
        }
        // Rolled out and answering, but lan is not NORMAL yet: still in flight.
        set(&mut live, "node-a", |l| {
            l.rolled_out = true;
            l.ready = true;
        });
        views.insert(
            Ipv4Addr::new(10, 0, 0, 11),
            ServerView {
                pools: vec![],
                failover: vec![rel("lan", "primary", "POTENTIAL-CONFLICT")],
            },
        );
        let p = plan(&new, &live, &views, 9167);
        let Step::Wait(WaitReason::StepInFlight { detail, .. }) = &p.nodes[2].step else {
            panic!("{:?}", p.nodes[2]);
        };
        assert!(detail.contains("POTENTIAL-CONFLICT"), "{detail}");
        // NORMAL again: node-a's step completes (mark removed) and node-b gets its turn.
        let p = plan(&new, &live, &views_all(NORMAL), 9167);
        assert_eq!(p.nodes[0].step, Step::Current);
        assert!(p.nodes[0].done && p.nodes[0].mark.is_none());
        assert_eq!(p.nodes[1].step, Step::Update(UpdateWhy::Turn));
        assert!(matches!(
            p.nodes[2].step,
            Step::Wait(WaitReason::OneAtATime { .. })
        ));
    }

    #[test]
    fn a_serving_node_whose_partner_is_not_normal_is_not_restarted() {
        let old = world("img:1");
        let new = world("img:2");
        let mut views = views_all(NORMAL);
        // wan's secondary (node-d) reports COMMUNICATIONS-INTERRUPTED.
        views.insert(
            Ipv4Addr::new(10, 0, 0, 14),
            ServerView {
                pools: vec![],
                failover: vec![rel("wan", "secondary", "COMMUNICATIONS-INTERRUPTED")],
            },
        );
        let mut live = live_at(&old);
        // lan is done already.
        for n in ["node-a", "node-b"] {
            set(&mut live, n, |l| l.template_hash = Some(hash_of(&new, n)));
        }
        let p = plan(&new, &live, &views, 9167);
        for n in &p.nodes[2..] {
            let Step::Wait(WaitReason::NotNormal { detail }) = &n.step else {
                panic!("{n:?}");
            };
            assert!(detail.contains("wan") && detail.contains("COMMUNICATIONS-INTERRUPTED"));
        }
    }

    #[test]
    fn a_node_that_is_down_is_updated_at_once_and_holds_nobody_back() {
        let old = world("img:1");
        let new = world("img:2");
        let mut live = live_at(&old);
        set(&mut live, "node-d", |l| {
            l.ready = false;
            l.rolled_out = false;
        });
        let mut views = views_all(NORMAL);
        views.remove(&Ipv4Addr::new(10, 0, 0, 14));
        let p = plan(&new, &live, &views, 9167);
        assert_eq!(p.nodes[3].step, Step::Update(UpdateWhy::NotServing));
        assert_eq!(
            p.nodes[3].mark, None,
            "an update while down is no gated step"
        );
        assert_eq!(p.nodes[0].step, Step::Update(UpdateWhy::Turn));
        // Next pass: node-d runs the new template (still down) and node-a is done: node-b
        // goes on; node-c (wan's primary, whose partner is down) must wait.
        set(&mut live, "node-d", |l| {
            l.template_hash = Some(hash_of(&new, "node-d"))
        });
        set(&mut live, "node-a", |l| {
            l.template_hash = Some(hash_of(&new, "node-a"));
            l.step = l.template_hash.clone();
        });
        let p = plan(&new, &live, &views, 9167);
        assert!(
            p.nodes[0].done && p.nodes[0].mark.is_none(),
            "{:?}",
            p.nodes[0]
        );
        assert_eq!(p.nodes[1].step, Step::Update(UpdateWhy::Turn));
        assert!(matches!(
            p.nodes[2].step,
            Step::Wait(WaitReason::OneAtATime { .. })
        ));
        set(&mut live, "node-b", |l| {
            l.template_hash = Some(hash_of(&new, "node-b"))
        });
        let p = plan(&new, &live, &views, 9167);
        assert!(
            matches!(&p.nodes[2].step, Step::Wait(WaitReason::NotNormal { detail }) if detail.contains("no answer")),
            "{:?}",
            p.nodes[2]
        );
    }

    #[test]
    fn a_bad_image_halts_the_rollout_and_its_fix_reaches_the_stuck_node_at_once() {
        let old = world("img:1");
        let bad = world("img:bad");
        let fixed = world("img:2");
        let mut live = live_at(&old);
        set(&mut live, "node-a", |l| {
            l.template_hash = Some(hash_of(&bad, "node-a"));
            l.step = l.template_hash.clone();
            l.rolled_out = false;
            l.ready = false;
        });
        let mut views = views_all(NORMAL);
        views.remove(&Ipv4Addr::new(10, 0, 0, 11));
        let p = plan(&bad, &live, &views, 9167);
        assert!(p.nodes[1..]
            .iter()
            .all(|n| matches!(n.step, Step::Wait(WaitReason::StepInFlight { .. }))));
        // The spec is fixed: the crash-looping node gets the fix at once and stays the step
        // in flight; the others still wait for it.
        let p = plan(&fixed, &live, &views, 9167);
        assert_eq!(p.nodes[0].step, Step::Update(UpdateWhy::NotServing));
        assert_eq!(
            p.nodes[0].mark.as_deref(),
            Some(hash_of(&fixed, "node-a").as_str())
        );
        assert!(p.nodes[1..]
            .iter()
            .all(|n| matches!(n.step, Step::Wait(WaitReason::StepInFlight { .. }))));
    }

    #[test]
    fn two_steps_in_flight_do_not_wait_for_each_other() {
        let old = world("img:1");
        let new = world("img:2");
        let mut live = live_at(&old);
        // Both lan nodes marked (a lost write, a hand edit), neither rolled out.
        for n in ["node-a", "node-b"] {
            set(&mut live, n, |l| {
                l.step = Some("older".into());
                l.rolled_out = false;
            });
        }
        let p = plan(&new, &live, &views_all(NORMAL), 9167);
        assert_eq!(p.nodes[0].step, Step::Update(UpdateWhy::Turn));
        assert!(
            matches!(&p.nodes[1].step, Step::Wait(WaitReason::OneAtATime { node }) if node == "node-a"),
            "{:?}",
            p.nodes[1]
        );
    }

    #[test]
    fn a_stateful_set_without_the_hash_annotation_is_rolled_like_a_template_change() {
        let r = world("img:1");
        let mut live = live_at(&r);
        set(&mut live, "node-c", |l| l.template_hash = None);
        let p = plan(&r, &live, &views_all(NORMAL), 9167);
        assert_eq!(p.nodes[2].step, Step::Update(UpdateWhy::Turn));
        assert!(p
            .nodes
            .iter()
            .filter(|n| n.node != "node-c")
            .all(|n| n.step == Step::Current));
    }

    #[test]
    fn a_waiting_node_is_applied_with_its_live_template_and_hash() {
        let old = world("img:1");
        let new = world("img:2");
        let desired = &new.nodes[1].stateful_set;
        let live = &old.nodes[1].stateful_set;
        let wait = NodePlan {
            namespace: "dhcp".into(),
            node: "node-b".into(),
            step: Step::Wait(WaitReason::OneAtATime {
                node: "node-a".into(),
            }),
            mark: None,
            done: false,
            progress: None,
        };
        let out = stateful_set_to_apply(desired, Some(live), &wait);
        let image = |s: &StatefulSet| {
            s.spec
                .as_ref()
                .and_then(|s| s.template.spec.as_ref())
                .and_then(|p| p.containers[0].image.clone())
        };
        assert_eq!(image(&out).as_deref(), Some("img:1"));
        assert_eq!(
            out.annotations().get(TEMPLATE_HASH),
            live.annotations().get(TEMPLATE_HASH)
        );
        let update = NodePlan {
            step: Step::Update(UpdateWhy::Turn),
            mark: Some("h".into()),
            ..wait
        };
        let out = stateful_set_to_apply(desired, Some(live), &update);
        assert_eq!(image(&out).as_deref(), Some("img:2"));
        assert_eq!(
            out.annotations().get(ROLLOUT_STEP).map(String::as_str),
            Some("h")
        );
        assert_eq!(
            out.annotations().get(TEMPLATE_HASH),
            desired.annotations().get(TEMPLATE_HASH)
        );
    }

    #[test]
    fn live_facts_come_from_labels_annotations_and_status() {
        let r = world("img:1");
        let mut sts = r.nodes[0].stateful_set.clone();
        sts.metadata.generation = Some(3);
        sts.status = Some(k8s_openapi::api::apps::v1::StatefulSetStatus {
            observed_generation: Some(3),
            current_revision: Some("r2".into()),
            update_revision: Some("r2".into()),
            updated_replicas: Some(1),
            ready_replicas: Some(1),
            replicas: 1,
            ..Default::default()
        });
        let l = LiveNode::from_stateful_set(&sts).unwrap_or_default();
        assert_eq!(l.node, "node-a");
        assert_eq!(l.template_hash, Some(hash_of(&r, "node-a")));
        assert!(l.rolled_out && l.ready);
        // The controller has not seen the latest spec yet.
        if let Some(s) = sts.status.as_mut() {
            s.observed_generation = Some(2);
        }
        let l = LiveNode::from_stateful_set(&sts).unwrap_or_default();
        assert!(!l.rolled_out && l.ready);
        // Updating: the new revision's pod is not ready.
        if let Some(s) = sts.status.as_mut() {
            s.observed_generation = Some(3);
            s.current_revision = Some("r1".into());
            s.ready_replicas = Some(0);
        }
        let l = LiveNode::from_stateful_set(&sts).unwrap_or_default();
        assert!(!l.rolled_out && !l.ready);
    }

    #[test]
    fn the_peer_condition_says_who_waits_for_what() {
        let old = world("img:1");
        let new = world("img:2");
        let p = plan(&new, &live_at(&old), &views_all(NORMAL), 9167);
        let now = Utc::now();
        let lan = &new.placements[0];
        let c = peer_condition(&[], &p, lan, Some(1), now);
        assert_eq!(
            (c.status.as_str(), c.reason.as_str()),
            ("False", reason::ROLLOUT_WAITING)
        );
        assert!(
            c.message
                .contains("node node-b waits: node node-a is updated first"),
            "{}",
            c.message
        );
        let p = plan(&new, &live_at(&new), &views_all(NORMAL), 9167);
        let c = peer_condition(std::slice::from_ref(&c), &p, lan, Some(1), now);
        assert_eq!(
            (c.status.as_str(), c.reason.as_str()),
            ("True", reason::UP_TO_DATE)
        );
        let p = plan(&new, &[], &ServerViews::new(), 9167);
        let c = peer_condition(&[], &p, lan, Some(1), now);
        assert_eq!(c.reason, reason::ROLLOUT_IN_PROGRESS);
    }
}
