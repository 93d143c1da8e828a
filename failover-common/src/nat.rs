//! Map types of the NAT data plane and the pure rules both sides apply: port allocation,
//! connection-tracking states and timeouts. Every type is `#[repr(C)]`, integers and byte
//! arrays only, explicit padding, size checked at compile time (hash maps compare raw bytes,
//! so keys are built from zero with [`Default`]).

/// Uplink slots in the uplinks map and the devmap.
pub const MAX_UPLINKS: u32 = 8;
/// Slot of the LAN interface in the devices map, after the uplinks.
pub const LAN_SLOT: u32 = MAX_UPLINKS;
/// Entries of the devices map.
pub const DEVICE_SLOTS: u32 = MAX_UPLINKS + 1;
/// `Policy::active` when no uplink may carry traffic.
pub const NO_UPLINK: u32 = u32::MAX;

/// Connection-tracking entries (LRU: the least recently used flow is evicted when full).
pub const FLOW_ENTRIES: u32 = 1 << 20;
/// Endpoint-independent port bindings, and their reverse index.
pub const BINDING_ENTRIES: u32 = 1 << 20;
/// Default external port range of an uplink: below Linux's default local port range
/// (32768-60999), so translated flows never take a port of the router's own connections.
pub const DEFAULT_PORT_MIN: u16 = 1024;
pub const DEFAULT_PORT_MAX: u16 = 32767;
/// Free ports tried before a new flow gives up.
pub const PORT_PROBES: u32 = 16;

/// One uplink as the data plane sees it. Written by the controller.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Uplink {
    /// Interface the uplink's frames leave through (also its devmap slot's target).
    pub ifindex: u32,
    /// The uplink's own IPv4 address: the NAT address of its flows.
    pub addr: [u8; 4],
    /// The router's MAC on this uplink (Ethernet source of translated frames).
    pub mac: [u8; 6],
    /// The ISP gateway's MAC (Ethernet destination of translated frames).
    pub gateway_mac: [u8; 6],
    /// First and last external port (and ICMP id) used for this uplink's flows.
    pub port_min: u16,
    pub port_max: u16,
    /// MSS written into TCP SYNs leaving through this uplink when they ask for more; 0: off.
    pub mss: u16,
    /// 1 when the controller lets flows use this uplink; 0 re-steers its flows.
    pub usable: u8,
    /// How frames reach this interface and leave it: [`path`] flags.
    pub path: u8,
}

/// The data path of an interface (`Uplink::path`, `Lan::path`). 0, the value an earlier
/// controller wrote, is an Ethernet interface on the XDP path with no XDP program of ours.
pub mod path {
    /// No Ethernet header (raw-IP modems, ppp, tunnels): the IPv4 header starts the frame.
    /// Only the TC programs reach such an interface.
    pub const L3: u8 = 1;
    /// The interface cannot send frames that XDP redirects to it: flows to it are handed
    /// from the XDP programs to the TC programs.
    pub const TC: u8 = 2;
    /// An XDP program of ours runs at its ingress: the TC program behind it counts only what
    /// it translates (the XDP program counted the rest).
    pub const XDP: u8 = 4;

    /// Whether frames to an interface with `flags` must take the TC path.
    #[must_use]
    #[inline(always)]
    pub const fn needs_tc(flags: u8) -> bool {
        flags & (L3 | TC) != 0
    }
}

/// The skb mark, `TOO_BIG_MARK | slot`, of a packet the TC program passes to the kernel as
/// [`crate::verdict::Reason::TooBig`]: the controller's rule `fwmark` sends it to the uplink's own
/// routing table, whose route through the uplink has the MTU that the kernel's "fragmentation
/// needed" reports. Ours ("FOM") in the high bits; the slot in the low byte.
pub const TOO_BIG_MARK: u32 = 0x464f_4d00;
const _: () = assert!(MAX_UPLINKS <= 0x100);

/// Which uplink new flows take. One entry.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    /// Slot of the active uplink, or [`NO_UPLINK`].
    pub active: u32,
    /// Weighted balancing among uplinks of equal priority: a new flow takes
    /// `spread[flow hash % SPREAD]` when that uplink is usable, else `active`. Slots as bytes;
    /// [`NO_SPREAD`] entries mean `active`.
    pub spread: [u8; SPREAD],
}

