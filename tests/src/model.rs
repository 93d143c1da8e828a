//! A pure-Rust reference model of the NAT data plane's observable behaviour: what
//! `fo_lan_ingress` and `fo_wan_ingress` do to a frame (verdict, output bytes, reason) and to
//! their tables and counters. The differential test (`tests/tests/dataplane/differential.rs`)
//! runs the same frames through the kernel and through this model and compares everything.
//!
//! The model parses and rewrites frames itself, from the wire formats (RFC 791, 792, 793, 768),
//! not from the eBPF code. It shares with the data plane only what is shared by design and
//! unit-tested on the host: the map types, IPv4 classification, port candidates, the TCP state
//! machine, timeouts and the incremental checksum step (RFC 1624).
//!
//! # Where the model is the reference
//!
//! On three points the model does what the protocols require and the data plane, when this
//! was written, did not (see `differential_known_cases`):
//!
//! - A 16-bit field at an odd offset (an MSS value after a 3-byte window-scale option)
//!   straddles two checksum words, so its checksum update uses the bytes swapped.
//! - A TCP option counts only if it lies entirely inside the TCP header: an MSS option that
//!   runs into the payload is not one.
//! - Nothing past the end of the IPv4 packet (its total length) is read or rewritten: what
//!   follows in the frame is Ethernet padding or a trailer, never a header or a quote.
//!
//! # Choices of the data plane the model follows
//!
//! - An outbound flow and its binding are created before the uplink's gateway MAC is
//!   checked: a `NoGatewayMac` packet leaves them behind.
//! - A LAN packet that cannot be translated for want of an uplink, a gateway MAC or a port is
//!   dropped, not passed: the kernel would send it out untranslated.
//! - An inbound packet refreshes its flow (time, TCP state) before the TTL and FIB checks, and
//!   is translated even when those then hand it to the kernel.
//! - An ICMP error counts only when its quoted source is the uplink's address (the packet
//!   it quotes left through this uplink); otherwise it has no mapping.
//! - Any LAN source address in the LAN prefix is translated, including the router's own, the
//!   network and the broadcast address.
//! - The MSS clamp looks at no more than 8 options (NOPs included): real stacks put MSS
//!   first, and the verifier's budget is small.
//!
//! # What the model deliberately does not cover
//!
//! - **LRU eviction.** The tables are unbounded `HashMap`s; the kernel's are LRU maps that
//!   evict when full (and, per CPU, somewhat before). A comparison must stay far below the
//!   kernel tables' capacity.
//! - **Time.** The caller passes `now_ns`; the programs read `bpf_ktime_get_ns`, a real clock
//!   the model cannot follow. Expiry is modelled with the caller's clock, so a comparison must
//!   keep every run short enough that nothing can expire in the kernel (the shortest timeout,
//!   a closed TCP flow, is [`timeout::TCP_CLOSED_S`] seconds) and advance its own clock by
//!   less than that too. Compare tables ignoring `last_seen_ns`.
//! - **The kernel's FIB.** The caller says what `bpf_fib_lookup` answers for a LAN address
//!   ([`Fib`]); the MTU check of the lookup (frames above the LAN MTU) is not modelled.
//! - **The devmap.** A slot redirects when an interface was set in it; whether that interface
//!   can take the frame is the kernel's business (`BPF_PROG_TEST_RUN` reports `XDP_REDIRECT`
//!   and stops there).
//! - **Concurrency.** One frame at a time; per-CPU counters are kept as their sums.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::net::Ipv4Addr;

use failover_common::limits::{HostKey, HostLimits, HostUsage};
use failover_common::{
    checksum,
    classify::{
        CLASS_STATS_ENTRIES, Direction, Ipv4Fields, PacketClass, classify_ipv4, ether_type,
        ip_proto, stat_index,
    },
    nat::{
        Binding, BindingKey, DEVICE_SLOTS, Flow, FlowKey, ForwardTarget, LAN_SLOT, Lan,
        MAX_UPLINKS, PORT_PROBES, Policy, ReverseKey, Uplink, binding_hash, binding_timeout_ns,
        candidate_port, expired, flow_cache_slot, flow_origin, flow_timeout_ns, in_subnet,
        is_special_destination, next_tcp_state, tcp_flag, tcp_state, timeout,
    },
    verdict::{REASON_COUNT, Reason, UplinkCounters},
};

pub use crate::frame::Mac;

/// Shortest time anything in the tables lives without traffic: a comparison with the
/// kernel must finish well within it.
pub const SHORTEST_TIMEOUT_S: u64 = timeout::TCP_CLOSED_S;

/// Ethernet header: destination MAC, source MAC, Ethernet type.
const ETH_DST: usize = 0;
const ETH_SRC: usize = 6;
const ETH_TYPE: usize = 12;
const ETH_LEN: usize = 14;
const VLAN_TAG_LEN: usize = 4;

/// IPv4 header fields, relative to the header.
mod ipv4 {
    pub const LEN: usize = 20;
    pub const VERSION_IHL: usize = 0;
    pub const TOTAL_LEN: usize = 2;
    pub const FLAGS_FRAGMENT: usize = 6;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: usize = 10;
    pub const SRC: usize = 12;
    pub const DST: usize = 16;
    /// Version 4, five 32-bit words: no options.
    pub const PLAIN_VERSION_IHL: u8 = 0x45;
}

/// Where the headers the NAT reads start: the data plane translates untagged frames without
/// IPv4 options only, so these are fixed.
const IP: usize = ETH_LEN;
const L4: usize = IP + ipv4::LEN;
/// An ICMP error quotes the offending packet after its 8-byte header.
const ICMP_HEADER_LEN: usize = 8;
const INNER_IP: usize = L4 + ICMP_HEADER_LEN;
const INNER_L4: usize = INNER_IP + ipv4::LEN;

/// Transport fields, relative to the transport header.
mod l4 {
    pub const SRC_PORT: usize = 0;
    pub const DST_PORT: usize = 2;
    pub const TCP_SEQ: usize = 4;
    pub const TCP_ACK: usize = 8;
    pub const TCP_DATA_OFFSET: usize = 12;
    pub const TCP_FLAGS: usize = 13;
    pub const TCP_CHECKSUM: usize = 16;
    pub const TCP_HEADER_MIN: usize = 20;
    pub const UDP_CHECKSUM: usize = 6;
    pub const ICMP_TYPE: usize = 0;
    pub const ICMP_CHECKSUM: usize = 2;
    /// Identifier of an ICMP echo request or reply.
    pub const ICMP_ECHO_ID: usize = 4;
}

/// ICMP types (RFC 792).
mod icmp_type {
    pub const ECHO_REPLY: u8 = 0;
    pub const DEST_UNREACHABLE: u8 = 3;
    pub const ECHO_REQUEST: u8 = 8;
    pub const TIME_EXCEEDED: u8 = 11;
    pub const PARAMETER_PROBLEM: u8 = 12;
}

