//! The configuration file (TOML): the one place that names every setting and its default.
//!
//! A user with fiber and 4G writes a few lines:
//!
//! ```toml
//! lan = ["lan0"]
//!
//! [[uplink]]
//! name = "fiber"
//! interface = "eth1"
//!
//! [[uplink]]
//! name = "lte"
//! interface = "wwan0"
//! metered = true
//! mss = 1360
//! ```
//!
//! Everything else has a safe default, documented on its field and shown in
//! `docs/failover.example.toml`.
//!
//! [`load`] and [`parse`] are the only ways in: they check the file's shape and every rule
//! between values (in `config/validate.rs`) and return either a valid [`Config`] or every
//! problem found, each with its line, column and a hint. Loading is pure, so a reload that
//! meets an invalid file reports it and keeps running with the config it has.

mod dns;
mod error;
mod forward;
mod summary;
mod validate;

pub use dns::{DnsConfig, DnsServer};
pub use error::{ConfigError, Problem};
pub use forward::{
    ForwardConfig, ForwardEntry, ForwardProto, ForwardTo, PortSpan, reachability_warning,
    unreachable_from_internet,
};

use std::{
    net::{Ipv4Addr, SocketAddr, SocketAddrV4},
    path::{Path, PathBuf},
    time::Duration,
};

use serde::Deserialize;
use toml::de::DeTable;

/// Where `failover` looks for its config when `-c` is not given.
pub const DEFAULT_PATH: &str = "/etc/failover/failover.toml";

/// The whole file.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The LAN interface(s) whose outbound traffic is steered.
    pub lan: Vec<String>,
    /// The uplinks, in order of preference unless `priority` says otherwise.
    #[serde(rename = "uplink")]
    pub uplinks: Vec<UplinkConfig>,
    /// Ports of the uplinks' addresses that lead to LAN hosts (servers reachable from the
    /// internet); default none.
    #[serde(rename = "forward", default)]
    pub forwards: Vec<ForwardConfig>,
    /// DNS records kept pointed at the uplink carrying new flows; default none.
    pub dns: Option<DnsConfig>,
    #[serde(default)]
    pub health: HealthConfig,
    #[serde(default)]
    pub control: ControlConfig,
    #[serde(default)]
    pub events: EventsConfig,
    #[serde(default)]
    pub metrics: MetricsConfig,
    #[serde(default)]
    pub logging: LoggingConfig,
    #[serde(default)]
    pub limits: LimitsConfig,
    /// Generic (skb) XDP instead of the driver's native XDP, for drivers without XDP support.
    #[serde(default)]
    pub skb_mode: bool,
    /// The LAN interface's data path: `"auto"` (from what the kernel says), `"xdp"` or `"tc"`.
    #[serde(default)]
    pub lan_datapath: crate::datapath::Mode,
    /// Where state that survives a restart is kept (the manual override).
    #[serde(default = "defaults::state_dir")]
    pub state_dir: PathBuf,
    /// Where the data plane's maps and program links are pinned (on the BPF filesystem), so
    /// it keeps forwarding while the controller restarts.
    #[serde(default = "defaults::pin_dir")]
    pub pin_dir: PathBuf,
}

/// One `[[uplink]]`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UplinkConfig {
    /// A short name for the CLI and the logs (`fiber`, `lte`).
    pub name: String,
    /// The network interface (`eth1`, `wwan0`).
    pub interface: String,
    /// Lower is preferred; default: the uplink's position in the file (1, 2, ...).
    pub priority: Option<u32>,
    /// Share of new flows among up uplinks of equal priority (weighted balancing); default 1.
    #[serde(default = "defaults::weight")]
    pub weight: u32,
    /// The ISP gateway; default: learned from the routes through the interface.
    pub gateway: Option<Ipv4Addr>,
    /// Far probe targets; default: [`defaults::TARGETS`]. Each is `icmp:IP`, `tcp:IP:PORT`,
    /// `dns:IP` (an A query for `[health] dns_name`) or `http://IP[:PORT]/PATH`.
    pub targets: Option<Vec<Target>>,
    /// A metered uplink (4G) is probed more slowly while it is on standby.
    #[serde(default)]
    pub metered: bool,
    /// Clamp the MSS of TCP SYNs through this uplink (for a path with a smaller MTU); default off.
    pub mss: Option<u16>,
    /// Source ports (and ICMP ids) handed out for translated flows, `"MIN-MAX"`; default
    /// `"1024-32767"`, below the kernel's local port range.
    #[serde(default = "defaults::ports")]
    pub ports: String,
    /// After the preferred uplink is back: `"keep"` flows on this uplink running until they
    /// end (default), or `"move"` them after `drain` (a metered backup wants that).
    #[serde(default)]
    pub failback: FailbackMode,
    /// How long flows stay on this uplink after failback before they are moved (with `"move"`).
    #[serde(default = "defaults::drain", with = "humantime_serde")]
    pub drain: Duration,
    /// The interface's data path: `"auto"` (from what the kernel says), `"xdp"` or `"tc"`.
    #[serde(default)]
    pub datapath: crate::datapath::Mode,
    /// The address the internet reaches this uplink's forwards at, when it is not the
    /// interface's own: a tunnel to a host with a public address that forwards the ports into
    /// it (the way out of carrier-grade NAT); default: the interface's address.
    pub public_address: Option<Ipv4Addr>,
    /// `ports` parsed, filled in by validation so users of the config never parse it again.
    #[serde(skip)]
    port_range: (u16, u16),
}

