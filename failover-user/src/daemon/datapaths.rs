//! The data path each managed interface takes (`crate::datapath`), re-read every watchdog
//! second and on link changes: a veth peer losing GRO, say, moves its flows from XDP to TC.
//! What is decided goes into the maps as path flags (`Planned::flags`), which the XDP
//! programs read to hand flows to the TC programs; the programs stay attached as they are.

use tracing::{info, warn};

use super::{Daemon, slot_of};
use crate::{
    attachments::Planned,
    datapath::{self, Choice, Path},
    interface_facts,
};

/// The choice for `plan`'s interface (index `ifindex`), logged when it differs from `was`.
/// Unreadable facts (a missing interface) are `None`, warned about once.
fn rechoose(plan: &Planned, ifindex: u32, skb_mode: bool, was: Option<&Choice>) -> Option<Choice> {
    let interface = &plan.interface;
    let facts = match interface_facts::read(interface, ifindex) {
        Ok(facts) => facts,
        Err(e) => {
            if was.is_some() {
                warn!(%interface, error = %e, "reading the interface's link type failed: its flows take the TC path");
            }
            return None;
        }
    };
    let choice = match datapath::choose_with(&facts, skb_mode, plan.mode) {
        Ok(choice) => choice,
        Err(why) => {
            warn!(%interface, %why, "the configured data path no longer fits: its flows take the TC path");
            return None;
        }
    };
    if was != Some(&choice) {
        log_choice(interface, &choice);
    }
    Some(choice)
}

fn log_choice(interface: &str, choice: &Choice) {
    match choice.path {
        Path::Tc => {
            info!(%interface, path = "tc", why = %choice.why, "data path: flows through this interface take the TC programs");
        }
        Path::Xdp => info!(%interface, path = "xdp", why = %choice.why, "data path"),
    }
}

/// The LAN's choice, with each uplink's set in place, as the start decided them.
pub(super) fn choose_all(
    running: &crate::loader::Running,
    uplinks: &mut [super::Managed],
) -> Choice {
    for (managed, plan) in uplinks.iter_mut().zip(&running.plans.uplinks) {
        log_choice(&plan.interface, &plan.choice);
        managed.datapath = Some(plan.choice.clone());
        managed.path_flags = plan.planned_flags();
    }
    let lan = &running.plans.lan;
    log_choice(&lan.interface, &lan.choice);
    lan.choice.clone()
}

impl Daemon {
    /// Re-reads uplink `index`'s data path (after a link change, and every watchdog check)
    /// and tells the data plane when its flags change.
    pub(super) fn rechoose_datapath(&mut self, index: usize) {
        let plan = &self.running.plans.uplinks[index];
        let managed = &self.uplinks[index];
        let choice = rechoose(
            plan,
            managed.described.ifindex,
            self.config.skb_mode,
            managed.datapath.as_ref(),
        );
        let flags = plan.flags(choice.as_ref());
        let managed = &mut self.uplinks[index];
        managed.datapath = choice;
        if flags == managed.path_flags {
            return;
        }
        managed.path_flags = flags;
        let entry = managed.entry(managed.usable);
        if let Err(e) = self
            .running
            .dataplane_mut()
            .set_uplink(slot_of(index), entry)
        {
            warn!(error = %e, "updating the uplink map failed");
        }
    }

    /// The same for the LAN.
    pub(super) fn rechoose_lan_datapath(&mut self) {
        let plan = &self.running.plans.lan;
        let choice = rechoose(
            plan,
            self.running.lan().ifindex,
            self.config.skb_mode,
            self.lan_datapath.as_ref(),
        );
        let flags = plan.flags(choice.as_ref());
        self.lan_datapath = choice;
        if flags != self.running.lan().path
            && let Err(e) = self.running.set_lan_path(flags)
        {
            warn!(error = %e, "updating the LAN map failed");
        }
    }
}
