//! Which data path can serve an interface, decided from what the kernel says about it: its
//! link type, its driver and (kernel 6.3 and later) the XDP features it reports through the
//! `netdev` generic-netlink family. One pure function, [`choose`], so the rules are read and
//! tested in one place.
//!
//! Each Ethernet interface gets an XDP program and, behind it, a TC program; a headerless one
//! the TC program only. The choice is written into the data plane's maps as [`flags`]: an
//! XDP program hands a flow to TC when an interface it crosses is on the TC path.
//!
//! The XDP path needs, on every interface a flow crosses, an Ethernet header (the programs
//! parse and rewrite one; generic XDP on a headerless device would read the IP header as
//! Ethernet), a driver that runs XDP programs and redirects from them, and a driver that can
//! transmit frames redirected into it (`ndo_xdp_xmit`): the LAN takes the replies, each
//! uplink the LAN's packets. Anything else needs the TC path.

use std::fmt;

use failover_common::nat::path;
use serde::Deserialize;

/// `ARPHRD_ETHER` (`linux/if_arp.h`): the link type of Ethernet-framed devices.
pub const ARPHRD_ETHER: u16 = 1;

/// The XDP features a device reports (`NETDEV_A_DEV_XDP_FEATURES`, linux/netdev.h).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct XdpFeatures(pub u64);

impl XdpFeatures {
    /// `NETDEV_XDP_ACT_BASIC`: the driver runs XDP programs (pass, drop, tx).
    pub const BASIC: u64 = 1 << 0;
    /// `NETDEV_XDP_ACT_REDIRECT`: programs on it may redirect.
    pub const REDIRECT: u64 = 1 << 1;
    /// `NETDEV_XDP_ACT_NDO_XMIT`: frames redirected to it are sent (`ndo_xdp_xmit`).
    pub const NDO_XMIT: u64 = 1 << 2;

    const fn has(self, feature: u64) -> bool {
        self.0 & feature == feature
    }
}

/// What the kernel says about one interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Facts {
    /// `ARPHRD_*` (`/sys/class/net/IF/type`).
    pub link_type: u16,
    /// The driver's name, when the kernel gives it (`ethtool -i`).
    pub driver: Option<String>,
    /// `None` when the kernel does not report XDP features (before 6.3).
    pub xdp: Option<XdpFeatures>,
}

/// A data path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Path {
    /// XDP in the driver (or generic XDP with `skb_mode`).
    Xdp,
    /// A TC program (`clsact`, `cls_bpf`) on the skb.
    Tc,
}

impl Path {
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Xdp => "xdp",
            Self::Tc => "tc",
        }
    }
}

/// The path an interface can take, and why, in words for the operator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Choice {
    pub path: Path,
    pub why: String,
}

impl fmt::Display for Choice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.path.name(), self.why)
    }
}

/// The operator's say per interface (`datapath` in the config).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// From what the kernel says ([`choose`]).
    #[default]
    Auto,
    /// XDP, whatever the kernel reports (a driver this kernel does not describe).
    Xdp,
    /// TC only: no XDP program on the interface.
    Tc,
}

impl Mode {
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Xdp => "xdp",
            Self::Tc => "tc",
        }
    }
}

impl std::str::FromStr for Mode {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "auto" => Ok(Self::Auto),
            "xdp" => Ok(Self::Xdp),
            "tc" => Ok(Self::Tc),
            _ => Err(format!("`{text}`: the data path is auto, xdp or tc")),
        }
    }
}

/// [`choose`], with the operator's `mode` applied; `Err` when the mode cannot serve the
/// interface.
pub fn choose_with(facts: &Facts, skb_mode: bool, mode: Mode) -> Result<Choice, String> {
    let auto = choose(facts, skb_mode);
    match mode {
        Mode::Auto => Ok(auto),
        Mode::Tc => Ok(Choice {
            path: Path::Tc,
            why: "datapath = \"tc\" in the config".to_owned(),
        }),
        Mode::Xdp if facts.link_type != ARPHRD_ETHER => {
            Err(format!("datapath = \"xdp\" cannot serve it: {}", auto.why))
        }
        Mode::Xdp => Ok(Choice {
            path: Path::Xdp,
            why: format!("datapath = \"xdp\" in the config (automatic: {auto})"),
        }),
    }
}

