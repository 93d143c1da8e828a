//! A simulated network for the health and policy tests, on tokio's paused clock: it probes
//! every uplink as the prober would (each `probe_interval`, through the uplink, answered after
//! an RTT or reported lost after `timeout`), feeds health and policy, and records what they did.

use std::time::Duration;

use tokio::time::{Instant, advance};

use crate::{
    config::{self, Config, Target},
    health::{Health, Sample, State, Transition},
    policy::{Decision, Policy},
    probe::ProbeKind,
};

/// The simulation's time step (finer than the probe interval, so detection times are exact
/// to 10 ms).
pub const STEP: Duration = Duration::from_millis(10);

/// xorshift64: deterministic "random" loss without a crate.
pub struct XorShift(u64);

impl XorShift {
    pub fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// True with probability `percent` / 100.
    pub fn chance(&mut self, percent: u32) -> bool {
        self.next() % 100 < u64::from(percent)
    }
}

/// What one uplink's network does with probes.
#[derive(Clone, Debug)]
pub struct Link {
    pub carrier: bool,
    /// The ISP gateway answers (and forwards).
    pub gateway: bool,
    /// Traffic gets past the gateway.
    pub upstream: bool,
    /// Random loss per probe.
    pub loss_percent: u32,
    pub gateway_rtt: Duration,
    pub far_rtt: Duration,
}

impl Default for Link {
    fn default() -> Self {
        Self {
            carrier: true,
            gateway: true,
            upstream: true,
            loss_percent: 0,
            gateway_rtt: Duration::from_millis(2),
            far_rtt: Duration::from_millis(20),
        }
    }
}

/// Fiber (primary) and a metered 4G backup, with the default health settings.
pub fn fiber_and_lte() -> Config {
    config::parse(
        r#"
        lan = ["lan0"]
        [[uplink]]
        name = "fiber"
        interface = "eth1"
        [[uplink]]
        name = "lte"
        interface = "wwan0"
        metered = true
        "#,
        "test",
    )
    .expect("test config parses")
}

pub struct Sim {
    pub config: Config,
    pub health: Health,
    pub policy: Policy,
    pub links: Vec<Link>,
    /// Far targets that answer nobody.
    pub dead_targets: Vec<Target>,
    pub decision: Decision,
    pub transitions: Vec<Transition>,
    /// (when, from, to) of every change of the active uplink.
    pub switches: Vec<(Instant, usize, usize)>,
    /// (when, uplink) of every `move_flows_from`.
    pub moved: Vec<(Instant, usize)>,
    /// Probes sent per uplink.
    pub probes: Vec<usize>,
    in_flight: Vec<(Instant, Sample)>,
    next_probe: Vec<Instant>,
    rng: XorShift,
}

impl Sim {
    pub fn new(config: Config, seed: u64) -> Self {
        let now = Instant::now();
        let health = Health::new(&config.health, &config.uplinks, now);
        let mut policy = Policy::new(&config.health, &config.uplinks, now);
        let decision = policy.decide(&health.states(), now);
        let n = config.uplinks.len();
        Self {
            config,
            health,
            policy,
            links: vec![Link::default(); n],
            dead_targets: Vec::new(),
            decision,
            transitions: Vec::new(),
            switches: Vec::new(),
            moved: Vec::new(),
            probes: vec![0; n],
            in_flight: Vec::new(),
            next_probe: vec![now; n],
            rng: XorShift::new(seed),
        }
    }

    /// A controller restart that adopts the running data plane, in the daemon's order: fresh
    /// health and policy (an operator's override survives, as the daemon restores it), a first
    /// decision, uplinks the data plane had taken out (health `Down`) seeded down, then the
    /// data plane's active uplink adopted. Probes in flight die with the old process.
    pub fn restart(&mut self) {
        let now = Instant::now();
        let forced = self
            .policy
            .forced()
            .map(|o| (self.config.uplinks[o.uplink].name.clone(), o.until));
        let taken_out: Vec<bool> = self
            .health
            .states()
            .iter()
            .map(|&s| s == State::Down)
            .collect();
        self.health = Health::new(&self.config.health, &self.config.uplinks, now);
        self.policy = Policy::new(&self.config.health, &self.config.uplinks, now);
        if let Some((name, until)) = forced {
            self.policy
                .switch(&name, until)
                .expect("the override names an uplink");
        }
        self.policy.decide(&self.health.states(), now);
        for (uplink, _) in taken_out.iter().enumerate().filter(|(_, out)| **out) {
            self.health
                .seed_down(uplink, "not usable in the adopted data plane", now);
        }
        self.policy
            .adopt(self.decision.active, &self.health.states(), now);
        self.in_flight.clear();
        self.next_probe.fill(now);
    }

