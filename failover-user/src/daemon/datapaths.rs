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

/// The choice for `interface` (index `ifindex`), or `None` when its facts cannot be read.
pub(super) fn choice_for(interface: &str, ifindex: u32, skb_mode: bool) -> Option<Choice> {
    match interface_facts::read(interface, ifindex) {
        Ok(facts) => Some(datapath::choose(&facts, skb_mode)),
        Err(e) => {
            warn!(%interface, error = %e, "reading the interface's link type failed");
            None
        }
    }
}

/// Logs a choice that is new for `interface`: a warning when it needs the TC path.
pub(super) fn report_change(interface: &str, was: Option<&Choice>, now: Option<&Choice>) {
    let Some(now) = now else {
        return;
    };
    if was == Some(now) {
        return;
    }
    if now.path == Path::Tc {
        warn!(%interface, why = %now.why, "this interface needs the TC data path, which this version does not have: XDP is attached, and frames the kernel refuses are counted as failed redirects");
    } else {
        info!(%interface, path = now.path.name(), why = %now.why, "data path");
    }
}

/// The LAN's choice, with each uplink's set in place, all reported: at start.
pub(super) fn choose_all(
    lan: &str,
    running: &crate::loader::Running,
    uplinks: &mut [super::Managed],
    skb_mode: bool,
) -> Option<Choice> {
    let lan_choice = choice_for(lan, running.lan().ifindex, skb_mode);
    report_change(lan, None, lan_choice.as_ref());
    for managed in uplinks {
        let interface = &managed.spec.interface;
        managed.datapath = choice_for(interface, managed.described.ifindex, skb_mode);
        report_change(interface, None, managed.datapath.as_ref());
    }
    lan_choice
}

impl Daemon {
    /// Re-reads uplink `index`'s data path (after a link change).
    pub(super) fn rechoose_datapath(&mut self, index: usize) {
        let managed = &self.uplinks[index];
        let choice = choice_for(
            &managed.spec.interface,
            managed.described.ifindex,
            self.config.skb_mode,
        );
        report_change(
            &managed.spec.interface,
            managed.datapath.as_ref(),
            choice.as_ref(),
        );
        self.uplinks[index].datapath = choice;
    }
}
