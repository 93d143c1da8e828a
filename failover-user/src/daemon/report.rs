//! `failover status`: the controller's view of each uplink, for the CLI.

use std::net::Ipv4Addr;

use tokio::time::Instant;

use failover_common::verdict::Reason;

use super::{Daemon, slot_of, state_name};
use crate::{
    control::{LimitedHost, StatusReport, UplinkReport},
    kernel_guard::GuardCounts,
    loader,
};

pub(super) fn status(daemon: &Daemon, now: Instant) -> StatusReport {
    let guard = daemon.running.guard_counters().ok();
    let dataplane = daemon.running.dataplane();
    let uplinks = daemon
        .uplinks
        .iter()
        .enumerate()
        .map(|(index, managed)| {
            let status = daemon.health.status(index, now);
            let counters = dataplane
                .uplink_counters(slot_of(index))
                .unwrap_or_default();
            let redirects = dataplane
                .redirect_failures(slot_of(index))
                .unwrap_or_default();
            let ms = |d: std::time::Duration| d.as_secs_f64() * 1000.0;
            let guarded = guard
                .as_deref()
                .map(|g| GuardCounts::of(g, &managed.spec.interface));
            UplinkReport {
                name: managed.spec.name.clone(),
                interface: managed.spec.interface.clone(),
                state: state_name(status.state).to_owned(),
                active: index == daemon.active,
                since_secs: now.duration_since(status.since).as_secs_f64(),
                carrier: status.carrier,
                address: (managed.described.addr != [0; 4])
                    .then(|| Ipv4Addr::from(managed.described.addr).to_string()),
                gateway: managed
                    .path
                    .as_ref()
                    .and_then(|p| p.gateway)
                    .map(|g| g.to_string()),
                gateway_mac: (managed.described.gateway_mac != [0; 6])
                    .then(|| loader::format_mac(managed.described.gateway_mac)),
                rtt_ms: status.stats.median_rtt.map(ms),
                jitter_ms: status.stats.jitter.map(ms),
                loss_percent: status.stats.loss_percent(),
                packets_out: counters.packets_out,
                bytes_out: counters.bytes_out,
                packets_in: counters.packets_in,
                bytes_in: counters.bytes_in,
                guard_masqueraded: guarded.map(|g| g.masqueraded),
                guard_dropped: guarded.map(|g| g.dropped),
                redirect_failed_to_uplink: redirects.to_uplink,
                redirect_failed_to_lan: redirects.to_lan,
                blackhole: daemon.watchdog.blackhole(index),
                datapath: managed.datapath.as_ref().map(ToString::to_string),
            }
        })
        .collect();
    let reasons = dataplane.reason_counts().unwrap_or_default();
    let untranslated_dropped = [
        Reason::NoUplink,
        Reason::NoGatewayMac,
        Reason::PortsExhausted,
    ]
    .iter()
    .filter_map(|r| reasons.get(*r as usize))
    .sum();
    StatusReport {
        active: daemon.uplinks[daemon.active].spec.name.clone(),
        forced: daemon.policy.forced().map(|o| {
            let name = &daemon.uplinks[o.uplink].spec.name;
            match o.until {
                Some(until) => format!(
                    "{name} for {} s more",
                    until.saturating_duration_since(now).as_secs()
                ),
                None => format!("{name} until `failover auto`"),
            }
        }),
        uplinks,
        suspect_targets: daemon
            .health
            .suspects()
            .iter()
            .map(|s| format!("{}: {}", s.target, s.reason))
            .collect(),
        untranslated_dropped,
        map_repairs: daemon.watchdog.repairs,
        uncounted_redirects: daemon.running.uncounted_redirects.clone(),
        flows_per_host: daemon.config.limits.flows_per_host,
        ports_per_host: daemon.config.limits.ports_per_host,
        limited_hosts: daemon
            .host_limiter
            .refused
            .iter()
            .map(|(host, refused)| LimitedHost {
                host: host.to_string(),
                refused_flows: refused.flows,
                refused_ports: refused.ports,
                ongoing: refused.ongoing,
            })
            .collect(),
        lan: daemon.config.lan.first().cloned(),
        lan_datapath: daemon.lan_datapath.as_ref().map(ToString::to_string),
        dns: daemon.dns.as_ref().map(super::dns::DnsFollower::status),
    }
}
