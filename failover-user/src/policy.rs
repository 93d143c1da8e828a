//! Which uplink carries new flows, from the uplinks' health states.
//!
//! Strict priority with asymmetric hysteresis: fail over at once when the active uplink is
//! `Down` (or `Degraded` while another is `Up`); fail back to a preferred uplink only once it
//! has been `Up` without a break for `hold_down` and is not suppressed by flap damping.
//!
//! # Bound on switches
//!
//! With a backup that stays up, every failback needs the preferred uplink `Up` for
//! `hold_down` after the failure that preceded it, so failbacks are more than `hold_down`
//! apart and a failover lies between two of them: at most [`max_switches_per_minute`]
//! `= 2 × ⌈60 s / hold_down⌉` switches in any minute, **4 with the defaults**, whatever the
//! flapping pattern. Flap damping then ends even that: each failure adds `flap_penalty`
//! (1000), halving every `flap_half_life` (60 s); above `flap_suppress` (2500, the 4th failure
//! at 30 s spacing) the uplink is not failed back to until the penalty is below `flap_reuse`
//! (750).
//!
//! A primary flapping every 2 s (down 1 s, up 1 s) is never up for `hold_down`, so it causes
//! **one switch** (the failover) however long it flaps. (In practice health's `up_after` of
//! 2 s already keeps it `Down` throughout.) If its states did flap, its penalty would near
//! `flap_penalty / (1 − 2^(−2 s / flap_half_life))` ≈ 43 800 and hold it off for
//! `flap_half_life × log2(43 800 / flap_reuse)` ≈ 352 s after the flapping stops
//! ([`Damping::suppressed_for`]).

use std::time::Duration;

use tokio::time::Instant;

use crate::{
    config::{FailbackMode, HealthConfig, UplinkConfig},
    health::State,
};

/// What the data plane should do now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// The uplink for new flows (and the one the data plane falls back to).
    pub active: usize,
    /// New flows shared among `Up` uplinks of the active one's priority, by weight; just the
    /// active uplink when it has no equal.
    pub balance: Vec<(usize, u32)>,
    /// Uplinks whose remaining flows should be moved now: failed back from, with
    /// `failback = "move"`, `drain` ago. Reported once.
    pub move_flows_from: Vec<usize>,
    /// The active uplink was forced by the operator.
    pub forced: bool,
    /// A timed override ran out at this decision (the controller deletes the saved one).
    pub override_expired: bool,
}

/// An operator's `switch`: `uplink` regardless of health, until `until` or `auto`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Override {
    pub uplink: usize,
    pub until: Option<Instant>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PolicyError {
    #[error("no uplink named `{0}`")]
    UnknownUplink(String),
}

/// Route-flap damping for one uplink (as BGP does it, RFC 2439).
#[derive(Clone, Copy, Debug)]
pub struct Damping {
    penalty: f64,
    at: Instant,
    suppressed: bool,
}

impl Damping {
    fn new(now: Instant) -> Self {
        Self {
            penalty: 0.0,
            at: now,
            suppressed: false,
        }
    }

    /// The penalty decayed to `now`.
    #[must_use]
    pub fn penalty(&self, now: Instant, config: &HealthConfig) -> f64 {
        let half_lives = now.duration_since(self.at).as_secs_f64()
            / config.flap_half_life.as_secs_f64().max(f64::MIN_POSITIVE);
        self.penalty * 0.5_f64.powf(half_lives)
    }

    fn fail(&mut self, now: Instant, config: &HealthConfig) {
        self.penalty = self.penalty(now, config) + f64::from(config.flap_penalty);
        self.at = now;
    }

    fn refresh(&mut self, now: Instant, config: &HealthConfig) {
        let penalty = self.penalty(now, config);
        if penalty > f64::from(config.flap_suppress) {
            self.suppressed = true;
        } else if penalty < f64::from(config.flap_reuse) {
            self.suppressed = false;
        }
    }

