//! Which programs go on which interface, and attaching them. Every managed interface gets
//! a TC ingress program; an Ethernet interface an XDP program in front of it, unless the
//! operator said `datapath = "tc"`. Which flows take which path is decided per packet from
//! the interfaces' [`crate::datapath::flags`] in the maps, so a path that changes while the
//! controller runs (a veth peer losing GRO) needs no re-attach.

use aya::{
    Ebpf,
    programs::{
        TcAttachType,
        links::FdLink,
        tc::SchedClassifierLinkId,
        xdp::{XdpLinkId, XdpMode},
    },
};
use failover_common::names;

use crate::{
    datapath::{self, Choice, Mode},
    dataplane, interface_facts,
    loader::LoaderError,
    pins::{PinError, Pins},
};

/// The LAN, or an uplink.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Lan,
    Uplink,
}

/// What was decided for one interface at start.
#[derive(Clone, Debug)]
pub struct Planned {
    pub interface: String,
    pub role: Role,
    /// `ARPHRD_*`: whether frames on it carry an Ethernet header.
    pub link_type: u16,
    /// An XDP program of ours goes on it.
    pub xdp: bool,
    pub mode: Mode,
    /// The path its flows take, as decided at start.
    pub choice: Choice,
}

impl Planned {
    /// The programs that go on it, XDP first.
    #[must_use]
    pub fn programs(&self) -> Vec<&'static str> {
        programs(self.role, self.link_type, self.xdp)
    }

    /// The data plane's flags for it, with `choice` the path as decided now.
    #[must_use]
    pub fn flags(&self, choice: Option<&Choice>) -> u8 {
        datapath::flags(choice, self.link_type, self.xdp)
    }

    /// The flags for the path decided at start.
    #[must_use]
    pub fn planned_flags(&self) -> u8 {
        self.flags(Some(&self.choice))
    }
}

/// What the start decided for the LAN and for each uplink (in the order of the spec).
#[derive(Clone, Debug)]
pub struct Plans {
    pub lan: Planned,
    pub uplinks: Vec<Planned>,
}

impl Plans {
    /// Every (program, interface), as the pins name them.
    #[must_use]
    pub fn wanted(&self) -> Vec<(&'static str, String)> {
        std::iter::once(&self.lan)
            .chain(&self.uplinks)
            .flat_map(|p| {
                p.programs()
                    .into_iter()
                    .map(|prog| (prog, p.interface.clone()))
            })
            .collect()
    }
}

/// The programs for an interface of `role` and link type.
#[must_use]
pub fn programs(role: Role, link_type: u16, xdp: bool) -> Vec<&'static str> {
    let ethernet = link_type == datapath::ARPHRD_ETHER;
    let (xdp_program, tc_program) = match role {
        Role::Lan => (names::PROG_LAN_INGRESS, names::PROG_LAN_TC),
        Role::Uplink if ethernet => (names::PROG_UPLINK_INGRESS, names::PROG_UPLINK_TC),
        Role::Uplink => (names::PROG_UPLINK_INGRESS, names::PROG_UPLINK_TC_L3),
    };
    if xdp {
        vec![xdp_program, tc_program]
    } else {
        vec![tc_program]
    }
}

/// Reads what the kernel says about `interface` and decides what goes on it.
pub fn plan(
    interface: &str,
    ifindex: u32,
    role: Role,
    mode: Mode,
    skb_mode: bool,
) -> Result<Planned, LoaderError> {
    let facts = interface_facts::read(interface, ifindex)
        .map_err(|e| LoaderError::System("reading the interface's link type", e))?;
    let refused = |message: String| LoaderError::Datapath {
        interface: interface.to_owned(),
        message,
    };
    if role == Role::Lan && facts.link_type != datapath::ARPHRD_ETHER {
        return Err(refused(format!(
            "the LAN must be an Ethernet interface (link type {})",
            facts.link_type
        )));
    }
    let choice = datapath::choose_with(&facts, skb_mode, mode).map_err(refused)?;
    Ok(Planned {
        interface: interface.to_owned(),
        role,
        link_type: facts.link_type,
        xdp: datapath::attaches_xdp(facts.link_type, mode),
        mode,
        choice,
    })
}