/// TCP option kinds (RFC 793, 879).
mod tcp_option {
    pub const END: u8 = 0;
    pub const NOP: u8 = 1;
    pub const MSS: u8 = 2;
    pub const MSS_LEN: usize = 4;
    /// Options (NOPs included) the data plane looks at before giving up on MSS.
    pub const SCANNED: usize = 8;
}

/// What a program does with the frame (the XDP action and, for a redirect, the devmap slot).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    Drop,
    /// Sent back out of the interface it came in on.
    Tx,
    Redirect {
        device_slot: u32,
    },
}

impl Verdict {
    /// The `enum xdp_action` value the program returns.
    #[must_use]
    pub fn xdp_action(self) -> u32 {
        match self {
            Verdict::Drop => 1,
            Verdict::Pass => 2,
            Verdict::Tx => 3,
            Verdict::Redirect { .. } => 4,
        }
    }
}

/// The observable result of one frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub verdict: Verdict,
    /// The frame as the program leaves it (whatever the verdict).
    pub frame: Vec<u8>,
    /// The one reason counted for the frame.
    pub reason: Reason,
}

/// What the kernel's FIB answers when the data plane looks up a LAN destination.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fib {
    /// A route and a resolved neighbour: the egress interface and the MACs to use.
    Forward {
        ifindex: u32,
        src_mac: Mac,
        dst_mac: Mac,
    },
    /// A route, but the neighbour is not resolved (`BPF_FIB_LKUP_RET_NO_NEIGH`).
    NoNeighbour,
    /// Anything else: no route, a local or broadcast destination, forwarding disabled.
    NotForwarded,
}

/// The data plane's maps, as plain values. A new model is what a freshly loaded data plane
/// holds: every array entry zero (so the policy's active slot is 0, not `NO_UPLINK`), every
/// table and counter empty.
#[derive(Clone, Debug)]
pub struct Model {
    pub lan: Lan,
    pub uplinks: [Uplink; MAX_UPLINKS as usize],
    pub policy: Policy,
    /// The interface in each devmap slot (uplinks, then the LAN at [`LAN_SLOT`]).
    pub devices: [Option<u32>; DEVICE_SLOTS as usize],
    pub flows: HashMap<FlowKey, Flow>,
    pub bindings: HashMap<BindingKey, Binding>,
    pub reverse: HashMap<ReverseKey, Binding>,
    /// Port forwards (`fo_forwards`), as the controller wrote them.
    pub forwards: HashMap<ReverseKey, ForwardTarget>,
    pub reasons: [u64; REASON_COUNT as usize],
    pub class_stats: [u64; CLASS_STATS_ENTRIES as usize],
    pub uplink_counters: [UplinkCounters; MAX_UPLINKS as usize],
    /// The per-host limits in force (`fo_host_limits`) and each host's usage (`fo_hosts`).
    pub host_limits: HostLimits,
    pub hosts: HashMap<HostKey, HostUsage>,
}

impl Default for Model {
    fn default() -> Self {
        Model {
            lan: Lan::default(),
            uplinks: [Uplink::default(); MAX_UPLINKS as usize],
            policy: Policy {
                active: 0,
                spread: [0; failover_common::nat::SPREAD],
            },
            devices: [None; DEVICE_SLOTS as usize],
            flows: HashMap::new(),
            bindings: HashMap::new(),
            reverse: HashMap::new(),
            forwards: HashMap::new(),
            reasons: [0; REASON_COUNT as usize],
            class_stats: [0; CLASS_STATS_ENTRIES as usize],
            uplink_counters: [UplinkCounters::default(); MAX_UPLINKS as usize],
            host_limits: HostLimits::default(),
            hosts: HashMap::new(),
        }
    }
}

/// The transport header of a translatable packet: where its fields are and what it says.
#[derive(Clone, Copy)]
struct Transport {
    proto: u8,
    /// Offsets in the frame of the source and destination port; for ICMP echo both are the
    /// identifier, which stands for the port on both sides.
    src_port_at: usize,
    dst_port_at: usize,
    check_at: usize,
    /// TCP flags; 0 for other protocols.
    tcp_flags: u8,
    /// ICMP type; 0 for other protocols.
    icmp_type: u8,
}

impl Transport {
    fn is_udp(self) -> bool {
        self.proto == ip_proto::UDP
    }
}

/// Replaces the LAN host's TCP segment with the reset that answers it (RFC 9293, 3.5.2: the
/// sequence number is the segment's acknowledgment number, or, without ACK, the reset
/// acknowledges the segment), addressed back to the host.
fn reset_reply(packet: &mut Packet) -> (Verdict, Reason) {
    let seq = u32::from_be_bytes(packet.field(L4 + l4::TCP_SEQ));
    let ack = u32::from_be_bytes(packet.field(L4 + l4::TCP_ACK));
    let flags = packet.field::<1>(L4 + l4::TCP_FLAGS)[0];
    let headers = ipv4::LEN + usize::from(packet.field::<1>(L4 + l4::TCP_DATA_OFFSET)[0] >> 4) * 4;
    let payload = usize::from(packet.word(IP + ipv4::TOTAL_LEN)).saturating_sub(headers);
    let (seq, ack, flags) = if flags & tcp_flag::ACK != 0 {
        (ack, 0, tcp_flag::RST)
    } else {
        let consumed = payload
            + usize::from(flags & tcp_flag::SYN != 0)
            + usize::from(flags & tcp_flag::FIN != 0);
        let consumed = u32::try_from(consumed).expect("an IPv4 packet is below 64 KiB");
        (0, seq.wrapping_add(consumed), tcp_flag::RST | tcp_flag::ACK)
    };
    let end = |addr: usize, port: usize| {
        std::net::SocketAddrV4::new(Ipv4Addr::from(packet.ip_addr(addr)), packet.word(L4 + port))
    };
    let bytes = crate::frame::Frame::tcp(
        end(ipv4::DST, l4::DST_PORT),
        end(ipv4::SRC, l4::SRC_PORT),
        flags,
    )
    .tcp_numbers(seq, ack, 0)
    .ip_id(0)
    .macs(packet.field(ETH_DST), packet.field(ETH_SRC))
    .build();
    packet.end = bytes.len();
    packet.bytes = bytes;
    (Verdict::Tx, Reason::ResetToClient)
}

/// A frame being translated, limited to its IPv4 packet for every read past the headers that
/// classification checked.
struct Packet {
    bytes: Vec<u8>,
    /// Offset of the first byte after the IPv4 packet.
    end: usize,
}