    /// How long a `penalty` takes to decay below `flap_reuse`.
    #[must_use]
    pub fn suppressed_for(penalty: f64, config: &HealthConfig) -> Duration {
        let half_lives = (penalty / f64::from(config.flap_reuse)).log2().max(0.0);
        config.flap_half_life.mul_f64(half_lives)
    }
}

/// Most switches in any minute while one uplink flaps and a backup stays up (module doc).
#[must_use]
pub fn max_switches_per_minute(config: &HealthConfig) -> u32 {
    let minute = Duration::from_mins(1).as_nanos();
    let hold = config.hold_down.as_nanos().max(1);
    u32::try_from(minute.div_ceil(hold) * 2).unwrap_or(u32::MAX)
}

#[derive(Debug)]
struct Member {
    name: String,
    priority: u32,
    weight: u32,
    failback: FailbackMode,
    drain: Duration,
    state: State,
    /// Since when the uplink has been `Up` without a break.
    up_since: Option<Instant>,
    /// Counted as held up since before start (a fresh start, nothing to hold down); cleared
    /// when the uplink leaves `Up`, and by [`Policy::adopt`] for uplinks it must hold down.
    held_at_start: bool,
    damping: Damping,
}

/// The uplink choice, with its memory (hysteresis, damping, override, draining).
#[derive(Debug)]
pub struct Policy {
    config: HealthConfig,
    members: Vec<Member>,
    active: Option<usize>,
    forced: Option<Override>,
    /// Uplinks failed back from with `failback = "move"`, and when.
    draining: Vec<(usize, Instant)>,
    /// Changes of the active uplink since start (the first choice is none).
    switches: u64,
}

impl Policy {
    /// Every uplink starts `Up` (as health does) and counts as held up since before start, so
    /// the best uplink is chosen and balanced at once after a restart.
    #[must_use]
    pub fn new(config: &HealthConfig, uplinks: &[UplinkConfig], start: Instant) -> Self {
        let members = uplinks
            .iter()
            .enumerate()
            .map(|(index, u)| Member {
                name: u.name.clone(),
                priority: u.priority_or_position(index),
                weight: u.weight,
                failback: u.failback,
                drain: u.drain,
                state: State::Up,
                up_since: Some(start),
                held_at_start: true,
                damping: Damping::new(start),
            })
            .collect();
        Self {
            config: config.clone(),
            members,
            active: None,
            forced: None,
            draining: Vec::new(),
            switches: 0,
        }
    }

    #[must_use]
    pub fn uplink(&self, name: &str) -> Option<usize> {
        self.members.iter().position(|m| m.name == name)
    }

    /// Takes over the decisions of a data plane left running by an earlier controller:
    /// `active` carries new flows, and every uplink preferred to it serves a whole hold-down
    /// from `now` (its health as seeded in `states`) before it is failed back to — the
    /// earlier controller's hold-down or outage is not known, so it is assumed just begun.
    /// Unless an operator's override explains `active`, a backup with `failback = "move"`
    /// drains from `now`: flows it still carries are moved after its `drain`.
    pub fn adopt(&mut self, active: usize, states: &[State], now: Instant) {
        assert_eq!(states.len(), self.members.len(), "one state per uplink");
        let priority = self.members[active].priority;
        let forced = self.forced.is_some();
        self.draining.clear();
        for (index, (member, &state)) in self.members.iter_mut().zip(states).enumerate() {
            member.state = state;
            member.up_since = (state == State::Up).then_some(now);
            if member.priority < priority && !forced {
                member.held_at_start = false;
            }
            if member.priority > priority && member.failback == FailbackMode::Move && !forced {
                self.draining.push((index, now));
            }
        }
        self.active = Some(active);
    }

    /// Forces `name` until `until` (or [`Policy::auto`]).
    pub fn switch(&mut self, name: &str, until: Option<Instant>) -> Result<usize, PolicyError> {
        let uplink = self
            .uplink(name)
            .ok_or_else(|| PolicyError::UnknownUplink(name.to_owned()))?;
        self.forced = Some(Override { uplink, until });
        Ok(uplink)
    }

