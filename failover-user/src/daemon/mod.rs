//! The controller (`failover run`): probes every uplink, decides which one carries new flows,
//! and keeps the data plane's maps true — each uplink's address, gateway MAC and usability,
//! and the active uplink — reacting to the kernel's link, address and neighbour changes at
//! once. It records every change in the event log and answers the CLI.

mod blackhole;
mod datapaths;
mod dns;
mod flows;
mod forwards;
mod host_limits;
mod instance_lock;
mod metrics;
mod outage;
mod probing;
mod report;
mod self_check;
mod switching;
mod watchdog;

use std::{net::Ipv4Addr, time::Duration};

use anyhow::{Context as _, bail};
use failover_common::nat::{self, Uplink};
use futures_util::StreamExt as _;
use tokio::{
    sync::mpsc,
    time::{Instant, MissedTickBehavior},
};
use tracing::{info, warn};

use crate::{
    config::Config,
    control::{self, Call, Request, Response},
    dataplane::TableSizes,
    dns_update,
    events::{self, Event, EventLog},
    health::{Health, Sample, State, Transition},
    loader::{self, LoaderSpec, Running, UplinkSpec},
    netlink::{Change, Netlink},
    override_store::{self, Loaded, OverrideStore, SavedOverride},
    policy::{Decision, Policy},
    probe::{PathError, ProbeKind, ProbePath, routing::UplinkRoutes},
};

use self::probing::UplinkProbeControl;

/// How often health is evaluated: well below every detection time.
const TICK: Duration = Duration::from_millis(20);

/// Runs the controller until SIGINT or SIGTERM; SIGHUP re-reads `path` (see `reload`). On
/// the way out the data plane keeps forwarding, pinned, unless `detach` says to remove it.
pub async fn run(config: Config, path: &std::path::Path, detach: bool) -> anyhow::Result<()> {
    let mut daemon = Daemon::start(config).await?;
    daemon.path = path.to_owned();
    daemon.detach_on_exit = detach;
    let result = daemon.serve().await;
    daemon.stop().await;
    result
}

/// An uplink as the controller tracks it.
struct Managed {
    spec: UplinkSpec,
    /// The data plane's entry as the kernel describes it (before health is applied).
    described: Uplink,
    /// Why the kernel's view makes it unusable (no address, no gateway, no carrier...).
    problem: Option<String>,
    path: Option<ProbePath>,
    routes: UplinkRoutes,
    probes: UplinkProbeControl,
    /// What the data plane was last told.
    usable: bool,
    /// The data path the interface can take; `None` when its facts are unreadable.
    datapath: Option<crate::datapath::Choice>,
    /// What the data plane is told of its data path (`failover_common::nat::path`).
    path_flags: u8,
}

impl Managed {
    /// The data-plane entry for this uplink when it is (not) usable.
    fn entry(&self, usable: bool) -> Uplink {
        Uplink {
            usable: u8::from(usable),
            path: self.path_flags,
            ..self.described
        }
    }
}

struct Daemon {
    config: Config,
    /// Remove the data plane when stopping instead of leaving it forwarding.
    detach_on_exit: bool,
    /// After adopting a running data plane, its decisions stand until then: the probes need
    /// that long to have a verdict of their own.
    settle_until: Option<Instant>,
    /// The config file, re-read on SIGHUP.
    path: std::path::PathBuf,
    running: Running,
    netlink: Netlink,
    health: Health,
    policy: Policy,
    uplinks: Vec<Managed>,
    active: usize,
    /// Far targets currently suspect, as last reported.
    suspects: Vec<String>,
    /// The balancing shares the data plane holds.
    balance: Vec<(usize, u32)>,
    events: EventLog,
    overrides: OverrideStore,
    samples: mpsc::Receiver<Sample>,
    calls: mpsc::Receiver<Call>,
    switching: switching::FlowsOnSwitch,
    watchdog: watchdog::Watchdog,
    host_limiter: host_limits::HostLimiter,
    /// The LAN interface's data path; `None` when its facts are unreadable.
    lan_datapath: Option<crate::datapath::Choice>,
    /// `[dns]`: the records following the active uplink.
    dns: Option<dns::DnsFollower>,
    /// The hairpin table as last installed.
    hairpin: Option<crate::hairpin::HairpinSpec>,
    _server: tokio::task::JoinHandle<()>,
    /// Held while this controller runs (`instance_lock`).
    _lock: std::fs::File,
}