impl Packet {
    fn get<const N: usize>(&self, at: usize) -> Option<[u8; N]> {
        if at + N > self.end {
            return None;
        }
        self.bytes[at..at + N].try_into().ok()
    }

    fn byte(&self, at: usize) -> Option<u8> {
        self.get::<1>(at).map(|[b]| b)
    }

    /// A field the parser has already checked to be inside the packet.
    fn field<const N: usize>(&self, at: usize) -> [u8; N] {
        self.get(at).expect("field checked at parse time")
    }

    fn put<const N: usize>(&mut self, at: usize, value: [u8; N]) {
        self.bytes[at..at + N].copy_from_slice(&value);
    }

    fn word(&self, at: usize) -> u16 {
        u16::from_be_bytes(self.field(at))
    }

    fn ip_addr(&self, field: usize) -> [u8; 4] {
        self.field(IP + field)
    }

    fn ttl(&self) -> u8 {
        self.field::<1>(IP + ipv4::TTL)[0]
    }

    /// Replaces the 16-bit field at `at`, patching the checksum at `check_at` that covers it.
    fn replace_u16(&mut self, at: usize, check_at: usize, new: [u8; 2], udp: bool) {
        let old = summed(at, self.field(at));
        let check = self.word(check_at);
        let new_word = summed(at, new);
        let patched = if udp {
            checksum::udp_replace_u16(check, old, new_word)
        } else {
            checksum::replace_u16(check, old, new_word)
        };
        self.put(check_at, patched.to_be_bytes());
        self.put(at, new);
    }

    /// Rewrites the source or destination address, patching the IPv4 header checksum and the
    /// TCP or UDP checksum (whose pseudo-header holds the address; ICMP's has none).
    fn replace_ip_addr(&mut self, field: usize, transport: Transport, new: [u8; 4]) {
        let old = self.ip_addr(field);
        self.put(IP + field, new);
        let ip_check = self.word(IP + ipv4::CHECKSUM);
        self.put(
            IP + ipv4::CHECKSUM,
            replace_addr(ip_check, old, new).to_be_bytes(),
        );
        let check = self.word(transport.check_at);
        let patched = match transport.proto {
            ip_proto::TCP => replace_addr(check, old, new),
            ip_proto::UDP => udp_replace_addr(check, old, new),
            _ => return,
        };
        self.put(transport.check_at, patched.to_be_bytes());
    }

    /// Forwarding: one hop less, with the header checksum patched.
    fn decrement_ttl(&mut self) {
        let at = IP + ipv4::TTL;
        let [ttl, proto] = self.field::<2>(at);
        let check = self.word(IP + ipv4::CHECKSUM);
        let patched = checksum::replace_u16(
            check,
            u16::from_be_bytes([ttl, proto]),
            u16::from_be_bytes([ttl - 1, proto]),
        );
        self.put(IP + ipv4::CHECKSUM, patched.to_be_bytes());
        self.put(at, [ttl - 1]);
    }

    fn set_macs(&mut self, src: Mac, dst: Mac) {
        self.put(ETH_SRC, src);
        self.put(ETH_DST, dst);
    }
}

/// The 16-bit field at frame offset `at` as a checksum sums it. Every checksummed region
/// starts at an even frame offset (the IPv4 header at 14, the transport header or ICMP
/// message at 34), so a field at an odd offset straddles two 16-bit words and counts with its
/// bytes swapped (RFC 1071, section 2(B)): a TCP option after a 3-byte window-scale option.
fn summed(at: usize, bytes: [u8; 2]) -> u16 {
    if at.is_multiple_of(2) {
        u16::from_be_bytes(bytes)
    } else {
        u16::from_le_bytes(bytes)
    }
}

/// Checksum after an address (two 16-bit words, big-endian) changed.
fn replace_addr(check: u16, old: [u8; 4], new: [u8; 4]) -> u16 {
    let halves = |a: [u8; 4]| {
        (
            u16::from_be_bytes([a[0], a[1]]),
            u16::from_be_bytes([a[2], a[3]]),
        )
    };
    let (old_hi, old_lo) = halves(old);
    let (new_hi, new_lo) = halves(new);
    checksum::replace_u16(checksum::replace_u16(check, old_hi, new_hi), old_lo, new_lo)
}

/// UDP over IPv4: zero means "no checksum" and stays zero; a computed zero is sent as 0xffff.
fn udp_replace_addr(check: u16, old: [u8; 4], new: [u8; 4]) -> u16 {
    match check {
        0 => 0,
        _ => match replace_addr(check, old, new) {
            0 => 0xffff,
            patched => patched,
        },
    }
}

/// The IPv4 packet of an untagged IPv4 frame that the NAT may translate, or why not.
fn parse(frame: &[u8]) -> Result<(Packet, PacketClass), Reason> {
    let kind = be16(frame, ETH_TYPE).ok_or(Reason::Malformed)?;
    if kind == ether_type::VLAN || kind == ether_type::QINQ {
        return Err(Reason::Vlan);
    }
    if kind != ether_type::IPV4 {
        return Err(Reason::NotIpv4);
    }
    let header = frame.get(IP..IP + ipv4::LEN).ok_or(Reason::Malformed)?;
    let fields = ipv4_fields(header);
    match classify_ipv4(fields, frame.len() - IP) {
        class @ (PacketClass::Tcp | PacketClass::Udp | PacketClass::Icmp) => {
            let packet = Packet {
                bytes: frame.to_vec(),
                end: IP + usize::from(fields.total_len),
            };
            Ok((packet, class))
        }
        PacketClass::Fragment => Err(Reason::Fragment),
        PacketClass::Ipv4Options => Err(Reason::IpOptions),
        PacketClass::OtherIpv4 => Err(Reason::UnsupportedProtocol),
        _ => Err(Reason::Malformed),
    }
}

fn be16(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(bytes.get(at..at + 2)?.try_into().ok()?))
}

fn ipv4_fields(header: &[u8]) -> Ipv4Fields {
    let word = |at: usize| u16::from_be_bytes([header[at], header[at + 1]]);
    Ipv4Fields {
        version_ihl: header[ipv4::VERSION_IHL],
        flags_fragment: word(ipv4::FLAGS_FRAGMENT),
        total_len: word(ipv4::TOTAL_LEN),
        protocol: header[ipv4::PROTOCOL],
    }
}

