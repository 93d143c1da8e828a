//! The TC programs' frame: a socket buffer. Packet bytes are read and written in place, as in
//! XDP, but the transport checksum is left to the kernel's helpers, which know the skb's
//! checksum state: a segment from a host with checksum offload (`CHECKSUM_PARTIAL`) carries
//! only its pseudo-header sum, which must change with an address and not with a port. The
//! helpers move packet data, so the changes are collected and applied last, after every
//! direct write.

use core::{cell::Cell, ffi::c_void};

use aya_ebpf::{
    EbpfContext,
    bindings::{
        __sk_buff, BPF_F_MARK_MANGLED_0, BPF_F_PSEUDO_HDR, TC_ACT_OK, TC_ACT_SHOT,
        bpf_check_mtu_flags::BPF_MTU_CHK_SEGS,
    },
    helpers::{
        bpf_check_mtu, bpf_l4_csum_replace, bpf_redirect, bpf_skb_change_head, bpf_skb_change_tail,
        bpf_skb_store_bytes,
    },
    programs::TcContext,
};
use failover_common::{
    classify::ether_type,
    nat::{Lan, TOO_BIG_MARK, Uplink, path},
    verdict::Reason,
};
use network_types::eth::EthHdr;

use crate::{
    cursor::{Frame, ptr_at},
    flows, maps,
    packet::write_macs,
    program::Program,
};

/// A translation's result, with the checksums of a frame it passes to the kernel after
/// rewriting it applied (a frame it sent has them already).
#[inline(always)]
pub fn settled<const L2: usize>(skb: &Skb<L2>, result: Result<u32, Reason>) -> Result<u32, Reason> {
    if result.is_err() && skb.apply_checksums().is_err() {
        return Ok(Skb::<L2>::DROP);
    }
    result
}

/// Whether an XDP program of ours ran on the LAN's frames before this one (it counted them).
#[inline(always)]
pub fn lan_has_xdp() -> bool {
    maps::LAN
        .get(0)
        .is_some_and(|lan| lan.path & path::XDP != 0)
}

/// The same for the uplink the frame arrived on.
#[inline(always)]
pub fn uplink_has_xdp<const L2: usize>(skb: &Skb<L2>) -> bool {
    flows::uplink_on(skb.ingress_ifindex()).is_some_and(|(_, uplink)| uplink.path & path::XDP != 0)
}

/// Headers the translation may read, from the IPv4 header on: IPv4, and TCP with options
/// (60), or an ICMP error's quote.
const HEADERS: usize = 20 + 60;

/// The Ethernet header pushed in front of a raw-IP frame, in the helpers' unit.
const ETH_HEADER: u32 = 14;
const _: () = assert!(ETH_HEADER as usize == EthHdr::LEN);

/// The transport checksum changes not yet applied, as one's-complement differences
/// (RFC 1624: `~m + m'` per changed word), which the kernel's helper adds in one call each.
#[derive(Clone, Copy, Default)]
struct Pending {
    /// Frame offset of the checksum; 0: nothing pending.
    check_at: u32,
    udp: bool,
    /// Of the pseudo-header (addresses): applies to a partial checksum too.
    addr_diff: u32,
    /// Of the segment's own words (ports, MSS): a partial checksum is left alone.
    word_diff: u32,
}

/// `sum + word`, in one's-complement arithmetic on 32 bits.
#[inline(always)]
fn csum_add(sum: u32, word: u32) -> u32 {
    let (total, carry) = sum.overflowing_add(word);
    total + u32::from(carry)
}

/// An skb whose IPv4 header starts `L2` bytes in: 14 on Ethernet, 0 on raw-IP devices.
pub struct Skb<const L2: usize> {
    ctx: TcContext,
    pending: Cell<Pending>,
    /// The translation went past the point where an XDP program hands flows over: what it
    /// decides from here, no XDP program counted.
    past_hand_over: Cell<bool>,
}

impl<const L2: usize> Skb<L2> {
    /// The skb, with its headers pulled into the part programs can read.
    #[inline(always)]
    pub fn new(ctx: TcContext) -> Self {
        let len = ctx.len() as usize;
        let want = len.min(L2 + HEADERS);
        if ctx.data_end() - ctx.data() < want {
            #[expect(clippy::cast_possible_truncation, reason = "at most L2 + 80")]
            let _ = ctx.pull_data(want as u32);
        }
        Skb {
            ctx,
            pending: Cell::new(Pending::default()),
            past_hand_over: Cell::new(false),
        }
    }

