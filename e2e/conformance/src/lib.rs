//! A differential conformance harness: the same hand-built DHCPv4 packets go to dhcpair, Kea
//! and ISC dhcpd, each on its own veth between two network namespaces, and their replies are
//! compared field by field. Where both oracles agree and dhcpair differs, the scenario fails,
//! unless `divergences::INTENDED` says dhcpair differs on purpose.
//!
//! Read in this order: `scenario` (what a scenario is), `scenarios` (the catalogue), `lane`
//! (one server on its link), `compare` (fields and verdicts), `runner` (the whole run).

pub mod adapters;
pub mod compare;
pub mod divergences;
pub mod lane;
pub mod link;
pub mod packet;
pub mod property;
pub mod runner;
pub mod scenario;
pub mod scenarios;
pub mod spec;
