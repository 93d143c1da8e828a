//! Why the data plane did what it did with a packet: stable, append-only codes counted per
//! CPU in the `fo_reasons` map (read it with `bpftool map dump pinned .../fo_reasons` or
//! `failover status`). Never renumber; add new codes at the end.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Reason {
    /// LAN to uplink: translated and redirected to the uplink.
    TranslatedOut = 0,
    /// Uplink to LAN: translated back and redirected to the LAN.
    TranslatedIn = 1,
    /// Not IPv4 (ARP, IPv6, ...): the kernel's business.
    NotIpv4 = 2,
    /// VLAN-tagged: the data plane manages untagged interfaces only.
    Vlan = 3,
    /// Too short or inconsistent headers: the kernel drops it and counts it.
    Malformed = 4,
    /// An IPv4 fragment: no ports to translate by.
    Fragment = 5,
    /// IPv4 options: rare, left to the kernel.
    IpOptions = 6,
    /// To the router itself, to the LAN, or to a multicast/broadcast/loopback address.
    NotForwarded = 7,
    /// TTL would expire here: the kernel answers with ICMP time exceeded.
    TtlExpiring = 8,
    /// A protocol the data plane does not translate (GRE, ESP, ICMP other than echo, ...).
    UnsupportedProtocol = 9,
    /// No uplink is usable: dropped (passed, it would leave untranslated by the kernel's
    /// default route).
    NoUplink = 10,
    /// The uplink's gateway MAC is not known yet (the controller resolves it): dropped.
    NoGatewayMac = 11,
    /// No free external port in the uplink's range after the allowed probes: dropped.
    PortsExhausted = 12,
    /// On an uplink, for a port with no mapping: the router's own traffic.
    NoMapping = 13,
    /// On an uplink, for a mapped port but from a remote the LAN host has not contacted
    /// (or whose flow expired): the kernel decides (usually drops).
    NoFlow = 14,
    /// Translated back, but the LAN host's MAC is not resolved: the kernel forwards it and
    /// resolves the neighbour.
    NeighbourUnresolved = 15,
    /// Translated back, but the kernel has no route to forward it by.
    NoRoute = 16,
    /// Arrived on an interface that is not a configured uplink.
    UnknownUplink = 17,
    /// An ICMP error about a translated flow, translated back with its embedded header.
    IcmpErrorTranslated = 18,
    /// Redirect to the target device failed (devmap slot empty).
    RedirectFailed = 19,
    /// A TCP segment of a flow whose uplink failed (or that the controller moves to another
    /// uplink): answered with a RST to the LAN host, so its application reconnects at once.
    ResetToClient = 20,
    /// A new flow of a LAN host that already has `[limits] flows_per_host` live flows:
    /// dropped (`XDP_DROP`; in the kernel's hands it would leave untranslated). The host's
    /// existing flows go on; `fo_hosts` counts the refusal for the host.
    HostFlowLimit = 21,
    /// A new external port for a LAN host that already holds `[limits] ports_per_host` on
    /// the uplink: dropped, like [`Reason::HostFlowLimit`].
    HostPortLimit = 22,
    /// Seen by an XDP program, but a flow to or from an interface that cannot take XDP
    /// frames (no `ndo_xdp_xmit`, no Ethernet header): passed untouched to the TC program.
    TcPath = 23,
    /// Larger than the MTU of the TC-path uplink it would leave through, and not to be
    /// fragmented: passed untranslated to the kernel with the uplink's mark
    /// ([`crate::nat::TOO_BIG_MARK`]), which answers "fragmentation needed" (path-MTU
    /// discovery across a tunnel) and sends nothing on.
    TooBig = 24,
    /// On an uplink, a new connection to a forwarded port: translated to the forward's LAN
    /// host, with a flow bound to this uplink.
    ForwardOpened = 25,
    /// On an uplink the controller does not let flows use, a new connection to a forwarded
    /// port: dropped (a forward on a down uplink answers nothing).
    ForwardDown = 26,
}

