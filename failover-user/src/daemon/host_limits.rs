//! Per-LAN-host limits, the controller's half (`failover_common::limits`). The data plane
//! counts what each host takes and refuses what would pass a limit; it cannot count down
//! (entries expire and LRU tables evict silently), so every [`RECOUNT_EVERY`] the
//! controller counts the live flows and ports of each host and writes the true counts back.
//! It also renews the limits' lease, and reports a host that is refused: one event when it
//! starts, a warning at most every [`REPORT_EVERY`] while it goes on, one event when it ends.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::Ipv4Addr,
    time::Duration,
};

use failover_common::{
    limits::{HostKey, HostLimits, HostUsage},
    nat::{self, Binding, Flow, FlowKey, MAX_UPLINKS, ReverseKey},
};
use tokio::time::Instant;
use tracing::{info, warn};

use super::Daemon;
use crate::{
    clock,
    dataplane::{self, FlowTable as _},
    events::{self, Event},
};

/// How often the live entries are recounted.
pub(super) const RECOUNT_EVERY: Duration = Duration::from_secs(5);
/// The data plane enforces the limits this long past a recount: limits of a controller that
/// was killed lapse rather than lock hosts out on counts nobody corrects.
const LEASE: Duration = Duration::from_secs(30);
/// A refused host is reported again at most this often, and counts as no longer refused
/// after this long without a refusal.
pub(super) const REPORT_EVERY: Duration = Duration::from_mins(1);

/// Refused hosts remembered for status and metrics.
const REMEMBERED: usize = 256;
/// A recount slower than this is logged.
const SLOW_RECOUNT: Duration = Duration::from_millis(200);

/// Live flows and external ports (per uplink slot) of one LAN host.
pub(super) type Counts = (u32, [u32; MAX_UPLINKS as usize]);

/// The live entries of each LAN host: the flows it opened by their LAN address (connections
/// to its forwarded ports are not its own to limit), ports by the LAN address their reverse
/// binding maps to. Expired entries still in the tables do not count.
pub(super) fn recount(
    flows: &[(FlowKey, Flow)],
    reverse: &[(ReverseKey, Binding)],
    now_ns: u64,
) -> BTreeMap<[u8; 4], Counts> {
    let mut counts = BTreeMap::<[u8; 4], Counts>::new();
    for (key, flow) in flows {
        let timeout = nat::flow_timeout_ns(key.proto, flow.state);
        if flow.origin == nat::flow_origin::OUTBOUND
            && !nat::expired(flow.last_seen_ns, timeout, now_ns)
        {
            counts.entry(key.lan_addr).or_default().0 += 1;
        }
    }
    for (key, binding) in reverse {
        let timeout = nat::binding_timeout_ns(key.proto);
        if !nat::expired(binding.last_seen_ns, timeout, now_ns)
            && let Some(ports) = counts
                .entry(binding.lan_addr)
                .or_default()
                .1
                .get_mut(usize::from(key.uplink))
        {
            *ports += 1;
        }
    }
    counts
}

/// What a host's refusals mean for the operator, from one recount to the next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Finding {
    /// The host was refused for the first time (or again after a quiet [`REPORT_EVERY`]).
    Started { flows: u64, ports: u64 },
    /// Refusals go on: this many since the last report.
    Continuing { flows: u64, ports: u64 },
    /// Nothing refused for [`REPORT_EVERY`].
    Ended,
}

/// One refused host, as the reports saw it.
#[derive(Clone, Debug)]
pub(super) struct Refused {
    /// The data plane's totals for the host at the last recount.
    pub flows: u64,
    pub ports: u64,
    /// Totals at the last report.
    reported: (u64, u64),
    reported_at: Instant,
    last_refusal: Instant,
    /// Refusals go on (reported as started, not yet as ended).
    pub ongoing: bool,
}