/// Whether an XDP program goes on an interface of this link type: Ethernet only (the
/// programs parse an Ethernet header), and not where the operator said TC.
#[must_use]
pub fn attaches_xdp(link_type: u16, mode: Mode) -> bool {
    link_type == ARPHRD_ETHER && mode != Mode::Tc
}

/// The data plane's [`path`] flags for an interface: `choice` (unknown: the TC path, which
/// reaches any interface), its link type, and whether an XDP program of ours runs on it.
#[must_use]
pub fn flags(choice: Option<&Choice>, link_type: u16, xdp_attached: bool) -> u8 {
    let mut flags = 0;
    if link_type != ARPHRD_ETHER {
        flags |= path::L3;
    }
    if choice.is_none_or(|c| c.path == Path::Tc) {
        flags |= path::TC;
    }
    if xdp_attached {
        flags |= path::XDP;
    }
    flags
}

/// Drivers known to run XDP natively with `ndo_xdp_xmit` on the kernels this supports: the
/// conservative answer where the kernel does not report XDP features. veth is not among
/// them: it takes redirected frames only while its peer has GRO or an XDP program.
const XDP_DRIVERS: [&str; 14] = [
    "mlx5_core",
    "mlx4_en",
    "i40e",
    "ice",
    "ixgbe",
    "igb",
    "igc",
    "bnxt_en",
    "virtio_net",
    "ena",
    "nfp",
    "qede",
    "stmmaceth",
    "mvneta",
];

