//! Pure rendering: every FailoverPeer and Pool plus the facts about the nodes in, one server
//! config per node (and its ConfigMap and StatefulSet) out. No kube client, no clock.
//!
//! With `hostNetwork` only one process per node can own UDP 67 and the failover port, so the
//! unit of placement is the node: a node's server hosts every relationship placed on it, in its
//! role for each. A CR that cannot be rendered gets a [`CrError`] (an `InvalidSpec` reason) and
//! is left out; it never stops the others from rendering.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, SocketAddr};
use std::str::FromStr;

use dhcpair_config::raw::{self, RawConfig, RawPeer, RawPool, RawRange, RawServer, Role};
use dhcpair_config::Ipv4Net;
use k8s_openapi::api::apps::v1::{StatefulSet, StatefulSetSpec};
use k8s_openapi::api::core::v1::{
    Affinity, Capabilities, ConfigMap, ConfigMapVolumeSource, Container, ContainerPort,
    HTTPGetAction, HostPathVolumeSource, Lifecycle, LifecycleHandler, NodeAffinity, NodeSelector,
    NodeSelectorRequirement, NodeSelectorTerm, PersistentVolumeClaim, PodSecurityContext, PodSpec,
    PodTemplateSpec, Probe, ResourceRequirements, SeccompProfile, SecurityContext, SleepAction,
    Toleration, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::{Resource, ResourceExt};

use crate::api::{self, reason, FailoverMode, FailoverPeer, PeerMember, Pool, Storage};

/// The uid the image runs the server as (see the Dockerfile).
pub const SERVER_UID: i64 = 10001;
/// Where the server reads its config inside the pod (a ConfigMap volume, no subPath, so the
/// kubelet's symlink swap reaches the server's reload).
pub const CONFIG_DIR: &str = "/etc/dhcpair";
/// The ConfigMap key and file name of a node's config.
pub const CONFIG_KEY: &str = "config.yaml";
/// The lease database directory inside the pod.
pub const DATA_DIR: &str = "/var/lib/dhcpair";
/// ISC's MCLT default in its examples.
pub const DEFAULT_MCLT: u32 = 3600;
/// ISC's load-balancing split: half the buckets each.
pub const DEFAULT_SPLIT: u16 = 128;
/// The failover port of draft-12 (IANA 647).
pub const DEFAULT_FAILOVER_PORT: u16 = 647;
/// `loadBalanceMaxSeconds` when the CR gives none, in either mode. A server only defers to
/// the RFC 3074 split while load balancing is on, and ISC's default (0) turns it off: both
/// servers would answer every client (and in hot standby, split 256, the secondary would
/// answer every DISCOVER from its backup addresses). With 3 (the low end of the 3 to 5 that
/// ISC's dhcpd.conf(5) recommends) each server answers only its share in NORMAL unless a
/// client has been trying for more than 3 seconds (its `secs`), which is when a partner
/// that still speaks failover but no longer answers clients is taken over.
pub const DEFAULT_LOAD_BALANCE_MAX_SECONDS: u32 = 3;

/// What the operator knows about a node.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NodeFacts {
    pub name: String,
    /// The node's `InternalIP` address (IPv4), if it has one.
    pub internal_ip: Option<Ipv4Addr>,
    pub labels: BTreeMap<String, String>,
}

/// Operator-wide settings that are not in any CR.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Image of the servers unless a FailoverPeer names one.
    pub default_image: String,
    /// The servers' HTTP port (probes, metrics, `/v1/status`), on every address of the node.
    pub http_port: u16,
    /// The hostPath of the lease database unless a FailoverPeer names one.
    pub default_host_path: String,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            default_image: "ghcr.io/dhcpair/dhcpair:latest".to_string(),
            http_port: 9167,
            default_host_path: DATA_DIR.to_string(),
        }
    }
}

/// Which kind of CR an error or warning is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum CrKind {
    FailoverPeer,
    Pool,
}