/// The control socket and the metrics endpoint, and the calls they pass on.
fn open_control(
    config: &Config,
) -> anyhow::Result<(tokio::task::JoinHandle<()>, mpsc::Receiver<Call>)> {
    let (calls, received) = mpsc::channel(16);
    crate::metrics::spawn(config.metrics.listen, &calls);
    let socket = &config.control.socket;
    let server = control::serve(socket, calls)
        .with_context(|| format!("opening the control socket {}", socket.display()))?;
    Ok((server, received))
}

impl Daemon {
    async fn start(config: Config) -> anyhow::Result<Self> {
        let [lan] = config.lan.as_slice() else {
            bail!(
                "this version steers one LAN interface; `lan` names {}",
                config.lan.len()
            );
        };
        // Before anything else: a second controller must not touch the first one's state.
        let lock = instance_lock::acquire(&config.state_dir)?;
        let dns = dns::DnsFollower::start(&config)?;
        let start = Instant::now();
        let mut health = Health::new(&config.health, &config.uplinks, start);
        let mut policy = Policy::new(&config.health, &config.uplinks, start);
        let overrides = OverrideStore::new(&config.state_dir);
        let mut events = EventLog::open(&config.events.log)
            .with_context(|| format!("opening the event log {}", config.events.log.display()))?;
        restore_override(&overrides, &mut policy, &config, &mut events, start)?;
        let first = policy.decide(&health.states(), start);
        let specs = loader_specs(&config);
        let mut running = loader::start(&LoaderSpec {
            dataplane_log: config.logging.dataplane,
            pins: Some(config.pin_dir.clone()),
            lan: lan.clone(),
            uplinks: specs.clone(),
            active: specs[first.active].name.clone(),
            skb_mode: config.skb_mode,
            lan_datapath: config.lan_datapath,
            tables: TableSizes::default(),
        })
        .await
        .context("starting the data plane")?;
        configure_dataplane(&mut running, &config)?;
        let netlink = Netlink::connect()?;
        let (sample_tx, samples) = mpsc::channel(1024);
        let mut uplinks = Vec::new();
        for (slot, spec) in (0u32..).zip(specs) {
            let index = uplinks.len();
            let path = running.paths[index].as_ref().ok().cloned();
            let problem = running.paths[index].as_ref().err().map(ToString::to_string);
            let kinds = probe_kinds(&config, index);
            let probes = probing::spawn(
                index,
                kinds,
                path.clone(),
                health.probe_interval(index, index == first.active),
                &config.health,
                &sample_tx,
            );
            let carrier = netlink.link(&spec.interface).await.is_ok_and(|l| l.carrier);
            let (described, usable) = start_view(&running, &mut health, index, carrier, start);
            uplinks.push(Managed {
                spec,
                described,
                problem,
                path: None,
                routes: UplinkRoutes::new(slot),
                probes,
                usable,
                datapath: None,
                path_flags: 0,
            });
            let managed = uplinks.last_mut().expect("just pushed");
            set_path(&netlink, managed, path).await;
        }
        let (active, settle_until) = initial_active(
            &mut running,
            &config,
            (&health, &mut policy),
            first.active,
            start,
        )?;
        // An empty balance differs from any decision: the first tick writes the real one.
        let (server, calls) = open_control(&config)?;
        info!(active = %uplinks[active].spec.name, adopted = running.adopted, "controller running");
        Ok(Self {
            switching: switching::FlowsOnSwitch::default(),
            watchdog: watchdog::Watchdog::default(),
            host_limiter: host_limits::HostLimiter::default(),
            lan_datapath: Some(datapaths::choose_all(&running, &mut uplinks)),
            dns,
            hairpin: None,
            path: std::path::PathBuf::new(),
            detach_on_exit: false,
            settle_until,
            config,
            running,
            netlink,
            health,
            policy,
            uplinks,
            active,
            balance: Vec::new(),
            suspects: Vec::new(),
            events,
            overrides,
            samples,
            calls,
            _server: server,
            _lock: lock,
        })
    }

