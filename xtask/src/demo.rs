//! `cargo xtask demo`: the whole product in one command. The demo itself is the tests crate's
//! example `demo` (it drives the lab and the controller, which this crate cannot link before
//! the eBPF toolchain is installed); this builds the `failover` binary and hands over to it.

pub fn run() -> anyhow::Result<()> {
    crate::failover_bin::exec_example("demo", &[])
}
