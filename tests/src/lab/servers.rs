//! The internet namespace's servers (nginx for HTTP, socat for UDP echo, dnsmasq for DNS) and the record of
//! every process the lab started, so `down` kills exactly those and nothing else.

use std::fmt::Write as _;
use std::fs;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};

use super::cmd::Cmd;
use super::plan::Plan;
use super::probe;
use crate::netns::in_netns;

/// SHA-256 of [`blob`], the file served at [`Plan::BLOB_PATH`].
pub const BLOB_SHA256: &str = "bdc1f8ff8f36575aea3bb2014a60afe0c1d0a89072efd5079ad7f2d21c3cf490";
/// Size of the served file: big enough to span many TCP segments and windows.
pub const BLOB_LEN: usize = 1 << 20;

/// How long the servers may take to answer after start.
const READY_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a stopped process may take to exit after SIGTERM before it gets SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(3);

/// The served file: SHA-256 in counter mode, so it is reproducible and incompressible.
#[must_use]
pub fn blob() -> Vec<u8> {
    (0u32..)
        .flat_map(|block| Sha256::digest(format!("failover-lab blob {block}")))
        .take(BLOB_LEN)
        .collect()
}

/// Lowercase hex SHA-256 of `bytes`.
#[must_use]
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .fold(String::new(), |mut hex, b| {
            let _ = write!(hex, "{b:02x}");
            hex
        })
}

/// A process the lab started, as recorded in the state directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LabProcess {
    /// What it is (`nginx`, `socat`).
    pub name: String,
    /// The namespace it serves in.
    pub ns: String,
    pub pid: i32,
    /// Start time in clock ticks since boot (`/proc/PID/stat` field 22): with the PID it
    /// identifies the process, so a reused PID is never mistaken for ours.
    pub start_time: u64,
}

impl LabProcess {
    /// Still running (and still the same process).
    #[must_use]
    pub fn is_alive(&self) -> bool {
        start_time(self.pid) == Some(self.start_time)
    }
}

fn records_file() -> PathBuf {
    Path::new(Plan::STATE_DIR).join("processes")
}

/// The processes the lab started and has not stopped yet (alive or not).
pub fn processes() -> Result<Vec<LabProcess>> {
    let text = match fs::read_to_string(records_file()) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).context("reading the lab's process records"),
    };
    Ok(text.lines().filter_map(parse_record).collect())
}

fn parse_record(line: &str) -> Option<LabProcess> {
    let mut words = line.split_whitespace();
    let (name, ns, pid, start) = (words.next()?, words.next()?, words.next()?, words.next()?);
    Some(LabProcess {
        name: name.into(),
        ns: ns.into(),
        pid: pid.parse().ok()?,
        start_time: start.parse().ok()?,
    })
}

/// Field 22 of `/proc/PID/stat`, or `None` when there is no such process.
fn start_time(pid: i32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces; fields after its ')' are plain.
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(19)?
        .parse()
        .ok()
}

/// Starts `argv` in `ns` in its own process group (so its children go with it), output to a
/// log in the state directory, and records it before anything else can fail.
pub(crate) fn spawn(name: &str, ns: &str, argv: &[&str]) -> Result<LabProcess> {
    let log_path = Path::new(Plan::STATE_DIR).join(format!("{name}.log"));
    let log =
        fs::File::create(&log_path).with_context(|| format!("creating {}", log_path.display()))?;
    let cmd = Cmd::in_ns(ns, argv[0]).args(argv[1..].iter().copied());
    let child = cmd
        .command()
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .with_context(|| format!("cannot start `{cmd}`"))?;
    let pid = i32::try_from(child.id()).context("PID out of range")?;
    let start_time = start_time(pid)
        .with_context(|| format!("`{cmd}` exited at once; see {}", log_path.display()))?;
    let process = LabProcess {
        name: name.into(),
        ns: ns.into(),
        pid,
        start_time,
    };
    let record = format!(
        "{} {} {} {}\n",
        process.name, process.ns, process.pid, process.start_time
    );
    let mut file = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(records_file())?;
    std::io::Write::write_all(&mut file, record.as_bytes()).context("recording a lab process")?;
    Ok(process)
}

/// Stops every recorded process that is still ours and forgets the records.
pub(crate) fn stop_all() -> Result<()> {
    // Records are kept when a process could not be stopped, so the next `down` tries again.
    super::all_ok(processes()?.iter().map(stop))?;
    match fs::remove_file(records_file()) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).context("removing process records")
        }
        _ => Ok(()),
    }
}

