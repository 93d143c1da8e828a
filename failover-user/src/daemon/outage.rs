//! `failover report NAME`: an uplink's outage report, with what an ISP's support desk asks
//! for: the timeline, the link as the kernel sees it, the gateway's and far targets' answers,
//! and the uplink's IP configuration.

use std::{
    net::Ipv4Addr,
    time::{Duration, SystemTime},
};

use tokio::time::Instant;

use super::{Daemon, state_name};
use crate::{
    control::{IpConfig, OutageReport, ProbeReport},
    events::{self, Event},
    health::ProbeStatus,
    linkinfo, loader,
    probe::ProbeKind,
};

/// How far back the report's timeline reaches.
const TIMELINE: Duration = Duration::from_hours(24);

pub(super) fn report(daemon: &Daemon, name: &str, now: Instant) -> Result<OutageReport, String> {
    let index = daemon
        .policy
        .uplink(name)
        .ok_or_else(|| format!("no uplink named `{name}`"))?;
    let managed = &daemon.uplinks[index];
    let status = daemon.health.status(index, now);
    let wall = SystemTime::now();
    let log = &daemon.config.events.log;
    let events = events::read_since(log, wall.checked_sub(TIMELINE))
        .map_err(|e| format!("reading the event log {}: {e}", log.display()))?
        .into_iter()
        .filter(|event| concerns(event, name))
        .collect();
    let interface = &managed.spec.interface;
    let address =
        (managed.described.addr != [0; 4]).then(|| Ipv4Addr::from(managed.described.addr));
    let known_mac = |mac: [u8; 6]| (mac != [0; 6]).then(|| loader::format_mac(mac));
    let (gateway_probes, far_targets) = daemon
        .health
        .probes(index, now)
        .iter()
        .map(probe_report)
        .partition(|(gateway, _)| *gateway);
    let unzip = |reports: Vec<(bool, ProbeReport)>| reports.into_iter().map(|(_, r)| r).collect();
    Ok(OutageReport {
        uplink: name.to_owned(),
        interface: interface.clone(),
        generated_at: humantime::format_rfc3339_seconds(wall).to_string(),
        state: state_name(status.state).to_owned(),
        since_secs: now.duration_since(status.since).as_secs_f64(),
        active: index == daemon.active,
        link: linkinfo::link_state(interface),
        ip: IpConfig {
            address,
            prefix: address.and_then(|address| {
                linkinfo::ipv4_addresses(interface)
                    .ok()?
                    .into_iter()
                    .find_map(|(a, prefix)| (a == address).then_some(prefix))
            }),
            gateway: managed
                .path
                .as_ref()
                .and_then(|p| p.gateway)
                .or(managed.spec.gateway),
            mac: known_mac(managed.described.mac),
            gateway_mac: known_mac(managed.described.gateway_mac),
        },
        gateway_probes: unzip(gateway_probes),
        far_targets: unzip(far_targets),
        events,
    })
}

/// Whether `event` belongs on `uplink`'s timeline: its own events, and switches away from it.
fn concerns(event: &Event, uplink: &str) -> bool {
    event.uplink == uplink || (event.kind == events::kind::SWITCH && event.from == uplink)
}

/// The report's row for one probe stream, and whether it probes the gateway.
fn probe_report(probe: &ProbeStatus) -> (bool, ProbeReport) {
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let gateway = matches!(probe.probe, ProbeKind::GatewayArp | ProbeKind::GatewayIcmp);
    (
        gateway,
        ProbeReport {
            probe: probe.probe.to_string(),
            last_reply_secs: probe.last_reply_age.map(|d| d.as_secs_f64()),
            samples: probe.stats.samples,
            lost: probe.stats.lost,
            median_rtt_ms: probe.stats.median_rtt.map(ms),
            replies_total: probe.replies,
            losses_total: probe.losses,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{events::kind, health::Stats};

    #[test]
    fn the_timeline_has_the_uplinks_events_and_switches_away_from_it() {
        let event = |kind, uplink, from| Event::now(kind, uplink, from, "x", "c");
        assert!(concerns(&event(kind::STATE, "fiber", "up"), "fiber"));
        assert!(concerns(&event(kind::SWITCH, "lte", "fiber"), "fiber"));
        assert!(!concerns(&event(kind::STATE, "lte", "up"), "fiber"));
        assert!(!concerns(&event(kind::TARGET, "", "ok"), "fiber"));
    }

    #[test]
    fn probe_rows_carry_the_streams_numbers() {
        let status = |probe| ProbeStatus {
            probe,
            last_reply_age: Some(Duration::from_millis(1500)),
            stats: Stats {
                samples: 50,
                lost: 5,
                median_rtt: Some(Duration::from_micros(12_500)),
                jitter: None,
            },
            replies: 45,
            losses: 5,
        };
        let (gateway, arp) = probe_report(&status(ProbeKind::GatewayArp));
        assert!(gateway);
        assert_eq!(arp.probe, "gateway arp");
        let (gateway, far) = probe_report(&status(ProbeKind::Far(
            "tcp:192.0.2.9:443".parse().unwrap(),
        )));
        assert!(!gateway);
        assert_eq!(
            far,
            ProbeReport {
                probe: "tcp:192.0.2.9:443".into(),
                last_reply_secs: Some(1.5),
                samples: 50,
                lost: 5,
                median_rtt_ms: Some(12.5),
                replies_total: 45,
                losses_total: 5,
            }
        );
    }
}