impl UplinkConfig {
    /// The far probe targets: the configured ones or [`defaults::TARGETS`].
    #[must_use]
    pub fn targets_or_default(&self) -> Vec<Target> {
        match &self.targets {
            Some(targets) => targets.clone(),
            None => defaults::targets(),
        }
    }

    /// The priority: the configured one or, by default, `index + 1` where `index` is the
    /// uplink's 0-based position in [`Config::uplinks`].
    #[must_use]
    pub fn priority_or_position(&self, index: usize) -> u32 {
        self.priority
            .unwrap_or_else(|| u32::try_from(index + 1).unwrap_or(u32::MAX))
    }

    /// `ports` as `(min, max)`, both inclusive. Parsed once by [`parse`] and [`load`]; a
    /// `Config` deserialized any other way skips validation and has `(0, 0)` here.
    #[must_use]
    pub fn port_range(&self) -> (u16, u16) {
        self.port_range
    }
}

impl Config {
    /// Every entry of the data plane's forward table, from `[[forward]]`.
    #[must_use]
    pub fn forward_entries(&self) -> Vec<ForwardEntry> {
        forward::entries(&self.forwards, &self.uplink_names())
    }

    /// The uplinks' names, in slot order.
    #[must_use]
    pub fn uplink_names(&self) -> Vec<&str> {
        self.uplinks.iter().map(|u| u.name.as_str()).collect()
    }
}

/// Parses `"MIN-MAX"` with `1 <= MIN <= MAX`.
pub fn parse_port_range(text: &str) -> Result<(u16, u16), String> {
    let (min, max) = text
        .split_once('-')
        .ok_or_else(|| format!("ports `{text}` is not `MIN-MAX`"))?;
    let number = |part: &str| {
        part.trim()
            .parse::<u16>()
            .map_err(|_| format!("ports `{text}`: `{part}` is not a port number (1-65535)"))
    };
    let (min, max) = (number(min)?, number(max)?);
    if min == 0 || min > max {
        return Err(format!("ports `{text}`: need 1 <= MIN <= MAX"));
    }
    Ok((min, max))
}

/// A far probe target, written `icmp:IP`, `tcp:IP:PORT`, `dns:IP` or `http://IP[:PORT]/PATH`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(try_from = "String")]
pub enum Target {
    /// ICMP echo.
    Icmp(Ipv4Addr),
    /// A TCP handshake.
    Tcp(SocketAddrV4),
    /// A DNS query (UDP, port 53) for `[health] dns_name`; any answer counts.
    Dns(Ipv4Addr),
    /// An HTTP GET; any HTTP response counts.
    Http { addr: SocketAddrV4, path: String },
}

impl std::str::FromStr for Target {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = |what: &str| {
            format!(
                "probe target `{text}`: {what} (expected icmp:IP, tcp:IP:PORT, dns:IP or http://IP[:PORT]/PATH)"
            )
        };
        if let Some(rest) = text.strip_prefix("http://") {
            let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
            let addr = host
                .parse::<SocketAddrV4>()
                .or_else(|_| host.parse::<Ipv4Addr>().map(|ip| SocketAddrV4::new(ip, 80)))
                .map_err(|_| bad("the host must be an IPv4 address, optionally with :PORT"))?;
            return Ok(Self::Http {
                addr,
                path: format!("/{path}"),
            });
        }
        let (kind, rest) = text.split_once(':').ok_or_else(|| bad("no kind"))?;
        match kind {
            "icmp" => rest
                .parse()
                .map(Self::Icmp)
                .map_err(|_| bad("not an IPv4 address")),
            "dns" => rest
                .parse()
                .map(Self::Dns)
                .map_err(|_| bad("not an IPv4 address")),
            "tcp" => rest.parse().map(Self::Tcp).map_err(|_| bad("not IP:PORT")),
            _ => Err(bad("unknown kind")),
        }
    }
}

