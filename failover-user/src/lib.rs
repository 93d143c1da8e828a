//! The failover controller: loads the data plane and keeps its maps true.

pub mod dataplane;