/// Shares of new flows the controller can hand out (weights are rounded to sixteenths).
pub const SPREAD: usize = 16;
/// A `Policy::spread` entry that defers to `Policy::active`.
pub const NO_SPREAD: u8 = 0xff;

impl Policy {
    /// Every new flow takes `active`.
    #[must_use]
    pub const fn single(active: u32) -> Self {
        Policy {
            active,
            spread: [NO_SPREAD; SPREAD],
        }
    }

    /// New flows spread over `shares` (slot, weight) in proportion to the weights (largest
    /// remainder), falling back to `active` when the chosen uplink is unusable.
    #[must_use]
    pub fn balanced(active: u32, shares: &[(u32, u32)]) -> Self {
        let mut policy = Self::single(active);
        let total: u64 = shares.iter().map(|&(_, w)| u64::from(w)).sum();
        if shares.len() < 2 || total == 0 {
            return policy;
        }
        let spread = SPREAD as u64;
        let mut counts = [0u64; MAX_UPLINKS as usize];
        let mut remainders = [0u64; MAX_UPLINKS as usize];
        let mut given = 0;
        for (i, &(_, w)) in shares.iter().enumerate().take(MAX_UPLINKS as usize) {
            counts[i] = spread * u64::from(w) / total;
            remainders[i] = spread * u64::from(w) % total;
            given += counts[i];
        }
        while given < spread {
            let (best, _) = remainders
                .iter()
                .enumerate()
                .take(shares.len())
                .max_by_key(|&(i, r)| (*r, core::cmp::Reverse(i)))
                .unwrap_or((0, &0));
            counts[best] += 1;
            remainders[best] = 0;
            given += 1;
        }
        let mut at = 0;
        for (i, &(slot, _)) in shares.iter().enumerate().take(MAX_UPLINKS as usize) {
            for _ in 0..counts[i] {
                // Slots are below MAX_UPLINKS (8): they fit a byte.
                policy.spread[at] = u8::try_from(slot).unwrap_or(NO_SPREAD);
                at += 1;
            }
        }
        policy
    }

    /// The uplink slot a new flow with hash `hash` prefers.
    #[must_use]
    #[inline(always)]
    pub const fn pick(&self, hash: u32) -> u32 {
        match self.spread[hash as usize % SPREAD] {
            NO_SPREAD => self.active,
            slot => slot as u32,
        }
    }
}

impl Default for Policy {
    fn default() -> Self {
        Policy::single(NO_UPLINK)
    }
}

/// The LAN side. One entry.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Lan {
    pub ifindex: u32,
    /// LAN network address and prefix length: traffic between LAN hosts is not translated.
    pub net: [u8; 4],
    pub prefix_len: u8,
    /// [`path`] flags of the LAN interface.
    pub path: u8,
    pub _pad: [u8; 2],
}

/// A flow as seen from the LAN: the key of the connection-tracking map. Aligned to 4 (the
/// layout is the same): the BPF backend then copies and compares the addresses as whole
/// words instead of byte by byte, and reads back what it stored without stalling.
#[repr(C, align(4))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FlowKey {
    pub lan_addr: [u8; 4],
    pub remote_addr: [u8; 4],
    /// Ports in network byte order; for ICMP echo, `lan_port` is the identifier and
    /// `remote_port` is 0.
    pub lan_port: [u8; 2],
    pub remote_port: [u8; 2],
    pub proto: u8,
    pub _pad: [u8; 3],
}

/// Connection-tracking state of a flow.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Flow {
    /// Monotonic time (ns, `bpf_ktime_get_coarse_ns`) of the last packet in either direction.
    pub last_seen_ns: u64,
    /// When the flow last confirmed and refreshed its reverse binding. The hit path does it
    /// at most every [`REVERSE_REFRESH_NS`], to touch one hash entry per packet, not two.
    pub reverse_seen_ns: u64,
    /// Uplink slot the flow is pinned to.
    pub uplink: u32,
    /// External port (or ICMP id), network byte order.
    pub ext_port: [u8; 2],
    /// One of [`tcp_state`].
    pub state: u8,
    /// One of [`flow_origin`].
    pub origin: u8,
}

