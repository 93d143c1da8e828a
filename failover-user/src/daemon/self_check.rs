//! The data plane's maps against the controller's intent. Something else may write them (a
//! `bpftool map update`, a second tool, a bug of ours): once a second the controller reads
//! back the LAN, every uplink slot with its devmap entry, and the policy, and rewrites what
//! differs, recording the drift as an event.

use std::{
    fmt::{Debug, Display},
    net::Ipv4Addr,
};

use failover_common::{
    names,
    nat::{LAN_SLOT, Lan, MAX_UPLINKS, Policy, Uplink},
};

use crate::{
    dataplane::{Dataplane, DataplaneError},
    loader::format_mac,
};

/// What the data plane should hold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Intent {
    pub lan: Lan,
    /// Every slot (`MAX_UPLINKS`): configured uplinks with their usability, then empty ones.
    pub uplinks: Vec<Uplink>,
    pub policy: Policy,
}

/// What it holds: entries, and devmap targets (`None`: empty slot).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found {
    pub lan: Lan,
    pub lan_device: Option<u32>,
    pub uplinks: Vec<(Uplink, Option<u32>)>,
    pub policy: Policy,
}

/// One difference, e.g. `fo_uplinks[0].addr`: found `192.0.2.99`, wanted `192.0.2.2`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Drift {
    pub what: String,
    pub found: String,
    pub wanted: String,
}

/// Which maps need rewriting.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Repairs {
    pub lan: bool,
    pub uplink_slots: Vec<u32>,
    pub policy: bool,
    pub drifts: Vec<Drift>,
}

impl Repairs {
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.drifts.is_empty()
    }
}

/// Every difference between `found` and `intent`, and what rewrites them.
#[must_use]
pub fn compare(intent: &Intent, found: &Found) -> Repairs {
    let mut repairs = Repairs::default();
    let mut lan = Vec::new();
    let (w, f) = (intent.lan, found.lan);
    field(&mut lan, names::MAP_LAN, "ifindex", &f.ifindex, &w.ifindex);
    field(&mut lan, names::MAP_LAN, "net", &ip(f.net), &ip(w.net));
    field(
        &mut lan,
        names::MAP_LAN,
        "prefix_len",
        &f.prefix_len,
        &w.prefix_len,
    );
    device(&mut lan, LAN_SLOT, found.lan_device, Some(w.ifindex));
    repairs.lan = !lan.is_empty();
    repairs.drifts.extend(lan);
    for (slot, (wanted, (entry, target))) in (0u32..).zip(intent.uplinks.iter().zip(&found.uplinks))
    {
        let mut d = Vec::new();
        let map = format!("{}[{slot}]", names::MAP_UPLINKS);
        field(&mut d, &map, "ifindex", &entry.ifindex, &wanted.ifindex);
        field(&mut d, &map, "addr", &ip(entry.addr), &ip(wanted.addr));
        field(
            &mut d,
            &map,
            "mac",
            &format_mac(entry.mac),
            &format_mac(wanted.mac),
        );
        let (fg, wg) = (entry.gateway_mac, wanted.gateway_mac);
        field(
            &mut d,
            &map,
            "gateway_mac",
            &format_mac(fg),
            &format_mac(wg),
        );
        let ports = |u: &Uplink| format!("{}-{}", u.port_min, u.port_max);
        field(&mut d, &map, "ports", &ports(entry), &ports(wanted));
        field(&mut d, &map, "mss", &entry.mss, &wanted.mss);
        field(&mut d, &map, "usable", &entry.usable, &wanted.usable);
        let wanted_device = (wanted.ifindex != 0).then_some(wanted.ifindex);
        device(&mut d, slot, *target, wanted_device);
        if !d.is_empty() {
            repairs.uplink_slots.push(slot);
            repairs.drifts.extend(d);
        }
    }
    let (fp, wp) = (found.policy, intent.policy);
    field(
        &mut repairs.drifts,
        names::MAP_POLICY,
        "active",
        &fp.active,
        &wp.active,
    );
    field(
        &mut repairs.drifts,
        names::MAP_POLICY,
        "spread",
        &hex(&fp.spread),
        &hex(&wp.spread),
    );
    repairs.policy = fp != wp;
    repairs
}

/// Compared as shown, so a drift reads as the values the operator would write.
fn field(out: &mut Vec<Drift>, map: &str, name: &str, found: &dyn Display, wanted: &dyn Display) {
    let (found, wanted) = (found.to_string(), wanted.to_string());
    if found != wanted {
        out.push(Drift {
            what: format!("{map}.{name}"),
            found,
            wanted,
        });
    }
}

/// An empty devmap slot and a slot of ifindex 0 mean the same: no target.
fn device(out: &mut Vec<Drift>, slot: u32, found: Option<u32>, wanted: Option<u32>) {
    let show = |d: Option<u32>| d.map_or_else(|| "empty".to_owned(), |i| format!("ifindex {i}"));
    if found.filter(|&i| i != 0) != wanted {
        out.push(Drift {
            what: format!("{}[{slot}]", names::MAP_DEVICES),
            found: show(found),
            wanted: show(wanted),
        });
    }
}

