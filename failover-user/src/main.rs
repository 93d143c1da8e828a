//! The `failover` command.

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use failover_user::{dataplane::TableSizes, loader};

/// Multi-uplink failover router with an eBPF (XDP) data plane.
#[derive(Parser)]
#[command(name = "failover", version, about)]
struct Cli {
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
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    match Cli::parse().command {
        Command::Attach {
            lan,
            uplinks,
            active,
            skb_mode,
        } => runtime.block_on(async {
            let spec = loader::LoaderSpec {
                lan,
                uplinks,
                active,
                skb_mode,
                tables: TableSizes::default(),
            };
            let _running = loader::start(&spec)
                .await
                .context("starting the data plane")?;
            println!("failover: data plane attached; Ctrl-C to detach");
            wait_for_shutdown().await
        }),
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
