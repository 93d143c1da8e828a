//! Per-uplink health: probe evidence in, `Up | Degraded | Down` out, with the evidence that
//! justified each change.
//!
//! Two layers must hold for an uplink to be healthy: its gateway answers (ARP or ICMP echo),
//! and a quorum of far targets answers through it. A layer fails on *silence*: its last reply
//! is older than the layer's limit **and** a probe sent after that reply has been reported
//! lost, so a stalled prober does not fail every uplink at once. With the defaults (100 ms
//! interval, 500 ms timeout) that loss is known by the time the 600 ms gateway limit runs out,
//! so it costs no detection time. A stream probed more slowly than `interval` (a metered
//! uplink on standby) gets its limits stretched in proportion, to allow as many missed probes
//! as at the full rate: 6 s and 10 s at the 1 s standby interval instead of one lost probe.
//!
//! A far target silent on every uplink whose gateway answers (at least two) is the target's
//! fault: it leaves the quorums at once, is listed as suspect once silent for
//! `targets_down_after` everywhere, and rejoins when it answers anywhere.
//!
//! Loss, RTT and jitter come from a sliding window of the last `window` samples *per probe
//! stream* (each gateway probe kind and each far target on each uplink), pooled per uplink.
//! Per stream, because the window then spans the same time for every target, and a pool of
//! five 50-sample windows makes 10 % random loss read as 10 %, far from the 30 % limit.
//!
//! Pure: no I/O; time comes in as [`Instant`] values, so tests run on tokio's paused clock.

use std::{collections::VecDeque, time::Duration};

use tokio::time::Instant;

use crate::{
    config::{self, HealthConfig, Target, UplinkConfig},
    probe::ProbeKind,
};

/// An uplink's health. The order (`Up < Degraded < Down`) is the policy's preference.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum State {
    Up,
    Degraded,
    Down,
}

/// One probe's outcome, as the prober reports it.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub uplink: usize,
    pub probe: ProbeKind,
    pub sent: Instant,
    /// `None`: no answer within `timeout` (or the probe could not be sent).
    pub rtt: Option<Duration>,
}

/// A change of an uplink's state, with what the controller logs about it.
#[derive(Clone, Debug, PartialEq)]
pub struct Transition {
    pub uplink: usize,
    pub from: State,
    pub to: State,
    pub at: Instant,
    pub cause: String,
    pub evidence: Vec<(String, String)>,
}

/// A far target that answers on no uplink whose gateway answers: the target is down, not the
/// uplinks, so it is left out of every quorum until it answers again.
#[derive(Clone, Debug, PartialEq)]
pub struct Suspect {
    pub target: Target,
    pub since: Instant,
    pub reason: String,
}

/// Loss, RTT and jitter over the windows of an uplink's counted probe streams.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub samples: usize,
    pub lost: usize,
    /// Over far-target replies (the path traffic takes); the gateway's when there are none.
    pub median_rtt: Option<Duration>,
    /// Mean absolute difference of consecutive RTTs of a stream, over the same streams.
    pub jitter: Option<Duration>,
}

impl Stats {
    #[must_use]
    pub fn loss_percent(&self) -> usize {
        (self.lost * 100).checked_div(self.samples).unwrap_or(0)
    }
}

/// An uplink's state and the evidence behind it, for status and transitions.
#[derive(Clone, Debug, PartialEq)]
pub struct Status {
    pub state: State,
    pub since: Instant,
    pub carrier: bool,
    /// From the kernel's neighbour table, when the controller reports it.
    pub gateway_mac_known: Option<bool>,
    /// Ages of the last ARP and ICMP replies (start-up counts as a reply).
    pub arp_reply_age: Duration,
    pub icmp_reply_age: Duration,
    /// How long the gateway has been silent (see the module doc); `None` while it answers or
    /// when gateway probes are off.
    pub gateway_silence: Option<Duration>,
    /// The silence that takes the uplink down: `gateway_down_after`, stretched on standby.
    pub gateway_limit: Duration,
    /// Far targets that answered within `targets_down_after`, of those counted (neither
    /// suspect nor silent on every uplink).
    pub far_answered: usize,
    pub far_counted: usize,
    pub quorum: usize,
    pub stats: Stats,
}

/// One probe stream of an uplink on its own, for reports and metrics.
#[derive(Clone, Debug, PartialEq)]
pub struct ProbeStatus {
    pub probe: ProbeKind,
    /// Age of the last reply; `None` before the first (start-up does not count here).
    pub last_reply_age: Option<Duration>,
    /// Loss and median RTT over this stream's window.
    pub stats: Stats,
    /// Replies and losses since start.
    pub replies: u64,
    pub losses: u64,
}

