//! The transport header of a translatable packet, as pointers to the fields NAT rewrites.

use failover_common::{
    checksum,
    classify::{PacketClass, ip_proto},
    verdict::Reason,
};
use network_types::{icmp::Icmpv4Hdr, ip::Ipv4Hdr, tcp::TcpHdr, udp::UdpHdr};

use crate::{cursor::ptr_at, packet::word, program::Program};

/// ICMP types the NAT handles.
pub mod icmp_type {
    pub const ECHO_REPLY: u8 = 0;
    pub const DEST_UNREACHABLE: u8 = 3;
    pub const ECHO_REQUEST: u8 = 8;
    pub const TIME_EXCEEDED: u8 = 11;
    pub const PARAMETER_PROBLEM: u8 = 12;
}

/// Offset of the TCP flags byte in the TCP header.
const TCP_FLAGS_OFFSET: usize = 13;
/// Offsets of the checksum in the transport headers.
const TCP_CHECK: usize = 16;
const UDP_CHECK: usize = 6;
const ICMP_CHECK: usize = 2;

/// Ports (or the ICMP echo identifier, which stands for both) and the checksum covering them.
pub struct Transport {
    pub proto: u8,
    pub src_port: *mut [u8; 2],
    pub dst_port: *mut [u8; 2],
    pub check: *mut [u8; 2],
    /// Frame offset of `check`.
    pub check_at: usize,
    /// TCP flags; 0 for other protocols.
    pub tcp_flags: u8,
    /// ICMP type; 0 for other protocols.
    pub icmp_type: u8,
}

impl Transport {
    /// The remote's port in a flow key: ICMP echo has none.
    #[inline(always)]
    pub fn remote_port(&self, remote_is_src: bool) -> [u8; 2] {
        if self.proto == ip_proto::ICMP {
            return [0, 0];
        }
        // SAFETY: pointers were bounds-checked at parse time.
        unsafe {
            if remote_is_src {
                *self.src_port
            } else {
                *self.dst_port
            }
        }
    }

    /// Rewrites a port (`port` is `src_port` or `dst_port`) and patches the checksum.
    #[inline(always)]
    pub fn set_port<P: Program>(&self, ctx: &P, port: *mut [u8; 2], new: [u8; 2]) {
        // SAFETY: pointers were bounds-checked at parse time and point into distinct fields
        // of the packet.
        let (port, check) = unsafe { (&mut *port, &mut *self.check) };
        let (old_word, new_word) = (word(*port), word(new));
        *port = new;
        if self.proto == ip_proto::ICMP {
            // ICMP has no pseudo-header and is never offloaded: always a complete checksum.
            *check = checksum::replace_u16(word(*check), old_word, new_word).to_ne_bytes();
        } else {
            ctx.patch_l4_word(
                self.check,
                self.check_at,
                old_word,
                new_word,
                self.proto == ip_proto::UDP,
            );
        }
    }
}

#[inline(always)]
pub fn parse<P: Program>(ctx: &P, class: PacketClass) -> Result<Transport, Reason> {
    match class {
        PacketClass::Tcp => {
            let tcp = ptr_at::<TcpHdr, P>(ctx, P::L4).map_err(|_| Reason::Malformed)?;
            let flags =
                ptr_at::<u8, P>(ctx, P::L4 + TCP_FLAGS_OFFSET).map_err(|_| Reason::Malformed)?;
            // SAFETY: bounds checked by ptr_at.
            unsafe {
                Ok(Transport {
                    proto: ip_proto::TCP,
                    src_port: &raw mut (*tcp).source,
                    dst_port: &raw mut (*tcp).dest,
                    check: &raw mut (*tcp).check,
                    check_at: P::L4 + TCP_CHECK,
                    tcp_flags: *flags,
                    icmp_type: 0,
                })
            }
        }
        PacketClass::Udp => {
            let udp = ptr_at::<UdpHdr, P>(ctx, P::L4).map_err(|_| Reason::Malformed)?;
            // SAFETY: bounds checked by ptr_at.
            unsafe {
                Ok(Transport {
                    proto: ip_proto::UDP,
                    src_port: &raw mut (*udp).src,
                    dst_port: &raw mut (*udp).dst,
                    check: &raw mut (*udp).check,
                    check_at: P::L4 + UDP_CHECK,
                    tcp_flags: 0,
                    icmp_type: 0,
                })
            }
        }
        _ => {
            let icmp = ptr_at::<Icmpv4Hdr, P>(ctx, P::L4).map_err(|_| Reason::Malformed)?;
            // SAFETY: bounds checked by ptr_at; the echo identifier is the first half of `data`.
            unsafe {
                let id = (&raw mut (*icmp).data).cast::<[u8; 2]>();
                Ok(Transport {
                    proto: ip_proto::ICMP,
                    src_port: id,
                    dst_port: id,
                    check: &raw mut (*icmp).check,
                    check_at: P::L4 + ICMP_CHECK,
                    tcp_flags: 0,
                    icmp_type: (*icmp).type_,
                })
            }
        }
    }
}

/// Rewrites the source (`src = true`) or destination address and patches the IPv4 header
/// checksum and, for TCP and UDP, the transport checksum (its pseudo-header has the address).
#[inline(always)]
pub fn set_addr<P: Program>(
    ctx: &P,
    ip: &mut Ipv4Hdr,
    transport: &Transport,
    src: bool,
    new: [u8; 4],
) {
    let field = if src {
        &mut ip.src_addr
    } else {
        &mut ip.dst_addr
    };
    let old = *field;
    *field = new;
    ip.check = checksum::replace_addr(word(ip.check), old, new).to_ne_bytes();
    if transport.proto != ip_proto::ICMP {
        ctx.patch_l4_addr(
            transport.check,
            transport.check_at,
            old,
            new,
            transport.proto == ip_proto::UDP,
        );
    }
}
