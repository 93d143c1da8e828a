//! A packet capture (tcpdump) on an ISP gateway's customer-facing interface: what really left
//! the router through that uplink. The proof that no LAN source address leaks.

use std::{
    net::Ipv4Addr,
    path::PathBuf,
    process::{Child, Stdio},
    time::Duration,
};

use anyhow::{Context as _, Result, bail};

use crate::lab::{Cidr, Cmd, Isp, Plan};

/// A running capture; stopped (its process ended, its file removed) when dropped.
pub struct Capture {
    isp: Isp,
    child: Option<Child>,
    file: PathBuf,
}

impl Capture {
    /// Starts capturing every IPv4 packet arriving from the router at `isp`'s gateway.
    pub fn start(isp: Isp) -> Result<Self> {
        let uplink = isp.uplink();
        let file = PathBuf::from(format!("{}/capture-{}.pcap", Plan::STATE_DIR, isp.name()));
        let _ = std::fs::remove_file(&file);
        let child = Cmd::in_ns(uplink.ns, "tcpdump")
            .args([
                "-n",
                "-U",
                // Without it, packets wait in the capture ring for up to a second and a
                // capture stopped right after a short exchange reads nothing.
                "--immediate-mode",
                "-Z",
                "root",
                "-Q",
                "in",
                // Headers are all a check of sources needs; a long soak stays small.
                "-s",
                "96",
                "-i",
                uplink.gateway.name,
                "-w",
            ])
            .arg(file.display().to_string())
            .arg("ip")
            .command()
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting tcpdump")?;
        let capture = Self {
            isp,
            child: Some(child),
            file,
        };
        // tcpdump writes its file header once it listens.
        for _ in 0..50 {
            if std::fs::metadata(&capture.file).is_ok_and(|m| m.len() > 0) {
                return Ok(capture);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        bail!("tcpdump at {} did not start listening", isp.name())
    }

    /// Stops the capture and returns the source address of each packet it saw.
    pub fn stop(mut self) -> Result<Vec<Ipv4Addr>> {
        // Leaves the kernel a moment to deliver what is in flight.
        std::thread::sleep(Duration::from_millis(300));
        self.end();
        let listing = Cmd::new("tcpdump")
            .args(["-n", "-q", "-r"])
            .arg(self.file.display().to_string())
            .run()
            .with_context(|| format!("reading the capture at {}", self.isp.name()))?;
        Ok(listing.lines().filter_map(source_of).collect())
    }

    fn end(&mut self) {
        if let Some(mut child) = self.child.take() {
            // Only the process this capture started, by its pid.
            if let Ok(pid) = i32::try_from(child.id()) {
                // SAFETY: a plain signal to our own child.
                unsafe { libc::kill(pid, libc::SIGTERM) };
            }
            let _ = child.wait();
        }
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.end();
        let _ = std::fs::remove_file(&self.file);
    }
}

/// The source address of a `tcpdump -n -q` line: `12:00:00.000 IP 10.10.0.11.40000 > ...`.
fn source_of(line: &str) -> Option<Ipv4Addr> {
    let after = line.split(" IP ").nth(1)?;
    let source = after.split_whitespace().next()?;
    let mut octets = source.split('.');
    let addr: Vec<&str> = octets.by_ref().take(4).collect();
    addr.join(".").parse().ok()
}

/// The addresses of `sources` inside `net`.
#[must_use]
pub fn inside(sources: &[Ipv4Addr], net: Cidr) -> Vec<Ipv4Addr> {
    sources
        .iter()
        .copied()
        .filter(|a| {
            Cidr {
                addr: *a,
                len: net.len,
            }
            .network()
                == net.network()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_are_read_from_tcpdump_lines() {
        let lines = [
            "07:00:00.1 IP 10.10.0.11.40000 > 203.0.113.10.7: UDP, length 14",
            "07:00:00.2 IP 192.0.2.2 > 203.0.113.10: ICMP echo request, id 1, seq 1, length 64",
            "07:00:00.3 ARP, Request who-has 192.0.2.1 tell 192.0.2.2, length 28",
        ];
        let sources: Vec<_> = lines.iter().filter_map(|l| source_of(l)).collect();
        assert_eq!(
            sources,
            [Ipv4Addr::new(10, 10, 0, 11), Ipv4Addr::new(192, 0, 2, 2)]
        );
        let lan = Plan::ROUTER_LAN.addr.expect("LAN address");
        assert_eq!(inside(&sources, lan), [Ipv4Addr::new(10, 10, 0, 11)]);
    }
}
