//! The failover controller: loads the data plane and keeps its maps true.

pub mod clock;
pub mod config;
pub mod control;
pub mod daemon;
pub mod datapath;
pub mod dataplane;
pub mod dns_update;
// Loading, attaching and pinning live in `dataplane` (every use of aya is there); their
// paths at the crate root stay.
pub use dataplane::{attachments, loader, pins};
pub mod events;
pub mod flow_reset;
pub mod hairpin;
pub mod health;
pub mod interface_facts;
pub mod kernel_btf;
pub mod kernel_guard;
pub mod linkinfo;
pub mod metrics;
pub mod netlink;
pub mod nftables;
pub mod override_store;
pub mod policy;
pub mod probe;
#[cfg(test)]
mod sim;
