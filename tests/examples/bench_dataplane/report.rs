//! The report: a table for people, or one JSON document for machines. Both state the machine
//! and that the figures are "veth, one core".

use std::fmt::Write as _;
use std::time::Duration;

use serde_json::{Value, json};

use crate::chain::FRAME_LEN;
use crate::cost::{CostReport, verdict_name};
use crate::forwarding::{ChainReport, Measurement, Outcome};
use crate::machine::{IDLE_THRESHOLD, Machine};
use crate::options::{Options, RouterKind};
use crate::stats::Summary;

pub const SETUP: &str = "veth, one core";

/// A part's result, or why it did not run.
pub enum Part<T> {
    NotRequested,
    Skipped(String),
    Done(T),
}

pub struct Report<'a> {
    pub options: &'a Options,
    pub machine: Machine,
    pub cpu: usize,
    pub cost: Part<CostReport>,
    pub chain: Part<ChainReport>,
    pub run_time: Duration,
}

impl Report<'_> {
    pub fn table(&self) -> String {
        let mut out = String::new();
        let o = self.options;
        let m = &self.machine;
        let _ = writeln!(
            out,
            "failover data-plane benchmark ({SETUP}: everything pinned to CPU {})",
            self.cpu
        );
        let _ = writeln!(
            out,
            "machine: {}, {} cores, kernel {}",
            m.cpu_model, m.cores, m.kernel
        );
        let _ = writeln!(out, "mitigations: {}", m.mitigations);
        let _ = writeln!(
            out,
            "method: BENCH_METHOD.md; {} rounds, median [min..max] and CV; {FRAME_LEN}-byte UDP frames; \
             flows spread over {} addresses",
            o.rounds,
            o.spread.key()
        );
        out.push('\n');
        self.cost_table(&mut out);
        out.push('\n');
        self.chain_table(&mut out);
        for note in self.notes() {
            let _ = writeln!(out, "note: {note}");
        }
        let _ = writeln!(out, "run time: {:.0} s", self.run_time.as_secs_f64());
        out
    }

    fn cost_table(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "1. Per-packet program cost: BPF_PROG_TEST_RUN, ns per run; stateless programs with \
             repeat {}, the NAT (which rewrites its input) and its references with {} fresh-frame calls",
            self.options.repeat,
            crate::cost::FRESH_CALLS
        );
        let report = match &self.cost {
            Part::NotRequested => return out.push_str("   not requested (--part)\n"),
            Part::Skipped(reason) => return writeln!(out, "   SKIPPED: {reason}").unwrap_or(()),
            Part::Done(report) => report,
        };
        let _ = writeln!(
            out,
            "   {:<15} {:<13} {:>26} {:>6} {:>17}  what",
            "program", "verdict", "ns/run median [min..max]", "CV", "- reference (ns)"
        );
        for cost in &report.costs {
            match &cost.outcome {
                Ok(t) => {
                    let net = t
                        .net_ns
                        .as_ref()
                        .map_or("-".to_owned(), |n| format!("{:.1}", n.median));
                    let _ = writeln!(
                        out,
                        "   {:<15} {:<13} {:>26} {:>5.1}% {:>17}  {}",
                        cost.program,
                        verdict_name(t.verdict),
                        spread(&t.ns, 1),
                        t.ns.cv_percent,
                        net,
                        cost.what
                    );
                }
                Err(e) => {
                    let _ = writeln!(out, "   {:<15} FAILED: {e}", cost.program);
                }
            }
        }
    }

    fn chain_table(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "2+3. Forwarding: gen [g0] <-> [r0] router [r1] <-> [s0] sink, live-frames generator, \
             {:.1} s per round, delivered packets at the sink",
            self.options.seconds
        );
        let measurements = match &self.chain {
            Part::NotRequested => return out.push_str("   not requested (--part)\n"),
            Part::Skipped(reason) => return writeln!(out, "   SKIPPED: {reason}").unwrap_or(()),
            Part::Done(ChainReport::Skipped(reason)) => {
                return writeln!(out, "   SKIPPED: {reason}").unwrap_or(());
            }
            Part::Done(ChainReport::Done { measurements, .. }) => measurements,
        };
        let _ = writeln!(
            out,
            "   {:<31} {:>8} {:>22} {:>6} {:>22} {:>9} {:>8} {:>7}",
            "router",
            "flows",
            "Mpps median [min..max]",
            "CV",
            "ns/pkt median [min..max]",
            "delivered",
            "x floor",
            "x masq"
        );
        for m in measurements {
            let _ = write!(out, "   {:<31} {:>8} ", m.router.label(), m.flows);
            let _ = match &m.outcome {
                Outcome::Measured(t) => writeln!(
                    out,
                    "{:>22} {:>5.1}% {:>22} {:>8.1}% {:>8} {:>7}",
                    spread(&t.mpps, 2),
                    t.mpps.cv_percent,
                    spread(&t.ns_per_packet, 0),
                    100.0 * t.delivered.median,
                    floor_ratio(measurements, m).map_or("-".to_owned(), |r| format!("{r:.2}")),
                    masquerade_ratio(measurements, m).map_or("-".to_owned(), |r| format!("{r:.2}"))
                ),
                Outcome::Unavailable(reason) => writeln!(out, "{reason}"),
                Outcome::Failed(e) => writeln!(out, "FAILED: {e}"),
            };
        }
    }

    /// Things a reader needs to interpret the figures.
    fn notes(&self) -> Vec<String> {
        let mut notes = Vec::new();
        let busy = |part: &str, busy: usize, of: usize| {
            (busy > 0).then(|| {
                format!(
                    "{part}: {busy} of {of} rounds started while some CPU was under {:.0}% idle \
                     (waited up to {:.0} s); expect more spread",
                    IDLE_THRESHOLD * 100.0,
                    self.options.idle_wait
                )
            })
        };
        if let Part::Done(report) = &self.cost {
            notes.extend(busy("program cost", report.busy_rounds, report.rounds));
        }
        if let Part::Done(ChainReport::Done {
            measurements,
            conntrack_max,
        }) = &self.chain
        {
            let (busy_rounds, rounds) = measurements
                .iter()
                .filter_map(|m| match &m.outcome {
                    Outcome::Measured(t) => Some((t.busy_rounds, t.mpps.rounds.len())),
                    _ => None,
                })
                .fold((0, 0), |(b, n), (tb, tn)| (b + tb, n + tn));
            notes.extend(busy("forwarding", busy_rounds, rounds));
            if let Some(max) = conntrack_max {
                let over: Vec<String> = measurements
                    .iter()
                    .filter(|m| m.router == RouterKind::Nft && u64::from(m.flows) > *max)
                    .map(|m| m.flows.to_string())
                    .collect();
                if !over.is_empty() {
                    notes.push(format!(
                        "nf_conntrack_max is {max} (a host-wide setting, left alone): with {} \
                         flows masquerade evicts and recreates entries, so most packets take \
                         conntrack's new-flow path",
                        over.join(", ")
                    ));
                }
            }
        }
        notes
    }

    pub fn json(&self) -> Value {
        let o = self.options;
        json!({
            "benchmark": "dataplane",
            "setup": SETUP,
            "machine": {
                "cpu_model": self.machine.cpu_model,
                "cores": self.machine.cores,
                "kernel": self.machine.kernel,
                "mitigations": self.machine.mitigations,
                "pinned_cpu": self.cpu,
            },
            "method": {
                "rounds": o.rounds,
                "repeat": o.repeat,
                "seconds_per_round": o.seconds,
                "frame_bytes": FRAME_LEN,
                "flow_spread": o.spread.key(),
                "idle_threshold": IDLE_THRESHOLD,
            },
            "program_cost": part_json(&self.cost, cost_json),
            "forwarding": part_json(&self.chain, chain_json),
            "notes": self.notes(),
            "run_time_s": self.run_time.as_secs_f64(),
        })
    }
}

