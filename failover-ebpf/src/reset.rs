//! Answering a LAN host's TCP segment with a reset, in place: the frame is rewritten into the
//! reset (`failover_common::reset`) and transmitted back out of the LAN interface.

use failover_common::{
    reset::{RESET_LEN, Segment, partial_check_seed, reset_headers},
    verdict::Reason,
};

use crate::{
    cursor::{Frame, ptr_at, swap_macs},
    program::Program,
    stats::verdict,
};

/// Offsets in the TCP header.
const SEQ: usize = 4;
const ACK: usize = 8;
const DATA_OFFSET: usize = 12;
/// Offset of the TCP checksum in the reset's headers.
const TCP_CHECK: usize = 20 + 16;

/// Rewrites the frame (an IPv4 TCP segment without IP options, already parsed) into the reset
/// that answers it and sends it back to the host.
#[inline(always)]
pub fn answer<P: Program>(ctx: &P) -> Result<u32, Reason> {
    // First: on TC the probe moves packet data.
    let partial = ctx.checksum_partial();
    let seg = read_segment(ctx).ok_or(Reason::Malformed)?;
    let mut headers = reset_headers(&seg);
    if partial {
        // The device completes the checksum of what it thinks is still this segment.
        let seed = partial_check_seed(&headers);
        headers[TCP_CHECK] = seed[0];
        headers[TCP_CHECK + 1] = seed[1];
    }
    swap_macs(ctx).map_err(|_| Reason::Malformed)?;
    let out = ptr_at::<[u8; RESET_LEN], P>(ctx, P::IP).map_err(|_| Reason::Malformed)?;
    let mut i = 0;
    while i < RESET_LEN {
        let word = u32::from_ne_bytes([headers[i], headers[i + 1], headers[i + 2], headers[i + 3]]);
        // SAFETY: `out` is a bounds-checked 40-byte span; packet writes may be unaligned.
        unsafe { out.cast::<u8>().add(i).cast::<u32>().write_unaligned(word) };
        i += 4;
    }
    // Drop the payload and options (the frame held at least the 40 bytes just written).
    match ctx.send_back(P::IP + RESET_LEN) {
        Ok(action) => Ok(verdict(action, Reason::ResetToClient)),
        Err(()) => Ok(verdict(P::DROP, Reason::Malformed)),
    }
}

#[inline(always)]
fn read_segment<F: Frame>(ctx: &F) -> Option<Segment> {
    let ip = ptr_at::<[u8; 20], F>(ctx, F::IP).ok()?;
    let tcp = ptr_at::<[u8; 20], F>(ctx, F::L4).ok()?;
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