/// Who opened a flow.
pub mod flow_origin {
    /// A LAN host, through the uplink the policy chose; its external port is a binding's.
    pub const OUTBOUND: u8 = 0;
    /// A remote, through a port forward of the uplink it arrived on: the flow keeps that
    /// uplink whatever the active one is (reply affinity), and never moves to another.
    pub const FORWARDED: u8 = 1;
}

/// Capacity of the port-forward table: forwarded (uplink, protocol, port) triples, port
/// ranges counted port by port.
pub const FORWARD_ENTRIES: u32 = 8192;

/// Where a forwarded port leads (the value of `names::MAP_FORWARDS`, keyed by a
/// [`ReverseKey`]: the uplink, the protocol and the external port).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ForwardTarget {
    pub lan_addr: [u8; 4],
    /// Network byte order.
    pub lan_port: [u8; 2],
    pub _pad: [u8; 2],
}

/// Slots per CPU of the flow cache in front of `fo_flows` (a power of two).
pub const FLOW_CACHE_SLOTS: u32 = 1 << 16;
/// How long a cached translation serves outbound packets before the flow table is consulted
/// (and its time refreshed) again: far below the shortest flow timeout (10 s).
pub const FLOW_CACHE_TTL_NS: u64 = 1_000_000_000;

/// A per-CPU cache entry: the translation of a recent outbound flow. Array lookups compile
/// to plain loads, so a cache hit needs no helper call, unlike a hash lookup.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CachedFlow {
    pub key: FlowKey,
    /// When the flow table confirmed this translation; 0 for an empty slot.
    pub checked_ns: u64,
    pub uplink: u32,
    pub ext_port: [u8; 2],
    pub _pad: [u8; 2],
}

/// The flow cache slot of `key`.
#[must_use]
#[inline(always)]
pub const fn flow_cache_slot(key: &FlowKey) -> u32 {
    let a = u32::from_ne_bytes(key.lan_addr);
    let b = u32::from_ne_bytes(key.remote_addr);
    let c = u32::from_ne_bytes([
        key.lan_port[0],
        key.lan_port[1],
        key.remote_port[0],
        key.remote_port[1],
    ]);
    mix32(a ^ b.rotate_left(7) ^ c.rotate_left(13) ^ key.proto as u32) & (FLOW_CACHE_SLOTS - 1)
}

/// How often an active flow re-confirms that its reverse binding is still its own and keeps
/// it from going stale: a sixth of the shortest binding timeout (ICMP, 60 s).
pub const REVERSE_REFRESH_NS: u64 = 10_000_000_000;

/// An endpoint-independent mapping: a LAN host's port keeps one external port per uplink,
/// whatever remote it talks to (RFC 4787 REQ-1).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct BindingKey {
    pub lan_addr: [u8; 4],
    pub lan_port: [u8; 2],
    pub proto: u8,
    pub uplink: u8,
}

/// The reverse index of a binding: what arrives on `uplink` for `ext_port` goes to the LAN
/// host of the binding.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ReverseKey {
    pub ext_port: [u8; 2],
    pub proto: u8,
    pub uplink: u8,
}

/// Value of both binding maps: the two ends of the mapping and when it was last used.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Binding {
    pub last_seen_ns: u64,
    pub lan_addr: [u8; 4],
    pub lan_port: [u8; 2],
    pub ext_port: [u8; 2],
}

/// TCP states that decide a flow's timeout (RFC 5382: short while opening or closing, long
/// while established).
pub mod tcp_state {
    /// Not TCP, or a SYN seen but no answer yet.
    pub const OPENING: u8 = 0;
    pub const ESTABLISHED: u8 = 1;
    /// A FIN seen in either direction.
    pub const CLOSING: u8 = 2;
    /// A RST seen: the flow is over.
    pub const CLOSED: u8 = 3;
    /// Set by the controller: the flow leaves its uplink (failback with `failback = "move"`).
    /// Its next TCP segment from the LAN is answered with a RST; UDP and ICMP are re-steered.
    pub const MOVED: u8 = 4;
}