fn part_json<T>(part: &Part<T>, done: fn(&T) -> Value) -> Value {
    match part {
        Part::NotRequested => json!({ "status": "not_requested" }),
        Part::Skipped(reason) => json!({ "status": "skipped", "reason": reason }),
        Part::Done(t) => done(t),
    }
}

fn cost_json(report: &CostReport) -> Value {
    let programs: Vec<Value> = report
        .costs
        .iter()
        .map(|cost| match &cost.outcome {
            Ok(t) => json!({
                "program": cost.program,
                "what": cost.what,
                "status": "ok",
                "verdict": verdict_name(t.verdict),
                "ns_per_run": t.ns.to_json(),
                "minus_reference_ns": t.net_ns.as_ref().map(Summary::to_json),
            }),
            Err(e) => json!({ "program": cost.program, "status": "failed", "error": e }),
        })
        .collect();
    json!({ "status": "ok", "busy_rounds": report.busy_rounds, "programs": programs })
}

fn chain_json(report: &ChainReport) -> Value {
    let (measurements, conntrack_max) = match report {
        ChainReport::Skipped(reason) => return json!({ "status": "skipped", "reason": reason }),
        ChainReport::Done {
            measurements,
            conntrack_max,
        } => (measurements, conntrack_max),
    };
    let results: Vec<Value> = measurements
        .iter()
        .map(|m| {
            let common =
                json!({ "router": m.router.key(), "label": m.router.label(), "flows": m.flows });
            let specific = match &m.outcome {
                Outcome::Measured(t) => json!({
                    "status": "ok",
                    "mpps": t.mpps.to_json(),
                    "ns_per_packet": t.ns_per_packet.to_json(),
                    "delivered_fraction": t.delivered.to_json(),
                    "busy_rounds": t.busy_rounds,
                    "ns_per_packet_vs_floor": floor_ratio(measurements, m),
                    "mpps_vs_masquerade": masquerade_ratio(measurements, m),
                }),
                Outcome::Unavailable(reason) => {
                    json!({ "status": "unavailable", "reason": reason })
                }
                Outcome::Failed(e) => json!({ "status": "failed", "error": e }),
            };
            merge(common, specific)
        })
        .collect();
    json!({ "status": "ok", "conntrack_max": conntrack_max, "results": results })
}

