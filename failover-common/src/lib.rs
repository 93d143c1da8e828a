//! Everything the data plane and the controller must agree on: map and program names, the
//! layout of every map key and value, stable numeric codes, and the pure functions both sides
//! run. `#![no_std]` so the same code is compiled for BPF and unit-tested on the host.
#![no_std]

#[cfg(test)]
extern crate std;

pub mod bench;
pub mod checksum;
pub mod classify;
pub mod limits;
pub mod names;
pub mod nat;
pub mod reset;
pub mod verdict;
