//! Per-LAN-host limits (`failover_common::limits`): a host may not open a new flow past its
//! flow limit, nor take a new external port past its port limit on an uplink. Checked only
//! when a flow or binding is created, so established traffic never pays for it.
//!
//! Admission counts at once, before the port search: nothing of it stays live across that
//! loop, which keeps the verifier's work flat. A flow admitted here that then finds no free
//! port stays counted until the controller's next recount.
//!
//! Counts are plain additions: BPF has atomic adds but Rust's `core` offers none on this
//! target, and two CPUs creating flows of one host in the same instant can only lose a count,
//! which the next recount restores.

use aya_ebpf::bindings::BPF_NOEXIST;
use failover_common::{
    limits::{HostKey, HostUsage},
    verdict::Reason,
};

use crate::maps::{HOST_LIMITS, HOSTS};

/// Admits what LAN host `addr` is about to create: a `new_flow` and/or a `new_port` on
/// uplink `slot`. Refuses (counted for the host) what would pass a limit in force; without
/// limits in force (none set, or the controller's lease ran out) admits and counts nothing.
#[inline(always)]
pub fn admit(
    addr: [u8; 4],
    slot: u32,
    now: u64,
    new_flow: bool,
    new_port: bool,
) -> Result<(), Reason> {
    let Some(limits) = HOST_LIMITS.get(0).copied().filter(|l| l.in_force(now)) else {
        return Ok(());
    };
    let key = HostKey { addr };
    if HOSTS.get_ptr_mut(key).is_none() {
        let _ = HOSTS.insert(key, HostUsage::default(), u64::from(BPF_NOEXIST));
    }
    // Only a race with another insert leaves no entry (an LRU map evicts rather than
    // refuse): that flow goes unlimited.
    let Some(usage) = HOSTS.get_ptr_mut(key) else {
        return Ok(());
    };
    // SAFETY: a map value pointer; a concurrent update can only lose a count (see above).
    unsafe { &mut *usage }.admit(&limits, slot, new_flow, new_port)
}
