//! Command-line options of the runner. `cargo xtask bench dataplane` forwards only the options
//! it was given, so every default lives here.

use std::time::Duration;

use anyhow::{Result, ensure};

/// Router variants in the middle of the forwarding chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum RouterKind {
    /// (a) Linux IPv4 forwarding alone.
    Linux,
    /// (b) Linux forwarding plus an nftables masquerade rule (conntrack + NAT).
    Nft,
    /// (c) A bare XDP program that swaps MACs and redirects through a devmap: the floor.
    Xdp,
    /// (d) The failover NAT data plane (`fo_lan_ingress`).
    Nat,
    /// (e) The same NAT on the TC path (`fo_lan_tc`), as interfaces without XDP get it.
    NatTc,
    /// (f) A bare TC program that swaps MACs and `bpf_redirect`s: the floor of any TC router.
    TcFloor,
}

impl RouterKind {
    /// Short key for JSON and the `--router` option.
    pub fn key(self) -> &'static str {
        match self {
            Self::Linux => "linux",
            Self::Nft => "nft",
            Self::Xdp => "xdp",
            Self::Nat => "nat",
            Self::NatTc => "nat-tc",
            Self::TcFloor => "tc-floor",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Self::Linux => "(a) Linux forwarding",
            Self::Nft => "(b) Linux fwd + nft masquerade",
            Self::Xdp => "(c) XDP swap+redirect (floor)",
            Self::Nat => "(d) failover NAT (XDP)",
            Self::NatTc => "(e) failover NAT (TC)",
            Self::TcFloor => "(f) TC swap+redirect (TC floor)",
        }
    }
}

/// Which addresses the flows spread over beyond the 50 000 source ports of one address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Spread {
    /// Destination addresses: one LAN host talking to ever more remotes, so a NAT's tables
    /// grow with the flows but its ports (64 Ki per uplink address) suffice.
    Remote,
    /// Source and destination addresses: every flow is a new LAN endpoint, so beyond 64 Ki
    /// flows an endpoint-independent NAT with one uplink address runs out of ports.
    Lan,
}

impl Spread {
    pub fn key(self) -> &'static str {
        match self {
            Self::Remote => "remote",
            Self::Lan => "lan",
        }
    }
}

/// The two parts of the benchmark.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Part {
    /// Per-packet program cost through `BPF_PROG_TEST_RUN`.
    Cost,
    /// Forwarding throughput in the veth chain, per router variant and flow count.
    Chain,
}

/// Data-plane benchmark: per-packet program cost (`BPF_PROG_TEST_RUN`) and forwarding throughput
/// of a `gen ⇄ router ⇄ sink` veth chain on one core. Needs root. Method:
/// `/work/shared/BENCH_METHOD.md`.
#[derive(Debug, clap::Parser)]
pub struct Options {
    /// Print one JSON document on stdout instead of the table (progress goes to stderr).
    #[arg(long)]
    pub json: bool,
    /// Router variants to measure, comma-separated.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "linux,nft,xdp,nat,nat-tc,tc-floor"
    )]
    pub router: Vec<RouterKind>,
    /// Flow counts for the chain, comma-separated (the source port varies, then addresses).
    #[arg(long, value_delimiter = ',', default_value = "1,1000,100000,1000000")]
    pub flows: Vec<u32>,
    /// Which addresses flows beyond one address's 50 000 source ports vary.
    #[arg(long, value_enum, default_value = "remote")]
    pub spread: Spread,
    /// Parts to run, comma-separated.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "cost,chain")]
    pub part: Vec<Part>,
    /// `BPF_PROG_TEST_RUN` repeat count per program and round.
    #[arg(long, default_value_t = 10_000_000)]
    pub repeat: u32,
    /// Rounds per measurement; the median is reported.
    #[arg(long, default_value_t = 5)]
    pub rounds: usize,
    /// Seconds of traffic per chain round.
    #[arg(long, default_value_t = 2.0)]
    pub seconds: f64,
    /// The one CPU everything runs on [default: the last online CPU].
    #[arg(long)]
    pub cpu: Option<usize>,
    /// Longest wait, in seconds, for all CPUs to be idle before a round (then it runs anyway
    /// and the report says so).
    #[arg(long, default_value_t = 20.0)]
    pub idle_wait: f64,
}

/// Flows the generator can make: 100 addresses of 50 000 source ports each.
pub const MAX_FLOWS: u32 = 5_000_000;

impl Options {
    pub fn validate(&self) -> Result<()> {
        ensure!(self.rounds >= 1, "--rounds must be at least 1");
        ensure!(self.repeat >= 1, "--repeat must be at least 1");
        ensure!(
            self.seconds.is_finite() && self.seconds >= 0.1,
            "--seconds must be at least 0.1"
        );
        ensure!(
            self.idle_wait.is_finite() && self.idle_wait >= 0.0,
            "--idle-wait must be a number of seconds"
        );
        ensure!(
            self.flows.iter().all(|&f| (1..=MAX_FLOWS).contains(&f)),
            "--flows must be between 1 and {MAX_FLOWS}"
        );
        Ok(())
    }

    pub fn round_time(&self) -> Duration {
        Duration::from_secs_f64(self.seconds)
    }

    pub fn idle_wait(&self) -> Duration {
        Duration::from_secs_f64(self.idle_wait)
    }

    pub fn runs(&self, part: Part) -> bool {
        self.part.contains(&part)
    }
}