/// One probe stream: one probe kind or far target on one uplink.
#[derive(Debug)]
struct Stream {
    /// Arrival of the last reply.
    last_reply: Instant,
    /// When the last lost probe was sent.
    last_loss: Option<Instant>,
    /// When the newest probe was sent, and the gap before it: how often this stream is probed.
    last_sent: Option<Instant>,
    spacing: Option<Duration>,
    window: VecDeque<(Instant, Option<Duration>)>,
    /// Replies and losses since start, for the metrics.
    replies: u64,
    losses: u64,
}

impl Stream {
    /// Start-up counts as a reply, so an uplink with carrier is up until evidence says not.
    fn new(start: Instant) -> Self {
        Self {
            last_reply: start,
            last_loss: None,
            last_sent: None,
            spacing: None,
            window: VecDeque::new(),
            replies: 0,
            losses: 0,
        }
    }

    fn record(&mut self, sent: Instant, rtt: Option<Duration>, window: usize) {
        if let Some(rtt) = rtt {
            self.last_reply = self.last_reply.max(sent + rtt);
            self.replies += 1;
        } else {
            self.last_loss = self.last_loss.max(Some(sent));
            self.losses += 1;
        }
        if let Some(last) = self.last_sent.filter(|&last| sent > last) {
            self.spacing = Some(sent - last);
        }
        self.last_sent = self.last_sent.max(Some(sent));
        if window == 0 {
            return;
        }
        if self.window.len() == window {
            self.window.pop_front();
        }
        self.window.push_back((sent, rtt));
    }

    fn silence(&self, now: Instant) -> Option<Duration> {
        silence(self.last_reply, self.last_loss, now)
    }

    fn rtts(&self) -> impl Iterator<Item = Duration> + '_ {
        self.window.iter().filter_map(|&(_, rtt)| rtt)
    }
}

/// Silence since `last_reply`, counted only once a probe sent after it was lost.
fn silence(last_reply: Instant, last_loss: Option<Instant>, now: Instant) -> Option<Duration> {
    last_loss
        .filter(|&lost| lost >= last_reply)
        .map(|_| now.saturating_duration_since(last_reply))
}

#[derive(Debug)]
struct Uplink {
    name: String,
    metered: bool,
    carrier: bool,
    gateway_mac_known: Option<bool>,
    state: State,
    since: Instant,
    /// Start of the current run of evaluations that found both layers holding.
    healthy_since: Option<Instant>,
    /// Samples sent before this (the last recovery) stay out of the statistics.
    stats_since: Instant,
    arp: Stream,
    icmp: Stream,
    far: Vec<(Target, Stream)>,
}

impl Uplink {
    fn far(&self, target: &Target) -> Option<&Stream> {
        self.far.iter().find(|(t, _)| t == target).map(|(_, s)| s)
    }

    fn stream_mut(&mut self, probe: &ProbeKind) -> Option<&mut Stream> {
        match probe {
            ProbeKind::GatewayArp => Some(&mut self.arp),
            ProbeKind::GatewayIcmp => Some(&mut self.icmp),
            ProbeKind::Far(target) => self
                .far
                .iter_mut()
                .find(|(t, _)| t == target)
                .map(|(_, s)| s),
        }
    }

    fn streams_mut(&mut self) -> impl Iterator<Item = &mut Stream> {
        [&mut self.arp, &mut self.icmp]
            .into_iter()
            .chain(self.far.iter_mut().map(|(_, s)| s))
    }
}

/// The health of every uplink.
#[derive(Debug)]
pub struct Health {
    config: HealthConfig,
    uplinks: Vec<Uplink>,
    suspects: Vec<Suspect>,
}

impl Health {
    /// Every uplink starts `Up`, with carrier, as if all its probes had just answered.
    #[must_use]
    pub fn new(config: &HealthConfig, uplinks: &[UplinkConfig], start: Instant) -> Self {
        let default_targets = || {
            config::defaults::TARGETS
                .iter()
                .map(|t| t.parse().expect("default targets parse"))
                .collect::<Vec<Target>>()
        };
        let uplinks = uplinks
            .iter()
            .map(|u| Uplink {
                name: u.name.clone(),
                metered: u.metered,
                carrier: true,
                gateway_mac_known: None,
                state: State::Up,
                since: start,
                healthy_since: None,
                stats_since: start,
                arp: Stream::new(start),
                icmp: Stream::new(start),
                far: u
                    .targets
                    .clone()
                    .unwrap_or_else(default_targets)
                    .into_iter()
                    .map(|t| (t, Stream::new(start)))
                    .collect(),
            })
            .collect();
        Self {
            config: config.clone(),
            uplinks,
            suspects: Vec::new(),
        }
    }

