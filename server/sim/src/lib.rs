//! Deterministic simulation of a dhcpair failover pair (placeholder).