/// The transport header of a packet of `class`; classification checked that its fixed part
/// is inside the packet.
fn transport(packet: &Packet, class: PacketClass) -> Result<Transport, Reason> {
    let (proto, min_len) = match class {
        PacketClass::Tcp => (ip_proto::TCP, l4::TCP_HEADER_MIN),
        PacketClass::Udp => (ip_proto::UDP, 8),
        _ => (ip_proto::ICMP, ICMP_HEADER_LEN),
    };
    if L4 + min_len > packet.end {
        return Err(Reason::Malformed);
    }
    let ports = |check: usize| Transport {
        proto,
        src_port_at: L4 + l4::SRC_PORT,
        dst_port_at: L4 + l4::DST_PORT,
        check_at: L4 + check,
        tcp_flags: 0,
        icmp_type: 0,
    };
    Ok(match proto {
        ip_proto::TCP => Transport {
            tcp_flags: packet.field::<1>(L4 + l4::TCP_FLAGS)[0],
            ..ports(l4::TCP_CHECKSUM)
        },
        ip_proto::UDP => ports(l4::UDP_CHECKSUM),
        _ => Transport {
            src_port_at: L4 + l4::ICMP_ECHO_ID,
            dst_port_at: L4 + l4::ICMP_ECHO_ID,
            icmp_type: packet.field::<1>(L4 + l4::ICMP_TYPE)[0],
            ..ports(l4::ICMP_CHECKSUM)
        },
    })
}

/// Lowers the MSS option of a SYN to `mss` when it asks for more. Only options entirely
/// inside the TCP header (and the packet) count; a malformed option ends the scan, and so
/// does the [`tcp_option::SCANNED`]-th option.
fn clamp_mss(packet: &mut Packet, transport: Transport, mss: u16) {
    let Some([offset_byte]) = packet.get::<1>(L4 + l4::TCP_DATA_OFFSET) else {
        return;
    };
    let header_end = (L4 + usize::from(offset_byte >> 4) * 4).min(packet.end);
    let mut at = L4 + l4::TCP_HEADER_MIN;
    for _ in 0..tcp_option::SCANNED {
        if at >= header_end {
            return;
        }
        let kind = packet.bytes[at];
        match kind {
            tcp_option::END => return,
            tcp_option::NOP => {
                at += 1;
                continue;
            }
            _ => {}
        }
        let Some(len) = packet.byte(at + 1).map(usize::from) else {
            return;
        };
        if len < 2 || at + len > header_end {
            return;
        }
        if kind == tcp_option::MSS && len == tcp_option::MSS_LEN {
            if packet.word(at + 2) > mss {
                packet.replace_u16(at + 2, transport.check_at, mss.to_be_bytes(), false);
            }
            return;
        }
        at += len;
    }
}

fn reverse_key(ext_port: [u8; 2], proto: u8, slot: u32) -> ReverseKey {
    ReverseKey {
        ext_port,
        proto,
        uplink: u8::try_from(slot).expect("uplink slots fit a byte"),
    }
}

/// The packet as an ICMP error quotes it: which of its fields is our external port (or echo
/// identifier), the remote's port, and where the quoted transport checksum is.
struct Quoted {
    proto: u8,
    ext_port_at: usize,
    remote_port: [u8; 2],
    check_at: usize,
}

impl Quoted {
    fn of(inner: &[u8; ipv4::LEN], head: [u8; 8]) -> Result<Quoted, Reason> {
        let proto = inner[ipv4::PROTOCOL];
        let ports = |check: usize| Quoted {
            proto,
            ext_port_at: INNER_L4 + l4::SRC_PORT,
            remote_port: [head[l4::DST_PORT], head[l4::DST_PORT + 1]],
            check_at: INNER_L4 + check,
        };
        match proto {
            ip_proto::TCP => Ok(ports(l4::TCP_CHECKSUM)),
            ip_proto::UDP => Ok(ports(l4::UDP_CHECKSUM)),
            ip_proto::ICMP if head[l4::ICMP_TYPE] == icmp_type::ECHO_REQUEST => Ok(Quoted {
                proto,
                ext_port_at: INNER_L4 + l4::ICMP_ECHO_ID,
                remote_port: [0, 0],
                check_at: INNER_L4 + l4::ICMP_CHECKSUM,
            }),
            _ => Err(Reason::UnsupportedProtocol),
        }
    }
}

impl Model {
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// As `dataplane::set_lan`: the LAN entry and its devmap slot.
    pub fn set_lan(&mut self, lan: Lan) {
        self.lan = lan;
        self.devices[LAN_SLOT as usize] = Some(lan.ifindex);
    }

    /// As `dataplane::set_uplink`: the uplink entry and its devmap slot.
    pub fn set_uplink(&mut self, slot: u32, uplink: Uplink) {
        self.uplinks[slot as usize] = uplink;
        self.devices[slot as usize] = Some(uplink.ifindex);
    }

    pub fn set_policy(&mut self, policy: Policy) {
        self.policy = policy;
    }

    /// `fo_lan_ingress`: a frame from a LAN host.
    pub fn lan_ingress(&mut self, frame: &[u8], now_ns: u64) -> Outcome {
        self.count_class(Direction::Lan, frame);
        let (result, bytes) = match parse(frame) {
            Ok((mut packet, class)) => (self.outbound(&mut packet, class, now_ns), packet.bytes),
            Err(reason) => (Err(reason), frame.to_vec()),
        };
        self.finish(result, bytes)
    }

    /// `fo_wan_ingress`: a frame from an ISP, arriving on interface `ingress_ifindex`. `fib`
    /// answers for LAN destinations as the kernel's FIB would.
    pub fn uplink_ingress(
        &mut self,
        frame: &[u8],
        ingress_ifindex: u32,
        now_ns: u64,
        fib: &impl Fn(Ipv4Addr) -> Fib,
    ) -> Outcome {
        self.count_class(Direction::Uplink, frame);
        let (result, bytes) = match parse(frame) {
            Ok((mut packet, class)) => {
                let result = self.inbound(&mut packet, class, ingress_ifindex, now_ns, fib);
                (result, packet.bytes)
            }
            Err(reason) => (Err(reason), frame.to_vec()),
        };
        self.finish(result, bytes)
    }

    /// Every frame counts exactly one reason; a refusal passes the frame (as it is by then)
    /// to the kernel.
    fn finish(&mut self, result: Result<(Verdict, Reason), Reason>, frame: Vec<u8>) -> Outcome {
        let (verdict, reason) = result.unwrap_or_else(|reason| (Verdict::Pass, reason));
        self.reasons[reason as usize] += 1;
        Outcome {
            verdict,
            frame,
            reason,
        }
    }

