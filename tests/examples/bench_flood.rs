//! `cargo xtask bench flood`: a benchmark, not a test. One LAN host (`fo-host2`) opens
//! `--flows` new UDP flows as fast as it can, half from new source ports, while `fo-host1`
//! keeps a UDP echo stream (every 10 ms) and a 1 MiB download at 128 KiB/s going and a third
//! address on `fo-host1` opens new flows throughout. Run side by side with the default
//! `[limits]` and with the limits off, `--trials` times each, each with a fresh controller.
//! Reported: the flood's rate, the bystander's longest silence and losses, whether its
//! download arrived intact, and how many of the third host's new flows got out.
//!
//! Needs root; prints SKIPPED otherwise. The daemon and the lab are removed on every exit
//! path, Ctrl-C included.

use std::{net::Ipv4Addr, process::ExitCode, time::Duration};

use anyhow::{Context as _, Result};
use clap::Parser;
use failover_tests::{
    daemon::DaemonGuard,
    flood::{self, ExtraAddress, Outcome},
    lab::{Isp, LabGuard, Plan},
    privilege, stream,
};

const THIRD: Ipv4Addr = Ipv4Addr::new(10, 10, 0, 13);
const LIMITS_OFF: &str = "\n[limits]\nflows_per_host = 0\nports_per_host = 0\n";

/// A flood from one LAN host, with and without the per-host limits.
#[derive(Parser, Debug)]
#[command(name = "bench_flood")]
struct Options {
    /// Print one JSON document on stdout instead of the table.
    #[arg(long)]
    json: bool,
    /// Trials per setting.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    trials: u32,
    /// New flows the flooder opens per trial (the first half from new source ports).
    #[arg(long, default_value_t = 300_000, value_parser = clap::value_parser!(u32).range(2..))]
    flows: u32,
}

struct Setting {
    name: &'static str,
    extra_config: &'static str,
    outcomes: Vec<Outcome>,
}

fn main() -> ExitCode {
    let options = Options::parse();
    privilege::run_as_root("bench flood", || run(&options).map(|()| true))
}

fn run(options: &Options) -> Result<()> {
    failover_tests::interrupt::install()?;
    failover_tests::daemon::binary()?;
    let _lab = LabGuard::up()?;
    let _third = ExtraAddress::add(Plan::NS_HOST1, Plan::HOST1.name, THIRD, 24)?;
    let mut settings = [
        Setting {
            name: "limits on (defaults)",
            extra_config: "",
            outcomes: Vec::new(),
        },
        Setting {
            name: "limits off",
            extra_config: LIMITS_OFF,
            outcomes: Vec::new(),
        },
    ];
    // Interleaved, so both settings see the same machine load over the run.
    for trial in 1..=options.trials {
        for setting in &mut settings {
            failover_tests::interrupt::check()?;
            let outcome = trial_outcome(setting.extra_config, options.flows)
                .with_context(|| format!("{}, trial {trial}", setting.name))?;
            eprintln!("bench: {}, trial {trial}: {outcome}", setting.name);
            setting.outcomes.push(outcome);
        }
    }
    if options.json {
        println!("{}", json(options, &settings));
    } else {
        print!("{}", table(options, &settings));
    }
    Ok(())
}

fn trial_outcome(extra_config: &str, flows: u32) -> Result<Outcome> {
    let _daemon = DaemonGuard::start_with(extra_config)?;
    stream::wait_for_uplink(Plan::NS_HOST1, Isp::Fiber, Duration::from_secs(20))?;
    flood::run(
        Plan::NS_HOST1,
        (Plan::NS_HOST2, Plan::HOST2.ip()),
        THIRD,
        flows,
        flows / 2,
    )
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len().is_multiple_of(2) {
        f64::midpoint(values[mid - 1], values[mid])
    } else {
        values[mid]
    }
}

/// Medians of one setting's trials: flood rate (flows/s), bystander's longest silence (ms),
/// its lost echoes (%), intact downloads, third host's new flows answered (%).
fn summary(outcomes: &[Outcome]) -> (f64, f64, f64, usize, f64) {
    let of = |f: &dyn Fn(&Outcome) -> f64| median(outcomes.iter().map(f).collect());
    #[expect(clippy::cast_precision_loss, reason = "counts of a few thousand")]
    let lost = |o: &Outcome| {
        100.0 * (o.stream_sent as f64 - o.stream_echoed as f64) / (o.stream_sent.max(1) as f64)
    };
    let answered =
        |o: &Outcome| 100.0 * f64::from(o.third.answered) / f64::from(o.third.tried.max(1));
    (
        of(&|o| o.flood.rate()),
        of(&|o| o.stream_gap.as_secs_f64() * 1000.0),
        of(&lost),
        outcomes.iter().filter(|o| o.download_intact).count(),
        of(&answered),
    )
}

fn table(options: &Options, settings: &[Setting]) -> String {
    use std::fmt::Write as _;
    let mut out = format!(
        "flood: {} new UDP flows from {} as fast as it can (half from new source ports); \
         {} keeps a 10 ms UDP echo stream and a 1 MiB download going, a third host opens new \
         flows; medians of {} trials\n\n{:<22}{:>14}{:>16}{:>12}{:>12}{:>16}\n",
        options.flows,
        Plan::HOST2.ip(),
        Plan::HOST1.ip(),
        options.trials,
        "setting",
        "flood flows/s",
        "bystander gap",
        "echo loss",
        "download",
        "third host ok"
    );
    for s in settings {
        let (rate, gap, lost, intact, answered) = summary(&s.outcomes);
        let _ = writeln!(
            out,
            "{:<22}{:>14.0}{:>13.0} ms{:>11.1}%{:>8}/{:<3}{:>15.1}%",
            s.name,
            rate,
            gap,
            lost,
            intact,
            s.outcomes.len(),
            answered
        );
    }
    out
}

fn json(options: &Options, settings: &[Setting]) -> String {
    let rows: Vec<serde_json::Value> = settings
        .iter()
        .map(|s| {
            let (rate, gap, lost, intact, answered) = summary(&s.outcomes);
            serde_json::json!({
                "setting": s.name,
                "flood_flows_per_s": rate,
                "bystander_longest_silence_ms": gap,
                "bystander_echo_loss_percent": lost,
                "downloads_intact": intact,
                "trials": s.outcomes.len(),
                "third_host_new_flows_answered_percent": answered,
            })
        })
        .collect();
    serde_json::json!({
        "bench": "flood",
        "flows": options.flows,
        "trials": options.trials,
        "settings": rows,
    })
    .to_string()
}
