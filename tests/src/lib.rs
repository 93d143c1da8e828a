//! Test support for failover: the network lab (namespaces, links, faults), running code inside
//! a namespace, a frame builder for data-plane fixtures, the controller as a guarded process
//! (feature `daemon`, on for this crate's tests and examples) and an outage-measuring UDP
//! stream. Root-only test tiers live in `tests/tests/`; `cargo xtask lab` drives the same lab
//! by hand.

pub mod capture;
#[cfg(feature = "daemon")]
pub mod daemon;
pub mod flood;
pub mod frame;
pub mod http;
pub mod interrupt;
pub mod lab;
pub mod lan_server;
pub mod model;
pub mod netns;
pub mod privilege;
pub mod stream;