    /// Installs the hairpin table for the forwards and the uplinks' addresses when either
    /// changed since it was last installed.
    fn sync_hairpin(&mut self) {
        let addrs: Vec<[u8; 4]> = self.uplinks.iter().map(|u| u.described.addr).collect();
        let wanted = forwards::hairpin(&self.config, self.running.lan(), &addrs);
        if self.hairpin.as_ref() == Some(&wanted) {
            return;
        }
        match crate::hairpin::install(&wanted) {
            Ok(()) => {
                info!(
                    entries = wanted.entries.len(),
                    "hairpin NAT in place: LAN hosts reach the forwards at the uplinks' addresses"
                );
                self.hairpin = Some(wanted);
            }
            Err(e) => {
                warn!(error = %e, table = failover_common::names::NFT_HAIRPIN_TABLE, "installing the hairpin table failed: LAN hosts cannot reach the forwards at the uplinks' addresses");
            }
        }
    }

    /// The main loop: samples, kernel changes, CLI calls and the evaluation tick.
    async fn serve(&mut self) -> anyhow::Result<()> {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
        let mut hangup = signal(SignalKind::hangup()).context("installing the SIGHUP handler")?;
        let mut changes = Box::pin(crate::netlink::watch()?);
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        self.sync_hairpin();
        loop {
            tokio::select! {
                Some(sample) = self.samples.recv() => self.health.record(&sample),
                Some(change) = changes.next() => self.on_change(change).await,
                Some((request, reply)) = self.calls.recv() => {
                    let response = self.on_request(request);
                    let _ = reply.send(response);
                }
                _ = tick.tick() => self.evaluate(Instant::now()),
                Some(outcome) = next_dns_outcome(self.dns.as_mut()) => {
                    if let Some(event) = self.dns.as_mut().and_then(|d| d.on_outcome(outcome)) {
                        self.log(event);
                    }
                }
                _ = tokio::signal::ctrl_c() => return Ok(()),
                _ = term.recv() => return Ok(()),
                _ = hangup.recv() => self.reload(),
            }
        }
    }

    /// Health, then policy, then the data plane.
    fn evaluate(&mut self, now: Instant) {
        let transitions = self.health.evaluate(now);
        self.record_transitions(&transitions);
        self.record_suspects();
        let decision = self.policy.decide(&self.health.states(), now);
        if self.settle_until.is_some_and(|until| now < until) {
            return;
        }
        self.settle_until = None;
        self.apply(&decision, now);
        self.watch_dataplane(now);
        self.limit_hosts(now);
    }

    fn apply(&mut self, decision: &Decision, now: Instant) {
        for index in 0..self.uplinks.len() {
            let usable = self.uplinks[index].described.usable != 0
                && self.health.state(index) != State::Down;
            if usable != self.uplinks[index].usable {
                self.set_usable(index, usable, now);
            }
        }
        if decision.active != self.active {
            self.switch_active(decision, now);
        } else if decision.balance != self.balance {
            self.write_policy(decision);
        }
        for &from in &decision.move_flows_from {
            let moved =
                switching::FlowsOnSwitch::move_flows(self.running.dataplane_mut(), slot_of(from));
            info!(uplink = %self.uplinks[from].spec.name, flows = moved, "flows moved after failback drain");
        }
        if decision.override_expired {
            let _ = self.overrides.clear();
            self.log(Event::now(
                events::kind::OVERRIDE,
                &self.uplinks[self.active].spec.name,
                "forced",
                "auto",
                "the override expired",
            ));
        }
        self.switching
            .purge_due(self.running.dataplane_mut(), now, |slot| {
                !self.uplinks[slot as usize].usable
            });
        self.point_dns();
        for (index, uplink) in self.uplinks.iter().enumerate() {
            let interval = self.health.probe_interval(index, index == self.active);
            uplink.probes.interval.send_if_modified(|current| {
                let changed = *current != interval;
                *current = interval;
                changed
            });
        }
    }

    /// `[dns]` follows the active uplink: its public address, sent through it.
    fn point_dns(&self) {
        let Some(dns) = &self.dns else {
            return;
        };
        let managed = &self.uplinks[self.active];
        dns.point_at(dns::target_for(
            &managed.spec.name,
            self.config.uplinks[self.active].public_address,
            managed.described.addr,
            managed.path.as_ref(),
        ));
    }