/// The controller's memory of refused hosts.
#[derive(Debug, Default)]
pub(super) struct HostLimiter {
    next: Option<Instant>,
    pub refused: BTreeMap<Ipv4Addr, Refused>,
}

impl HostLimiter {
    /// Makes the next evaluation recount and write the limits (after a reload).
    pub(super) fn renew_now(&mut self) {
        self.next = None;
    }

    /// Takes the data plane's refusal totals for `host` (which only grow, unless its entry was
    /// evicted and started again) and says what is worth reporting.
    pub(super) fn observe(
        &mut self,
        host: Ipv4Addr,
        flows: u64,
        ports: u64,
        now: Instant,
    ) -> Option<Finding> {
        let Some(seen) = self.refused.get_mut(&host) else {
            if flows == 0 && ports == 0 {
                return None;
            }
            if self.refused.len() >= REMEMBERED {
                // A host spoofing many LAN sources must not grow this without bound: hosts
                // whose refusals ended are forgotten first.
                self.refused.retain(|_, r| r.ongoing);
                if self.refused.len() >= REMEMBERED {
                    return None;
                }
            }
            self.refused.insert(
                host,
                Refused {
                    flows,
                    ports,
                    reported: (flows, ports),
                    reported_at: now,
                    last_refusal: now,
                    ongoing: true,
                },
            );
            return Some(Finding::Started { flows, ports });
        };
        if flows < seen.flows || ports < seen.ports {
            // The data plane's entry started again from zero: so do the baselines.
            seen.reported = (0, 0);
        }
        let grew = flows > seen.flows || ports > seen.ports || flows < seen.flows;
        seen.flows = flows;
        seen.ports = ports;
        let since = (
            flows.saturating_sub(seen.reported.0),
            ports.saturating_sub(seen.reported.1),
        );
        if grew {
            seen.last_refusal = now;
            if !seen.ongoing {
                seen.ongoing = true;
                seen.reported = (flows, ports);
                seen.reported_at = now;
                return Some(Finding::Started {
                    flows: since.0,
                    ports: since.1,
                });
            }
            if now.duration_since(seen.reported_at) >= REPORT_EVERY {
                seen.reported = (flows, ports);
                seen.reported_at = now;
                return Some(Finding::Continuing {
                    flows: since.0,
                    ports: since.1,
                });
            }
            return None;
        }
        if seen.ongoing && now.duration_since(seen.last_refusal) >= REPORT_EVERY {
            seen.ongoing = false;
            return Some(Finding::Ended);
        }
        None
    }
}

impl Daemon {
    /// Recounts the hosts' live entries, renews the limits and reports refused hosts.
    pub(super) fn limit_hosts(&mut self, now: Instant) {
        if self.host_limiter.next.is_some_and(|next| now < next) {
            return;
        }
        self.host_limiter.next = Some(now + RECOUNT_EVERY);
        let now_ns = match clock::now_ns() {
            Ok(now_ns) => now_ns,
            Err(e) => {
                warn!(error = %e, "host limits: reading the data plane's clock failed");
                return;
            }
        };
        let config = &self.config.limits;
        let on = config.flows_per_host != 0 || config.ports_per_host != 0;
        let limits = HostLimits {
            flows: config.flows_per_host,
            ports: config.ports_per_host,
            until_ns: if on {
                now_ns + u64::try_from(LEASE.as_nanos()).unwrap_or(u64::MAX)
            } else {
                0
            },
        };
        // One read of fo_hosts serves the correction and the report.
        let known: BTreeMap<[u8; 4], HostUsage> = match self.running.dataplane().hosts() {
            Ok(hosts) => hosts
                .into_iter()
                .map(|(key, usage)| (key.addr, usage))
                .collect(),
            Err(e) => {
                warn!(error = %e, "host limits: reading fo_hosts failed");
                BTreeMap::new()
            }
        };
        if on && let Err(e) = self.correct_host_counts(now_ns, &known) {
            warn!(error = %e, "host limits: recounting the hosts' flows failed");
        }
        if let Err(e) = self.running.dataplane_mut().set_host_limits(limits) {
            warn!(error = %e, "host limits: writing the limits failed");
        }
        self.report_refused_hosts(now, &known);
    }

