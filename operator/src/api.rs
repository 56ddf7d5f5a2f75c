//! The custom resources (`dhcpair.io/v1alpha1`): [`FailoverPeer`] and [`Pool`].
//!
//! The CRD YAML in `crds/` is generated from these types (`dhcpair-operator crdgen`); a test
//! fails when the checked-in files drift. Checks that need no cluster state and that CEL can
//! express are `x-kubernetes-validations` rules here; the rest (range start <= end, ranges inside
//! the subnet, overlaps, references, node placement) is in [`crate::render`], which reports them
//! as `InvalidSpec` conditions with a reason from [`reason`].
//!
//! IP order (`start <= end`) and "inside the subnet" are not CEL rules: the `ip()`/`cidr()`
//! CEL libraries need Kubernetes >= 1.31 at CRD-creation time and still have no ordering
//! operator, so the operator checks both.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::{PersistentVolumeClaimSpec, ResourceRequirements, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The API group of every dhcpair resource.
pub const GROUP: &str = "dhcpair.io";
/// The served (and stored) version.
pub const VERSION: &str = "v1alpha1";

/// Condition types written into `status.conditions`.
pub mod condition {
    /// Every server of the resource is up and every relationship is NORMAL.
    pub const READY: &str = "Ready";
    /// Rendered and applied, but something is not as it should be (a relationship not NORMAL,
    /// a node setting that conflicts with another FailoverPeer on the same node).
    pub const DEGRADED: &str = "Degraded";
    /// The spec cannot be rendered; the reason says why. Nothing of this resource is applied.
    pub const INVALID_SPEC: &str = "InvalidSpec";
    /// FailoverPeer only, when the operator applies StatefulSets: both of its servers'
    /// StatefulSets carry the rendered pod template and no update is in flight. False while
    /// an image (or other pod template) change is rolled out one node at a time (`rollout`).
    pub const ROLLED_OUT: &str = "RolledOut";
}

/// Condition reasons (CamelCase, as Kubernetes wants them).
pub mod reason {
    pub const RANGE_START_AFTER_END: &str = "RangeStartAfterEnd";
    pub const RANGE_OUTSIDE_SUBNET: &str = "RangeOutsideSubnet";
    pub const INVALID_SUBNET: &str = "InvalidSubnet";
    pub const POOL_OVERLAP: &str = "PoolOverlap";
    pub const PEER_NOT_FOUND: &str = "PeerNotFound";
    pub const PEER_INVALID: &str = "PeerInvalid";
    pub const SAME_NODE: &str = "SameNode";
    pub const NODE_NOT_FOUND: &str = "NodeNotFound";
    pub const NODE_SELECTOR_AMBIGUOUS: &str = "NodeSelectorAmbiguous";
    pub const NODE_ADDRESS_UNKNOWN: &str = "NodeAddressUnknown";
    pub const NODE_NAMESPACE_CONFLICT: &str = "NodeNamespaceConflict";
    pub const NODE_ADDRESS_CONFLICT: &str = "NodeAddressConflict";
    pub const SPLIT_AND_HBA: &str = "SplitAndHba";
    pub const NODE_CONFIG_REJECTED: &str = "NodeConfigRejected";
    pub const NODE_SETTINGS_CONFLICT: &str = "NodeSettingsConflict";
    pub const RENDERED: &str = "Rendered";
    pub const ALL_NORMAL: &str = "AllNormal";
    pub const NOT_NORMAL: &str = "NotNormal";
    /// RolledOut: a node keeps its old pod template for now; the message says what it waits for.
    pub const ROLLOUT_WAITING: &str = "RolloutWaiting";
    /// RolledOut: a node's new pod template is applied; its pod is not ready (or not NORMAL) yet.
    pub const ROLLOUT_IN_PROGRESS: &str = "RolloutInProgress";
    /// RolledOut: both servers run the rendered pod template.
    pub const UP_TO_DATE: &str = "UpToDate";
}