    /// Whether a frame this program passes to the kernel is counted here: where no XDP
    /// program runs before it, or where the XDP program handed the frame over.
    #[inline(always)]
    pub fn counts_passes(&self, xdp_ran: bool) -> bool {
        !xdp_ran || self.past_hand_over.get()
    }

    #[inline(always)]
    fn skb(&self) -> *mut __sk_buff {
        self.ctx.skb.skb
    }

    #[inline(always)]
    fn remember(&self, check_at: usize, udp: bool) -> Pending {
        let mut pending = self.pending.get();
        #[expect(clippy::cast_possible_truncation, reason = "a header offset")]
        {
            pending.check_at = check_at as u32;
        }
        pending.udp = udp;
        pending
    }

    /// Applies the collected checksum changes (once: they are then forgotten). Packet
    /// pointers are invalid afterwards. A frame passed to the kernel after its translation
    /// (an unresolved LAN neighbour) needs this too.
    #[inline(always)]
    pub fn apply_checksums(&self) -> Result<(), ()> {
        let pending = self.pending.get();
        self.pending.set(Pending::default());
        let mangled = if pending.udp {
            u64::from(BPF_F_MARK_MANGLED_0)
        } else {
            0
        };
        // Size 0: `to` is a difference to add, `from` must be 0.
        for (diff, flags) in [
            (pending.addr_diff, u64::from(BPF_F_PSEUDO_HDR) | mangled),
            (pending.word_diff, mangled),
        ] {
            if diff != 0
                // SAFETY: the skb is the program's context; the helper checks the offset.
                && unsafe {
                    bpf_l4_csum_replace(self.skb(), pending.check_at, 0, u64::from(diff), flags)
                } != 0
            {
                return Err(());
            }
        }
        Ok(())
    }

    /// Applies the checksums and redirects to the egress of `ifindex`.
    #[inline(always)]
    fn leave_through(&self, ifindex: u32) -> Result<u32, ()> {
        self.apply_checksums()?;
        // SAFETY: no preconditions; the result is the TC verdict.
        let action = unsafe { bpf_redirect(ifindex, 0) };
        u32::try_from(action).map_err(|_| ())
    }
}

impl<const L2: usize> EbpfContext for Skb<L2> {
    #[inline(always)]
    fn as_ptr(&self) -> *mut c_void {
        self.ctx.as_ptr()
    }
}

impl<const L2: usize> Frame for Skb<L2> {
    const L2_LEN: usize = L2;
    const PASS: u32 = TC_ACT_OK as u32;
    const DROP: u32 = TC_ACT_SHOT as u32;

    #[inline(always)]
    fn start(&self) -> usize {
        self.ctx.data()
    }

    #[inline(always)]
    fn end(&self) -> usize {
        self.ctx.data_end()
    }
}