/// Seconds a flow stays valid without traffic.
pub mod timeout {
    pub const TCP_ESTABLISHED_S: u64 = 7440;
    pub const TCP_TRANSITORY_S: u64 = 240;
    pub const TCP_CLOSED_S: u64 = 10;
    pub const UDP_S: u64 = 300;
    pub const ICMP_S: u64 = 60;
}

/// TCP flag bits.
pub mod tcp_flag {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;
}

/// How long a flow of `proto` in `state` lives without traffic, in nanoseconds.
#[must_use]
#[inline(always)]
pub const fn flow_timeout_ns(proto: u8, state: u8) -> u64 {
    let seconds = match proto {
        crate::classify::ip_proto::TCP => match state {
            tcp_state::ESTABLISHED => timeout::TCP_ESTABLISHED_S,
            tcp_state::CLOSED => timeout::TCP_CLOSED_S,
            _ => timeout::TCP_TRANSITORY_S,
        },
        crate::classify::ip_proto::UDP => timeout::UDP_S,
        _ => timeout::ICMP_S,
    };
    seconds * 1_000_000_000
}

/// How long a binding (and its reverse entry) lives unused: as long as the longest-lived flow
/// that can use it, since every packet of those flows refreshes it.
#[must_use]
#[inline(always)]
pub const fn binding_timeout_ns(proto: u8) -> u64 {
    flow_timeout_ns(proto, tcp_state::ESTABLISHED)
}

/// True when an entry last used at `last_seen_ns` has outlived `timeout_ns` at `now_ns`.
#[must_use]
#[inline(always)]
pub const fn expired(last_seen_ns: u64, timeout_ns: u64, now_ns: u64) -> bool {
    now_ns.saturating_sub(last_seen_ns) > timeout_ns
}

/// The TCP state after a segment with `flags`; `from_lan` says which side sent it.
#[must_use]
#[inline(always)]
pub const fn next_tcp_state(state: u8, flags: u8, from_lan: bool) -> u8 {
    if flags & tcp_flag::RST != 0 {
        return tcp_state::CLOSED;
    }
    if flags & tcp_flag::FIN != 0 {
        return tcp_state::CLOSING;
    }
    match state {
        // The remote's answer to the LAN's SYN (or any ACK from it) establishes the flow.
        tcp_state::OPENING if !from_lan && flags & tcp_flag::ACK != 0 => tcp_state::ESTABLISHED,
        // A new SYN from the LAN on a closed tuple opens it again.
        tcp_state::CLOSED if from_lan && flags & tcp_flag::SYN != 0 => tcp_state::OPENING,
        other => other,
    }
}

/// The `attempt`-th external port to try for a new binding, in `[min, max]`. The first try
/// keeps the LAN port when it is in range (port preservation, RFC 4787 "should"); the next
/// ones start from a position hashed from the binding, so hosts spread out, and step through
/// the range in equal strides of a `PORT_PROBES`th of it. Linear probes would fail together
/// in a block of ports one host holds (port preservation makes a flooding host's ports one
/// block): a new binding hashed into it would find no free port.
#[must_use]
#[inline(always)]
#[expect(
    clippy::cast_possible_truncation,
    reason = "min + offset <= max, a u16"
)]
pub const fn candidate_port(min: u16, max: u16, lan_port: u16, hash: u32, attempt: u32) -> u16 {
    if max < min {
        return min;
    }
    let span = (max - min) as u32 + 1;
    let offset = if attempt == 0 && lan_port >= min && lan_port <= max {
        (lan_port - min) as u32
    } else {
        let stride = if span > PORT_PROBES {
            span / PORT_PROBES
        } else {
            1
        };
        (hash % span + (attempt % span) * stride) % span
    };
    (min as u32 + offset) as u16
}

/// A cheap, well-mixed hash of a binding key (the data plane has no hasher library).
#[must_use]
#[inline(always)]
pub const fn binding_hash(lan_addr: [u8; 4], lan_port: [u8; 2], proto: u8) -> u32 {
    mix32(
        u32::from_ne_bytes(lan_addr) ^ ((u16::from_ne_bytes(lan_port) as u32) << 16) ^ proto as u32,
    )
}

