//! The network lab: a LAN with two hosts, the router (`lan0`, `fiber`, `lte`), two ISP gateways
//! and an "internet" namespace with HTTP, UDP echo and ping targets, all in `fo-*` network
//! namespaces, plus faults to break either ISP on command. See docs/lab.md.
//!
//! Everything shells out to the real tools (iproute2, nftables, ethtool) as a person would,
//! and every failure names the command that failed. Needs root.

mod cmd;
mod fault;
mod guard;
mod knot;
mod nft;
mod plan;
mod probe;
mod router;
mod servers;
mod topology;
mod tun;
mod wireguard;

use std::fmt::Write as _;
use std::fs;

use anyhow::{Context, Result};

pub use cmd::{Captured, Cmd};
pub use fault::{Fault, active_faults, fault, heal};
pub use guard::LabGuard;
pub use knot::Knot;
pub use plan::{Cidr, Iface, Isp, Mac, ParseError, Plan, Uplink, VethPair};
pub use probe::{
    LinkState, Neighbour, Ping, Trace, expect_within, flush_neighbours, flush_route_cache,
    http_get, link_state, neighbour, ping, ping_once, traceroute, udp_echo, wait_until,
};
pub use router::{default_uplink, masquerade_enabled, set_default_uplink, set_masquerade};
pub use servers::{BLOB_LEN, BLOB_SHA256, LabProcess, blob, processes, sha256_hex};
pub use tun::{RawIp, TunLink};
pub use wireguard::{Wg, WgLink};

use crate::netns;

/// The environment variable that picks the veths' offloads: `kernel` leaves every veth as
/// the kernel makes it (GRO off, TX checksum offload on: what containers and VMs give, and
/// what makes the router take the TC path); anything else, or unset, the tuned lab (complete
/// checksums, GRO where XDP redirects need it).
pub const OFFLOADS_ENV: &str = "FO_LAB_OFFLOADS";

/// Whether this lab keeps the kernel's default veth offloads ([`OFFLOADS_ENV`]).
#[must_use]
pub fn kernel_offloads() -> bool {
    std::env::var(OFFLOADS_ENV).is_ok_and(|v| v == "kernel")
}

/// Builds the lab from scratch. Leftovers of an earlier run are removed first; if any step
/// fails, whatever was built is torn down again and the error names the failed command.
pub fn up() -> Result<()> {
    down().context("removing leftovers of an earlier lab")?;
    let built = fs::create_dir_all(Plan::STATE_DIR)
        .with_context(|| format!("creating {}", Plan::STATE_DIR))
        .and_then(|()| topology::build())
        .and_then(|()| servers::start());
    if let Err(error) = built {
        return Err(match down() {
            Ok(()) => error,
            Err(cleanup) => error.context(format!(
                "and tearing the half-built lab down failed too: {cleanup:#}"
            )),
        })
        .context("building the lab");
    }
    Ok(())
}

/// Removes everything the lab made: the processes it recorded (by PID, nothing else), the
/// namespaces (with their links and nft tables) and the state directory. Idempotent. Every
/// step is tried even when an earlier one fails; the error lists all failures.
pub fn down() -> Result<()> {
    all_ok([
        // Processes first: a process left inside a deleted namespace would keep it alive.
        servers::stop_all().context("stopping lab processes"),
        topology::remove_namespaces().context("deleting lab namespaces"),
        remove_state_dir(),
    ])
}

fn remove_state_dir() -> Result<()> {
    match fs::remove_dir_all(Plan::STATE_DIR) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("removing {}", Plan::STATE_DIR))
        }
        _ => Ok(()),
    }
}

/// Ok when every result is; otherwise one error that lists every failure.
fn all_ok(results: impl IntoIterator<Item = Result<()>>) -> Result<()> {
    let errors: Vec<String> = results
        .into_iter()
        .filter_map(Result::err)
        .map(|e| format!("{e:#}"))
        .collect();
    match errors.len() {
        0 => Ok(()),
        _ => Err(anyhow::anyhow!(errors.join("; "))),
    }
}

