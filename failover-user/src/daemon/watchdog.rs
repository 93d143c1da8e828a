//! Once a second the controller checks that the data plane does what it was told: its maps
//! hold the intent (drift is repaired), no uplink is a blackhole, and the kernel takes the
//! frames it redirects. Each finding is logged and recorded as an event.

use std::time::Duration;

use failover_common::{
    nat::{MAX_UPLINKS, Uplink},
    verdict::RedirectFailures,
};
use tokio::time::Instant;
use tracing::{info, warn};

use super::{
    Daemon,
    blackhole::{self, Finding, Watch},
    self_check::{self, Intent},
    slot_of,
};
use crate::{
    events::{self, Event},
    health::State,
};

/// How often the maps and counters are read.
pub const CHECK_EVERY: Duration = Duration::from_secs(1);

/// What the watchdog keeps between checks.
#[derive(Default)]
pub struct Watchdog {
    next: Option<Instant>,
    /// Per uplink.
    blackholes: Vec<Watch>,
    /// Per uplink: failed redirects already reported (each direction is logged once).
    reported: Vec<RedirectFailures>,
    /// Map entries rewritten since the start.
    pub repairs: u64,
}

impl Watchdog {
    /// Whether the uplink at `index` is a suspected blackhole.
    #[must_use]
    pub fn blackhole(&self, index: usize) -> bool {
        self.blackholes.get(index).is_some_and(Watch::suspected)
    }
}

/// Sent once per uplink and direction, when the first refused redirect is seen.
const REFUSED_FIX: &str = "the target device cannot take XDP frames: a veth whose peer has \
    no XDP program needs GRO on at the peer (`ethtool -K PEER gro on`); a device without \
    XDP transmit (USB modems, ppp, tunnels) cannot be an XDP redirect target; a device that \
    is down drops them";

impl Daemon {
    /// Runs the checks when due.
    pub(super) fn watch_dataplane(&mut self, now: Instant) {
        if self.watchdog.next.is_some_and(|next| now < next) {
            return;
        }
        self.watchdog.next = Some(now + CHECK_EVERY);
        self.check_maps();
        self.check_blackholes(now);
        self.check_redirects();
        // A veth peer losing GRO changes what the kernel reports without a link event here.
        for index in 0..self.uplinks.len() {
            self.rechoose_datapath(index);
        }
        self.rechoose_lan_datapath();
    }

    /// What the data plane should hold now.
    fn intent(&self) -> Intent {
        let mut uplinks = vec![Uplink::default(); MAX_UPLINKS as usize];
        for (entry, managed) in uplinks.iter_mut().zip(&self.uplinks) {
            *entry = managed.entry(managed.usable);
        }
        Intent {
            lan: self.running.lan(),
            uplinks,
            policy: self.running.policy(),
        }
    }

    fn check_maps(&mut self) {
        let found = match self_check::read(self.running.dataplane()) {
            Ok(found) => found,
            Err(e) => {
                warn!(error = %e, "self-check: reading the data plane's maps failed");
                return;
            }
        };
        let intent = self.intent();
        let repairs = self_check::compare(&intent, &found);
        if repairs.is_empty() {
            return;
        }
        let outcome = self_check::repair(self.running.dataplane_mut(), &intent, &repairs);
        let uplink = repairs
            .uplink_slots
            .first()
            .and_then(|&slot| self.uplinks.get(slot as usize))
            .map(|u| u.spec.name.clone())
            .unwrap_or_default();
        let listed: Vec<String> = repairs
            .drifts
            .iter()
            .map(|d| format!("{} was {}, should be {}", d.what, d.found, d.wanted))
            .collect();
        let (to, cause) = match &outcome {
            Ok(()) => {
                self.watchdog.repairs += 1;
                warn!(drift = %listed.join("; "), "the data plane's maps drifted from the controller's intent: rewritten");
                (
                    "repaired",
                    "the maps differed from the controller's intent: rewritten",
                )
            }
            Err(e) => {
                warn!(drift = %listed.join("; "), error = %e, "the data plane's maps drifted and rewriting them failed");
                (
                    "unrepaired",
                    "the maps differ from the controller's intent; rewriting failed",
                )
            }
        };
        let mut event = Event::now(events::kind::DATAPLANE, &uplink, "drift", to, cause);
        for d in &repairs.drifts {
            event = event.with_evidence(&d.what, format!("{} (should be {})", d.found, d.wanted));
        }
        if let Err(e) = outcome {
            event = event.with_evidence("error", e.to_string());
        }
        self.log(event);
    }

    fn check_blackholes(&mut self, now: Instant) {
        self.watchdog
            .blackholes
            .resize_with(self.uplinks.len(), Watch::default);
        for index in 0..self.uplinks.len() {
            let Ok(counters) = self.running.dataplane().uplink_counters(slot_of(index)) else {
                continue;
            };
            let answering = self.health.state(index) == State::Up;
            let Some(finding) = self.watchdog.blackholes[index].observe(counters, answering, now)
            else {
                continue;
            };
            let managed = &self.uplinks[index];
            let name = managed.spec.name.clone();
            let (min, max) = managed.spec.ports;
            let address = std::net::Ipv4Addr::from(managed.described.addr).to_string();
            let event = match finding {
                Finding::Blackhole {
                    unanswered,
                    for_secs,
                } => {
                    warn!(uplink = %name, unanswered, for_secs, %address, "data-plane blackhole: {}", blackhole::LIKELY_CAUSE);
                    Event::now(
                        events::kind::DATAPLANE,
                        &name,
                        "ok",
                        "blackhole",
                        blackhole::LIKELY_CAUSE,
                    )
                    .with_evidence("unanswered_packets", unanswered.to_string())
                    .with_evidence("for_secs", for_secs.to_string())
                    .with_evidence("address", address)
                    .with_evidence("ports", format!("{min}-{max}"))
                }
                Finding::Cleared { because } => {
                    info!(uplink = %name, because, "data-plane blackhole cleared");
                    Event::now(events::kind::DATAPLANE, &name, "blackhole", "ok", because)
                }
            };
            self.log(event);
        }
    }

    fn check_redirects(&mut self) {
        self.watchdog
            .reported
            .resize_with(self.uplinks.len(), RedirectFailures::default);
        let lan = self.config.lan.first().cloned().unwrap_or_default();
        for index in 0..self.uplinks.len() {
            let Ok(failures) = self.running.dataplane().redirect_failures(slot_of(index)) else {
                continue;
            };
            let reported = self.watchdog.reported[index];
            let name = self.uplinks[index].spec.name.clone();
            let interface = self.uplinks[index].spec.interface.clone();
            for (count, was, target) in [
                (failures.to_uplink, reported.to_uplink, interface.as_str()),
                (failures.to_lan, reported.to_lan, lan.as_str()),
            ] {
                if count == 0 || was != 0 {
                    continue;
                }
                warn!(uplink = %name, target, frames = count, "redirects to {target} fail: {REFUSED_FIX}");
                self.log(
                    Event::now(
                        events::kind::DATAPLANE,
                        &name,
                        "ok",
                        "redirect-failed",
                        REFUSED_FIX,
                    )
                    .with_evidence("target", target)
                    .with_evidence("frames", count.to_string()),
                );
            }
            self.watchdog.reported[index] = failures;
        }
    }
}