    /// Tells the data plane whether an uplink may carry flows; when it may not, its flows
    /// leave it (TCP hosts are told at once, see `switching`).
    fn set_usable(&mut self, index: usize, usable: bool, now: Instant) {
        let slot = slot_of(index);
        let entry = self.uplinks[index].entry(usable);
        if let Err(e) = self.running.dataplane_mut().set_uplink(slot, entry) {
            warn!(error = %e, "updating the uplink map failed");
            return;
        }
        self.uplinks[index].usable = usable;
        info!(uplink = %self.uplinks[index].spec.name, usable, "uplink usability changed");
        if !usable {
            self.switching.leave_uplink(
                self.running.dataplane(),
                slot,
                now,
                &self.uplinks[index].spec.name,
            );
        }
    }

    fn switch_active(&mut self, decision: &Decision, _now: Instant) {
        let (from, to) = (self.active, decision.active);
        if !self.write_policy(decision) {
            return;
        }
        let cause = if decision.forced {
            "forced by the operator".to_owned()
        } else if self.health.state(from) == State::Up {
            format!(
                "{} preferred and up for the hold-down",
                self.uplinks[to].spec.name
            )
        } else {
            format!(
                "{} is {}",
                self.uplinks[from].spec.name,
                state_name(self.health.state(from))
            )
        };
        info!(from = %self.uplinks[from].spec.name, to = %self.uplinks[to].spec.name, %cause, "active uplink switched");
        let mut event = Event::now(
            events::kind::SWITCH,
            &self.uplinks[to].spec.name,
            &self.uplinks[from].spec.name,
            &self.uplinks[to].spec.name,
            &cause,
        );
        for (index, uplink) in self.uplinks.iter().enumerate() {
            event = event.with_evidence(
                &format!("{}_state", uplink.spec.name),
                state_name(self.health.state(index)),
            );
        }
        self.log(event);
    }

    /// Writes the active uplink and the balancing shares into the data plane.
    fn write_policy(&mut self, decision: &Decision) -> bool {
        let shares: Vec<(u32, u32)> = decision
            .balance
            .iter()
            .map(|&(u, w)| (slot_of(u), w))
            .collect();
        if let Err(e) = self.running.set_balanced(slot_of(decision.active), &shares) {
            warn!(error = %e, "writing the policy failed");
            return false;
        }
        if decision.balance.len() > 1 {
            let shares: Vec<(&str, u32)> = decision
                .balance
                .iter()
                .map(|&(u, w)| (self.uplinks[u].spec.name.as_str(), w))
                .collect();
            info!(?shares, "new flows balanced by weight");
        }
        self.active = decision.active;
        self.balance.clone_from(&decision.balance);
        true
    }

    fn record_transitions(&mut self, transitions: &[Transition]) {
        for t in transitions {
            let uplink = &self.uplinks[t.uplink];
            info!(uplink = %uplink.spec.name, from = state_name(t.from), to = state_name(t.to), cause = %t.cause, "uplink state changed");
            let mut event = Event::now(
                events::kind::STATE,
                &uplink.spec.name,
                state_name(t.from),
                state_name(t.to),
                &t.cause,
            );
            for (key, value) in &t.evidence {
                event = event.with_evidence(key, value.clone());
            }
            event = event.with_evidence("interface", uplink.spec.interface.clone());
            if let Some(path) = &uplink.path {
                event = event
                    .with_evidence("address", path.source.to_string())
                    .with_evidence(
                        "gateway",
                        path.gateway.map_or("none".to_owned(), |g| g.to_string()),
                    );
                if path.ethernet {
                    event = event.with_evidence("mac", loader::format_mac(path.mac));
                }
            }
            if uplink.described.gateway_mac != [0; 6] {
                event = event.with_evidence(
                    "gateway_mac_address",
                    loader::format_mac(uplink.described.gateway_mac),
                );
            }
            self.log(event);
        }
    }

    /// Says so when a far target becomes suspect (it answers on no uplink, so it is the
    /// target that is down) or answers again.
    fn record_suspects(&mut self) {
        let now: Vec<String> = self
            .health
            .suspects()
            .iter()
            .map(|s| s.target.to_string())
            .collect();
        if now == self.suspects {
            return;
        }
        for suspect in self.health.suspects().to_vec() {
            let target = suspect.target.to_string();
            if !self.suspects.contains(&target) {
                warn!(%target, reason = %suspect.reason, "probe target suspect: left out of every quorum until it answers");
                self.log(
                    Event::now(events::kind::TARGET, "", "ok", "suspect", &suspect.reason)
                        .with_evidence("target", target),
                );
            }
        }
        for target in self.suspects.clone() {
            if !now.contains(&target) {
                info!(%target, "probe target answers again");
                self.log(
                    Event::now(events::kind::TARGET, "", "suspect", "ok", "answers again")
                        .with_evidence("target", target),
                );
            }
        }
        self.suspects = now;
    }

