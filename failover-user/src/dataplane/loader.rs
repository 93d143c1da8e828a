//! The minimal loader: loads the data plane, describes the LAN and the uplinks in its maps
//! (addresses, MACs, gateway MACs learned from the kernel), chooses the active uplink and
//! attaches the programs (`attachments`). The controller (health probes, policy) builds on it.

use std::{net::Ipv4Addr, time::Duration};

use aya::programs::xdp::XdpMode;
use failover_common::{
    names,
    nat::{self, Lan, Policy, Uplink},
};
use tracing::{debug, info, warn};

use crate::{
    attachments::{self, Attached, Plans, Role},
    datapath::Mode,
    dataplane::{self, Dataplane, DataplaneError, TableSizes},
    kernel_guard::{self, GuardCounter, GuardSpec, KernelGuard, Ruleset},
    netlink::{Netlink, NetlinkError},
    nftables::NftError,
    pins::{PinError, Pins},
    probe::{PathError, ProbePath},
};

/// How long the start waits for each gateway's MAC to be resolved.
const NEIGHBOUR_PATIENCE_AT_START: Duration = Duration::from_secs(2);

/// One uplink to manage.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UplinkSpec {
    pub name: String,
    pub interface: String,
    /// The ISP gateway; learned from the routing table when absent.
    pub gateway: Option<Ipv4Addr>,
    pub ports: (u16, u16),
    /// MSS clamp for TCP SYNs through this uplink; 0: off.
    pub mss: u16,
    /// The operator's say on its data path.
    pub datapath: Mode,
}

impl std::str::FromStr for UplinkSpec {
    type Err = String;

    /// `NAME=INTERFACE[,gateway=IP][,mss=N][,ports=MIN-MAX][,datapath=auto|xdp|tc]`, e.g.
    /// `lte=wwan0,mss=1360`.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (name, rest) = text.split_once('=').ok_or_else(|| {
            format!(
                "`{text}`: expected NAME=INTERFACE[,gateway=IP][,mss=N][,ports=MIN-MAX][,datapath=MODE]"
            )
        })?;
        let mut parts = rest.split(',');
        let interface = parts.next().unwrap_or_default();
        if name.is_empty() || interface.is_empty() {
            return Err(format!(
                "`{text}`: the uplink needs a name and an interface"
            ));
        }
        let mut spec = UplinkSpec {
            name: name.to_owned(),
            interface: interface.to_owned(),
            gateway: None,
            ports: (nat::DEFAULT_PORT_MIN, nat::DEFAULT_PORT_MAX),
            mss: 0,
            datapath: Mode::Auto,
        };
        for option in parts {
            let (key, value) = option
                .split_once('=')
                .ok_or_else(|| format!("`{option}`: expected KEY=VALUE"))?;
            match key {
                "gateway" => {
                    spec.gateway = Some(
                        value
                            .parse()
                            .map_err(|e| format!("gateway `{value}`: {e}"))?,
                    );
                }
                "mss" => {
                    spec.mss = value.parse().map_err(|e| format!("mss `{value}`: {e}"))?;
                    if !(536..=9000).contains(&spec.mss) {
                        return Err(format!("mss {}: must be between 536 and 9000", spec.mss));
                    }
                }
                "ports" => spec.ports = crate::config::parse_port_range(value)?,
                "datapath" => spec.datapath = value.parse()?,
                _ => {
                    return Err(format!(
                        "unknown uplink option `{key}` (known: gateway, mss, ports, datapath)"
                    ));
                }
            }
        }
        Ok(spec)
    }
}

/// What to load and where.
#[derive(Clone, Debug)]
pub struct LoaderSpec {
    /// The data plane's log level.
    pub dataplane_log: crate::config::DataplaneLog,
    /// Pin maps and links here (the data plane then outlives the process, and a later start
    /// adopts it); `None`: everything goes when the process does.
    pub pins: Option<std::path::PathBuf>,
    pub lan: String,
    pub uplinks: Vec<UplinkSpec>,
    pub active: String,
    /// Generic (skb) XDP instead of the driver's native XDP.
    pub skb_mode: bool,
    /// The operator's say on the LAN's data path.
    pub lan_datapath: Mode,
    pub tables: TableSizes,
}

