//! The data path each managed interface can take (`crate::datapath`), kept for the status
//! and re-read when the kernel reports a change of the link. This version attaches XDP
//! everywhere, so an interface that needs the TC path is reported loudly: its frames may be
//! refused by the kernel (counted in the failed redirects).

use tracing::{info, warn};

use super::Daemon;
use crate::{
    datapath::{self, Choice, Path},
    interface_facts,
};

/// The choice for `interface` (index `ifindex`), logged when it differs from `was` (at
/// start, `was` is `None` and anything is new). Unreadable facts (a missing interface) are
/// `None`, warned about once, not at every re-read.
fn rechoose(
    interface: &str,
    ifindex: u32,
    skb_mode: bool,
    was: Option<&Choice>,
    at_start: bool,
) -> Option<Choice> {
    let choice = match interface_facts::read(interface, ifindex) {
        Ok(facts) => datapath::choose(&facts, skb_mode),
        Err(e) => {
            if at_start || was.is_some() {
                warn!(%interface, error = %e, "reading the interface's link type failed");
            }
            return None;
        }
    };
    if was != Some(&choice) {
        if choice.path == Path::Tc {
            warn!(%interface, why = %choice.why, "this interface needs the TC data path, which this version does not have: XDP is attached, and frames the kernel refuses are counted as failed redirects");
        } else {
            info!(%interface, path = choice.path.name(), why = %choice.why, "data path");
        }
    }
    Some(choice)
}

/// The LAN's choice, with each uplink's set in place: at start.
pub(super) fn choose_all(
    lan: &str,
    running: &crate::loader::Running,
    uplinks: &mut [super::Managed],
    skb_mode: bool,
) -> Option<Choice> {
    for managed in uplinks {
        let (interface, ifindex) = (&managed.spec.interface, managed.described.ifindex);
        managed.datapath = rechoose(interface, ifindex, skb_mode, None, true);
    }
    rechoose(lan, running.lan().ifindex, skb_mode, None, true)
}

impl Daemon {
    /// Re-reads uplink `index`'s data path (after a link change, and every watchdog check).
    pub(super) fn rechoose_datapath(&mut self, index: usize) {
        let managed = &self.uplinks[index];
        let choice = rechoose(
            &managed.spec.interface,
            managed.described.ifindex,
            self.config.skb_mode,
            managed.datapath.as_ref(),
            false,
        );
        self.uplinks[index].datapath = choice;
    }
}
