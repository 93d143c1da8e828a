//! Parts 2 and 3: forwarding throughput of the chain, per router variant and flow count. The
//! variants take turns round by round (not one after another), so slow drift of a shared VM
//! spreads over all of them instead of favouring one.

use std::time::Duration;

use anyhow::Result;

use crate::chain::{self, Chain};
use crate::machine;
use crate::options::{Options, RouterKind};
use crate::routers::{self, Prepared, Router};
use crate::stats::{Summary, ratio};
use crate::traffic::{Traffic, Until};

/// Warm-up before each timed burst: long enough for every flow to be seen once (conntrack
/// entries exist, caches are warm), bounded for flow counts a variant cannot keep up with.
const WARM_UP_MIN: Duration = Duration::from_millis(200);
const WARM_UP_MAX: Duration = Duration::from_secs(2);

/// One variant at one flow count.
pub struct Measurement {
    pub router: RouterKind,
    pub flows: u32,
    pub outcome: Outcome,
}

pub enum Outcome {
    Measured(Throughput),
    /// The variant cannot run here (the reason says why).
    Unavailable(String),
    /// A round failed; the error.
    Failed(String),
}

pub struct Throughput {
    pub mpps: Summary,
    pub ns_per_packet: Summary,
    /// Delivered / generated frames, per round.
    pub delivered: Summary,
    pub busy_rounds: usize,
}

/// One timed round.
struct Sample {
    mpps: f64,
    ns_per_packet: f64,
    delivered: f64,
    quiet: bool,
}

/// The results, or why the whole part was skipped.
pub enum ChainReport {
    Skipped(String),
    Done {
        measurements: Vec<Measurement>,
        conntrack_max: Option<u64>,
    },
}

pub fn run(options: &Options) -> Result<ChainReport> {
    let chain = match Chain::build() {
        Ok(chain) => chain,
        Err(e) => {
            return Ok(ChainReport::Skipped(format!(
                "building the veth chain failed: {e:#}"
            )));
        }
    };
    let mut traffic = match Traffic::new() {
        Ok(traffic) => traffic,
        Err(e) => {
            return Ok(ChainReport::Skipped(format!(
                "setting up the generator and the sink failed: {e:#}"
            )));
        }
    };
    if let Some(reason) = traffic.live_frames_missing()? {
        return Ok(ChainReport::Skipped(reason));
    }
    let mut variants = Vec::new();
    for &kind in &options.router {
        variants.push((kind, routers::prepare(kind)?));
    }
    let mut measurements = Vec::new();
    for &flows in &options.flows {
        traffic.set_flows(flows, options.spread)?;
        let mut samples: Vec<Result<Vec<Sample>, String>> =
            variants.iter().map(|_| Ok(Vec::new())).collect();
        for round in 1..=options.rounds {
            for ((kind, prepared), rounds) in variants.iter_mut().zip(&mut samples) {
                let (Prepared::Ready(router), Ok(done)) = (prepared, &mut *rounds) else {
                    continue;
                };
                eprintln!(
                    "bench: chain, {flows} flows, round {round}/{}, {}",
                    options.rounds,
                    kind.label()
                );
                match round_of(router, &traffic, flows, options) {
                    Ok(sample) => done.push(sample),
                    Err(e) if failover_tests::interrupt::check().is_err() => return Err(e),
                    Err(e) => *rounds = Err(format!("{e:#}")),
                }
            }
        }
        for ((kind, prepared), rounds) in variants.iter().zip(samples) {
            let outcome = match (prepared, rounds) {
                (Prepared::Unavailable(reason), _) => Outcome::Unavailable(reason.clone()),
                (_, Err(e)) => Outcome::Failed(e),
                (_, Ok(rounds)) => Outcome::Measured(summarise(&rounds)),
            };
            measurements.push(Measurement {
                router: *kind,
                flows,
                outcome,
            });
        }
    }
    let conntrack_max = chain::conntrack_max();
    // Detach and unload the programs before their namespaces go, in this order.
    drop(variants);
    drop(traffic);
    drop(chain);
    Ok(ChainReport::Done {
        measurements,
        conntrack_max,
    })
}

/// Waits for idle CPUs, puts the variant in place, warms up, times one burst, and takes the
/// variant out again (also when the burst failed).
fn round_of(
    router: &mut Router,
    traffic: &Traffic,
    flows: u32,
    options: &Options,
) -> Result<Sample> {
    let quiet = machine::wait_until_idle(options.idle_wait())?;
    router.install()?;
    let timed = timed_burst(traffic, flows, options);
    let removed = router.remove();
    let sample = timed?;
    removed?;
    Ok(Sample { quiet, ..sample })
}

fn timed_burst(traffic: &Traffic, flows: u32, options: &Options) -> Result<Sample> {
    traffic.run(Until {
        min: WARM_UP_MIN,
        frames: u64::from(flows),
        max: WARM_UP_MAX.max(options.round_time()),
    })?;
    let before = traffic.delivered()?;
    let burst = traffic.run(Until {
        min: options.round_time(),
        frames: 0,
        max: options.round_time() * 2,
    })?;
    let delivered = traffic.delivered()?.saturating_sub(before);
    anyhow::ensure!(
        delivered > 0,
        "none of {} frames reached the sink",
        burst.frames
    );
    let seconds = burst.elapsed.as_secs_f64();
    let per_second = ratio(delivered, 1) / seconds;
    Ok(Sample {
        mpps: per_second / 1e6,
        ns_per_packet: 1e9 / per_second,
        delivered: ratio(delivered, burst.frames),
        quiet: true,
    })
}

fn summarise(rounds: &[Sample]) -> Throughput {
    let pick = |f: fn(&Sample) -> f64| {
        Summary::of(&rounds.iter().map(f).collect::<Vec<_>>()).expect("at least one round")
    };
    Throughput {
        mpps: pick(|s| s.mpps),
        ns_per_packet: pick(|s| s.ns_per_packet),
        delivered: pick(|s| s.delivered),
        busy_rounds: rounds.iter().filter(|s| !s.quiet).count(),
    }
}
