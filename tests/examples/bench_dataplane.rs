//! `cargo xtask bench dataplane`: a benchmark, not a test. Follows
//! `/work/shared/BENCH_METHOD.md`:
//!
//! 1. per-packet program cost through `BPF_PROG_TEST_RUN` (`XDP_DROP` reference, the bench's
//!    floor router, `fo_mac_swap`, `fo_lan_ingress`), reported minus the reference;
//! 2. forwarding throughput of a `gen ⇄ router ⇄ sink` veth chain on one core, with a
//!    live-frames XDP generator and a counting XDP sink, for each router variant
//!    (Linux forwarding, + nft masquerade, bare XDP redirect, the failover NAT);
//! 3. the same at several flow counts.
//!
//! Needs root; prints SKIPPED otherwise. Namespaces are named `fob-*` and removed on every
//! exit path, Ctrl-C included.

// A crate root looks for modules beside itself; these live in bench_dataplane/.
#[path = "bench_dataplane/chain.rs"]
mod chain;
#[path = "bench_dataplane/cost.rs"]
mod cost;
#[path = "bench_dataplane/forwarding.rs"]
mod forwarding;
#[path = "bench_dataplane/machine.rs"]
mod machine;
#[path = "bench_dataplane/options.rs"]
mod options;
#[path = "bench_dataplane/report.rs"]
mod report;
#[path = "bench_dataplane/routers.rs"]
mod routers;
#[path = "bench_dataplane/stats.rs"]
mod stats;
#[path = "bench_dataplane/traffic.rs"]
mod traffic;

use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Result, ensure};
use clap::Parser as _;
use failover_tests::privilege;

use crate::machine::Machine;
use crate::options::{Options, Part};
use crate::report::Report;

fn main() -> ExitCode {
    let options = Options::parse();
    match run(&options) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(options: &Options) -> Result<()> {
    options.validate()?;
    let started = Instant::now();
    let machine = Machine::detect()?;
    let cpu = options.cpu.unwrap_or(machine.cores - 1);
    ensure!(
        cpu < machine.cores,
        "--cpu {cpu}: this machine has {} CPUs",
        machine.cores
    );
    let root = privilege::is_root();
    if root {
        failover_tests::interrupt::install()?;
        // Threads and commands started from here on inherit the pinning.
        machine::pin_to_cpu(cpu)?;
    }
    let cost = part(options, Part::Cost, root, || cost::run(options))?;
    let chain = part(options, Part::Chain, root, || forwarding::run(options))?;
    let report = Report {
        options,
        machine,
        cpu,
        cost,
        chain,
        run_time: started.elapsed(),
    };
    if options.json {
        println!("{:#}", report.json());
    } else {
        print!("{}", report.table());
    }
    Ok(())
}

/// Runs `part` when it was asked for and the process is root; otherwise says why not.
fn part<T>(
    options: &Options,
    part: Part,
    root: bool,
    run: impl FnOnce() -> Result<T>,
) -> Result<report::Part<T>> {
    if !options.runs(part) {
        return Ok(report::Part::NotRequested);
    }
    if !root {
        return Ok(report::Part::Skipped(
            "needs root (BPF_PROG_TEST_RUN, XDP and network namespaces)".to_owned(),
        ));
    }
    run().map(report::Part::Done)
}
