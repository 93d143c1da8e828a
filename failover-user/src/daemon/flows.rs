//! `failover flows`: the data plane's NAT table, in the words of the config.

use std::net::{Ipv4Addr, SocketAddrV4};

use failover_common::{
    classify::ip_proto,
    nat::{Flow, FlowKey, tcp_state},
};

use super::Daemon;
use crate::{clock, control::FlowEntry, dataplane::FlowTable as _};

/// Every flow, or those of uplink `only` (a name), by uplink, then LAN address.
pub(super) fn flows(daemon: &Daemon, only: Option<&str>) -> Result<Vec<FlowEntry>, String> {
    let only = only
        .map(|name| {
            daemon
                .policy
                .uplink(name)
                .ok_or_else(|| format!("no uplink named `{name}`"))
        })
        .transpose()?;
    let table = daemon
        .running
        .dataplane()
        .flows()
        .map_err(|e| e.to_string())?;
    let now_ns = clock::now_ns().map_err(|e| format!("reading the kernel's clock: {e}"))?;
    let names: Vec<&str> = daemon
        .uplinks
        .iter()
        .map(|u| u.spec.name.as_str())
        .collect();
    Ok(entries(&table, &names, only, now_ns))
}

fn entries(
    table: &[(FlowKey, Flow)],
    names: &[&str],
    only: Option<usize>,
    now_ns: u64,
) -> Vec<FlowEntry> {
    let mut entries: Vec<(u32, FlowEntry)> = table
        .iter()
        .filter(|(_, flow)| only.is_none_or(|u| usize::try_from(flow.uplink) == Ok(u)))
        .map(|(key, flow)| (flow.uplink, entry(key, flow, names, now_ns)))
        .collect();
    entries.sort_by(|(a, x), (b, y)| (a, x.lan, x.remote).cmp(&(b, y.lan, y.remote)));
    entries.into_iter().map(|(_, entry)| entry).collect()
}

fn entry(key: &FlowKey, flow: &Flow, names: &[&str], now_ns: u64) -> FlowEntry {
    let endpoint = |addr: [u8; 4], port: [u8; 2]| {
        SocketAddrV4::new(Ipv4Addr::from(addr), u16::from_be_bytes(port))
    };
    let tcp = key.proto == ip_proto::TCP;
    FlowEntry {
        lan: endpoint(key.lan_addr, key.lan_port),
        remote: endpoint(key.remote_addr, key.remote_port),
        proto: match key.proto {
            ip_proto::TCP => "tcp".to_owned(),
            ip_proto::UDP => "udp".to_owned(),
            ip_proto::ICMP => "icmp".to_owned(),
            other => other.to_string(),
        },
        uplink: usize::try_from(flow.uplink)
            .ok()
            .and_then(|slot| names.get(slot))
            .map_or_else(
                || format!("slot {}", flow.uplink),
                |name| (*name).to_owned(),
            ),
        external_port: u16::from_be_bytes(flow.ext_port),
        tcp_state: tcp.then(|| state_name(flow.state).to_owned()),
        idle_secs: std::time::Duration::from_nanos(now_ns.saturating_sub(flow.last_seen_ns))
            .as_secs_f64(),
    }
}

fn state_name(state: u8) -> &'static str {
    match state {
        tcp_state::OPENING => "opening",
        tcp_state::ESTABLISHED => "established",
        tcp_state::CLOSING => "closing",
        tcp_state::CLOSED => "closed",
        tcp_state::MOVED => "moved",
        _ => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flow(lan: [u8; 4], proto: u8, uplink: u32, state: u8) -> (FlowKey, Flow) {
        (
            FlowKey {
                lan_addr: lan,
                remote_addr: [203, 0, 113, 10],
                lan_port: 40000u16.to_be_bytes(),
                remote_port: 443u16.to_be_bytes(),
                proto,
                _pad: [0; 3],
            },
            Flow {
                last_seen_ns: 7_000_000_000,
                reverse_seen_ns: 0,
                uplink,
                ext_port: 1024u16.to_be_bytes(),
                state,
                origin: 0,
            },
        )
    }

    #[test]
    fn flows_are_named_filtered_and_sorted_by_uplink() {
        let table = [
            flow([10, 10, 0, 12], ip_proto::UDP, 1, 0),
            flow([10, 10, 0, 12], ip_proto::TCP, 0, tcp_state::ESTABLISHED),
            flow([10, 10, 0, 11], ip_proto::TCP, 0, tcp_state::MOVED),
            flow([10, 10, 0, 11], 47, 9, 0),
        ];
        let names = ["fiber", "lte"];
        let all = entries(&table, &names, None, 9_500_000_000);
        let rows: Vec<(String, &str, &str, Option<&str>)> = all
            .iter()
            .map(|e| {
                (
                    e.lan.to_string(),
                    e.proto.as_str(),
                    e.uplink.as_str(),
                    e.tcp_state.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            rows,
            [
                ("10.10.0.11:40000".into(), "tcp", "fiber", Some("moved")),
                (
                    "10.10.0.12:40000".into(),
                    "tcp",
                    "fiber",
                    Some("established")
                ),
                ("10.10.0.12:40000".into(), "udp", "lte", None),
                ("10.10.0.11:40000".into(), "47", "slot 9", None),
            ]
        );
        assert_eq!(all[0].remote.to_string(), "203.0.113.10:443");
        assert_eq!(all[0].external_port, 1024);
        assert!(
            (all[0].idle_secs - 2.5).abs() < 1e-9,
            "{}",
            all[0].idle_secs
        );

        let lte = entries(&table, &names, Some(1), 9_500_000_000);
        assert_eq!(lte.len(), 1);
        assert_eq!(lte[0].uplink, "lte");
    }
}