    /// A carrier change, reported at once as netlink would.
    pub fn set_carrier(&mut self, uplink: usize, up: bool) {
        let now = Instant::now();
        self.links[uplink].carrier = up;
        self.transitions
            .extend(self.health.carrier(uplink, up, now));
        self.decide(now);
    }

    pub async fn run_for(&mut self, duration: Duration) {
        let end = Instant::now() + duration;
        while Instant::now() < end {
            self.step().await;
        }
    }

    /// Runs until `done` holds (checked after every step) or `limit` passes; returns how long
    /// it took.
    pub async fn run_until(
        &mut self,
        limit: Duration,
        mut done: impl FnMut(&Self) -> bool,
    ) -> Option<Duration> {
        let start = Instant::now();
        while start.elapsed() < limit {
            self.step().await;
            if done(self) {
                return Some(start.elapsed());
            }
        }
        None
    }

    pub fn state(&self, uplink: usize) -> State {
        self.health.state(uplink)
    }

    /// Every state `uplink` passed through since the simulation started.
    pub fn states_seen(&self, uplink: usize) -> Vec<State> {
        self.transitions
            .iter()
            .filter(|t| t.uplink == uplink)
            .map(|t| t.to)
            .collect()
    }

    async fn step(&mut self) {
        advance(STEP).await;
        let now = Instant::now();
        let (due, pending) = std::mem::take(&mut self.in_flight)
            .into_iter()
            .partition(|(at, _)| *at <= now);
        self.in_flight = pending;
        for (_, sample) in due {
            self.health.record(&sample);
        }
        for uplink in 0..self.links.len() {
            if now >= self.next_probe[uplink] {
                self.probe(uplink, now);
                let active = self.decision.balance.iter().any(|&(u, _)| u == uplink);
                self.next_probe[uplink] = now + self.health.probe_interval(uplink, active);
            }
        }
        self.transitions.extend(self.health.evaluate(now));
        self.decide(now);
    }

    fn probe(&mut self, uplink: usize, now: Instant) {
        let mut probes: Vec<ProbeKind> = self
            .health
            .targets(uplink)
            .cloned()
            .map(ProbeKind::Far)
            .collect();
        if self.config.health.gateway_probes {
            probes.extend([ProbeKind::GatewayArp, ProbeKind::GatewayIcmp]);
        }
        for probe in probes {
            let link = &self.links[uplink];
            let reaches = match &probe {
                ProbeKind::Far(target) => link.upstream && !self.dead_targets.contains(target),
                _ => true,
            };
            let rtt = match probe {
                ProbeKind::Far(_) => link.far_rtt,
                _ => link.gateway_rtt,
            };
            let answered =
                link.carrier && link.gateway && reaches && !self.rng.chance(link.loss_percent);
            let (at, rtt) = if answered {
                (now + rtt, Some(rtt))
            } else {
                (now + self.config.health.timeout, None)
            };
            self.probes[uplink] += 1;
            self.in_flight.push((
                at,
                Sample {
                    uplink,
                    probe,
                    sent: now,
                    rtt,
                },
            ));
        }
    }

    fn decide(&mut self, now: Instant) {
        let decision = self.policy.decide(&self.health.states(), now);
        if decision.active != self.decision.active {
            self.switches
                .push((now, self.decision.active, decision.active));
        }
        self.moved
            .extend(decision.move_flows_from.iter().map(|&u| (now, u)));
        self.decision = decision;
    }
}