    /// Writes each host's live counts over the data plane's (`known`), and forgets hosts
    /// that hold nothing and were refused nothing.
    fn correct_host_counts(
        &mut self,
        now_ns: u64,
        known: &BTreeMap<[u8; 4], HostUsage>,
    ) -> Result<(), dataplane::DataplaneError> {
        let started = std::time::Instant::now();
        let dataplane = self.running.dataplane();
        let flows = dataplane.flows()?;
        let reverse = dataplane.reverse_bindings()?;
        let counts = recount(&flows, &reverse, now_ns);
        let took = started.elapsed();
        if took > SLOW_RECOUNT {
            // It runs on the control loop: worth knowing when tables are this large.
            info!(
                flows = flows.len(),
                bindings = reverse.len(),
                ms = took.as_millis(),
                "host limits: a slow recount of the NAT tables"
            );
        }
        let mut hosts: BTreeSet<[u8; 4]> = counts.keys().copied().collect();
        hosts.extend(known.keys());
        let dataplane = self.running.dataplane_mut();
        for addr in hosts {
            let key = HostKey { addr };
            let refused = known
                .get(&addr)
                .is_some_and(|u| u.refused_flows != 0 || u.refused_ports != 0);
            let live = counts.get(&addr).copied();
            let write = match live {
                None if !refused => None,
                other => Some(other.unwrap_or_default()),
            };
            dataplane.correct_host(key, write)?;
        }
        Ok(())
    }

    fn report_refused_hosts(&mut self, now: Instant, known: &BTreeMap<[u8; 4], HostUsage>) {
        let limits = self.config.limits.clone();
        for (addr, usage) in known {
            let host = Ipv4Addr::from(*addr);
            let Some(finding) =
                self.host_limiter
                    .observe(host, usage.refused_flows, usage.refused_ports, now)
            else {
                continue;
            };
            let limit = format!(
                "{} flows, {} ports per uplink",
                limits.flows_per_host, limits.ports_per_host
            );
            let event = match finding {
                Finding::Started { flows, ports } => {
                    warn!(%host, refused_flows = flows, refused_ports = ports, %limit, "a LAN host reached its limit: its new flows are dropped");
                    Event::now(
                        events::kind::HOST_LIMIT,
                        "",
                        "ok",
                        "limited",
                        "a LAN host reached its limit: its new flows are dropped, its other flows go on",
                    )
                    .with_evidence("host", host.to_string())
                    .with_evidence("refused_flows", flows.to_string())
                    .with_evidence("refused_ports", ports.to_string())
                    .with_evidence("limit", limit)
                }
                Finding::Continuing { flows, ports } => {
                    warn!(%host, refused_flows = flows, refused_ports = ports, %limit, "a LAN host is still at its limit (refusals in the last minute)");
                    continue;
                }
                Finding::Ended => {
                    info!(%host, "a LAN host is no longer refused new flows");
                    Event::now(
                        events::kind::HOST_LIMIT,
                        "",
                        "limited",
                        "ok",
                        "no new flow of the host was refused for a minute",
                    )
                    .with_evidence("host", host.to_string())
                }
            };
            self.log(event);
        }
    }
}

#[cfg(test)]
mod tests {
    use failover_common::{classify::ip_proto, nat::tcp_state};

    use super::*;

    const SECOND: u64 = 1_000_000_000;

