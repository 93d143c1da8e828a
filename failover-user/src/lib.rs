//! The failover controller: loads the data plane and keeps its maps true.

pub mod attachments;
pub mod clock;
pub mod config;
pub mod control;
pub mod daemon;
pub mod datapath;
pub mod dataplane;
pub mod events;
pub mod flow_reset;
pub mod health;
pub mod interface_facts;
pub mod kernel_btf;
pub mod kernel_guard;
pub mod linkinfo;
pub mod loader;
pub mod metrics;
pub mod netlink;
pub mod nftables;
pub mod override_store;
pub mod pins;
pub mod policy;
pub mod probe;
#[cfg(test)]
mod sim;