/// The murmur3 finalizer: every input bit affects every output bit.
#[must_use]
#[inline(always)]
const fn mix32(mut h: u32) -> u32 {
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^= h >> 16;
    h
}

/// True when `addr` is in `net/prefix_len`.
#[must_use]
#[inline(always)]
pub const fn in_subnet(addr: [u8; 4], net: [u8; 4], prefix_len: u8) -> bool {
    if prefix_len == 0 {
        return true;
    }
    let shift = 32 - if prefix_len > 32 { 32 } else { prefix_len } as u32;
    let mask = u32::MAX << shift;
    u32::from_be_bytes(addr) & mask == u32::from_be_bytes(net) & mask
}

/// Destinations the data plane never translates: multicast, limited broadcast, this-network
/// and loopback. They go to the kernel.
#[must_use]
#[inline(always)]
pub const fn is_special_destination(addr: [u8; 4]) -> bool {
    addr[0] >= 224 || addr[0] == 0 || addr[0] == 127
}

const _: () = {
    assert!(core::mem::size_of::<Uplink>() == 28);
    assert!(core::mem::size_of::<Policy>() == 4 + SPREAD);
    assert!(core::mem::size_of::<Lan>() == 12);
    assert!(core::mem::size_of::<FlowKey>() == 16);
    assert!(core::mem::size_of::<Flow>() == 24);
    assert!(core::mem::size_of::<CachedFlow>() == 32);
    assert!(FLOW_CACHE_SLOTS.is_power_of_two());
    assert!(core::mem::size_of::<BindingKey>() == 8);
    assert!(core::mem::size_of::<ReverseKey>() == 4);
    assert!(core::mem::size_of::<Binding>() == 16);
};

#[cfg(feature = "user")]
mod pod {
    // SAFETY: each type is repr(C), built only of integers and byte arrays, with explicit
    // padding fields, so every bit pattern is valid and there are no hidden padding bytes.
    unsafe impl aya::Pod for super::Uplink {}
    unsafe impl aya::Pod for super::Policy {}
    unsafe impl aya::Pod for super::Lan {}
    unsafe impl aya::Pod for super::FlowKey {}
    unsafe impl aya::Pod for super::Flow {}
    unsafe impl aya::Pod for super::CachedFlow {}
    unsafe impl aya::Pod for super::BindingKey {}
    unsafe impl aya::Pod for super::ReverseKey {}
    unsafe impl aya::Pod for super::Binding {}
    unsafe impl aya::Pod for super::ForwardTarget {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidate_ports_stay_in_range_and_are_distinct() {
        for (min, max) in [
            (1024, 65535),
            (40000, 40015),
            (50000, 50000),
            (61000, 61100),
        ] {
            for hash in [0, 1, 0xdead_beef, u32::MAX] {
                let mut seen = std::vec::Vec::new();
                let span = u32::from(max - min) + 1;
                for attempt in 0..PORT_PROBES.min(span) {
                    let port = candidate_port(min, max, 33333, hash, attempt);
                    assert!((min..=max).contains(&port), "{port} outside {min}..={max}");
                    seen.push(port);
                }
                let tries = seen.len();
                seen.sort_unstable();
                seen.dedup();
                // The probes after the first are distinct; only the preserved port may repeat.
                assert!(
                    seen.len() + 1 >= tries,
                    "{min}..={max} hash {hash:#x}: {seen:?}"
                );
            }
        }
    }

    #[test]
    fn flow_cache_slots_are_in_range_and_spread() {
        let mut used = std::collections::BTreeSet::new();
        for port in 0..1000u16 {
            let key = FlowKey {
                lan_addr: [10, 10, 0, 11],
                remote_addr: [203, 0, 113, 10],
                lan_port: (40000 + port).to_be_bytes(),
                remote_port: 443u16.to_be_bytes(),
                proto: 6,
                _pad: [0; 3],
            };
            let slot = flow_cache_slot(&key);
            assert!(slot < FLOW_CACHE_SLOTS);
            used.insert(slot);
        }
        assert!(
            used.len() > 800,
            "1000 flows landed in only {} slots",
            used.len()
        );
    }

