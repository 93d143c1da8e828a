//! The effective config in a few lines, defaults resolved (`failover check-config`).

use std::fmt::Write as _;

use humantime::format_duration;

use super::{Config, FailbackMode};

impl Config {
    /// One line per uplink and one for the health timings, with every default resolved.
    #[must_use]
    pub fn summary(&self) -> String {
        let mut out = format!(
            "lan: {} (datapath {})\n",
            self.lan.join(", "),
            self.lan_datapath.name()
        );
        let h = &self.health;
        for (i, uplink) in self.uplinks.iter().enumerate() {
            let targets = uplink.targets_or_default();
            let (port_min, port_max) = uplink.port_range();
            let _ = writeln!(
                out,
                "uplink {}: priority {}, interface {}, gateway {}, targets {} (quorum {}), {}, \
                 mss {}, ports {port_min}-{port_max}, weight {}, failback {}, datapath {}, \
                 public address {}",
                uplink.name,
                uplink.priority_or_position(i),
                uplink.interface,
                uplink
                    .gateway
                    .map_or_else(|| "learned".to_owned(), |ip| ip.to_string()),
                targets
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(" "),
                h.quorum_for(targets.len()),
                if uplink.metered {
                    "metered"
                } else {
                    "unmetered"
                },
                uplink
                    .mss
                    .map_or_else(|| "unclamped".to_owned(), |mss| mss.to_string()),
                uplink.weight,
                match uplink.failback {
                    FailbackMode::Keep => "keep".to_owned(),
                    FailbackMode::Move => format!("move after {}", format_duration(uplink.drain)),
                },
                uplink.datapath.name(),
                uplink
                    .public_address
                    .map_or_else(|| "the interface's".to_owned(), |a| a.to_string()),
            );
        }
        for forward in &self.forwards {
            let _ = writeln!(
                out,
                "forward {}: {} port {} -> {} on {}",
                forward.name,
                forward.proto.name(),
                forward.port,
                forward.to,
                forward
                    .uplinks
                    .as_ref()
                    .map_or_else(|| "every uplink".to_owned(), |u| u.join(", ")),
            );
        }
        let _ = writeln!(
            out,
            "health: probe every {} (metered standby {}), timeout {}, down after {} (gateway{}) \
             or {} (targets), up after {}, hold-down {}",
            format_duration(h.interval),
            format_duration(h.metered_standby_interval),
            format_duration(h.timeout),
            format_duration(h.gateway_down_after),
            if h.gateway_probes { "" } else { ", not probed" },
            format_duration(h.targets_down_after),
            format_duration(h.up_after),
            format_duration(h.hold_down),
        );
        let _ = writeln!(
            out,
            "metrics: {}",
            self.metrics.listen.map_or_else(
                || "off".to_owned(),
                |listen| format!("http://{listen}/metrics")
            ),
        );
        let _ = writeln!(out, "data-plane log: {}", self.logging.dataplane.name());
        let _ = writeln!(
            out,
            "per-host limits: {} flows, {} ports per uplink (0: no limit)",
            self.limits.flows_per_host, self.limits.ports_per_host
        );
        let _ = write!(
            out,
            "events: log {}, hook {}",
            self.events.log.display(),
            self.events
                .hook
                .as_ref()
                .map_or_else(|| "none".to_owned(), |hook| hook.display().to_string()),
        );
        out
    }
}
