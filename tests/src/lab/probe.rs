//! Looking at the lab from inside: link and neighbour state, ping, HTTP and UDP echo, each
//! with a bounded time so a broken path fails a test instead of hanging it.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use super::cmd::{Captured, Cmd};
use super::plan::Plan;
use crate::netns::in_netns;

/// An interface as `ip -o link show` describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkState {
    /// The flags between `<...>`, e.g. `NO-CARRIER`, `UP`, `LOWER_UP`.
    pub flags: Vec<String>,
    /// The RFC 2863 operational state, e.g. `UP`, `DOWN`, `LOWERLAYERDOWN`.
    pub operstate: String,
    pub mtu: u32,
}

impl LinkState {
    /// Administratively up (`ip link set up`).
    #[must_use]
    pub fn admin_up(&self) -> bool {
        self.has_flag("UP")
    }

    /// The peer is there and up.
    #[must_use]
    pub fn has_carrier(&self) -> bool {
        !self.has_flag("NO-CARRIER") && self.has_flag("LOWER_UP")
    }

    #[must_use]
    pub fn has_flag(&self, flag: &str) -> bool {
        self.flags.iter().any(|f| f == flag)
    }
}

/// The state of `dev` in namespace `ns`.
pub fn link_state(ns: &str, dev: &str) -> Result<LinkState> {
    let line = Cmd::ip(ns).args(["-o", "link", "show", "dev", dev]).run()?;
    parse_link(&line).with_context(|| format!("unexpected `ip link` output: {line}"))
}

fn parse_link(line: &str) -> Option<LinkState> {
    let flags = line.split_once('<')?.1.split_once('>')?.0;
    let word_after = |key: &str| {
        let mut words = line.split_whitespace();
        words.find(|w| *w == key)?;
        words.next()
    };
    Some(LinkState {
        flags: flags.split(',').map(str::to_owned).collect(),
        operstate: word_after("state")?.to_owned(),
        mtu: word_after("mtu")?.parse().ok()?,
    })
}

/// A neighbour (ARP) entry as `ip neigh show` describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Neighbour {
    /// The link-layer address, absent while unresolved.
    pub lladdr: Option<String>,
    /// The NUD state(s), e.g. `REACHABLE`, `STALE`, `INCOMPLETE`, `FAILED`.
    pub state: String,
}

impl Neighbour {
    /// Resolution failed or is still going on: nothing answered ARP (yet).
    #[must_use]
    pub fn unresolved(&self) -> bool {
        self.state.contains("INCOMPLETE") || self.state.contains("FAILED")
    }
}

/// The neighbour entry for `ip` on `dev` in `ns`, if there is one.
pub fn neighbour(ns: &str, dev: &str, ip: Ipv4Addr) -> Result<Option<Neighbour>> {
    let out = Cmd::ip(ns)
        .args(["neigh", "show", &ip.to_string(), "dev", dev])
        .run()?;
    Ok(out.lines().find_map(parse_neighbour))
}

fn parse_neighbour(line: &str) -> Option<Neighbour> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let state = (*words.last()?).to_owned();
    let lladdr = words
        .windows(2)
        .find(|w| w[0] == "lladdr")
        .map(|w| w[1].to_owned());
    Some(Neighbour { lladdr, state })
}

/// Forgets every neighbour on `dev`, so the next packet has to ARP again.
pub fn flush_neighbours(ns: &str, dev: &str) -> Result<()> {
    Cmd::ip(ns)
        .args(["neigh", "flush", "dev", dev])
        .run()
        .map(drop)
}

/// Forgets cached path MTUs (and other route exceptions) in `ns`.
pub fn flush_route_cache(ns: &str) -> Result<()> {
    Cmd::ip(ns)
        .args(["route", "flush", "cache"])
        .run()
        .map(drop)
}

/// What `ping` reported: its summary and everything it printed.
#[derive(Clone, Debug)]
pub struct Ping {
    pub transmitted: u32,
    pub received: u32,
    pub output: Captured,
}

impl Ping {
    /// Every echo request was answered.
    #[must_use]
    pub fn all_answered(&self) -> bool {
        self.output.success() && self.transmitted > 0 && self.received == self.transmitted
    }

    /// Lost replies in percent of requests sent.
    #[must_use]
    pub fn loss_percent(&self) -> f64 {
        if self.transmitted == 0 {
            return 100.0;
        }
        100.0 * f64::from(self.transmitted - self.received) / f64::from(self.transmitted)
    }
}

/// Pings `dst` from `ns` with extra `ping` options (`-c`, `-i`, `-W`, `-M`, `-s`, ...).
/// The caller bounds the time with `-c`/`-W`; the command timeout is a backstop.
pub fn ping(ns: &str, dst: Ipv4Addr, options: &[&str]) -> Result<Ping> {
    let output = Cmd::in_ns(ns, "ping")
        .arg("-n")
        .args(options.iter().copied())
        .arg(dst.to_string())
        .output()?;
    let summary = |key: &str| {
        output.stdout.lines().find_map(|line| {
            let before = line.split(key).next().filter(|_| line.contains(key))?;
            before.split_whitespace().last()?.parse().ok()
        })
    };
    let transmitted = summary(" packets transmitted").unwrap_or(0);
    let received = summary(" received").unwrap_or(0);
    Ok(Ping {
        transmitted,
        received,
        output,
    })
}

