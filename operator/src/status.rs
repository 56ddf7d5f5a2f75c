//! Status of the CRs (pure): the render result and what each server's `/v1/status` said in,
//! the `status` of every FailoverPeer and Pool out. No kube client, no clock: `now` is an
//! argument, so the condition bookkeeping is tested with plain sync tests.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::chrono::{DateTime, Duration, Utc};
use kube::ResourceExt;
use serde::Deserialize;

use crate::api::{
    condition, reason, FailoverPeer, FailoverPeerStatus, Pool, PoolServerStatus, PoolStatus,
    RoleStatus,
};
use crate::render::{object_name, CrError, CrKind, PlacedSide, Placement, Rendered};

/// The failover state of a relationship in which both servers can serve (draft-12 §5.6).
pub const NORMAL: &str = "NORMAL";

/// What one server's `GET /v1/status` answered (the fields the operator uses; see
/// `server/dhcpair/src/http.rs`).
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServerView {
    #[serde(default)]
    pub pools: Vec<PoolView>,
    #[serde(default)]
    pub failover: Vec<RelationshipView>,
}

/// One pool's counts as a server sees them.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PoolView {
    pub name: String,
    #[serde(default)]
    pub total: u64,
    #[serde(default)]
    pub free: u64,
    #[serde(default)]
    pub backup: u64,
    #[serde(default)]
    pub active: u64,
}

/// One relationship as a server sees it.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RelationshipView {
    pub name: String,
    /// `primary` or `secondary`.
    pub role: String,
    pub my_state: String,
    pub partner_state: String,
    #[serde(default)]
    pub connected: bool,
    #[serde(default)]
    pub seconds_since_contact: Option<u64>,
}

/// The servers' answers by failover address; a missing entry means "did not answer".
pub type ServerViews = BTreeMap<Ipv4Addr, ServerView>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Primary,
    Secondary,
}

impl Role {
    fn as_str(self) -> &'static str {
        match self {
            Role::Primary => "primary",
            Role::Secondary => "secondary",
        }
    }
}

fn errors_of<'a>(
    list: &'a [CrError],
    kind: CrKind,
    namespace: &str,
    name: &str,
) -> Vec<&'a CrError> {
    list.iter()
        .filter(|e| e.kind == kind && e.namespace == namespace && e.name == name)
        .collect()
}

/// A condition that keeps `lastTransitionTime` of `previous` when its status did not change.
fn condition(
    previous: &[Condition],
    type_: &str,
    status: bool,
    reason: &str,
    message: String,
    generation: Option<i64>,
    now: DateTime<Utc>,
) -> Condition {
    let status = if status { "True" } else { "False" }.to_string();
    let last_transition_time = previous
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or(Time(now));
    Condition {
        type_: type_.to_string(),
        status,
        reason: reason.to_string(),
        message,
        observed_generation: generation,
        last_transition_time,
    }
}

/// The InvalidSpec and Ready conditions of a CR that could not be rendered.
fn invalid_conditions(
    previous: &[Condition],
    errors: &[&CrError],
    generation: Option<i64>,
    now: DateTime<Utc>,
) -> Vec<Condition> {
    let reason = errors
        .first()
        .map_or(reason::RENDERED, |e| e.error.reason());
    let message = errors
        .iter()
        .map(|e| e.error.to_string())
        .collect::<Vec<_>>()
        .join("; ");
    vec![
        condition(
            previous,
            condition::READY,
            false,
            reason,
            message.clone(),
            generation,
            now,
        ),
        condition(
            previous,
            condition::INVALID_SPEC,
            true,
            reason,
            message,
            generation,
            now,
        ),
    ]
}

