//! Redirects that never left, counted per uplink: those the program could not make (an empty
//! devmap slot) and those the kernel refused after the program returned, seen at the
//! `xdp_redirect_err` and `xdp_devmap_xmit` tracepoints (a target with no `ndo_xdp_xmit`, a
//! device that is down, a veth peer that cannot take XDP frames, a full queue). Without this
//! such frames vanish with no counter of ours.

use aya_ebpf::{helpers::bpf_probe_read_kernel, programs::RawTracePointContext};
use failover_common::nat::{LAN_SLOT, MAX_UPLINKS};

use crate::maps::{LAN, REDIRECT_FAILURES, UPLINKS};

/// Byte offset of `ifindex` in `struct net_device`, read from the kernel's BTF by the loader
/// (`names::GLOBAL_IFINDEX_OFFSET`); 0 when unknown, and then the tracepoints count nothing.
#[unsafe(no_mangle)]
static FO_IFINDEX_OFF: u32 = 0;

/// `BPF_MAP_TYPE_DEVMAP`: the data plane redirects through its devmap only.
const MAP_TYPE_DEVMAP: u64 = 14;

/// Where a frame was going.
#[derive(Clone, Copy)]
pub enum Target {
    /// The uplink in this slot (from the LAN).
    Uplink(u32),
    /// The LAN (from the uplink in this slot).
    Lan(u32),
}

/// Adds `frames` to the uplink's failed redirects.
#[inline(always)]
pub fn count(target: Target, frames: u64) {
    let (slot, to_uplink) = match target {
        Target::Uplink(slot) => (slot, true),
        Target::Lan(slot) => (slot, false),
    };
    if let Some(c) = REDIRECT_FAILURES.get_ptr_mut(slot) {
        // SAFETY: this CPU's slot of a preallocated per-CPU array.
        let c = unsafe { &mut *c };
        if to_uplink {
            c.to_uplink += frames;
        } else {
            c.to_lan += frames;
        }
    }
}

/// `xdp_redirect_err(dev, xdp, tgt, err, map_type, map_id, index)`: a redirect out of our
/// devmap that the kernel refused; `index` is the devmap slot.
#[inline(always)]
pub fn on_redirect_error(ctx: &RawTracePointContext) {
    if ctx.arg::<u64>(4) != MAP_TYPE_DEVMAP {
        return;
    }
    let Some(from) = ifindex_of(ctx.arg::<*const u8>(0)) else {
        return;
    };
    // The tracepoint's `u32 index`, passed in a 64-bit register.
    let Ok(index) = u32::try_from(ctx.arg::<u64>(6)) else {
        return;
    };
    let target = if from == lan_ifindex() && index < MAX_UPLINKS {
        Some(Target::Uplink(index))
    } else if index == LAN_SLOT {
        uplink_slot(from).map(Target::Lan)
    } else {
        None
    };
    if let Some(target) = target {
        count(target, 1);
    }
}

/// `xdp_devmap_xmit(from_dev, to_dev, sent, drops, err)`: frames a device dropped on transmit.
#[inline(always)]
pub fn on_devmap_xmit(ctx: &RawTracePointContext) {
    // The tracepoint's `int drops` sits in the low 32 bits of its register.
    let drops = ctx.arg::<u64>(3) & u64::from(u32::MAX);
    if drops == 0 || drops > u64::from(i32::MAX.cast_unsigned()) {
        return;
    }
    let (Some(from), Some(to)) = (
        ifindex_of(ctx.arg::<*const u8>(0)),
        ifindex_of(ctx.arg::<*const u8>(1)),
    ) else {
        return;
    };
    let lan = lan_ifindex();
    let target = if from == lan {
        uplink_slot(to).map(Target::Uplink)
    } else if to == lan {
        uplink_slot(from).map(Target::Lan)
    } else {
        None
    };
    if let Some(target) = target {
        count(target, drops);
    }
}

#[inline(always)]
fn lan_ifindex() -> u32 {
    LAN.get(0).map_or(0, |lan| lan.ifindex)
}

/// The slot of the uplink on interface `ifindex`.
#[inline(always)]
fn uplink_slot(ifindex: u32) -> Option<u32> {
    if ifindex == 0 {
        return None;
    }
    (0..MAX_UPLINKS).find(|&slot| UPLINKS.get(slot).is_some_and(|u| u.ifindex == ifindex))
}

/// `dev->ifindex` of a kernel `struct net_device *`.
#[inline(always)]
fn ifindex_of(dev: *const u8) -> Option<u32> {
    // SAFETY: a plain read of a load-time constant.
    let offset = unsafe { core::ptr::read_volatile(&raw const FO_IFINDEX_OFF) };
    if offset == 0 || dev.is_null() {
        return None;
    }
    // SAFETY: the helper reads kernel memory safely and fails on a bad address.
    let bytes =
        unsafe { bpf_probe_read_kernel(dev.wrapping_add(offset as usize).cast::<[u8; 4]>()) };
    bytes.ok().map(u32::from_ne_bytes).filter(|&i| i != 0)
}