    /// Appends to the event log and runs the hook, never blocking the loop on either failing.
    fn log(&mut self, event: Event) {
        if let Err(e) = self.events.append(&event) {
            warn!(error = %e, log = %self.events.path().display(), "appending to the event log failed");
        }
        if let Some(hook) = self.config.events.hook.clone() {
            tokio::spawn(async move {
                events::run_hook(&hook, &event).await;
            });
        }
    }

    /// A kernel change: carrier goes to health at once; everything else re-describes the
    /// uplink (address, gateway, gateway MAC) into the maps and the probes.
    async fn on_change(&mut self, change: Change) {
        let affected: Vec<usize> = match change {
            Change::Route => (0..self.uplinks.len()).collect(),
            Change::Link { index, .. }
            | Change::Address { index }
            | Change::Neighbour { index } => self
                .uplinks
                .iter()
                .position(|u| u.described.ifindex == index)
                .into_iter()
                .collect(),
        };
        for index in affected {
            if let Change::Link {
                carrier: Some(carrier),
                ..
            } = change
            {
                let now = Instant::now();
                if let Some(t) = self.health.carrier(index, carrier, now) {
                    self.record_transitions(&[t]);
                    // Carrier loss must move traffic now, not at the next tick.
                    self.evaluate(now);
                }
            }
            self.redescribe(index).await;
        }
    }

    async fn redescribe(&mut self, index: usize) {
        let managed = &mut self.uplinks[index];
        let (described, path) =
            match loader::describe_uplink(&self.netlink, &managed.spec, Duration::ZERO).await {
                Ok(found) => found,
                Err(e) => {
                    warn!(uplink = %managed.spec.name, error = %e, "describing the uplink failed");
                    return;
                }
            };
        let problem = path.as_ref().err().map(ToString::to_string).or_else(|| {
            (described.usable == 0).then(|| "no carrier or gateway MAC unresolved".to_owned())
        });
        if described.addr != managed.described.addr {
            info!(uplink = %managed.spec.name, from = %Ipv4Addr::from(managed.described.addr), to = %Ipv4Addr::from(described.addr), "uplink address changed: new flows are translated to the new address");
        }
        let changed = described != managed.described;
        managed.described = described;
        managed.problem = problem;
        if !headerless(&path) {
            self.health
                .gateway_mac_known(index, described.gateway_mac != [0; 6]);
        }
        set_path(&self.netlink, managed, path.ok()).await;
        self.rechoose_datapath(index);
        self.sync_hairpin();
        if changed {
            // Re-apply usability against the new description (it also writes the map).
            let usable = described.usable != 0 && self.health.state(index) != State::Down;
            self.uplinks[index].usable = !usable;
            self.set_usable(index, usable, Instant::now());
        }
    }

    fn on_request(&mut self, request: Request) -> Response {
        let now = Instant::now();
        match request {
            Request::Status => Response {
                ok: true,
                status: Some(report::status(self, now)),
                ..Response::default()
            },
            Request::Switch { uplink, for_secs } => {
                let until = for_secs.map(|s| now + Duration::from_secs(s));
                if let Err(e) = self.policy.switch(&uplink, until) {
                    return Response::failed(e.to_string());
                }
                let saved = SavedOverride {
                    uplink: uplink.clone(),
                    until: until.map(|u| {
                        override_store::until_system_time(u, now, std::time::SystemTime::now())
                    }),
                };
                if let Err(e) = self.overrides.save(&saved) {
                    warn!(error = %e, "saving the override failed: it will not survive a restart");
                }
                let cause = match for_secs {
                    Some(s) => format!("operator: switch for {s} s"),
                    None => "operator: switch until `failover auto`".to_owned(),
                };
                self.log(Event::now(
                    events::kind::OVERRIDE,
                    &uplink,
                    "auto",
                    "forced",
                    &cause,
                ));
                self.evaluate(now);
                Response::done(format!("{uplink} forced ({cause})"))
            }
            Request::Auto => {
                self.policy.auto();
                if let Err(e) = self.overrides.clear() {
                    warn!(error = %e, "removing the saved override failed");
                }
                self.log(Event::now(
                    events::kind::OVERRIDE,
                    &self.uplinks[self.active].spec.name,
                    "forced",
                    "auto",
                    "operator: auto",
                ));
                self.evaluate(now);
                Response::done("back to automatic uplink choice")
            }
            Request::Flows { uplink } => match flows::flows(self, uplink.as_deref()) {
                Ok(flows) => Response {
                    ok: true,
                    flows: Some(flows),
                    ..Response::default()
                },
                Err(e) => Response::failed(e),
            },
            Request::Report { uplink } => match outage::report(self, &uplink, now) {
                Ok(report) => Response {
                    ok: true,
                    report: Some(Box::new(report)),
                    ..Response::default()
                },
                Err(e) => Response::failed(e),
            },
            Request::Metrics => Response {
                ok: true,
                metrics: Some(metrics::render(&metrics::snapshot(self, now))),
                ..Response::default()
            },
        }
    }