/// Why a CR cannot be rendered (or, for warnings, rendered with a compromise).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    #[error("{role}: no node named {node:?}")]
    NodeNotFound { role: &'static str, node: String },
    #[error("{role}: nodeSelector {selector} matches no node")]
    NodeSelectorNoMatch {
        role: &'static str,
        selector: String,
    },
    #[error("{role}: nodeSelector {selector} matches {count} nodes ({nodes}); it must select exactly one")]
    NodeSelectorAmbiguous {
        role: &'static str,
        selector: String,
        count: usize,
        nodes: String,
    },
    #[error("{role}: give exactly one of nodeName or nodeSelector")]
    NodePlacementMissing { role: &'static str },
    #[error("primary and secondary are both on node {node:?}; they must be on different nodes")]
    SameNode { node: String },
    #[error("{role}: node {node:?} has no IPv4 InternalIP; set {role}.address")]
    NodeAddressUnknown { role: &'static str, node: String },
    #[error("give split or hba, not both (mode hotStandby counts as split 256)")]
    SplitAndHba,
    #[error("node {node:?} already runs relationships of namespace {other:?}; one node serves one namespace")]
    NodeNamespaceConflict { node: String, other: String },
    #[error("node {node:?}: relationship {other:?} already uses {address}:{port} towards {peer_address}")]
    NodeAddressConflict {
        node: String,
        other: String,
        address: Ipv4Addr,
        port: u16,
        peer_address: Ipv4Addr,
    },
    #[error("subnet {subnet:?} is not an IPv4 network in CIDR form ({detail})")]
    InvalidSubnet { subnet: String, detail: String },
    #[error("ranges[{index}]: start {start} is after end {end}")]
    RangeStartAfterEnd {
        index: usize,
        start: Ipv4Addr,
        end: Ipv4Addr,
    },
    #[error("ranges[{index}]: {start}-{end} is not inside subnet {subnet}")]
    RangeOutsideSubnet {
        index: usize,
        start: Ipv4Addr,
        end: Ipv4Addr,
        subnet: Ipv4Net,
    },
    #[error("ranges[{index}]: {start}-{end} overlaps pool {other:?} served by the same node")]
    PoolOverlap {
        index: usize,
        start: Ipv4Addr,
        end: Ipv4Addr,
        other: String,
    },
    #[error("failoverPeerRef: no FailoverPeer named {name:?} in this namespace")]
    PeerNotFound { name: String },
    #[error("failoverPeerRef: FailoverPeer {name:?} is not valid itself")]
    PeerInvalid { name: String },
    #[error("node {node:?}: the server would refuse the rendered config: {message}")]
    NodeConfigRejected { node: String, message: String },
    #[error("node {node:?}: {setting} differs from FailoverPeer {first:?} on the same node, whose value is used")]
    NodeSettingsConflict {
        node: String,
        setting: &'static str,
        first: String,
    },
}

impl SpecError {
    /// The condition reason (one of [`api::reason`]).
    pub fn reason(&self) -> &'static str {
        match self {
            SpecError::NodeNotFound { .. }
            | SpecError::NodeSelectorNoMatch { .. }
            | SpecError::NodePlacementMissing { .. } => reason::NODE_NOT_FOUND,
            SpecError::NodeSelectorAmbiguous { .. } => reason::NODE_SELECTOR_AMBIGUOUS,
            SpecError::SameNode { .. } => reason::SAME_NODE,
            SpecError::NodeAddressUnknown { .. } => reason::NODE_ADDRESS_UNKNOWN,
            SpecError::SplitAndHba => reason::SPLIT_AND_HBA,
            SpecError::NodeNamespaceConflict { .. } => reason::NODE_NAMESPACE_CONFLICT,
            SpecError::NodeAddressConflict { .. } => reason::NODE_ADDRESS_CONFLICT,
            SpecError::InvalidSubnet { .. } => reason::INVALID_SUBNET,
            SpecError::RangeStartAfterEnd { .. } => reason::RANGE_START_AFTER_END,
            SpecError::RangeOutsideSubnet { .. } => reason::RANGE_OUTSIDE_SUBNET,
            SpecError::PoolOverlap { .. } => reason::POOL_OVERLAP,
            SpecError::PeerNotFound { .. } => reason::PEER_NOT_FOUND,
            SpecError::PeerInvalid { .. } => reason::PEER_INVALID,
            SpecError::NodeConfigRejected { .. } => reason::NODE_CONFIG_REJECTED,
            SpecError::NodeSettingsConflict { .. } => reason::NODE_SETTINGS_CONFLICT,
        }
    }
}

/// A [`SpecError`] attributed to one CR.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrError {
    pub kind: CrKind,
    pub namespace: String,
    pub name: String,
    pub error: SpecError,
}

impl std::fmt::Display for CrError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:?} {}/{}: {} ({})",
            self.kind,
            self.namespace,
            self.name,
            self.error,
            self.error.reason()
        )
    }
}

/// One node's server: its config and the objects that run it.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeServer {
    pub node: String,
    pub namespace: String,
    pub config: RawConfig,
    pub config_map: ConfigMap,
    pub stateful_set: StatefulSet,
}

/// Everything one render produced.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Rendered {
    /// Sorted by node name.
    pub nodes: Vec<NodeServer>,
    /// CRs left out, with why (→ `InvalidSpec`).
    pub errors: Vec<CrError>,
    /// CRs rendered with a compromise (→ `Degraded`).
    pub warnings: Vec<CrError>,
    /// Where each valid FailoverPeer's two servers run (for its status), sorted by
    /// namespace and name.
    pub placements: Vec<Placement>,
}

