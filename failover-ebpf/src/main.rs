//! XDP and TC programs of the failover data plane. Each entry point is a thin wrapper; the
//! translation is written once over `program::Program`, and the decisions that need no
//! packet access are in `failover-common`.
//!
//! XDP serves flows whose interfaces all take XDP frames; it hands the others, untouched, to
//! the TC program behind it on the same interface (`Reason::TcPath`). Interfaces without
//! an Ethernet header have the TC program only (`fo_wan_tc_l3`).
#![no_std]
#![no_main]
#![expect(
    clippy::needless_pass_by_value,
    reason = "aya's entry points take the context by value"
)]

mod classify;
mod cursor;
mod flows;
mod host_limits;
mod icmp_error;
mod maps;
mod mss;
mod nat_in;
mod nat_out;
mod packet;
mod program;
mod redirects;
mod reset;
mod skb;
mod stats;
mod transport;

use aya_ebpf::{
    bindings::xdp_action,
    macros::{classifier, raw_tracepoint, xdp},
    programs::{RawTracePointContext, TcContext, XdpContext},
};
use failover_common::classify::Direction;
use network_types::eth::EthHdr;

use crate::skb::Skb;

/// LAN ingress: outbound packets are steered to an uplink and translated; the rest goes to
/// the kernel.
#[xdp]
pub fn fo_lan_ingress(ctx: XdpContext) -> u32 {
    classify::count(&ctx, Direction::Lan);
    stats::or_pass::<XdpContext>(nat_out::translate(&ctx), true)
}

/// Uplink ingress: replies to translated flows go back to the LAN host; the rest (the
/// router's own traffic) goes to the kernel.
#[xdp]
pub fn fo_wan_ingress(ctx: XdpContext) -> u32 {
    classify::count(&ctx, Direction::Uplink);
    stats::or_pass::<XdpContext>(nat_in::translate(&ctx), true)
}

/// LAN ingress on the TC path: what the XDP program handed over, or everything where none
/// runs.
#[classifier]
pub fn fo_lan_tc(ctx: TcContext) -> i32 {
    let skb = Skb::<{ EthHdr::LEN }>::new(ctx);
    let xdp_ran = skb::lan_has_xdp();
    if !xdp_ran {
        classify::count(&skb, Direction::Lan);
    }
    let result = skb::settled(&skb, nat_out::translate(&skb));
    tc_verdict(stats::or_pass::<Skb<{ EthHdr::LEN }>>(
        result,
        skb.counts_passes(xdp_ran),
    ))
}

/// Ethernet uplink ingress on the TC path.
#[classifier]
pub fn fo_wan_tc(ctx: TcContext) -> i32 {
    wan_tc::<{ EthHdr::LEN }>(ctx)
}

/// Ingress of an uplink without an Ethernet header (raw-IP modem, ppp, tunnel).
#[classifier]
pub fn fo_wan_tc_l3(ctx: TcContext) -> i32 {
    wan_tc::<0>(ctx)
}

#[inline(always)]
fn wan_tc<const L2: usize>(ctx: TcContext) -> i32 {
    let skb = Skb::<L2>::new(ctx);
    let xdp_ran = skb::uplink_has_xdp(&skb);
    if !xdp_ran {
        classify::count(&skb, Direction::Uplink);
    }
    let result = skb::settled(&skb, nat_in::translate(&skb));
    tc_verdict(stats::or_pass::<Skb<L2>>(
        result,
        skb.counts_passes(xdp_ran),
    ))
}

/// TC verdicts are small non-negative numbers.
#[inline(always)]
fn tc_verdict(action: u32) -> i32 {
    i32::try_from(action).unwrap_or(i32::MAX)
}

/// A redirect the kernel refused after the program returned: counted per uplink.
#[raw_tracepoint(tracepoint = "xdp_redirect_err")]
pub fn fo_redirect_err(ctx: RawTracePointContext) -> i32 {
    redirects::on_redirect_error(&ctx);
    0
}

/// Frames a redirect target dropped on transmit: counted per uplink.
#[raw_tracepoint(tracepoint = "xdp_devmap_xmit")]
pub fn fo_xmit_err(ctx: RawTracePointContext) -> i32 {
    redirects::on_devmap_xmit(&ctx);
    0
}

/// Reference forwarder: swap the MAC addresses and transmit back out of the same interface.
/// A frame too short for an Ethernet header goes to the kernel.
#[xdp]
pub fn fo_mac_swap(ctx: XdpContext) -> u32 {
    match cursor::swap_macs(&ctx) {
        Ok(()) => xdp_action::XDP_TX,
        Err(cursor::OutOfBounds) => xdp_action::XDP_PASS,
    }
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
