//! Developer and operator tasks for failover: `cargo xtask <task>`.
//!
//! Builds with rustup stable alone, so it can install everything else the project needs.

mod bench;
mod bench_failover;
mod demo;
mod failover_bin;
mod install;
mod lab_cmd;
mod run_cmd;
mod setup;
mod test_tiers;

use std::path::PathBuf;

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
    /// The product in one command: the lab, the controller in its router, LAN traffic, the
    /// fiber gateway going silent, failover and failback live in the status table, the
    /// measured outage; then everything is torn down. Needs root; about a minute.
    Demo,
    /// Benchmarks (not tests): the data plane's per-packet cost and forwarding throughput, and
    /// the LAN's outage when an uplink fails.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// A soak, not part of CI: mixed TCP/UDP/ICMP traffic from every LAN host for MINUTES, a
    /// fault on fiber every 30 s cycling through every kind, a controller restart every 3
    /// minutes and a config reload every 5; then, after the NAT timeouts, checks for leaks
    /// at the ISPs, intact-or-reset downloads, flat controller memory and idle NAT tables.
    /// Needs root; takes MINUTES plus about 6.
    Soak {
        /// Minutes of traffic and faults.
        #[arg(long, default_value_t = 20, value_name = "MINUTES")]
        minutes: u32,
    },
    /// Build the release binary and install it as PREFIX/sbin/failover, with the systemd
    /// unit in /etc/systemd/system/ and, unless one exists, a config skeleton in
    /// /etc/failover/failover.toml.
    Install {
        /// Where the binary goes (PREFIX/sbin/failover).
        #[arg(long, default_value = install::DEFAULT_PREFIX, value_name = "PREFIX")]
        prefix: PathBuf,
        /// Print what would be installed, and change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Build the release binary and run the controller in the foreground with FILE, after
    /// checking it.
    Run {
        /// The config file.
        #[arg(short, long, value_name = "FILE", default_value = install::CONFIG_PATH)]
        config: PathBuf,
    },
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
        Task::Soak { minutes } => {
            setup::ensure(setup::Mode::Quiet)?;
            failover_bin::exec_example("soak", &["--minutes".to_owned(), minutes.to_string()])
        }
        Task::Install { prefix, dry_run } => install::run(&prefix, dry_run),
        Task::Run { config } => run_cmd::run(&config),
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
