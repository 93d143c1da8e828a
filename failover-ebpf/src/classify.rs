//! Frame classification for the per-direction counters.

use failover_common::classify::{
    Direction, Ipv4Fields, PacketClass, classify_ipv4, ether_type, stat_index,
};
use network_types::{eth::EthHdr, ip::Ipv4Hdr};

use crate::{
    cursor::{Frame, OutOfBounds, bytes_from, ptr_at},
    maps::CLASS_STATS,
};

/// IP version nibbles, which tell the protocol of a frame without an Ethernet header.
const IP_VERSION_4: u8 = 4;
const IP_VERSION_6: u8 = 6;

/// Size of one 802.1Q / 802.1ad tag.
const VLAN_TAG_LEN: usize = 4;

/// Counts the frame under its class for `direction`.
#[inline(always)]
pub fn count<F: Frame>(ctx: &F, direction: Direction) {
    let class = classify(ctx).unwrap_or(PacketClass::Malformed);
    if let Some(counter) = CLASS_STATS.get_ptr_mut(stat_index(direction, class)) {
        // SAFETY: per-CPU slot of a preallocated array; no other program touches it meanwhile.
        unsafe { *counter += 1 };
    }
}

#[inline(always)]
fn classify<F: Frame>(ctx: &F) -> Result<PacketClass, OutOfBounds> {
    if F::L2_LEN == 0 {
        // Read as a whole base header: every IP packet holds one, and a 1-byte read at the
        // frame's start compiles to a bounds check the verifier cannot follow.
        let ip = ptr_at::<Ipv4Hdr, F>(ctx, 0)?;
        // SAFETY: ptr_at checked bounds.
        return match unsafe { (*ip).vihl } >> 4 {
            IP_VERSION_4 => classify_at(ctx, 0),
            IP_VERSION_6 => Ok(PacketClass::Ipv6),
            _ => Ok(PacketClass::OtherL3),
        };
    }
    let eth = ptr_at::<EthHdr, F>(ctx, 0)?;
    // SAFETY: ptr_at checked bounds.
    let mut kind = u16::from_be(unsafe { (*eth).ether_type });
    let mut offset = EthHdr::LEN;
    // One VLAN tag is looked through; a second one classes the frame as another L3.
    if kind == ether_type::VLAN || kind == ether_type::QINQ {
        let tag = ptr_at::<[u8; VLAN_TAG_LEN], F>(ctx, offset)?;
        // SAFETY: ptr_at checked bounds.
        let tag = unsafe { *tag };
        kind = u16::from_be_bytes([tag[2], tag[3]]);
        offset += VLAN_TAG_LEN;
    }
    Ok(match kind {
        ether_type::ARP => PacketClass::Arp,
        ether_type::IPV6 => PacketClass::Ipv6,
        ether_type::IPV4 => classify_at(ctx, offset)?,
        _ => PacketClass::OtherL3,
    })
}

/// The class of the IPv4 packet at `offset`.
#[inline(always)]
fn classify_at<F: Frame>(ctx: &F, offset: usize) -> Result<PacketClass, OutOfBounds> {
    let ip = ptr_at::<Ipv4Hdr, F>(ctx, offset)?;
    // SAFETY: ptr_at checked bounds.
    let ip = unsafe { &*ip };
    let fields = Ipv4Fields {
        version_ihl: ip.vihl,
        flags_fragment: u16::from_be_bytes(ip.frags),
        total_len: u16::from_be_bytes(ip.tot_len),
        protocol: ip.proto,
    };
    Ok(classify_ipv4(fields, bytes_from(ctx, offset)))
}
