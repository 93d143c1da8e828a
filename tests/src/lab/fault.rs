//! Faults injected at an ISP, in the ISP's namespace, as a real broken ISP would look to the
//! router. Each fault's state lives in the kernel (link state, MTU, an nft table named
//! `fo_fault_*` whose comment is the fault), so `active_faults` reads the truth back.

use std::fmt;
use std::ops::RangeInclusive;
use std::str::FromStr;

use anyhow::{Context, Result, bail};

use super::cmd::Cmd;
use super::nft::{self, Table};
use super::plan::{Isp, ParseError, Plan, Uplink};
use super::probe;

/// Something wrong with one ISP (see docs/lab.md for how each is made).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Fault {
    /// The router's uplink loses carrier: the ISP's end of the veth goes down.
    CarrierDown,
    /// The link stays up but the gateway neither answers nor sends anything, not even ARP.
    GatewaySilent,
    /// Like `GatewaySilent`, but ARP still works, so the neighbour resolves.
    GatewaySilentArp,
    /// The gateway answers ping and ARP itself but forwards nothing.
    UpstreamCut,
    /// N % random loss in each direction on the customer link.
    Loss(u8),
    /// The ISP's path MTU drops to N, so the gateway sends ICMP fragmentation-needed.
    Mtu(u16),
}

impl Fault {
    pub const LOSS_PERCENT: RangeInclusive<u8> = 0..=100;
    pub const MTU: RangeInclusive<u16> = 576..=1500;

    /// Rejects a percentage or MTU outside its range.
    pub fn validate(self) -> Result<Self, ParseError> {
        match self {
            Self::Loss(n) if !Self::LOSS_PERCENT.contains(&n) => Err(ParseError(format!(
                "loss={n}: the loss must be 0..=100 percent"
            ))),
            Self::Mtu(n) if !Self::MTU.contains(&n) => {
                Err(ParseError(format!("mtu={n}: the MTU must be 576..=1500")))
            }
            _ => Ok(self),
        }
    }

    /// The nft table that implements this fault, if it is one made with nftables.
    const fn table(self) -> Option<Table> {
        let name = match self {
            Self::GatewaySilent => "fo_fault_gateway_silent",
            Self::GatewaySilentArp => "fo_fault_gateway_silent_arp",
            Self::Loss(_) => "fo_fault_loss",
            Self::UpstreamCut => {
                return Some(Table {
                    family: "inet",
                    name: "fo_fault_upstream_cut",
                });
            }
            Self::CarrierDown | Self::Mtu(_) => return None,
        };
        Some(Table {
            family: "netdev",
            name,
        })
    }
}

/// Every nft table a fault can leave behind, for `heal` and `active_faults`.
const FAULT_TABLES: [Fault; 4] = [
    Fault::GatewaySilent,
    Fault::GatewaySilentArp,
    Fault::UpstreamCut,
    Fault::Loss(0),
];

const VALID: &str = "carrier-down, gateway-silent, gateway-silent-arp, upstream-cut, \
                     loss=N (N in 0..=100), mtu=N (N in 576..=1500)";

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::CarrierDown => f.write_str("carrier-down"),
            Self::GatewaySilent => f.write_str("gateway-silent"),
            Self::GatewaySilentArp => f.write_str("gateway-silent-arp"),
            Self::UpstreamCut => f.write_str("upstream-cut"),
            Self::Loss(n) => write!(f, "loss={n}"),
            Self::Mtu(n) => write!(f, "mtu={n}"),
        }
    }
}

impl FromStr for Fault {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let unknown = || ParseError(format!("unknown fault `{s}` (valid: {VALID})"));
        let fault = match s.split_once('=') {
            None => match s {
                "carrier-down" => Self::CarrierDown,
                "gateway-silent" => Self::GatewaySilent,
                "gateway-silent-arp" => Self::GatewaySilentArp,
                "upstream-cut" => Self::UpstreamCut,
                _ => return Err(unknown()),
            },
            Some(("loss", n)) => Self::Loss(n.parse().map_err(|_| unknown())?),
            Some(("mtu", n)) => Self::Mtu(n.parse().map_err(|_| unknown())?),
            Some(_) => return Err(unknown()),
        };
        fault.validate()
    }
}

/// Injects `fault` at `isp`. Faults combine; injecting `loss` or `mtu` again replaces the
/// value, and `loss=0` removes the loss.
pub fn fault(isp: Isp, fault: Fault) -> Result<()> {
    let fault = fault.validate()?;
    let up = isp.uplink();
    require_lab(up)?;
    let gateway = up.gateway.name;
    let apply = || -> Result<()> {
        match fault {
            Fault::CarrierDown => set_link(up.ns, gateway, "down"),
            Fault::Mtu(mtu) => set_path_mtu(up, mtu),
            Fault::Loss(0) => Table::remove_all(up.ns, &[fault_table(fault)]),
            Fault::GatewaySilent => replace(up.ns, fault, &mute_chains(gateway, &[])),
            Fault::GatewaySilentArp => replace(
                up.ns,
                fault,
                &mute_chains(gateway, &["ether type arp accept".into()]),
            ),
            Fault::UpstreamCut => {
                let body = nft::chain("forward", "filter hook forward priority 0", "drop", &[]);
                replace(up.ns, fault, &body)
            }
            Fault::Loss(n) => replace(up.ns, fault, &loss_chains(gateway, n)),
        }
    };
    apply().with_context(|| format!("injecting {fault} at {isp}"))
}