/// Whether both servers of a relationship report NORMAL; otherwise why not.
pub(crate) fn relationship_health(
    placement: &Placement,
    views: &ServerViews,
    http_port: u16,
) -> Result<(), String> {
    let mut problems = Vec::new();
    for (role, side) in [
        (Role::Primary, &placement.primary),
        (Role::Secondary, &placement.secondary),
    ] {
        match relationship_view(placement, role, side, views) {
            None if !views.contains_key(&side.address) => problems.push(format!(
                "{} on node {}: no answer from {}:{http_port}/v1/status",
                role.as_str(),
                side.node,
                side.address
            )),
            None => problems.push(format!(
                "{} on node {}: the server does not know relationship {:?}",
                role.as_str(),
                side.node,
                placement.name
            )),
            Some(v) if !v.my_state.eq_ignore_ascii_case(NORMAL) => problems.push(format!(
                "{} on node {}: state {} (partner {})",
                role.as_str(),
                side.node,
                v.my_state,
                v.partner_state
            )),
            Some(_) => {}
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

fn relationship_view<'a>(
    placement: &Placement,
    role: Role,
    side: &PlacedSide,
    views: &'a ServerViews,
) -> Option<&'a RelationshipView> {
    views
        .get(&side.address)?
        .failover
        .iter()
        .find(|r| r.name == placement.name && r.role == role.as_str())
}

fn placement_of<'a>(rendered: &'a Rendered, namespace: &str, name: &str) -> Option<&'a Placement> {
    rendered
        .placements
        .iter()
        .find(|p| p.namespace == namespace && p.name == name)
}

/// The status of one FailoverPeer.
pub fn render_peer_status(
    peer: &FailoverPeer,
    rendered: &Rendered,
    views: &ServerViews,
    http_port: u16,
    now: DateTime<Utc>,
) -> FailoverPeerStatus {
    let namespace = peer.namespace().unwrap_or_default();
    let name = peer.name_any();
    let generation = peer.metadata.generation;
    let previous: &[Condition] = peer.status.as_ref().map_or(&[], |s| &s.conditions);
    let errors = errors_of(&rendered.errors, CrKind::FailoverPeer, &namespace, &name);
    let placement = placement_of(rendered, &namespace, &name);
    let (Some(placement), true) = (placement, errors.is_empty()) else {
        return FailoverPeerStatus {
            observed_generation: generation,
            conditions: invalid_conditions(previous, &errors, generation, now),
            primary: None,
            secondary: None,
        };
    };
    let role_status = |role: Role, side: &PlacedSide| {
        let view = relationship_view(placement, role, side, views);
        RoleStatus {
            pod: Some(format!("{}-0", object_name(&side.node))),
            node: Some(side.node.clone()),
            address: Some(side.address.to_string()),
            state: view.map(|v| v.my_state.to_ascii_uppercase()),
            partner_state: view.map(|v| v.partner_state.to_ascii_uppercase()),
            last_contact: view
                .and_then(|v| v.seconds_since_contact)
                .and_then(|s| i64::try_from(s).ok())
                .map(|s| {
                    (now - Duration::seconds(s))
                        .to_rfc3339_opts(k8s_openapi::chrono::SecondsFormat::Secs, true)
                }),
        }
    };
    let health = relationship_health(placement, views, http_port);
    let warnings = errors_of(&rendered.warnings, CrKind::FailoverPeer, &namespace, &name);
    FailoverPeerStatus {
        observed_generation: generation,
        conditions: health_conditions(previous, &health, &warnings, generation, now),
        primary: Some(role_status(Role::Primary, &placement.primary)),
        secondary: Some(role_status(Role::Secondary, &placement.secondary)),
    }
}

fn health_conditions(
    previous: &[Condition],
    health: &Result<(), String>,
    warnings: &[&CrError],
    generation: Option<i64>,
    now: DateTime<Utc>,
) -> Vec<Condition> {
    let ready = match health {
        Ok(()) => condition(
            previous,
            condition::READY,
            true,
            reason::ALL_NORMAL,
            "both servers report NORMAL".to_string(),
            generation,
            now,
        ),
        Err(m) => condition(
            previous,
            condition::READY,
            false,
            reason::NOT_NORMAL,
            m.clone(),
            generation,
            now,
        ),
    };
    let degraded = if let Some(w) = warnings.first() {
        condition(
            previous,
            condition::DEGRADED,
            true,
            w.error.reason(),
            warnings
                .iter()
                .map(|w| w.error.to_string())
                .collect::<Vec<_>>()
                .join("; "),
            generation,
            now,
        )
    } else {
        match health {
            Ok(()) => condition(
                previous,
                condition::DEGRADED,
                false,
                reason::ALL_NORMAL,
                String::new(),
                generation,
                now,
            ),
            Err(m) => condition(
                previous,
                condition::DEGRADED,
                true,
                reason::NOT_NORMAL,
                m.clone(),
                generation,
                now,
            ),
        }
    };
    let invalid = condition(
        previous,
        condition::INVALID_SPEC,
        false,
        reason::RENDERED,
        String::new(),
        generation,
        now,
    );
    vec![ready, degraded, invalid]
}