fn ip(octets: [u8; 4]) -> String {
    Ipv4Addr::from(octets).to_string()
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// Reads what the data plane holds.
pub fn read(dataplane: &Dataplane) -> Result<Found, DataplaneError> {
    let lan = dataplane.lan()?;
    let devices = dataplane.devices()?;
    let uplinks = (0..MAX_UPLINKS)
        .map(|slot| Ok((dataplane.uplink(slot)?, devices[slot as usize])))
        .collect::<Result<_, DataplaneError>>()?;
    Ok(Found {
        lan,
        lan_device: devices[LAN_SLOT as usize],
        uplinks,
        policy: dataplane.policy()?,
    })
}

/// Rewrites what `repairs` names from `intent`.
pub fn repair(
    dataplane: &mut Dataplane,
    intent: &Intent,
    repairs: &Repairs,
) -> Result<(), DataplaneError> {
    if repairs.lan {
        dataplane.set_lan(intent.lan)?;
    }
    for &slot in &repairs.uplink_slots {
        let wanted = intent.uplinks[slot as usize];
        if wanted.ifindex == 0 {
            dataplane.clear_uplink(slot)?;
        } else {
            dataplane.set_uplink(slot, wanted)?;
        }
    }
    if repairs.policy {
        dataplane.set_policy(intent.policy)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uplink(ifindex: u32, addr: [u8; 4]) -> Uplink {
        Uplink {
            ifindex,
            addr,
            mac: [2, 0, 0, 0, 0, 1],
            gateway_mac: [2, 0, 0, 0, 0, 2],
            port_min: 1024,
            port_max: 32767,
            mss: 0,
            usable: 1,
            path: 0,
        }
    }

    fn intent() -> Intent {
        let mut uplinks = vec![Uplink::default(); MAX_UPLINKS as usize];
        uplinks[0] = uplink(3, [192, 0, 2, 2]);
        uplinks[1] = uplink(4, [198, 51, 100, 2]);
        Intent {
            lan: Lan {
                ifindex: 2,
                net: [10, 10, 0, 0],
                prefix_len: 24,
                path: 0,
                _pad: [0; 2],
            },
            uplinks,
            policy: Policy::single(0),
        }
    }

    /// The data plane holding exactly the intent.
    fn faithful(intent: &Intent) -> Found {
        Found {
            lan: intent.lan,
            lan_device: Some(intent.lan.ifindex),
            uplinks: intent
                .uplinks
                .iter()
                .map(|u| (*u, (u.ifindex != 0).then_some(u.ifindex)))
                .collect(),
            policy: intent.policy,
        }
    }

    #[test]
    fn a_faithful_data_plane_needs_no_repair() {
        let intent = intent();
        assert!(compare(&intent, &faithful(&intent)).is_empty());
    }

    #[test]
    fn each_kind_of_drift_is_named_and_repaired_where_it_is() {
        let intent = intent();
        let mut found = faithful(&intent);
        found.uplinks[0].0.addr = [192, 0, 2, 99];
        found.uplinks[1].0.usable = 0;
        found.uplinks[1].0.gateway_mac = [0; 6];
        found.uplinks[1].1 = None;
        found.uplinks[5].0.usable = 1;
        found.policy = Policy::single(1);
        let repairs = compare(&intent, &found);
        assert_eq!(repairs.uplink_slots, vec![0, 1, 5]);
        assert!(repairs.policy);
        assert!(!repairs.lan);
        let whats: Vec<&str> = repairs.drifts.iter().map(|d| d.what.as_str()).collect();
        assert_eq!(
            whats,
            [
                "fo_uplinks[0].addr",
                "fo_uplinks[1].gateway_mac",
                "fo_uplinks[1].usable",
                "fo_devices[1]",
                "fo_uplinks[5].usable",
                "fo_policy.active",
            ]
        );
        assert_eq!(
            repairs.drifts[0],
            Drift {
                what: "fo_uplinks[0].addr".to_owned(),
                found: "192.0.2.99".to_owned(),
                wanted: "192.0.2.2".to_owned(),
            }
        );
        assert_eq!(repairs.drifts[3].found, "empty");
        assert_eq!(repairs.drifts[3].wanted, "ifindex 4");
    }

    #[test]
    fn a_lan_device_pointing_elsewhere_is_drift() {
        let intent = intent();
        let mut found = faithful(&intent);
        found.lan_device = Some(9);
        let repairs = compare(&intent, &found);
        assert!(repairs.lan);
        assert_eq!(repairs.drifts[0].what, "fo_devices[8]");
    }

    #[test]
    fn an_empty_slot_with_ifindex_0_is_no_target() {
        let intent = intent();
        let mut found = faithful(&intent);
        found.uplinks[6].1 = Some(0);
        assert!(compare(&intent, &found).is_empty());
    }
}
