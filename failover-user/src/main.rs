//! The `failover` command.

use std::{
    path::{Path, PathBuf},
    process::ExitCode,
    time::SystemTime,
};

use anyhow::Context as _;
use clap::{CommandFactory as _, Parser, Subcommand};
use failover_user::{
    config::{self, Config},
    control::{self, Request, Response},
    dataplane::TableSizes,
    events, loader,
};
use serde::Serialize;

/// Multi-uplink failover router with an eBPF (XDP) data plane.
#[derive(Parser)]
#[command(name = "failover", version, about)]
struct Cli {
    /// The config file.
    #[arg(short, long, global = true, value_name = "PATH", default_value = config::DEFAULT_PATH)]
    config: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the controller: load the data plane (or adopt the one left running), probe every
    /// uplink, move traffic when one fails, and answer `status`, `switch` and `auto`. Stops on
    /// Ctrl-C or SIGTERM, leaving the data plane forwarding; SIGHUP re-reads the config.
    Run {
        /// When stopping, detach the data plane and remove its pins instead.
        #[arg(long)]
        detach: bool,
    },
    /// Remove a data plane left running by a stopped controller (this drops its NAT table).
    Detach,
    /// Show each uplink's state, the active one, RTT, loss and traffic.
    Status {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Force new flows onto uplink NAME (regardless of its health) until `failover auto`.
    Switch {
        /// The uplink's name in the config.
        name: String,
        /// End the override after this long (e.g. `30m`, `2h`).
        #[arg(long = "for", value_name = "DURATION", value_parser = humantime::parse_duration)]
        duration: Option<std::time::Duration>,
    },
    /// End an override: choose the uplink by health again.
    Auto,
    /// List the NAT table: each flow's LAN and remote address and port, protocol, uplink,
    /// external port, TCP state and idle time.
    Flows {
        /// Only the flows of this uplink.
        #[arg(long, value_name = "NAME")]
        uplink: Option<String>,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Show the event log (state changes, switches, overrides), oldest first. Reads the log
    /// file named in the config, so it works without a running daemon.
    Events {
        /// Only events from T on: an RFC 3339 time (`2026-11-25T10:00:00Z`) or a duration
        /// ago (`1h`, `30m`).
        #[arg(long, value_name = "T", value_parser = since_now)]
        since: Option<SystemTime>,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// An outage report on uplink NAME for the ISP's support desk: its events of the last
    /// 24 hours, link state (carrier, speed, duplex), the gateway's ARP and ICMP answers, each
    /// far target's answers, and the uplink's IP configuration with both MAC addresses.
    Report {
        /// The uplink's name in the config.
        name: String,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Print a shell completion script, e.g.
    /// `failover completions bash > /etc/bash_completion.d/failover`.
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// Load the data plane, attach it to the LAN and uplink interfaces, send new flows through
    /// the active uplink, and keep it attached until interrupted (Ctrl-C or SIGTERM).
    Attach {
        /// The LAN interface.
        #[arg(long)]
        lan: String,
        /// An uplink: NAME=INTERFACE[,gateway=IP][,mss=N][,ports=MIN-MAX][,datapath=MODE].
        /// Repeat for each.
        #[arg(long = "uplink", required = true)]
        uplinks: Vec<loader::UplinkSpec>,
        /// The uplink new flows take.
        #[arg(long)]
        active: String,
        /// Use generic (skb) XDP, for drivers without native XDP.
        #[arg(long)]
        skb_mode: bool,
        /// The LAN's data path: auto, xdp or tc.
        #[arg(long, default_value = "auto")]
        lan_datapath: failover_user::datapath::Mode,
    },
    /// Check a config file: print `FILE: ok` and the effective config, or every problem with
    /// its line and column (exit status 1).
    CheckConfig {
        /// The file to check; default: the `--config` file.
        file: Option<PathBuf>,
    },
}

fn main() -> anyhow::Result<ExitCode> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::CheckConfig { file } => Ok(check_config(&file.unwrap_or(cli.config))),
        Command::Detach => detach(&cli.config),
        Command::Run { detach } => {
            let config = match config::load(&cli.config) {
                Ok(config) => config,
                Err(e) => {
                    eprintln!("{e}");
                    return Ok(ExitCode::FAILURE);
                }
            };
            runtime()?.block_on(failover_user::daemon::run(config, &cli.config, detach))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Status { json } => reply(&cli.config, &Request::Status, |r| {
            print(r.status, json, status_table)
        }),
        Command::Switch { name, duration } => reply(
            &cli.config,
            &Request::Switch {
                uplink: name,
                for_secs: duration.map(|d| d.as_secs().max(1)),
            },
            print_message,
        ),
        Command::Auto => reply(&cli.config, &Request::Auto, print_message),
        Command::Flows { uplink, json } => reply(&cli.config, &Request::Flows { uplink }, |r| {
            print(r.flows, json, |flows| control::flows_table(flows))
        }),
        Command::Report { name, json } => {
            reply(&cli.config, &Request::Report { uplink: name }, |r| {
                print(r.report, json, ToString::to_string)
            })
        }
        Command::Events { since, json } => {
            let log = loaded(&cli.config)
                .map_or_else(|| config::EventsConfig::default().log, |c| c.events.log);
            let events = events::read_since(&log, since)
                .with_context(|| format!("reading the event log {}", log.display()))?;
            if events.is_empty() && !json {
                eprintln!("failover: no events in {}", log.display());
            }
            print(Some(events), json, |events| {
                events
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("\n")
            })?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "failover",
                &mut std::io::stdout(),
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Attach {
            lan,
            uplinks,
            active,
            skb_mode,
            lan_datapath,
        } => {
            let spec = loader::LoaderSpec {
                dataplane_log: failover_user::config::DataplaneLog::Off,
                pins: None,
                lan,
                uplinks,
                active,
                skb_mode,
                lan_datapath,
                tables: TableSizes::default(),
            };
            runtime()?.block_on(async {
                let _running = loader::start(&spec)
                    .await
                    .context("starting the data plane")?;
                println!("failover: data plane attached; Ctrl-C to detach");
                wait_for_shutdown().await
            })?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// Prints the verdict itself: a config error is the expected answer here, not a failure of the
/// program, so it gets no `Error:` prefix or backtrace.
fn check_config(file: &Path) -> ExitCode {
    let config = match config::load(file) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    // The daemon reads the key at start; an unusable one is an error here too.
    if let Some(dns) = &config.dns
        && let Err(e) = failover_user::dns_update::Settings::new(dns)
    {
        eprintln!("{}: [dns]: {e}", file.display());
        return ExitCode::FAILURE;
    }
    println!("{}: ok\n{}", file.display(), config.summary());
    for warning in reachability_warnings(&config) {
        println!("{warning}");
    }
    ExitCode::SUCCESS
}

/// Forwards and `[dns]` records the internet cannot reach: on an uplink whose address (read from its interface
/// when present on this machine, or its `public_address`) is carrier-grade NAT or private.
fn reachability_warnings(config: &config::Config) -> Vec<String> {
    if config.forwards.is_empty() && config.dns.is_none() {
        return Vec::new();
    }
    let names = config.uplink_names();
    let addresses: Vec<Option<(std::net::Ipv4Addr, bool)>> = match runtime() {
        Ok(runtime) => runtime.block_on(async {
            let netlink = failover_user::netlink::Netlink::connect().ok();
            let mut found = Vec::new();
            for uplink in &config.uplinks {
                let address = match (uplink.public_address, &netlink) {
                    (Some(public), _) => Some((public, true)),
                    (None, Some(netlink)) => match netlink.link(&uplink.interface).await {
                        Ok(link) => netlink
                            .ipv4(link.index)
                            .await
                            .ok()
                            .flatten()
                            .map(|(a, _)| (a, false)),
                        Err(_) => None,
                    },
                    (None, None) => None,
                };
                found.push(address);
            }
            found
        }),
        Err(_) => return Vec::new(),
    };
    let mut warnings = Vec::new();
    let mut warn = |subject: &str, index: usize| {
        if let Some(Some((addr, public))) = addresses.get(index)
            && let Some(warning) =
                config::reachability_warning(subject, names[index], *addr, *public)
        {
            warnings.push(warning);
        }
    };
    for forward in &config.forwards {
        for index in forward.uplink_indices(&names) {
            warn(&format!("forward `{}`", forward.name), index);
        }
    }
    // The records follow whichever uplink carries: each one may be the address they get.
    if config.dns.is_some() {
        for index in 0..names.len() {
            warn("the [dns] records", index);
        }
    }
    warnings
}

/// `failover detach`: only when no controller is running (it would keep using the maps).
fn detach(config_path: &Path) -> anyhow::Result<ExitCode> {
    let config = match config::load(config_path) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("{e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    if runtime()?
        .block_on(control::request(&config.control.socket, &Request::Status))
        .is_ok()
    {
        eprintln!(
            "failover: the controller is running; stop it first (or run it with --detach and stop it)"
        );
        return Ok(ExitCode::FAILURE);
    }
    let pins = failover_user::pins::Pins::new(&config.pin_dir);
    failover_user::loader::remove_dataplane(&pins)?;
    println!(
        "data plane detached; {}, the leak guard and the hairpin NAT (nftables tables ip {} and ip {}) removed",
        pins.dir().display(),
        failover_common::names::NFT_TABLE,
        failover_common::names::NFT_HAIRPIN_TABLE
    );
    Ok(ExitCode::SUCCESS)
}

/// The config at `path`, if it loads: without one, the read-only commands use the defaults
/// (control socket, event log).
fn loaded(path: &Path) -> Option<Config> {
    config::load(path).ok()
}

/// `--since T`, relative to now.
fn since_now(text: &str) -> Result<SystemTime, String> {
    events::parse_since(text, SystemTime::now())
}

/// Sends a request to the running daemon (its socket is named in the config, or the
/// default when there is no config file) and shows its answer with `show`; prints why when
/// there is no daemon or it refuses.
fn reply(
    config_path: &Path,
    request: &Request,
    show: impl FnOnce(Response) -> anyhow::Result<()>,
) -> anyhow::Result<ExitCode> {
    let socket = loaded(config_path).map_or_else(
        || config::ControlConfig::default().socket,
        |c| c.control.socket,
    );
    let response = match runtime()?.block_on(control::request(&socket, request)) {
        Ok(response) => response,
        Err(e) => {
            eprintln!("failover: {e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    if !response.ok {
        eprintln!(
            "failover: {}",
            response.error.as_deref().unwrap_or("the daemon refused")
        );
        return Ok(ExitCode::FAILURE);
    }
    show(response)?;
    Ok(ExitCode::SUCCESS)
}

/// Prints the answer's `value` as JSON (`--json`) or as `text` renders it.
fn print<T: Serialize>(
    value: Option<T>,
    json: bool,
    text: impl FnOnce(&T) -> String,
) -> anyhow::Result<()> {
    let value = value.context("the daemon's answer lacks what was asked (a different version?)")?;
    if json {
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        let text = text(&value);
        print!("{text}");
        if !text.is_empty() && !text.ends_with('\n') {
            println!();
        }
    }
    Ok(())
}

#[expect(clippy::unnecessary_wraps, reason = "the shape `reply` takes")]
fn print_message(response: Response) -> anyhow::Result<()> {
    println!("{}", response.message.unwrap_or_default());
    Ok(())
}

fn status_table(status: &control::StatusReport) -> String {
    use std::fmt::Write as _;
    let mut out = format!(
        "{:<2}{:<10}{:<10}{:<10}{:>9}{:>9}{:>6}  {:<16}{:<16}{:<18}{:>12}{:>11}{:>12}{:>11}\n",
        "",
        "UPLINK",
        "IFACE",
        "STATE",
        "SINCE",
        "RTT",
        "LOSS",
        "ADDRESS",
        "GATEWAY",
        "GATEWAY MAC",
        "PKTS OUT",
        "BYTES OUT",
        "PKTS IN",
        "BYTES IN"
    );
    let dash = || "-".to_owned();
    for u in &status.uplinks {
        let _ = writeln!(
            out,
            "{:<2}{:<10}{:<10}{:<10}{:>8.1}s{:>9}{:>5}%  {:<16}{:<16}{:<18}{:>12}{:>11}{:>12}{:>11}",
            if u.active { "*" } else { "" },
            u.name,
            u.interface,
            if u.carrier {
                u.state.clone()
            } else {
                format!("{} (no carrier)", u.state)
            },
            u.since_secs,
            u.rtt_ms.map_or_else(dash, |ms| format!("{ms:.1}ms")),
            u.loss_percent,
            u.address.clone().unwrap_or_else(dash),
            u.gateway.clone().unwrap_or_else(dash),
            u.gateway_mac.clone().unwrap_or_else(dash),
            u.packets_out,
            binary_size(u.bytes_out),
            u.packets_in,
            binary_size(u.bytes_in),
        );
    }
    if let Some(forced) = &status.forced {
        let _ = writeln!(out, "override: {forced}");
    }
    for suspect in &status.suspect_targets {
        let _ = writeln!(out, "suspect target: {suspect}");
    }
    let guard: Vec<String> = status
        .uplinks
        .iter()
        .filter_map(|u| {
            Some(format!(
                "{} {} masqueraded, {} dropped",
                u.name, u.guard_masqueraded?, u.guard_dropped?
            ))
        })
        .collect();
    let _ = writeln!(
        out,
        "leak guard: {}; untranslatable LAN packets dropped by the data plane: {}",
        if guard.is_empty() {
            "not readable".to_owned()
        } else {
            guard.join(", ")
        },
        status.untranslated_dropped
    );
    out.push_str(&dataplane_line(status));
    out.push_str(&host_limits_line(status));
    out.push_str(&datapaths_line(status));
    if let Some(dns) = &status.dns {
        out.push_str(&dns_line(dns));
    }
    out
}

/// The status table's line on `[dns]`: where the records point and what the server said.
fn dns_line(dns: &control::DnsStatus) -> String {
    let records = dns.records.join(", ");
    let (Some(uplink), Some(address)) = (&dns.uplink, &dns.address) else {
        return format!("dns: {records}: waiting for the carrying uplink's address\n");
    };
    let state = if dns.acknowledged {
        format!(
            "acknowledged by {} after {} attempt(s), {:.0} s ago",
            dns.server,
            dns.attempts,
            dns.secs_since_last_attempt.unwrap_or_default()
        )
    } else if let Some(error) = &dns.error {
        format!(
            "not acknowledged by {} after {} attempt(s), retrying: {error}",
            dns.server, dns.attempts
        )
    } else {
        format!("update on its way to {}", dns.server)
    };
    let before = match &dns.last_acknowledged {
        Some(last) if !dns.acknowledged => format!("; last acknowledged {last}"),
        _ => String::new(),
    };
    format!("dns: {records} -> {address} ({uplink}) {state}{before}\n")
}

/// The status table's line on the data plane's own checks (see `daemon::watchdog`).
fn dataplane_line(status: &control::StatusReport) -> String {
    let redirects: Vec<String> = status
        .uplinks
        .iter()
        .map(|u| {
            format!(
                "{} {} out, {} in",
                u.name, u.redirect_failed_to_uplink, u.redirect_failed_to_lan
            )
        })
        .collect();
    let blackholes: Vec<&str> = status
        .uplinks
        .iter()
        .filter(|u| u.blackhole)
        .map(|u| u.name.as_str())
        .collect();
    format!(
        "data plane: failed redirects {}; map repairs {}; blackhole suspected: {}\n",
        match &status.uncounted_redirects {
            Some(why) => format!("not counted ({why})"),
            None => redirects.join(", "),
        },
        status.map_repairs,
        if blackholes.is_empty() {
            "none".to_owned()
        } else {
            blackholes.join(", ")
        }
    )
}

/// The status table's line on the data path each interface can take.
fn datapaths_line(status: &control::StatusReport) -> String {
    let unknown = || "unknown".to_owned();
    let mut paths = vec![format!(
        "{} {}",
        status.lan.as_deref().unwrap_or("lan"),
        status.lan_datapath.clone().unwrap_or_else(unknown)
    )];
    paths.extend(
        status
            .uplinks
            .iter()
            .map(|u| format!("{} {}", u.name, u.datapath.clone().unwrap_or_else(unknown))),
    );
    format!("data paths: {}\n", paths.join("; "))
}

/// The status table's line on `[limits]` and the hosts refused at them.
fn host_limits_line(status: &control::StatusReport) -> String {
    let refused: Vec<String> = status
        .limited_hosts
        .iter()
        .map(|h| {
            format!(
                "{} ({} flows, {} ports{})",
                h.host,
                h.refused_flows,
                h.refused_ports,
                if h.ongoing { ", now" } else { "" }
            )
        })
        .collect();
    format!(
        "host limits: {} flows, {} ports per uplink (0: none); refused: {}\n",
        status.flows_per_host,
        status.ports_per_host,
        if refused.is_empty() {
            "none".to_owned()
        } else {
            refused.join(", ")
        }
    )
}

/// `bytes` for a person: "512 B", "1.5 KiB", "20.0 MiB".
fn binary_size(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    #[expect(clippy::cast_precision_loss, reason = "one decimal is shown")]
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

async fn wait_for_shutdown() -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory as _, Parser as _};

    #[test]
    fn binary_sizes_read_well() {
        let cases = [
            (0, "0 B"),
            (1023, "1023 B"),
            (1536, "1.5 KiB"),
            (20 << 20, "20.0 MiB"),
            (u64::MAX, "16.0 EiB"),
        ];
        for (bytes, shown) in cases {
            assert_eq!(super::binary_size(bytes), shown, "{bytes}");
        }
    }

    #[test]
    fn status_table_shows_packets_and_bytes_each_way() {
        let uplink = failover_user::control::UplinkReport {
            name: "fiber".to_owned(),
            interface: "eth1".to_owned(),
            state: "up".to_owned(),
            active: true,
            since_secs: 12.0,
            carrier: true,
            address: Some("192.0.2.2".to_owned()),
            gateway: Some("192.0.2.1".to_owned()),
            gateway_mac: Some("02:00:00:00:00:01".to_owned()),
            rtt_ms: Some(1.25),
            jitter_ms: None,
            loss_percent: 0,
            packets_out: 1000,
            bytes_out: 3 << 20,
            packets_in: 2000,
            bytes_in: 512,
            guard_masqueraded: Some(3),
            guard_dropped: Some(0),
            redirect_failed_to_uplink: 7,
            redirect_failed_to_lan: 0,
            blackhole: true,
            datapath: Some("xdp (veth: native XDP, redirect target)".to_owned()),
        };
        let table = super::status_table(&failover_user::control::StatusReport {
            active: "fiber".to_owned(),
            forced: None,
            uplinks: vec![uplink],
            suspect_targets: Vec::new(),
            untranslated_dropped: 4,
            map_repairs: 2,
            uncounted_redirects: None,
            flows_per_host: 8192,
            ports_per_host: 4096,
            limited_hosts: vec![failover_user::control::LimitedHost {
                host: "10.0.0.12".to_owned(),
                refused_flows: 300,
                refused_ports: 5,
                ongoing: true,
            }],
            lan: Some("lan0".to_owned()),
            lan_datapath: Some("tc (r8169: no native XDP with redirects)".to_owned()),
            dns: None,
        });
        let [header, row, guard, dataplane, limits, paths] = table.lines().collect::<Vec<_>>()[..]
        else {
            panic!("{table}")
        };
        for column in ["PKTS OUT", "BYTES OUT", "PKTS IN", "BYTES IN"] {
            assert!(header.contains(column), "{header}");
        }
        assert!(row.starts_with("* fiber"), "{row}");
        assert!(
            row.ends_with("1000    3.0 MiB        2000      512 B"),
            "{row}"
        );
        assert_eq!(
            guard,
            "leak guard: fiber 3 masqueraded, 0 dropped; untranslatable LAN packets dropped by the data plane: 4"
        );
        assert_eq!(
            dataplane,
            "data plane: failed redirects fiber 7 out, 0 in; map repairs 2; blackhole suspected: fiber"
        );
        assert_eq!(
            limits,
            "host limits: 8192 flows, 4096 ports per uplink (0: none); refused: 10.0.0.12 (300 flows, 5 ports, now)"
        );
        assert_eq!(
            paths,
            "data paths: lan0 tc (r8169: no native XDP with redirects); fiber xdp (veth: native XDP, redirect target)"
        );
    }

    #[test]
    fn the_dns_line_says_where_the_records_point_and_what_the_server_said() {
        let mut dns = failover_user::control::DnsStatus {
            server: "192.0.2.53:53".to_owned(),
            records: vec!["www.example.com".to_owned(), "mail.example.com".to_owned()],
            uplink: Some("lte".to_owned()),
            address: Some("198.51.100.2".to_owned()),
            acknowledged: true,
            attempts: 1,
            error: None,
            last_acknowledged: Some("198.51.100.2 (lte)".to_owned()),
            secs_since_last_attempt: Some(12.2),
        };
        assert_eq!(
            super::dns_line(&dns),
            "dns: www.example.com, mail.example.com -> 198.51.100.2 (lte) acknowledged by 192.0.2.53:53 after 1 attempt(s), 12 s ago\n"
        );
        dns.acknowledged = false;
        dns.attempts = 3;
        dns.error = Some("no answer".to_owned());
        dns.last_acknowledged = Some("192.0.2.1 (fiber)".to_owned());
        assert_eq!(
            super::dns_line(&dns),
            "dns: www.example.com, mail.example.com -> 198.51.100.2 (lte) not acknowledged by 192.0.2.53:53 after 3 attempt(s), retrying: no answer; last acknowledged 192.0.2.1 (fiber)\n"
        );
        dns.address = None;
        assert_eq!(
            super::dns_line(&dns),
            "dns: www.example.com, mail.example.com: waiting for the carrying uplink's address\n"
        );
    }

    #[test]
    fn cli_is_well_formed() {
        super::Cli::command().debug_assert();
    }

    #[test]
    fn completions_know_every_command() {
        let mut script = Vec::new();
        clap_complete::generate(
            clap_complete::Shell::Bash,
            &mut super::Cli::command(),
            "failover",
            &mut script,
        );
        let script = String::from_utf8(script).unwrap();
        for command in [
            "status",
            "flows",
            "events",
            "report",
            "completions",
            "check-config",
        ] {
            assert!(script.contains(command), "{command} missing");
        }
    }

    #[test]
    fn since_takes_a_duration_or_a_time() {
        let cli = super::Cli::try_parse_from(["failover", "events", "--since", "1h"]).unwrap();
        assert!(matches!(
            cli.command,
            super::Command::Events { since: Some(_), .. }
        ));
        let error = super::Cli::try_parse_from(["failover", "events", "--since", "soon"])
            .err()
            .unwrap()
            .to_string();
        assert!(error.contains("neither an RFC 3339 time"), "{error}");
    }
}
