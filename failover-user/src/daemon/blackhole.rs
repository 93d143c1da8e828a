//! Data-plane blackholes: an uplink whose probes answer, that the data plane keeps sending
//! translated packets out of, and through which nothing comes back. The probes (the router's
//! own packets) cannot see it; the data plane's counters can. Typical causes: the ISP filters
//! the translated source (a changed address the ISP's anti-spoofing does not know, the port
//! range), a firewall between drops it, or replies arrive on another interface.

use std::time::Duration;

use failover_common::verdict::UplinkCounters;
use tokio::time::Instant;

/// Unanswered for this long, with at least [`MIN_UNANSWERED`] packets out: a blackhole.
/// Long enough that a burst waiting for a slow server is not one.
pub const UNANSWERED_FOR: Duration = Duration::from_secs(10);
pub const MIN_UNANSWERED: u64 = 20;

/// What changed for one uplink.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Finding {
    /// Packets out, none back, probes answering.
    Blackhole { unanswered: u64, for_secs: u64 },
    /// Replies come back again (or the probes fail, and health takes over).
    Cleared { because: &'static str },
}

/// The watch over one uplink.
#[derive(Clone, Debug, Default)]
pub struct Watch {
    /// Counters at the last observation.
    last: Option<UplinkCounters>,
    /// Since when packets leave with none coming back, and `packets_out` then.
    unanswered: Option<(Instant, u64)>,
    flagged: bool,
}

impl Watch {
    /// Whether a blackhole is suspected now.
    #[must_use]
    pub fn suspected(&self) -> bool {
        self.flagged
    }

    /// Takes the uplink's counters at `now`; `probes_answer`: its health is up.
    pub fn observe(
        &mut self,
        counters: UplinkCounters,
        probes_answer: bool,
        now: Instant,
    ) -> Option<Finding> {
        let last = self.last.replace(counters)?;
        let replies = counters.packets_in != last.packets_in;
        if replies || !probes_answer {
            self.unanswered = None;
            if !self.flagged {
                return None;
            }
            self.flagged = false;
            let because = if replies {
                "replies come back again"
            } else {
                "its probes fail: health handles it"
            };
            return Some(Finding::Cleared { because });
        }
        if counters.packets_out != last.packets_out && self.unanswered.is_none() {
            self.unanswered = Some((now, last.packets_out));
        }
        let (since, out_then) = self.unanswered?;
        let unanswered = counters.packets_out.wrapping_sub(out_then);
        let elapsed = now.duration_since(since);
        if self.flagged || elapsed < UNANSWERED_FOR || unanswered < MIN_UNANSWERED {
            return None;
        }
        self.flagged = true;
        Some(Finding::Blackhole {
            unanswered,
            for_secs: elapsed.as_secs(),
        })
    }
}

/// In words, for the log and the event.
pub const LIKELY_CAUSE: &str = "translated packets leave and nothing comes back, while the \
    uplink's probes answer: the ISP (or a firewall between) may drop the translated source \
    address or port range, e.g. after an address change its anti-spoofing does not know, or \
    replies may arrive on another interface";

#[cfg(test)]
mod tests {
    use super::*;

    fn counters(out: u64, back: u64) -> UplinkCounters {
        UplinkCounters {
            packets_out: out,
            bytes_out: out * 100,
            packets_in: back,
            bytes_in: back * 100,
        }
    }

    /// Observes once a second from `start`, with probes answering.
    fn run(watch: &mut Watch, start: Instant, seconds: &[(u64, u64)]) -> Vec<(u64, Finding)> {
        seconds
            .iter()
            .zip(0u64..)
            .filter_map(|(&(out, back), s)| {
                watch
                    .observe(counters(out, back), true, start + Duration::from_secs(s))
                    .map(|f| (s, f))
            })
            .collect()
    }

    #[test]
    fn unanswered_traffic_is_a_blackhole_after_the_window_and_clears_on_replies() {
        let start = Instant::now();
        let mut watch = Watch::default();
        // Answered traffic, then 10 packets a second with no reply from second 3, then replies.
        let mut seconds: Vec<(u64, u64)> = vec![(0, 0), (10, 10), (20, 20)];
        seconds.extend((1..=12).map(|s| (20 + 10 * s, 20)));
        seconds.push((150, 25));
        let findings = run(&mut watch, start, &seconds);
        assert_eq!(
            findings,
            vec![
                (
                    13,
                    Finding::Blackhole {
                        unanswered: 110,
                        for_secs: 10
                    }
                ),
                (
                    15,
                    Finding::Cleared {
                        because: "replies come back again"
                    }
                ),
            ]
        );
        assert!(!watch.suspected());
    }

    #[test]
    fn idle_slow_or_answered_uplinks_are_not_blackholes() {
        let start = Instant::now();
        // Idle for a minute, then one packet a second with no reply: too few to tell.
        let mut watch = Watch::default();
        let mut seconds = vec![(5, 5); 60];
        seconds.extend((1..=15).map(|s| (5 + s, 5)));
        assert!(run(&mut watch, start, &seconds).is_empty());
        // A long transfer whose replies keep coming.
        let mut watch = Watch::default();
        let seconds: Vec<_> = (0..30).map(|s| (s * 1000, s * 900)).collect();
        assert!(run(&mut watch, start, &seconds).is_empty());
    }

    #[test]
    fn failing_probes_hand_over_to_health() {
        let start = Instant::now();
        let mut watch = Watch::default();
        let seconds: Vec<_> = (0..12).map(|s| (s * 10, 0)).collect();
        assert_eq!(run(&mut watch, start, &seconds).len(), 1);
        let later = start + Duration::from_secs(12);
        assert_eq!(
            watch.observe(counters(130, 0), false, later),
            Some(Finding::Cleared {
                because: "its probes fail: health handles it"
            })
        );
        // While probes fail, nothing is flagged however long it lasts.
        for s in 13..40 {
            let at = start + Duration::from_secs(s);
            assert_eq!(watch.observe(counters(s * 10, 0), false, at), None);
        }
    }
}