    /// SIGHUP: re-reads the config file. An invalid file changes nothing (the error, with
    /// line and column, goes to the log and the event log). A valid one takes effect for the
    /// event hook at once; other changes (uplinks, probing, timings) need a restart, which
    /// the log says.
    fn reload(&mut self) {
        let new = match crate::config::load(&self.path) {
            Ok(new) => new,
            Err(e) => {
                warn!("config reload refused, the running config stays:\n{e}");
                self.log(
                    Event::now(
                        events::kind::CONFIG,
                        "",
                        "",
                        "",
                        "reload refused: invalid file",
                    )
                    .with_evidence("error", e.to_string()),
                );
                return;
            }
        };
        if new == self.config {
            info!("config reloaded: unchanged");
            return;
        }
        self.config.events.hook.clone_from(&new.events.hook);
        self.config.limits.clone_from(&new.limits);
        // The next recount writes the new limits.
        self.host_limiter.renew_now();
        // Forwards name uplinks by slot: they follow the file while its uplinks stay.
        if new.forwards != self.config.forwards && new.uplink_names() == self.config.uplink_names()
        {
            if let Err(e) = forwards::apply(&mut self.running, &new) {
                let error = format!("{e:#}");
                warn!(%error, "the new port forwards were refused; the running ones stay");
            } else {
                self.config.forwards.clone_from(&new.forwards);
                self.sync_hairpin();
            }
        }
        if new == self.config {
            info!("config reloaded: event hook, host limits and port forwards applied");
        } else {
            warn!(
                "config reloaded: the event hook, host limits and port forwards are applied; other changes take effect when the daemon restarts"
            );
        }
    }

    /// Removes the probes' routing tables and rules and the control socket; leaves the data
    /// plane forwarding unless told to detach it.
    async fn stop(&mut self) {
        for managed in &mut self.uplinks {
            if let Err(e) = managed.routes.remove(&self.netlink).await {
                warn!(uplink = %managed.spec.name, error = %e, "removing the probe routes failed");
            }
        }
        let _ = std::fs::remove_file(&self.config.control.socket);
        let pins = crate::pins::Pins::new(&self.config.pin_dir);
        if self.detach_on_exit {
            match crate::loader::remove_dataplane(&pins) {
                Ok(()) => {
                    info!("controller stopped; the data plane is detached and its pins removed");
                }
                Err(e) => warn!(error = %e, "detaching the data plane failed"),
            }
        } else {
            info!(pins = %pins.dir().display(), "controller stopped; the data plane keeps forwarding (a restarted `failover run` adopts it, `failover detach` removes it)");
        }
    }
}

/// The next `[dns]` outcome; never, without `[dns]`.
async fn next_dns_outcome(dns: Option<&mut dns::DnsFollower>) -> Option<dns_update::Outcome> {
    match dns {
        Some(dns) => dns.next_outcome().await,
        None => std::future::pending().await,
    }
}

/// Uplink `index` at start: the kernel's description (never the data plane's entry: an
/// adopted slot taken out by the earlier controller must not read as one the kernel calls
/// unusable) and whether the data plane lets flows use it; health learns the carrier, the
/// gateway MAC and, for a slot taken out, that it must prove itself healthy again.
fn start_view(
    running: &Running,
    health: &mut Health,
    index: usize,
    carrier: bool,
    start: Instant,
) -> (Uplink, bool) {
    let (described, usable) = (running.described[index], running.usable[index]);
    health.carrier(index, carrier, start);
    if !headerless(&running.paths[index]) {
        health.gateway_mac_known(index, described.gateway_mac != [0; 6]);
    }
    if running.adopted && !usable {
        health.seed_down(index, "not usable in the adopted data plane", start);
    }
    (described, usable)
}

