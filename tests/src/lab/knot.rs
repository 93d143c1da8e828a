//! An authoritative DNS server in the internet namespace (Debian's `knotd`) holding a zone
//! that takes RFC 2136 updates signed with one TSIG key, and `kdig` queries of it from the
//! internet, as a resolver would ask.

use std::fmt::Write as _;
use std::fs;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, Result, bail};

use super::cmd::Cmd;
use super::plan::Plan;
use super::probe;
use super::servers::{self, LabProcess};

/// The zone, its server and the key that may update it.
pub struct Knot {
    process: LabProcess,
    dir: PathBuf,
}

impl Knot {
    /// Beside dnsmasq (port 53) on the server address.
    pub const PORT: u16 = 5300;
    pub const ZONE: &'static str = "lab.example";
    pub const KEY_NAME: &'static str = "failover-lab.";
    /// The zone's records before any update: an address no uplink has.
    pub const STALE: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 99);
    /// 32 bytes of base64, as `tsig-keygen` makes them (a lab secret, not a real one).
    const SECRET: &'static str = "bGFiIHNlY3JldCBmb3IgdGhlIGZhaWxvdmVyIHRlc3Q=";

    /// Starts knotd with `records` (names inside [`Self::ZONE`]) at [`Self::STALE`] and
    /// waits until it answers; recorded with the lab's processes, so `lab down` stops it too.
    pub fn start(records: &[&str]) -> Result<Self> {
        let dir = Path::new(Plan::STATE_DIR).join("knot");
        // A previous run's journal would replay its updates over the zone file.
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).context("creating knot's directory")?;
        fs::write(dir.join("zone"), zone_file(records)).context("writing the zone file")?;
        let conf = dir.join("knot.conf");
        fs::write(&conf, config(&dir)).context("writing knot.conf")?;
        let conf = conf.to_string_lossy().into_owned();
        let process = servers::spawn("knotd", Plan::NS_INET, &["knotd", "-c", &conf])?;
        let knot = Self { process, dir };
        let name = records.first().copied().unwrap_or("ns");
        let ready = probe::wait_until(Duration::from_secs(5), Duration::from_millis(50), || {
            Ok(knot.query(name).is_ok_and(|a| a == [Self::STALE]))
        })?;
        if !ready {
            let log = fs::read_to_string(Path::new(Plan::STATE_DIR).join("knotd.log"));
            bail!(
                "knotd did not answer within 5 s: {}",
                log.unwrap_or_default().trim()
            );
        }
        Ok(knot)
    }

    #[must_use]
    pub fn server() -> SocketAddrV4 {
        SocketAddrV4::new(Plan::SERVER, Self::PORT)
    }

    /// Writes the key as `tsig-keygen` does and returns the file's path.
    pub fn write_key_file(&self) -> Result<PathBuf> {
        let path = self.dir.join("failover.key");
        fs::write(
            &path,
            format!(
                "key \"{}\" {{\n\talgorithm hmac-sha256;\n\tsecret \"{}\";\n}};\n",
                Self::KEY_NAME,
                Self::SECRET
            ),
        )?;
        Ok(path)
    }

    /// `[dns]` for the controller: this server, zone and key, `records`, `ttl`.
    pub fn dns_section(&self, records: &[&str], ttl: &str) -> Result<String> {
        let names: Vec<String> = records.iter().map(|r| format!("\"{r}\"")).collect();
        Ok(format!(
            "\n[dns]\nserver = \"{}\"\nzone = \"{}\"\nkey_file = \"{}\"\nrecords = [{}]\nttl = \"{ttl}\"\n",
            Self::server(),
            Self::ZONE,
            self.write_key_file()?.display(),
            names.join(", ")
        ))
    }

    /// The A records of `name`, asked from the internet namespace with `kdig`.
    pub fn query(&self, name: &str) -> Result<Vec<Ipv4Addr>> {
        let out = Cmd::in_ns(Plan::NS_INET, "kdig")
            .args([
                format!("@{}", Plan::SERVER).as_str(),
                "-p",
                &Self::PORT.to_string(),
                "+short",
                "+timeout=1",
                "+retry=0",
                name,
                "A",
            ])
            .run()?;
        out.lines()
            .map(|line| {
                line.trim()
                    .parse()
                    .with_context(|| format!("kdig answered `{line}` for {name}"))
            })
            .collect()
    }

    /// The TTL of `name`'s A record as the server gives it.
    pub fn ttl(&self, name: &str) -> Result<u32> {
        let out = Cmd::in_ns(Plan::NS_INET, "kdig")
            .args([
                format!("@{}", Plan::SERVER).as_str(),
                "-p",
                &Self::PORT.to_string(),
                "+noall",
                "+answer",
                name,
                "A",
            ])
            .run()?;
        let line = out.lines().next().context("no answer")?;
        line.split_whitespace()
            .nth(1)
            .context("no TTL")?
            .parse()
            .with_context(|| format!("the answer `{line}`"))
    }
}

impl Drop for Knot {
    fn drop(&mut self) {
        let _ = servers::stop(&self.process);
        let _ = fs::remove_dir_all(&self.dir);
    }
}

fn zone_file(records: &[&str]) -> String {
    let mut zone = format!(
        "$ORIGIN {zone}.\n$TTL 300\n@ SOA ns hostmaster 1 3600 600 86400 30\n@ NS ns\nns A {server}\n",
        zone = Knot::ZONE,
        server = Plan::SERVER
    );
    for record in records {
        let _ = writeln!(zone, "{record}. A {}", Knot::STALE);
    }
    zone
}

/// Listening on the server address only; every file under `dir`; the zone file never
/// rewritten (updates live in the journal).
fn config(dir: &Path) -> String {
    let dir = dir.display();
    format!(
        "server:\n    rundir: \"{dir}\"\n    listen: {server}@{port}\n\
         log:\n  - target: stderr\n    any: info\n\
         database:\n    storage: \"{dir}\"\n\
         key:\n  - id: {key}\n    algorithm: hmac-sha256\n    secret: {secret}\n\
         acl:\n  - id: failover\n    key: {key}\n    action: update\n\
         zone:\n  - domain: {zone}\n    storage: \"{dir}\"\n    file: zone\n    acl: failover\n    zonefile-sync: -1\n",
        server = Plan::SERVER,
        port = Knot::PORT,
        key = Knot::KEY_NAME,
        secret = Knot::SECRET,
        zone = Knot::ZONE,
    )
}