/// A valid FailoverPeer resolved to its two nodes and failover addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    pub namespace: String,
    pub name: String,
    pub primary: PlacedSide,
    pub secondary: PlacedSide,
}

/// One server of a [`Placement`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlacedSide {
    pub node: String,
    /// The failover address (the node's InternalIP unless the CR names one).
    pub address: Ipv4Addr,
    pub port: u16,
}

/// One side of a relationship, resolved to a node and an address.
#[derive(Debug, Clone)]
struct Side {
    node: String,
    address: Ipv4Addr,
    port: u16,
}

#[derive(Debug, Clone)]
struct Relationship<'a> {
    cr: &'a FailoverPeer,
    namespace: String,
    name: String,
    primary: Side,
    secondary: Side,
}

fn ns_name<K: Resource>(k: &K) -> (String, String) {
    (k.namespace().unwrap_or_default(), k.name_any())
}

/// Render every node's server from all FailoverPeers, Pools and node facts.
pub fn render(
    peers: &[FailoverPeer],
    pools: &[Pool],
    nodes: &[NodeFacts],
    settings: &Settings,
) -> Rendered {
    let mut out = Rendered::default();
    let mut peers: Vec<&FailoverPeer> = peers.iter().collect();
    peers.sort_by_key(|p| ns_name(*p));
    let mut pools: Vec<&Pool> = pools.iter().collect();
    pools.sort_by_key(|p| ns_name(*p));
    let nodes: BTreeMap<&str, &NodeFacts> = nodes.iter().map(|n| (n.name.as_str(), n)).collect();

    // 1. Relationships: resolve both sides, then claim their nodes in name order.
    let mut rels: Vec<Relationship> = Vec::new();
    let mut node_ns: BTreeMap<String, String> = BTreeMap::new();
    for cr in &peers {
        let (namespace, name) = ns_name(*cr);
        let err = |error| CrError {
            kind: CrKind::FailoverPeer,
            namespace: namespace.clone(),
            name: name.clone(),
            error,
        };
        let rel = match resolve_relationship(cr, &nodes) {
            Ok((primary, secondary)) => Relationship {
                cr,
                namespace: namespace.clone(),
                name: name.clone(),
                primary,
                secondary,
            },
            Err(e) => {
                out.errors.push(err(e));
                continue;
            }
        };
        if let Some(e) = claim_conflict(&rel, &rels, &node_ns) {
            out.errors.push(err(e));
            continue;
        }
        for side in [&rel.primary, &rel.secondary] {
            node_ns.insert(side.node.clone(), namespace.clone());
        }
        rels.push(rel);
    }

    // 2. Pools: checked on their own, then against the pools already accepted on their nodes.
    let mut accepted: Vec<(RawPool, &Relationship)> = Vec::new();
    for cr in &pools {
        let (namespace, name) = ns_name(*cr);
        let err = |error| CrError {
            kind: CrKind::Pool,
            namespace: namespace.clone(),
            name: name.clone(),
            error,
        };
        let peer_name = &cr.spec.failover_peer_ref;
        let Some(rel) = rels
            .iter()
            .find(|r| r.namespace == namespace && &r.name == peer_name)
        else {
            let exists = peers
                .iter()
                .any(|p| ns_name(*p) == (namespace.clone(), peer_name.clone()));
            out.errors.push(err(if exists {
                SpecError::PeerInvalid {
                    name: peer_name.clone(),
                }
            } else {
                SpecError::PeerNotFound {
                    name: peer_name.clone(),
                }
            }));
            continue;
        };
        let pool = match render_pool(&name, cr, peer_name) {
            Ok(p) => p,
            Err(e) => {
                out.errors.push(err(e));
                continue;
            }
        };
        let rel_nodes = [&rel.primary.node, &rel.secondary.node];
        let overlap = pool.ranges.iter().enumerate().find_map(|(index, r)| {
            accepted
                .iter()
                .filter(|(_, other)| {
                    rel_nodes.contains(&&other.primary.node)
                        || rel_nodes.contains(&&other.secondary.node)
                })
                .find(|(o, _)| {
                    o.ranges
                        .iter()
                        .any(|x| x.start <= r.end && r.start <= x.end)
                })
                .map(|(o, _)| SpecError::PoolOverlap {
                    index,
                    start: r.start,
                    end: r.end,
                    other: o.name.clone(),
                })
        });
        if let Some(e) = overlap {
            out.errors.push(err(e));
            continue;
        }
        accepted.push((pool, rel));
    }

    out.placements = rels
        .iter()
        .map(|r| {
            let side = |s: &Side| PlacedSide {
                node: s.node.clone(),
                address: s.address,
                port: s.port,
            };
            Placement {
                namespace: r.namespace.clone(),
                name: r.name.clone(),
                primary: side(&r.primary),
                secondary: side(&r.secondary),
            }
        })
        .collect();

    // 3. One server per node.
    let node_names: BTreeSet<&String> = rels
        .iter()
        .flat_map(|r| [&r.primary.node, &r.secondary.node])
        .collect();
    for node in node_names {
        let on_node: Vec<(&Relationship, Role)> = rels
            .iter()
            .filter_map(|r| {
                if &r.primary.node == node {
                    Some((r, Role::Primary))
                } else if &r.secondary.node == node {
                    Some((r, Role::Secondary))
                } else {
                    None
                }
            })
            .collect();
        let config = render_config(&on_node, &accepted, settings);
        let text = match config_yaml(node, &config) {
            Ok(t) => t,
            Err(message) => {
                for (r, _) in &on_node {
                    out.errors.push(CrError {
                        kind: CrKind::FailoverPeer,
                        namespace: r.namespace.clone(),
                        name: r.name.clone(),
                        error: SpecError::NodeConfigRejected {
                            node: node.clone(),
                            message: message.clone(),
                        },
                    });
                }
                continue;
            }
        };
        let (pod, warnings) = node_settings(node, &on_node, settings);
        out.warnings.extend(warnings);
        let namespace = on_node
            .first()
            .map(|(r, _)| r.namespace.clone())
            .unwrap_or_default();
        let owners: Vec<OwnerReference> = on_node.iter().filter_map(|(r, _)| owner(r.cr)).collect();
        let config_map = render_config_map(node, &namespace, &owners, text);
        let stateful_set = render_stateful_set(node, &namespace, &owners, &pod, settings);
        out.nodes.push(NodeServer {
            node: node.clone(),
            namespace,
            config,
            config_map,
            stateful_set,
        });
    }
    out.errors
        .sort_by(|a, b| (a.kind, &a.namespace, &a.name).cmp(&(b.kind, &b.namespace, &b.name)));
    out
}