/// A human-readable report: namespaces, link states, faults, router settings, processes.
pub fn status() -> Result<String> {
    let mut out = String::new();
    let present = Plan::NAMESPACES
        .iter()
        .filter(|ns| netns::exists(ns))
        .count();
    let summary = match present {
        0 => "down",
        n if n == Plan::NAMESPACES.len() => "up",
        _ => "partly built (run `lab up` or `lab down`)",
    };
    writeln!(out, "lab: {summary}")?;
    if present > 0 {
        writeln!(out, "namespaces:")?;
        for ns in Plan::NAMESPACES {
            let state = if netns::exists(ns) {
                "present"
            } else {
                "missing"
            };
            writeln!(out, "  {ns:<13} {state}")?;
        }
        write_links(&mut out)?;
        write_faults(&mut out)?;
        write_router(&mut out)?;
    }
    write_processes(&mut out)?;
    Ok(out)
}

fn write_processes(out: &mut String) -> Result<()> {
    let recorded = processes()?;
    if recorded.is_empty() {
        return Ok(());
    }
    writeln!(out, "processes:")?;
    for p in recorded {
        let state = if p.is_alive() { "running" } else { "gone" };
        writeln!(
            out,
            "  {:<6} PID {:<8} in {:<8} {state}",
            p.name, p.pid, p.ns
        )?;
    }
    Ok(())
}

fn write_links(out: &mut String) -> Result<()> {
    writeln!(out, "links:")?;
    let ends = Plan::VETH_PAIRS.iter().flat_map(|pair| [pair.a, pair.b]);
    for end in std::iter::once(Plan::BRIDGE)
        .chain(ends)
        .filter(|end| netns::exists(end.ns))
    {
        let state = link_state(end.ns, end.name).map_or_else(
            |_| "absent".to_owned(),
            |s| {
                format!(
                    "{:<15} mtu {:<5} <{}>",
                    s.operstate,
                    s.mtu,
                    s.flags.join(",")
                )
            },
        );
        writeln!(out, "  {:<13} {:<10} {state}", end.ns, end.name)?;
    }
    Ok(())
}

fn write_faults(out: &mut String) -> Result<()> {
    writeln!(out, "faults:")?;
    for isp in Isp::ALL
        .into_iter()
        .filter(|isp| netns::exists(isp.uplink().ns))
    {
        let faults: Vec<String> = active_faults(isp)?
            .iter()
            .map(ToString::to_string)
            .collect();
        let faults = if faults.is_empty() {
            "none".to_owned()
        } else {
            faults.join(", ")
        };
        writeln!(out, "  {isp}: {faults}")?;
    }
    Ok(())
}

fn write_router(out: &mut String) -> Result<()> {
    if !netns::exists(Plan::NS_ROUTER) {
        return Ok(());
    }
    let masq = if masquerade_enabled()? { "on" } else { "off" };
    let uplink = default_uplink()?.map_or_else(|| "none".to_owned(), |isp| isp.to_string());
    writeln!(out, "router: masquerade {masq}, default uplink {uplink}")?;
    Ok(())
}

/// Runs `argv` inside namespace `ns` (`ip netns exec`) and returns its stdout; a non-zero
/// exit is an error naming the command and quoting its stderr.
pub fn ns_run(ns: &str, argv: &[&str]) -> Result<String> {
    ns_cmd(ns, argv).run()
}

/// Runs `argv` inside namespace `ns` and returns what it printed and how it exited, for
/// commands that are expected to fail.
pub fn ns_output(ns: &str, argv: &[&str]) -> Result<Captured> {
    ns_cmd(ns, argv).output()
}

fn ns_cmd(ns: &str, argv: &[&str]) -> Cmd {
    let (program, rest) = argv.split_first().expect("argv names a program");
    Cmd::in_ns(ns, program).args(rest.iter().copied())
}
