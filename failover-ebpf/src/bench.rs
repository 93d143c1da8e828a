//! XDP programs of `cargo xtask bench dataplane`, in their own object (`failover-bench`) so the
//! data plane's object carries nothing but the data plane. Names are the constants of
//! `failover_common::bench` (the attributes need literals; the runner looks each one up by the
//! constant, so a mismatch fails loudly at load).
#![no_std]
#![no_main]
#![expect(
    clippy::needless_pass_by_value,
    reason = "aya's #[xdp] entry points take the context by value"
)]

#[expect(
    dead_code,
    reason = "shared with the data-plane binary, which uses more of it"
)]
mod cursor;

use aya_ebpf::{
    bindings::{TC_ACT_OK, xdp_action},
    btf_maps::{Array, DevMap, PerCpuArray},
    helpers::bpf_redirect,
    macros::{btf_map, classifier, xdp},
    programs::{TcContext, XdpContext},
};
use failover_common::{
    bench::{FlowCursor, GenConfig, TEMPLATE_WORDS},
    checksum,
};
use network_types::{eth::EthHdr, ip::Ipv4Hdr, udp::UdpHdr};

use crate::cursor::{OutOfBounds, ptr_at};

/// `bench::MAP_GEN_CONFIG`
#[btf_map(name = "fob_gen_cfg")]
static GEN_CONFIG: Array<GenConfig, 1> = Array::new();
/// `bench::MAP_GEN_CURSOR`
#[btf_map(name = "fob_gen_cur")]
static GEN_CURSOR: PerCpuArray<FlowCursor, 1> = PerCpuArray::new();
/// `bench::MAP_GEN_TX`
#[btf_map(name = "fob_gen_tx")]
static GEN_TX: DevMap<1> = DevMap::new();
/// `bench::MAP_SINK_COUNT`
#[btf_map(name = "fob_sink_cnt")]
static SINK_COUNT: PerCpuArray<u64, 1> = PerCpuArray::new();
/// `bench::MAP_ROUTER_TX`
#[btf_map(name = "fob_rtr_tx")]
static ROUTER_TX: DevMap<1> = DevMap::new();
#[btf_map(name = "fob_rtr_tc_tx")]
static ROUTER_TC_TX: Array<u32, 1> = Array::new();

/// Harness-overhead reference: does nothing but drop.
#[xdp]
pub fn fob_drop(_ctx: XdpContext) -> u32 {
    xdp_action::XDP_DROP
}

/// Sink: counts and drops.
#[xdp]
pub fn fob_sink(_ctx: XdpContext) -> u32 {
    count(&SINK_COUNT);
    xdp_action::XDP_DROP
}

/// The floor for any XDP router: swap MACs and redirect to the egress interface in slot 0.
#[xdp]
pub fn fob_swap_redir(ctx: XdpContext) -> u32 {
    if cursor::swap_macs(&ctx).is_err() {
        return xdp_action::XDP_PASS;
    }
    redirect(&ROUTER_TX)
}

/// Traffic generator for live-frames `BPF_PROG_TEST_RUN`: moves the frame (an Ethernet/IPv4/UDP
/// frame without IP options and with a zero UDP checksum, built by the runner) to the next
/// flow and redirects it out of the generator's interface.
/// The TC twin of `fob_swap_redir`: what any TC router pays for the skb path and a redirect.
#[classifier]
pub fn fob_tc_swap(ctx: TcContext) -> i32 {
    const PASS: i32 = TC_ACT_OK;
    let (start, end) = (ctx.data(), ctx.data_end());
    if start + 12 > end {
        return PASS;
    }
    let Some(&ifindex) = ROUTER_TC_TX.get(0) else {
        return PASS;
    };
    let macs = start as *mut [u8; 6];
    // SAFETY: 12 bytes of packet data, bounds-checked above.
    unsafe {
        let dst = *macs;
        *macs = *macs.add(1);
        *macs.add(1) = dst;
    }
    // SAFETY: no preconditions; the result is the TC verdict.
    i32::try_from(unsafe { bpf_redirect(ifindex, 0) }).unwrap_or(PASS)
}

#[xdp]
pub fn fob_gen(ctx: XdpContext) -> u32 {
    match next_flow(&ctx) {
        Ok(()) => redirect(&GEN_TX),
        Err(OutOfBounds) => xdp_action::XDP_ABORTED,
    }
}

/// Redirects through slot 0 of `devices`; drops when the slot is empty.
#[inline(always)]
fn redirect(devices: &DevMap<1>) -> u32 {
    devices
        .redirect(0, u64::from(xdp_action::XDP_DROP))
        .unwrap_or_else(|fallback| fallback)
}

/// Increments this CPU's counter.
#[inline(always)]
fn count(counter: &PerCpuArray<u64, 1>) {
    if let Some(slot) = counter.get_ptr_mut(0) {
        // SAFETY: this CPU's slot of a preallocated array; XDP does not preempt itself.
        unsafe { *slot += 1 };
    }
}

/// Restores the frame's headers from the template and makes them the next flow's. Live
/// frames come back with what the chain left in them (MACs, TTL, checksum rewritten by a
/// router), so nothing from the previous run is trusted.
#[inline(always)]
fn next_flow(ctx: &XdpContext) -> Result<(), OutOfBounds> {
    // Without its maps there is no frame to make: abort like a short frame would.
    let config = GEN_CONFIG.get(0).ok_or(OutOfBounds)?;
    let cursor = GEN_CURSOR.get_ptr_mut(0).ok_or(OutOfBounds)?;
    // SAFETY: this CPU's slot of a preallocated array; XDP does not preempt itself.
    let offset = unsafe { (*cursor).advance(config) };
    let headers = ptr_at::<[u64; TEMPLATE_WORDS], _>(ctx, 0)?;
    let ip = ptr_at::<Ipv4Hdr, _>(ctx, EthHdr::LEN)?;
    let udp = ptr_at::<UdpHdr, _>(ctx, EthHdr::LEN + Ipv4Hdr::LEN)?;
    // SAFETY: ptr_at checked that each region is inside the frame. Live frames start
    // XDP_PACKET_HEADROOM (256) bytes after an 8-aligned page header, so `headers` is aligned
    // (the verifier forbids checking: no bitwise operations on packet pointers). The regions
    // are written one after the other, never through two live references.
    unsafe {
        // Word by word: LLVM turns a whole-array copy into a call to a byte-wise memmove.
        let words = headers.cast::<u64>();
        for (i, word) in config.template.iter().enumerate() {
            core::ptr::write_volatile(words.add(i), *word);
        }
        let ip = &mut *ip;
        let src = shift(ip.src_addr, offset.addr.wrapping_mul(config.src_addr_step));
        let dst = shift(ip.dst_addr, offset.addr.wrapping_mul(config.dst_addr_step));
        let check = u16::from_ne_bytes(ip.check);
        let check = checksum::replace_addr(check, ip.src_addr, src);
        ip.check = checksum::replace_addr(check, ip.dst_addr, dst).to_ne_bytes();
        ip.src_addr = src;
        ip.dst_addr = dst;
        // The template's UDP checksum is zero ("none"), so the port changes alone.
        let udp = &mut *udp;
        udp.src = u16::from_be_bytes(udp.src)
            .wrapping_add(offset.port)
            .to_be_bytes();
    }
    Ok(())
}

/// An address (as on the wire) plus `offset`.
#[inline(always)]
fn shift(addr: [u8; 4], offset: u32) -> [u8; 4] {
    u32::from_be_bytes(addr).wrapping_add(offset).to_be_bytes()
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