    fn outbound(
        &mut self,
        packet: &mut Packet,
        class: PacketClass,
        now: u64,
    ) -> Result<(Verdict, Reason), Reason> {
        let src = packet.ip_addr(ipv4::SRC);
        let dst = packet.ip_addr(ipv4::DST);
        let lan = self.lan;
        if is_special_destination(dst)
            || in_subnet(dst, lan.net, lan.prefix_len)
            || !in_subnet(src, lan.net, lan.prefix_len)
            || self.is_uplink_addr(dst)
        {
            return Err(Reason::NotForwarded);
        }
        if packet.ttl() <= 1 {
            return Err(Reason::TtlExpiring);
        }
        let transport = transport(packet, class)?;
        if transport.proto == ip_proto::ICMP && transport.icmp_type != icmp_type::ECHO_REQUEST {
            return Err(Reason::UnsupportedProtocol);
        }
        let key = FlowKey {
            lan_addr: src,
            remote_addr: dst,
            lan_port: packet.field(transport.src_port_at),
            remote_port: remote_port(packet, transport, transport.dst_port_at),
            proto: transport.proto,
            _pad: [0; 3],
        };
        let (slot, ext_port) = match self.steer(&key, transport.tcp_flags, now) {
            Err(Reason::ResetToClient) => return Ok(reset_reply(packet)),
            Err(reason) => return Ok((Verdict::Drop, reason)),
            Ok(steering) => steering,
        };
        let uplink = self.uplinks[slot as usize];
        if uplink.gateway_mac == [0; 6] {
            return Ok((Verdict::Drop, Reason::NoGatewayMac));
        }
        packet.replace_ip_addr(ipv4::SRC, transport, uplink.addr);
        packet.replace_u16(
            transport.src_port_at,
            transport.check_at,
            ext_port,
            transport.is_udp(),
        );
        if transport.tcp_flags & tcp_flag::SYN != 0 && uplink.mss != 0 {
            clamp_mss(packet, transport, uplink.mss);
        }
        packet.decrement_ttl();
        packet.set_macs(uplink.mac, uplink.gateway_mac);
        self.count_uplink(slot, packet.bytes.len(), true);
        Ok(self.redirect(slot, Reason::TranslatedOut))
    }

    fn inbound(
        &mut self,
        packet: &mut Packet,
        class: PacketClass,
        ingress_ifindex: u32,
        now: u64,
        fib: &impl Fn(Ipv4Addr) -> Fib,
    ) -> Result<(Verdict, Reason), Reason> {
        let (slot, uplink) = self
            .uplink_on(ingress_ifindex)
            .ok_or(Reason::UnknownUplink)?;
        if packet.ip_addr(ipv4::DST) != uplink.addr {
            return Err(Reason::NotForwarded);
        }
        let transport = transport(packet, class)?;
        let (flow, reason) =
            if transport.proto == ip_proto::ICMP && transport.icmp_type != icmp_type::ECHO_REPLY {
                let flow = self.translate_icmp_error(packet, slot, now)?;
                (flow, Reason::IcmpErrorTranslated)
            } else {
                match self.translate_reply(packet, transport, slot, uplink, now) {
                    Ok(found) => found,
                    // A forward on an uplink flows may not use answers nothing.
                    Err(Reason::ForwardDown) => return Ok((Verdict::Drop, Reason::ForwardDown)),
                    Err(reason) => return Err(reason),
                }
            };
        packet.replace_ip_addr(ipv4::DST, transport, flow.lan_addr);
        self.count_uplink(slot, packet.bytes.len(), false);
        self.forward_to_lan(packet, fib, reason)
    }

    /// A reply (TCP, UDP or ICMP echo reply) to a translated flow, or a packet of a
    /// connection to a forwarded port: its destination port to the LAN host's. Says whether
    /// the packet opened a forwarded connection.
    fn translate_reply(
        &mut self,
        packet: &mut Packet,
        transport: Transport,
        slot: u32,
        uplink: Uplink,
        now: u64,
    ) -> Result<(FlowKey, Reason), Reason> {
        let ext_port = packet.field(transport.dst_port_at);
        let remote_addr = packet.ip_addr(ipv4::SRC);
        let remote = remote_port(packet, transport, transport.src_port_at);
        let (flow, reason) = match self.match_inbound(
            slot,
            transport.proto,
            ext_port,
            remote_addr,
            remote,
            transport.tcp_flags,
            now,
        ) {
            Ok(flow) => (flow, Reason::TranslatedIn),
            Err(unmatched @ (Reason::NoMapping | Reason::NoFlow)) => {
                let inbound = (slot, transport.proto, ext_port, remote_addr, remote);
                match self.match_forward(inbound, Some(transport.tcp_flags), now) {
                    Ok((flow, true)) => (flow, Reason::ForwardOpened),
                    Ok((flow, false)) => (flow, Reason::TranslatedIn),
                    Err(Reason::NoMapping) => return Err(unmatched),
                    Err(reason) => return Err(reason),
                }
            }
            Err(reason) => return Err(reason),
        };
        packet.replace_u16(
            transport.dst_port_at,
            transport.check_at,
            flow.lan_port,
            transport.is_udp(),
        );
        if transport.tcp_flags & tcp_flag::SYN != 0 && uplink.mss != 0 {
            clamp_mss(packet, transport, uplink.mss);
        }
        Ok((flow, reason))
    }

    /// The forward's flow for an inbound packet (`slot`, protocol, external port, remote
    /// address and port) to a forwarded port, created by a connection's first packet (TCP
    /// SYN alone, or any UDP datagram; `tcp_flags` is `None` for an ICMP error, which opens
    /// nothing) while the uplink is usable. Says whether it was created.
    fn match_forward(
        &mut self,
        (slot, proto, ext_port, remote_addr, remote_port): (u32, u8, [u8; 2], [u8; 4], [u8; 2]),
        tcp_flags: Option<u8>,
        now: u64,
    ) -> Result<(FlowKey, bool), Reason> {
        let target = *self
            .forwards
            .get(&reverse_key(ext_port, proto, slot))
            .ok_or(Reason::NoMapping)?;
        let key = FlowKey {
            lan_addr: target.lan_addr,
            remote_addr,
            lan_port: target.lan_port,
            remote_port,
            proto,
            _pad: [0; 3],
        };
        if let Some(flow) = self.flows.get_mut(&key)
            && !expired(flow.last_seen_ns, flow_timeout_ns(proto, flow.state), now)
        {
            // A live flow of the same ends through another uplink or port stays.
            if flow.uplink != slot || flow.ext_port != ext_port {
                return Err(Reason::NoFlow);
            }
            flow.last_seen_ns = now;
            flow.state = next_tcp_state(flow.state, tcp_flags.unwrap_or(0), false);
            return Ok((key, false));
        }
        let Some(flags) = tcp_flags else {
            return Err(Reason::NoFlow);
        };
        if proto == ip_proto::TCP
            && flags & (tcp_flag::SYN | tcp_flag::ACK | tcp_flag::RST) != tcp_flag::SYN
        {
            return Err(Reason::NoFlow);
        }
        if !self.usable(slot) {
            return Err(Reason::ForwardDown);
        }
        let state = if proto == ip_proto::TCP {
            next_tcp_state(tcp_state::OPENING, flags, false)
        } else {
            tcp_state::OPENING
        };
        self.flows.insert(
            key,
            Flow {
                last_seen_ns: now,
                reverse_seen_ns: now,
                uplink: slot,
                ext_port,
                state,
                origin: flow_origin::FORWARDED,
            },
        );
        Ok((key, true))
    }

