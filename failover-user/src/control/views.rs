//! What `failover flows` and `failover report` receive, and how they print it.

use std::{
    fmt::{self, Write as _},
    net::{Ipv4Addr, SocketAddrV4},
};

use serde::{Deserialize, Serialize};

use crate::events::Event;

/// One NAT table entry.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FlowEntry {
    pub lan: SocketAddrV4,
    /// For ICMP echo the port is the identifier (LAN side) and 0 (remote side).
    pub remote: SocketAddrV4,
    /// `tcp`, `udp`, `icmp`, or the protocol number.
    pub proto: String,
    pub uplink: String,
    /// The port (or ICMP id) the flow has on the uplink's address.
    pub external_port: u16,
    /// `opening`, `established`, `closing`, `closed` or `moved`; TCP only.
    pub tcp_state: Option<String>,
    /// Seconds since the flow's last packet.
    pub idle_secs: f64,
}

/// `failover flows` as a table, in the order given.
#[must_use]
pub fn flows_table(flows: &[FlowEntry]) -> String {
    let mut out = format!(
        "{:<22}{:<22}{:<6}{:<10}{:>9}  {:<12}{:>9}\n",
        "LAN", "REMOTE", "PROTO", "UPLINK", "EXT PORT", "TCP STATE", "IDLE"
    );
    for f in flows {
        let _ = writeln!(
            out,
            "{:<22}{:<22}{:<6}{:<10}{:>9}  {:<12}{:>8.1}s",
            f.lan.to_string(),
            f.remote.to_string(),
            f.proto,
            f.uplink,
            f.external_port,
            f.tcp_state.as_deref().unwrap_or("-"),
            f.idle_secs,
        );
    }
    let _ = write!(out, "{} flow(s)", flows.len());
    out
}

/// `failover report NAME`: what a support desk asks for when an uplink fails.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OutageReport {
    pub uplink: String,
    pub interface: String,
    /// RFC 3339, to the second.
    pub generated_at: String,
    pub state: String,
    /// Seconds in this state.
    pub since_secs: f64,
    pub active: bool,
    pub link: LinkState,
    pub ip: IpConfig,
    /// ARP and ICMP echo to the gateway (empty when gateway probes are off).
    pub gateway_probes: Vec<ProbeReport>,
    pub far_targets: Vec<ProbeReport>,
    /// The uplink's events of the last 24 hours, oldest first.
    pub events: Vec<Event>,
}

/// The interface as the kernel shows it in `/sys/class/net/IF/`; `None`: not readable (an
/// interface that is gone, or a value the driver does not report).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkState {
    pub carrier: Option<bool>,
    pub operstate: Option<String>,
    pub speed_mbps: Option<u32>,
    pub duplex: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpConfig {
    pub address: Option<Ipv4Addr>,
    pub prefix: Option<u8>,
    pub gateway: Option<Ipv4Addr>,
    pub mac: Option<String>,
    /// `None` while the kernel has not resolved it.
    pub gateway_mac: Option<String>,
}

/// One probe stream (a gateway probe or a far target) of the uplink.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProbeReport {
    /// `gateway arp`, `gateway icmp`, or the target (`icmp:1.1.1.1`).
    pub probe: String,
    /// Seconds since its last reply; `None`: no reply since the daemon started.
    pub last_reply_secs: Option<f64>,
    /// The sliding window: probes kept and how many of them were lost.
    pub samples: usize,
    pub lost: usize,
    pub median_rtt_ms: Option<f64>,
    /// Since the daemon started.
    pub replies_total: u64,
    pub losses_total: u64,
}

impl fmt::Display for OutageReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let unknown = || "unknown".to_owned();
        writeln!(
            f,
            "Outage report: uplink {} ({}), {}",
            self.uplink, self.interface, self.generated_at
        )?;
        writeln!(
            f,
            "State: {} for {:.1} s, {}",
            self.state,
            self.since_secs,
            if self.active {
                "active (carries new flows)"
            } else {
                "not active"
            }
        )?;
        let l = &self.link;
        writeln!(f, "\nLink ({}, from /sys/class/net)", self.interface)?;
        writeln!(
            f,
            "  carrier {}, operstate {}, speed {}, duplex {}",
            l.carrier
                .map_or_else(unknown, |c| if c { "up" } else { "down" }.to_owned()),
            l.operstate.clone().unwrap_or_else(unknown),
            l.speed_mbps.map_or_else(unknown, |s| format!("{s} Mb/s")),
            l.duplex.clone().unwrap_or_else(unknown),
        )?;
        let ip = &self.ip;
        writeln!(f, "\nIP configuration")?;
        writeln!(
            f,
            "  address {}, gateway {}",
            match (ip.address, ip.prefix) {
                (Some(a), Some(p)) => format!("{a}/{p}"),
                (Some(a), None) => a.to_string(),
                _ => "none".to_owned(),
            },
            ip.gateway.map_or_else(unknown, |g| g.to_string()),
        )?;
        writeln!(
            f,
            "  MAC {}, gateway MAC {}",
            ip.mac.clone().unwrap_or_else(unknown),
            ip.gateway_mac
                .clone()
                .unwrap_or_else(|| "unresolved (no ARP answer)".to_owned()),
        )?;
        if !self.gateway_probes.is_empty() {
            writeln!(f, "\nGateway probes")?;
            probe_table(f, &self.gateway_probes)?;
        }
        writeln!(f, "\nFar targets")?;
        probe_table(f, &self.far_targets)?;
        writeln!(f, "\nEvents, last 24 hours ({})", self.events.len())?;
        if self.events.is_empty() {
            writeln!(f, "  none")?;
        }
        for event in &self.events {
            writeln!(f, "  {event}")?;
        }
        Ok(())
    }
}