    #[test]
    fn a_block_of_taken_ports_cannot_defeat_every_probe() {
        // A flooding host holds 1024..=5119 (its own ports, preserved); any other binding
        // must find a free port among its probes, wherever its hash starts.
        let (min, max) = (1024, 32767);
        let taken = 1024..=5119;
        for hash in (0..=u32::from(max - min)).step_by(7) {
            let free = (0..PORT_PROBES)
                .map(|attempt| candidate_port(min, max, 40000, hash, attempt))
                .any(|port| !taken.contains(&port));
            assert!(free, "hash {hash}: every probe in the taken block");
        }
    }

    #[test]
    fn port_is_preserved_when_in_range() {
        assert_eq!(candidate_port(1024, 65535, 40000, 12345, 0), 40000);
        assert_ne!(candidate_port(50000, 60000, 40000, 12345, 0), 40000);
    }

    #[test]
    fn tcp_state_machine() {
        use tcp_flag::*;
        let s = next_tcp_state(tcp_state::OPENING, SYN, true);
        assert_eq!(s, tcp_state::OPENING);
        let s = next_tcp_state(s, SYN | ACK, false);
        assert_eq!(s, tcp_state::ESTABLISHED);
        assert_eq!(next_tcp_state(s, ACK, true), tcp_state::ESTABLISHED);
        assert_eq!(next_tcp_state(s, FIN | ACK, false), tcp_state::CLOSING);
        assert_eq!(next_tcp_state(s, RST, true), tcp_state::CLOSED);
        assert_eq!(
            next_tcp_state(tcp_state::CLOSED, SYN, true),
            tcp_state::OPENING
        );
        assert_eq!(
            next_tcp_state(tcp_state::CLOSED, ACK, false),
            tcp_state::CLOSED
        );
    }

    #[test]
    fn timeouts_follow_state() {
        use crate::classify::ip_proto::{ICMP, TCP, UDP};
        assert!(
            flow_timeout_ns(TCP, tcp_state::ESTABLISHED) > flow_timeout_ns(TCP, tcp_state::OPENING)
        );
        assert!(flow_timeout_ns(TCP, tcp_state::CLOSED) < flow_timeout_ns(TCP, tcp_state::CLOSING));
        assert_eq!(flow_timeout_ns(UDP, 0), 300_000_000_000);
        assert_eq!(flow_timeout_ns(ICMP, 0), 60_000_000_000);
    }

    #[test]
    fn subnets_and_special_destinations() {
        assert!(in_subnet([10, 10, 0, 11], [10, 10, 0, 0], 24));
        assert!(!in_subnet([10, 10, 1, 11], [10, 10, 0, 0], 24));
        assert!(in_subnet([1, 2, 3, 4], [0, 0, 0, 0], 0));
        assert!(in_subnet([10, 10, 0, 11], [10, 10, 0, 11], 32));
        assert!(is_special_destination([255, 255, 255, 255]));
        assert!(is_special_destination([224, 0, 0, 251]));
        assert!(!is_special_destination([203, 0, 113, 10]));
    }

    #[test]
    fn balanced_policy_spreads_by_weight_and_single_defers_to_active() {
        let single = Policy::single(1);
        assert!((0..64).all(|h| single.pick(h) == 1));
        let p = Policy::balanced(0, &[(0, 3), (1, 1)]);
        let count = |slot| (0..16).filter(|&h| p.pick(h) == slot).count();
        assert_eq!((count(0), count(1)), (12, 4));
        let p = Policy::balanced(2, &[(2, 1), (3, 1), (5, 1)]);
        let shares: std::vec::Vec<usize> = [2, 3, 5]
            .iter()
            .map(|&s| (0..16).filter(|&h| p.pick(h) == s).count())
            .collect();
        assert_eq!(shares.iter().sum::<usize>(), 16);
        assert!(shares.iter().all(|&n| n == 5 || n == 6), "{shares:?}");
        assert_eq!(Policy::balanced(4, &[(4, 7)]), Policy::single(4));
        assert_eq!(Policy::default().pick(3), NO_UPLINK);
    }
}
