//! The probe schedule: one task per uplink and probe kind, sending a probe every interval
//! (the interval and the uplink's path can change under it) and reporting every outcome.

use std::time::Duration;

use tokio::{
    sync::{mpsc, watch},
    time::{Instant, sleep},
};
use tracing::debug;

use crate::{
    config::HealthConfig,
    health::Sample,
    probe::{ProbeKind, ProbePath, run_probe},
};

/// What the controller can change under an uplink's probers.
pub struct UplinkProbeControl {
    /// `None` while the uplink has no address or gateway: probes then count as lost.
    pub path: watch::Sender<Option<ProbePath>>,
    pub interval: watch::Sender<Duration>,
}

/// Starts the probers of uplink `uplink`; they stop when the controller drops the control.
pub fn spawn(
    uplink: usize,
    kinds: Vec<ProbeKind>,
    path: Option<ProbePath>,
    interval: Duration,
    config: &HealthConfig,
    samples: &mpsc::Sender<Sample>,
) -> UplinkProbeControl {
    let (path_tx, path_rx) = watch::channel(path);
    let (interval_tx, interval_rx) = watch::channel(interval);
    let count = u32::try_from(kinds.len()).unwrap_or(1).max(1);
    for (i, kind) in (0u32..).zip(kinds) {
        let (path, interval) = (path_rx.clone(), interval_rx.clone());
        let (config, samples) = (config.clone(), samples.clone());
        // Spread the kinds over the interval, so an uplink's probes do not leave in a burst.
        let offset = interval.borrow().mul_f64(f64::from(i) / f64::from(count));
        tokio::spawn(prober(
            uplink, kind, offset, path, interval, config, samples,
        ));
    }
    UplinkProbeControl {
        path: path_tx,
        interval: interval_tx,
    }
}

async fn prober(
    uplink: usize,
    kind: ProbeKind,
    offset: Duration,
    path: watch::Receiver<Option<ProbePath>>,
    mut interval: watch::Receiver<Duration>,
    config: HealthConfig,
    samples: mpsc::Sender<Sample>,
) {
    let mut next = Instant::now() + offset;
    loop {
        tokio::select! {
            () = tokio::time::sleep_until(next) => {}
            changed = interval.changed() => {
                if changed.is_err() {
                    return; // the controller is gone
                }
                // A shorter interval (the uplink became active) takes effect at once.
                next = next.min(Instant::now() + *interval.borrow());
                continue;
            }
        }
        next += *interval.borrow();
        let now = Instant::now();
        if next < now {
            next = now; // never catch up in a burst after a stall
        }
        let current = path.borrow().clone();
        // A gateway probe on a link without one (a tunnel) is not sent: no sample, no loss.
        if current.as_ref().is_some_and(|p| !kind.applies_to(p)) {
            continue;
        }
        let (kind, config, sink) = (kind.clone(), config.clone(), samples.clone());
        // Each probe runs on its own, so a probe waiting for its timeout never delays the next.
        tokio::spawn(async move {
            let sent = Instant::now();
            let rtt = if let Some(path) = &current {
                run_probe(path, &kind, &config)
                    .await
                    .inspect_err(|e| {
                        debug!(uplink = %path.uplink, probe = ?kind, error = %e, "probe failed");
                    })
                    .ok()
            } else {
                // Count the probe lost when its answer would have been due.
                sleep(config.timeout).await;
                None
            };
            let _ = sink
                .send(Sample {
                    uplink,
                    probe: kind,
                    sent,
                    rtt,
                })
                .await;
        });
        if samples.is_closed() {
            return;
        }
    }
}
