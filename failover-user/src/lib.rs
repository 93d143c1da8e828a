//! The failover controller: loads the data plane and keeps its maps true.

pub mod clock;
pub mod config;
pub mod dataplane;
pub mod events;
pub mod flow_reset;
pub mod loader;
pub mod netlink;
pub mod probe;
