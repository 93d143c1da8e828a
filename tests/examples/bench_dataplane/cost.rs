//! Part 1: per-packet program cost. Each program runs on one 60-byte UDP frame through
//! `BPF_PROG_TEST_RUN`, and the kernel reports the mean time per run. The `XDP_DROP`
//! reference measures the harness itself; programs are reported against it, per round.
//!
//! Two modes. With a large `repeat` the kernel runs the program again and again on the same
//! buffer, which suits programs whose output is a valid input again (MAC swaps). The NAT
//! rewrites its input (from the second run on it would see its own translated output), so it
//! is timed with fresh frames: many calls of `repeat = 1`, each on a new copy of the frame,
//! averaging the per-run time the kernel reports; the reference is timed the same way.

use anyhow::{Context, Result};
use aya::{
    Ebpf, EbpfLoader,
    programs::{TestRun as _, TestRunOptions},
};
use failover_common::{bench, names, nat};
use failover_user::dataplane;

use crate::machine;
use crate::options::Options;
use crate::stats::Summary;
use crate::{chain, routers, traffic};

const LOOPBACK_IFINDEX: u32 = 1;

/// Which object a program comes from.
#[derive(Clone, Copy)]
enum Object {
    Bench,
    Dataplane,
}

/// How a program is timed (see the module comment).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Repeat,
    FreshFrames,
}

/// Calls of `repeat = 1` per round in [`Mode::FreshFrames`].
pub const FRESH_CALLS: u32 = 100_000;

/// A program to time, with what it does today.
struct Case {
    program: &'static str,
    object: Object,
    mode: Mode,
    what: &'static str,
}

/// Each mode's reference comes first; the others are reported minus their mode's reference.
const CASES: &[Case] = &[
    Case {
        program: bench::PROG_DROP,
        object: Object::Bench,
        mode: Mode::Repeat,
        what: "reference: XDP_DROP only (harness overhead)",
    },
    Case {
        program: bench::PROG_SWAP_REDIRECT,
        object: Object::Bench,
        mode: Mode::Repeat,
        what: "chain floor: swap MACs + devmap redirect",
    },
    Case {
        program: names::PROG_MAC_SWAP,
        object: Object::Dataplane,
        mode: Mode::Repeat,
        what: "swap MACs + XDP_TX",
    },
    Case {
        program: bench::PROG_DROP,
        object: Object::Bench,
        mode: Mode::FreshFrames,
        what: "reference, fresh frames: XDP_DROP only",
    },
    Case {
        program: bench::PROG_SWAP_REDIRECT,
        object: Object::Bench,
        mode: Mode::FreshFrames,
        what: "chain floor, fresh frames: swap MACs + devmap redirect",
    },
    // The maps are set as in the chain's NAT variant: the first run creates the flow, every
    // other run takes the conntrack-hit path (SNAT, checksums, TTL, MACs, devmap redirect).
    Case {
        program: names::PROG_LAN_INGRESS,
        object: Object::Dataplane,
        mode: Mode::FreshFrames,
        what: "failover NAT, fresh frames: conntrack hit, SNAT + redirect",
    },
];

/// The result for one program.
pub struct Cost {
    pub program: &'static str,
    pub what: &'static str,
    pub outcome: std::result::Result<Timing, String>,
}

pub struct Timing {
    pub verdict: u32,
    /// Mean ns per run, per round.
    pub ns: Summary,
    /// ns per run minus the reference's in the same round; `None` for the reference.
    pub net_ns: Option<Summary>,
}

pub struct CostReport {
    pub costs: Vec<Cost>,
    /// Rounds that started while some CPU was busy.
    pub busy_rounds: usize,
    pub rounds: usize,
}