fn probe_table(f: &mut fmt::Formatter<'_>, probes: &[ProbeReport]) -> fmt::Result {
    writeln!(
        f,
        "  {:<28}{:>16}{:>16}{:>12}{:>18}",
        "PROBE", "LAST REPLY", "LOSS (WINDOW)", "MEDIAN RTT", "REPLIES/LOST"
    )?;
    for p in probes {
        let loss_percent = (p.lost * 100).checked_div(p.samples).unwrap_or(0);
        writeln!(
            f,
            "  {:<28}{:>16}{:>16}{:>12}{:>18}",
            p.probe,
            p.last_reply_secs
                .map_or_else(|| "never".to_owned(), |s| format!("{s:.1} s ago")),
            format!("{}/{} ({loss_percent}%)", p.lost, p.samples),
            p.median_rtt_ms
                .map_or_else(|| "-".to_owned(), |ms| format!("{ms:.1} ms")),
            format!("{}/{}", p.replies_total, p.losses_total),
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;
    use crate::events::{Event, kind};

    fn report() -> OutageReport {
        OutageReport {
            uplink: "fiber".into(),
            interface: "eth1".into(),
            generated_at: "2027-01-15T08:00:00Z".into(),
            state: "down".into(),
            since_secs: 42.0,
            active: false,
            link: LinkState {
                carrier: Some(true),
                operstate: Some("up".into()),
                speed_mbps: Some(100),
                duplex: Some("full".into()),
            },
            ip: IpConfig {
                address: Some(Ipv4Addr::new(192, 0, 2, 2)),
                prefix: Some(24),
                gateway: Some(Ipv4Addr::new(192, 0, 2, 1)),
                mac: Some("02:00:00:00:00:02".into()),
                gateway_mac: None,
            },
            gateway_probes: vec![ProbeReport {
                probe: "gateway arp".into(),
                last_reply_secs: Some(42.5),
                samples: 50,
                lost: 50,
                median_rtt_ms: None,
                replies_total: 900,
                losses_total: 420,
            }],
            far_targets: vec![ProbeReport {
                probe: "icmp:1.1.1.1".into(),
                last_reply_secs: None,
                samples: 4,
                lost: 1,
                median_rtt_ms: Some(12.25),
                replies_total: 3,
                losses_total: 1,
            }],
            events: vec![Event {
                at: UNIX_EPOCH + Duration::from_hours(500_000),
                ..Event::now(
                    kind::STATE,
                    "fiber",
                    "up",
                    "down",
                    "gateway silent for 612 ms",
                )
            }],
        }
    }

    #[test]
    fn the_report_reads_as_the_evidence_a_support_desk_asks_for() {
        let text = report().to_string();
        for expected in [
            "Outage report: uplink fiber (eth1), 2027-01-15T08:00:00Z",
            "State: down for 42.0 s, not active",
            "carrier up, operstate up, speed 100 Mb/s, duplex full",
            "address 192.0.2.2/24, gateway 192.0.2.1",
            "MAC 02:00:00:00:00:02, gateway MAC unresolved (no ARP answer)",
            "gateway arp",
            "42.5 s ago",
            "50/50 (100%)",
            "900/420",
            "never",
            "1/4 (25%)",
            "12.2 ms",
            "Events, last 24 hours (1)",
            "up -> down: gateway silent for 612 ms",
        ] {
            assert!(text.contains(expected), "no `{expected}` in:\n{text}");
        }
    }

    #[test]
    fn the_report_survives_json() {
        let json = serde_json::to_string(&report()).unwrap();
        assert_eq!(
            serde_json::from_str::<OutageReport>(&json).unwrap(),
            report()
        );
    }

    #[test]
    fn flows_print_one_row_each_and_a_count() {
        let flow = FlowEntry {
            lan: "10.10.0.11:40000".parse().unwrap(),
            remote: "203.0.113.10:443".parse().unwrap(),
            proto: "tcp".into(),
            uplink: "fiber".into(),
            external_port: 1024,
            tcp_state: Some("established".into()),
            idle_secs: 1.25,
        };
        let udp = FlowEntry {
            proto: "udp".into(),
            tcp_state: None,
            ..flow.clone()
        };
        let table = flows_table(&[flow, udp]);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 4, "{table}");
        assert!(lines[1].contains("10.10.0.11:40000"), "{table}");
        assert!(lines[1].contains("established"), "{table}");
        assert!(lines[1].ends_with("1.2s"), "{table}");
        assert!(
            lines[2].contains("udp") && lines[2].contains(" - "),
            "{table}"
        );
        assert_eq!(lines[3], "2 flow(s)");
    }
}