    /// An ICMP error about a translated flow: the quoted packet left through this uplink, so
    /// its source (address and port or echo identifier) goes back to the LAN host's, with
    /// the quoted checksums and the ICMP checksum patched. The outer destination is the
    /// caller's.
    fn translate_icmp_error(
        &mut self,
        packet: &mut Packet,
        slot: u32,
        now: u64,
    ) -> Result<FlowKey, Reason> {
        let kind = packet.field::<1>(L4 + l4::ICMP_TYPE)[0];
        if !matches!(
            kind,
            icmp_type::DEST_UNREACHABLE | icmp_type::TIME_EXCEEDED | icmp_type::PARAMETER_PROBLEM
        ) {
            return Err(Reason::UnsupportedProtocol);
        }
        let inner: [u8; ipv4::LEN] = packet.get(INNER_IP).ok_or(Reason::Malformed)?;
        if inner[ipv4::VERSION_IHL] != ipv4::PLAIN_VERSION_IHL {
            return Err(Reason::IpOptions);
        }
        let head: [u8; 8] = packet.get(INNER_L4).ok_or(Reason::Malformed)?;
        let quoted = Quoted::of(&inner, head)?;
        let quoted_src: [u8; 4] = packet.field(INNER_IP + ipv4::SRC);
        if self.uplinks[slot as usize].addr != quoted_src {
            return Err(Reason::NoMapping);
        }
        let ext_port: [u8; 2] = packet.field(quoted.ext_port_at);
        let remote: [u8; 4] = packet.field(INNER_IP + ipv4::DST);
        let flow = match self.match_inbound(
            slot,
            quoted.proto,
            ext_port,
            remote,
            quoted.remote_port,
            0,
            now,
        ) {
            Ok(flow) => flow,
            // About a reply of a forwarded connection.
            Err(unmatched @ (Reason::NoMapping | Reason::NoFlow)) => {
                let inbound = (slot, quoted.proto, ext_port, remote, quoted.remote_port);
                self.match_forward(inbound, None, now)
                    .map_err(|_| unmatched)?
                    .0
            }
            Err(reason) => return Err(reason),
        };
        rewrite_quote(packet, &quoted, flow);
        Ok(flow)
    }