impl TryFrom<String> for Target {
    type Error = String;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        text.parse()
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Icmp(ip) => write!(f, "icmp:{ip}"),
            Self::Tcp(addr) => write!(f, "tcp:{addr}"),
            Self::Dns(ip) => write!(f, "dns:{ip}"),
            Self::Http { addr, path } => write!(f, "http://{addr}{path}"),
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FailbackMode {
    #[default]
    Keep,
    Move,
}

/// `[health]`: probing and the up/degraded/down decision.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthConfig {
    /// Probe interval per target on an active or unmetered uplink.
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    /// Probe interval per target on a metered uplink in standby.
    #[serde(with = "humantime_serde")]
    pub metered_standby_interval: Duration,
    /// A probe unanswered after this long counts as lost.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Probe the gateway with ARP and ICMP echo (besides the far targets).
    pub gateway_probes: bool,
    /// No reply from the gateway (ARP or ICMP) for this long: the uplink is down.
    #[serde(with = "humantime_serde")]
    pub gateway_down_after: Duration,
    /// Fewer than `quorum` far targets answered within this long: the uplink is down.
    #[serde(with = "humantime_serde")]
    pub targets_down_after: Duration,
    /// How many far targets must answer (k of n); default: a majority of the uplink's targets.
    pub quorum: Option<usize>,
    /// Probes per target kept for loss, RTT and jitter.
    pub window: usize,
    /// Loss over the window (percent) at which an up uplink counts as degraded.
    pub degraded_loss_percent: u8,
    /// Median RTT over the window at which an up uplink counts as degraded.
    #[serde(with = "humantime_serde")]
    pub degraded_rtt: Duration,
    /// A down uplink must answer without a gap for this long to count as up again.
    #[serde(with = "humantime_serde")]
    pub up_after: Duration,
    /// Fail back to a preferred uplink only after it has been healthy this long (counted from
    /// its first healthy probe, so `up_after` is part of it).
    #[serde(with = "humantime_serde")]
    pub hold_down: Duration,
    /// Flap damping: each failure of an uplink adds this penalty...
    pub flap_penalty: u32,
    /// ...which halves every `flap_half_life`...
    #[serde(with = "humantime_serde")]
    pub flap_half_life: Duration,
    /// ...and above `flap_suppress` the uplink is not failed back to until the penalty has
    /// decayed below `flap_reuse`.
    pub flap_suppress: u32,
    pub flap_reuse: u32,
    /// The name a DNS probe asks for.
    pub dns_name: String,
}

impl HealthConfig {
    /// How many of an uplink's `n_targets` far targets must answer: `quorum`, or by default a
    /// majority (`n / 2 + 1`).
    #[must_use]
    pub fn quorum_for(&self, n_targets: usize) -> usize {
        self.quorum.unwrap_or(n_targets / 2 + 1)
    }
}

impl Default for HealthConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_millis(100),
            metered_standby_interval: Duration::from_secs(1),
            timeout: Duration::from_millis(500),
            gateway_probes: true,
            gateway_down_after: Duration::from_millis(600),
            targets_down_after: Duration::from_secs(1),
            quorum: None,
            window: 50,
            degraded_loss_percent: 30,
            degraded_rtt: Duration::from_secs(1),
            up_after: Duration::from_secs(2),
            hold_down: Duration::from_secs(30),
            flap_penalty: 1000,
            flap_half_life: Duration::from_mins(1),
            flap_suppress: 2500,
            flap_reuse: 750,
            dns_name: "example.com".to_owned(),
        }
    }
}

/// `[control]`: the CLI's socket.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ControlConfig {
    /// A Unix socket only root can use.
    pub socket: PathBuf,
}

impl Default for ControlConfig {
    fn default() -> Self {
        Self {
            socket: PathBuf::from("/run/failover/control.sock"),
        }
    }
}

/// `[events]`: the persistent event log and the hook.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EventsConfig {
    /// Appended to, one JSON object a line; survives restarts.
    pub log: PathBuf,
    /// A command run on every state change with the details in `FAILOVER_*` environment
    /// variables; default none.
    pub hook: Option<PathBuf>,
}