    /// Back to choosing by health.
    pub fn auto(&mut self) {
        self.forced = None;
    }

    #[must_use]
    pub fn forced(&self) -> Option<Override> {
        self.forced
    }

    /// How often the active uplink changed since start, for the metrics.
    #[must_use]
    pub fn switches(&self) -> u64 {
        self.switches
    }

    #[must_use]
    pub fn damping(&self, uplink: usize) -> Damping {
        self.members[uplink].damping
    }

    #[must_use]
    pub fn suppressed(&self, uplink: usize) -> bool {
        self.members[uplink].damping.suppressed
    }

    /// Takes the uplinks' current states (indexed as in the config) and decides.
    pub fn decide(&mut self, states: &[State], now: Instant) -> Decision {
        assert_eq!(states.len(), self.members.len(), "one state per uplink");
        for (member, &state) in self.members.iter_mut().zip(states) {
            if state == State::Down && member.state != State::Down {
                member.damping.fail(now, &self.config);
            }
            member.damping.refresh(now, &self.config);
            member.up_since = (state == State::Up).then(|| member.up_since.unwrap_or(now));
            member.held_at_start &= state == State::Up;
            member.state = state;
        }
        let override_expired = self
            .forced
            .is_some_and(|o| o.until.is_some_and(|until| now >= until));
        if override_expired {
            self.forced = None;
        }
        let previous = self.active;
        let (active, failback) = match self.forced {
            Some(o) => (o.uplink, false),
            None => self.choose(now),
        };
        self.active = Some(active);
        if previous.is_some_and(|p| p != active) {
            self.switches += 1;
        }
        self.draining.retain(|&(u, _)| u != active);
        if let (true, Some(from)) = (failback, previous)
            && self.members[from].failback == FailbackMode::Move
        {
            self.draining.push((from, now));
        }
        let members = &self.members;
        let mut move_flows_from = Vec::new();
        self.draining.retain(|&(u, at)| {
            let due = now.duration_since(at) >= members[u].drain;
            if due {
                move_flows_from.push(u);
            }
            !due
        });
        Decision {
            active,
            balance: self.balance(active, now),
            move_flows_from,
            forced: self.forced.is_some(),
            override_expired,
        }
    }

    /// The uplink to use, and whether moving to it is a failback.
    fn choose(&self, now: Instant) -> (usize, bool) {
        let best = || {
            (0..self.members.len())
                .min_by_key(|&i| {
                    let m = &self.members[i];
                    (m.state, m.damping.suppressed, m.priority, i)
                })
                .expect("at least one uplink")
        };
        let Some(current) = self.active else {
            return (best(), false);
        };
        let state = self.members[current].state;
        let another_up = self.members.iter().any(|m| m.state == State::Up);
        if state == State::Down || (state == State::Degraded && another_up) {
            let best = best();
            let better = self.members[best].state < state;
            return (if better { best } else { current }, false);
        }
        let priority = self.members[current].priority;
        (0..self.members.len())
            .filter(|&i| self.members[i].priority < priority && self.held(i, now))
            .min_by_key(|&i| (self.members[i].priority, i))
            .map_or((current, false), |preferred| (preferred, true))
    }

    /// Healthy for `hold_down` (or up since start) and not suppressed: fit to fail back to.
    /// Health only calls an uplink `Up` after `up_after` of healthy probes, so that much of
    /// the hold-down has passed when it does: failback comes `hold_down` after healing.
    fn held(&self, uplink: usize, now: Instant) -> bool {
        let m = &self.members[uplink];
        let still = self.config.hold_down.saturating_sub(self.config.up_after);
        !m.damping.suppressed
            && m.up_since
                .is_some_and(|since| m.held_at_start || now.duration_since(since) >= still)
    }

