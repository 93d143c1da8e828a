//! Counting verdict reasons and uplink traffic.

use failover_common::verdict::Reason;

use crate::maps::{REASONS, UPLINK_COUNTERS};

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