impl Default for EventsConfig {
    fn default() -> Self {
        Self {
            log: PathBuf::from("/var/lib/failover/events.jsonl"),
            hook: None,
        }
    }
}

/// `[metrics]`: the Prometheus endpoint, off unless `listen` is set.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Where `GET /metrics` is answered (`"127.0.0.1:9469"`); default: nowhere. The endpoint
    /// has no authentication: keep it on loopback or a management network.
    pub listen: Option<SocketAddr>,
}

/// `[limits]`: what one LAN host may hold, so that a host opening flows fast (a port scan, a
/// torrent client, a compromised camera) cannot fill the NAT tables or an uplink's ports and
/// push out other hosts' flows. New flows past a limit are dropped and counted for the host;
/// its existing flows go on. 0 turns a limit off. Applied on reload.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Live flows per LAN host (a busy browser keeps a few hundred).
    pub flows_per_host: u32,
    /// External ports per LAN host on each uplink (one per local port a host talks from).
    pub ports_per_host: u32,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            flows_per_host: failover_common::limits::DEFAULT_FLOWS_PER_HOST,
            ports_per_host: failover_common::limits::DEFAULT_PORTS_PER_HOST,
        }
    }
}

/// `[logging]`. The controller's own log level is `RUST_LOG` (default `info`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoggingConfig {
    /// Messages from the XDP programs (resets sent, ports exhausted, failed redirects),
    /// forwarded to the controller's log at this level and above. Nothing logs per packet on
    /// the forwarding path.
    pub dataplane: DataplaneLog,
}

/// Discriminants are aya-log's levels (`AYA_LOG_LEVEL`), 0 for none.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
#[repr(u8)]
pub enum DataplaneLog {
    #[default]
    Off = 0,
    Error = 1,
    Warn = 2,
    Info = 3,
    Debug = 4,
}

impl DataplaneLog {
    /// The name the config file uses.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Off => "off",
            Self::Error => "error",
            Self::Warn => "warn",
            Self::Info => "info",
            Self::Debug => "debug",
        }
    }

    /// The data plane's `AYA_LOG_LEVEL`: statements above it are skipped in the kernel.
    #[must_use]
    pub fn level(self) -> u8 {
        self as u8
    }
}

pub mod defaults {
    use std::{path::PathBuf, time::Duration};

    /// Far targets when an uplink names none: three public anycast resolvers, answered by
    /// different operators, so one of them failing is not evidence against the uplink.
    pub const TARGETS: [&str; 3] = ["icmp:1.1.1.1", "icmp:8.8.8.8", "icmp:9.9.9.9"];

    pub(super) fn targets() -> Vec<super::Target> {
        TARGETS
            .iter()
            .map(|text| text.parse().expect("the default targets parse (tested)"))
            .collect()
    }

    pub(super) fn pin_dir() -> PathBuf {
        PathBuf::from(failover_common::names::PIN_DIR)
    }
    pub(super) fn state_dir() -> PathBuf {
        PathBuf::from("/var/lib/failover")
    }
    pub(super) fn weight() -> u32 {
        1
    }
    pub(super) fn ports() -> String {
        format!(
            "{}-{}",
            failover_common::nat::DEFAULT_PORT_MIN,
            failover_common::nat::DEFAULT_PORT_MAX
        )
    }
    pub(super) fn drain() -> Duration {
        Duration::from_mins(1)
    }
}

/// Reads and validates the config file at `path`.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse(&text, &path.display().to_string())
}

/// Parses and validates a config file's text; `origin` names it in errors (usually the path).
pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
    let invalid = |problems| ConfigError::Invalid {
        origin: origin.to_owned(),
        problems,
    };
    // Parsed once: the document keeps every value's span, so the semantic checks below can
    // point at the value they reject.
    let document = DeTable::parse(text).map_err(|e| invalid(vec![Problem::from_toml(text, &e)]))?;
    let mut config = Config::deserialize(toml::de::Deserializer::from(document.clone()))
        .map_err(|e| invalid(vec![Problem::from_toml(text, &e)]))?;
    let findings = validate::validate(&mut config);
    if findings.is_empty() {
        Ok(config)
    } else {
        Err(invalid(
            findings
                .into_iter()
                .map(|finding| finding.locate(text, &document))
                .collect(),
        ))
    }
}

#[cfg(test)]
mod tests;