#[derive(Debug, thiserror::Error)]
pub enum LoaderError {
    #[error(transparent)]
    Dataplane(#[from] DataplaneError),
    #[error(transparent)]
    Netlink(#[from] NetlinkError),
    #[error("interface `{0}` has no IPv4 address")]
    NoAddress(String),
    #[error("uplink `{uplink}`: no gateway given and no route through `{interface}` names one")]
    NoGateway { uplink: String, interface: String },
    #[error("the active uplink `{0}` is not one of the uplinks")]
    UnknownActive(String),
    #[error("uplink slot {0} holds no uplink")]
    UnknownSlot(u32),
    #[error("at most {} uplinks", nat::MAX_UPLINKS)]
    TooManyUplinks,
    #[error(
        "uplink `{uplink}`: port range {min}-{max} overlaps the kernel's local port range {kmin}-{kmax}; \
         the router's own connections would collide with translated flows (choose a range outside it)"
    )]
    PortRangeOverlap {
        uplink: String,
        min: u16,
        max: u16,
        kmin: u16,
        kmax: u16,
    },
    #[error("attaching {program} to `{interface}` failed: {source}{hint}")]
    Attach {
        program: &'static str,
        interface: String,
        #[source]
        source: Box<aya::programs::ProgramError>,
        hint: &'static str,
    },
    #[error("{0}: {1}")]
    System(&'static str, std::io::Error),
    #[error("`{interface}`: {message}")]
    Datapath { interface: String, message: String },
    #[error(transparent)]
    Pins(#[from] PinError),
    #[error(
        "uplink `{uplink}`: port range {min}-{max} overlaps {}-{}, the ports of the kernel's safety-net NAT \
         (fragments, ESP, GRE); keep it below {}",
        kernel_guard::SAFETY_NET_PORTS.0, kernel_guard::SAFETY_NET_PORTS.1, kernel_guard::SAFETY_NET_PORTS.0
    )]
    SafetyNetOverlap { uplink: String, min: u16, max: u16 },
    #[error(
        "{doing} the leak guard (nftables table `ip {}`) failed: {source} \
         (the kernel needs nf_tables with nat and masquerade: nft_chain_nat, nft_masq)",
        names::NFT_TABLE
    )]
    Guard {
        doing: &'static str,
        #[source]
        source: NftError,
    },
    #[error(
        "removing the hairpin NAT (nftables table `ip {table}`) failed: {source}",
        table = names::NFT_HAIRPIN_TABLE
    )]
    Hairpin {
        #[source]
        source: NftError,
    },
}

/// The loaded, attached data plane. Dropping it detaches the programs.
pub struct Running {
    dataplane: Dataplane,
    /// Uplinks in the spec; slot `i` is the `i`th.
    uplink_count: u32,
    /// Each uplink's probe path as found at start (in the order of the spec).
    pub paths: Vec<Result<ProbePath, PathError>>,
    /// Each uplink as the kernel describes it at start (`usable`: carrier and a resolved
    /// gateway), before any health verdict: what the controller builds its intent on.
    pub described: Vec<Uplink>,
    /// Whether each uplink's slot lets flows use it now: the kernel's view, and on adoption
    /// also the earlier controller's verdict, which stands until the probes have their own.
    pub usable: Vec<bool>,
    /// A data plane left running by an earlier controller was taken over.
    pub adopted: bool,
    /// Why redirects the kernel refuses after the program are not counted (no kernel BTF,
    /// no raw tracepoints); `None` when they are.
    pub uncounted_redirects: Option<String>,
    /// What the data plane was told of the LAN and, last, of the policy: the intent the
    /// controller's self-check holds the maps to.
    lan: Lan,
    policy: Policy,
    pins: Option<Pins>,
    /// The leak guard: removed with an unpinned data plane when this is dropped, kept with a
    /// pinned one until it is detached.
    guard: Option<KernelGuard>,
    /// What went on each interface.
    pub plans: Plans,
    /// Attachments of an unpinned data plane (they end with `ebpf`).
    _links: Vec<Attached>,
}

impl Drop for Running {
    fn drop(&mut self) {
        if self.pins.is_none()
            && let Some(guard) = self.guard.take()
            && let Err(e) = guard.remove()
        {
            warn!(error = %e, "removing the leak guard failed");
        }
    }
}

impl Running {
    /// Makes the uplink in `slot` (its position in the spec) the one new flows take.
    pub fn set_active(&mut self, slot: u32) -> Result<(), LoaderError> {
        self.set_balanced(slot, &[])
    }

