//! Per-uplink policy routing, so a probe bound to a standby uplink reaches beyond its gateway
//! whatever the main table prefers: uplink slot `i` gets table `1000 + i` holding only
//! `default via GATEWAY dev IF` (`default dev IF` on a link without a gateway), and at
//! priority `1000 + i` (before the main table's 32766) the rules `from SOURCE lookup 1000 + i`
//! and `fwmark TOO_BIG_MARK | i lookup 1000 + i`. The second routes the LAN packets the TC
//! program finds too big for the uplink, so the kernel's "fragmentation needed" names the
//! uplink's MTU.
//!
//! Without them a socket bound to a device whose default route is missing from the main
//! table gets no route at all: the kernel then treats every destination as on-link and asks
//! ARP for the far target itself, which no ISP answers.

use std::net::Ipv4Addr;

use super::ProbePath;
use crate::netlink::{Netlink, NetlinkError};

/// Table of uplink slot 0; slot `i` uses `TABLE_BASE + i`.
pub const TABLE_BASE: u32 = 1000;
/// Rule priority of uplink slot 0; slot `i` uses `PRIORITY_BASE + i`.
pub const PRIORITY_BASE: u32 = 1000;

/// What the kernel holds for one slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Installed {
    ifindex: u32,
    source: Ipv4Addr,
    gateway: Option<Ipv4Addr>,
}

/// The routing table and rule of one uplink slot.
#[derive(Debug)]
pub struct UplinkRoutes {
    slot: u32,
    /// `None` until the first successful [`update`](Self::update), and after a failed one.
    installed: Option<Installed>,
}

impl UplinkRoutes {
    /// Routes for uplink slot `slot` (below `failover_common::nat::MAX_UPLINKS`). Touches
    /// nothing until [`update`](Self::update).
    #[must_use]
    pub fn new(slot: u32) -> Self {
        assert!(
            slot < failover_common::nat::MAX_UPLINKS,
            "uplink slot {slot} out of range"
        );
        Self {
            slot,
            installed: None,
        }
    }

    #[must_use]
    pub fn table(&self) -> u32 {
        TABLE_BASE + self.slot
    }

    /// The mark of the slot's too-big packets (`failover_common::nat::TOO_BIG_MARK`).
    #[must_use]
    pub fn too_big_mark(&self) -> u32 {
        failover_common::nat::TOO_BIG_MARK | self.slot
    }

    #[must_use]
    pub fn priority(&self) -> u32 {
        PRIORITY_BASE + self.slot
    }

    /// Makes the slot's table and rule route `path.source` through `path`. The first call
    /// (and the next after a failure) first removes whatever holds the slot's table or
    /// priority, e.g. leftovers of a controller that crashed; later calls touch the kernel
    /// only when the interface, address or gateway changed.
    pub async fn update(
        &mut self,
        netlink: &Netlink,
        path: &ProbePath,
    ) -> Result<(), NetlinkError> {
        let wanted = Installed {
            ifindex: path.ifindex,
            source: path.source,
            gateway: path.gateway,
        };
        if self.installed == Some(wanted) {
            return Ok(());
        }
        self.installed = None;
        self.clear(netlink).await?;
        netlink
            .replace_default_route(self.table(), path.ifindex, path.gateway, path.source)
            .await?;
        netlink
            .add_source_rule(path.source, self.table(), self.priority())
            .await?;
        netlink
            .add_mark_rule(self.too_big_mark(), self.table(), self.priority())
            .await?;
        self.installed = Some(wanted);
        Ok(())
    }

    /// Removes the slot's rule and routes (on shutdown, or when the uplink goes away).
    pub async fn remove(&mut self, netlink: &Netlink) -> Result<(), NetlinkError> {
        self.installed = None;
        self.clear(netlink).await
    }

    async fn clear(&self, netlink: &Netlink) -> Result<(), NetlinkError> {
        netlink.delete_rules(self.priority(), self.table()).await?;
        netlink.flush_table(self.table()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_get_their_own_table_and_priority_before_main() {
        let routes = UplinkRoutes::new(1);
        assert_eq!((routes.table(), routes.priority()), (1001, 1001));
        let last = UplinkRoutes::new(failover_common::nat::MAX_UPLINKS - 1);
        assert!(
            last.priority() < 32766,
            "must come before the main table's rule"
        );
    }

    #[test]
    #[should_panic(expected = "out of range")]
    fn slots_beyond_the_data_planes_are_refused() {
        let _ = UplinkRoutes::new(failover_common::nat::MAX_UPLINKS);
    }
}
