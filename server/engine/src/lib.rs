//! The sans-IO DHCPv4 engine: lease table, address allocation and DHCP decisions.
//!
//! No sockets, no clock, no tokio: every input carries `now`, every output is an effect the
//! shell carries out (persist, then reply). Start at [`lease`] for the data model.

pub mod lease;

pub use lease::{BindingState, ClientKey, Lease, Time};
