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
    damping: Damping,
}

/// The uplink choice, with its memory (hysteresis, damping, override, draining).
#[derive(Debug)]
pub struct Policy {
    config: HealthConfig,
    members: Vec<Member>,
    started: Instant,
    active: Option<usize>,
    forced: Option<Override>,
    /// Uplinks failed back from with `failback = "move"`, and when.
    draining: Vec<(usize, Instant)>,
}

impl Policy {
    /// Every uplink starts `Up` (as health does) and counts as held up since before start, so
    /// the best uplink is chosen and balanced at once after a restart.
    #[must_use]
    pub fn new(config: &HealthConfig, uplinks: &[UplinkConfig], start: Instant) -> Self {
        let members = uplinks
            .iter()
            .zip(1..)
            .map(|(u, position)| Member {
                name: u.name.clone(),
                priority: u.priority.unwrap_or(position),
                weight: u.weight,
                failback: u.failback,
                drain: u.drain,
                state: State::Up,
                up_since: Some(start),
                damping: Damping::new(start),
            })
            .collect();
        Self {
            config: config.clone(),
            members,
            started: start,
            active: None,
            forced: None,
            draining: Vec::new(),
        }
    }

    #[must_use]
    pub fn uplink(&self, name: &str) -> Option<usize> {
        self.members.iter().position(|m| m.name == name)
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

    /// `Up` for `hold_down` (or since start) and not suppressed: fit to fail back to.
    fn held(&self, uplink: usize, now: Instant) -> bool {
        let m = &self.members[uplink];
        !m.damping.suppressed
            && m.up_since.is_some_and(|since| {
                since == self.started || now.duration_since(since) >= self.config.hold_down
            })
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
