//! Test support for failover: the network lab (namespaces, links, faults), running code inside
//! a namespace, and a frame builder for data-plane fixtures. Root-only test tiers live in
//! `tests/tests/`; `cargo xtask lab` drives the same lab by hand.

pub mod frame;
pub mod lab;
pub mod model;
pub mod netns;
pub mod privilege;
