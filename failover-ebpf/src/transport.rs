//! The transport header of a translatable packet, as pointers to the fields NAT rewrites.

use aya_ebpf::programs::XdpContext;
use failover_common::{
    checksum,
    classify::{PacketClass, ip_proto},
    verdict::Reason,
};
use network_types::{icmp::Icmpv4Hdr, ip::Ipv4Hdr, tcp::TcpHdr, udp::UdpHdr};

use crate::{
    cursor::ptr_at,
    packet::{L4_OFFSET, set_u16_field, word},
};

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

/// Ports (or the ICMP echo identifier, which stands for both) and the checksum covering them.
pub struct Transport {
    pub proto: u8,
    pub src_port: *mut [u8; 2],
    pub dst_port: *mut [u8; 2],
    pub check: *mut [u8; 2],
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
    pub fn set_port(&self, port: *mut [u8; 2], new: [u8; 2]) {
        // SAFETY: pointers were bounds-checked at parse time and point into distinct fields
        // of the packet.
        unsafe {
            set_u16_field(
                &mut *port,
                &mut *self.check,
                new,
                self.proto == ip_proto::UDP,
            );
        };
    }
}

#[inline(always)]
pub fn parse(ctx: &XdpContext, class: PacketClass) -> Result<Transport, Reason> {
    match class {
        PacketClass::Tcp => {
            let tcp = ptr_at::<TcpHdr>(ctx, L4_OFFSET).map_err(|_| Reason::Malformed)?;
            let flags =
                ptr_at::<u8>(ctx, L4_OFFSET + TCP_FLAGS_OFFSET).map_err(|_| Reason::Malformed)?;
            // SAFETY: bounds checked by ptr_at.
            unsafe {
                Ok(Transport {
                    proto: ip_proto::TCP,
                    src_port: &raw mut (*tcp).source,
                    dst_port: &raw mut (*tcp).dest,
                    check: &raw mut (*tcp).check,
                    tcp_flags: *flags,
                    icmp_type: 0,
                })
            }
        }
        PacketClass::Udp => {
            let udp = ptr_at::<UdpHdr>(ctx, L4_OFFSET).map_err(|_| Reason::Malformed)?;
            // SAFETY: bounds checked by ptr_at.
            unsafe {
                Ok(Transport {
                    proto: ip_proto::UDP,
                    src_port: &raw mut (*udp).src,
                    dst_port: &raw mut (*udp).dst,
                    check: &raw mut (*udp).check,
                    tcp_flags: 0,
                    icmp_type: 0,
                })
            }
        }
        _ => {
            let icmp = ptr_at::<Icmpv4Hdr>(ctx, L4_OFFSET).map_err(|_| Reason::Malformed)?;
            // SAFETY: bounds checked by ptr_at; the echo identifier is the first half of `data`.
            unsafe {
                let id = (&raw mut (*icmp).data).cast::<[u8; 2]>();
                Ok(Transport {
                    proto: ip_proto::ICMP,
                    src_port: id,
                    dst_port: id,
                    check: &raw mut (*icmp).check,
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
pub fn set_addr(ip: &mut Ipv4Hdr, transport: &Transport, src: bool, new: [u8; 4]) {
    let field = if src {
        &mut ip.src_addr
    } else {
        &mut ip.dst_addr
    };
    let old = *field;
    *field = new;
    ip.check = checksum::replace_addr(word(ip.check), old, new).to_ne_bytes();
    // SAFETY: bounds-checked at parse time.
    let check = unsafe { &mut *transport.check };
    let updated = match transport.proto {
        ip_proto::TCP => checksum::replace_addr(word(*check), old, new),
        ip_proto::UDP => checksum::udp_replace_addr(word(*check), old, new),
        _ => return,
    };
    *check = updated.to_ne_bytes();
}