fn merge(mut a: Value, b: Value) -> Value {
    if let (Some(a), Value::Object(b)) = (a.as_object_mut(), b) {
        a.extend(b);
    }
    a
}

/// Median ns per packet of `m` over that of the XDP floor at the same flow count.
fn floor_ratio(all: &[Measurement], m: &Measurement) -> Option<f64> {
    let ns = |m: &Measurement| match &m.outcome {
        Outcome::Measured(t) => Some(t.ns_per_packet.median),
        _ => None,
    };
    let floor = all
        .iter()
        .find(|f| f.router == RouterKind::Xdp && f.flows == m.flows)
        .and_then(ns)?;
    Some(ns(m)? / floor)
}

/// Median Mpps of `m` over that of nftables masquerade at the same flow count.
fn masquerade_ratio(all: &[Measurement], m: &Measurement) -> Option<f64> {
    let mpps = |m: &Measurement| match &m.outcome {
        Outcome::Measured(t) => Some(t.mpps.median),
        _ => None,
    };
    let masquerade = all
        .iter()
        .find(|f| f.router == RouterKind::Nft && f.flows == m.flows)
        .and_then(mpps)?;
    Some(mpps(m)? / masquerade)
}

/// "median [min..max]" with `decimals` decimals.
fn spread(s: &Summary, decimals: usize) -> String {
    format!(
        "{:.d$} [{:.d$}..{:.d$}]",
        s.median,
        s.min,
        s.max,
        d = decimals
    )
}