pub const REASON_COUNT: u32 = 27;

impl Reason {
    pub const ALL: [Reason; REASON_COUNT as usize] = [
        Reason::TranslatedOut,
        Reason::TranslatedIn,
        Reason::NotIpv4,
        Reason::Vlan,
        Reason::Malformed,
        Reason::Fragment,
        Reason::IpOptions,
        Reason::NotForwarded,
        Reason::TtlExpiring,
        Reason::UnsupportedProtocol,
        Reason::NoUplink,
        Reason::NoGatewayMac,
        Reason::PortsExhausted,
        Reason::NoMapping,
        Reason::NoFlow,
        Reason::NeighbourUnresolved,
        Reason::NoRoute,
        Reason::UnknownUplink,
        Reason::IcmpErrorTranslated,
        Reason::RedirectFailed,
        Reason::ResetToClient,
        Reason::HostFlowLimit,
        Reason::HostPortLimit,
        Reason::TcPath,
        Reason::TooBig,
        Reason::ForwardOpened,
        Reason::ForwardDown,
    ];

    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Reason::TranslatedOut => "translated-out",
            Reason::TranslatedIn => "translated-in",
            Reason::NotIpv4 => "not-ipv4",
            Reason::Vlan => "vlan",
            Reason::Malformed => "malformed",
            Reason::Fragment => "fragment",
            Reason::IpOptions => "ip-options",
            Reason::NotForwarded => "not-forwarded",
            Reason::TtlExpiring => "ttl-expiring",
            Reason::UnsupportedProtocol => "unsupported-protocol",
            Reason::NoUplink => "no-uplink",
            Reason::NoGatewayMac => "no-gateway-mac",
            Reason::PortsExhausted => "ports-exhausted",
            Reason::NoMapping => "no-mapping",
            Reason::NoFlow => "no-flow",
            Reason::NeighbourUnresolved => "neighbour-unresolved",
            Reason::NoRoute => "no-route",
            Reason::UnknownUplink => "unknown-uplink",
            Reason::IcmpErrorTranslated => "icmp-error-translated",
            Reason::RedirectFailed => "redirect-failed",
            Reason::ResetToClient => "reset-to-client",
            Reason::HostFlowLimit => "host-flow-limit",
            Reason::HostPortLimit => "host-port-limit",
            Reason::TcPath => "tc-path",
            Reason::TooBig => "too-big",
            Reason::ForwardOpened => "forward-opened",
            Reason::ForwardDown => "forward-down",
        }
    }
}

/// Traffic counters of one uplink (a per-CPU value; user space sums the CPUs).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UplinkCounters {
    pub packets_out: u64,
    pub bytes_out: u64,
    pub packets_in: u64,
    pub bytes_in: u64,
}

const _: () = assert!(core::mem::size_of::<UplinkCounters>() == 32);

#[cfg(feature = "user")]
// SAFETY: repr(C), four u64s, no padding.
unsafe impl aya::Pod for UplinkCounters {}

/// Frames of one uplink the data plane redirected that never left: the devmap slot was
/// empty, or the kernel refused the frame after the program (the target cannot take XDP
/// frames, is down, or its queue was full). A per-CPU value; user space sums the CPUs.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RedirectFailures {
    /// LAN to this uplink.
    pub to_uplink: u64,
    /// This uplink to the LAN.
    pub to_lan: u64,
}

const _: () = assert!(core::mem::size_of::<RedirectFailures>() == 16);

#[cfg(feature = "user")]
// SAFETY: repr(C), two u64s, no padding.
unsafe impl aya::Pod for RedirectFailures {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reason_table_is_in_code_order() {
        for (i, reason) in Reason::ALL.iter().enumerate() {
            assert_eq!(*reason as usize, i, "{}", reason.name());
        }
    }
}
