//! The rules between a config's values, checked on the typed [`Config`]; the file's shape and
//! each value's type were checked by deserialization.

use std::{collections::HashSet, time::Duration};

use failover_common::nat::{FORWARD_ENTRIES, MAX_UPLINKS};
use humantime::format_duration;

use crate::kernel_guard;

use hickory_proto::rr::Name;

use super::{
    Config, DnsConfig, HealthConfig, UplinkConfig,
    error::{Finding, SEE_EXAMPLE},
    parse_port_range,
};

/// Linux's IFNAMSIZ (16) minus the terminating NUL.
const IFNAME_MAX: usize = 15;
const MSS_RANGE: std::ops::RangeInclusive<u16> = 536..=9000;
/// RFC 2181 allows more, but a record that must follow a switch wants minutes at most.
const MAX_DNS_TTL: Duration = Duration::from_hours(24);

/// Checks every rule and fills in what validation computes (the parsed port ranges). Returns
/// every broken rule, so one run of `check-config` shows them all.
pub(super) fn validate(config: &mut Config) -> Vec<Finding> {
    let mut v = Validator::default();
    v.lan(&config.lan);
    v.uplinks(config);
    v.forwards(config);
    if let Some(dns) = &config.dns {
        v.dns(dns);
    }
    v.health(&config.health);
    if let Some(hook) = &config.events.hook
        && !hook.is_absolute()
    {
        v.fail(
            &["events.hook"],
            format!("hook `{}` is not an absolute path", hook.display()),
            "the daemon's working directory is /; write the full path of the command",
        );
    }
    v.findings
}

#[derive(Default)]
struct Validator {
    findings: Vec<Finding>,
}

impl Validator {
    fn fail(&mut self, at: &[&str], message: String, hint: impl Into<String>) {
        self.findings.push(Finding {
            at: at.iter().map(|&path| path.to_owned()).collect(),
            message,
            hint: hint.into(),
        });
    }

    fn lan(&mut self, lan: &[String]) {
        if lan.is_empty() {
            self.fail(
                &["lan"],
                "`lan` names no interface".to_owned(),
                "name the LAN interface(s) whose traffic is steered, e.g. lan = [\"lan0\"]",
            );
        }
        if lan.len() > 1 {
            self.fail(
                &["lan.1"],
                format!(
                    "`lan` names {} interfaces; this version steers one",
                    lan.len()
                ),
                "bridge the LAN ports (e.g. br-lan) and name the bridge",
            );
        }
        let mut seen = HashSet::new();
        for (i, name) in lan.iter().enumerate() {
            let at = format!("lan.{i}");
            self.interface_name(&at, name);
            if !seen.insert(name) {
                self.fail(
                    &[&at],
                    format!("LAN interface `{name}` is listed twice"),
                    "remove the duplicate",
                );
            }
        }
    }

    fn interface_name(&mut self, at: &str, name: &str) {
        if let Err(why) = check_interface_name(name) {
            self.fail(
                &[at],
                format!("`{name}` is not a valid interface name: {why}"),
                "use the name `ip link` shows (1-15 characters, no `/`, `:` or spaces)",
            );
        }
    }

    fn uplinks(&mut self, config: &mut Config) {
        let count = config.uplinks.len();
        if count == 0 {
            self.fail(
                &["uplink"],
                "no uplinks".to_owned(),
                format!("add an [[uplink]] table per uplink; {SEE_EXAMPLE}"),
            );
        } else if count > MAX_UPLINKS as usize {
            self.fail(
                &[&format!("uplink.{MAX_UPLINKS}"), "uplink"],
                format!("{count} uplinks; at most {MAX_UPLINKS} are supported"),
                "remove the uplinks you can do without",
            );
        }
        let mut names = HashSet::new();
        let mut interfaces = HashSet::new();
        for (i, uplink) in config.uplinks.iter_mut().enumerate() {
            let at = |key: &str| format!("uplink.{i}.{key}");
            let name = &uplink.name;
            self.name(
                &at("name"),
                "uplink",
                name,
                "\"fiber\" or \"lte\"",
                &mut names,
            );
            let interface = &uplink.interface;
            self.interface_name(&at("interface"), interface);
            if !interfaces.insert(interface.clone()) {
                self.fail(
                    &[&at("interface")],
                    format!("interface `{interface}` is used by two uplinks"),
                    "each uplink needs its own interface",
                );
            }
            if config.lan.contains(interface) {
                self.fail(
                    &[&at("interface")],
                    format!("uplink `{name}` uses LAN interface `{interface}`"),
                    "an interface is either LAN or an uplink; remove it from one of them",
                );
            }
            self.uplink_values(i, uplink);
            self.targets(i, uplink, &config.health);
        }
    }