fn resolve_relationship(
    cr: &FailoverPeer,
    nodes: &BTreeMap<&str, &NodeFacts>,
) -> Result<(Side, Side), SpecError> {
    let s = &cr.spec;
    if s.split.is_some() && s.hba.is_some()
        || s.mode == Some(FailoverMode::HotStandby) && (s.split.is_some() || s.hba.is_some())
    {
        return Err(SpecError::SplitAndHba);
    }
    let primary = resolve_side("primary", &s.primary, nodes)?;
    let secondary = resolve_side("secondary", &s.secondary, nodes)?;
    if primary.node == secondary.node {
        return Err(SpecError::SameNode { node: primary.node });
    }
    Ok((primary, secondary))
}

fn resolve_side(
    role: &'static str,
    m: &PeerMember,
    nodes: &BTreeMap<&str, &NodeFacts>,
) -> Result<Side, SpecError> {
    let node: &NodeFacts = match (&m.node_name, &m.node_selector) {
        (Some(n), None) => {
            nodes
                .get(n.as_str())
                .copied()
                .ok_or_else(|| SpecError::NodeNotFound {
                    role,
                    node: n.clone(),
                })?
        }
        (None, Some(sel)) => {
            let matching: Vec<&NodeFacts> = nodes
                .values()
                .copied()
                .filter(|n| sel.iter().all(|(k, v)| n.labels.get(k) == Some(v)))
                .collect();
            let selector = sel
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(",");
            match matching.as_slice() {
                [one] => one,
                [] => return Err(SpecError::NodeSelectorNoMatch { role, selector }),
                many => {
                    return Err(SpecError::NodeSelectorAmbiguous {
                        role,
                        selector,
                        count: many.len(),
                        nodes: many
                            .iter()
                            .map(|n| n.name.as_str())
                            .collect::<Vec<_>>()
                            .join(","),
                    })
                }
            }
        }
        _ => return Err(SpecError::NodePlacementMissing { role }),
    };
    let address = m
        .address
        .or(node.internal_ip)
        .ok_or_else(|| SpecError::NodeAddressUnknown {
            role,
            node: node.name.clone(),
        })?;
    Ok(Side {
        node: node.name.clone(),
        address,
        port: m.port.unwrap_or(DEFAULT_FAILOVER_PORT),
    })
}

