//! LAN ingress: steer each outbound IPv4 TCP, UDP or ICMP echo packet to an uplink,
//! translate its source to the uplink's address and an allocated port, and redirect it.

use aya_log_ebpf::{error, info, warn};
use failover_common::{
    classify::ip_proto,
    nat::{FlowKey, in_subnet, is_special_destination, path, tcp_flag},
    verdict::Reason,
};

use crate::{
    flows, maps, mss, packet,
    program::Program,
    redirects, reset,
    stats::{count_uplink, verdict},
    transport::{self, icmp_type},
};

/// The DF flag, in the first byte of the IPv4 flags and fragment offset.
const DONT_FRAGMENT: u8 = 0x40;

/// A LAN packet that should leave translated but cannot (no usable uplink, no gateway MAC,
/// no free port): dropped, never passed, since the kernel would route it out of its own
/// default route with the LAN source. The host retries; the reason counts what was stopped.
#[inline(always)]
fn drop_untranslated<P: Program>(reason: Reason) -> u32 {
    verdict(P::DROP, reason)
}

/// The verdict for the packet, or the reason it is left to the kernel.
#[inline(always)]
pub fn translate<P: Program>(ctx: &P) -> Result<u32, Reason> {
    let frame = packet::parse(ctx)?;
    // SAFETY: bounds-checked by packet::parse.
    let ip = unsafe { &mut *frame.ip };
    let dst = ip.dst_addr;
    let lan = maps::LAN.get(0).ok_or(Reason::NotForwarded)?;
    // To the router itself, another LAN host, or not from a LAN host: the kernel's business.
    if is_special_destination(dst)
        || in_subnet(dst, lan.net, lan.prefix_len)
        || !in_subnet(ip.src_addr, lan.net, lan.prefix_len)
        || flows::uplink_with_addr(dst).is_some()
    {
        return Err(Reason::NotForwarded);
    }
    if ip.ttl <= 1 {
        return Err(Reason::TtlExpiring);
    }
    let l4 = transport::parse(ctx, frame.class)?;
    if l4.proto == ip_proto::ICMP && l4.icmp_type != icmp_type::ECHO_REQUEST {
        return Err(Reason::UnsupportedProtocol);
    }
    // Padding zeroed through Default: hash maps compare keys byte for byte.
    let key = FlowKey {
        lan_addr: ip.src_addr,
        remote_addr: dst,
        // SAFETY: bounds-checked at parse time.
        lan_port: unsafe { *l4.src_port },
        remote_port: l4.remote_port(false),
        proto: l4.proto,
        ..FlowKey::default()
    };
    // Resets go back out of the LAN: where it cannot take XDP frames, all of its flows take
    // the TC path.
    ctx.hand_over(lan.path)?;
    let steering = match flows::steer_outbound(&key, l4.tcp_flags, flows::now_ns()) {
        Err(Reason::ResetToClient) => {
            info!(
                ctx,
                "reset: TCP {:i}:{} -> {:i}:{} left its uplink",
                key.lan_addr,
                u16::from_be_bytes(key.lan_port),
                key.remote_addr,
                u16::from_be_bytes(key.remote_port)
            );
            return reset::answer(ctx);
        }
        Err(Reason::PortsExhausted) => {
            warn!(ctx, "no free external port for {:i}", key.lan_addr);
            return Ok(drop_untranslated::<P>(Reason::PortsExhausted));
        }
        Err(reason) => return Ok(drop_untranslated::<P>(reason)),
        Ok(steering) => steering,
    };
    let uplink = steering.uplink;
    // The flow stays in the table for the TC program, which sends the packet.
    ctx.hand_over(uplink.path)?;
    // Too big for the uplink (a tunnel's smaller MTU) and not to be fragmented: the kernel
    // says so to the host, with the uplink's MTU.
    if ip.frags[0] & DONT_FRAGMENT != 0 {
        ctx.fits_mtu(steering.slot, uplink, u16::from_be_bytes(ip.tot_len))?;
    }
    if uplink.path & path::L3 == 0 && uplink.gateway_mac == [0; 6] {
        return Ok(drop_untranslated::<P>(Reason::NoGatewayMac));
    }
    transport::set_addr(ctx, ip, &l4, true, uplink.addr);
    l4.set_port(ctx, l4.src_port, steering.ext_port);
    if l4.tcp_flags & tcp_flag::SYN != 0 && uplink.mss != 0 {
        mss::clamp(ctx, &l4, uplink.mss, frame.ip_end);
    }
    packet::decrement_ttl(ip);
    count_uplink(steering.slot, ctx.end() - ctx.start(), true);
    if let Ok(action) = ctx.to_uplink(steering.slot, uplink) {
        Ok(verdict(action, Reason::TranslatedOut))
    } else {
        error!(ctx, "redirect to uplink slot {} failed", steering.slot);
        redirects::count(redirects::Target::Uplink(steering.slot), 1);
        Ok(verdict(P::DROP, Reason::RedirectFailed))
    }
}
