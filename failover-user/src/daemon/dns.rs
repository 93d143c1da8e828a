//! The daemon's side of `[dns]`: tells the updater where the records should point (the
//! active uplink's public address) and records what the server answered.

use std::net::Ipv4Addr;

use tokio::sync::{mpsc, watch};
use tracing::{info, warn};

use crate::{
    config::Config,
    control::DnsStatus,
    dns_update::{self, Outcome, Settings, Target},
    events::{self, Event},
};

pub(super) struct DnsFollower {
    targets: watch::Sender<Option<Target>>,
    outcomes: mpsc::Receiver<Outcome>,
    /// The last attempt's outcome.
    last: Option<Outcome>,
    server: String,
    records: Vec<String>,
    _task: tokio::task::JoinHandle<()>,
}

impl DnsFollower {
    /// `None` without a `[dns]` section; an error when its key file is unusable (the daemon
    /// starts it before the data plane, so a bad key stops the start, not a later switch).
    pub(super) fn start(config: &Config) -> anyhow::Result<Option<Self>> {
        let Some(dns) = &config.dns else {
            return Ok(None);
        };
        let settings = Settings::new(dns).map_err(|e| anyhow::anyhow!("[dns]: {e}"))?;
        let (targets, watched) = watch::channel(None);
        let (sender, outcomes) = mpsc::channel(16);
        Ok(Some(Self {
            targets,
            outcomes,
            last: None,
            server: dns.server.to_string(),
            records: dns.records.clone(),
            _task: dns_update::spawn(settings, watched, sender),
        }))
    }

    /// The records should point at `target` (`None`: the carrying uplink has no address yet).
    pub(super) fn point_at(&self, target: Option<Target>) {
        self.targets.send_if_modified(|current| {
            let changed = *current != target;
            *current = target;
            changed
        });
    }

    pub(super) async fn next_outcome(&mut self) -> Option<Outcome> {
        self.outcomes.recv().await
    }

    /// Records `outcome`; returns the event for it: every acknowledgement, and the first
    /// failure for an address (the retries after it show in `failover status`).
    pub(super) fn on_outcome(&mut self, outcome: Outcome) -> Option<Event> {
        let event = match &outcome.result {
            Ok(()) => {
                info!(uplink = %outcome.uplink, address = %outcome.address, attempts = outcome.attempts, "DNS records updated");
                Some(self.event(
                    &outcome,
                    &format!("acknowledged after {} attempt(s)", outcome.attempts),
                ))
            }
            Err(e) => {
                warn!(uplink = %outcome.uplink, address = %outcome.address, attempts = outcome.attempts, error = %e, "DNS update not acknowledged; retrying");
                (outcome.attempts == 1)
                    .then(|| self.event(&outcome, &format!("not acknowledged: {e}; retrying")))
            }
        };
        self.last = Some(outcome);
        event
    }

    fn event(&self, outcome: &Outcome, cause: &str) -> Event {
        Event::now(
            events::kind::DNS,
            &outcome.uplink,
            "",
            &outcome.address.to_string(),
            cause,
        )
        .with_evidence("records", self.records.join(","))
        .with_evidence("server", self.server.clone())
    }

    /// For `failover status`.
    pub(super) fn status(&self) -> DnsStatus {
        let wanted = self.targets.borrow().clone();
        let last = self.last.as_ref();
        // The last outcome is about what is wanted now, or the update is on its way.
        let current = last.filter(|o| {
            wanted
                .as_ref()
                .is_some_and(|w| w.uplink == o.uplink && w.address == o.address)
        });
        DnsStatus {
            server: self.server.clone(),
            records: self.records.clone(),
            uplink: wanted.as_ref().map(|w| w.uplink.clone()),
            address: wanted.as_ref().map(|w| w.address.to_string()),
            acknowledged: current.is_some_and(|o| o.result.is_ok()),
            attempts: current.map_or(0, |o| o.attempts),
            error: current.and_then(|o| o.result.clone().err()),
            last_acknowledged: last
                .filter(|o| o.result.is_ok())
                .map(|o| format!("{} ({})", o.address, o.uplink)),
            secs_since_last_attempt: last
                .and_then(|o| o.at.elapsed().ok())
                .map(|d| d.as_secs_f64()),
        }
    }
}

/// Where the records should point when `uplink` carries the services: its public address,
/// else its interface's; `None` while it has neither an address nor a path to send through.
pub(super) fn target_for(
    name: &str,
    public: Option<Ipv4Addr>,
    own: [u8; 4],
    path: Option<&crate::probe::ProbePath>,
) -> Option<Target> {
    let address = public.unwrap_or(Ipv4Addr::from(own));
    (!address.is_unspecified()).then_some(())?;
    Some(Target {
        uplink: name.to_owned(),
        address,
        path: path?.clone(),
    })
}