/// Removes every fault from `isp`; harmless when there is none.
pub fn heal(isp: Isp) -> Result<()> {
    let up = isp.uplink();
    require_lab(up)?;
    let heal = || -> Result<()> {
        Table::remove_all(up.ns, &FAULT_TABLES.map(fault_table))?;
        set_path_mtu(up, Plan::LINK_MTU)?;
        set_link(up.ns, up.gateway.name, "up")
    };
    heal().with_context(|| format!("healing {isp}"))
}

/// The faults active at `isp`, read from the kernel state they are made of.
pub fn active_faults(isp: Isp) -> Result<Vec<Fault>> {
    let up = isp.uplink();
    let mut faults = Vec::new();
    if !probe::link_state(up.ns, up.gateway.name)?.admin_up() {
        faults.push(Fault::CarrierDown);
    }
    for table in FAULT_TABLES.map(fault_table) {
        if let Some(comment) = table.comment(up.ns)? {
            faults.push(
                comment
                    .parse()
                    .with_context(|| format!("nft table {}", table.name))?,
            );
        }
    }
    let mtu = probe::link_state(up.ns, up.upstream.name)?.mtu;
    if mtu != u32::from(Plan::LINK_MTU) {
        faults.push(Fault::Mtu(u16::try_from(mtu).unwrap_or(u16::MAX)));
    }
    Ok(faults)
}

/// A clear error instead of iproute2's "Cannot open network namespace".
fn require_lab(up: &Uplink) -> Result<()> {
    if !crate::netns::exists(up.ns) {
        bail!(
            "the lab is not up (no namespace {}); run `lab up` first",
            up.ns
        );
    }
    Ok(())
}

fn fault_table(fault: Fault) -> Table {
    fault.table().expect("FAULT_TABLES lists only nft faults")
}

fn replace(ns: &str, fault: Fault, body: &str) -> Result<()> {
    fault_table(fault).replace(ns, &fault.to_string(), body)
}

fn set_link(ns: &str, dev: &str, state: &str) -> Result<()> {
    Cmd::ip(ns)
        .args(["link", "set", "dev", dev, state])
        .run()
        .map(drop)
}

/// Both ends of the ISP's transit link, so the gateway is the hop that must fragment.
fn set_path_mtu(up: &Uplink, mtu: u16) -> Result<()> {
    for end in [up.upstream, up.inet_side] {
        Cmd::ip(end.ns)
            .args(["link", "set", "dev", end.name, "mtu", &mtu.to_string()])
            .run()?;
    }
    Ok(())
}

/// Ingress and egress chains on the customer interface that drop everything but `allowed`:
/// the gateway neither hears nor says anything else.
fn mute_chains(dev: &str, allowed: &[String]) -> String {
    let hook = |dir: &str| format!("filter hook {dir} device \"{dev}\" priority -500");
    nft::chain("from_router", &hook("ingress"), "drop", allowed)
        + &nft::chain("to_router", &hook("egress"), "drop", allowed)
}

/// Random drops of `percent` % in each direction on the customer interface.
fn loss_chains(dev: &str, percent: u8) -> String {
    let hook = |dir: &str| format!("filter hook {dir} device \"{dev}\" priority 0");
    let rule = [format!("numgen random mod 100 < {percent} drop")];
    nft::chain("from_router", &hook("ingress"), "accept", &rule)
        + &nft::chain("to_router", &hook("egress"), "accept", &rule)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_round_trip_through_their_names() {
        let all = [
            Fault::CarrierDown,
            Fault::GatewaySilent,
            Fault::GatewaySilentArp,
            Fault::UpstreamCut,
            Fault::Loss(0),
            Fault::Loss(100),
            Fault::Mtu(576),
            Fault::Mtu(1500),
        ];
        for fault in all {
            assert_eq!(fault.to_string().parse::<Fault>(), Ok(fault));
        }
    }

    #[test]
    fn bad_fault_names_and_values_are_explained() {
        for bad in [
            "gateway-dead",
            "loss=101",
            "loss=x",
            "mtu=575",
            "mtu=1501",
            "speed=3",
            "",
        ] {
            let err = bad.parse::<Fault>().unwrap_err().to_string();
            assert!(err.contains(bad) || bad.is_empty(), "{bad}: {err}");
        }
        let err = "nope".parse::<Fault>().unwrap_err().to_string();
        assert!(
            err.contains("carrier-down") && err.contains("mtu=N"),
            "{err}"
        );
    }

    #[test]
    fn every_nft_fault_has_its_own_table() {
        let mut names: Vec<_> = FAULT_TABLES.map(|f| fault_table(f).name).to_vec();
        names.dedup();
        assert_eq!(names.len(), FAULT_TABLES.len());
        assert!(names.iter().all(|n| n.starts_with("fo_fault_")));
    }
}