    #[must_use]
    pub fn state(&self, uplink: usize) -> State {
        self.uplinks[uplink].state
    }

    #[must_use]
    pub fn states(&self) -> Vec<State> {
        self.uplinks.iter().map(|u| u.state).collect()
    }

    /// The far targets to probe through `uplink`.
    pub fn targets(&self, uplink: usize) -> impl Iterator<Item = &Target> {
        self.uplinks[uplink].far.iter().map(|(t, _)| t)
    }

    /// Far targets currently left out of the quorums, and why.
    #[must_use]
    pub fn suspects(&self) -> &[Suspect] {
        &self.suspects
    }

    /// How often to probe each target of `uplink`: slowly on a metered uplink that carries no
    /// traffic (`active == false`), so standby costs little data.
    #[must_use]
    pub fn probe_interval(&self, uplink: usize, active: bool) -> Duration {
        if self.uplinks[uplink].metered && !active {
            self.config.metered_standby_interval
        } else {
            self.config.interval
        }
    }

    /// A carrier change; carrier loss takes the uplink down at once.
    pub fn carrier(&mut self, uplink: usize, up: bool, now: Instant) -> Option<Transition> {
        self.uplinks[uplink].carrier = up;
        self.evaluate_uplink(uplink, now)
    }

    /// Starts `uplink` `Down` (an adopted data plane had taken it out): like any recovery, it
    /// is `Up` only after `up_after` of answers without a gap.
    pub fn seed_down(&mut self, uplink: usize, cause: &str, now: Instant) {
        let up = &mut self.uplinks[uplink];
        if up.state != State::Down {
            self.transition(uplink, State::Down, cause.to_owned(), now);
        }
        self.uplinks[uplink].healthy_since = None;
    }

    /// Whether the kernel has resolved the gateway's MAC address (evidence for the log).
    pub fn gateway_mac_known(&mut self, uplink: usize, known: bool) {
        self.uplinks[uplink].gateway_mac_known = Some(known);
    }

    /// Records a probe outcome; takes effect at the next [`Health::evaluate`].
    pub fn record(&mut self, sample: &Sample) {
        let Some(uplink) = self.uplinks.get_mut(sample.uplink) else {
            return;
        };
        // A late loss report from before a recovery still counts as evidence, but not as loss.
        let window = if sample.sent < uplink.stats_since {
            0
        } else {
            self.config.window
        };
        if let Some(stream) = uplink.stream_mut(&sample.probe) {
            stream.record(sample.sent, sample.rtt, window);
        }
    }

    /// Re-judges every uplink at `now` (call it every `interval`); returns the changes.
    pub fn evaluate(&mut self, now: Instant) -> Vec<Transition> {
        self.update_suspects(now);
        (0..self.uplinks.len())
            .filter_map(|u| self.evaluate_uplink(u, now))
            .collect()
    }

    #[must_use]
    pub fn status(&self, uplink: usize, now: Instant) -> Status {
        let up = &self.uplinks[uplink];
        let counted: Vec<&Stream> = up
            .far
            .iter()
            .filter(|(t, _)| !self.is_suspect(t) && self.silent_everywhere(t, now).is_none())
            .map(|(_, s)| s)
            .collect();
        let far_answered = counted.iter().filter(|s| !self.far_silent(s, now)).count();
        let (gateway_silence, gateway_limit) = self.gateway_silence(up, now);
        Status {
            state: up.state,
            since: up.since,
            carrier: up.carrier,
            gateway_mac_known: up.gateway_mac_known,
            arp_reply_age: now.saturating_duration_since(up.arp.last_reply),
            icmp_reply_age: now.saturating_duration_since(up.icmp.last_reply),
            gateway_silence,
            gateway_limit,
            far_answered,
            far_counted: counted.len(),
            quorum: self.quorum(counted.len()),
            stats: stats(&[&up.arp, &up.icmp], &counted),
        }
    }

    /// Each probe stream of `uplink`: the gateway's ARP and ICMP (when gateway probes are on),
    /// then each far target.
    #[must_use]
    pub fn probes(&self, uplink: usize, now: Instant) -> Vec<ProbeStatus> {
        let up = &self.uplinks[uplink];
        let gateway = [
            (ProbeKind::GatewayArp, &up.arp),
            (ProbeKind::GatewayIcmp, &up.icmp),
        ];
        let far = up.far.iter().map(|(t, s)| (ProbeKind::Far(t.clone()), s));
        gateway
            .into_iter()
            .filter(|_| self.config.gateway_probes)
            .chain(far)
            .map(|(probe, stream)| ProbeStatus {
                probe,
                last_reply_age: (stream.replies > 0)
                    .then(|| now.saturating_duration_since(stream.last_reply)),
                stats: stats(&[stream], &[]),
                replies: stream.replies,
                losses: stream.losses,
            })
            .collect()
    }