pub fn run(options: &Options) -> Result<CostReport> {
    let mut bench_object = EbpfLoader::new()
        .load(dataplane::BENCH_OBJECT)
        .context("loading the bench object")?;
    // test_run never transmits, but a filled devmap slot lets the floor program take its
    // redirect path rather than the miss path; loopback (index 1) exists everywhere.
    traffic::set_devmap(&mut bench_object, bench::MAP_ROUTER_TX, LOOPBACK_IFINDEX)?;
    let mut dataplane_object = dataplane::open(routers::BENCH_TABLES)
        .map_err(anyhow::Error::from)
        .and_then(|mut ebpf| {
            dataplane::set_uplink(&mut ebpf, 0, routers::nat_uplink(LOOPBACK_IFINDEX))?;
            dataplane::set_policy(&mut ebpf, nat::Policy::single(0))?;
            dataplane::set_lan(&mut ebpf, routers::nat_lan(LOOPBACK_IFINDEX))?;
            Ok(ebpf)
        })
        .map_err(|e| format!("{e:#}"));
    let frame = chain::template_frame();

    let mut samples: Vec<std::result::Result<Vec<(u32, f64)>, String>> =
        CASES.iter().map(|_| Ok(Vec::new())).collect();
    let mut busy_rounds = 0;
    for round in 1..=options.rounds {
        let quiet = machine::wait_until_idle(options.idle_wait())?;
        busy_rounds += usize::from(!quiet);
        eprintln!("bench: program cost, round {round}/{}", options.rounds);
        for (case, sample) in CASES.iter().zip(&mut samples) {
            let Ok(rounds) = sample else { continue };
            let ebpf = match (case.object, &mut dataplane_object) {
                (Object::Bench, _) => &mut bench_object,
                (Object::Dataplane, Ok(ebpf)) => ebpf,
                (Object::Dataplane, Err(e)) => {
                    *sample = Err(format!("the data plane object does not load: {e}"));
                    continue;
                }
            };
            let timed = match case.mode {
                Mode::Repeat => time(ebpf, case.program, &frame, options.repeat),
                Mode::FreshFrames => time_fresh(ebpf, case.program, &frame),
            };
            match timed {
                Ok(result) => rounds.push(result),
                Err(e) => *sample = Err(format!("{e:#}")),
            }
        }
    }
    Ok(CostReport {
        costs: summarise(&samples),
        busy_rounds,
        rounds: options.rounds,
    })
}

/// One timed run: (verdict, mean ns per run).
fn time(ebpf: &mut Ebpf, program: &'static str, frame: &[u8], repeat: u32) -> Result<(u32, f64)> {
    failover_tests::interrupt::check()?;
    let prog = dataplane::xdp_program(ebpf, program)?;
    let result = prog.test_run(TestRunOptions {
        data_in: Some(frame),
        repeat,
        ..TestRunOptions::default()
    })?;
    let ns = result.duration.as_secs_f64() * 1e9;
    Ok((result.return_value, ns))
}

/// Mean kernel-reported time of [`FRESH_CALLS`] single runs, each on a new copy of `frame`.
fn time_fresh(ebpf: &mut Ebpf, program: &'static str, frame: &[u8]) -> Result<(u32, f64)> {
    let mut total = 0.0;
    let mut verdict = 0;
    for _ in 0..FRESH_CALLS {
        let (v, ns) = time(ebpf, program, frame, 1)?;
        total += ns;
        verdict = v;
    }
    Ok((verdict, total / f64::from(FRESH_CALLS)))
}

fn summarise(samples: &[std::result::Result<Vec<(u32, f64)>, String>]) -> Vec<Cost> {
    let ns_of =
        |rounds: &Vec<(u32, f64)>| -> Vec<f64> { rounds.iter().map(|&(_, ns)| ns).collect() };
    // The reference of a mode is its first case.
    let reference = |mode: Mode| -> Option<(usize, Vec<f64>)> {
        let i = CASES.iter().position(|c| c.mode == mode)?;
        samples[i].as_ref().ok().map(|rounds| (i, ns_of(rounds)))
    };
    CASES
        .iter()
        .zip(samples)
        .enumerate()
        .map(|(i, (case, sample))| Cost {
            program: case.program,
            what: case.what,
            outcome: sample.clone().and_then(|rounds| {
                let ns = ns_of(&rounds);
                let net: Option<Vec<f64>> = reference(case.mode)
                    .filter(|(r, _)| *r != i)
                    .map(|(_, reference)| ns.iter().zip(&reference).map(|(p, r)| p - r).collect());
                Ok(Timing {
                    verdict: rounds.last().map_or(0, |&(verdict, _)| verdict),
                    ns: Summary::of(&ns).ok_or("no rounds")?,
                    net_ns: net.as_deref().and_then(Summary::of),
                })
            }),
        })
        .collect()
}

/// Name of an XDP verdict (`enum xdp_action`).
pub fn verdict_name(verdict: u32) -> &'static str {
    match verdict {
        0 => "XDP_ABORTED",
        1 => "XDP_DROP",
        2 => "XDP_PASS",
        3 => "XDP_TX",
        4 => "XDP_REDIRECT",
        _ => "unknown",
    }
}