/// SIGTERM to the process group, SIGKILL if it lingers; reaps it when it is our child.
pub(crate) fn stop(process: &LabProcess) -> Result<()> {
    if !process.is_alive() {
        return Ok(());
    }
    let deadline = Instant::now() + STOP_TIMEOUT;
    let mut signal = libc::SIGTERM;
    loop {
        // SAFETY: plain syscalls on the group we created; the start time check above proved
        // the leader is ours, and a group ID cannot be reused while the group exists.
        unsafe {
            libc::kill(-process.pid, signal);
            libc::waitpid(process.pid, std::ptr::null_mut(), libc::WNOHANG);
        }
        if !process.is_alive() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            if signal == libc::SIGKILL {
                bail!("{} (PID {}) survived SIGKILL", process.name, process.pid);
            }
            signal = libc::SIGKILL;
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// Writes the served files and nginx's config, starts nginx and socat in the internet
/// namespace and waits until both answer.
pub(crate) fn start() -> Result<()> {
    let www = Path::new(Plan::STATE_DIR).join("www");
    fs::create_dir_all(&www).context("creating the web root")?;
    fs::write(www.join(Plan::BLOB_PATH.trim_start_matches('/')), blob())
        .context("writing the blob")?;
    let conf = Path::new(Plan::STATE_DIR).join("nginx.conf");
    fs::write(&conf, nginx_conf(&www)).context("writing nginx.conf")?;
    let conf = conf.to_string_lossy();
    spawn(
        "nginx",
        Plan::NS_INET,
        &["nginx", "-c", &conf, "-e", "stderr"],
    )?;
    // One child per datagram that answers and exits (-T bounds a stuck one). Bound to the
    // server address so replies come from it, not from whichever transit address routes.
    let udp = format!(
        "UDP4-RECVFROM:{},bind={},fork",
        Plan::UDP_ECHO_PORT,
        Plan::SERVER
    );
    spawn("socat", Plan::NS_INET, &["socat", "-T", "2", &udp, "PIPE"])?;
    spawn(
        "dnsmasq",
        Plan::NS_INET,
        &dnsmasq_args().each_ref().map(String::as_str),
    )?;
    wait_ready()
}

/// dnsmasq in the foreground, on the server address only, knowing one name and asking no
/// one else: no config file, resolv.conf, hosts file, upstream or pid file.
fn dnsmasq_args() -> [String; 12] {
    [
        "dnsmasq".into(),
        "--keep-in-foreground".into(),
        "--conf-file=/dev/null".into(),
        "--no-resolv".into(),
        "--no-hosts".into(),
        "--pid-file".into(),
        "--log-facility=-".into(),
        "--bind-interfaces".into(),
        format!("--listen-address={}", Plan::SERVER),
        format!("--port={}", Plan::DNS_PORT),
        format!("--host-record={},{}", Plan::DNS_NAME, Plan::DNS_ANSWER),
        "--local-ttl=60".into(),
    ]
}

/// A DNS query for [`Plan::DNS_NAME`]'s A record with id `id`, byte by byte (RFC 1035 4.1).
fn dns_query(id: u16) -> Vec<u8> {
    let mut query = id.to_be_bytes().to_vec();
    // Recursion desired; one question, no other records.
    query.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in Plan::DNS_NAME.split('.') {
        query.push(u8::try_from(label.len()).expect("DNS labels are short"));
        query.extend_from_slice(label.as_bytes());
    }
    // Root label, type A, class IN.
    query.extend_from_slice(&[0, 0, 1, 0, 1]);
    query
}

/// The IPv4 address in the last answer record of a DNS response to [`dns_query`]`(id)`,
/// when it is one (the lab's single answer ends the message).
fn dns_answer(response: &[u8], id: u16) -> Option<Ipv4Addr> {
    let is_response = response.get(..2)? == id.to_be_bytes() && response[2] & 0x80 != 0;
    let answers = u16::from_be_bytes([*response.get(6)?, *response.get(7)?]);
    let tail: [u8; 4] = response
        .get(response.len().checked_sub(4)?..)?
        .try_into()
        .ok()?;
    (is_response && answers > 0).then(|| Ipv4Addr::from(tail))
}

/// nginx in the foreground as one process, with every path under the state directory.
fn nginx_conf(www: &Path) -> String {
    let state = Plan::STATE_DIR;
    let (port, whoami, www) = (Plan::HTTP_PORT, Plan::WHOAMI_PATH, www.display());
    format!(
        "daemon off;\nmaster_process off;\nworker_processes 1;\npid {state}/nginx.pid;\n\
         error_log stderr warn;\nevents {{ worker_connections 256; }}\nhttp {{\n\
         \x20 access_log off;\n  default_type application/octet-stream;\n\
         \x20 client_body_temp_path {state}/nginx-body;\n  proxy_temp_path {state}/nginx-proxy;\n\
         \x20 fastcgi_temp_path {state}/nginx-fastcgi;\n  uwsgi_temp_path {state}/nginx-uwsgi;\n\
         \x20 scgi_temp_path {state}/nginx-scgi;\n  server {{\n    listen {port};\n    root {www};\n\
         \x20   location = {whoami} {{ default_type text/plain; return 200 \"$remote_addr\\n\"; }}\n\
         \x20 }}\n}}\n"
    )
}

fn wait_ready() -> Result<()> {
    let http = SocketAddr::from((Plan::SERVER, Plan::HTTP_PORT));
    let udp = SocketAddr::from((Plan::SERVER, Plan::UDP_ECHO_PORT));
    let tcp_ok = || {
        in_netns(Plan::NS_INET, || {
            TcpStream::connect_timeout(&http, Duration::from_millis(200)).is_ok()
        })
    };
    let udp_ok = || {
        let echo = probe::udp_echo(Plan::NS_INET, udp, b"ready?", Duration::from_millis(200));
        echo.is_ok_and(|reply| reply == b"ready?")
    };
    let dns = SocketAddr::from((Plan::SERVER, Plan::DNS_PORT));
    let dns_ok = || {
        let reply = probe::udp_echo(
            Plan::NS_INET,
            dns,
            &dns_query(1),
            Duration::from_millis(200),
        );
        reply.is_ok_and(|reply| dns_answer(&reply, 1) == Some(Plan::DNS_ANSWER))
    };
    let ready = probe::wait_until(READY_TIMEOUT, Duration::from_millis(20), || {
        Ok(tcp_ok()? && udp_ok() && dns_ok())
    })?;
    if !ready {
        let logs = ["nginx", "socat", "dnsmasq"].map(|name| {
            let path = Path::new(Plan::STATE_DIR).join(format!("{name}.log"));
            format!(
                "{name}.log: {}",
                fs::read_to_string(path).unwrap_or_default().trim()
            )
        });
        bail!(
            "servers in {} did not answer within {READY_TIMEOUT:?}; {}",
            Plan::NS_INET,
            logs.join("; ")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blob_hash_matches_the_published_constant() {
        let blob = blob();
        assert_eq!(blob.len(), BLOB_LEN);
        assert_eq!(sha256_hex(&blob), BLOB_SHA256);
    }

    #[test]
    fn dns_query_is_the_rfc_1035_question_and_answers_are_read() {
        let query = dns_query(0xbeef);
        let expected: &[u8] = b"\xbe\xef\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x07example\x03com\x00\x00\x01\x00\x01";
        assert_eq!(query, expected);
        let mut response = query.clone();
        response[2] |= 0x80;
        response[7] = 1;
        // Answer: a pointer to the question's name, A, IN, TTL 60, 4 bytes of address.
        response.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 203, 0, 113, 10]);
        assert_eq!(dns_answer(&response, 0xbeef), Some(Plan::DNS_ANSWER));
        assert_eq!(
            dns_answer(&response, 0xbeee),
            None,
            "another query's answer"
        );
        assert_eq!(dns_answer(&query, 0xbeef), None, "a query is no answer");
    }

    #[test]
    fn records_parse_and_dead_processes_are_not_alive() {
        let p = parse_record("nginx fo-inet 4242 123456").unwrap();
        assert_eq!(
            (p.name.as_str(), p.ns.as_str(), p.pid, p.start_time),
            ("nginx", "fo-inet", 4242, 123_456)
        );
        assert!(parse_record("garbage").is_none());
        let me = i32::try_from(std::process::id()).unwrap();
        let mine = LabProcess {
            name: "test".into(),
            ns: "-".into(),
            pid: me,
            start_time: start_time(me).unwrap(),
        };
        assert!(mine.is_alive());
        assert!(
            !LabProcess {
                start_time: mine.start_time + 1,
                ..mine
            }
            .is_alive()
        );
    }
}