    /// Makes `active` the active uplink's slot and spreads new flows over `shares` (slots
    /// with weights; one entry or none: no balancing).
    pub fn set_balanced(&mut self, active: u32, shares: &[(u32, u32)]) -> Result<(), LoaderError> {
        for slot in std::iter::once(active).chain(shares.iter().map(|&(s, _)| s)) {
            if slot >= self.uplink_count {
                return Err(LoaderError::UnknownSlot(slot));
            }
        }
        self.write_policy(Policy::balanced(active, shares))
    }

    fn write_policy(&mut self, policy: Policy) -> Result<(), LoaderError> {
        self.dataplane.set_policy(policy)?;
        self.policy = policy;
        Ok(())
    }

    /// The LAN as the data plane was told.
    #[must_use]
    pub fn lan(&self) -> Lan {
        self.lan
    }

    /// Tells the data plane the LAN's data path flags.
    pub fn set_lan_path(&mut self, flags: u8) -> Result<(), LoaderError> {
        let lan = Lan {
            path: flags,
            ..self.lan
        };
        self.dataplane.set_lan(lan)?;
        self.lan = lan;
        Ok(())
    }

    /// The policy the data plane was last told (or held, when adopted).
    #[must_use]
    pub fn policy(&self) -> Policy {
        self.policy
    }

    /// The data plane's maps.
    #[must_use]
    pub fn dataplane(&self) -> &Dataplane {
        &self.dataplane
    }

    pub fn dataplane_mut(&mut self) -> &mut Dataplane {
        &mut self.dataplane
    }

    /// The leak guard's counters (empty if the table was removed behind our back).
    pub fn guard_counters(&self) -> Result<Vec<GuardCounter>, LoaderError> {
        match &self.guard {
            Some(guard) => guard.counters().map_err(guard_error("reading")),
            None => Ok(Vec::new()),
        }
    }

    /// Detaches the data plane now, pinned or not, and removes its pins and its leak guard.
    pub fn detach(mut self) -> Result<(), LoaderError> {
        if let Some(pins) = &self.pins {
            pins.remove_all()?;
        }
        if let Some(guard) = self.guard.take() {
            guard.remove().map_err(guard_error("removing"))?;
        }
        Ok(())
    }
}

/// Detaches the pinned data plane of this network namespace: its programs and maps, and the
/// leak guard and hairpin tables that came with them (`failover detach`, a controller told
/// to detach on exit).
pub fn remove_dataplane(pins: &Pins) -> Result<(), LoaderError> {
    pins.remove_all()?;
    // Without the data plane, nothing hands the kernel packets to reflect.
    crate::hairpin::remove().map_err(|source| LoaderError::Hairpin { source })?;
    kernel_guard::remove().map_err(guard_error("removing"))
}

fn guard_error(doing: &'static str) -> impl FnOnce(NftError) -> LoaderError {
    move |source| LoaderError::Guard { doing, source }
}

/// Loads and attaches the data plane as `spec` says.
pub async fn start(spec: &LoaderSpec) -> Result<Running, LoaderError> {
    if spec.uplinks.len() > nat::MAX_UPLINKS as usize {
        return Err(LoaderError::TooManyUplinks);
    }
    let active = spec
        .uplinks
        .iter()
        .position(|u| u.name == spec.active)
        .ok_or_else(|| LoaderError::UnknownActive(spec.active.clone()))?;
    check_port_ranges(&spec.uplinks)?;
    let netlink = Netlink::connect()?;
    // Every interface is looked up before anything changes in the kernel: a misspelt
    // interface must leave no sysctl changed and no map pinned.
    let lan_link = netlink.link(&spec.lan).await?;
    let (lan_addr, prefix_len) = netlink
        .ipv4(lan_link.index)
        .await?
        .ok_or_else(|| LoaderError::NoAddress(spec.lan.clone()))?;
    let mut plans = Plans {
        lan: attachments::plan(
            &spec.lan,
            lan_link.index,
            Role::Lan,
            spec.lan_datapath,
            spec.skb_mode,
        )?,
        uplinks: Vec::new(),
    };
    for uplink in &spec.uplinks {
        let link = netlink.link(&uplink.interface).await?;
        plans.uplinks.push(attachments::plan(
            &uplink.interface,
            link.index,
            Role::Uplink,
            uplink.datapath,
            spec.skb_mode,
        )?);
    }
    let lan = Lan {
        ifindex: lan_link.index,
        net: lan_addr.octets(),
        prefix_len,
        path: plans.lan.planned_flags(),
        _pad: [0; 2],
    };
    prepare_kernel(&spec.uplinks)?;
    // Before any program is attached, so that from the first packet on nothing leaks.
    let guard = KernelGuard::install(&GuardSpec {
        lan_net: lan.net,
        lan_prefix_len: prefix_len,
        interfaces: spec.uplinks.iter().map(|u| u.interface.clone()).collect(),
    })
    .map_err(guard_error("installing"))?;
    let pins = spec.pins.as_deref().map(Pins::new);
    let wanted = plans.wanted();
    let adopted = match adopt_or_prepare(pins.as_ref(), &wanted) {
        Ok(adopted) => adopted,
        Err(e) => {
            remove_failed_guard(guard);
            return Err(e);
        }
    };
    let target = Target {
        lan,
        active,
        pins: pins.clone(),
        adopted,
    };
    match load(spec, &netlink, target, plans, &wanted).await {
        Ok(mut running) => {
            running.guard = Some(guard);
            Ok(running)
        }
        // An adopted data plane keeps forwarding, as it did before, and keeps its guard.
        Err(e) if adopted => Err(e),
        Err(e) => {
            // Set up by this start: a failed start leaves nothing behind.
            if let Some(pins) = &pins
                && let Err(e) = pins.remove_all()
            {
                warn!(error = %e, "removing the pins of a failed start failed");
            }
            remove_failed_guard(guard);
            Err(e)
        }
    }
}