/// A relationship may join nodes only of its own namespace, and its listener on each node must
/// be told apart from the others' (the server matches an accepted connection by peer address).
fn claim_conflict(
    rel: &Relationship,
    rels: &[Relationship],
    node_ns: &BTreeMap<String, String>,
) -> Option<SpecError> {
    for side in [&rel.primary, &rel.secondary] {
        if let Some(other) = node_ns.get(&side.node) {
            if *other != rel.namespace {
                return Some(SpecError::NodeNamespaceConflict {
                    node: side.node.clone(),
                    other: other.clone(),
                });
            }
        }
    }
    let ends = |r: &Relationship| {
        [
            (
                r.primary.node.clone(),
                r.primary.address,
                r.primary.port,
                r.secondary.address,
            ),
            (
                r.secondary.node.clone(),
                r.secondary.address,
                r.secondary.port,
                r.primary.address,
            ),
        ]
    };
    for mine in ends(rel) {
        for other in rels {
            if ends(other).contains(&mine) {
                return Some(SpecError::NodeAddressConflict {
                    node: mine.0,
                    other: other.name.clone(),
                    address: mine.1,
                    port: mine.2,
                    peer_address: mine.3,
                });
            }
        }
    }
    None
}

fn render_pool(name: &str, cr: &Pool, peer: &str) -> Result<RawPool, SpecError> {
    let s = &cr.spec;
    let subnet = Ipv4Net::from_str(&s.subnet).map_err(|e| SpecError::InvalidSubnet {
        subnet: s.subnet.clone(),
        detail: e.to_string(),
    })?;
    if subnet.trunc() != subnet {
        return Err(SpecError::InvalidSubnet {
            subnet: s.subnet.clone(),
            detail: format!("host bits set; did you mean {}?", subnet.trunc()),
        });
    }
    let mut ranges = Vec::new();
    for (index, r) in s.ranges.iter().enumerate() {
        if r.start > r.end {
            return Err(SpecError::RangeStartAfterEnd {
                index,
                start: r.start,
                end: r.end,
            });
        }
        if !subnet.contains(&r.start) || !subnet.contains(&r.end) {
            return Err(SpecError::RangeOutsideSubnet {
                index,
                start: r.start,
                end: r.end,
                subnet,
            });
        }
        ranges.push(RawRange {
            start: r.start,
            end: r.end,
        });
    }
    Ok(RawPool {
        name: name.to_string(),
        subnet,
        ranges,
        options: s.options.as_ref().map(options).unwrap_or_default(),
        default_lease_time: s.default_lease_time,
        min_lease_time: s.min_lease_time,
        max_lease_time: s.max_lease_time,
        allow: s.allow.iter().copied().map(permit).collect(),
        deny: s.deny.iter().copied().map(permit).collect(),
        reservations: s
            .reservations
            .iter()
            .map(|r| raw::RawReservation {
                hardware_address: r.hardware_address.clone(),
                client_id: r.client_id.clone(),
                ip_address: r.ip_address,
                hostname: r.hostname.clone(),
                options: r.options.as_ref().map(options).unwrap_or_default(),
            })
            .collect(),
        shared_network: s.shared_network.clone(),
        failover_peer: Some(peer.to_string()),
    })
}

fn permit(p: api::Permit) -> raw::Permit {
    match p {
        api::Permit::KnownClients => raw::Permit::KnownClients,
        api::Permit::UnknownClients => raw::Permit::UnknownClients,
        api::Permit::DynamicBootpClients => raw::Permit::DynamicBootpClients,
    }
}

fn options(o: &api::DhcpOptions) -> raw::OptionValues {
    raw::OptionValues {
        subnet_mask: o.subnet_mask,
        routers: o.routers.clone(),
        domain_name_servers: o.domain_name_servers.clone(),
        domain_name: o.domain_name.clone(),
        broadcast_address: o.broadcast_address,
        ntp_servers: o.ntp_servers.clone(),
        domain_search: o.domain_search.clone(),
        custom: o
            .custom
            .iter()
            .map(|c| raw::CustomOption {
                code: c.code,
                ip: c.ip,
                ips: c.ips.clone(),
                text: c.text.clone(),
                u8: c.u8,
                u16: c.u16,
                u32: c.u32,
                bool: c.bool,
                hex: c.hex.clone(),
            })
            .collect(),
    }
}

