//! The `failover` command.

use std::{
    path::{Path, PathBuf},
    process::ExitCode,
};

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use failover_user::{config, dataplane::TableSizes, loader};

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
        Command::Attach {
            lan,
            uplinks,
            active,
            skb_mode,
        } => {
            let spec = loader::LoaderSpec {
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
