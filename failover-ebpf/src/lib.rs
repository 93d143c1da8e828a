//! The failover data plane. The programs live in the `failover` binary target (`src/main.rs`);
//! this empty library only lets user space list the crate as a build dependency.
#![no_std]
