//! The daemon's metrics (`Request::Metrics`), rendered from a snapshot of its state.

use std::collections::BTreeMap;

use failover_common::verdict::{Reason, RedirectFailures, UplinkCounters};
use tokio::time::Instant;
use tracing::debug;

use super::{Daemon, slot_of, state_name};
use crate::{
    dataplane::FlowTable as _,
    health::{ProbeStatus, State, Stats},
    kernel_guard::GuardCounts,
    metrics::text::{Exposition, Type},
};

/// What the metrics say about one uplink.
pub(super) struct UplinkSnapshot {
    pub name: String,
    pub state: State,
    pub active: bool,
    pub stats: Stats,
    pub counters: UplinkCounters,
    /// `None` when the NAT table could not be read.
    pub nat_entries: Option<u64>,
    pub probes: Vec<ProbeStatus>,
    /// LAN packets on this uplink the leak guard masqueraded and dropped; `None` when its
    /// table could not be read.
    pub guard: Option<GuardCounts>,
    pub redirect_failures: RedirectFailures,
    pub blackhole: bool,
}

/// Everything the metrics say.
pub(super) struct Snapshot {
    pub uplinks: Vec<UplinkSnapshot>,
    /// Packets per data-plane verdict reason, in code order; `None` when unreadable.
    pub reasons: Option<Vec<u64>>,
    pub switches: u64,
    pub map_repairs: u64,
    /// Refused new flows per LAN host: (host, at the flow limit, at the port limit).
    pub refused_hosts: Vec<(String, u64, u64)>,
    /// The data path each interface can take: (interface, path).
    pub datapaths: Vec<(String, &'static str)>,
}

pub(super) fn snapshot(daemon: &Daemon, now: Instant) -> Snapshot {
    let dataplane = daemon.running.dataplane();
    let guard = daemon
        .running
        .guard_counters()
        .inspect_err(|e| debug!(error = %e, "metrics: reading the leak guard's counters"))
        .ok();
    // One walk of the NAT table, counted per uplink slot.
    let nat = dataplane
        .flows()
        .inspect_err(|e| debug!(error = %e, "metrics: reading the NAT table"))
        .ok()
        .map(|flows| {
            let mut per_slot = BTreeMap::<u32, u64>::new();
            for (_, flow) in flows {
                *per_slot.entry(flow.uplink).or_default() += 1;
            }
            per_slot
        });
    let uplinks = daemon
        .uplinks
        .iter()
        .enumerate()
        .map(|(index, managed)| {
            let status = daemon.health.status(index, now);
            UplinkSnapshot {
                name: managed.spec.name.clone(),
                state: status.state,
                active: index == daemon.active,
                stats: status.stats,
                counters: dataplane
                    .uplink_counters(slot_of(index))
                    .unwrap_or_default(),
                nat_entries: nat
                    .as_ref()
                    .map(|n| n.get(&slot_of(index)).copied().unwrap_or(0)),
                probes: daemon.health.probes(index, now),
                guard: guard
                    .as_deref()
                    .map(|g| GuardCounts::of(g, &managed.spec.interface)),
                redirect_failures: dataplane
                    .redirect_failures(slot_of(index))
                    .unwrap_or_default(),
                blackhole: daemon.watchdog.blackhole(index),
            }
        })
        .collect();
    Snapshot {
        uplinks,
        reasons: dataplane
            .reason_counts()
            .inspect_err(|e| debug!(error = %e, "metrics: reading the verdict reasons"))
            .ok(),
        switches: daemon.policy.switches(),
        map_repairs: daemon.watchdog.repairs,
        refused_hosts: daemon
            .host_limiter
            .refused
            .iter()
            .map(|(host, r)| (host.to_string(), r.flows, r.ports))
            .collect(),
        datapaths: daemon
            .config
            .lan
            .first()
            .map(|lan| (lan, daemon.lan_datapath.as_ref()))
            .into_iter()
            .chain(
                daemon
                    .uplinks
                    .iter()
                    .map(|u| (&u.spec.interface, u.datapath.as_ref())),
            )
            .filter_map(|(interface, choice)| Some((interface.clone(), choice?.path.name())))
            .collect(),
    }
}

/// The Prometheus text of a snapshot.
pub(super) fn render(snapshot: &Snapshot) -> String {
    let uplinks = &snapshot.uplinks;
    let mut text = Exposition::default();
    health(&mut text, uplinks);
    traffic(&mut text, uplinks);
    text.family(
        "failover_switches_total",
        Type::Counter,
        "Changes of the active uplink since the daemon started.",
    )
    .sample(&[], snapshot.switches);
    probes(&mut text, uplinks);
    leaks(&mut text, snapshot);
    watchdog(&mut text, snapshot);
    text.finish()
}

/// What the controller's checks of the data plane found.
fn watchdog(text: &mut Exposition, snapshot: &Snapshot) {
    let mut family = text.family(
        "failover_redirect_failures_total",
        Type::Counter,
        "Frames the data plane redirected that never left (empty devmap slot, or refused by \
         the kernel after the program), by uplink and direction.",
    );
    for u in &snapshot.uplinks {
        let failures = u.redirect_failures;
        family.sample(
            &[("uplink", &u.name), ("direction", "out")],
            failures.to_uplink,
        );
        family.sample(&[("uplink", &u.name), ("direction", "in")], failures.to_lan);
    }
    let mut family = text.family(
        "failover_uplink_blackhole",
        Type::Gauge,
        "1 while translated packets leave the uplink, nothing comes back and its probes answer.",
    );
    for u in &snapshot.uplinks {
        family.sample(&[("uplink", &u.name)], u64::from(u.blackhole));
    }
    text.family(
        "failover_dataplane_map_repairs_total",
        Type::Counter,
        "Times the data plane's maps differed from the controller's intent and were rewritten.",
    )
    .sample(&[], snapshot.map_repairs);
    let mut family = text.family(
        "failover_host_refused_flows_total",
        Type::Counter,
        "New flows of a LAN host dropped at its [limits], by host and limit (flows, ports).",
    );
    for (host, flows, ports) in &snapshot.refused_hosts {
        family.sample(&[("host", host), ("limit", "flows")], *flows);
        family.sample(&[("host", host), ("limit", "ports")], *ports);
    }
    let mut family = text.family(
        "failover_interface_datapath",
        Type::Gauge,
        "1 for the data path the interface's flows take (xdp, tc).",
    );
    for (interface, path) in &snapshot.datapaths {
        family.sample(&[("interface", interface), ("path", path)], 1);
    }
}

/// The data plane's verdicts and what the leak guard caught.
fn leaks(text: &mut Exposition, snapshot: &Snapshot) {
    if let Some(reasons) = &snapshot.reasons {
        let mut family = text.family(
            "failover_dataplane_packets_total",
            Type::Counter,
            "Packets the data plane handled, by verdict reason (see `failover_common::verdict`).",
        );
        for (reason, n) in Reason::ALL.iter().zip(reasons) {
            family.sample(&[("reason", reason.name())], *n);
        }
    }
    let mut family = text.family(
        "failover_leak_guard_packets_total",
        Type::Counter,
        "LAN packets the kernel would have sent out of the uplink untranslated: masqueraded \
         by the safety net (fragments, ESP, GRE, ...) or dropped.",
    );
    for u in &snapshot.uplinks {
        if let Some(g) = u.guard {
            family.sample(
                &[("uplink", &u.name), ("action", "masquerade")],
                g.masqueraded,
            );
            family.sample(&[("uplink", &u.name), ("action", "drop")], g.dropped);
        }
    }
}

/// State, active, RTT and loss.
fn health(text: &mut Exposition, uplinks: &[UplinkSnapshot]) {
    let mut family = text.family(
        "failover_uplink_state",
        Type::Gauge,
        "1 for the uplink's health state (up, degraded, down), 0 for the others.",
    );
    for u in uplinks {
        for state in [State::Up, State::Degraded, State::Down] {
            family.sample(
                &[("uplink", &u.name), ("state", state_name(state))],
                u.state == state,
            );
        }
    }
    let mut family = text.family(
        "failover_uplink_active",
        Type::Gauge,
        "1 for the uplink new flows take.",
    );
    for u in uplinks {
        family.sample(&[("uplink", &u.name)], u.active);
    }
    let mut family = text.family(
        "failover_uplink_rtt_seconds",
        Type::Gauge,
        "Median probe round-trip time over the window (absent before a reply).",
    );
    for u in uplinks {
        if let Some(rtt) = u.stats.median_rtt {
            family.sample(&[("uplink", &u.name)], rtt.as_secs_f64());
        }
    }
    let mut family = text.family(
        "failover_uplink_loss_ratio",
        Type::Gauge,
        "Share of the window's probes that were lost (0 to 1).",
    );
    for u in uplinks {
        #[expect(clippy::cast_precision_loss, reason = "window sizes are small")]
        let ratio = if u.stats.samples == 0 {
            0.0
        } else {
            u.stats.lost as f64 / u.stats.samples as f64
        };
        family.sample(&[("uplink", &u.name)], ratio);
    }
}

/// Bytes, packets and NAT entries.
fn traffic(text: &mut Exposition, uplinks: &[UplinkSnapshot]) {
    for (name, help, pick) in [
        (
            "failover_uplink_bytes_total",
            "Bytes the data plane forwarded through the uplink, by direction.",
            (|c: &UplinkCounters| (c.bytes_in, c.bytes_out)) as fn(&UplinkCounters) -> (u64, u64),
        ),
        (
            "failover_uplink_packets_total",
            "Packets the data plane forwarded through the uplink, by direction.",
            |c: &UplinkCounters| (c.packets_in, c.packets_out),
        ),
    ] {
        let mut family = text.family(name, Type::Counter, help);
        for u in uplinks {
            let (inbound, outbound) = pick(&u.counters);
            family.sample(&[("uplink", &u.name), ("direction", "in")], inbound);
            family.sample(&[("uplink", &u.name), ("direction", "out")], outbound);
        }
    }
    let mut family = text.family(
        "failover_nat_entries",
        Type::Gauge,
        "Flows in the NAT table pinned to the uplink.",
    );
    for u in uplinks {
        if let Some(n) = u.nat_entries {
            family.sample(&[("uplink", &u.name)], n);
        }
    }
}

/// Probe outcomes per kind: gateway ARP and ICMP, and far targets by their kind.
fn probes(text: &mut Exposition, uplinks: &[UplinkSnapshot]) {
    let mut family = text.family(
        "failover_probes_total",
        Type::Counter,
        "Probe outcomes since the daemon started, by uplink, kind and result.",
    );
    for u in uplinks {
        let mut per_kind = BTreeMap::<&str, (u64, u64)>::new();
        for p in &u.probes {
            let counts = per_kind.entry(p.probe.kind()).or_default();
            counts.0 += p.replies;
            counts.1 += p.losses;
        }
        for (kind, (success, failure)) in per_kind {
            for (result, n) in [("success", success), ("failure", failure)] {
                family.sample(
                    &[("uplink", &u.name), ("kind", kind), ("result", result)],
                    n,
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::probe::ProbeKind;

    fn probe(probe: ProbeKind, replies: u64, losses: u64) -> ProbeStatus {
        ProbeStatus {
            probe,
            last_reply_age: None,
            stats: Stats::default(),
            replies,
            losses,
        }
    }

    fn uplinks() -> Vec<UplinkSnapshot> {
        vec![
            UplinkSnapshot {
                name: "fiber".into(),
                state: State::Down,
                active: false,
                stats: Stats {
                    samples: 200,
                    lost: 50,
                    median_rtt: Some(Duration::from_micros(12_500)),
                    jitter: None,
                },
                counters: UplinkCounters {
                    packets_out: 10,
                    bytes_out: 1000,
                    packets_in: 8,
                    bytes_in: 9000,
                },
                nat_entries: Some(3),
                probes: vec![
                    probe(ProbeKind::GatewayArp, 40, 2),
                    probe(ProbeKind::Far("icmp:1.1.1.1".parse().unwrap()), 30, 1),
                    probe(ProbeKind::Far("icmp:8.8.8.8".parse().unwrap()), 20, 4),
                ],
                guard: Some(GuardCounts {
                    masqueraded: 4,
                    dropped: 2,
                }),
                redirect_failures: RedirectFailures {
                    to_uplink: 6,
                    to_lan: 1,
                },
                blackhole: false,
            },
            UplinkSnapshot {
                name: "lte".into(),
                state: State::Up,
                active: true,
                stats: Stats::default(),
                counters: UplinkCounters::default(),
                nat_entries: None,
                probes: Vec::new(),
                guard: None,
                redirect_failures: RedirectFailures::default(),
                blackhole: true,
            },
        ]
    }

    fn snapshot() -> Snapshot {
        let mut reasons = vec![0; Reason::ALL.len()];
        reasons[Reason::NoUplink as usize] = 11;
        Snapshot {
            uplinks: uplinks(),
            reasons: Some(reasons),
            switches: 7,
            map_repairs: 3,
            refused_hosts: vec![("10.0.0.12".to_owned(), 300, 5)],
            datapaths: vec![("wwan0".to_owned(), "tc")],
        }
    }

    #[test]
    fn every_family_carries_its_uplinks_samples() {
        let text = render(&snapshot());
        for line in [
            "# TYPE failover_uplink_state gauge",
            "failover_uplink_state{uplink=\"fiber\",state=\"down\"} 1",
            "failover_uplink_state{uplink=\"fiber\",state=\"up\"} 0",
            "failover_uplink_state{uplink=\"lte\",state=\"up\"} 1",
            "failover_uplink_active{uplink=\"lte\"} 1",
            "failover_uplink_active{uplink=\"fiber\"} 0",
            "failover_uplink_rtt_seconds{uplink=\"fiber\"} 0.0125",
            "failover_uplink_loss_ratio{uplink=\"fiber\"} 0.25",
            "failover_uplink_loss_ratio{uplink=\"lte\"} 0",
            "# TYPE failover_uplink_bytes_total counter",
            "failover_uplink_bytes_total{uplink=\"fiber\",direction=\"in\"} 9000",
            "failover_uplink_bytes_total{uplink=\"fiber\",direction=\"out\"} 1000",
            "failover_uplink_packets_total{uplink=\"fiber\",direction=\"in\"} 8",
            "failover_nat_entries{uplink=\"fiber\"} 3",
            "failover_switches_total 7",
            "failover_probes_total{uplink=\"fiber\",kind=\"gateway_arp\",result=\"success\"} 40",
            "failover_probes_total{uplink=\"fiber\",kind=\"icmp\",result=\"success\"} 50",
            "failover_probes_total{uplink=\"fiber\",kind=\"icmp\",result=\"failure\"} 5",
            "failover_dataplane_packets_total{reason=\"no-uplink\"} 11",
            "failover_dataplane_packets_total{reason=\"translated-out\"} 0",
            "failover_leak_guard_packets_total{uplink=\"fiber\",action=\"masquerade\"} 4",
            "failover_leak_guard_packets_total{uplink=\"fiber\",action=\"drop\"} 2",
            "failover_redirect_failures_total{uplink=\"fiber\",direction=\"out\"} 6",
            "failover_redirect_failures_total{uplink=\"fiber\",direction=\"in\"} 1",
            "failover_uplink_blackhole{uplink=\"lte\"} 1",
            "failover_uplink_blackhole{uplink=\"fiber\"} 0",
            "failover_dataplane_map_repairs_total 3",
            "failover_host_refused_flows_total{host=\"10.0.0.12\",limit=\"flows\"} 300",
            "failover_host_refused_flows_total{host=\"10.0.0.12\",limit=\"ports\"} 5",
            "failover_interface_datapath{interface=\"wwan0\",path=\"tc\"} 1",
        ] {
            assert!(text.lines().any(|l| l == line), "no `{line}` in:\n{text}");
        }
        // Unknown values are left out, not reported as 0.
        assert!(
            !text.contains("failover_uplink_rtt_seconds{uplink=\"lte\"}"),
            "{text}"
        );
        assert!(
            !text.contains("failover_nat_entries{uplink=\"lte\"}"),
            "{text}"
        );
        assert!(
            !text.contains("failover_leak_guard_packets_total{uplink=\"lte\""),
            "{text}"
        );
        // Every sample line belongs to a family announced just before.
        let mut family = "";
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                family = rest.split(' ').next().unwrap();
            } else if !line.starts_with('#') {
                assert!(line.starts_with(family), "{line} outside {family}");
            }
        }
    }
}