    fn flow(lan: [u8; 4], remote_port: u16, last_seen_s: u64) -> (FlowKey, Flow) {
        (
            FlowKey {
                lan_addr: lan,
                remote_addr: [203, 0, 113, 10],
                lan_port: 40000u16.to_be_bytes(),
                remote_port: remote_port.to_be_bytes(),
                proto: ip_proto::UDP,
                ..FlowKey::default()
            },
            Flow {
                last_seen_ns: last_seen_s * SECOND,
                state: tcp_state::OPENING,
                ..Flow::default()
            },
        )
    }

    fn port(lan: [u8; 4], ext_port: u16, slot: u8, last_seen_s: u64) -> (ReverseKey, Binding) {
        (
            ReverseKey {
                ext_port: ext_port.to_be_bytes(),
                proto: ip_proto::UDP,
                uplink: slot,
            },
            Binding {
                last_seen_ns: last_seen_s * SECOND,
                lan_addr: lan,
                ..Binding::default()
            },
        )
    }

    #[test]
    fn recount_counts_live_flows_and_ports_per_host_and_uplink() {
        let (a, b) = ([10, 0, 0, 11], [10, 0, 0, 12]);
        let now = 1000;
        let udp = nat::timeout::UDP_S;
        let flows = [
            flow(a, 1, now),
            flow(a, 2, now - udp + 1),
            flow(a, 3, now - udp - 1), // expired, still in the table
            flow(b, 1, now),
        ];
        let ports = [
            port(a, 2000, 0, now),
            port(a, 2001, 1, now),
            port(a, 2002, 1, now - udp - 1), // expired
            port(b, 2003, 1, now),
        ];
        let counts = recount(&flows, &ports, now * SECOND);
        assert_eq!(counts[&a].0, 2);
        assert_eq!(counts[&a].1[..2], [1, 1]);
        assert_eq!(counts[&b].0, 1);
        assert_eq!(counts[&b].1[..2], [0, 1]);
        assert_eq!(counts.len(), 2);
    }

    #[test]
    fn refusals_are_reported_once_then_at_most_every_minute_then_ended() {
        let host = Ipv4Addr::new(10, 0, 0, 12);
        let mut limiter = HostLimiter::default();
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        assert_eq!(limiter.observe(host, 0, 0, at(0)), None, "never refused");
        assert_eq!(
            limiter.observe(host, 100, 3, at(5)),
            Some(Finding::Started {
                flows: 100,
                ports: 3
            })
        );
        assert_eq!(
            limiter.observe(host, 500, 3, at(10)),
            None,
            "within the minute"
        );
        assert_eq!(
            limiter.observe(host, 900, 4, at(66)),
            Some(Finding::Continuing {
                flows: 800,
                ports: 1
            })
        );
        assert_eq!(
            limiter.observe(host, 900, 4, at(100)),
            None,
            "quiet, not yet a minute"
        );
        assert_eq!(limiter.observe(host, 900, 4, at(126)), Some(Finding::Ended));
        assert_eq!(limiter.observe(host, 900, 4, at(200)), None, "ended once");
        assert_eq!(
            limiter.observe(host, 950, 4, at(205)),
            Some(Finding::Started {
                flows: 50,
                ports: 0
            }),
            "a new episode counts from the last report"
        );
    }

    #[test]
    fn refused_hosts_remembered_are_bounded() {
        let mut limiter = HostLimiter::default();
        let t0 = Instant::now();
        for n in 0..2000u32 {
            let _ = limiter.observe(Ipv4Addr::from(0x0a0a_0000 + n), 1, 0, t0);
        }
        assert_eq!(limiter.refused.len(), REMEMBERED);
    }

    #[test]
    fn an_evicted_entry_starting_again_is_not_lost() {
        let host = Ipv4Addr::new(10, 0, 0, 12);
        let mut limiter = HostLimiter::default();
        let t0 = Instant::now();
        let _ = limiter.observe(host, 1000, 0, t0);
        assert_eq!(
            limiter.observe(host, 10, 0, t0 + REPORT_EVERY),
            Some(Finding::Continuing {
                flows: 10,
                ports: 0
            })
        );
    }
}
