//! Uplink ingress: translate replies (and ICMP errors about translated flows) back to the
//! LAN host, resolve its MAC through the kernel's FIB, and redirect to the LAN.

use core::mem;

use aya_ebpf::{
    bindings::{BPF_FIB_LKUP_RET_NO_NEIGH, BPF_FIB_LKUP_RET_SUCCESS, bpf_fib_lookup},
    helpers::bpf_fib_lookup as fib_lookup,
};
use failover_common::{
    classify::ip_proto,
    nat::{FlowKey, tcp_flag},
    verdict::Reason,
};
use network_types::ip::Ipv4Hdr;

use crate::{
    flows, icmp_error, maps, mss, packet,
    program::Program,
    redirects,
    stats::{count_uplink, verdict},
    transport::{self, icmp_type},
};

const AF_INET: u8 = 2;
const _: () = assert!(mem::size_of::<bpf_fib_lookup>().is_multiple_of(4));
#[expect(
    clippy::cast_possible_truncation,
    clippy::cast_possible_wrap,
    reason = "64 bytes"
)]
const FIB_PARAMS_LEN: i32 = mem::size_of::<bpf_fib_lookup>() as i32;
/// The verdict for the packet, or the reason it is left to the kernel.
#[inline(always)]
pub fn translate<P: Program>(ctx: &P) -> Result<u32, Reason> {
    let frame = packet::parse(ctx)?;
    // SAFETY: bounds-checked by packet::parse.
    let ip = unsafe { &mut *frame.ip };
    let lan = maps::LAN.get(0).ok_or(Reason::NotForwarded)?;
    let (slot, uplink) = flows::uplink_on(ctx.ingress_ifindex()).ok_or(Reason::UnknownUplink)?;
    if ip.dst_addr != uplink.addr {
        return Err(Reason::NotForwarded);
    }
    let l4 = transport::parse(ctx, frame.class)?;
    ctx.hand_over(lan.path)?;
    let now = flows::now_ns();
    let mut reason = Reason::TranslatedIn;
    let flow = if l4.proto == ip_proto::ICMP && l4.icmp_type != icmp_type::ECHO_REPLY {
        let flow = icmp_error::translate(ctx, slot, uplink.addr, frame.ip_end, now)?;
        reason = Reason::IcmpErrorTranslated;
        flow
    } else {
        // SAFETY: bounds-checked at parse time.
        let ext_port = unsafe { *l4.dst_port };
        let remote_port = l4.remote_port(true);
        let flow = match flows::match_inbound(
            slot,
            l4.proto,
            ext_port,
            ip.src_addr,
            remote_port,
            l4.tcp_flags,
            now,
        ) {
            Ok(flow) => flow,
            // Not a reply to a LAN host's flow: a forwarded port's connection, or the
            // router's own traffic.
            Err(unmatched @ (Reason::NoMapping | Reason::NoFlow)) => {
                let packet = flows::Inbound {
                    slot,
                    proto: l4.proto,
                    ext_port,
                    remote_addr: ip.src_addr,
                    remote_port,
                };
                match flows::match_forward(&packet, Some(l4.tcp_flags), now) {
                    Ok((flow, opened)) => {
                        if opened {
                            reason = Reason::ForwardOpened;
                        }
                        flow
                    }
                    Err(Reason::ForwardDown) => return Ok(verdict(P::DROP, Reason::ForwardDown)),
                    Err(Reason::NoMapping) => return Err(unmatched),
                    Err(other) => return Err(other),
                }
            }
            Err(other) => return Err(other),
        };
        l4.set_port(ctx, l4.dst_port, flow.lan_port);
        if l4.tcp_flags & tcp_flag::SYN != 0 && uplink.mss != 0 {
            mss::clamp(ctx, &l4, uplink.mss, frame.ip_end);
        }
        flow
    };
    transport::set_addr(ctx, ip, &l4, false, flow.lan_addr);
    count_uplink(slot, ctx.end() - ctx.start(), false);
    forward_to_lan(ctx, ip, &flow, reason, slot)
}

/// Sends a translated packet to the LAN host through the kernel's FIB and neighbour table;
/// what the FIB cannot resolve goes (translated) to the kernel, which forwards it.
#[inline(always)]
fn forward_to_lan<P: Program>(
    ctx: &P,
    ip: &mut Ipv4Hdr,
    flow: &FlowKey,
    reason: Reason,
    slot: u32,
) -> Result<u32, Reason> {
    if ip.ttl <= 1 {
        return Err(Reason::TtlExpiring);
    }
    let mut params = zeroed_fib_params();
    params.family = AF_INET;
    params.l4_protocol = flow.proto;
    params.ifindex = ctx.ingress_ifindex();
    params.__bindgen_anon_1.tot_len = u16::from_be_bytes(ip.tot_len);
    params.__bindgen_anon_3.ipv4_src = u32::from_ne_bytes(ip.src_addr);
    params.__bindgen_anon_4.ipv4_dst = u32::from_ne_bytes(ip.dst_addr);
    // SAFETY: ctx is the program's context and params a properly sized local.
    let rc = unsafe { fib_lookup(ctx.as_ptr(), &raw mut params, FIB_PARAMS_LEN, 0) };
    let lan = maps::LAN.get(0).ok_or(Reason::NoRoute)?;
    if rc == i64::from(BPF_FIB_LKUP_RET_NO_NEIGH) {
        return Err(Reason::NeighbourUnresolved);
    }
    if rc != i64::from(BPF_FIB_LKUP_RET_SUCCESS) || params.ifindex != lan.ifindex {
        return Err(Reason::NoRoute);
    }
    packet::decrement_ttl(ip);
    if let Ok(action) = ctx.to_lan(lan, params.smac, params.dmac) {
        Ok(verdict(action, reason))
    } else {
        redirects::count(redirects::Target::Lan(slot), 1);
        Ok(verdict(P::DROP, Reason::RedirectFailed))
    }
}

/// An all-zero FIB request, written as 4-byte stores: `mem::zeroed` compiles to a call to a
/// byte-by-byte `memset` on BPF.
#[inline(always)]
fn zeroed_fib_params() -> bpf_fib_lookup {
    let mut params = mem::MaybeUninit::<bpf_fib_lookup>::uninit();
    // The struct is 4-byte aligned and a multiple of 4 bytes long.
    let words = params.as_mut_ptr().cast::<u32>();
    for i in 0..mem::size_of::<bpf_fib_lookup>() / 4 {
        // SAFETY: in bounds of the 64-byte struct; volatile keeps LLVM from turning the loop
        // back into a memset call.
        unsafe { words.add(i).write_volatile(0) };
    }
    // SAFETY: every byte was written; all-zero is a valid bpf_fib_lookup.
    unsafe { params.assume_init() }
}