fn remove_failed_guard(guard: KernelGuard) {
    if let Err(e) = guard.remove() {
        warn!(error = %e, "removing the leak guard of a failed start failed");
    }
}

/// What a start sets up: the LAN's entry, the active uplink's index, where to pin, and
/// whether a running data plane is adopted.
struct Target {
    lan: Lan,
    active: usize,
    pins: Option<Pins>,
    adopted: bool,
}

/// Opens (or adopts) the maps, describes the uplinks into them and attaches the programs.
async fn load(
    spec: &LoaderSpec,
    netlink: &Netlink,
    target: Target,
    plans: Plans,
    wanted: &[(&'static str, String)],
) -> Result<Running, LoaderError> {
    let Target {
        lan,
        active,
        pins,
        adopted,
    } = target;
    let mut ebpf = dataplane::open_pinned(
        spec.tables,
        pins.as_ref().map(Pins::dir),
        spec.dataplane_log,
    )?;
    dataplane::set_lan(&mut ebpf, lan)?;
    let uncounted_redirects = dataplane::count_refused_redirects(&mut ebpf).err();
    if let Some(why) = &uncounted_redirects {
        warn!(%why, "redirects the kernel refuses after the XDP program are not counted");
    }
    // At most MAX_UPLINKS, checked with the spec.
    let uplink_count = u32::try_from(spec.uplinks.len()).unwrap_or(nat::MAX_UPLINKS);
    let mut paths = Vec::new();
    let mut described = Vec::new();
    let mut usable = Vec::new();
    for (slot, spec_uplink) in (0u32..).zip(&spec.uplinks) {
        let (uplink, path) =
            describe_uplink(netlink, spec_uplink, NEIGHBOUR_PATIENCE_AT_START).await?;
        match &path {
            Ok(_) => info!(
                uplink = %spec_uplink.name,
                interface = %spec_uplink.interface,
                address = %Ipv4Addr::from(uplink.addr),
                gateway_mac = %format_mac(uplink.gateway_mac),
                usable = uplink.usable,
                "uplink described"
            ),
            Err(problem) => warn!(uplink = %spec_uplink.name, %problem, "uplink not usable yet"),
        }
        let mut entry = uplink;
        entry.path = plans.uplinks[slot as usize].planned_flags();
        if adopted {
            // The running data plane's verdict on the uplink stands until the controller's
            // probes have a verdict of their own.
            entry.usable &= dataplane::uplink(&ebpf, slot)?.usable;
        }
        dataplane::set_uplink(&mut ebpf, slot, entry)?;
        paths.push(path);
        described.push(uplink);
        usable.push(entry.usable != 0);
    }
    if adopted {
        let policy = dataplane::policy(&ebpf)?;
        info!(pins = %spec.pins.as_deref().unwrap_or_else(|| std::path::Path::new("")).display(), "adopted the running data plane: its programs, NAT table and active uplink stay");
        return Ok(Running {
            dataplane: Dataplane::new(ebpf),
            uplink_count,
            paths,
            described,
            usable,
            adopted: true,
            uncounted_redirects,
            lan,
            policy,
            pins,
            guard: None,
            plans,
            _links: Vec::new(),
        });
    }
    let policy = Policy::single(u32::try_from(active).unwrap_or(nat::NO_UPLINK));
    dataplane::set_policy(&mut ebpf, policy)?;

    let mode = if spec.skb_mode {
        XdpMode::Skb
    } else {
        XdpMode::Default
    };
    let links = attachments::attach_all(&mut ebpf, wanted, mode, pins.as_ref())?;
    info!(lan = %spec.lan, active = %spec.active, "data plane attached");
    Ok(Running {
        dataplane: Dataplane::new(ebpf),
        uplink_count,
        paths,
        described,
        usable,
        adopted: false,
        uncounted_redirects,
        lan,
        policy,
        pins,
        guard: None,
        plans,
        _links: links,
    })
}

/// Describes an uplink for the data plane from what the kernel knows now: its address,
/// MACs and whether it can carry traffic (carrier and, on Ethernet, a resolved gateway). With no address
/// or no gateway yet (a 4G modem still dialling), the uplink is described unusable, with the
/// reason, rather than failing: the controller describes it again when the kernel reports a
/// change.
///
/// An unresolved gateway MAC is asked for and waited for up to `patience`; the controller
/// passes zero (it must never stall) and re-describes when the kernel reports the neighbour.
pub async fn describe_uplink(
    netlink: &Netlink,
    spec: &UplinkSpec,
    patience: Duration,
) -> Result<(Uplink, Result<ProbePath, PathError>), LoaderError> {
    let link = netlink.link(&spec.interface).await?;
    let mut uplink = Uplink {
        ifindex: link.index,
        addr: [0; 4],
        mac: link.mac,
        gateway_mac: [0; 6],
        port_min: spec.ports.0,
        port_max: spec.ports.1,
        mss: spec.mss,
        usable: 0,
        path: 0,
    };
    let path = match ProbePath::discover(netlink, &spec.name, &spec.interface, spec.gateway).await {
        Ok(path) => path,
        Err(PathError::Netlink(e)) => return Err(e.into()),
        Err(e) => return Ok((uplink, Err(e))),
    };
    uplink.addr = path.source.octets();
    // A headerless link's packets carry no MACs: carrier and address make it usable.
    let gateway = match path.gateway {
        Some(gateway) if link.ethernet => gateway,
        _ => {
            uplink.usable = u8::from(link.carrier);
            return Ok((uplink, Ok(path)));
        }
    };
    let gateway_mac =
        resolve_neighbour(netlink, &spec.interface, link.index, gateway, patience).await?;
    if gateway_mac.is_none() && !patience.is_zero() {
        warn!(uplink = %spec.name, %gateway, "gateway MAC not resolved: the uplink is not usable until it is");
    }
    uplink.gateway_mac = gateway_mac.unwrap_or_default();
    uplink.usable = u8::from(link.carrier && gateway_mac.is_some());
    Ok((uplink, Ok(path)))
}

/// The neighbour's MAC; when the kernel has none yet, a datagram to the discard port through
/// the interface makes it send an ARP request, and the table is polled for up to `patience`.
async fn resolve_neighbour(
    netlink: &Netlink,
    interface: &str,
    index: u32,
    ip: Ipv4Addr,
    patience: Duration,
) -> Result<Option<[u8; 6]>, LoaderError> {
    if let Some(mac) = netlink.neighbour_mac(index, ip).await? {
        return Ok(Some(mac));
    }
    let socket = tokio::net::UdpSocket::bind("0.0.0.0:0")
        .await
        .map_err(|e| LoaderError::System("opening a UDP socket", e))?;
    socket
        .bind_device(Some(interface.as_bytes()))
        .map_err(|e| LoaderError::System("binding a socket to the uplink", e))?;
    let _ = socket.send_to(&[], (ip, 9)).await;
    let poll = Duration::from_millis(50);
    for _ in 0..patience.as_millis() / poll.as_millis() {
        tokio::time::sleep(poll).await;
        if let Some(mac) = netlink.neighbour_mac(index, ip).await? {
            return Ok(Some(mac));
        }
    }
    Ok(None)
}

/// Whether the pins hold a whole running data plane of this build (to adopt); if not,
/// leftovers (a start that failed half way, other interfaces) are removed for a fresh start.
fn adopt_or_prepare(
    pins: Option<&Pins>,
    wanted: &[(&'static str, String)],
) -> Result<bool, LoaderError> {
    let Some(pins) = pins else {
        return Ok(false);
    };
    if pins.adoptable(wanted)? {
        return Ok(true);
    }
    pins.remove_all()?;
    pins.prepare()?;
    Ok(false)
}

/// The kernel's local port range (`net.ipv4.ip_local_port_range`), inclusive: the source
/// ports of the router's own connections.
pub fn kernel_local_ports() -> Result<(u16, u16), LoaderError> {
    let text = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .map_err(|e| LoaderError::System("reading net.ipv4.ip_local_port_range", e))?;
    let mut bounds = text
        .split_whitespace()
        .filter_map(|n| n.parse::<u16>().ok());
    match (bounds.next(), bounds.next()) {
        (Some(low), Some(high)) => Ok((low, high)),
        _ => Err(LoaderError::System(
            "reading net.ipv4.ip_local_port_range",
            std::io::Error::new(std::io::ErrorKind::InvalidData, text.trim().to_owned()),
        )),
    }
}

/// Port ranges must avoid the kernel's local port range (the router's own connections).
fn check_port_ranges(uplinks: &[UplinkSpec]) -> Result<(), LoaderError> {
    let (kmin, kmax) = kernel_local_ports()?;
    for u in uplinks {
        if kernel_guard::overlaps_safety_net(u.ports) {
            return Err(LoaderError::SafetyNetOverlap {
                uplink: u.name.clone(),
                min: u.ports.0,
                max: u.ports.1,
            });
        }
        if u.ports.0 <= kmax && kmin <= u.ports.1 {
            return Err(LoaderError::PortRangeOverlap {
                uplink: u.name.clone(),
                min: u.ports.0,
                max: u.ports.1,
                kmin,
                kmax,
            });
        }
    }
    Ok(())
}

/// Turns on IPv4 forwarding (the FIB lookup and the kernel's fallback path need it) and warns
/// about others' kernel masquerade on managed uplinks, which would take ports the data plane
/// hands out.
fn prepare_kernel(uplinks: &[UplinkSpec]) -> Result<(), LoaderError> {
    std::fs::write("/proc/sys/net/ipv4/ip_forward", "1")
        .map_err(|e| LoaderError::System("enabling net.ipv4.ip_forward", e))?;
    info!(
        "net.ipv4.ip_forward set to 1: the data plane's FIB lookups and the kernel fallback path need it"
    );
    let ruleset = match Ruleset::read() {
        Ok(ruleset) => ruleset,
        Err(e) => {
            debug!(error = %e, "reading the nftables ruleset");
            return Ok(());
        }
    };
    for u in uplinks {
        let tables = ruleset.foreign_masquerade(&u.interface);
        if !tables.is_empty() {
            warn!(
                interface = %u.interface,
                tables = %tables.join(", "),
                "an nftables masquerade rule of these tables may apply to this uplink: the data plane translates its \
                 flows itself, and the leak guard's safety net runs first; remove the rule for managed uplinks \
                 (see README, \"Running it on a router\")"
            );
        }
    }
    Ok(())
}

#[must_use]
pub fn format_mac(mac: [u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uplink_spec_parses_options_and_rejects_bad_input() {
        let spec: UplinkSpec = "lte=wwan0,mss=1360,ports=2000-3000,gateway=100.64.0.1"
            .parse()
            .unwrap();
        assert_eq!(spec.name, "lte");
        assert_eq!(spec.interface, "wwan0");
        assert_eq!(spec.mss, 1360);
        assert_eq!(spec.ports, (2000, 3000));
        assert_eq!(spec.gateway, Some(Ipv4Addr::new(100, 64, 0, 1)));
        let plain: UplinkSpec = "fiber=eth1".parse().unwrap();
        assert_eq!(plain.ports, (nat::DEFAULT_PORT_MIN, nat::DEFAULT_PORT_MAX));
        assert_eq!(plain.mss, 0);
        for bad in [
            "fiber",
            "=eth1",
            "fiber=",
            "a=b,mss=10",
            "a=b,ports=9-1",
            "a=b,ports=0-5",
            "a=b,color=red",
            "a=b,gateway=x",
        ] {
            assert!(bad.parse::<UplinkSpec>().is_err(), "{bad} must be rejected");
        }
    }
}
