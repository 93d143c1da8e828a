//! Tier 2: data-plane programs, verified and loaded by the kernel, run on crafted frames through
//! `BPF_PROG_TEST_RUN`. Needs root; says SKIPPED otherwise.

mod classify;
mod differential;
mod forwards;
mod harness;
mod host_limits;
mod loader;
mod nat;
mod scratch_netns;
mod verifier;
