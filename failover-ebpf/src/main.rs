//! XDP programs of the failover data plane. Each entry point is a thin wrapper; the logic is
//! in modules, and the decisions that need no packet access are in `failover-common`.
#![no_std]
#![no_main]
#![expect(
    clippy::needless_pass_by_value,
    reason = "aya's #[xdp] entry points take the context by value"
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
mod redirects;
mod reset;
mod stats;
mod transport;

use aya_ebpf::{
    bindings::xdp_action,
    macros::{raw_tracepoint, xdp},
    programs::{RawTracePointContext, XdpContext},
};
use failover_common::classify::Direction;

/// LAN ingress: outbound packets are steered to an uplink and translated; the rest goes to
/// the kernel.
#[xdp]
pub fn fo_lan_ingress(ctx: XdpContext) -> u32 {
    classify::count(&ctx, Direction::Lan);
    stats::or_pass(nat_out::translate(&ctx))
}

/// Uplink ingress: replies to translated flows go back to the LAN host; the rest (the
/// router's own traffic) goes to the kernel.
#[xdp]
pub fn fo_wan_ingress(ctx: XdpContext) -> u32 {
    classify::count(&ctx, Direction::Uplink);
    stats::or_pass(nat_in::translate(&ctx))
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