/// The relationship's entry as the server on `me`'s node sees it: our side first, the
/// partner's second; only the primary carries mclt and split/hba (as in ISC dhcpd).
/// `loadBalanceMaxSeconds` goes to both: each server applies its own (the secondary is the
/// one that must defer to the primary's split); it defaults to
/// [`DEFAULT_LOAD_BALANCE_MAX_SECONDS`].
fn render_peer_entry(
    name: &str,
    spec: &api::FailoverPeerSpec,
    role: Role,
    me: &Side,
    partner: &Side,
) -> RawPeer {
    let primary = role == Role::Primary;
    let (split, hba) = match (spec.mode, spec.split, &spec.hba) {
        (Some(FailoverMode::HotStandby), _, _) => (Some(256), None),
        (_, _, Some(h)) => (None, Some(h.clone())),
        (_, Some(n), None) => (Some(n), None),
        (_, None, None) => (Some(DEFAULT_SPLIT), None),
    };
    RawPeer {
        name: name.to_string(),
        role,
        address: me.address,
        port: Some(me.port),
        peer_address: partner.address,
        peer_port: Some(partner.port),
        max_response_delay: spec.max_response_delay,
        max_unacked_updates: spec.max_unacked_updates,
        load_balance_max_seconds: Some(
            spec.load_balance_max_seconds
                .unwrap_or(DEFAULT_LOAD_BALANCE_MAX_SECONDS),
        ),
        mclt: primary.then(|| spec.mclt.unwrap_or(DEFAULT_MCLT)),
        split: split.filter(|_| primary),
        hba: hba.filter(|_| primary),
        auto_partner_down: spec.auto_partner_down,
        max_lease_misbalance: None,
        max_lease_ownership: None,
        min_balance: None,
        max_balance: None,
    }
}

fn render_config(
    on_node: &[(&Relationship, Role)],
    pools: &[(RawPool, &Relationship)],
    settings: &Settings,
) -> RawConfig {
    let mut interfaces: Vec<String> = on_node
        .iter()
        .flat_map(|(r, _)| r.cr.spec.interfaces.iter().cloned())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    interfaces.sort();
    let mut peers = Vec::new();
    for (r, role) in on_node {
        let (me, partner) = match role {
            Role::Primary => (&r.primary, &r.secondary),
            Role::Secondary => (&r.secondary, &r.primary),
        };
        peers.push(render_peer_entry(&r.name, &r.cr.spec, *role, me, partner));
    }
    let mut node_pools: Vec<RawPool> = pools
        .iter()
        .filter(|(_, rel)| on_node.iter().any(|(r, _)| std::ptr::eq(*r, *rel)))
        .map(|(p, _)| p.clone())
        .collect();
    node_pools.sort_by(|a, b| a.name.cmp(&b.name));
    RawConfig {
        server: RawServer {
            interfaces,
            data_dir: DATA_DIR.to_string(),
            http: Some(SocketAddr::from((
                Ipv4Addr::UNSPECIFIED,
                settings.http_port,
            ))),
            server_id: None,
            port: None,
            client_port: None,
            reclaim_interval: None,
            decline_probation_period: None,
            offer_hold_time: None,
            authoritative: None,
            control_token_file: None,
        },
        peers,
        options: Default::default(),
        subnets: Vec::new(),
        pools: node_pools,
    }
}

/// The config file's text, after the server's own parser accepted it.
fn config_yaml(node: &str, config: &RawConfig) -> Result<String, String> {
    let body = serde_yaml::to_string(config).map_err(|e| e.to_string())?;
    let text =
        format!("# dhcpair server config for node {node}, rendered by dhcpair-operator.\n{body}");
    dhcpair_config::Config::from_yaml(&format!("node {node}"), &text).map_err(|e| e.to_string())?;
    Ok(text)
}

/// Pod-level settings of a node: taken from the first FailoverPeer on it (by name); the others
/// must agree or get a [`SpecError::NodeSettingsConflict`] warning.
#[derive(Debug, Clone, PartialEq)]
struct PodSettings {
    image: String,
    storage: Storage,
    resources: Option<ResourceRequirements>,
    tolerations: Vec<Toleration>,
    node_selector: Option<BTreeMap<String, String>>,
}

fn node_settings(
    node: &str,
    on_node: &[(&Relationship, Role)],
    settings: &Settings,
) -> (PodSettings, Vec<CrError>) {
    let of = |r: &Relationship, role: Role| {
        let s = &r.cr.spec;
        PodSettings {
            image: s
                .image
                .clone()
                .unwrap_or_else(|| settings.default_image.clone()),
            storage: s.storage.clone().unwrap_or_default(),
            resources: s.resources.clone(),
            tolerations: s.tolerations.clone(),
            node_selector: match role {
                Role::Primary => s.primary.node_selector.clone(),
                Role::Secondary => s.secondary.node_selector.clone(),
            },
        }
    };
    let mut warnings = Vec::new();
    let Some(((first_rel, first_role), rest)) = on_node.split_first() else {
        return (
            PodSettings {
                image: settings.default_image.clone(),
                storage: Storage::default(),
                resources: None,
                tolerations: Vec::new(),
                node_selector: None,
            },
            warnings,
        );
    };
    let first = of(first_rel, *first_role);
    for (r, role) in rest {
        let mine = of(r, *role);
        let differs = [
            ("image", mine.image != first.image),
            ("storage", mine.storage != first.storage),
            ("resources", mine.resources != first.resources),
            ("tolerations", mine.tolerations != first.tolerations),
        ];
        for (setting, d) in differs {
            if d {
                warnings.push(CrError {
                    kind: CrKind::FailoverPeer,
                    namespace: r.namespace.clone(),
                    name: r.name.clone(),
                    error: SpecError::NodeSettingsConflict {
                        node: node.to_string(),
                        setting,
                        first: first_rel.name.clone(),
                    },
                });
            }
        }
    }
    (first, warnings)
}

