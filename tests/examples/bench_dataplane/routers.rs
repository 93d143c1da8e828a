//! The router variants in the middle of the chain, each put in place for one round and
//! removed after it, so the variants take turns in the same chain.

use anyhow::{Context, Result};
use aya::{
    Ebpf, EbpfLoader,
    maps::Array,
    programs::{TcAttachType, XdpMode, tc::SchedClassifierLinkId, xdp::XdpLinkId},
};
use failover_common::{bench, names, nat};
use failover_tests::{lab::Cmd, netns};
use failover_user::dataplane;

use crate::chain::{self, R0, R1, ROUTER_NS, S0};
use crate::options::RouterKind;
use crate::traffic::set_devmap;

/// A variant ready to measure, or why it cannot be.
pub enum Prepared {
    Ready(Router),
    Unavailable(String),
}

pub enum Router {
    /// Linux forwarding: always in place (forwarding on, static neighbour, GRO on r0).
    Linux,
    /// Linux forwarding with the [`MASQUERADE`] table added for the round.
    Nft,
    /// An XDP program attached to r0 for the round, with Linux forwarding off.
    Xdp(XdpRouter),
    /// The NAT's TC program on r0's ingress for the round, with Linux forwarding off.
    Tc(TcRouter),
}

/// nftables masquerade on the router's egress, as a home router would have it.
const MASQUERADE: &str = "table ip fob_nat {
  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    oifname \"r1\" masquerade
  }
}
";

pub fn prepare(kind: RouterKind) -> Result<Prepared> {
    Ok(match kind {
        RouterKind::Linux => Prepared::Ready(Router::Linux),
        RouterKind::Nft => {
            // A trial run: a kernel or nft without NAT support makes this variant unavailable.
            let mut router = Router::Nft;
            match router.install().and_then(|()| router.remove()) {
                Ok(()) => Prepared::Ready(router),
                Err(e) => Prepared::Unavailable(format!("nftables masquerade failed: {e:#}")),
            }
        }
        RouterKind::Xdp => {
            let ebpf = EbpfLoader::new()
                .load(dataplane::BENCH_OBJECT)
                .context("loading the bench object")?;
            let r1 = chain::ifindex(R1)?;
            Prepared::Ready(Router::Xdp(XdpRouter::new(
                ebpf,
                bench::PROG_SWAP_REDIRECT,
                |ebpf| set_devmap(ebpf, bench::MAP_ROUTER_TX, r1),
            )?))
        }
        RouterKind::Nat => failover_nat()?,
        RouterKind::NatTc => failover_nat_tc()?,
        RouterKind::TcFloor => {
            let mut ebpf = EbpfLoader::new()
                .load(dataplane::BENCH_OBJECT)
                .context("loading the bench object")?;
            let r1 = chain::ifindex(R1)?;
            let mut egress = Array::<_, u32>::try_from(
                ebpf.map_mut(bench::MAP_ROUTER_TC_TX)
                    .context("the bench object has no TC router map")?,
            )?;
            egress.set(0, r1, 0)?;
            Prepared::Ready(Router::Tc(TcRouter::new(
                ebpf,
                bench::PROG_TC_SWAP_REDIRECT,
            )?))
        }
    })
}

/// The NAT's maps for the chain, filled inside the router namespace (where the devmap
/// slots resolve r0 and r1).
fn fill_nat(ebpf: &mut Ebpf, r0: u32, r1: u32) -> Result<()> {
    dataplane::set_uplink(ebpf, 0, nat_uplink(r1))?;
    dataplane::set_policy(ebpf, nat::Policy::single(0))?;
    dataplane::set_lan(ebpf, nat_lan(r0))?;
    Ok(())
}

/// (e) The same NAT on the TC path: `fo_lan_tc` on r0's ingress translates and redirects
/// to r1 with `bpf_redirect`.
fn failover_nat_tc() -> Result<Prepared> {
    let (r0, r1) = (chain::ifindex(R0)?, chain::ifindex(R1)?);
    let mut ebpf = dataplane::open(BENCH_TABLES)?;
    netns::in_netns(ROUTER_NS, || fill_nat(&mut ebpf, r0, r1))??;
    Ok(Prepared::Ready(Router::Tc(TcRouter::new(
        ebpf,
        names::PROG_LAN_TC,
    )?)))
}

/// (d) The failover NAT data plane: `fo_lan_ingress` on r0 translates every flow to r1's
/// address and redirects it to the sink. The chain sends one way only (LAN -> uplink), so
/// `fo_wan_ingress` needs no attachment.
fn failover_nat() -> Result<Prepared> {
    let (r0, r1) = (chain::ifindex(R0)?, chain::ifindex(R1)?);
    let ebpf = dataplane::open(BENCH_TABLES)?;
    let router = XdpRouter::new(ebpf, names::PROG_LAN_INGRESS, move |ebpf| {
        fill_nat(ebpf, r0, r1)
    })?;
    Ok(Prepared::Ready(Router::Xdp(router)))
}

