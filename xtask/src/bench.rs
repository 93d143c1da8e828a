//! `cargo xtask bench ...`: benchmarks, not tests. Each one is an example of the tests crate,
//! built in release mode so the runner itself is optimized; its options are forwarded only
//! when given, so the defaults live in one place, the runner (`-- --help` lists them).

use std::os::unix::process::CommandExt as _;
use std::process::Command;

use anyhow::Context as _;

/// Benchmarks (method and reference figures: `/work/shared/BENCH_METHOD.md`).
#[derive(Debug, clap::Subcommand)]
pub enum BenchCommand {
    /// Data plane: per-packet program cost through `BPF_PROG_TEST_RUN` (minus an `XDP_DROP`
    /// reference), and forwarding throughput of a `gen ⇄ router ⇄ sink` veth chain on one
    /// core for each router variant and flow count. Needs root (says SKIPPED otherwise);
    /// takes about 3 minutes with the defaults.
    Dataplane {
        /// Print one JSON document on stdout instead of the table.
        #[arg(long)]
        json: bool,
        /// Router variants, comma-separated: linux, nft, xdp, nat [default: all].
        #[arg(long, value_name = "LIST")]
        router: Option<String>,
        /// Flow counts, comma-separated [default: 1,1000,100000,1000000].
        #[arg(long, value_name = "LIST")]
        flows: Option<String>,
        /// Addresses that flows beyond one address's 50 000 source ports vary: remote (more
        /// remotes per LAN host) or lan (more LAN endpoints; exhausts a NAT's ports beyond
        /// 64 Ki flows) [default: remote].
        #[arg(long, value_name = "remote|lan")]
        spread: Option<String>,
        /// Parts, comma-separated: cost, chain [default: both].
        #[arg(long, value_name = "LIST")]
        part: Option<String>,
        /// `BPF_PROG_TEST_RUN` repeat count per program and round [default: 10000000].
        #[arg(long)]
        repeat: Option<u32>,
        /// Rounds per measurement; the median is reported [default: 5].
        #[arg(long)]
        rounds: Option<u32>,
        /// Seconds of traffic per chain round [default: 2].
        #[arg(long)]
        seconds: Option<f64>,
        /// The CPU everything is pinned to [default: the last one].
        #[arg(long)]
        cpu: Option<u32>,
        /// Longest wait, in seconds, for idle CPUs before each round [default: 20].
        #[arg(long)]
        idle_wait: Option<f64>,
    },
    /// Failover: the LAN's outage (longest silence of a 10 ms UDP echo stream) when fiber
    /// fails by gateway-silent, upstream-cut and carrier-down, `--trials` times each with a
    /// fresh controller, and one failback time after a heal. Needs root (says SKIPPED
    /// otherwise); takes about 4 minutes with the defaults.
    Failover {
        /// Print one JSON document on stdout instead of the table.
        #[arg(long)]
        json: bool,
        /// Trials per fault [default: 10].
        #[arg(long)]
        trials: Option<u32>,
    },
    /// Flood: one LAN host opens 300 000 new UDP flows as fast as it can while another keeps
    /// a UDP stream and a download going and a third opens new flows, with the default
    /// `[limits]` and with them off. Reports the flood's rate and what the other hosts saw.
    /// Needs root (says SKIPPED otherwise); takes about 2 minutes with the defaults.
    Flood {
        /// Print one JSON document on stdout instead of the table.
        #[arg(long)]
        json: bool,
        /// Trials per setting [default: 3].
        #[arg(long)]
        trials: Option<u32>,
        /// New flows per flood [default: 300000].
        #[arg(long)]
        flows: Option<u32>,
    },
}

pub fn run(cmd: BenchCommand) -> anyhow::Result<()> {
    match cmd {
        BenchCommand::Failover { json, trials } => crate::bench_failover::run(json, trials),
        BenchCommand::Flood {
            json,
            trials,
            flows,
        } => run_flood(json, trials, flows),
        dataplane @ BenchCommand::Dataplane { .. } => run_dataplane(dataplane),
    }
}

fn run_flood(json: bool, trials: Option<u32>, flows: Option<u32>) -> anyhow::Result<()> {
    let mut args: Vec<String> = Vec::new();
    if json {
        args.push("--json".to_owned());
    }
    for (flag, value) in [("--trials", trials), ("--flows", flows)] {
        if let Some(value) = value {
            args.extend([flag.to_owned(), value.to_string()]);
        }
    }
    crate::failover_bin::exec_example("bench_flood", &args)
}

fn run_dataplane(cmd: BenchCommand) -> anyhow::Result<()> {
    let BenchCommand::Dataplane {
        json,
        router,
        flows,
        spread,
        part,
        repeat,
        rounds,
        seconds,
        cpu,
        idle_wait,
    } = cmd
    else {
        unreachable!("run dispatches only the dataplane bench here");
    };
    let mut args: Vec<String> = Vec::new();
    if json {
        args.push("--json".to_owned());
    }
    let given = [
        ("--router", router),
        ("--flows", flows),
        ("--spread", spread),
        ("--part", part),
        ("--repeat", repeat.map(|v| v.to_string())),
        ("--rounds", rounds.map(|v| v.to_string())),
        ("--seconds", seconds.map(|v| v.to_string())),
        ("--cpu", cpu.map(|v| v.to_string())),
        ("--idle-wait", idle_wait.map(|v| v.to_string())),
    ];
    for (flag, value) in given {
        if let Some(value) = value {
            args.extend([flag.to_owned(), value]);
        }
    }
    eprintln!(
        "bench: building and starting the runner (cargo run --release, example bench_dataplane)"
    );
    let mut command = Command::new(env!("CARGO"));
    command
        .args(["run", "--quiet", "--release", "-p", "failover-tests"])
        .args(["--example", "bench_dataplane", "--"])
        .args(&args);
    exec(&mut command)
}

/// Replaces this process with `command` (cargo in turn execs the runner), so Ctrl-C reaches
/// the runner alone and its guards can remove the namespaces before it exits.
pub fn exec(command: &mut Command) -> anyhow::Result<()> {
    Err(command.exec()).context("starting cargo")
}