/// The status of one Pool: its conditions and the counts of each server.
pub fn render_pool_status(
    pool: &Pool,
    rendered: &Rendered,
    views: &ServerViews,
    http_port: u16,
    now: DateTime<Utc>,
) -> PoolStatus {
    let namespace = pool.namespace().unwrap_or_default();
    let name = pool.name_any();
    let generation = pool.metadata.generation;
    let previous: &[Condition] = pool.status.as_ref().map_or(&[], |s| &s.conditions);
    let errors = errors_of(&rendered.errors, CrKind::Pool, &namespace, &name);
    let placement = placement_of(rendered, &namespace, &pool.spec.failover_peer_ref);
    let (Some(placement), true) = (placement, errors.is_empty()) else {
        return PoolStatus {
            observed_generation: generation,
            conditions: invalid_conditions(previous, &errors, generation, now),
            ..PoolStatus::default()
        };
    };
    let servers: Vec<PoolServerStatus> = [
        (Role::Primary, &placement.primary),
        (Role::Secondary, &placement.secondary),
    ]
    .into_iter()
    .filter_map(|(role, side)| {
        let p = views
            .get(&side.address)?
            .pools
            .iter()
            .find(|p| p.name == name)?;
        Some(PoolServerStatus {
            node: side.node.clone(),
            role: role.as_str().to_string(),
            total: p.total,
            free: p.free,
            backup: p.backup,
            active: p.active,
        })
    })
    .collect();
    // The primary's view when it answered, else the secondary's.
    let first = servers.first();
    let health = relationship_health(placement, views, http_port);
    let warnings = errors_of(&rendered.warnings, CrKind::Pool, &namespace, &name);
    PoolStatus {
        observed_generation: generation,
        conditions: health_conditions(previous, &health, &warnings, generation, now),
        free: first.map(|s| s.free),
        backup: first.map(|s| s.backup),
        active: first.map(|s| s.active),
        servers,
    }
}

/// An Event to publish about a CR because one of its conditions changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusEvent {
    /// Warning (else Normal).
    pub warning: bool,
    pub reason: String,
    pub note: String,
    /// What the operator did: `Render` (spec checked), `Observe` (servers asked) or `Rollout`
    /// (a pod template change applied node by node).
    pub action: &'static str,
}