/// What the config says of the data plane beyond its uplinks: where its log goes, and the
/// port forwards.
fn configure_dataplane(running: &mut Running, config: &Config) -> anyhow::Result<()> {
    if config.logging.dataplane != crate::config::DataplaneLog::Off {
        running.dataplane_mut().forward_log()?;
    }
    forwards::apply(running, config).context("writing the port forwards")
}

/// Whether the uplink is known to carry bare IP, where a gateway MAC means nothing.
fn headerless(path: &Result<ProbePath, PathError>) -> bool {
    path.as_ref().is_ok_and(|p| !p.ethernet)
}

/// What the loader needs of each uplink.
fn loader_specs(config: &Config) -> Vec<UplinkSpec> {
    config
        .uplinks
        .iter()
        .map(|u| UplinkSpec {
            name: u.name.clone(),
            interface: u.interface.clone(),
            gateway: u.gateway,
            ports: u.port_range(),
            mss: u.mss.unwrap_or(0),
            datapath: u.datapath,
        })
        .collect()
}

/// The active uplink at start: the adopted data plane's, whose decisions then stand until the
/// returned instant (the probes need that long for a verdict of their own), and which the
/// policy takes as its own (so a failback waits for the hold-down); else the policy's first
/// choice, written now.
fn initial_active(
    running: &mut Running,
    config: &Config,
    (health, policy): (&Health, &mut Policy),
    first: usize,
    start: Instant,
) -> anyhow::Result<(usize, Option<Instant>)> {
    let uplinks = config.uplinks.len();
    if !running.adopted {
        running.set_active(slot_of(first))?;
        return Ok((first, None));
    }
    let pinned = running.dataplane().policy()?.active as usize;
    let settle = config
        .health
        .gateway_down_after
        .max(config.health.targets_down_after)
        + config.health.interval;
    let active = if pinned < uplinks { pinned } else { first };
    policy.adopt(active, &health.states(), start);
    Ok((active, Some(start + settle)))
}

/// Points the uplink's probes and probe routes at `path` (its address or gateway changed).
async fn set_path(netlink: &Netlink, managed: &mut Managed, path: Option<ProbePath>) {
    if managed.path == path {
        return;
    }
    if let Some(path) = &path
        && let Err(e) = managed.routes.update(netlink, path).await
    {
        warn!(uplink = %managed.spec.name, error = %e, "installing the probe routes failed");
    }
    managed.path.clone_from(&path);
    managed.probes.path.send_replace(path);
}

fn restore_override(
    store: &OverrideStore,
    policy: &mut Policy,
    config: &Config,
    events: &mut EventLog,
    now: Instant,
) -> anyhow::Result<()> {
    let wall = std::time::SystemTime::now();
    match store
        .load(&config.uplinks, wall)
        .with_context(|| format!("reading {}", store.path().display()))?
    {
        Loaded::None => {}
        Loaded::Restored(saved) => {
            let until = saved
                .until
                .map(|u| override_store::until_instant(u, wall, now));
            policy.switch(&saved.uplink, until)?;
            info!(uplink = %saved.uplink, "operator override restored");
        }
        Loaded::Dropped { reason } => {
            warn!(%reason, "saved override dropped");
            let _ = events.append(&Event::now(
                events::kind::OVERRIDE,
                "",
                "forced",
                "auto",
                &reason,
            ));
        }
    }
    Ok(())
}

/// Gateway probes (when on) and the uplink's far targets.
fn probe_kinds(config: &Config, index: usize) -> Vec<ProbeKind> {
    let mut kinds = Vec::new();
    if config.health.gateway_probes {
        kinds.extend([ProbeKind::GatewayArp, ProbeKind::GatewayIcmp]);
    }
    kinds.extend(
        config.uplinks[index]
            .targets_or_default()
            .into_iter()
            .map(ProbeKind::Far),
    );
    kinds
}

fn slot_of(index: usize) -> u32 {
    u32::try_from(index).unwrap_or(nat::NO_UPLINK)
}

#[must_use]
pub fn state_name(state: State) -> &'static str {
    match state {
        State::Up => "up",
        State::Degraded => "degraded",
        State::Down => "down",
    }
}