fn owner(cr: &FailoverPeer) -> Option<OwnerReference> {
    Some(OwnerReference {
        api_version: format!("{}/{}", api::GROUP, api::VERSION),
        kind: "FailoverPeer".to_string(),
        name: cr.name_any(),
        uid: cr.metadata.uid.clone()?,
        controller: None,
        block_owner_deletion: None,
    })
}

/// The name of a node's ConfigMap and StatefulSet.
pub fn object_name(node: &str) -> String {
    format!("dhcpair-{node}")
}

fn labels(node: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".to_string(), "dhcpair".to_string()),
        (
            "app.kubernetes.io/component".to_string(),
            "server".to_string(),
        ),
        (
            "app.kubernetes.io/managed-by".to_string(),
            "dhcpair-operator".to_string(),
        ),
        ("dhcpair.io/node".to_string(), node.to_string()),
    ])
}

fn meta(node: &str, namespace: &str, owners: &[OwnerReference]) -> ObjectMeta {
    ObjectMeta {
        name: Some(object_name(node)),
        namespace: Some(namespace.to_string()),
        labels: Some(labels(node)),
        owner_references: (!owners.is_empty()).then(|| owners.to_vec()),
        ..Default::default()
    }
}

fn render_config_map(
    node: &str,
    namespace: &str,
    owners: &[OwnerReference],
    text: String,
) -> ConfigMap {
    ConfigMap {
        metadata: meta(node, namespace, owners),
        data: Some(BTreeMap::from([(CONFIG_KEY.to_string(), text)])),
        ..Default::default()
    }
}