/// A failover relationship between two dhcpair servers (draft-ietf-dhc-failover-12), each
/// placed on its own node. The operator runs one server per node; that server hosts every
/// relationship placed on its node.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "dhcpair.io",
    version = "v1alpha1",
    kind = "FailoverPeer",
    namespaced,
    status = "FailoverPeerStatus",
    shortname = "fop",
    category = "dhcpair",
    printcolumn = r#"{"name":"PRIMARY-NODE","type":"string","jsonPath":".status.primary.node"}"#,
    printcolumn = r#"{"name":"SECONDARY-NODE","type":"string","jsonPath":".status.secondary.node"}"#,
    printcolumn = r#"{"name":"PRIMARY-STATE","type":"string","jsonPath":".status.primary.state"}"#,
    printcolumn = r#"{"name":"SECONDARY-STATE","type":"string","jsonPath":".status.secondary.state"}"#,
    printcolumn = r#"{"name":"AGE","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[x_kube(validation = Rule::new("!(has(self.split) && has(self.hba))").message("give split or hba, not both"))]
#[x_kube(validation = Rule::new("!has(self.mode) || self.mode != 'hotStandby' || (!has(self.split) && !has(self.hba))").message("mode hotStandby sets split 256; do not give split or hba with it"))]
#[serde(rename_all = "camelCase")]
pub struct FailoverPeerSpec {
    /// The primary server of the relationship.
    pub primary: PeerMember,
    /// The secondary server of the relationship (on another node than the primary).
    pub secondary: PeerMember,
    /// Maximum client lead time in seconds (draft-12 §5.2.1); the primary's setting.
    /// Default 3600.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub mclt: Option<u32>,
    /// ISC's split: hash buckets 0..split-1 (of 256) are the primary's. Default 128.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = 256))]
    pub split: Option<u16>,
    /// The hash bucket assignment as 32 hex bytes (RFC 3074), instead of split.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([0-9a-fA-F]{2}[:-]?){31}[0-9a-fA-F]{2}$"))]
    pub hba: Option<String>,
    /// loadBalance (default, split 128 unless given) or hotStandby (split 256: the primary
    /// serves every client while both are up; the secondary answers a client only once it
    /// has been trying for longer than loadBalanceMaxSeconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<FailoverMode>,
    /// Seconds without a message before the link is down (default 20).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 3))]
    pub max_response_delay: Option<u32>,
    /// BNDUPDs the partner may have outstanding (default 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_unacked_updates: Option<u32>,
    /// Load balancing cut-off in seconds (ISC's load balance max seconds): while both servers
    /// are up, each answers only the clients the split gives it, until a client's `secs`
    /// exceeds this. 0 turns load balancing off and both servers answer every client.
    /// Default 3 (the low end of the 3 to 5 ISC recommends; ISC's own default, 0, would let
    /// both servers answer every client, and in hotStandby the secondary too).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_balance_max_seconds: Option<u32>,
    /// Seconds in COMMUNICATIONS-INTERRUPTED before PARTNER-DOWN on its own (0 = never).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_partner_down: Option<u32>,
    /// Interfaces the servers answer DHCP on (names on the node, e.g. eth1).
    #[schemars(length(min = 1))]
    pub interfaces: Vec<String>,
    /// Where the lease database lives. Default: hostPath /var/lib/dhcpair on the node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<Storage>,
    /// The dhcpair image; default: the operator's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Resources of the server container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Tolerations of the server pods (e.g. to run on control-plane nodes).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
}

/// How the two servers share the clients while both are up.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum FailoverMode {
    LoadBalance,
    HotStandby,
}

/// One server of a relationship: where it runs and where it listens for its partner.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[x_kube(validation = Rule::new("has(self.nodeName) != has(self.nodeSelector)").message("give exactly one of nodeName or nodeSelector"))]
#[serde(rename_all = "camelCase")]
pub struct PeerMember {
    /// The node the server runs on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_name: Option<String>,
    /// Labels that select exactly one node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_selector: Option<BTreeMap<String, String>>,
    /// The failover address; default: the node's InternalIP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<Ipv4Addr>,
    /// The failover TCP port (default 647).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub port: Option<u16>,
}

/// Lease storage: a directory on the node (default) or a PersistentVolumeClaim.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[x_kube(validation = Rule::new("!(has(self.hostPath) && has(self.volumeClaimTemplate))").message("give hostPath or volumeClaimTemplate, not both"))]
#[serde(rename_all = "camelCase")]
pub struct Storage {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_path: Option<HostPathStorage>,
    /// The spec of the claim of each server's StatefulSet (a local volume on the node).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_claim_template: Option<PersistentVolumeClaimSpec>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HostPathStorage {
    /// Absolute path on the node.
    #[schemars(regex(pattern = r"^/"))]
    pub path: String,
}

/// What the operator observed of a FailoverPeer.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FailoverPeerStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary: Option<RoleStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secondary: Option<RoleStatus>,
}

