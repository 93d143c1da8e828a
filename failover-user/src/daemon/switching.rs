//! Flows on a switch: only the failed uplink's flows are touched. TCP hosts are made to
//! speak so the data plane can reset their connections at once (see `flow_reset`); what is
//! left of the uplink's flows is purged shortly after, while flows on healthy uplinks run on.

use std::time::Duration;

use aya::Ebpf;
use failover_common::nat::{FlowKey, tcp_state};
use tokio::time::Instant;
use tracing::{info, warn};

use crate::{dataplane, flow_reset};

/// Time for hosts to answer and be reset before the rest of a failed uplink's flows go.
const PURGE_DELAY: Duration = Duration::from_secs(2);

#[derive(Default)]
pub struct FlowsOnSwitch {
    /// (uplink slot, when) of pending purges.
    purges: Vec<(u32, Instant)>,
}

impl FlowsOnSwitch {
    /// The uplink in `slot` can no longer carry flows (the data plane already knows).
    pub fn leave_uplink(&mut self, ebpf: &Ebpf, slot: u32, now: Instant, name: &str) {
        let tcp = open_tcp_flows(ebpf, slot);
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
    pub fn move_flows(ebpf: &mut Ebpf, slot: u32) -> usize {
        let Ok(flows) = dataplane::flows(ebpf) else {
            return 0;
        };
        let mut moved = Vec::new();
        for (key, mut flow) in flows.into_iter().filter(|(_, f)| f.uplink == slot) {
            flow.state = tcp_state::MOVED;
            if dataplane::update_flow(ebpf, &key, flow).is_ok() {
                moved.push(key);
            }
        }
        if let Err(e) = flow_reset::ask_hosts_to_answer(&moved) {
            warn!(error = %e, "could not reach TCP hosts of moved flows");
        }
        moved.len()
    }

    /// Purges what is left of each failed uplink's flows once `PURGE_DELAY` has passed, if
    /// the uplink is still unusable.
    pub fn purge_due(&mut self, ebpf: &mut Ebpf, now: Instant, unusable: impl Fn(u32) -> bool) {
        let (due, pending): (Vec<_>, Vec<_>) = self.purges.iter().partition(|(_, at)| *at <= now);
        self.purges = pending;
        for (slot, _) in due {
            if !unusable(slot) {
                continue;
            }
            let Ok(flows) = dataplane::flows(ebpf) else {
                continue;
            };
            let keys: Vec<FlowKey> = flows
                .into_iter()
                .filter(|(_, f)| f.uplink == slot)
                .map(|(k, _)| k)
                .collect();
            match dataplane::remove_flows(ebpf, &keys) {
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

/// TCP flows on `slot` that have not ended.
fn open_tcp_flows(ebpf: &Ebpf, slot: u32) -> Vec<FlowKey> {
    dataplane::flows(ebpf)
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