impl<const L2: usize> Program for Skb<L2> {
    #[inline(always)]
    #[expect(
        clippy::misnamed_getters,
        reason = "at ingress skb->ifindex is the interface the frame arrived on, and \
                  BPF_PROG_TEST_RUN sets it where it leaves ingress_ifindex 0"
    )]
    fn ingress_ifindex(&self) -> u32 {
        // SAFETY: the program's context.
        unsafe { (*self.skb()).ifindex }
    }

    #[inline(always)]
    fn hand_over(&self, _: u8) -> Result<(), Reason> {
        self.past_hand_over.set(true);
        Ok(())
    }

    #[inline(always)]
    fn patch_l4_word(&self, _: *mut [u8; 2], check_at: usize, old: u16, new: u16, udp: bool) {
        let mut pending = self.remember(check_at, udp);
        pending.word_diff = csum_add(csum_add(pending.word_diff, u32::from(!old)), u32::from(new));
        self.pending.set(pending);
    }

    #[inline(always)]
    fn patch_l4_addr(
        &self,
        _: *mut [u8; 2],
        check_at: usize,
        old: [u8; 4],
        new: [u8; 4],
        udp: bool,
    ) {
        let mut pending = self.remember(check_at, udp);
        pending.addr_diff = csum_add(
            csum_add(pending.addr_diff, !u32::from_ne_bytes(old)),
            u32::from_ne_bytes(new),
        );
        self.pending.set(pending);
    }

    #[inline(always)]
    fn fits_mtu(&self, slot: u32, uplink: &Uplink, ip_len: u16) -> Result<(), Reason> {
        // The IPv4 length against the device's MTU; a GSO packet (a host's TSO, a NIC's
        // GRO) by the segments it will be cut into.
        // SAFETY: the program's context.
        let gso = unsafe { (*self.skb()).gso_size } != 0;
        let (mut len, flags) = if gso {
            (0, u64::from(BPF_MTU_CHK_SEGS))
        } else {
            (u32::from(ip_len), 0)
        };
        // SAFETY: the program's context; `len` is a local the helper reads and writes.
        let verdict =
            unsafe { bpf_check_mtu(self.as_ptr(), uplink.ifindex, &raw mut len, 0, flags) };
        // Negative: an error (no such device), which the redirect reports later.
        if verdict <= 0 {
            return Ok(());
        }
        self.ctx.set_mark(TOO_BIG_MARK | slot);
        Err(Reason::TooBig)
    }

    #[inline(always)]
    fn to_uplink(&self, _: u32, uplink: &Uplink) -> Result<u32, ()> {
        // The kernel drops the MAC header itself when the uplink has none.
        if uplink.path & path::L3 == 0 {
            write_macs(self, uplink.mac, uplink.gateway_mac).map_err(|_| ())?;
        }
        self.leave_through(uplink.ifindex)
    }

    #[inline(always)]
    fn to_lan(&self, lan: &Lan, src_mac: [u8; 6], dst_mac: [u8; 6]) -> Result<u32, ()> {
        if L2 == 0 {
            self.apply_checksums()?;
            // From a raw-IP device: the LAN needs an Ethernet header in front.
            // SAFETY: the program's context; packet pointers are not used afterwards.
            if unsafe { bpf_skb_change_head(self.skb(), ETH_HEADER, 0) } != 0 {
                return Err(());
            }
            let mut header = [0u8; EthHdr::LEN];
            header[..6].copy_from_slice(&dst_mac);
            header[6..12].copy_from_slice(&src_mac);
            header[12..].copy_from_slice(&ether_type::IPV4.to_be_bytes());
            // SAFETY: 14 bytes from a local buffer into the 14 bytes just made.
            if unsafe { bpf_skb_store_bytes(self.skb(), 0, header.as_ptr().cast(), ETH_HEADER, 0) }
                != 0
            {
                return Err(());
            }
            // SAFETY: no preconditions.
            let action = unsafe { bpf_redirect(lan.ifindex, 0) };
            return u32::try_from(action).map_err(|_| ());
        }
        write_macs(self, src_mac, dst_mac).map_err(|_| ())?;
        self.leave_through(lan.ifindex)
    }

    #[inline(always)]
    fn checksum_partial(&self) -> bool {
        // The helper leaves a partial checksum alone when a word of the segment changes (the
        // device sums the segment later) and patches a complete one: change a word by one,
        // look, and change it back.
        let check_at = Self::L4 + 16;
        let read = |skb: &Self| {
            ptr_at::<[u8; 2], _>(skb, check_at)
                .ok()
                // SAFETY: bounds-checked by ptr_at.
                .map(|check| unsafe { *check })
        };
        let before = read(self);
        #[expect(clippy::cast_possible_truncation, reason = "a header offset")]
        let at = check_at as u32;
        // SAFETY: the skb is the program's context; the helper checks the offset.
        if unsafe { bpf_l4_csum_replace(self.skb(), at, 0, 1, 2) } != 0 {
            return false;
        }
        let after = read(self);
        // SAFETY: as above.
        let _ = unsafe { bpf_l4_csum_replace(self.skb(), at, 1, 0, 2) };
        before.is_some() && before == after
    }

    #[inline(always)]
    fn send_back(&self, len: usize) -> Result<u32, ()> {
        #[expect(clippy::cast_possible_truncation, reason = "a 54-byte reset")]
        // SAFETY: the program's context; packet pointers are not used afterwards.
        if unsafe { bpf_skb_change_tail(self.skb(), len as u32, 0) } != 0 {
            return Err(());
        }
        // SAFETY: no preconditions.
        let action = unsafe { bpf_redirect(self.ingress_ifindex(), 0) };
        u32::try_from(action).map_err(|_| ())
    }
}
