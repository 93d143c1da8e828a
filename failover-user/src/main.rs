//! The `failover` command.

use std::{
    path::{Path, PathBuf},
    process::ExitCode,
};

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use failover_user::{
    config,
    control::{self, Request},
    dataplane::TableSizes,
    loader,
};

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
    /// Ctrl-C or SIGTERM, leaving the data plane forwarding.
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
    /// Load the data plane, attach it to the LAN and uplink interfaces, send new flows through
    /// the active uplink, and keep it attached until interrupted (Ctrl-C or SIGTERM).
    Attach {
        /// The LAN interface.
        #[arg(long)]
        lan: String,
        /// An uplink: NAME=INTERFACE[,gateway=IP][,mss=N][,ports=MIN-MAX]. Repeat for each.
        #[arg(long = "uplink", required = true)]
        uplinks: Vec<loader::UplinkSpec>,
        /// The uplink new flows take.
        #[arg(long)]
        active: String,
        /// Use generic (skb) XDP, for drivers without native XDP.
        #[arg(long)]
        skb_mode: bool,
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
        Command::Status { json } => ask(&cli.config, &Request::Status, json),
        Command::Switch { name, duration } => ask(
            &cli.config,
            &Request::Switch {
                uplink: name,
                for_secs: duration.map(|d| d.as_secs().max(1)),
            },
            false,
        ),
        Command::Auto => ask(&cli.config, &Request::Auto, false),
        Command::Attach {
            lan,
            uplinks,
            active,
            skb_mode,
        } => {
            let spec = loader::LoaderSpec {
                pins: None,
                lan,
                uplinks,
                active,
                skb_mode,
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
    match config::load(file) {
        Ok(config) => {
            println!("{}: ok\n{}", file.display(), config.summary());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
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
    pins.remove_all()?;
    println!("data plane detached; {} removed", pins.dir().display());
    Ok(ExitCode::SUCCESS)
}

/// Sends a request to the running daemon (its socket is named in the config, or the
/// default when there is no config file) and prints the answer.
fn ask(config_path: &Path, request: &Request, json: bool) -> anyhow::Result<ExitCode> {
    let socket = match config::load(config_path) {
        Ok(config) => config.control.socket,
        Err(_) => config::ControlConfig::default().socket,
    };
    let answer = runtime()?.block_on(control::request(&socket, request));
    let response = match answer {
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
    match (&response.status, json) {
        (Some(status), true) => println!("{}", serde_json::to_string_pretty(status)?),
        (Some(status), false) => print!("{}", status_table(status)),
        (None, _) => println!("{}", response.message.unwrap_or_default()),
    }
    Ok(ExitCode::SUCCESS)
}

fn status_table(status: &control::StatusReport) -> String {
    use std::fmt::Write as _;
    let mut out = format!(
        "{:<2}{:<10}{:<10}{:<10}{:>9}{:>9}{:>6}  {:<16}{:<16}{:<18}{:>12}{:>12}\n",
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
        "PKTS IN"
    );
    let dash = || "-".to_owned();
    for u in &status.uplinks {
        let _ = writeln!(
            out,
            "{:<2}{:<10}{:<10}{:<10}{:>8.1}s{:>9}{:>5}%  {:<16}{:<16}{:<18}{:>12}{:>12}",
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
            u.packets_in,
        );
    }
    if let Some(forced) = &status.forced {
        let _ = writeln!(out, "override: {forced}");
    }
    for suspect in &status.suspect_targets {
        let _ = writeln!(out, "suspect target: {suspect}");
    }
    out
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
    use clap::CommandFactory as _;

    #[test]
    fn cli_is_well_formed() {
        super::Cli::command().debug_assert();
    }
}