    /// The checks of one uplink's own values; fills in its port range.
    fn uplink_values(&mut self, i: usize, uplink: &mut UplinkConfig) {
        let at = |key: &str| format!("uplink.{i}.{key}");
        match parse_port_range(&uplink.ports) {
            Ok(range) if kernel_guard::overlaps_safety_net(range) => {
                let (min, max) = kernel_guard::SAFETY_NET_PORTS;
                self.fail(
                    &[&at("ports")],
                    format!(
                        "ports `{}` overlap {min}-{max}, the kernel safety net's ports (fragments, ESP, GRE)",
                        uplink.ports
                    ),
                    "keep the range below 61000, e.g. \"1024-32767\"",
                );
            }
            Ok(range) => uplink.port_range = range,
            Err(why) => self.fail(
                &[&at("ports")],
                why,
                "write a range such as \"1024-32767\" (below the kernel's local port range)",
            ),
        }
        if let Some(mss) = uplink.mss
            && !MSS_RANGE.contains(&mss)
        {
            self.fail(
                &[&at("mss")],
                format!(
                    "mss {mss} is outside {}..={}",
                    MSS_RANGE.start(),
                    MSS_RANGE.end()
                ),
                "the MSS is the path MTU minus 40 (e.g. 1360 for a 1400-byte 4G MTU); \
                 remove `mss` to leave it unclamped",
            );
        }
        if uplink.weight == 0 {
            self.fail(
                &[&at("weight")],
                "weight 0".to_owned(),
                "weight is a share of new flows and must be at least 1; \
                 to keep an uplink as a backup, give it a higher priority number",
            );
        }
    }

    /// An uplink's probe targets, and the quorum against their number.
    fn targets(&mut self, i: usize, uplink: &UplinkConfig, health: &HealthConfig) {
        let at = format!("uplink.{i}.targets");
        let name = &uplink.name;
        let n_targets = match &uplink.targets {
            Some(targets) => {
                let distinct: HashSet<_> = targets.iter().collect();
                if targets.is_empty() {
                    self.fail(
                        &[&at],
                        format!("uplink `{name}` has an empty `targets` list"),
                        "list at least one target, or remove `targets` for the defaults",
                    );
                } else if distinct.len() < targets.len() {
                    self.fail(
                        &[&at],
                        format!("uplink `{name}` lists a probe target twice"),
                        "a target counted twice would skew the quorum; remove the duplicate",
                    );
                }
                targets.len()
            }
            None => super::defaults::TARGETS.len(),
        };
        let quorum = health.quorum_for(n_targets);
        if n_targets > 0 && quorum > n_targets {
            self.fail(
                &["health.quorum", &at],
                format!(
                    "quorum {quorum} is more than the {n_targets} probe targets of uplink `{name}`"
                ),
                "lower `quorum`, add targets, or remove `quorum` for a majority of each uplink's targets",
            );
        }
    }

    /// A `kind`'s name at `key`: 1-15 safe characters, and none given twice (`seen` holds the
    /// names so far).
    fn name(
        &mut self,
        key: &str,
        kind: &str,
        name: &str,
        examples: &str,
        seen: &mut HashSet<String>,
    ) {
        if let Err(why) = check_uplink_name(name) {
            self.fail(
                &[key],
                format!("{kind} name `{name}` {why}"),
                format!("use 1-15 of a-z, 0-9, `_` and `-`, e.g. {examples}"),
            );
        }
        if !seen.insert(name.to_owned()) {
            self.fail(
                &[key],
                format!("two {kind}s are named `{name}`"),
                format!("give each {kind} its own name"),
            );
        }
    }