/// The path `facts` allow. `skb_mode` (generic XDP, which any Ethernet device runs, and
/// which transmits redirected frames through the kernel's stack) answers for drivers
/// without native XDP.
#[must_use]
pub fn choose(facts: &Facts, skb_mode: bool) -> Choice {
    let driver = facts.driver.as_deref().unwrap_or("unknown driver");
    if facts.link_type != ARPHRD_ETHER {
        return Choice {
            path: Path::Tc,
            why: format!(
                "{driver}: no Ethernet header (link type {}), as raw-IP modems, ppp and tunnels",
                facts.link_type
            ),
        };
    }
    if skb_mode {
        return Choice {
            path: Path::Xdp,
            why: "generic XDP (skb_mode)".to_owned(),
        };
    }
    match facts.xdp {
        Some(features) if !features.has(XdpFeatures::BASIC | XdpFeatures::REDIRECT) => Choice {
            path: Path::Tc,
            why: format!("{driver}: no native XDP with redirects (kernel-reported features)"),
        },
        Some(features) if !features.has(XdpFeatures::NDO_XMIT) => Choice {
            path: Path::Tc,
            why: format!(
                "{driver}: cannot send frames redirected to it (no ndo_xdp_xmit; a veth whose peer has neither GRO nor an XDP program)"
            ),
        },
        Some(_) => Choice {
            path: Path::Xdp,
            why: format!("{driver}: native XDP, redirect target (kernel-reported features)"),
        },
        None if XDP_DRIVERS.contains(&driver) => Choice {
            path: Path::Xdp,
            why: format!("{driver}: known to run native XDP (this kernel reports no features)"),
        },
        None => Choice {
            path: Path::Tc,
            why: format!(
                "{driver}: not known to run native XDP and this kernel reports no XDP features"
            ),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARPHRD_NONE: u16 = 0xfffe;
    const ARPHRD_RAWIP: u16 = 519;
    const ARPHRD_PPP: u16 = 512;
    const FULL: u64 = XdpFeatures::BASIC | XdpFeatures::REDIRECT | XdpFeatures::NDO_XMIT;
    const NO_XMIT: u64 = XdpFeatures::BASIC | XdpFeatures::REDIRECT;

    fn facts(link_type: u16, driver: &str, xdp: Option<u64>) -> Facts {
        Facts {
            link_type,
            driver: Some(driver.to_owned()),
            xdp: xdp.map(XdpFeatures),
        }
    }

    #[test]
    fn the_drivers_users_plug_in_get_the_path_they_can_take() {
        for (link_type, driver, xdp, want) in [
            // NICs with native XDP, on kernels that report features and on older ones.
            (ARPHRD_ETHER, "mlx5_core", Some(FULL), Path::Xdp),
            (ARPHRD_ETHER, "ixgbe", None, Path::Xdp),
            (ARPHRD_ETHER, "virtio_net", Some(FULL), Path::Xdp),
            // A NIC without native XDP (small routers).
            (ARPHRD_ETHER, "r8169", Some(0), Path::Tc),
            (ARPHRD_ETHER, "r8169", None, Path::Tc),
            // USB 4G modems in Ethernet mode: no XDP at all.
            (ARPHRD_ETHER, "cdc_ether", Some(0), Path::Tc),
            (ARPHRD_ETHER, "rndis_host", None, Path::Tc),
            (ARPHRD_ETHER, "cdc_mbim", Some(0), Path::Tc),
            // Raw-IP modems, PCIe LTE modules, ppp, WireGuard, tun: no Ethernet header.
            (ARPHRD_NONE, "qmi_wwan", Some(0), Path::Tc),
            (ARPHRD_RAWIP, "mhi_net", None, Path::Tc),
            (ARPHRD_PPP, "ppp", None, Path::Tc),
            (ARPHRD_NONE, "wireguard", Some(0), Path::Tc),
            (ARPHRD_NONE, "tun", Some(FULL), Path::Tc),
            // veth: a redirect target only while its peer has GRO or an XDP program.
            (ARPHRD_ETHER, "veth", Some(FULL), Path::Xdp),
            (ARPHRD_ETHER, "veth", Some(NO_XMIT), Path::Tc),
            (ARPHRD_ETHER, "veth", None, Path::Tc),
        ] {
            let choice = choose(&facts(link_type, driver, xdp), false);
            assert_eq!(choice.path, want, "{driver} {link_type} {xdp:?}: {choice}");
            assert!(choice.why.contains(driver), "{choice}");
        }
    }

    #[test]
    fn generic_xdp_serves_ethernet_only() {
        let r8169 = facts(ARPHRD_ETHER, "r8169", Some(0));
        assert_eq!(choose(&r8169, true).path, Path::Xdp);
        let modem = facts(ARPHRD_RAWIP, "mhi_net", None);
        assert_eq!(
            choose(&modem, true).path,
            Path::Tc,
            "generic XDP would read the IP header as Ethernet"
        );
    }

    #[test]
    fn the_operator_overrides_where_the_interface_allows() {
        let veth = facts(ARPHRD_ETHER, "veth", Some(NO_XMIT));
        assert_eq!(
            choose_with(&veth, false, Mode::Auto).unwrap().path,
            Path::Tc
        );
        let forced = choose_with(&veth, false, Mode::Xdp).unwrap();
        assert_eq!(forced.path, Path::Xdp);
        assert!(forced.why.contains("automatic: tc"), "{forced}");
        let mlx = facts(ARPHRD_ETHER, "mlx5_core", Some(FULL));
        assert_eq!(choose_with(&mlx, false, Mode::Tc).unwrap().path, Path::Tc);
        let wg = facts(ARPHRD_NONE, "wireguard", Some(0));
        let refused = choose_with(&wg, false, Mode::Xdp).unwrap_err();
        assert!(refused.contains("no Ethernet header"), "{refused}");
        assert!(attaches_xdp(ARPHRD_ETHER, Mode::Auto));
        assert!(!attaches_xdp(ARPHRD_ETHER, Mode::Tc));
        assert!(!attaches_xdp(ARPHRD_NONE, Mode::Xdp));
        for (text, mode) in [("auto", Mode::Auto), ("xdp", Mode::Xdp), ("tc", Mode::Tc)] {
            assert_eq!(text.parse::<Mode>(), Ok(mode));
        }
        assert!("XDP".parse::<Mode>().is_err());
    }

    #[test]
    fn flags_tell_the_data_plane_what_each_interface_takes() {
        let xdp = Choice {
            path: Path::Xdp,
            why: String::new(),
        };
        let tc = Choice {
            path: Path::Tc,
            why: String::new(),
        };
        assert_eq!(flags(Some(&xdp), ARPHRD_ETHER, true), path::XDP);
        assert_eq!(flags(Some(&tc), ARPHRD_ETHER, true), path::TC | path::XDP);
        assert_eq!(flags(Some(&tc), ARPHRD_NONE, false), path::TC | path::L3);
        assert_eq!(
            flags(None, ARPHRD_ETHER, false),
            path::TC,
            "unknown: TC reaches it"
        );
    }

    #[test]
    fn an_unknown_driver_is_named_as_such() {
        let choice = choose(
            &Facts {
                link_type: ARPHRD_ETHER,
                driver: None,
                xdp: None,
            },
            false,
        );
        assert_eq!(choice.path, Path::Tc);
        assert!(choice.why.starts_with("unknown driver"), "{choice}");
    }
}
