//! Flows on a switch: only the failed uplink's flows are touched. TCP hosts are made to
//! speak so the data plane can reset their connections at once (see `flow_reset`); what is
//! left of the uplink's flows is purged shortly after, while flows on healthy uplinks run on.

use std::time::Duration;

use failover_common::nat::{FlowKey, flow_origin, tcp_state};
use tokio::time::Instant;
use tracing::{info, warn};

use crate::{dataplane::FlowTable, flow_reset};

/// Time for hosts to answer and be reset before the rest of a failed uplink's flows go.
const PURGE_DELAY: Duration = Duration::from_secs(2);

#[derive(Default)]
pub struct FlowsOnSwitch {
    /// (uplink slot, when) of pending purges.
    purges: Vec<(u32, Instant)>,
}

impl FlowsOnSwitch {
    /// The uplink in `slot` can no longer carry flows (the data plane already knows).
    pub fn leave_uplink(&mut self, table: &impl FlowTable, slot: u32, now: Instant, name: &str) {
        let tcp = open_tcp_flows(table, slot);
        match flow_reset::ask_hosts_to_answer(&tcp) {
            Ok(asked) => info!(
                uplink = name,
                tcp_flows = asked,
                "TCP hosts on the failed uplink asked to answer, so they are reset at once"
            ),
            Err(e) => {
                warn!(uplink = name, error = %e, "could not reach TCP hosts of the failed uplink; their flows are reset on their next segment");
            }
        }
        self.purges.retain(|(s, _)| *s != slot);
        self.purges.push((slot, now + PURGE_DELAY));
    }

    /// Moves the flows of `slot` (failback with `failback = "move"`): marked `MOVED`, so the
    /// data plane resets their TCP connections and re-steers the rest; returns how many.
    pub fn move_flows(table: &mut impl FlowTable, slot: u32) -> usize {
        let moved = mark_moved(table, slot);
        if let Err(e) = flow_reset::ask_hosts_to_answer(&moved) {
            warn!(error = %e, "could not reach TCP hosts of moved flows");
        }
        moved.len()
    }

    /// Purges what is left of each failed uplink's flows once `PURGE_DELAY` has passed, if
    /// the uplink is still unusable.
    pub fn purge_due(
        &mut self,
        table: &mut impl FlowTable,
        now: Instant,
        unusable: impl Fn(u32) -> bool,
    ) {
        let (due, pending): (Vec<_>, Vec<_>) = self.purges.iter().partition(|(_, at)| *at <= now);
        self.purges = pending;
        for (slot, _) in due {
            if !unusable(slot) {
                continue;
            }
            let Ok(flows) = table.flows() else {
                continue;
            };
            let keys: Vec<FlowKey> = flows
                .into_iter()
                .filter(|(_, f)| f.uplink == slot)
                .map(|(k, _)| k)
                .collect();
            match table.remove_flows(&keys) {
                Ok(n) => info!(
                    slot,
                    flows = n,
                    "purged the failed uplink's remaining flows"
                ),
                Err(e) => warn!(slot, error = %e, "purging flows failed"),
            }
        }
    }
}

/// Marks the flows LAN hosts opened on `slot` `MOVED`; returns the keys of those still
/// there. A forwarded connection stays: the remote knows it by this uplink's address.
fn mark_moved(table: &mut impl FlowTable, slot: u32) -> Vec<FlowKey> {
    let Ok(flows) = table.flows() else {
        return Vec::new();
    };
    let mut moved = Vec::new();
    for (key, mut flow) in flows
        .into_iter()
        .filter(|(_, f)| f.uplink == slot && f.origin == flow_origin::OUTBOUND)
    {
        flow.state = tcp_state::MOVED;
        if table.update_flow(&key, flow).is_ok() {
            moved.push(key);
        }
    }
    moved
}

/// TCP flows on `slot` that have not ended.
fn open_tcp_flows(table: &impl FlowTable, slot: u32) -> Vec<FlowKey> {
    table
        .flows()
        .map(|flows| {
            flows
                .into_iter()
                .filter(|(k, f)| {
                    f.uplink == slot
                        && k.proto == failover_common::classify::ip_proto::TCP
                        && f.state != tcp_state::CLOSED
                })
                .map(|(k, _)| k)
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use failover_common::{classify::ip_proto, nat::Flow};

    use super::*;
    use crate::dataplane::MemoryFlows;

    const FIBER: u32 = 0;
    const LTE: u32 = 1;

    fn flow(host: u8, proto: u8, uplink: u32, state: u8) -> (FlowKey, Flow) {
        let key = FlowKey {
            lan_addr: [10, 10, 0, host],
            remote_addr: [203, 0, 113, 10],
            lan_port: [0x9c, 0x40],
            remote_port: [0, 80],
            proto,
            ..FlowKey::default()
        };
        let flow = Flow {
            uplink,
            state,
            ..Flow::default()
        };
        (key, flow)
    }

    fn table() -> MemoryFlows {
        MemoryFlows::with([
            flow(11, ip_proto::TCP, FIBER, tcp_state::ESTABLISHED),
            flow(12, ip_proto::TCP, FIBER, tcp_state::CLOSED),
            flow(13, ip_proto::UDP, FIBER, 0),
            flow(14, ip_proto::TCP, LTE, tcp_state::ESTABLISHED),
        ])
    }

    fn slots(table: &MemoryFlows) -> Vec<(u8, u32, u8)> {
        let flows = table.flows().expect("in memory");
        flows
            .iter()
            .map(|(k, f)| (k.lan_addr[3], f.uplink, f.state))
            .collect()
    }

    #[test]
    fn only_open_tcp_flows_of_the_failed_uplink_are_asked_to_answer() {
        let hosts: Vec<u8> = open_tcp_flows(&table(), FIBER)
            .iter()
            .map(|k| k.lan_addr[3])
            .collect();
        assert_eq!(hosts, [11]);
    }

    #[test]
    fn moving_marks_only_the_uplinks_flows() {
        let mut table = table();
        let moved = mark_moved(&mut table, FIBER);
        assert_eq!(moved.len(), 3);
        let mut after = slots(&table);
        after.sort_unstable();
        let moved_state = tcp_state::MOVED;
        assert_eq!(
            after,
            [
                (11, FIBER, moved_state),
                (12, FIBER, moved_state),
                (13, FIBER, moved_state),
                (14, LTE, tcp_state::ESTABLISHED),
            ]
        );
    }

    #[test]
    fn a_purge_waits_its_delay_and_spares_an_uplink_usable_again() {
        let start = Instant::now();
        let mut switch = FlowsOnSwitch::default();
        switch.purges.push((FIBER, start + PURGE_DELAY));
        let mut table = table();

        switch.purge_due(&mut table, start, |_| true);
        assert_eq!(slots(&table).len(), 4, "nothing before the delay");
        switch.purge_due(&mut table, start + PURGE_DELAY, |_| true);
        assert_eq!(
            slots(&table),
            [(14, LTE, tcp_state::ESTABLISHED)],
            "fiber's flows go, lte's stay"
        );

        let mut table = MemoryFlows::with([flow(11, ip_proto::TCP, FIBER, 0)]);
        switch.purges.push((FIBER, start));
        switch.purge_due(&mut table, start, |_| false);
        assert_eq!(slots(&table).len(), 1, "fiber came back: its flows stay");
        assert!(switch.purges.is_empty(), "the purge is done either way");
    }
}
