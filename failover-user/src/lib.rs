//! The failover controller: loads the data plane and keeps its maps true.

pub mod clock;
pub mod config;
pub mod dataplane;
pub mod health;
pub mod loader;
pub mod netlink;
pub mod override_store;
pub mod policy;
#[cfg(test)]
mod sim;
