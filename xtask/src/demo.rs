//! `cargo xtask demo`: the product so far in one command. Builds the lab, attaches the XDP
//! data plane in the router, shows LAN traffic leaving through fiber with the data plane's
//! NAT, injects the motivating outage (fiber gateway silent, link up), moves new flows to
//! LTE, heals, and tears everything down. Automatic detection arrives with the controller;
//! until then the demo switches the uplink itself.

use std::{
    io::{BufRead as _, BufReader},
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use failover_tests::{
    lab::{self, Fault, Isp, LabGuard, Plan},
    privilege,
};

const BINARY: &str = "target/release/failover";

pub fn run() -> Result<()> {
    if !privilege::is_root() {
        bail!(
            "`cargo xtask demo` needs root: it creates network namespaces and loads BPF programs"
        );
    }
    step("building the failover binary (release)");
    crate::setup::run(Command::new(env!("CARGO")).args([
        "build",
        "--release",
        "--quiet",
        "-p",
        "failover-user",
    ]))?;

    step(
        "building the lab: 2 LAN hosts, the router (lan0, fiber, lte), 2 ISPs, an internet server",
    );
    let _lab = LabGuard::up()?;
    println!(
        "  kernel masquerade on the router: {}",
        if lab::masquerade_enabled()? {
            "on"
        } else {
            "off"
        }
    );
    show_whoami("without the data plane (no NAT anywhere)");

    step("attaching the XDP data plane, fiber active");
    let router = Router::start(Isp::Fiber)?;
    show_whoami("through the data plane");
    let blob = lab::http_get(Plan::NS_HOST1, &Plan::blob_url(), Duration::from_secs(10))?;
    let ok = lab::sha256_hex(&blob) == lab::BLOB_SHA256;
    println!(
        "  downloaded {} bytes, sha256 {}",
        blob.len(),
        if ok { "matches" } else { "DOES NOT MATCH" }
    );

    step("the motivating outage: the fiber gateway goes silent, the link stays up");
    lab::fault(Isp::Fiber, Fault::GatewaySilent)?;
    let link = lab::link_state(Plan::NS_ROUTER, Plan::FIBER.router.name)?;
    println!(
        "  router's fiber link: carrier {}",
        if link.has_carrier() { "up" } else { "down" }
    );
    show_whoami("through fiber now");

    step("moving new flows to lte (the controller will do this by itself within a second)");
    drop(router);
    let router = Router::start(Isp::Lte)?;
    show_whoami("through lte");

    step("healing fiber and moving back");
    lab::heal(Isp::Fiber)?;
    drop(router);
    let router = Router::start(Isp::Fiber)?;
    show_whoami("through fiber again");
    drop(router);

    step("tearing everything down");
    Ok(())
}

fn step(what: &str) {
    println!("\n==> {what}");
}

fn show_whoami(when: &str) {
    let started = Instant::now();
    match lab::http_get(Plan::NS_HOST1, &Plan::whoami_url(), Duration::from_secs(2)) {
        Ok(body) => println!(
            "  host1 -> http://{}/whoami {when}: the server sees {} ({} ms)",
            Plan::SERVER,
            String::from_utf8_lossy(&body).trim(),
            started.elapsed().as_millis()
        ),
        Err(_) => println!(
            "  host1 -> http://{}/whoami {when}: no answer within 2 s",
            Plan::SERVER
        ),
    }
}

/// `failover attach` running in the router namespace; stopped (SIGTERM, by its pid) on drop.
struct Router {
    child: Child,
}

impl Router {
    fn start(active: Isp) -> Result<Self> {
        let uplinks = Isp::ALL.map(|isp| format!("--uplink={0}={0}", isp.uplink().router.name));
        let mut child = Command::new("ip")
            .args([
                "netns",
                "exec",
                Plan::NS_ROUTER,
                BINARY,
                "attach",
                "--lan",
                Plan::ROUTER_LAN.name,
            ])
            .args(uplinks)
            .args(["--active", active.uplink().router.name])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .spawn()
            .context("starting failover attach in the router namespace")?;
        // `ip netns exec` execs the binary, so this pid is the daemon's own.
        let stdout = child.stdout.take().context("no stdout pipe")?;
        let router = Router { child };
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.contains("attached") {
                    let _ = tx.send(());
                }
            }
        });
        rx.recv_timeout(Duration::from_secs(15))
            .context("failover attach did not report ready within 15 s")?;
        println!(
            "  data plane attached in {} (active: {active})",
            Plan::NS_ROUTER
        );
        Ok(router)
    }
}

impl Drop for Router {
    fn drop(&mut self) {
        if let Ok(pid) = i32::try_from(self.child.id()) {
            // SAFETY: signalling our own child by its pid.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        let _ = self.child.wait();
    }
}