fn render_stateful_set(
    node: &str,
    namespace: &str,
    owners: &[OwnerReference],
    pod: &PodSettings,
    settings: &Settings,
) -> StatefulSet {
    let name = object_name(node);
    let selector = BTreeMap::from([
        ("app.kubernetes.io/name".to_string(), "dhcpair".to_string()),
        ("dhcpair.io/node".to_string(), node.to_string()),
    ]);
    // Only the ports every server has: the failover ports come from the config (a relationship
    // added or removed must not change the pod template, which would restart the server).
    let ports = vec![
        ContainerPort {
            name: Some("http".to_string()),
            container_port: i32::from(settings.http_port),
            protocol: Some("TCP".to_string()),
            ..Default::default()
        },
        ContainerPort {
            name: Some("dhcp".to_string()),
            container_port: 67,
            protocol: Some("UDP".to_string()),
            ..Default::default()
        },
    ];
    let probe = |path: &str, period: i32| Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.to_string()),
            port: IntOrString::String("http".to_string()),
            ..Default::default()
        }),
        period_seconds: Some(period),
        failure_threshold: Some(3),
        ..Default::default()
    };
    let mut volumes = vec![Volume {
        name: "config".to_string(),
        config_map: Some(ConfigMapVolumeSource {
            name: name.clone(),
            ..Default::default()
        }),
        ..Default::default()
    }];
    let mut init_containers = Vec::new();
    let mut claims = None;
    match (&pod.storage.volume_claim_template, &pod.storage.host_path) {
        (Some(spec), _) => {
            claims = Some(vec![PersistentVolumeClaim {
                metadata: ObjectMeta {
                    name: Some("data".to_string()),
                    ..Default::default()
                },
                spec: Some(spec.clone()),
                ..Default::default()
            }]);
        }
        (None, host) => {
            let path = host
                .as_ref()
                .map(|h| h.path.clone())
                .unwrap_or_else(|| settings.default_host_path.clone());
            volumes.push(Volume {
                name: "data".to_string(),
                host_path: Some(HostPathVolumeSource {
                    path,
                    type_: Some("DirectoryOrCreate".to_string()),
                }),
                ..Default::default()
            });
            // The kubelet creates a missing hostPath as root; hand it to the server's uid.
            init_containers.push(Container {
                name: "data-owner".to_string(),
                image: Some(pod.image.clone()),
                command: Some(vec![
                    "chown".to_string(),
                    format!("{SERVER_UID}:{SERVER_UID}"),
                    DATA_DIR.to_string(),
                ]),
                security_context: Some(SecurityContext {
                    run_as_user: Some(0),
                    run_as_non_root: Some(false),
                    allow_privilege_escalation: Some(false),
                    read_only_root_filesystem: Some(true),
                    capabilities: Some(Capabilities {
                        add: Some(vec!["CHOWN".to_string()]),
                        drop: Some(vec!["ALL".to_string()]),
                    }),
                    ..Default::default()
                }),
                volume_mounts: Some(vec![VolumeMount {
                    name: "data".to_string(),
                    mount_path: DATA_DIR.to_string(),
                    ..Default::default()
                }]),
                ..Default::default()
            });
        }
    }
    let server = Container {
        name: "dhcpair".to_string(),
        image: Some(pod.image.clone()),
        args: Some(vec![
            "serve".to_string(),
            "--config".to_string(),
            format!("{CONFIG_DIR}/{CONFIG_KEY}"),
            // Pools, options and reservations reload in place; a relationship added to or
            // removed from this node needs a restart, which the kubelet then does.
            "--restart-on-change".to_string(),
        ]),
        ports: Some(ports),
        readiness_probe: Some(probe("/readyz", 5)),
        liveness_probe: Some(probe("/healthz", 10)),
        // On SIGTERM the server tells its partners it is going down (draft-12 §9.3,
        // engine `handle_shutdown`); the pause lets the kubelet's endpoint removal land first.
        lifecycle: Some(Lifecycle {
            pre_stop: Some(LifecycleHandler {
                sleep: Some(SleepAction { seconds: 2 }),
                ..Default::default()
            }),
            ..Default::default()
        }),
        resources: pod.resources.clone(),
        security_context: Some(SecurityContext {
            run_as_user: Some(SERVER_UID),
            run_as_group: Some(SERVER_UID),
            run_as_non_root: Some(true),
            read_only_root_filesystem: Some(true),
            // File capabilities on /usr/local/bin/dhcpair (see the Dockerfile) are how a
            // non-root process gets NET_BIND_SERVICE and NET_RAW; no_new_privs would drop them.
            allow_privilege_escalation: Some(true),
            capabilities: Some(Capabilities {
                add: Some(vec!["NET_BIND_SERVICE".to_string(), "NET_RAW".to_string()]),
                drop: Some(vec!["ALL".to_string()]),
            }),
            ..Default::default()
        }),
        volume_mounts: Some(vec![
            VolumeMount {
                name: "config".to_string(),
                mount_path: CONFIG_DIR.to_string(),
                read_only: Some(true),
                ..Default::default()
            },
            VolumeMount {
                name: "data".to_string(),
                mount_path: DATA_DIR.to_string(),
                ..Default::default()
            },
        ]),
        ..Default::default()
    };
    let pin = NodeSelectorTerm {
        match_fields: Some(vec![NodeSelectorRequirement {
            key: "metadata.name".to_string(),
            operator: "In".to_string(),
            values: Some(vec![node.to_string()]),
        }]),
        ..Default::default()
    };
    let template = PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(labels(node)),
            ..Default::default()
        }),
        spec: Some(PodSpec {
            host_network: Some(true),
            dns_policy: Some("ClusterFirstWithHostNet".to_string()),
            // The servers never talk to the API server.
            automount_service_account_token: Some(false),
            enable_service_links: Some(false),
            termination_grace_period_seconds: Some(30),
            node_selector: pod.node_selector.clone(),
            affinity: Some(Affinity {
                node_affinity: Some(NodeAffinity {
                    required_during_scheduling_ignored_during_execution: Some(NodeSelector {
                        node_selector_terms: vec![pin],
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            tolerations: (!pod.tolerations.is_empty()).then(|| pod.tolerations.clone()),
            security_context: Some(PodSecurityContext {
                seccomp_profile: Some(SeccompProfile {
                    type_: "RuntimeDefault".to_string(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            init_containers: (!init_containers.is_empty()).then_some(init_containers),
            containers: vec![server],
            volumes: Some(volumes),
            ..Default::default()
        }),
    };
    let mut metadata = meta(node, namespace, owners);
    // The hash of the pod template rides on the StatefulSet (not on the pod, which it would
    // restart): it is how the rollout tells which template a node runs (crate::rollout).
    metadata.annotations = Some(BTreeMap::from([(
        crate::rollout::TEMPLATE_HASH.to_string(),
        crate::rollout::template_hash(&template),
    )]));
    StatefulSet {
        metadata,
        spec: Some(StatefulSetSpec {
            replicas: Some(1),
            service_name: Some(name),
            selector: LabelSelector {
                match_labels: Some(selector),
                ..Default::default()
            },
            // Parallel: a pod that never became ready (a bad image) is replaced when the
            // template is fixed; OrderedReady would wait for it forever (kubernetes#67250).
            pod_management_policy: Some("Parallel".to_string()),
            volume_claim_templates: claims,
            template,
            ..Default::default()
        }),
        ..Default::default()
    }
}
