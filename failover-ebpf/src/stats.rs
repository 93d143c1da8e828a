//! Counting verdict reasons and uplink traffic.

use failover_common::verdict::Reason;

use crate::{
    cursor::Frame,
    maps::{REASONS, UPLINK_COUNTERS},
};

#[inline(always)]
pub fn count(reason: Reason) {
    if let Some(counter) = REASONS.get_ptr_mut(reason as u32) {
        // SAFETY: this CPU's slot of a preallocated per-CPU array.
        unsafe { *counter += 1 };
    }
}

/// Counts the reason and returns `action`, so verdicts read `return verdict(PASS, reason)`.
#[inline(always)]
pub fn verdict(action: u32, reason: Reason) -> u32 {
    count(reason);
    action
}

/// A program's verdict: its own, or `F::PASS` counted under the reason it left the packet to
/// the kernel (unless `count_passed` is false: an XDP program counted it already).
#[inline(always)]
pub fn or_pass<F: Frame>(result: Result<u32, Reason>, count_passed: bool) -> u32 {
    match result {
        Ok(action) => action,
        Err(reason) => {
            if count_passed {
                count(reason);
            }
            F::PASS
        }
    }
}

#[inline(always)]
pub fn count_uplink(slot: u32, bytes: usize, outbound: bool) {
    if let Some(c) = UPLINK_COUNTERS.get_ptr_mut(slot) {
        // SAFETY: this CPU's slot of a preallocated per-CPU array.
        let c = unsafe { &mut *c };
        if outbound {
            c.packets_out += 1;
            c.bytes_out += bytes as u64;
        } else {
            c.packets_in += 1;
            c.bytes_in += bytes as u64;
        }
    }
}
