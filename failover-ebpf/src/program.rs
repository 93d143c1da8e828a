//! What differs between the XDP and the TC programs, behind one trait: how the transport
//! checksum is patched, how a translated frame leaves, how a reset goes back. The
//! translation (`nat_out`, `nat_in`, `icmp_error`, `mss`) is written once over [`Program`].

use aya_ebpf::{
    EbpfContext,
    bindings::xdp_action,
    helpers::{bpf_check_mtu, bpf_xdp_adjust_tail},
    programs::XdpContext,
};
use failover_common::{
    checksum,
    nat::{LAN_SLOT, Lan, Uplink, path},
    verdict::Reason,
};

use crate::{
    cursor::Frame,
    maps,
    packet::{word, write_macs},
};

/// A program type the translation runs in.
pub trait Program: Frame + EbpfContext {
    /// The interface the frame arrived on.
    fn ingress_ifindex(&self) -> u32;

    /// The point where an XDP program hands a flow it cannot carry to the TC program: `Err`
    /// when a frame must reach an interface with these [`path`] flags. What the program
    /// decides after this point, the TC program decides (and counts) again.
    fn hand_over(&self, flags: u8) -> Result<(), Reason>;

    /// The transport checksum (TCP or UDP) at frame offset `check_at` (`check` points at it)
    /// after a 16-bit word of the segment changed from `old` to `new`.
    fn patch_l4_word(&self, check: *mut [u8; 2], check_at: usize, old: u16, new: u16, udp: bool);

    /// The same after an address of the pseudo-header changed.
    fn patch_l4_addr(
        &self,
        check: *mut [u8; 2],
        check_at: usize,
        old: [u8; 4],
        new: [u8; 4],
        udp: bool,
    );

    /// `Err` when an IPv4 packet of `ip_len` bytes that may not be fragmented is larger than
    /// `uplink`'s MTU (it would leave through uplink slot `slot`): the TC program marks it
    /// for the kernel, which answers "fragmentation needed" ([`Reason::TooBig`]); an XDP
    /// program, which cannot mark, hands it to the TC program ([`Reason::TcPath`]).
    fn fits_mtu(&self, slot: u32, uplink: &Uplink, ip_len: u16) -> Result<(), Reason>;

    /// Sends the translated frame out of `uplink` (in devmap slot `slot`); `Err` when it
    /// cannot be sent.
    fn to_uplink(&self, slot: u32, uplink: &Uplink) -> Result<u32, ()>;

    /// Sends the translated frame to a LAN host through `lan`, with these MACs.
    fn to_lan(&self, lan: &Lan, src_mac: [u8; 6], dst_mac: [u8; 6]) -> Result<u32, ()>;

    /// Whether the frame's transport checksum is still to be completed by the device
    /// (`CHECKSUM_PARTIAL`). Invalidates packet pointers on TC.
    fn checksum_partial(&self) -> bool;

    /// Cuts the frame to `len` bytes and sends it back out of the interface it came from.
    fn send_back(&self, len: usize) -> Result<u32, ()>;
}

impl Program for XdpContext {
    #[inline(always)]
    #[expect(
        clippy::cast_possible_truncation,
        reason = "the kernel's xdp_md.ingress_ifindex is a u32; aya widens it"
    )]
    fn ingress_ifindex(&self) -> u32 {
        XdpContext::ingress_ifindex(self) as u32
    }

    #[inline(always)]
    fn hand_over(&self, flags: u8) -> Result<(), Reason> {
        if path::needs_tc(flags) {
            return Err(Reason::TcPath);
        }
        Ok(())
    }

    #[inline(always)]
    fn patch_l4_word(&self, check: *mut [u8; 2], _: usize, old: u16, new: u16, udp: bool) {
        // SAFETY: `check` was bounds-checked at parse time.
        let check = unsafe { &mut *check };
        let updated = if udp {
            checksum::udp_replace_u16(word(*check), old, new)
        } else {
            checksum::replace_u16(word(*check), old, new)
        };
        *check = updated.to_ne_bytes();
    }

    #[inline(always)]
    fn patch_l4_addr(&self, check: *mut [u8; 2], _: usize, old: [u8; 4], new: [u8; 4], udp: bool) {
        // SAFETY: `check` was bounds-checked at parse time.
        let check = unsafe { &mut *check };
        let updated = if udp {
            checksum::udp_replace_addr(word(*check), old, new)
        } else {
            checksum::replace_addr(word(*check), old, new)
        };
        *check = updated.to_ne_bytes();
    }

    #[inline(always)]
    fn fits_mtu(&self, _: u32, uplink: &Uplink, ip_len: u16) -> Result<(), Reason> {
        // A redirect into a device of smaller MTU (a jumbo-frame LAN's packet to a 1500
        // uplink) would be dropped by the kernel.
        let mut len = u32::from(ip_len);
        // SAFETY: the program's context; `len` is a local the helper reads and writes.
        let verdict = unsafe { bpf_check_mtu(self.as_ptr(), uplink.ifindex, &raw mut len, 0, 0) };
        if verdict > 0 {
            return Err(Reason::TcPath);
        }
        Ok(())
    }

    #[inline(always)]
    fn to_uplink(&self, slot: u32, uplink: &Uplink) -> Result<u32, ()> {
        write_macs(self, uplink.mac, uplink.gateway_mac).map_err(|_| ())?;
        maps::DEVICES.redirect(slot, 0).map_err(|_| ())
    }

    #[inline(always)]
    fn to_lan(&self, _: &Lan, src_mac: [u8; 6], dst_mac: [u8; 6]) -> Result<u32, ()> {
        write_macs(self, src_mac, dst_mac).map_err(|_| ())?;
        maps::DEVICES.redirect(LAN_SLOT, 0).map_err(|_| ())
    }

    #[inline(always)]
    fn checksum_partial(&self) -> bool {
        // An XDP buffer has no checksum state: drivers hand XDP complete frames.
        false
    }

    #[inline(always)]
    fn send_back(&self, len: usize) -> Result<u32, ()> {
        let excess = (self.end() - self.start()).saturating_sub(len);
        let shrink = -i32::try_from(excess).unwrap_or(0);
        // SAFETY: the helper only moves the frame's end; no packet pointer is used afterwards.
        if unsafe { bpf_xdp_adjust_tail(self.ctx, shrink) } != 0 {
            return Err(());
        }
        Ok(xdp_action::XDP_TX)
    }
}
