//! Developer and operator tasks for failover: `cargo xtask <task>`.
//!
//! Builds with rustup stable alone, so it can install everything else the project needs.

mod bench;
mod bench_failover;
mod demo;
mod failover_bin;
mod lab_cmd;
mod setup;
mod test_tiers;

use clap::{Parser, Subcommand};

/// Developer and operator tasks for the failover router.
#[derive(Parser)]
#[command(name = "cargo xtask", version, about)]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Check for and install what the build and the tests need (Debian packages, the eBPF
    /// toolchain, bpf-linker). Idempotent; fast when everything is present.
    Setup,
    /// Run every test tier: host unit tests, data-plane tests through `BPF_PROG_TEST_RUN`, and
    /// end-to-end tests in the network lab. Root-only tiers say SKIPPED when not root.
    Test,
    /// Build, test and drive the network lab (namespaces, ISPs, faults).
    #[command(subcommand)]
    Lab(lab_cmd::LabCommand),
    /// Bring up the lab, show LAN traffic leaving through each ISP and the faults at work,
    /// then tear everything down.
    Demo,
    /// Benchmarks (not tests): the data plane's per-packet cost and forwarding throughput, and
    /// the LAN's outage when an uplink fails.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().task {
        Task::Setup => setup::ensure(setup::Mode::Report),
        Task::Test => {
            setup::ensure(setup::Mode::Quiet)?;
            test_tiers::run_all()
        }
        Task::Lab(cmd) => lab_cmd::run(cmd),
        Task::Demo => {
            setup::ensure(setup::Mode::Quiet)?;
            demo::run()
        }
        Task::Bench(cmd) => {
            setup::ensure(setup::Mode::Quiet)?;
            bench::run(cmd)
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        super::Cli::command().debug_assert();
    }
}