    /// Finds the flow an inbound packet for `ext_port` on uplink `slot` from the remote
    /// belongs to (endpoint-independent mapping, address- and port-dependent filtering) and
    /// refreshes it.
    #[expect(
        clippy::too_many_arguments,
        reason = "the fields of one inbound lookup, as the data plane has them"
    )]
    fn match_inbound(
        &mut self,
        slot: u32,
        proto: u8,
        ext_port: [u8; 2],
        remote_addr: [u8; 4],
        remote_port: [u8; 2],
        tcp_flags: u8,
        now: u64,
    ) -> Result<FlowKey, Reason> {
        let rkey = reverse_key(ext_port, proto, slot);
        let mapping = *self.reverse.get(&rkey).ok_or(Reason::NoMapping)?;
        let key = FlowKey {
            lan_addr: mapping.lan_addr,
            remote_addr,
            lan_port: mapping.lan_port,
            remote_port,
            proto,
            _pad: [0; 3],
        };
        let flow = self.flows.get_mut(&key).ok_or(Reason::NoFlow)?;
        if flow.uplink != slot
            || flow.ext_port != ext_port
            || expired(flow.last_seen_ns, flow_timeout_ns(proto, flow.state), now)
        {
            return Err(Reason::NoFlow);
        }
        flow.last_seen_ns = now;
        flow.state = next_tcp_state(flow.state, tcp_flags, false);
        if let Some(mapping) = self.reverse.get_mut(&rkey) {
            mapping.last_seen_ns = now;
        }
        Ok(key)
    }

    /// Hands a translated inbound packet to the LAN host, as far as the FIB allows.
    fn forward_to_lan(
        &mut self,
        packet: &mut Packet,
        fib: &impl Fn(Ipv4Addr) -> Fib,
        reason: Reason,
    ) -> Result<(Verdict, Reason), Reason> {
        if packet.ttl() <= 1 {
            return Err(Reason::TtlExpiring);
        }
        match fib(Ipv4Addr::from(packet.ip_addr(ipv4::DST))) {
            Fib::NoNeighbour => Err(Reason::NeighbourUnresolved),
            Fib::Forward {
                ifindex,
                src_mac,
                dst_mac,
            } if ifindex == self.lan.ifindex => {
                packet.decrement_ttl();
                packet.set_macs(src_mac, dst_mac);
                Ok(self.redirect(LAN_SLOT, reason))
            }
            Fib::Forward { .. } | Fib::NotForwarded => Err(Reason::NoRoute),
        }
    }

    /// Finds or creates the flow of an outbound packet: it keeps its uplink while that
    /// uplink is usable and its mapping still belongs to it, and otherwise takes the active
    /// uplink. Returns the uplink slot and the external port.
    fn steer(&mut self, key: &FlowKey, tcp_flags: u8, now: u64) -> Result<(u32, [u8; 2]), Reason> {
        // A key still in the table holds its place in the host's flow count.
        let in_table = self.flows.contains_key(key);
        if let Some(flow) = self.flows.get(key).copied()
            && !expired(
                flow.last_seen_ns,
                flow_timeout_ns(key.proto, flow.state),
                now,
            )
        {
            // A TCP flow that must leave its uplink cannot go on elsewhere: reset it, unless
            // the segment opens a new connection (SYN) or is itself a reset.
            let leaving = !self.usable(flow.uplink) || flow.state == tcp_state::MOVED;
            if leaving
                && key.proto == ip_proto::TCP
                && flow.state != tcp_state::CLOSED
                && tcp_flags & (tcp_flag::SYN | tcp_flag::RST) == 0
            {
                self.flows.remove(key);
                return Err(Reason::ResetToClient);
            }
            // A forwarded connection's reply means something only through the uplink the
            // remote reached; its port is the forward's, which no binding holds.
            let forwarded = flow.origin == flow_origin::FORWARDED;
            if leaving && forwarded {
                return Err(Reason::NoUplink);
            }
            if !leaving && (forwarded || self.refresh_reverse(key, flow.uplink, flow.ext_port, now))
            {
                let entry = self.flows.get_mut(key).expect("flow just read");
                entry.last_seen_ns = now;
                entry.state = next_tcp_state(entry.state, tcp_flags, true);
                return Ok((flow.uplink, flow.ext_port));
            }
        }
        // A new flow takes its share of the spread when that uplink is usable, else the
        // active uplink.
        let preferred = self.policy.pick(flow_cache_slot(key));
        let slot = if self.usable(preferred) {
            preferred
        } else {
            self.policy.active
        };
        if !self.usable(slot) {
            return Err(Reason::NoUplink);
        }
        let existing = self.existing_binding(key, slot, now);
        if !in_table || existing.is_none() {
            self.admit(key.lan_addr, slot, now, !in_table, existing.is_none())?;
        }
        let ext_port = match existing {
            Some(port) => port,
            None => self.allocate_port(key, slot, now)?,
        };
        let state = if key.proto == ip_proto::TCP {
            next_tcp_state(tcp_state::OPENING, tcp_flags, true)
        } else {
            tcp_state::OPENING
        };
        let flow = Flow {
            last_seen_ns: now,
            reverse_seen_ns: now,
            uplink: slot,
            ext_port,
            state,
            origin: flow_origin::OUTBOUND,
        };
        self.flows.insert(*key, flow);
        Ok((slot, ext_port))
    }

    /// The per-host limits: admits a new flow and/or a new port of LAN host `addr` on
    /// `slot`, counting them, or refuses what would pass a limit in force (counted as a
    /// refusal of the host). Without limits in force nothing is counted.
    fn admit(
        &mut self,
        addr: [u8; 4],
        slot: u32,
        now: u64,
        new_flow: bool,
        new_port: bool,
    ) -> Result<(), Reason> {
        let limits = self.host_limits;
        if !limits.in_force(now) {
            return Ok(());
        }
        self.hosts
            .entry(HostKey { addr })
            .or_default()
            .admit(&limits, slot, new_flow, new_port)
    }

    fn binding_key(key: &FlowKey, slot: u32) -> BindingKey {
        BindingKey {
            lan_addr: key.lan_addr,
            lan_port: key.lan_port,
            proto: key.proto,
            uplink: u8::try_from(slot).expect("uplink slots fit a byte"),
        }
    }

    /// The external port the flow's LAN end holds on uplink `slot`, while its port still
    /// maps back to it.
    fn existing_binding(&mut self, key: &FlowKey, slot: u32, now: u64) -> Option<[u8; 2]> {
        let existing = self.bindings.get(&Self::binding_key(key, slot)).copied()?;
        self.refresh_reverse(key, slot, existing.ext_port, now)
            .then_some(existing.ext_port)
    }

    /// A newly claimed external port for the flow's LAN end on uplink `slot`.
    fn allocate_port(&mut self, key: &FlowKey, slot: u32, now: u64) -> Result<[u8; 2], Reason> {
        let bkey = Self::binding_key(key, slot);
        let uplink = self.uplinks[slot as usize];
        let hash = binding_hash(key.lan_addr, key.lan_port, key.proto);
        let lan_port = u16::from_be_bytes(key.lan_port);
        for attempt in 0..PORT_PROBES {
            let port = candidate_port(uplink.port_min, uplink.port_max, lan_port, hash, attempt);
            let binding = Binding {
                last_seen_ns: now,
                lan_addr: key.lan_addr,
                lan_port: key.lan_port,
                ext_port: port.to_be_bytes(),
            };
            if self.claim(reverse_key(binding.ext_port, key.proto, slot), binding, now) {
                self.bindings.insert(bkey, binding);
                return Ok(binding.ext_port);
            }
        }
        Err(Reason::PortsExhausted)
    }

    /// Takes an external port when it is free or its mapping went stale.
    fn claim(&mut self, rkey: ReverseKey, binding: Binding, now: u64) -> bool {
        match self.reverse.entry(rkey) {
            Entry::Vacant(free) => {
                free.insert(binding);
                true
            }
            Entry::Occupied(mut taken) => {
                let stale = expired(
                    taken.get().last_seen_ns,
                    binding_timeout_ns(rkey.proto),
                    now,
                );
                if stale {
                    taken.insert(binding);
                }
                stale
            }
        }
    }

    /// True (and the mapping refreshed) when `ext_port` on `slot` still maps to the flow's
    /// LAN end.
    fn refresh_reverse(&mut self, key: &FlowKey, slot: u32, ext_port: [u8; 2], now: u64) -> bool {
        match self
            .reverse
            .get_mut(&reverse_key(ext_port, key.proto, slot))
        {
            Some(mapping)
                if mapping.lan_addr == key.lan_addr && mapping.lan_port == key.lan_port =>
            {
                mapping.last_seen_ns = now;
                true
            }
            _ => false,
        }
    }

    fn usable(&self, slot: u32) -> bool {
        slot < MAX_UPLINKS && self.uplinks[slot as usize].usable != 0
    }

    fn is_uplink_addr(&self, addr: [u8; 4]) -> bool {
        self.uplinks
            .iter()
            .any(|uplink| uplink.ifindex != 0 && uplink.addr == addr)
    }

    /// The first uplink slot configured on `ifindex`.
    fn uplink_on(&self, ifindex: u32) -> Option<(u32, Uplink)> {
        (0..MAX_UPLINKS)
            .map(|slot| (slot, self.uplinks[slot as usize]))
            .find(|(_, uplink)| uplink.ifindex == ifindex)
    }

    fn redirect(&self, device_slot: u32, reason: Reason) -> (Verdict, Reason) {
        if self.devices[device_slot as usize].is_some() {
            (Verdict::Redirect { device_slot }, reason)
        } else {
            (Verdict::Drop, Reason::RedirectFailed)
        }
    }

    fn count_uplink(&mut self, slot: u32, bytes: usize, outbound: bool) {
        let counters = &mut self.uplink_counters[slot as usize];
        let bytes = bytes as u64;
        if outbound {
            counters.packets_out += 1;
            counters.bytes_out += bytes;
        } else {
            counters.packets_in += 1;
            counters.bytes_in += bytes;
        }
    }

    fn count_class(&mut self, direction: Direction, frame: &[u8]) {
        self.class_stats[stat_index(direction, class_of(frame)) as usize] += 1;
    }
}

/// The remote's port in a flow key, read at `at`: ICMP echo has none.
fn remote_port(packet: &Packet, transport: Transport, at: usize) -> [u8; 2] {
    if transport.proto == ip_proto::ICMP {
        [0, 0]
    } else {
        packet.field(at)
    }
}

