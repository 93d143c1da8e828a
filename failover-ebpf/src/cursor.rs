//! The one bounds-checked way to reach packet bytes.

use core::mem;

use aya_ebpf::programs::XdpContext;
use network_types::eth::EthHdr;

/// The frame ends before the header asked for.
pub struct OutOfBounds;

/// Pointer to a `T` at `offset` bytes into the frame, if the whole `T` is inside it.
#[inline(always)]
pub fn ptr_at<T>(ctx: &XdpContext, offset: usize) -> Result<*mut T, OutOfBounds> {
    let start = ctx.data();
    let end = ctx.data_end();
    if start + offset + mem::size_of::<T>() > end {
        return Err(OutOfBounds);
    }
    Ok((start + offset) as *mut T)
}

/// Number of frame bytes from `offset` to the end.
#[inline(always)]
pub fn bytes_from(ctx: &XdpContext, offset: usize) -> usize {
    (ctx.data_end() - ctx.data()).saturating_sub(offset)
}

/// Exchanges source and destination MAC addresses in place.
#[inline(always)]
pub fn swap_macs(ctx: &XdpContext) -> Result<(), OutOfBounds> {
    let eth = ptr_at::<EthHdr>(ctx, 0)?;
    // SAFETY: ptr_at checked that the whole Ethernet header is inside the frame.
    let eth = unsafe { &mut *eth };
    core::mem::swap(&mut eth.dst_addr, &mut eth.src_addr);
    Ok(())
}
