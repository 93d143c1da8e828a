//! The port forwards: `[[forward]]` turned into the data plane's forward table, written at
//! start and on reload.

use std::net::Ipv4Addr;

use failover_common::nat::{self, ForwardTarget, Lan, ReverseKey};
use tracing::{info, warn};

use crate::{
    config::{Config, ForwardEntry},
    hairpin::{HairpinEntry, HairpinSpec},
    loader::Running,
};

/// The forward table for `config`; `Err` names a forward whose host is not on the LAN (its
/// connections could not be delivered).
pub(super) fn table(config: &Config, lan: Lan) -> Result<Vec<(ReverseKey, ForwardTarget)>, String> {
    for forward in &config.forwards {
        let host = forward.to.addr;
        if !nat::in_subnet(host.octets(), lan.net, lan.prefix_len) {
            return Err(format!(
                "forward `{}` leads to {host}, which is not on the LAN ({}/{})",
                forward.name,
                Ipv4Addr::from(lan.net),
                lan.prefix_len
            ));
        }
    }
    Ok(config.forward_entries().iter().map(entry).collect())
}

fn entry(forward: &ForwardEntry) -> (ReverseKey, ForwardTarget) {
    (
        ReverseKey {
            ext_port: forward.port.to_be_bytes(),
            proto: forward.proto,
            uplink: u8::try_from(forward.uplink).unwrap_or(u8::MAX),
        },
        ForwardTarget {
            lan_addr: forward.lan_addr.octets(),
            lan_port: forward.lan_port.to_be_bytes(),
            _pad: [0; 2],
        },
    )
}

/// Writes `config`'s forwards into the data plane, replacing what it held.
pub(super) fn apply(running: &mut Running, config: &Config) -> anyhow::Result<()> {
    let wanted = table(config, running.lan()).map_err(anyhow::Error::msg)?;
    running.dataplane_mut().set_forwards(&wanted)?;
    for forward in &config.forwards {
        info!(
            forward = %forward.name,
            proto = forward.proto.name(),
            port = %forward.port,
            to = %forward.to,
            uplinks = %forward.uplinks.as_ref().map_or_else(|| "all".to_owned(), |u| u.join(",")),
            "port forward in place"
        );
    }
    warn_local_ports(config);
    Ok(())
}

/// The hairpin table for `config`'s forwards on the uplinks' current addresses (`addrs`, in
/// slot order; an uplink without an address yet has none to reflect).
pub(super) fn hairpin(config: &Config, lan: Lan, addrs: &[[u8; 4]]) -> HairpinSpec {
    HairpinSpec {
        lan_interface: config.lan.first().cloned().unwrap_or_default(),
        lan_net: lan.net,
        lan_prefix_len: lan.prefix_len,
        entries: config
            .forward_entries()
            .iter()
            .filter_map(|f| {
                let addr = Ipv4Addr::from(*addrs.get(f.uplink)?);
                (!addr.is_unspecified()).then_some(HairpinEntry {
                    addr,
                    proto: f.proto,
                    port: f.port,
                    to: f.lan_addr,
                    to_port: f.lan_port,
                })
            })
            .collect(),
    }
}

/// A forwarded UDP port inside the kernel's local port range would take the replies to the
/// router's own connections that happen to use it.
fn warn_local_ports(config: &Config) {
    let Ok((low, high)) = crate::loader::kernel_local_ports() else {
        return;
    };
    for forward in &config.forwards {
        if forward
            .proto
            .protocols()
            .contains(&failover_common::classify::ip_proto::UDP)
            && forward.port.first <= high
            && low <= forward.port.last
        {
            warn!(
                forward = %forward.name,
                "UDP port {} is inside the kernel's local port range {low}-{high}: a reply to one of the router's own connections from that port would go to the LAN host",
                forward.port
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> Config {
        crate::config::parse(
            &format!(
                "lan = [\"lan0\"]\n[[uplink]]\nname = \"fiber\"\ninterface = \"eth1\"\n\
                 [[uplink]]\nname = \"lte\"\ninterface = \"wwan0\"\n{text}"
            ),
            "test",
        )
        .expect("valid")
    }

    const LAN: Lan = Lan {
        ifindex: 3,
        net: [10, 10, 0, 0],
        prefix_len: 24,
        path: 0,
        _pad: [0; 2],
    };

    #[test]
    fn a_forward_becomes_one_entry_per_uplink_protocol_and_port() {
        let config = config(
            "[[forward]]\nname = \"web\"\nport = 80\nto = \"10.10.0.11:8080\"\n\
             [[forward]]\nname = \"game\"\nproto = \"both\"\nport = \"7000-7001\"\nto = \"10.10.0.12\"\nuplinks = [\"lte\"]\n",
        );
        let table = table(&config, LAN).expect("on the LAN");
        let shown: Vec<_> = table
            .iter()
            .map(|(k, t)| {
                (
                    k.uplink,
                    k.proto,
                    u16::from_be_bytes(k.ext_port),
                    t.lan_addr[3],
                    u16::from_be_bytes(t.lan_port),
                )
            })
            .collect();
        assert_eq!(
            shown,
            [
                (0, 6, 80, 11, 8080),
                (1, 6, 80, 11, 8080),
                (1, 6, 7000, 12, 7000),
                (1, 6, 7001, 12, 7001),
                (1, 17, 7000, 12, 7000),
                (1, 17, 7001, 12, 7001),
            ]
        );
    }

    #[test]
    fn hairpin_reflects_each_entry_on_the_addresses_the_uplinks_have() {
        let config = config("[[forward]]\nname = \"web\"\nport = 80\nto = \"10.10.0.11:8080\"\n");
        let spec = hairpin(&config, LAN, &[[192, 0, 2, 2], [0; 4]]);
        assert_eq!(spec.lan_interface, "lan0");
        assert_eq!(
            spec.entries,
            [HairpinEntry {
                addr: Ipv4Addr::new(192, 0, 2, 2),
                proto: 6,
                port: 80,
                to: Ipv4Addr::new(10, 10, 0, 11),
                to_port: 8080,
            }],
            "lte has no address yet: nothing to reflect there"
        );
    }

    #[test]
    fn a_forward_to_a_host_off_the_lan_is_refused() {
        let config = config("[[forward]]\nname = \"web\"\nport = 80\nto = \"192.168.7.5\"\n");
        let error = table(&config, LAN).expect_err("off the LAN");
        assert!(
            error.contains("`web`") && error.contains("10.10.0.0/24"),
            "{error}"
        );
    }
}