/// Rewrites the quoted packet's source address and port (or echo identifier) to the flow's
/// LAN end, patching the quoted IPv4 checksum, the quoted transport checksum when the quote
/// holds it, and the ICMP checksum over all of them.
fn rewrite_quote(packet: &mut Packet, quoted: &Quoted, flow: FlowKey) {
    let icmp_check_at = L4 + l4::ICMP_CHECKSUM;
    let mut icmp_check = packet.word(icmp_check_at);
    let wan_addr: [u8; 4] = packet.field(INNER_IP + ipv4::SRC);
    let ext_port: [u8; 2] = packet.field(quoted.ext_port_at);
    let mut replace = |packet: &mut Packet, at: usize, new: u16| {
        icmp_check = checksum::replace_u16(icmp_check, packet.word(at), new);
        packet.put(at, new.to_be_bytes());
    };
    // The address, word by word, then the quoted IPv4 checksum that covers it.
    let inner_check_at = INNER_IP + ipv4::CHECKSUM;
    let inner_check = replace_addr(packet.word(inner_check_at), wan_addr, flow.lan_addr);
    for half in [0, 2] {
        let lan_half = [flow.lan_addr[half], flow.lan_addr[half + 1]];
        replace(
            packet,
            INNER_IP + ipv4::SRC + half,
            u16::from_be_bytes(lan_half),
        );
    }
    replace(packet, inner_check_at, inner_check);
    replace(
        packet,
        quoted.ext_port_at,
        u16::from_be_bytes(flow.lan_port),
    );
    if let Some(old) = packet.get::<2>(quoted.check_at).map(u16::from_be_bytes) {
        let (old_port, new_port) = (
            u16::from_be_bytes(ext_port),
            u16::from_be_bytes(flow.lan_port),
        );
        let patched = match quoted.proto {
            ip_proto::TCP => checksum::replace_u16(
                replace_addr(old, wan_addr, flow.lan_addr),
                old_port,
                new_port,
            ),
            ip_proto::UDP => checksum::udp_replace_u16(
                udp_replace_addr(old, wan_addr, flow.lan_addr),
                old_port,
                new_port,
            ),
            _ => checksum::replace_u16(old, old_port, new_port),
        };
        replace(packet, quoted.check_at, patched);
    }
    packet.put(icmp_check_at, icmp_check.to_be_bytes());
}

/// The class a frame is counted under: one VLAN tag is looked through, and the IPv4 checks
/// are made against the frame's length (that is what "too short for its headers" means).
fn class_of(frame: &[u8]) -> PacketClass {
    let Some(mut kind) = be16(frame, ETH_TYPE) else {
        return PacketClass::Malformed;
    };
    let mut at = ETH_LEN;
    if kind == ether_type::VLAN || kind == ether_type::QINQ {
        let Some(inner) = be16(frame, ETH_LEN + 2) else {
            return PacketClass::Malformed;
        };
        kind = inner;
        at += VLAN_TAG_LEN;
    }
    match kind {
        ether_type::ARP => PacketClass::Arp,
        ether_type::IPV6 => PacketClass::Ipv6,
        ether_type::IPV4 => match frame.get(at..at + ipv4::LEN) {
            Some(header) => classify_ipv4(ipv4_fields(header), frame.len() - at),
            None => PacketClass::Malformed,
        },
        _ => PacketClass::OtherL3,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{Frame, tcp_flags, verify_checksums};

    const FIBER_ADDR: [u8; 4] = [192, 0, 2, 2];

    fn model() -> Model {
        let mut model = Model::new();
        model.set_lan(Lan {
            ifindex: 5,
            net: [10, 10, 0, 0],
            prefix_len: 24,
            path: 0,
            _pad: [0; 2],
        });
        model.set_uplink(
            0,
            Uplink {
                ifindex: 1,
                addr: FIBER_ADDR,
                mac: [2, 0, 0, 0, 0xf1, 2],
                gateway_mac: [2, 0, 0, 0, 0xf1, 1],
                port_min: 1024,
                port_max: 65535,
                mss: 1360,
                usable: 1,
                path: 0,
            },
        );
        model
    }

    fn fib(addr: Ipv4Addr) -> Fib {
        if addr == Ipv4Addr::new(10, 10, 0, 11) {
            Fib::Forward {
                ifindex: 5,
                src_mac: [2, 0, 0, 0, 0, 1],
                dst_mac: [2, 0, 0, 0, 0, 0x11],
            }
        } else {
            Fib::NoNeighbour
        }
    }

    #[test]
    fn a_syn_and_its_answer_round_trip_with_valid_checksums() {
        let mut model = model();
        let syn = Frame::tcp(
            "10.10.0.11:40000".parse().unwrap(),
            "203.0.113.10:80".parse().unwrap(),
            tcp_flags::SYN,
        )
        .tcp_options(&[2, 4, 0x05, 0xb4])
        .build();
        let out = model.lan_ingress(&syn, 1);
        assert_eq!(out.reason, Reason::TranslatedOut);
        assert_eq!(&out.frame[26..30], &FIBER_ADDR);
        assert_eq!(&out.frame[56..58], &1360u16.to_be_bytes(), "MSS clamped");
        verify_checksums(&out.frame).unwrap();

        let answer = Frame::tcp(
            "203.0.113.10:80".parse().unwrap(),
            "192.0.2.2:40000".parse().unwrap(),
            tcp_flags::SYN | tcp_flags::ACK,
        )
        .build();
        let back = model.uplink_ingress(&answer, 1, 2, &fib);
        assert_eq!(
            back.verdict,
            Verdict::Redirect {
                device_slot: LAN_SLOT
            }
        );
        assert_eq!(&back.frame[30..34], &[10, 10, 0, 11]);
        verify_checksums(&back.frame).unwrap();
        let flow = model.flows.values().next().unwrap();
        assert_eq!(flow.state, tcp_state::ESTABLISHED);
    }

    #[test]
    fn mss_at_an_odd_offset_is_clamped_with_a_valid_checksum() {
        let mut model = model();
        // Window scale (3 bytes) first: the MSS value sits at an odd offset.
        let syn = Frame::tcp(
            "10.10.0.11:40000".parse().unwrap(),
            "203.0.113.10:80".parse().unwrap(),
            tcp_flags::SYN,
        )
        .tcp_options(&[3, 3, 7, 2, 4, 0x05, 0xb4])
        .build();
        let out = model.lan_ingress(&syn, 1);
        assert_eq!(&out.frame[59..61], &1360u16.to_be_bytes(), "MSS clamped");
        verify_checksums(&out.frame).unwrap();
    }

    #[test]
    fn bytes_after_the_ip_packet_are_not_read() {
        let mut model = model();
        // An ICMP error whose total length covers no quote; the frame carries a trailer.
        let mut frame =
            Frame::icmp_echo(Ipv4Addr::new(198, 18, 1, 1), FIBER_ADDR.into(), 0, 0).build();
        frame[34] = 3;
        frame.extend_from_slice(&[0x45; 40]);
        let out = model.uplink_ingress(&frame, 1, 1, &fib);
        assert_eq!(out.reason, Reason::Malformed);
        assert_eq!(out.frame, frame);
    }
}