/// An attachment held by an unpinned data plane.
pub enum Attached {
    Xdp(XdpLinkId),
    Tc(SchedClassifierLinkId),
}

/// Attaches each (program, interface); with `pins`, pins each link (so the program stays
/// attached after the controller exits) and returns no attachment to hold.
pub fn attach_all(
    ebpf: &mut Ebpf,
    wanted: &[(&'static str, String)],
    mode: XdpMode,
    pins: Option<&Pins>,
) -> Result<Vec<Attached>, LoaderError> {
    let mut held = Vec::new();
    for (program, interface) in wanted {
        let attached = attach(ebpf, program, interface, mode)?;
        match pins {
            // A pinned link keeps the program attached after the controller exits.
            Some(pins) => {
                let link = fd_link(ebpf, program, interface, attached)?;
                pins.pin_link(link, program, interface)?;
            }
            None => held.push(attached),
        }
    }
    Ok(held)
}

fn attach(
    ebpf: &mut Ebpf,
    program: &'static str,
    interface: &str,
    mode: XdpMode,
) -> Result<Attached, LoaderError> {
    if names::TC_PROGRAMS.contains(&program) {
        let id = dataplane::tc_program(ebpf, program)?
            .attach(interface, TcAttachType::Ingress)
            .map_err(|source| attach_failed(program, interface, source, TC_HINT))?;
        return Ok(Attached::Tc(id));
    }
    let hint = if mode == XdpMode::Skb {
        ""
    } else {
        " (if the driver lacks native XDP, use generic XDP: --skb-mode, or datapath = \"tc\")"
    };
    let id = dataplane::xdp_program(ebpf, program)?
        .attach(interface, mode)
        .map_err(|source| attach_failed(program, interface, source, hint))?;
    Ok(Attached::Xdp(id))
}

/// The attachment as a link that can be pinned.
fn fd_link(
    ebpf: &mut Ebpf,
    program: &'static str,
    interface: &str,
    attached: Attached,
) -> Result<FdLink, LoaderError> {
    let taken = |e: aya::programs::ProgramError| pin_failed(program, interface, &e.to_string());
    let link = match attached {
        Attached::Tc(id) => FdLink::try_from(dataplane::tc_program(ebpf, program)?.take_link(id).map_err(taken)?)
            .map_err(|e| {
                pin_failed(program, interface, &format!("{e} (TC without a BPF link: kernels before 6.6 attach it by netlink, which cannot be pinned)"))
            })?,
        Attached::Xdp(id) => FdLink::try_from(dataplane::xdp_program(ebpf, program)?.take_link(id).map_err(taken)?)
            .map_err(|e| {
                pin_failed(program, interface, &format!("{e} (the kernel attached XDP without a BPF link, which cannot be pinned)"))
            })?,
    };
    Ok(link)
}

const TC_HINT: &str = " (the TC path needs kernel 6.6 for TCX links, or a clsact qdisc)";

fn attach_failed(
    program: &'static str,
    interface: &str,
    source: aya::programs::ProgramError,
    hint: &'static str,
) -> LoaderError {
    LoaderError::Attach {
        program,
        interface: interface.to_owned(),
        source: Box::new(source),
        hint,
    }
}

fn pin_failed(program: &'static str, interface: &str, message: &str) -> PinError {
    PinError::Link {
        program,
        interface: interface.to_owned(),
        message: message.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARPHRD_NONE: u16 = 0xfffe;

    #[test]
    fn each_interface_gets_the_programs_its_header_allows() {
        assert_eq!(
            programs(Role::Lan, datapath::ARPHRD_ETHER, true),
            [names::PROG_LAN_INGRESS, names::PROG_LAN_TC]
        );
        assert_eq!(
            programs(Role::Uplink, datapath::ARPHRD_ETHER, true),
            [names::PROG_UPLINK_INGRESS, names::PROG_UPLINK_TC]
        );
        assert_eq!(
            programs(Role::Uplink, datapath::ARPHRD_ETHER, false),
            [names::PROG_UPLINK_TC],
            "datapath = \"tc\": no XDP program"
        );
        assert_eq!(
            programs(Role::Uplink, ARPHRD_NONE, false),
            [names::PROG_UPLINK_TC_L3]
        );
    }
}