    fn balance(&self, active: usize, now: Instant) -> Vec<(usize, u32)> {
        let lead = &self.members[active];
        if self.forced.is_some() || lead.state != State::Up {
            return vec![(active, lead.weight)];
        }
        (0..self.members.len())
            .filter(|&i| {
                i == active || (self.members[i].priority == lead.priority && self.held(i, now))
            })
            .map(|i| (i, self.members[i].weight))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::time::{Instant, advance};

    use super::{Damping, Policy, PolicyError, max_switches_per_minute};
    use crate::{
        config::{self, Config, HealthConfig},
        health::State::{self, Degraded, Down, Up},
        sim::{STEP, Sim, fiber_and_lte},
    };

    const FIBER: usize = 0;
    const LTE: usize = 1;

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    fn policy_for(config: &Config) -> Policy {
        Policy::new(&config.health, &config.uplinks, Instant::now())
    }

    /// Feeds `states(t)` every `step` for `duration`; returns the switch times.
    async fn drive(
        policy: &mut Policy,
        duration: Duration,
        step: Duration,
        mut states: impl FnMut(Duration) -> Vec<State>,
    ) -> Vec<(Duration, usize)> {
        let start = Instant::now();
        let mut active = policy.decide(&states(Duration::ZERO), start).active;
        let mut switches = Vec::new();
        while start.elapsed() < duration {
            advance(step).await;
            let decision = policy.decide(&states(start.elapsed()), Instant::now());
            if decision.active != active {
                active = decision.active;
                switches.push((start.elapsed(), active));
            }
        }
        switches
    }

    fn most_in_a_minute(switches: &[(Duration, usize)]) -> usize {
        switches
            .iter()
            .map(|&(t, _)| {
                switches
                    .iter()
                    .filter(|&&(u, _)| u >= t && u < t + secs(60))
                    .count()
            })
            .max()
            .unwrap_or(0)
    }

    #[tokio::test(start_paused = true)]
    async fn fails_back_after_hold_down_and_not_before() {
        let mut sim = Sim::new(fiber_and_lte(), 21);
        let h = sim.config.health.clone();
        sim.run_for(secs(5)).await;
        sim.links[FIBER].gateway = false;
        sim.run_for(secs(5)).await;
        assert_eq!(sim.decision.active, LTE);

        sim.links[FIBER].gateway = true;
        let took = sim
            .run_until(h.hold_down + secs(2), |s| s.decision.active == FIBER)
            .await
            .expect("fails back");
        assert!(took >= h.hold_down, "{took:?}");
        assert!(took <= h.hold_down + secs(1), "{took:?}");
        assert_eq!(sim.switches.len(), 2);
        assert_eq!(sim.policy.switches(), 2, "the failover and the failback");
    }

    /// The documented bound, computed: at most 4 switches a minute with the defaults, and a
    /// primary flapping every 2 s makes one.
    #[test]
    fn the_switch_bound_follows_from_hold_down() {
        let defaults = HealthConfig::default();
        assert_eq!(max_switches_per_minute(&defaults), 4);
        let quick = HealthConfig {
            hold_down: secs(7),
            ..defaults
        };
        assert_eq!(max_switches_per_minute(&quick), 18);
    }

    #[tokio::test(start_paused = true)]
    async fn a_primary_flapping_every_2s_for_5_minutes_switches_once() {
        let mut sim = Sim::new(fiber_and_lte(), 22);
        let h = sim.config.health.clone();
        sim.run_for(secs(5)).await;
        let start = Instant::now();
        for second in 0..300 {
            // Silent in odd seconds, so also in the last one.
            sim.links[FIBER].gateway = second % 2 == 0;
            sim.run_for(secs(1)).await;
        }
        let switches: Vec<(Duration, usize)> = sim
            .switches
            .iter()
            .map(|&(at, _, to)| (at - start, to))
            .collect();
        assert!(most_in_a_minute(&switches) <= max_switches_per_minute(&h) as usize);
        assert_eq!(switches.len(), 1, "{switches:?}");
        // Health's `up_after` alone kept fiber down for the whole storm.
        assert_eq!(sim.states_seen(FIBER), [Down]);

        sim.links[FIBER].gateway = true;
        let took = sim
            .run_until(secs(60), |s| s.decision.active == FIBER)
            .await
            .expect("fails back after the storm");
        assert!(
            took >= h.hold_down && took <= h.hold_down + secs(1),
            "{took:?}"
        );
    }

    /// If the states themselves flapped (no `up_after`), damping holds the primary off for as
    /// long as the module doc computes.
    #[tokio::test(start_paused = true)]
    async fn flapping_states_are_suppressed_for_the_computed_time() {
        let config = fiber_and_lte();
        let h = &config.health;
        let mut policy = policy_for(&config);
        let flap = |t: Duration| {
            let up = t >= secs(300) || (t.as_millis() / 1000).is_multiple_of(2);
            vec![if up { Up } else { Down }, Up]
        };
        let switches = drive(&mut policy, secs(300), STEP * 10, flap).await;
        assert_eq!(switches, [(secs(1), LTE)]);

        // 150 failures, 2 s apart, the last one at 299 s.
        let penalty: f64 = (0..150)
            .map(|k| f64::from(h.flap_penalty) * 0.5_f64.powf(f64::from(2 * k) / 60.0))
            .sum();
        let now = Instant::now();
        let measured = policy.damping(FIBER).penalty(now, h);
        let expected = penalty * 0.5_f64.powf(1.0 / 60.0);
        assert!(
            (measured - expected).abs() < 1.0,
            "{measured} vs {expected}"
        );
        let hold_off = Damping::suppressed_for(penalty, h);
        assert!(hold_off > secs(340) && hold_off < secs(360), "{hold_off:?}");

        let switches = drive(&mut policy, secs(400), STEP * 10, |_| vec![Up, Up]).await;
        let back = switches.first().expect("fails back").0 + secs(300);
        let due = secs(299) + hold_off;
        assert!(back >= due && back <= due + secs(1), "{back:?} vs {due:?}");
    }

    /// The worst pattern for the bound: up just past `hold_down`, then down for a moment.
    #[tokio::test(start_paused = true)]
    async fn the_worst_flapping_pattern_stays_within_the_bound_and_is_then_damped() {
        let config = fiber_and_lte();
        let cycle = config.health.hold_down + secs(1);
        let mut policy = policy_for(&config);
        let switches = drive(&mut policy, secs(600), STEP * 10, |t| {
            let down = t.as_millis() % cycle.as_millis() < 100 && t >= cycle;
            vec![if down { Down } else { Up }, Up]
        })
        .await;
        let most = most_in_a_minute(&switches);
        assert!(most <= max_switches_per_minute(&config.health) as usize);
        assert_eq!(most, 4, "the bound is tight: {switches:?}");
        // The 4th failure (at 31 s spacing) passes `flap_suppress`: stuck on lte from there on.
        assert_eq!(switches.len(), 7, "{switches:?}");
        assert_eq!(switches.last().unwrap().1, LTE);
        assert!(policy.suppressed(FIBER));
    }

    #[tokio::test(start_paused = true)]
    async fn degraded_fails_over_only_to_an_up_uplink() {
        let mut policy = policy_for(&fiber_and_lte());
        let now = Instant::now();
        assert_eq!(policy.decide(&[Up, Up], now).active, FIBER);
        assert_eq!(policy.decide(&[Degraded, Degraded], now).active, FIBER);
        assert_eq!(policy.decide(&[Degraded, Down], now).active, FIBER);
        assert_eq!(policy.decide(&[Degraded, Up], now).active, LTE);
        // Back to Up, but not for `hold_down` yet.
        assert_eq!(policy.decide(&[Up, Up], now + secs(1)).active, LTE);
        assert_eq!(policy.decide(&[Up, Up], now + secs(31)).active, FIBER);
        assert_eq!(policy.decide(&[Down, Down], now + secs(32)).active, FIBER);
    }

    #[tokio::test(start_paused = true)]
    async fn an_override_forces_expires_and_names_a_real_uplink() {
        let mut policy = policy_for(&fiber_and_lte());
        let now = Instant::now();
        assert_eq!(
            policy.switch("dsl", None),
            Err(PolicyError::UnknownUplink("dsl".to_owned()))
        );
        assert_eq!(policy.switch("lte", Some(now + secs(60))), Ok(LTE));
        let forced = policy.decide(&[Up, Up], now);
        assert_eq!((forced.active, forced.forced), (LTE, true));
        assert_eq!(forced.balance, [(LTE, 1)]);
        // Regardless of health.
        assert_eq!(policy.decide(&[Up, Down], now + secs(10)).active, LTE);
        let expired = policy.decide(&[Up, Up], now + secs(60));
        assert_eq!((expired.active, expired.forced), (FIBER, false));
        assert!(expired.override_expired);
        assert!(!policy.decide(&[Up, Up], now + secs(61)).override_expired);

        policy.switch("fiber", None).unwrap();
        assert_eq!(policy.decide(&[Down, Up], now + secs(62)).active, FIBER);
        policy.auto();
        assert_eq!(policy.decide(&[Down, Up], now + secs(63)).active, LTE);
    }

    #[tokio::test(start_paused = true)]
    async fn equal_priorities_share_new_flows_by_weight() {
        let config = config::parse(
            r#"
            lan = ["lan0"]
            [[uplink]]
            name = "a"
            interface = "eth1"
            priority = 1
            weight = 3
            [[uplink]]
            name = "b"
            interface = "eth2"
            priority = 1
            [[uplink]]
            name = "c"
            interface = "wwan0"
            "#,
            "test",
        )
        .unwrap();
        let mut policy = policy_for(&config);
        let now = Instant::now();
        assert_eq!(policy.decide(&[Up, Up, Up], now).balance, [(0, 3), (1, 1)]);
        assert_eq!(policy.decide(&[Up, Down, Up], now).balance, [(0, 3)]);
        // b rejoins only after `hold_down`, like a failback.
        assert_eq!(
            policy.decide(&[Up, Up, Up], now + secs(1)).balance,
            [(0, 3)]
        );
        assert_eq!(
            policy.decide(&[Up, Up, Up], now + secs(31)).balance,
            [(0, 3), (1, 1)]
        );
        let decision = policy.decide(&[Down, Up, Up], now + secs(32));
        assert_eq!((decision.active, decision.balance), (1, vec![(1, 1)]));
        let decision = policy.decide(&[Down, Down, Up], now + secs(33));
        assert_eq!((decision.active, decision.balance), (2, vec![(2, 1)]));
    }

    #[tokio::test(start_paused = true)]
    async fn failback_moves_flows_off_a_move_uplink_after_drain_once() {
        let mut config = fiber_and_lte();
        config.uplinks[LTE].failback = config::FailbackMode::Move;
        config.uplinks[LTE].drain = secs(10);
        for (mode, expected) in [
            (config::FailbackMode::Move, vec![LTE]),
            (config::FailbackMode::Keep, vec![]),
        ] {
            config.uplinks[LTE].failback = mode;
            let mut policy = policy_for(&config);
            let now = Instant::now();
            policy.decide(&[Down, Up], now);
            assert_eq!(policy.decide(&[Up, Up], now + secs(1)).active, LTE);
            let t = now + secs(1) + config.health.hold_down;
            assert_eq!(policy.decide(&[Up, Up], t).active, FIBER);
            assert!(
                policy
                    .decide(&[Up, Up], t + secs(9))
                    .move_flows_from
                    .is_empty()
            );
            assert_eq!(
                policy.decide(&[Up, Up], t + secs(10)).move_flows_from,
                expected
            );
            assert!(
                policy
                    .decide(&[Up, Up], t + secs(11))
                    .move_flows_from
                    .is_empty()
            );
        }
    }

    /// Restarts (the daemon adopting its own data plane) during an outage, a hold-down, an
    /// override and a drain: the hold-down is served after the heal, never skipped.
    #[tokio::test(start_paused = true)]
    async fn a_restart_during_an_outage_fails_back_only_after_the_hold_down() {
        let mut sim = Sim::new(fiber_and_lte(), 31);
        let h = sim.config.health.clone();
        sim.run_for(secs(5)).await;
        sim.links[FIBER].gateway = false;
        sim.run_for(secs(5)).await;
        assert_eq!(sim.decision.active, LTE);
        sim.restart();
        assert_eq!(sim.state(FIBER), Down, "taken out before: starts down");
        sim.run_for(secs(5)).await;
        assert_eq!(
            sim.decision.active, LTE,
            "no failback while fiber is still dead"
        );
        sim.links[FIBER].gateway = true;
        let took = sim
            .run_until(h.hold_down + secs(5), |s| s.decision.active == FIBER)
            .await
            .expect("fails back");
        assert!(took >= h.hold_down, "failback {took:?} after the heal");
        assert!(took <= h.hold_down + secs(1), "{took:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_restart_during_a_hold_down_restarts_it() {
        let mut sim = Sim::new(fiber_and_lte(), 32);
        let h = sim.config.health.clone();
        sim.run_for(secs(5)).await;
        sim.links[FIBER].gateway = false;
        sim.run_for(secs(5)).await;
        sim.links[FIBER].gateway = true;
        sim.run_for(secs(10)).await;
        assert_eq!(sim.state(FIBER), Up);
        assert_eq!(sim.decision.active, LTE, "in the hold-down");
        sim.restart();
        let took = sim
            .run_until(h.hold_down + secs(5), |s| s.decision.active == FIBER)
            .await
            .expect("fails back");
        assert!(
            took >= h.hold_down.saturating_sub(h.up_after),
            "a restart must not cut the hold-down short: {took:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_restart_keeps_an_override_and_auto_returns_at_once() {
        let mut sim = Sim::new(fiber_and_lte(), 33);
        sim.run_for(secs(5)).await;
        sim.policy.switch("lte", None).expect("lte exists");
        sim.run_for(secs(1)).await;
        assert_eq!(sim.decision.active, LTE);
        sim.restart();
        sim.run_for(secs(5)).await;
        assert_eq!(sim.decision.active, LTE, "the override survives");
        sim.policy.auto();
        let took = sim
            .run_until(secs(2), |s| s.decision.active == FIBER)
            .await
            .expect("fiber was healthy throughout");
        assert!(took <= secs(1), "{took:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_restart_during_a_drain_still_moves_the_flows() {
        let mut config = fiber_and_lte();
        config.uplinks[LTE].failback = config::FailbackMode::Move;
        config.uplinks[LTE].drain = secs(20);
        let mut sim = Sim::new(config, 34);
        let h = sim.config.health.clone();
        sim.run_for(secs(5)).await;
        sim.links[FIBER].gateway = false;
        sim.run_for(secs(5)).await;
        sim.links[FIBER].gateway = true;
        sim.run_until(h.hold_down + secs(5), |s| s.decision.active == FIBER)
            .await
            .expect("fails back");
        sim.run_for(secs(5)).await;
        assert!(sim.moved.is_empty(), "still draining");
        sim.restart();
        let restarted = Instant::now();
        sim.run_until(secs(25), |s| !s.moved.is_empty())
            .await
            .expect("the drain ends after the restart too");
        let (at, uplink) = sim.moved[0];
        assert_eq!(uplink, LTE);
        assert!(
            at.duration_since(restarted) >= secs(20),
            "a whole drain after the restart"
        );
        assert_eq!(sim.decision.active, FIBER);
    }
}