    /// The `[[forward]]`s: names, uplinks, ports, and no port forwarded twice.
    fn forwards(&mut self, config: &Config) {
        let uplink_names = config.uplink_names();
        let mut names = HashSet::new();
        for (i, forward) in config.forwards.iter().enumerate() {
            let at = |key: &str| format!("forward.{i}.{key}");
            let name = &forward.name;
            self.name(
                &at("name"),
                "forward",
                name,
                "\"web\" or \"mail\"",
                &mut names,
            );
            if let Some(listed) = &forward.uplinks {
                if listed.is_empty() {
                    self.fail(
                        &[&at("uplinks")],
                        format!("forward `{name}` lists no uplink"),
                        "name the uplinks whose addresses answer, or remove `uplinks` for every uplink",
                    );
                }
                let mut seen = HashSet::new();
                for (j, uplink) in listed.iter().enumerate() {
                    if !uplink_names.contains(&uplink.as_str()) {
                        self.fail(
                            &[&format!("forward.{i}.uplinks.{j}"), &at("uplinks")],
                            format!(
                                "forward `{name}` names uplink `{uplink}`, which is not configured"
                            ),
                            format!("the uplinks are: {}", uplink_names.join(", ")),
                        );
                    } else if !seen.insert(uplink) {
                        self.fail(
                            &[&format!("forward.{i}.uplinks.{j}"), &at("uplinks")],
                            format!("forward `{name}` lists uplink `{uplink}` twice"),
                            "remove the duplicate",
                        );
                    }
                }
            }
            let span = forward.port;
            if kernel_guard::overlaps_safety_net((span.first, span.last)) {
                let (min, max) = kernel_guard::SAFETY_NET_PORTS;
                self.fail(
                    &[&at("port")],
                    format!("forward `{name}`: port {span} is in {min}-{max}, the kernel safety net's ports"),
                    "forward a port below 61000",
                );
            }
            if u32::from(forward.lan_first_port()) + span.count() - 1 > u32::from(u16::MAX) {
                self.fail(
                    &[&at("to")],
                    format!(
                        "forward `{name}`: {} ports from {} run past 65535",
                        span.count(),
                        forward.to
                    ),
                    "start the LAN host's range lower",
                );
            }
            if failover_common::nat::is_special_destination(forward.to.addr.octets())
                || forward.to.addr.is_unspecified()
            {
                self.fail(
                    &[&at("to")],
                    format!(
                        "forward `{name}`: {} is not a host's address",
                        forward.to.addr
                    ),
                    "name the LAN server's unicast address, e.g. \"10.10.0.11:8080\"",
                );
            }
            self.forward_overlaps(config, i, &uplink_names);
        }
        let entries = config.forward_entries().len();
        if entries > FORWARD_ENTRIES as usize {
            self.fail(
                &["forward"],
                format!(
                    "the forwards hold {entries} (uplink, protocol, port) entries; the data plane has room for {FORWARD_ENTRIES}"
                ),
                "forward narrower port ranges, or fewer uplinks per forward",
            );
        }
    }

    /// Forward `i` against the earlier ones: one port of one uplink leads to one host.
    fn forward_overlaps(&mut self, config: &Config, i: usize, uplink_names: &[&str]) {
        let forward = &config.forwards[i];
        let uplinks = forward.uplink_indices(uplink_names);
        for earlier in &config.forwards[..i] {
            let shared_proto = forward
                .proto
                .protocols()
                .iter()
                .any(|p| earlier.proto.protocols().contains(p));
            let shared_uplink = earlier
                .uplink_indices(uplink_names)
                .into_iter()
                .find(|u| uplinks.contains(u));
            if let Some(uplink) = shared_uplink
                && shared_proto
                && forward.port.overlaps(earlier.port)
            {
                self.fail(
                    &[&format!("forward.{i}.port")],
                    format!(
                        "forwards `{}` and `{}` both take {} port {} on uplink `{}`",
                        earlier.name,
                        forward.name,
                        forward.proto.name(),
                        forward.port,
                        uplink_names[uplink]
                    ),
                    "a port of an uplink leads to one LAN host: change a port, or narrow `uplinks`",
                );
                return;
            }
        }
    }

    /// `[dns]`: a zone and names inside it, a TTL in whole seconds.
    fn dns(&mut self, dns: &DnsConfig) {
        let zone = match Name::from_ascii(&dns.zone) {
            Ok(zone) if !dns.zone.trim().is_empty() => Some(zone),
            _ => {
                self.fail(
                    &["dns.zone"],
                    format!("zone `{}` is not a domain name", dns.zone),
                    "name the zone the records are in, e.g. \"example.com\"",
                );
                None
            }
        };
        if dns.records.is_empty() {
            self.fail(
                &["dns.records"],
                "`records` names no record".to_owned(),
                "list the names to keep pointed at the carrying uplink, e.g. [\"www.example.com\"]",
            );
        }
        let mut seen = HashSet::new();
        for (i, record) in dns.records.iter().enumerate() {
            let at = format!("dns.records.{i}");
            match Name::from_ascii(record) {
                Err(_) => self.fail(
                    &[&at, "dns.records"],
                    format!("record `{record}` is not a domain name"),
                    "write a name such as \"www.example.com\"",
                ),
                Ok(name) => {
                    if let Some(zone) = &zone
                        && !zone.zone_of(&name)
                    {
                        self.fail(
                            &[&at, "dns.records"],
                            format!("record `{record}` is not in zone `{}`", dns.zone),
                            "the server updates only names inside the zone; name the zone that holds it",
                        );
                    }
                    if !seen.insert(name.to_lowercase()) {
                        self.fail(
                            &[&at, "dns.records"],
                            format!("record `{record}` is listed twice"),
                            "list each name once",
                        );
                    }
                }
            }
        }
        if dns.ttl.is_zero() || dns.ttl.subsec_nanos() != 0 || dns.ttl > MAX_DNS_TTL {
            self.fail(
                &["dns.ttl"],
                format!(
                    "ttl {} is not a whole number of seconds from 1 s to 1 day",
                    show(dns.ttl)
                ),
                "a short TTL lets resolvers follow a switch soon, e.g. \"30s\"",
            );
        }
        if dns.timeout.is_zero() {
            self.fail(
                &["dns.timeout"],
                "`timeout` is zero".to_owned(),
                "give a duration such as \"2s\", or remove it",
            );
        }
        if dns.server.0.ip().is_unspecified() || dns.server.0.port() == 0 {
            self.fail(
                &["dns.server"],
                format!("server {} is not a server's address", dns.server),
                "name the zone's primary server, e.g. \"192.0.2.53\"",
            );
        }
    }