    /// `k` of the counted targets: the configured quorum, at most all of them; by default a
    /// majority.
    fn quorum(&self, counted: usize) -> usize {
        self.config
            .quorum
            .map_or(counted / 2 + 1, |k| k.min(counted))
    }

    fn is_suspect(&self, target: &Target) -> bool {
        self.suspects.iter().any(|s| &s.target == target)
    }

    /// `limit` for a stream probed every `spacing`: as many missed probes as at `interval`.
    fn stretch(&self, limit: Duration, spacing: Option<Duration>) -> Duration {
        let interval = self.config.interval;
        match spacing {
            Some(spacing) if spacing > interval && !interval.is_zero() => {
                limit.mul_f64(spacing.as_secs_f64() / interval.as_secs_f64())
            }
            _ => limit,
        }
    }

    fn far_silent(&self, stream: &Stream, now: Instant) -> bool {
        let limit = self.stretch(self.config.targets_down_after, stream.spacing);
        stream.silence(now).is_some_and(|d| d >= limit)
    }

    /// The gateway's silence (ARP and ICMP together) and the limit that applies to it.
    fn gateway_silence(&self, up: &Uplink, now: Instant) -> (Option<Duration>, Duration) {
        let limit = self.stretch(
            self.config.gateway_down_after,
            up.arp.spacing.max(up.icmp.spacing),
        );
        if !self.config.gateway_probes {
            return (None, limit);
        }
        let last_reply = up.arp.last_reply.max(up.icmp.last_reply);
        let silence = silence(last_reply, up.arp.last_loss.max(up.icmp.last_loss), now);
        (silence, limit)
    }

    /// Uplinks that can vouch for far targets: carrier, and the gateway answers.
    fn witnesses(&self, now: Instant) -> impl Iterator<Item = &Uplink> {
        self.uplinks.iter().filter(move |u| {
            let (silence, limit) = self.gateway_silence(u, now);
            u.carrier && silence.is_none_or(|d| d < limit)
        })
    }

    /// The witnesses probing `target`, if there are two or more and it is silent on all of
    /// them, with the shortest of those silences.
    fn silent_everywhere(&self, target: &Target, now: Instant) -> Option<(Vec<&str>, Duration)> {
        let mut names = Vec::new();
        let mut shortest = Duration::MAX;
        for uplink in self.witnesses(now) {
            let Some(stream) = uplink.far(target) else {
                continue;
            };
            shortest = shortest.min(stream.silence(now)?);
            names.push(uplink.name.as_str());
        }
        (names.len() >= 2).then_some((names, shortest))
    }

    /// Why the uplink is down at `now`, if it is.
    fn failure(&self, status: &Status) -> Option<String> {
        if !status.carrier {
            return Some("carrier down".to_owned());
        }
        if let Some(silent) = status
            .gateway_silence
            .filter(|&d| d >= status.gateway_limit)
        {
            return Some(format!("gateway silent for {}", ms(silent)));
        }
        if status.far_counted > 0 && status.far_answered < status.quorum {
            return Some(format!(
                "far targets answered {}/{} within {} (quorum {})",
                status.far_answered,
                status.far_counted,
                ms(self.config.targets_down_after),
                status.quorum
            ));
        }
        None
    }

    /// Why an otherwise healthy uplink is degraded, if it is. Needs a full window's worth of
    /// samples, so one early loss does not read as 100 %.
    fn degradation(&self, stats: &Stats) -> Option<String> {
        if stats.samples < self.config.window.max(1) {
            return None;
        }
        let limit = usize::from(self.config.degraded_loss_percent);
        if stats.lost * 100 >= limit * stats.samples {
            return Some(format!(
                "loss {}% over the last {} probes (limit {limit}%)",
                stats.loss_percent(),
                stats.samples
            ));
        }
        match stats.median_rtt {
            Some(rtt) if rtt >= self.config.degraded_rtt => Some(format!(
                "median RTT {} (limit {})",
                ms(rtt),
                ms(self.config.degraded_rtt)
            )),
            _ => None,
        }
    }

