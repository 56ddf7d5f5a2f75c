//! `dhcpair-operator`: the Kubernetes side of dhcpair. The CRDs ([`api`]) and the pure
//! rendering of every node's server config, ConfigMap and StatefulSet ([`render`]), the pure
//! status bookkeeping ([`status`]), the pure one-node-at-a-time rollout decision ([`rollout`]),
//! leader election over a Lease ([`leader`], its decision pure) and the kube-rs shell that
//! runs them ([`controller`]).
//!
//! Nothing in [`render`] talks to an API server: spec in, objects out, tested with golden
//! files and with the server's own config parser. This crate must never be a dependency of the
//! server crates. Start reading at [`render::render`].

pub mod api;
pub mod controller;
pub mod crdgen;
pub mod input;
pub mod leader;
pub mod render;
pub mod rollout;
pub mod status;