/// One side of a relationship as its server reports it (`/v1/status`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RoleStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// This server's failover state (e.g. NORMAL, COMMUNICATIONS-INTERRUPTED).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// The partner's state as this server last heard it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partner_state: Option<String>,
    /// RFC 3339 time of the last message from the partner.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_contact: Option<String>,
}

/// A pool of addresses served by a failover relationship.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "dhcpair.io",
    version = "v1alpha1",
    kind = "Pool",
    namespaced,
    status = "PoolStatus",
    shortname = "dpool",
    category = "dhcpair",
    printcolumn = r#"{"name":"SUBNET","type":"string","jsonPath":".spec.subnet"}"#,
    printcolumn = r#"{"name":"PEER","type":"string","jsonPath":".spec.failoverPeerRef"}"#,
    printcolumn = r#"{"name":"FREE","type":"integer","jsonPath":".status.free"}"#,
    printcolumn = r#"{"name":"BACKUP","type":"integer","jsonPath":".status.backup"}"#,
    printcolumn = r#"{"name":"ACTIVE","type":"integer","jsonPath":".status.active"}"#,
    printcolumn = r#"{"name":"AGE","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct PoolSpec {
    /// The FailoverPeer (same namespace) whose servers serve this pool.
    #[schemars(length(min = 1))]
    pub failover_peer_ref: String,
    /// The IPv4 subnet in CIDR form, e.g. 192.0.2.0/24.
    #[schemars(regex(pattern = r"^([0-9]{1,3}\.){3}[0-9]{1,3}/[0-9]{1,2}$"))]
    pub subnet: String,
    /// Dynamic ranges (inclusive), inside the subnet.
    #[serde(default)]
    #[schemars(length(max = 256))]
    pub ranges: Vec<AddressRange>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<DhcpOptions>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub default_lease_time: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_lease_time: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_lease_time: Option<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 4096))]
    pub reservations: Vec<Reservation>,
    /// ISC permit lists.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow: Vec<Permit>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deny: Vec<Permit>,
    /// Pools with the same value share one link (ISC's shared-network).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shared_network: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AddressRange {
    pub start: Ipv4Addr,
    pub end: Ipv4Addr,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(validation = Rule::new("has(self.hardwareAddress) != has(self.clientId)").message("give exactly one of hardwareAddress or clientId"))]
#[serde(rename_all = "camelCase")]
pub struct Reservation {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([0-9a-fA-F]{2}[:-]){5}[0-9a-fA-F]{2}$"))]
    pub hardware_address: Option<String>,
    /// Option 61 as hex bytes, e.g. 01:52:54:00:12:34:56.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// The fixed address. Without one this is a host entry (as ISC's `host` without
    /// `fixed-address`): the client is known to `allow/deny knownClients` and gets its
    /// options and hostname from a dynamic address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_address: Option<Ipv4Addr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<DhcpOptions>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Permit {
    KnownClients,
    UnknownClients,
    DynamicBootpClients,
}

/// DHCP options of one scope (the server's `OptionValues`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DhcpOptions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet_mask: Option<Ipv4Addr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routers: Option<Vec<Ipv4Addr>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain_name_servers: Option<Vec<Ipv4Addr>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub broadcast_address: Option<Ipv4Addr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ntp_servers: Option<Vec<Ipv4Addr>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain_search: Option<Vec<String>>,
    /// Any other option, by code.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub custom: Vec<CustomOption>,
}

/// An option by code with exactly one value.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
// No CEL rule for "exactly one value": under reservations[] its estimated cost exceeds the
// apiserver's budget (measured). The server's parser checks it; render reports NodeConfigRejected.
#[serde(rename_all = "camelCase")]
pub struct CustomOption {
    #[schemars(range(min = 1, max = 254))]
    pub code: u8,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<Ipv4Addr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ips: Option<Vec<Ipv4Addr>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub u8: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub u16: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub u32: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bool: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hex: Option<String>,
}

/// What the operator observed of a Pool.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PoolStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Free addresses (the primary's view, else the secondary's), for the printer column.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub free: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active: Option<u64>,
    /// The counts as each server reports them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub servers: Vec<PoolServerStatus>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PoolServerStatus {
    pub node: String,
    /// primary or secondary.
    pub role: String,
    pub total: u64,
    pub free: u64,
    pub backup: u64,
    pub active: u64,
}