    fn evaluate_uplink(&mut self, uplink: usize, now: Instant) -> Option<Transition> {
        let status = self.status(uplink, now);
        let from = status.state;
        if let Some(cause) = self.failure(&status) {
            self.uplinks[uplink].healthy_since = None;
            return (from != State::Down).then(|| self.transition(uplink, State::Down, cause, now));
        }
        let up = &mut self.uplinks[uplink];
        let healthy_since = *up.healthy_since.get_or_insert(now);
        if from == State::Down {
            if now.duration_since(healthy_since) < self.config.up_after {
                return None;
            }
            // Judge loss and RTT on the recovery only, not on the outage before it.
            up.stats_since = healthy_since;
            for stream in up.streams_mut() {
                stream.window.retain(|&(sent, _)| sent >= healthy_since);
            }
        }
        let (to, cause) = match self.degradation(&self.status(uplink, now).stats) {
            Some(cause) => (State::Degraded, cause),
            None if from == State::Down => (
                State::Up,
                format!("healthy for {}", ms(self.config.up_after)),
            ),
            None => (State::Up, "loss and RTT back within limits".to_owned()),
        };
        (to != from).then(|| self.transition(uplink, to, cause, now))
    }

    fn transition(&mut self, uplink: usize, to: State, cause: String, now: Instant) -> Transition {
        let status = self.status(uplink, now);
        let up = &mut self.uplinks[uplink];
        let from = up.state;
        up.state = to;
        up.since = now;
        Transition {
            uplink,
            from,
            to,
            at: now,
            cause,
            evidence: self.evidence(&status),
        }
    }

    fn evidence(&self, s: &Status) -> Vec<(String, String)> {
        let on_off = |b: bool, yes: &str, no: &str| if b { yes } else { no }.to_owned();
        let mut evidence = vec![
            ("carrier".to_owned(), on_off(s.carrier, "up", "down")),
            (
                "gateway_mac".to_owned(),
                s.gateway_mac_known
                    .map_or("not reported".to_owned(), |k| on_off(k, "known", "unknown")),
            ),
        ];
        if self.config.gateway_probes {
            evidence.push(("arp_last_reply".to_owned(), ago(s.arp_reply_age)));
            evidence.push(("icmp_last_reply".to_owned(), ago(s.icmp_reply_age)));
        }
        evidence.push((
            "far_targets_answered".to_owned(),
            format!("{}/{} (quorum {})", s.far_answered, s.far_counted, s.quorum),
        ));
        if !self.suspects.is_empty() {
            let names: Vec<String> = self.suspects.iter().map(|x| x.target.to_string()).collect();
            evidence.push(("suspect_targets".to_owned(), names.join(", ")));
        }
        evidence.push((
            "loss".to_owned(),
            format!("{}% of {}", s.stats.loss_percent(), s.stats.samples),
        ));
        if let Some(rtt) = s.stats.median_rtt {
            evidence.push(("median_rtt".to_owned(), ms(rtt)));
        }
        if let Some(jitter) = s.stats.jitter {
            evidence.push(("jitter".to_owned(), ms(jitter)));
        }
        evidence
    }

    /// Marks targets silent for `targets_down_after` on every (≥ 2) uplink whose gateway
    /// answers; lets suspects rejoin as soon as one answers anywhere.
    fn update_suspects(&mut self, now: Instant) {
        let uplinks = &self.uplinks;
        self.suspects.retain(|s| {
            !uplinks
                .iter()
                .any(|u| u.far(&s.target).is_some_and(|st| st.last_reply > s.since))
        });
        let limit = self.config.targets_down_after;
        let mut targets: Vec<&Target> = Vec::new();
        for (target, _) in uplinks.iter().flat_map(|u| &u.far) {
            if !targets.contains(&target) && !self.is_suspect(target) {
                targets.push(target);
            }
        }
        let marked: Vec<Suspect> = targets
            .into_iter()
            .filter_map(|target| {
                let (names, silence) = self.silent_everywhere(target, now)?;
                (silence >= limit).then(|| Suspect {
                    target: target.clone(),
                    since: now,
                    reason: format!(
                        "no reply for {} or more on {}, whose gateways answer",
                        ms(limit),
                        names.join(", ")
                    ),
                })
            })
            .collect();
        self.suspects.extend(marked);
    }
}

/// Loss over all `gateway` and `far` streams; RTT and jitter over `far` when it has replies.
fn stats(gateway: &[&Stream], far: &[&Stream]) -> Stats {
    let all = gateway.iter().chain(far);
    let samples = all.clone().map(|s| s.window.len()).sum();
    let lost = all
        .flat_map(|s| &s.window)
        .filter(|(_, rtt)| rtt.is_none())
        .count();
    let timed = if far.iter().any(|s| s.rtts().next().is_some()) {
        far
    } else {
        gateway
    };
    let mut rtts: Vec<Duration> = timed.iter().flat_map(|s| s.rtts()).collect();
    rtts.sort_unstable();
    let steps: Vec<Duration> = timed
        .iter()
        .flat_map(|s| s.rtts().zip(s.rtts().skip(1)).map(|(a, b)| a.abs_diff(b)))
        .collect();
    let jitter = u32::try_from(steps.len())
        .ok()
        .filter(|&n| n > 0)
        .map(|n| steps.iter().sum::<Duration>() / n);
    Stats {
        samples,
        lost,
        median_rtt: rtts.get(rtts.len() / 2).copied(),
        jitter,
    }
}

