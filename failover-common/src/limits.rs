//! Per-LAN-host limits: how many flows one LAN host may have live, and how many external
//! ports it may hold on each uplink, so that one host opening new flows fast (a port scan, a
//! torrent client, a compromised camera) cannot fill the NAT tables or an uplink's port range
//! and push out other hosts' flows.
//!
//! The data plane counts up: it adds one to the host's [`HostUsage`] for every flow and every
//! binding it creates, and refuses (drops, counted) what would go over a [`HostLimits`]. It
//! cannot count down, since the LRU tables evict and entries expire silently, so the
//! controller recounts the live entries every `[limits] recount` and writes the true counts
//! back. The limits hold only while the controller keeps renewing them
//! ([`HostLimits::until_ns`]): a data plane left running without a controller stops enforcing
//! counts nobody corrects any more.

use crate::{nat::MAX_UPLINKS, verdict::Reason};

/// LAN hosts tracked (LRU: a host evicted from the map starts counting from zero again, and
/// the next recount restores its true counts).
pub const HOST_ENTRIES: u32 = 1 << 14;

/// Default `[limits] flows_per_host`: far above what a household host keeps open (a busy
/// browser has a few hundred flows), far below the flow table (1 Mi).
pub const DEFAULT_FLOWS_PER_HOST: u32 = 8192;
/// Default `[limits] ports_per_host` (per uplink): an eighth of the default port range.
pub const DEFAULT_PORTS_PER_HOST: u32 = 4096;

/// A LAN host: the key of `fo_hosts`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HostKey {
    /// The host's IPv4 address, network byte order.
    pub addr: [u8; 4],
}

/// What one LAN host holds, and what it was refused. The value of `fo_hosts`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HostUsage {
    /// Live flows in `fo_flows` (as of the last recount, plus those created since).
    pub flows: u32,
    /// External ports held in `fo_reverse`, per uplink slot (idem).
    pub ports: [u32; MAX_UPLINKS as usize],
    pub _pad: u32,
    /// New flows refused at the flow limit, since the entry was created.
    pub refused_flows: u64,
    /// New flows refused because a new external port would pass the port limit.
    pub refused_ports: u64,
}

/// The limits in force; one entry of `fo_host_limits`, written by the controller. 0 means
/// no limit (an entry of zeroes, as a fresh map has, turns every limit off).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HostLimits {
    /// Live flows per LAN host; 0: no limit.
    pub flows: u32,
    /// External ports per LAN host and uplink; 0: no limit.
    pub ports: u32,
    /// The data plane's clock (ns) up to which the limits hold: the controller renews it at
    /// every recount. Past it (a controller that was killed), nothing is limited.
    pub until_ns: u64,
}

impl HostLimits {
    /// Whether any limit is in force at `now_ns`.
    #[must_use]
    #[inline(always)]
    pub const fn in_force(&self, now_ns: u64) -> bool {
        (self.flows != 0 || self.ports != 0) && now_ns < self.until_ns
    }
}

impl HostUsage {
    /// Admits a `new_flow` and/or a `new_port` on uplink `slot` under `limits`, counting
    /// them, or refuses (counting the refusal) what would pass a limit. The caller checks
    /// that the limits are in force.
    #[inline(always)]
    pub fn admit(
        &mut self,
        limits: &HostLimits,
        slot: u32,
        new_flow: bool,
        new_port: bool,
    ) -> Result<(), Reason> {
        if new_flow && at_limit(self.flows, limits.flows) {
            self.refused_flows += 1;
            return Err(Reason::HostFlowLimit);
        }
        if new_port && let Some(ports) = self.ports.get_mut(slot as usize) {
            if at_limit(*ports, limits.ports) {
                self.refused_ports += 1;
                return Err(Reason::HostPortLimit);
            }
            *ports += 1;
        }
        if new_flow {
            self.flows += 1;
        }
        Ok(())
    }
}

/// True when one more would pass `limit` (0: no limit) with `used` already taken.
#[must_use]
#[inline(always)]
pub const fn at_limit(used: u32, limit: u32) -> bool {
    limit != 0 && used >= limit
}

const _: () = {
    assert!(core::mem::size_of::<HostKey>() == 4);
    assert!(core::mem::size_of::<HostUsage>() == 4 + 4 * MAX_UPLINKS as usize + 4 + 16);
    assert!(core::mem::size_of::<HostLimits>() == 16);
};

#[cfg(feature = "user")]
mod pod {
    // SAFETY: each type is repr(C), built only of integers and byte arrays, with explicit
    // padding fields, so every bit pattern is valid and there are no hidden padding bytes.
    unsafe impl aya::Pod for super::HostKey {}
    unsafe impl aya::Pod for super::HostUsage {}
    unsafe impl aya::Pod for super::HostLimits {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_is_no_limit_and_the_limit_itself_is_reached() {
        assert!(!at_limit(u32::MAX, 0));
        assert!(!at_limit(7, 8));
        assert!(at_limit(8, 8));
        assert!(at_limit(9, 8));
    }

    #[test]
    fn admission_counts_what_it_takes_and_what_it_refuses() {
        let limits = HostLimits {
            flows: 2,
            ports: 1,
            until_ns: u64::MAX,
        };
        let mut usage = HostUsage::default();
        assert_eq!(usage.admit(&limits, 1, true, true), Ok(()));
        assert_eq!((usage.flows, usage.ports[1]), (1, 1));
        assert_eq!(
            usage.admit(&limits, 1, true, true),
            Err(Reason::HostPortLimit),
            "a second port on slot 1"
        );
        assert_eq!(
            (usage.flows, usage.refused_ports),
            (1, 1),
            "a refusal takes nothing"
        );
        assert_eq!(
            usage.admit(&limits, 0, true, true),
            Ok(()),
            "slot 0 has its own"
        );
        assert_eq!(
            usage.admit(&limits, 0, true, false),
            Err(Reason::HostFlowLimit)
        );
        assert_eq!((usage.flows, usage.refused_flows), (2, 1));
        assert_eq!(usage.admit(&limits, 0, false, false), Ok(()), "nothing new");
    }

    #[test]
    fn limits_hold_only_while_renewed_and_set() {
        let limits = HostLimits {
            flows: 10,
            ports: 0,
            until_ns: 1000,
        };
        assert!(limits.in_force(999));
        assert!(!limits.in_force(1000), "the lease ran out");
        assert!(
            !HostLimits::default().in_force(0),
            "a fresh map limits nothing"
        );
        assert!(
            !HostLimits {
                flows: 0,
                ports: 0,
                until_ns: u64::MAX
            }
            .in_force(0)
        );
    }
}