/// NAT tables with room for the largest flow count measured (1M) and LRU headroom, so the
/// steady state measures hits, not evictions.
pub const BENCH_TABLES: dataplane::TableSizes = dataplane::TableSizes {
    flows: 1 << 21,
    bindings: 1 << 21,
};

/// The chain's uplink as the NAT's uplinks map describes it: r1, towards the sink.
pub fn nat_uplink(r1: u32) -> nat::Uplink {
    nat::Uplink {
        ifindex: r1,
        addr: R1.addr.octets(),
        mac: R1.mac,
        gateway_mac: S0.mac,
        port_min: 1024,
        port_max: 65535,
        mss: 0,
        usable: 1,
        path: 0,
    }
}

/// The chain's LAN side: r0's network.
pub fn nat_lan(r0: u32) -> nat::Lan {
    let mut net = R0.addr.octets();
    net[3] = 0;
    nat::Lan {
        ifindex: r0,
        net,
        prefix_len: chain::PREFIX_LEN,
        path: 0,
        _pad: [0; 2],
    }
}

impl Router {
    /// Puts the variant in place for a round.
    pub fn install(&mut self) -> Result<()> {
        match self {
            Self::Linux => Ok(()),
            Self::Nft => {
                Cmd::in_ns(ROUTER_NS, "nft")
                    .args(["-f", "-"])
                    .stdin(MASQUERADE)
                    .run()?;
                Ok(())
            }
            Self::Xdp(router) => {
                // Frames the program hands to the kernel (XDP_PASS) must not reach the sink
                // through Linux forwarding and count as forwarded by the program.
                chain::set_forwarding(false)?;
                router.attach()
            }
            Self::Tc(router) => {
                chain::set_forwarding(false)?;
                router.attach()
            }
        }
    }

    /// Takes the variant out again, leaving plain Linux forwarding.
    pub fn remove(&mut self) -> Result<()> {
        match self {
            Self::Linux => Ok(()),
            Self::Nft => {
                Cmd::in_ns(ROUTER_NS, "nft")
                    .args(["delete", "table", "ip", "fob_nat"])
                    .run()?;
                Ok(())
            }
            Self::Xdp(router) => {
                router.detach()?;
                chain::set_forwarding(true)
            }
            Self::Tc(router) => {
                router.detach()?;
                chain::set_forwarding(true)
            }
        }
    }
}

/// An XDP program that routes from r0: attached (native mode) for a round, detached after.
pub struct XdpRouter {
    ebpf: Ebpf,
    program: &'static str,
    ingress: u32,
    link: Option<XdpLinkId>,
}

impl XdpRouter {
    /// Loads `program` of `ebpf` and runs `fill` to set up its maps on a thread inside the
    /// router namespace (devmap entries resolve interface indexes in the updater's namespace).
    pub fn new(
        mut ebpf: Ebpf,
        program: &'static str,
        fill: impl FnOnce(&mut Ebpf) -> Result<()> + Send,
    ) -> Result<Self> {
        dataplane::xdp_program(&mut ebpf, program)?;
        netns::in_netns(ROUTER_NS, || fill(&mut ebpf))??;
        Ok(Self {
            ebpf,
            program,
            ingress: chain::ifindex(R0)?,
            link: None,
        })
    }

    fn attach(&mut self) -> Result<()> {
        let program = dataplane::xdp_program(&mut self.ebpf, self.program)?;
        let ingress = self.ingress;
        let link = netns::in_netns(ROUTER_NS, || {
            program.attach_to_if_index(ingress, XdpMode::Driver)
        })?
        .with_context(|| format!("attaching {} to r0", self.program))?;
        self.link = Some(link);
        Ok(())
    }

    fn detach(&mut self) -> Result<()> {
        if let Some(link) = self.link.take() {
            dataplane::xdp_program(&mut self.ebpf, self.program)?.detach(link)?;
        }
        Ok(())
    }
}

/// A TC program on r0's ingress (a TCX link): attached for a round, detached after.
pub struct TcRouter {
    ebpf: Ebpf,
    program: &'static str,
    link: Option<SchedClassifierLinkId>,
}

impl TcRouter {
    /// Loads `program` of `ebpf`, whose maps are set.
    fn new(mut ebpf: Ebpf, program: &'static str) -> Result<Self> {
        dataplane::tc_program(&mut ebpf, program)?;
        Ok(Self {
            ebpf,
            program,
            link: None,
        })
    }

    fn attach(&mut self) -> Result<()> {
        let program = dataplane::tc_program(&mut self.ebpf, self.program)?;
        let link = netns::in_netns(ROUTER_NS, || program.attach(R0.name, TcAttachType::Ingress))?
            .with_context(|| format!("attaching {} to r0", self.program))?;
        self.link = Some(link);
        Ok(())
    }

    fn detach(&mut self) -> Result<()> {
        if let Some(link) = self.link.take() {
            dataplane::tc_program(&mut self.ebpf, self.program)?.detach(link)?;
        }
        Ok(())
    }
}