fn ms(d: Duration) -> String {
    format!("{} ms", d.as_millis())
}

fn ago(d: Duration) -> String {
    format!("{} ago", ms(d))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::time::Instant;

    use super::{ProbeKind, Sample, State, Stream, stats};
    use crate::sim::{STEP, Sim, fiber_and_lte};

    const FIBER: usize = 0;
    const LTE: usize = 1;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// A minute of healthy running first, so the windows are full as in production.
    async fn settled(seed: u64) -> Sim {
        let mut sim = Sim::new(fiber_and_lte(), seed);
        sim.run_for(Duration::from_secs(10)).await;
        assert_eq!(sim.states_seen(FIBER), []);
        assert_eq!(sim.decision.active, FIBER);
        sim
    }

    #[tokio::test(start_paused = true)]
    async fn gateway_silent_is_down_within_gateway_down_after_and_fails_over() {
        let mut sim = settled(1).await;
        let limit = sim.config.health.gateway_down_after + sim.config.health.interval;
        sim.links[FIBER].gateway = false;
        let took = sim
            .run_until(limit, |s| s.state(FIBER) == State::Down)
            .await
            .expect("fiber down in time");
        // Silence counts from the last reply, up to one interval before the fault.
        assert!(took + sim.config.health.interval >= sim.config.health.gateway_down_after);
        assert_eq!(sim.decision.active, LTE, "switched in the same step");
        let down = sim.transitions.last().unwrap();
        assert!(
            down.cause.starts_with("gateway silent for 6"),
            "{}",
            down.cause
        );
        let keys: Vec<&str> = down.evidence.iter().map(|(k, _)| k.as_str()).collect();
        for key in [
            "carrier",
            "arp_last_reply",
            "icmp_last_reply",
            "far_targets_answered",
        ] {
            assert!(keys.contains(&key), "{key} in {keys:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn upstream_cut_behind_a_live_gateway_is_down_within_targets_down_after() {
        let mut sim = settled(2).await;
        let limit = sim.config.health.targets_down_after + sim.config.health.interval;
        sim.links[FIBER].upstream = false;
        let took = sim
            .run_until(limit, |s| s.state(FIBER) == State::Down)
            .await
            .expect("fiber down in time");
        assert!(took + sim.config.health.interval >= sim.config.health.targets_down_after);
        assert_eq!(sim.decision.active, LTE);
        let cause = &sim.transitions.last().unwrap().cause;
        assert!(cause.starts_with("far targets answered 0/3"), "{cause}");
        assert!(sim.health.suspects().is_empty(), "lte still reaches them");
    }

    #[tokio::test(start_paused = true)]
    async fn carrier_loss_is_down_at_once() {
        let mut sim = settled(3).await;
        sim.set_carrier(FIBER, false);
        assert_eq!(sim.state(FIBER), State::Down);
        assert_eq!(sim.decision.active, LTE);
        assert_eq!(sim.transitions.last().unwrap().cause, "carrier down");
    }

    #[tokio::test(start_paused = true)]
    async fn ten_percent_random_loss_for_a_minute_is_neither_down_nor_degraded() {
        let mut sim = settled(4).await;
        sim.links[FIBER].loss_percent = 10;
        sim.run_for(Duration::from_mins(1)).await;
        assert_eq!(sim.states_seen(FIBER), []);
        assert_eq!(sim.switches, []);
        let loss = sim
            .health
            .status(FIBER, Instant::now())
            .stats
            .loss_percent();
        assert!((4..=16).contains(&loss), "measured {loss}%");
    }

    /// 30 % loss sits at the degraded limit: fiber wavers between Up and Degraded (never
    /// Down), traffic moves to lte at the first Degraded and stays there, since fiber is never
    /// Up for `hold_down` in a row. With lte down it stays on the degraded fiber.
    #[tokio::test(start_paused = true)]
    async fn thirty_percent_loss_degrades_and_fails_over_only_to_an_up_backup() {
        let mut sim = settled(5).await;
        sim.links[FIBER].loss_percent = 30;
        sim.run_for(Duration::from_mins(1)).await;
        let seen = sim.states_seen(FIBER);
        assert!(seen.contains(&State::Degraded), "{seen:?}");
        assert!(!seen.contains(&State::Down), "{seen:?}");
        assert_eq!(sim.decision.active, LTE);
        assert_eq!(sim.switches.len(), 1, "{:?}", sim.switches);

        let mut sim = settled(6).await;
        sim.set_carrier(LTE, false);
        sim.links[FIBER].loss_percent = 30;
        sim.run_for(Duration::from_mins(1)).await;
        assert!(sim.states_seen(FIBER).contains(&State::Degraded));
        assert_eq!(sim.decision.active, FIBER);
        assert_eq!(sim.switches, []);
    }

    #[tokio::test(start_paused = true)]
    async fn a_target_dead_everywhere_is_suspect_not_the_uplinks() {
        let mut sim = settled(7).await;
        let dead = sim.health.targets(FIBER).next().unwrap().clone();
        sim.dead_targets.push(dead.clone());
        // Quorum of all three, so the dead target would take both uplinks down if counted.
        sim.run_for(Duration::from_secs(10)).await;
        assert_eq!(sim.states_seen(FIBER), []);
        assert_eq!(sim.states_seen(LTE), []);
        let suspects = sim.health.suspects();
        assert_eq!(suspects.len(), 1);
        assert_eq!(suspects[0].target, dead);
        assert!(
            suspects[0].reason.contains("fiber, lte"),
            "{}",
            suspects[0].reason
        );
        let status = sim.health.status(FIBER, Instant::now());
        assert_eq!((status.far_counted, status.quorum), (2, 2));

        sim.dead_targets.clear();
        sim.run_for(Duration::from_secs(2)).await;
        assert!(sim.health.suspects().is_empty(), "rejoins once it answers");
    }

    #[tokio::test(start_paused = true)]
    async fn with_a_quorum_of_all_a_suspect_target_does_not_take_uplinks_down() {
        let mut config = fiber_and_lte();
        config.health.quorum = Some(3);
        // Both probed at the full rate: a standby witness, probed once a second, learns of the
        // dead target too late to save a quorum of all (the default majority does not care).
        config.uplinks[LTE].metered = false;
        let mut sim = Sim::new(config, 8);
        sim.run_for(Duration::from_secs(5)).await;
        let dead = sim.health.targets(FIBER).nth(1).unwrap().clone();
        sim.dead_targets.push(dead);
        sim.run_for(Duration::from_secs(10)).await;
        assert_eq!(sim.states_seen(FIBER), []);
        assert_eq!(sim.states_seen(LTE), []);
        assert_eq!(sim.health.suspects().len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_metered_standby_uplink_is_probed_slowly_and_not_failed_for_it() {
        let mut sim = settled(9).await;
        let (interval, standby) = (
            sim.config.health.interval,
            sim.config.health.metered_standby_interval,
        );
        assert_eq!(sim.health.probe_interval(LTE, false), standby);
        assert_eq!(sim.health.probe_interval(LTE, true), interval);
        assert_eq!(sim.health.probe_interval(FIBER, false), interval);

        // lte carries nothing: 5 probes (3 far + ARP + ICMP) a second, and stays up even with
        // loss, though its probes are further apart than `gateway_down_after`.
        sim.links[LTE].loss_percent = 10;
        let before = sim.probes.clone();
        sim.run_for(Duration::from_mins(1)).await;
        assert_eq!(sim.probes[LTE] - before[LTE], 5 * 60);
        assert_eq!(sim.probes[FIBER] - before[FIBER], 5 * 600);
        assert_eq!(sim.states_seen(LTE), []);

        // A dead standby is still found, within the stretched limit (6 s at 1 s probes).
        sim.links[LTE].gateway = false;
        let took = sim
            .run_until(Duration::from_secs(8), |s| s.state(LTE) == State::Down)
            .await
            .expect("standby lte down");
        assert!(took >= Duration::from_secs(5), "{took:?}");
        sim.links[LTE].gateway = true;
        sim.run_for(Duration::from_secs(10)).await;
        assert_eq!(sim.state(LTE), State::Up);

        // Once it carries traffic it is probed at the full rate.
        sim.set_carrier(FIBER, false);
        let before = sim.probes[LTE];
        sim.run_for(Duration::from_secs(10)).await;
        // (The standby probe already scheduled still waits out its second.)
        assert!(
            sim.probes[LTE] - before >= 5 * 90,
            "{}",
            sim.probes[LTE] - before
        );
    }

    #[tokio::test(start_paused = true)]
    async fn start_up_counts_as_up_until_evidence_says_otherwise() {
        let mut sim = Sim::new(fiber_and_lte(), 10);
        assert_eq!(sim.health.states(), [State::Up, State::Up]);
        assert_eq!(sim.decision.active, FIBER);
        sim.links[FIBER].gateway = false;
        let took = sim
            .run_until(Duration::from_secs(1), |s| s.state(FIBER) == State::Down)
            .await;
        assert!(took.is_some_and(|t| t <= ms(700)), "{took:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn recovery_needs_up_after_without_a_gap() {
        let mut sim = settled(11).await;
        let up_after = sim.config.health.up_after;
        sim.links[FIBER].gateway = false;
        sim.run_for(Duration::from_secs(2)).await;
        assert_eq!(sim.state(FIBER), State::Down);

        // Heals for 1.5 s, silent again for a second (a gap), then heals for good.
        sim.links[FIBER].gateway = true;
        sim.run_for(ms(1500)).await;
        sim.links[FIBER].gateway = false;
        sim.run_for(Duration::from_secs(1)).await;
        assert_eq!(sim.state(FIBER), State::Down);
        sim.links[FIBER].gateway = true;
        let took = sim
            .run_until(Duration::from_secs(5), |s| s.state(FIBER) == State::Up)
            .await
            .expect("up again");
        assert!(took >= up_after && took <= up_after + ms(100), "{took:?}");
        assert_eq!(sim.transitions.last().unwrap().cause, "healthy for 2000 ms");
        assert_eq!(sim.states_seen(FIBER), [State::Down, State::Up]);
    }

    #[test]
    fn stats_give_loss_median_rtt_and_jitter() {
        let t = Instant::now();
        let mut gateway = Stream::new(t);
        let mut far = Stream::new(t);
        for rtt in [1, 1, 1] {
            gateway.record(t, Some(ms(rtt)), 50);
        }
        for rtt in [Some(10), None, Some(30), Some(20), None, Some(40)] {
            far.record(t, rtt.map(ms), 50);
        }
        let stats = stats(&[&gateway], &[&far]);
        assert_eq!((stats.samples, stats.lost), (9, 2));
        assert_eq!(stats.loss_percent(), 22);
        // RTTs from the far target only: 10, 20, 30, 40 (upper median).
        assert_eq!(stats.median_rtt, Some(ms(30)));
        // |30-10| + |20-30| + |40-20| over three steps.
        assert_eq!(stats.jitter, Some(ms(50) / 3));
    }

    #[test]
    fn windows_keep_the_last_samples_and_losses_are_silence_only_after_the_last_reply() {
        let t = Instant::now();
        let mut s = Stream::new(t);
        for i in 0..60 {
            s.record(t + ms(i), Some(ms(1)), 50);
        }
        assert_eq!(s.window.len(), 50);
        assert_eq!(
            s.silence(t + ms(1000)),
            None,
            "no loss reported: not silent"
        );
        s.record(t + ms(70), None, 50);
        assert_eq!(s.silence(t + ms(1000)), Some(ms(1000 - 60)));
    }

    #[test]
    fn each_probe_stream_reports_its_own_loss_rtt_and_totals() {
        let config = fiber_and_lte();
        let start = Instant::now();
        let mut health = super::Health::new(&config.health, &config.uplinks, start);
        let target: crate::config::Target = "icmp:1.1.1.1".parse().unwrap();
        for (i, rtt) in [Some(10), None, Some(30), None].into_iter().enumerate() {
            health.record(&Sample {
                uplink: FIBER,
                probe: ProbeKind::Far(target.clone()),
                sent: start + ms(100) * u32::try_from(i).unwrap(),
                rtt: rtt.map(ms),
            });
        }
        let now = start + ms(1000);
        let probes = health.probes(FIBER, now);
        let kinds: Vec<String> = probes.iter().map(|p| format!("{:?}", p.probe)).collect();
        assert_eq!(
            probes.len(),
            2 + 3,
            "arp, icmp and the three default targets: {kinds:?}"
        );
        let arp = &probes[0];
        assert_eq!(arp.probe, ProbeKind::GatewayArp);
        assert_eq!(
            (arp.last_reply_age, arp.replies),
            (None, 0),
            "start-up is no reply here"
        );
        let far = probes
            .iter()
            .find(|p| p.probe == ProbeKind::Far(target.clone()))
            .unwrap();
        assert_eq!((far.replies, far.losses), (2, 2));
        assert_eq!((far.stats.samples, far.stats.lost), (4, 2));
        assert_eq!(far.stats.median_rtt, Some(ms(30)));
        // The last reply: sent at 200 ms, answered 30 ms later.
        assert_eq!(far.last_reply_age, Some(ms(1000 - 230)));
    }

    #[test]
    fn samples_for_unknown_uplinks_or_targets_are_ignored() {
        let config = fiber_and_lte();
        let now = Instant::now();
        let mut health = super::Health::new(&config.health, &config.uplinks, now);
        let target = "icmp:192.0.2.1".parse().unwrap();
        for (uplink, probe) in [(7, ProbeKind::GatewayArp), (0, ProbeKind::Far(target))] {
            health.record(&Sample {
                uplink,
                probe,
                sent: now,
                rtt: None,
            });
        }
        assert_eq!(health.status(0, now + STEP).stats.samples, 0);
    }
}