    fn health(&mut self, health: &HealthConfig) {
        // `hold_down` may be zero: fail back as soon as the preferred uplink counts as up.
        for (key, value) in [
            ("interval", health.interval),
            ("metered_standby_interval", health.metered_standby_interval),
            ("timeout", health.timeout),
            ("gateway_down_after", health.gateway_down_after),
            ("targets_down_after", health.targets_down_after),
            ("degraded_rtt", health.degraded_rtt),
            ("up_after", health.up_after),
            ("flap_half_life", health.flap_half_life),
        ] {
            if value.is_zero() {
                self.fail(
                    &[&format!("health.{key}")],
                    format!("`{key}` is zero"),
                    format!("give a duration such as \"500ms\", or remove it; {SEE_EXAMPLE}"),
                );
            }
        }
        for (key, down_after) in [
            ("gateway_down_after", health.gateway_down_after),
            ("targets_down_after", health.targets_down_after),
        ] {
            if health.timeout >= down_after {
                self.fail(
                    &["health.timeout", &format!("health.{key}")],
                    format!(
                        "timeout ({}) is not shorter than {key} ({})",
                        show(health.timeout),
                        show(down_after)
                    ),
                    format!(
                        "a lost probe must time out before the uplink can be declared down; \
                         lower `timeout` or raise `{key}`"
                    ),
                );
            }
        }
        if health.quorum == Some(0) {
            self.fail(
                &["health.quorum"],
                "quorum 0 would count an uplink whose targets all fail as up".to_owned(),
                "use at least 1, or remove `quorum` for a majority of each uplink's targets",
            );
        }
        if !(1..=100).contains(&health.degraded_loss_percent) {
            self.fail(
                &["health.degraded_loss_percent"],
                format!(
                    "degraded_loss_percent {} is outside 1..=100",
                    health.degraded_loss_percent
                ),
                "a percentage of lost probes, e.g. 30",
            );
        }
        if health.flap_reuse >= health.flap_suppress {
            self.fail(
                &["health.flap_reuse", "health.flap_suppress"],
                format!(
                    "flap_reuse ({}) is not below flap_suppress ({})",
                    health.flap_reuse, health.flap_suppress
                ),
                "the penalty must decay below `flap_reuse` after exceeding `flap_suppress`; \
                 keep flap_reuse < flap_suppress",
            );
        }
        if health.window == 0 {
            self.fail(
                &["health.window"],
                "window 0 keeps no probes to measure loss and RTT over".to_owned(),
                "use at least 1 (the default is 50)",
            );
        }
        if health.dns_name.trim().is_empty() {
            self.fail(
                &["health.dns_name"],
                "dns_name is empty".to_owned(),
                "name a domain that always resolves, e.g. \"example.com\"",
            );
        }
    }
}

fn show(duration: Duration) -> String {
    format_duration(duration).to_string()
}

/// The kernel's rules for a device name (`dev_valid_name`).
fn check_interface_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        Err("empty")
    } else if name.len() > IFNAME_MAX {
        Err("longer than 15 bytes")
    } else if name == "." || name == ".." {
        Err("reserved")
    } else if name
        .chars()
        .any(|c| c == '/' || c == ':' || c.is_whitespace())
    {
        Err("contains `/`, `:` or whitespace")
    } else {
        Ok(())
    }
}

/// `[a-z0-9_-]{1,15}`: short enough for logs and the CLI, safe in a hook's environment.
fn check_uplink_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() || name.len() > IFNAME_MAX {
        Err("must be 1-15 characters long")
    } else if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
    {
        Err("has characters other than a-z, 0-9, `_` and `-`")
    } else {
        Ok(())
    }
}