/// What `traceroute` printed, and the address of each hop in order.
pub struct Trace {
    pub output: Captured,
    pub hops: Vec<String>,
}

/// Traces the route from `ns` to `dst`: one probe per hop, a 2 s wait, at most 6 hops.
pub fn traceroute(ns: &str, dst: Ipv4Addr) -> Result<Trace> {
    let output = Cmd::in_ns(ns, "traceroute")
        .args(["-n", "-q", "1", "-w", "2", "-m", "6"])
        .arg(dst.to_string())
        .output()?;
    let hops = output
        .stdout
        .lines()
        .skip(1)
        .filter_map(|line| line.split_whitespace().nth(1).map(str::to_owned))
        .collect();
    Ok(Trace { output, hops })
}

/// One ping with a one-second wait: is `dst` reachable from `ns` right now?
pub fn ping_once(ns: &str, dst: Ipv4Addr) -> Result<bool> {
    Ok(ping(ns, dst, &["-c", "1", "-W", "1"])?.all_answered())
}

/// Downloads `url` from `ns` with curl (at most `max_time`) and returns the body.
pub fn http_get(ns: &str, url: &str, max_time: Duration) -> Result<Vec<u8>> {
    let file = format!("{}/download-{ns}.tmp", Plan::STATE_DIR);
    let seconds = format!("{:.1}", max_time.as_secs_f64());
    let curl =
        Cmd::in_ns(ns, "curl").args(["-sS", "--fail", "--max-time", &seconds, "-o", &file, url]);
    let result = curl
        .run()
        .and_then(|_| std::fs::read(&file).with_context(|| format!("reading {file}")));
    // The body was read (or the download failed); the file is only a way to carry bytes.
    let _ = std::fs::remove_file(&file);
    result
}

/// Sends `payload` from `ns` to a UDP echo service and returns what came back within
/// `timeout`.
pub fn udp_echo(ns: &str, dst: SocketAddr, payload: &[u8], timeout: Duration) -> Result<Vec<u8>> {
    in_netns(ns, || -> Result<Vec<u8>> {
        let socket = UdpSocket::bind("0.0.0.0:0").context("binding a UDP socket")?;
        socket.set_read_timeout(Some(timeout))?;
        socket.connect(dst)?;
        socket
            .send(payload)
            .with_context(|| format!("sending to {dst}"))?;
        let mut buf = vec![0; 65536];
        let n = socket
            .recv(&mut buf)
            .with_context(|| format!("no UDP echo from {dst} within {timeout:?}"))?;
        buf.truncate(n);
        Ok(buf)
    })?
}

/// Polls `check` every `every` until it returns true or `within` has passed; returns its
/// last answer. Errors from `check` end the wait.
pub fn wait_until(
    within: Duration,
    every: Duration,
    mut check: impl FnMut() -> Result<bool>,
) -> Result<bool> {
    let deadline = Instant::now() + within;
    loop {
        if check()? {
            return Ok(true);
        }
        if Instant::now() >= deadline {
            return Ok(false);
        }
        thread::sleep(every);
    }
}

/// Like [`wait_until`] but a timeout is an error that says what was awaited.
pub fn expect_within(
    what: &str,
    within: Duration,
    check: impl FnMut() -> Result<bool>,
) -> Result<()> {
    if wait_until(within, Duration::from_millis(50), check)? {
        Ok(())
    } else {
        bail!("timed out after {within:?} waiting for {what}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_lines_are_parsed() {
        let line = "3: fiber@if2: <NO-CARRIER,BROADCAST,MULTICAST,UP> mtu 1400 qdisc noqueue \
                    state LOWERLAYERDOWN mode DEFAULT group default qlen 1000\\    link/ether \
                    02:f0:20:00:00:02 brd ff:ff:ff:ff:ff:ff link-netns fo-isp-fiber";
        let state = parse_link(line).unwrap();
        assert!(state.admin_up() && !state.has_carrier());
        assert_eq!(
            (state.operstate.as_str(), state.mtu),
            ("LOWERLAYERDOWN", 1400)
        );
    }

    #[test]
    fn neighbour_lines_are_parsed() {
        let n = parse_neighbour("192.0.2.1 lladdr 02:f0:20:00:00:01 REACHABLE").unwrap();
        assert_eq!(n.lladdr.as_deref(), Some("02:f0:20:00:00:01"));
        assert!(!n.unresolved());
        let n = parse_neighbour("192.0.2.1 INCOMPLETE").unwrap();
        assert!(n.unresolved() && n.lladdr.is_none());
    }
}
