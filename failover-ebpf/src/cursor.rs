//! The one bounds-checked way to reach packet bytes, for both program types.

use core::mem;

use aya_ebpf::programs::XdpContext;
use network_types::{eth::EthHdr, ip::Ipv4Hdr};

/// The frame ends before the header asked for.
pub struct OutOfBounds;

/// A frame a program reads and rewrites: XDP's buffer, or a TC program's skb
/// (`crate::skb::Skb`). The translation code is written once, over this.
pub trait Frame {
    /// Bytes before the IPv4 header: an Ethernet header, or none on a headerless device.
    const L2_LEN: usize;
    /// Where the IPv4 header starts.
    const IP: usize = Self::L2_LEN;
    /// IPv4 options are passed to the kernel, so the transport header is always here.
    const L4: usize = Self::L2_LEN + Ipv4Hdr::LEN;
    /// Verdicts: leave the frame to the kernel, drop it.
    const PASS: u32;
    const DROP: u32;

    fn start(&self) -> usize;
    fn end(&self) -> usize;
}

impl Frame for XdpContext {
    const L2_LEN: usize = EthHdr::LEN;
    const PASS: u32 = aya_ebpf::bindings::xdp_action::XDP_PASS;
    const DROP: u32 = aya_ebpf::bindings::xdp_action::XDP_DROP;

    #[inline(always)]
    fn start(&self) -> usize {
        self.data()
    }

    #[inline(always)]
    fn end(&self) -> usize {
        self.data_end()
    }
}

/// Pointer to a `T` at `offset` bytes into the frame, if the whole `T` is inside it.
#[inline(always)]
pub fn ptr_at<T, F: Frame>(frame: &F, offset: usize) -> Result<*mut T, OutOfBounds> {
    let start = frame.start();
    let end = frame.end();
    if start + offset + mem::size_of::<T>() > end {
        return Err(OutOfBounds);
    }
    Ok((start + offset) as *mut T)
}

/// Number of frame bytes from `offset` to the end.
#[inline(always)]
pub fn bytes_from<F: Frame>(frame: &F, offset: usize) -> usize {
    (frame.end() - frame.start()).saturating_sub(offset)
}

/// Exchanges source and destination MAC addresses in place.
#[inline(always)]
pub fn swap_macs<F: Frame>(frame: &F) -> Result<(), OutOfBounds> {
    let eth = ptr_at::<EthHdr, F>(frame, 0)?;
    // SAFETY: ptr_at checked that the whole Ethernet header is inside the frame.
    let eth = unsafe { &mut *eth };
    core::mem::swap(&mut eth.dst_addr, &mut eth.src_addr);
    Ok(())
}
