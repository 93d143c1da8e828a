//! `cargo xtask lab ...`: build, inspect and break the network-namespace lab by hand, the
//! same lab the end-to-end tests use (see docs/lab.md).

use anyhow::{Result, bail};
use failover_tests::lab::{self, Fault, Isp};
use failover_tests::privilege;

/// The network lab: LAN hosts, the router, two ISPs and an internet server in `fo-*`
/// network namespaces (needs root).
#[derive(Clone, Copy, Debug, clap::Subcommand)]
pub enum LabCommand {
    /// Build the lab, first removing leftovers of an earlier run.
    Up,
    /// Remove every namespace, link and process the lab made (safe to repeat).
    Down,
    /// Show namespaces, link states, active faults, router settings and server processes.
    Status,
    /// Break one ISP; faults combine until `heal`.
    ///
    /// Kinds: carrier-down (the router's uplink loses carrier), gateway-silent (link up, the
    /// gateway answers nothing, not even ARP), gateway-silent-arp (as gateway-silent, but ARP
    /// still answered), upstream-cut (the gateway answers itself but forwards nothing),
    /// loss=N (N % random loss each way, 0..=100), mtu=N (path MTU N behind the gateway,
    /// 576..=1500).
    Fault {
        /// The ISP to break: fiber or lte.
        isp: Isp,
        /// carrier-down, gateway-silent, gateway-silent-arp, upstream-cut, loss=N or mtu=N.
        kind: Fault,
    },
    /// Remove every fault from one ISP (safe to repeat).
    Heal {
        /// The ISP to heal: fiber or lte.
        isp: Isp,
    },
}

/// Runs one lab command, printing what a person needs to see.
pub fn run(cmd: LabCommand) -> Result<()> {
    if !privilege::is_root() {
        bail!(
            "`cargo xtask lab` needs root: it creates network namespaces (try `sudo -E cargo xtask lab ...`)"
        );
    }
    match cmd {
        LabCommand::Up => {
            lab::up()?;
            println!(
                "lab is up; `cargo xtask lab status` shows it, `cargo xtask lab down` removes it"
            );
        }
        LabCommand::Down => {
            lab::down()?;
            println!("lab is down");
        }
        LabCommand::Status => print!("{}", lab::status()?),
        LabCommand::Fault { isp, kind } => {
            lab::fault(isp, kind)?;
            println!("{isp}: {kind} injected");
        }
        LabCommand::Heal { isp } => {
            lab::heal(isp)?;
            println!("{isp}: healed");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(subcommand)]
        lab: LabCommand,
    }

    #[test]
    fn fault_and_heal_arguments_parse() {
        let cli = Cli::try_parse_from(["lab", "fault", "lte", "loss=10"]).unwrap();
        assert!(matches!(
            cli.lab,
            LabCommand::Fault {
                isp: Isp::Lte,
                kind: Fault::Loss(10)
            }
        ));
        let cli = Cli::try_parse_from(["lab", "heal", "fiber"]).unwrap();
        assert!(matches!(cli.lab, LabCommand::Heal { isp: Isp::Fiber }));
    }

    #[test]
    fn bad_arguments_say_what_is_valid() {
        let err = Cli::try_parse_from(["lab", "fault", "dsl", "carrier-down"])
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("fiber, lte"), "{err}");
        let err = Cli::try_parse_from(["lab", "fault", "fiber", "loss=200"])
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("loss=200"), "{err}");
    }
}
