//! Parsing of the frames the NAT translates: untagged Ethernet, IPv4 without options or
//! fragmentation, then TCP, UDP or ICMP at a fixed offset. Everything else gets a reason and
//! goes to the kernel.

use failover_common::{
    checksum,
    classify::{Ipv4Fields, PacketClass, classify_ipv4, ether_type},
    verdict::Reason,
};
use network_types::{eth::EthHdr, ip::Ipv4Hdr};

use crate::cursor::{Frame, OutOfBounds, bytes_from, ptr_at};

/// An IPv4 frame the NAT may translate. Pointers are bounds-checked.
pub struct Ipv4Frame {
    pub ip: *mut Ipv4Hdr,
    pub class: PacketClass,
    /// Frame offset where the IPv4 packet ends: bytes beyond (an Ethernet trailer) are not
    /// part of it and must never be read as headers or options.
    pub ip_end: usize,
}

#[inline(always)]
pub fn parse<F: Frame>(frame: &F) -> Result<Ipv4Frame, Reason> {
    if F::L2_LEN != 0 {
        let eth = ptr_at::<EthHdr, F>(frame, 0).map_err(|_| Reason::Malformed)?;
        // SAFETY: bounds checked by ptr_at.
        let kind = u16::from_be(unsafe { (*eth).ether_type });
        if kind == ether_type::VLAN || kind == ether_type::QINQ {
            return Err(Reason::Vlan);
        }
        if kind != ether_type::IPV4 {
            return Err(Reason::NotIpv4);
        }
    }
    let ip = ptr_at::<Ipv4Hdr, F>(frame, F::IP).map_err(|_| Reason::Malformed)?;
    // SAFETY: bounds checked by ptr_at.
    let fields = unsafe { ipv4_fields(&*ip) };
    // Without an Ethernet header, the version says what the packet is.
    if F::L2_LEN == 0 && fields.version_ihl >> 4 != 4 {
        return Err(Reason::NotIpv4);
    }
    let class = classify_ipv4(fields, bytes_from(frame, F::IP));
    match class {
        PacketClass::Tcp | PacketClass::Udp | PacketClass::Icmp => Ok(Ipv4Frame {
            ip,
            class,
            ip_end: F::IP + usize::from(fields.total_len),
        }),
        PacketClass::Fragment => Err(Reason::Fragment),
        PacketClass::Ipv4Options => Err(Reason::IpOptions),
        PacketClass::OtherIpv4 => Err(Reason::UnsupportedProtocol),
        _ => Err(Reason::Malformed),
    }
}

#[inline(always)]
pub fn ipv4_fields(ip: &Ipv4Hdr) -> Ipv4Fields {
    Ipv4Fields {
        version_ihl: ip.vihl,
        flags_fragment: u16::from_be_bytes(ip.frags),
        total_len: u16::from_be_bytes(ip.tot_len),
        protocol: ip.proto,
    }
}

/// Native-order view of two wire bytes, the unit of checksum arithmetic.
#[inline(always)]
pub fn word(bytes: [u8; 2]) -> u16 {
    u16::from_ne_bytes(bytes)
}

/// Decrements the TTL and patches the header checksum.
#[inline(always)]
pub fn decrement_ttl(ip: &mut Ipv4Hdr) {
    let old = [ip.ttl, ip.proto];
    ip.ttl -= 1;
    ip.check =
        checksum::replace_u16(word(ip.check), word(old), word([ip.ttl, ip.proto])).to_ne_bytes();
}

/// Writes the frame's Ethernet source and destination MACs (`set_macs`).
#[inline(always)]
pub fn write_macs<F: Frame>(frame: &F, src: [u8; 6], dst: [u8; 6]) -> Result<(), OutOfBounds> {
    let eth = ptr_at::<EthHdr, F>(frame, 0)?;
    // SAFETY: bounds-checked by ptr_at.
    set_macs(unsafe { &mut *eth }, src, dst);
    Ok(())
}

/// Writes both MAC addresses as 4- and 2-byte stores. A plain array assignment compiles to
/// a call to a byte-by-byte `memmove` on BPF, which is a large share of the hit path.
#[inline(always)]
pub fn set_macs(eth: &mut EthHdr, src: [u8; 6], dst: [u8; 6]) {
    write_mac(&raw mut eth.src_addr, src);
    write_mac(&raw mut eth.dst_addr, dst);
}

#[inline(always)]
fn write_mac(field: *mut [u8; 6], mac: [u8; 6]) {
    let head = u32::from_ne_bytes([mac[0], mac[1], mac[2], mac[3]]);
    let tail = u16::from_ne_bytes([mac[4], mac[5]]);
    // SAFETY: `field` points at a 6-byte field of a bounds-checked header; unaligned writes
    // are allowed for packet data.
    unsafe {
        field.cast::<u32>().write_unaligned(head);
        field
            .cast::<u8>()
            .add(4)
            .cast::<u16>()
            .write_unaligned(tail);
    }
}
