//! Answering a LAN host's TCP segment with a reset, in place: the frame is rewritten into the
//! reset (`failover_common::reset`) and transmitted back out of the LAN interface.

use aya_ebpf::{bindings::xdp_action, helpers::bpf_xdp_adjust_tail, programs::XdpContext};
use failover_common::{
    reset::{RESET_LEN, Segment, reset_headers},
    verdict::Reason,
};

use crate::{
    cursor::{bytes_from, ptr_at, swap_macs},
    packet::{IP_OFFSET, L4_OFFSET},
    stats::verdict,
};

/// Offsets in the TCP header.
const SEQ: usize = 4;
const ACK: usize = 8;
const DATA_OFFSET: usize = 12;

/// Rewrites the frame (an IPv4 TCP segment without IP options, already parsed) into the reset
/// that answers it and sends it back to the host.
#[inline(always)]
pub fn answer(ctx: &XdpContext) -> Result<u32, Reason> {
    let seg = read_segment(ctx).ok_or(Reason::Malformed)?;
    let headers = reset_headers(&seg);
    swap_macs(ctx).map_err(|_| Reason::Malformed)?;
    let out = ptr_at::<[u8; RESET_LEN]>(ctx, IP_OFFSET).map_err(|_| Reason::Malformed)?;
    let mut i = 0;
    while i < RESET_LEN {
        let word = u32::from_ne_bytes([headers[i], headers[i + 1], headers[i + 2], headers[i + 3]]);
        // SAFETY: `out` is a bounds-checked 40-byte span; packet writes may be unaligned.
        unsafe { out.cast::<u8>().add(i).cast::<u32>().write_unaligned(word) };
        i += 4;
    }
    // Drop the payload and options (the frame held at least the 40 bytes just written).
    let excess = bytes_from(ctx, IP_OFFSET).saturating_sub(RESET_LEN);
    let shrink = -i32::try_from(excess).unwrap_or(0);
    // SAFETY: the helper only moves the frame's end; no packet pointer is used afterwards.
    if unsafe { bpf_xdp_adjust_tail(ctx.ctx, shrink) } != 0 {
        return Ok(verdict(xdp_action::XDP_DROP, Reason::Malformed));
    }
    Ok(verdict(xdp_action::XDP_TX, Reason::ResetToClient))
}

#[inline(always)]
fn read_segment(ctx: &XdpContext) -> Option<Segment> {
    let ip = ptr_at::<[u8; 20]>(ctx, IP_OFFSET).ok()?;
    let tcp = ptr_at::<[u8; 20]>(ctx, L4_OFFSET).ok()?;
    // SAFETY: both spans are bounds-checked.
    let (ip, tcp) = unsafe { (&*ip, &*tcp) };
    let be32 = |at: usize| u32::from_be_bytes([tcp[at], tcp[at + 1], tcp[at + 2], tcp[at + 3]]);
    let headers = 20 + u32::from(tcp[DATA_OFFSET] >> 4) * 4;
    Some(Segment {
        src_addr: [ip[12], ip[13], ip[14], ip[15]],
        dst_addr: [ip[16], ip[17], ip[18], ip[19]],
        src_port: [tcp[0], tcp[1]],
        dst_port: [tcp[2], tcp[3]],
        seq: be32(SEQ),
        ack: be32(ACK),
        flags: tcp[13],
        payload_len: u32::from(u16::from_be_bytes([ip[2], ip[3]])).saturating_sub(headers),
    })
}
