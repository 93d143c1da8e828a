//! ICMP errors (destination unreachable, including fragmentation needed; time exceeded;
//! parameter problem) about a translated flow: the embedded header is the packet as it left
//! the router, so its source address and port are translated back too, with every checksum
//! patched, so path-MTU discovery and traceroute work through the router.

use failover_common::{
    checksum::{replace_addr, replace_u16, udp_replace_addr, udp_replace_u16},
    classify::ip_proto,
    nat::FlowKey,
    verdict::Reason,
};
use network_types::{icmp::Icmpv4Hdr, ip::Ipv4Hdr};

use crate::{cursor::ptr_at, flows, packet::word, program::Program, transport::icmp_type};

/// The embedded IPv4 header follows the 8-byte ICMP header.
const INNER_IP: usize = Icmpv4Hdr::LEN;
/// Embedded headers with options are left to the kernel, so the inner transport is here.
const INNER_L4: usize = INNER_IP + Ipv4Hdr::LEN;
/// Every ICMP error quotes at least the IPv4 header and 8 bytes of the transport header.
const QUOTED_L4_LEN: usize = 8;
/// Offsets of the checksum in the embedded transport header.
const UDP_CHECK: usize = 6;
const TCP_CHECK: usize = 16;
const ICMP_CHECK: usize = 2;
/// Offset of the echo identifier in an embedded ICMP echo request.
const ICMP_ID: usize = 4;

/// Translates the ICMP error in place (except the outer destination address, which the
/// caller rewrites) and returns the flow it is about.
#[inline(always)]
pub fn translate<P: Program>(
    ctx: &P,
    slot: u32,
    uplink_addr: [u8; 4],
    ip_end: usize,
    now: u64,
) -> Result<FlowKey, Reason> {
    // Offsets in the frame.
    let inner_ip = P::L4 + INNER_IP;
    let inner_l4 = P::L4 + INNER_L4;
    let icmp = ptr_at::<Icmpv4Hdr, P>(ctx, P::L4).map_err(|_| Reason::Malformed)?;
    // SAFETY: bounds checked by ptr_at.
    let icmp = unsafe { &mut *icmp };
    if !matches!(
        icmp.type_,
        icmp_type::DEST_UNREACHABLE | icmp_type::TIME_EXCEEDED | icmp_type::PARAMETER_PROBLEM
    ) {
        return Err(Reason::UnsupportedProtocol);
    }
    // The quote is the ICMP message's payload: it ends with the IPv4 packet, not the frame.
    if inner_l4 > ip_end {
        return Err(Reason::Malformed);
    }
    let inner = ptr_at::<Ipv4Hdr, P>(ctx, inner_ip).map_err(|_| Reason::Malformed)?;
    // SAFETY: bounds checked by ptr_at.
    let inner = unsafe { &mut *inner };
    if inner.vihl != 0x45 {
        return Err(Reason::IpOptions);
    }
    if inner_l4 + QUOTED_L4_LEN > ip_end {
        return Err(Reason::Malformed);
    }
    let ports = ptr_at::<[[u8; 2]; 4], P>(ctx, inner_l4).map_err(|_| Reason::Malformed)?;
    // SAFETY: bounds checked by ptr_at.
    let ports = unsafe { &mut *ports };
    // The embedded packet left through this uplink: its source is our port (or echo id).
    let (port_index, remote_port, check_offset) = match inner.proto {
        ip_proto::TCP => (0, ports[1], TCP_CHECK),
        ip_proto::UDP => (0, ports[1], UDP_CHECK),
        ip_proto::ICMP if ports[0][0] == icmp_type::ECHO_REQUEST => {
            (ICMP_ID / 2, [0, 0], ICMP_CHECK)
        }
        _ => return Err(Reason::UnsupportedProtocol),
    };
    // Only an error about a packet that left through this uplink can be about our flow.
    if inner.src_addr != uplink_addr {
        return Err(Reason::NoMapping);
    }
    let ext_port = ports[port_index];
    let flow = match flows::match_inbound(
        slot,
        inner.proto,
        ext_port,
        inner.dst_addr,
        remote_port,
        0,
        now,
    ) {
        Ok(flow) => flow,
        // About a reply of a forwarded connection.
        Err(unmatched @ (Reason::NoMapping | Reason::NoFlow)) => {
            let packet = flows::Inbound {
                slot,
                proto: inner.proto,
                ext_port,
                remote_addr: inner.dst_addr,
                remote_port,
            };
            flows::match_forward(&packet, None, now)
                .map_err(|_| unmatched)?
                .0
        }
        Err(other) => return Err(other),
    };

    let mut outer = word(icmp.check);
    // Embedded source address, and the embedded IPv4 checksum that covers it.
    let old_addr = inner.src_addr;
    inner.src_addr = flow.lan_addr;
    outer = replace_addr(outer, old_addr, flow.lan_addr);
    let old_check = inner.check;
    inner.check = replace_addr(word(old_check), old_addr, flow.lan_addr).to_ne_bytes();
    outer = replace_u16(outer, word(old_check), word(inner.check));
    // Embedded port.
    ports[port_index] = flow.lan_port;
    outer = replace_u16(outer, word(ext_port), word(flow.lan_port));
    // Embedded transport checksum, when the error quotes enough of the packet to hold it.
    if inner_l4 + check_offset + 2 <= ip_end
        && let Ok(check) = ptr_at::<[u8; 2], P>(ctx, inner_l4 + check_offset)
    {
        // SAFETY: bounds checked by ptr_at.
        let check = unsafe { &mut *check };
        let old = *check;
        let new = match inner.proto {
            ip_proto::UDP => udp_replace_u16(
                udp_replace_addr(word(old), old_addr, flow.lan_addr),
                word(ext_port),
                word(flow.lan_port),
            ),
            ip_proto::TCP => replace_u16(
                replace_addr(word(old), old_addr, flow.lan_addr),
                word(ext_port),
                word(flow.lan_port),
            ),
            _ => replace_u16(word(old), word(ext_port), word(flow.lan_port)),
        };
        *check = new.to_ne_bytes();
        outer = replace_u16(outer, word(old), new);
    }
    icmp.check = outer.to_ne_bytes();
    Ok(flow)
}