/// The Events for a status change from `old` to `new` conditions: InvalidSpec turning True (or
/// changing its reason or message) and back, Ready changing (not on the first status, where
/// only a Ready True is news).
pub fn status_events(old: &[Condition], new: &[Condition]) -> Vec<StatusEvent> {
    let find = |c: &[Condition], t: &str| c.iter().find(|c| c.type_ == t).cloned();
    let mut out = Vec::new();
    let (oi, ni) = (
        find(old, condition::INVALID_SPEC),
        find(new, condition::INVALID_SPEC),
    );
    match (&oi, &ni) {
        (o, Some(n)) if n.status == "True" => {
            let same = o.as_ref().is_some_and(|o| {
                o.status == "True" && o.reason == n.reason && o.message == n.message
            });
            if !same {
                out.push(StatusEvent {
                    warning: true,
                    reason: n.reason.clone(),
                    note: n.message.clone(),
                    action: "Render",
                });
            }
        }
        (Some(o), Some(n)) if o.status == "True" && n.status != "True" => out.push(StatusEvent {
            warning: false,
            reason: reason::RENDERED.to_string(),
            note: "the spec is valid again".to_string(),
            action: "Render",
        }),
        _ => {}
    }
    let invalid_now = ni.as_ref().is_some_and(|n| n.status == "True");
    if let (Some(n), false) = (find(new, condition::READY), invalid_now) {
        let changed = match find(old, condition::READY) {
            Some(o) => o.status != n.status,
            None => n.status == "True",
        };
        if changed {
            out.push(StatusEvent {
                warning: n.status != "True",
                reason: n.reason.clone(),
                note: n.message.clone(),
                action: "Observe",
            });
        }
    }
    if let (Some(n), false) = (find(new, condition::ROLLED_OUT), invalid_now) {
        let o = find(old, condition::ROLLED_OUT);
        let was = |r: &str| o.as_ref().is_some_and(|o| o.reason == r);
        let news = if n.status == "True" {
            o.as_ref().is_some_and(|o| o.status != "True")
        } else if n.reason == reason::ROLLOUT_WAITING {
            !was(reason::ROLLOUT_WAITING)
        } else {
            // In progress: news when a rollout starts or moves on, not on the first status
            // (a first install creates every StatefulSet).
            o.is_some() && !was(&n.reason)
        };
        if news {
            out.push(StatusEvent {
                warning: false,
                reason: n.reason.clone(),
                note: n.message.clone(),
                action: "Rollout",
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::{render, NodeFacts, Settings};

    fn world() -> (FailoverPeer, Pool, Rendered) {
        let mut res = crate::input::Resources::default();
        let text = include_str!("../../examples/one-pair.yaml");
        assert!(res.add_yaml("one-pair.yaml", text).is_ok());
        let nodes = vec![
            NodeFacts {
                name: "node-a".into(),
                internal_ip: Some(Ipv4Addr::new(10, 0, 0, 11)),
                labels: BTreeMap::new(),
            },
            NodeFacts {
                name: "node-b".into(),
                internal_ip: Some(Ipv4Addr::new(10, 0, 0, 12)),
                labels: BTreeMap::new(),
            },
        ];
        let out = render(&res.peers, &res.pools, &nodes, &Settings::default());
        (res.peers[0].clone(), res.pools[0].clone(), out)
    }

    fn view(role: &str, state: &str, free: u64) -> ServerView {
        ServerView {
            pools: vec![PoolView {
                name: "lan-192-0-2".into(),
                total: 100,
                free,
                backup: 5,
                active: 3,
            }],
            failover: vec![RelationshipView {
                name: "lan".into(),
                role: role.into(),
                my_state: state.into(),
                partner_state: state.into(),
                connected: true,
                seconds_since_contact: Some(2),
            }],
        }
    }

    fn cond<'a>(c: &'a [Condition], t: &str) -> Option<&'a Condition> {
        c.iter().find(|c| c.type_ == t)
    }

    #[test]
    fn unanswered_servers_leave_peer_not_ready_with_placement() {
        let (peer, _, out) = world();
        let s = render_peer_status(&peer, &out, &ServerViews::new(), 9167, Utc::now());
        let ready = cond(&s.conditions, condition::READY).map(|c| c.status.as_str());
        assert_eq!(ready, Some("False"));
        let p = s.primary.unwrap_or_default();
        assert_eq!(p.node.as_deref(), Some("node-a"));
        assert_eq!(p.address.as_deref(), Some("10.0.0.11"));
        assert_eq!(p.state, None);
    }

    #[test]
    fn both_servers_normal_make_peer_ready_and_pool_counts_come_from_primary() {
        let (peer, pool, out) = world();
        let mut views = ServerViews::new();
        // The servers spell states as ISC does ("normal"); the CR shows them upper-case.
        views.insert(Ipv4Addr::new(10, 0, 0, 11), view("primary", "normal", 40));
        views.insert(Ipv4Addr::new(10, 0, 0, 12), view("secondary", "normal", 50));
        let now = Utc::now();
        let s = render_peer_status(&peer, &out, &views, 9167, now);
        let ready = cond(&s.conditions, condition::READY).map(|c| c.status.as_str());
        assert_eq!(ready, Some("True"));
        let sec = s.secondary.unwrap_or_default();
        assert_eq!(sec.state.as_deref(), Some(NORMAL));
        assert!(sec.last_contact.is_some());
        let ps = render_pool_status(&pool, &out, &views, 9167, now);
        assert_eq!(ps.free, Some(40));
        assert_eq!(ps.servers.len(), 2);
        assert_eq!(ps.servers[1].free, 50);
    }

    #[test]
    fn pool_counts_fall_back_to_the_secondary_when_the_primary_does_not_answer() {
        let (_, pool, out) = world();
        let mut views = ServerViews::new();
        views.insert(Ipv4Addr::new(10, 0, 0, 12), view("secondary", NORMAL, 50));
        let ps = render_pool_status(&pool, &out, &views, 9167, Utc::now());
        assert_eq!(ps.free, Some(50));
        assert_eq!(ps.servers.len(), 1);
        assert_eq!(ps.servers[0].role, "secondary");
        let ready = cond(&ps.conditions, condition::READY);
        assert_eq!(ready.map(|c| c.status.as_str()), Some("False"));
        assert!(ready.is_some_and(|c| c.message.contains("no answer from 10.0.0.11")));
    }

    #[test]
    fn unchanged_condition_keeps_its_transition_time() {
        let (mut peer, _, out) = world();
        let t0 = Utc::now() - Duration::seconds(600);
        let first = render_peer_status(&peer, &out, &ServerViews::new(), 9167, t0);
        peer.status = Some(first.clone());
        let second = render_peer_status(&peer, &out, &ServerViews::new(), 9167, Utc::now());
        assert_eq!(first, second);
    }

    #[test]
    fn invalid_spec_emits_one_warning_until_it_changes_and_a_normal_event_when_fixed() {
        let (mut peer, _, _) = world();
        peer.spec.hba = Some("ff".repeat(32));
        let bad = render(std::slice::from_ref(&peer), &[], &[], &Settings::default());
        let s1 = render_peer_status(&peer, &bad, &ServerViews::new(), 9167, Utc::now());
        let ev = status_events(&[], &s1.conditions);
        assert_eq!(ev.len(), 1);
        assert!(ev[0].warning);
        assert_eq!(ev[0].reason, reason::SPLIT_AND_HBA);
        peer.status = Some(s1.clone());
        let s2 = render_peer_status(&peer, &bad, &ServerViews::new(), 9167, Utc::now());
        assert!(status_events(&s1.conditions, &s2.conditions).is_empty());
        let (good_peer, _, good) = world();
        let s3 = render_peer_status(&good_peer, &good, &ServerViews::new(), 9167, Utc::now());
        let ev = status_events(&s2.conditions, &s3.conditions);
        assert_eq!(ev.len(), 1, "{ev:?}");
        assert!(!ev[0].warning);
        assert_eq!(ev[0].reason, reason::RENDERED);
    }

    fn rolled_out(status: &str, reason: &str, message: &str) -> Condition {
        Condition {
            type_: condition::ROLLED_OUT.to_string(),
            status: status.to_string(),
            reason: reason.to_string(),
            message: message.to_string(),
            observed_generation: Some(1),
            last_transition_time: Time(Utc::now()),
        }
    }

    #[test]
    fn rollout_events_come_when_a_node_starts_waiting_moves_on_and_when_all_is_rolled_out() {
        let creating = rolled_out("False", reason::ROLLOUT_IN_PROGRESS, "created");
        let waiting = rolled_out("False", reason::ROLLOUT_WAITING, "node node-b waits");
        let waiting2 = rolled_out("False", reason::ROLLOUT_WAITING, "node node-b waits more");
        let updating = rolled_out("False", reason::ROLLOUT_IN_PROGRESS, "node node-b: applied");
        let done = rolled_out("True", reason::UP_TO_DATE, "both");
        let reasons = |old: &[Condition], new: &[Condition]| -> Vec<String> {
            status_events(old, new)
                .into_iter()
                .inspect(|e| assert!(!e.warning && e.action == "Rollout"))
                .map(|e| e.reason)
                .collect()
        };
        assert!(reasons(&[], std::slice::from_ref(&creating)).is_empty());
        assert!(reasons(&[], std::slice::from_ref(&done)).is_empty());
        assert_eq!(
            reasons(std::slice::from_ref(&done), std::slice::from_ref(&waiting)),
            [reason::ROLLOUT_WAITING]
        );
        assert!(reasons(
            std::slice::from_ref(&waiting),
            std::slice::from_ref(&waiting2)
        )
        .is_empty());
        assert_eq!(
            reasons(
                std::slice::from_ref(&waiting2),
                std::slice::from_ref(&updating)
            ),
            [reason::ROLLOUT_IN_PROGRESS]
        );
        assert_eq!(
            reasons(std::slice::from_ref(&updating), std::slice::from_ref(&done)),
            [reason::UP_TO_DATE]
        );
        assert!(reasons(std::slice::from_ref(&done), std::slice::from_ref(&done)).is_empty());
    }

    #[test]
    fn split_and_hba_gives_invalid_spec_with_its_reason() {
        let (mut peer, _, _) = world();
        peer.spec.hba = Some("ff".repeat(32));
        let out = render(
            std::slice::from_ref(&peer),
            &[],
            &[NodeFacts {
                name: "node-a".into(),
                ..NodeFacts::default()
            }],
            &Settings::default(),
        );
        let s = render_peer_status(&peer, &out, &ServerViews::new(), 9167, Utc::now());
        let invalid = cond(&s.conditions, condition::INVALID_SPEC);
        assert_eq!(invalid.map(|c| c.status.as_str()), Some("True"));
        assert_eq!(
            invalid.map(|c| c.reason.as_str()),
            Some(reason::SPLIT_AND_HBA)
        );
    }
}
