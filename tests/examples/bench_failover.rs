//! `cargo xtask bench failover`: a benchmark, not a test. How long LAN traffic stops when
//! fiber fails, as a host sees it: a UDP echo stream from `fo-host1` (one datagram every
//! 10 ms) runs while a fault is injected at fiber, and the longest silence around the fault
//! is the outage. Each fault gets `--trials` trials, each with a fresh controller on default
//! settings (restarting it after the heal avoids waiting out the 30 s hold-down before the
//! next trial); then one failback after a heal is timed. The lab is built once.
//!
//! Needs root; prints SKIPPED otherwise. The daemon and the lab are removed on every exit
//! path, Ctrl-C included.

use std::process::ExitCode;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, ensure};
use clap::Parser;
use failover_tests::{
    daemon::DaemonGuard,
    lab::{self, Fault, Isp, LabGuard, Plan},
    privilege,
    stream::{self, EchoStream},
};

const HOST: &str = Plan::NS_HOST1;
const FAULTS: [Fault; 3] = [Fault::GatewaySilent, Fault::UpstreamCut, Fault::CarrierDown];
/// Far beyond any detection time: a trial that takes longer is broken, not slow.
const MOVE_TIMEOUT: Duration = Duration::from_secs(20);
const RESTART_NOTE: &str = "each trial starts a fresh controller (defaults) and stops it after \
                            the heal, so no trial waits out the 30 s hold-down";

/// Outage of LAN traffic on an uplink failure, per fault.
#[derive(Parser, Debug)]
#[command(name = "bench_failover")]
struct Options {
    /// Print one JSON document on stdout instead of the table.
    #[arg(long)]
    json: bool,
    /// Trials per fault.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    trials: u32,
}

/// The gaps measured for one fault, in milliseconds.
struct FaultResult {
    fault: Fault,
    gaps_ms: Vec<u64>,
}

impl FaultResult {
    fn sorted(&self) -> Vec<u64> {
        let mut gaps = self.gaps_ms.clone();
        gaps.sort_unstable();
        gaps
    }

    fn min(&self) -> u64 {
        self.sorted()[0]
    }

    fn max(&self) -> u64 {
        *self.sorted().last().expect("at least one trial")
    }

    fn median(&self) -> u64 {
        let gaps = self.sorted();
        let mid = gaps.len() / 2;
        if gaps.len().is_multiple_of(2) {
            u64::midpoint(gaps[mid - 1], gaps[mid])
        } else {
            gaps[mid]
        }
    }
}

fn main() -> ExitCode {
    let options = Options::parse();
    privilege::run_as_root("bench failover", || run(&options).map(|()| true))
}

fn run(options: &Options) -> Result<()> {
    failover_tests::interrupt::install()?;
    // Built (or found) before the lab, so a build does not count against anything.
    failover_tests::daemon::binary()?;
    let _lab = LabGuard::up()?;
    let mut results = Vec::new();
    for fault in FAULTS {
        let mut gaps_ms = Vec::new();
        for trial in 1..=options.trials {
            failover_tests::interrupt::check()?;
            let gap = trial_gap(fault).with_context(|| format!("{fault}, trial {trial}"))?;
            eprintln!("bench: {fault} trial {trial}: {} ms", gap.as_millis());
            gaps_ms.push(u64::try_from(gap.as_millis()).unwrap_or(u64::MAX));
        }
        results.push(FaultResult { fault, gaps_ms });
    }
    failover_tests::interrupt::check()?;
    let failback = failback_time().context("timing the failback")?;
    eprintln!("bench: failback {} ms after the heal", failback.as_millis());
    if options.json {
        println!("{}", json(options, &results, failback));
    } else {
        print!("{}", table(options, &results, failback));
    }
    Ok(())
}

/// One trial: fresh daemon, stream flowing through fiber, fault, moved to lte, heal, stop.
fn trial_gap(fault: Fault) -> Result<Duration> {
    let daemon = DaemonGuard::start()?;
    stream::wait_for_uplink(HOST, Isp::Fiber, MOVE_TIMEOUT)?;
    let mut echo = EchoStream::start(HOST)?;
    echo.wait_flowing(Duration::from_secs(5))?;
    thread::sleep(Duration::from_millis(500));
    let at = Instant::now();
    lab::fault(Isp::Fiber, fault)?;
    let moved = stream::wait_for_uplink(HOST, Isp::Lte, MOVE_TIMEOUT)
        .and_then(|_| echo.wait_flowing(Duration::from_secs(5)));
    thread::sleep(Duration::from_millis(500));
    echo.stop();
    let healed = lab::heal(Isp::Fiber);
    drop(daemon);
    moved?;
    healed?;
    // Let the healed link settle (carrier, ARP) before the next daemon describes it.
    thread::sleep(Duration::from_secs(1));
    Ok(echo.gap_around(at))
}

/// Fails fiber over (gateway silent), heals, and measures until new flows use fiber again.
fn failback_time() -> Result<Duration> {
    let _daemon = DaemonGuard::start()?;
    stream::wait_for_uplink(HOST, Isp::Fiber, MOVE_TIMEOUT)?;
    lab::fault(Isp::Fiber, Fault::GatewaySilent)?;
    let moved = stream::wait_for_uplink(HOST, Isp::Lte, MOVE_TIMEOUT);
    let healed_at = Instant::now();
    lab::heal(Isp::Fiber)?;
    moved?;
    let back = stream::wait_for_uplink(HOST, Isp::Fiber, Duration::from_mins(2))?;
    ensure!(back > healed_at, "back on fiber before the heal");
    Ok(back - healed_at)
}

fn table(options: &Options, results: &[FaultResult], failback: Duration) -> String {
    use std::fmt::Write as _;
    let mut out = format!(
        "failover: LAN outage per fault (UDP echo every 10 ms from {HOST}), {} trials each\n\
         ({RESTART_NOTE})\n\n{:<16}{:>10}{:>12}{:>10}\n",
        options.trials, "fault", "min ms", "median ms", "max ms"
    );
    for r in results {
        let _ = writeln!(
            out,
            "{:<16}{:>10}{:>12}{:>10}",
            r.fault.to_string(),
            r.min(),
            r.median(),
            r.max()
        );
    }
    let _ = writeln!(
        out,
        "\nfailback (gateway-silent healed -> new flows on fiber): {:.1} s (hold-down 30 s)",
        failback.as_secs_f64()
    );
    out
}

fn json(options: &Options, results: &[FaultResult], failback: Duration) -> String {
    let faults: Vec<serde_json::Value> = results
        .iter()
        .map(|r| {
            serde_json::json!({
                "fault": r.fault.to_string(),
                "gaps_ms": r.gaps_ms,
                "min_ms": r.min(),
                "median_ms": r.median(),
                "max_ms": r.max(),
            })
        })
        .collect();
    serde_json::json!({
        "bench": "failover",
        "trials": options.trials,
        "stream_interval_ms": stream::INTERVAL.as_millis(),
        "note": RESTART_NOTE,
        "faults": faults,
        "failback_ms": failback.as_millis(),
    })
    .to_string()
}
