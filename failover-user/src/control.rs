//! The control socket: how `failover status|switch|auto|flows|report` talk to the running
//! daemon (and the metrics server asks for its text). One JSON request per connection, one
//! JSON response; a Unix socket that only root can open.

mod views;

pub use views::{FlowEntry, IpConfig, LinkState, OutageReport, ProbeReport, flows_table};

use std::{
    io,
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};
use tokio::{
    io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader},
    net::{UnixListener, UnixStream},
    sync::{mpsc, oneshot},
};

/// What the CLI asks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "kebab-case")]
pub enum Request {
    Status,
    /// Force an uplink, for `for_secs` or until `auto`.
    Switch {
        uplink: String,
        for_secs: Option<u64>,
    },
    Auto,
    /// The NAT table, of one uplink or all.
    Flows {
        uplink: Option<String>,
    },
    /// An outage report on one uplink.
    Report {
        uplink: String,
    },
    /// The Prometheus text of the daemon's metrics.
    Metrics,
}

/// The daemon's answer.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Response {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<StatusReport>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flows: Option<Vec<FlowEntry>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report: Option<Box<OutageReport>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<String>,
}

impl Response {
    #[must_use]
    pub fn done(message: impl Into<String>) -> Self {
        Self {
            ok: true,
            message: Some(message.into()),
            ..Self::default()
        }
    }

    #[must_use]
    pub fn failed(error: impl Into<String>) -> Self {
        Self {
            ok: false,
            error: Some(error.into()),
            ..Self::default()
        }
    }
}

/// `failover status`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StatusReport {
    pub active: String,
    /// The operator's override, e.g. "lte until 2026-11-25T10:00:00Z".
    pub forced: Option<String>,
    pub uplinks: Vec<UplinkReport>,
    /// Far targets answering on no uplink, with the reason.
    pub suspect_targets: Vec<String>,
    /// LAN packets the data plane dropped because they could not leave translated (no
    /// usable uplink, no gateway MAC, no free port).
    #[serde(default)]
    pub untranslated_dropped: u64,
    /// Times the self-check found the data plane's maps drifted from the controller's
    /// intent and rewrote them.
    #[serde(default)]
    pub map_repairs: u64,
    /// Why redirects the kernel refuses are not counted; `None` when they are.
    #[serde(default)]
    pub uncounted_redirects: Option<String>,
    /// `[limits]` in force: live flows per LAN host, external ports per host and uplink
    /// (0: no limit).
    #[serde(default)]
    pub flows_per_host: u32,
    #[serde(default)]
    pub ports_per_host: u32,
    /// LAN hosts whose new flows were refused at a limit since the daemon started.
    #[serde(default)]
    pub limited_hosts: Vec<LimitedHost>,
    /// The LAN interface and the data path it can take (as [`UplinkReport::datapath`]).
    #[serde(default)]
    pub lan: Option<String>,
    #[serde(default)]
    pub lan_datapath: Option<String>,
    /// `[dns]`: where the records point and what the server said; `None` without it.
    #[serde(default)]
    pub dns: Option<DnsStatus>,
}

/// The `[dns]` records and their last update.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DnsStatus {
    pub server: String,
    pub records: Vec<String>,
    /// The uplink carrying the services, and the address the records should have.
    pub uplink: Option<String>,
    pub address: Option<String>,
    /// The server acknowledged that address.
    pub acknowledged: bool,
    /// Attempts to send it so far.
    pub attempts: u32,
    /// Why the last attempt was not acknowledged.
    pub error: Option<String>,
    /// The last address the server acknowledged, with its uplink.
    pub last_acknowledged: Option<String>,
    pub secs_since_last_attempt: Option<f64>,
}

/// A LAN host refused new flows at its `[limits]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LimitedHost {
    pub host: String,
    /// New flows refused at the flow limit, and at the port limit (the data plane's totals).
    pub refused_flows: u64,
    pub refused_ports: u64,
    /// Refused within the last minute.
    pub ongoing: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UplinkReport {
    pub name: String,
    pub interface: String,
    pub state: String,
    pub active: bool,
    /// Seconds in this state.
    pub since_secs: f64,
    pub carrier: bool,
    pub address: Option<String>,
    pub gateway: Option<String>,
    pub gateway_mac: Option<String>,
    pub rtt_ms: Option<f64>,
    pub jitter_ms: Option<f64>,
    pub loss_percent: usize,
    pub packets_out: u64,
    pub bytes_out: u64,
    pub packets_in: u64,
    pub bytes_in: u64,
    /// LAN packets the kernel's safety net masqueraded on this uplink (fragments, ESP, ...)
    /// and those the leak guard dropped; `None` when the guard's table is unreadable.
    #[serde(default)]
    pub guard_masqueraded: Option<u64>,
    #[serde(default)]
    pub guard_dropped: Option<u64>,
    /// Frames redirected to this uplink, and from it to the LAN, that never left (an empty
    /// devmap slot, or refused by the kernel after the program).
    #[serde(default)]
    pub redirect_failed_to_uplink: u64,
    #[serde(default)]
    pub redirect_failed_to_lan: u64,
    /// Translated packets leave, nothing comes back, the probes answer.
    #[serde(default)]
    pub blackhole: bool,
    /// The data path the interface can take and why, e.g. `xdp (virtio_net: native XDP, ...)`;
    /// `None` when its facts are unreadable.
    #[serde(default)]
    pub datapath: Option<String>,
}

/// A request with the way back to its connection.
pub type Call = (Request, oneshot::Sender<Response>);

/// Why the CLI could not talk to the daemon.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error(
        "the failover daemon is not running (no control socket at {0}); start it with `failover run`"
    )]
    NotRunning(PathBuf),
    #[error("permission denied on {0}: the control socket is for root only")]
    Denied(PathBuf),
    #[error("talking to the daemon at {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("the daemon's answer is not understood: {0}")]
    Protocol(#[from] serde_json::Error),
}

/// Sends one request to the daemon listening on `socket`.
pub async fn request(socket: &Path, request: &Request) -> Result<Response, ControlError> {
    let io_error = |source: io::Error| match source.kind() {
        io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused => {
            ControlError::NotRunning(socket.to_owned())
        }
        io::ErrorKind::PermissionDenied => ControlError::Denied(socket.to_owned()),
        _ => ControlError::Io {
            path: socket.to_owned(),
            source,
        },
    };
    let mut stream = UnixStream::connect(socket).await.map_err(io_error)?;
    let mut line = serde_json::to_vec(request)?;
    line.push(b'\n');
    stream.write_all(&line).await.map_err(io_error)?;
    let mut answer = String::new();
    BufReader::new(stream)
        .read_line(&mut answer)
        .await
        .map_err(io_error)?;
    Ok(serde_json::from_str(&answer)?)
}

/// Listens on `socket` (replacing a stale one, mode 0600 in a 0700 directory) and hands each
/// request to `calls`; the daemon answers through the enclosed channel.
pub fn serve(socket: &Path, calls: mpsc::Sender<Call>) -> io::Result<tokio::task::JoinHandle<()>> {
    if let Some(dir) = socket.parent().filter(|d| !d.as_os_str().is_empty()) {
        private_dir(dir)?;
    }
    remove_stale_socket(socket)?;
    let listener = UnixListener::bind(socket)?;
    std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o600))?;
    Ok(tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let calls = calls.clone();
            tokio::spawn(async move {
                if let Err(e) = answer(stream, calls).await {
                    tracing::debug!(error = %e, "control connection");
                }
            });
        }
    }))
}

async fn answer(stream: UnixStream, calls: mpsc::Sender<Call>) -> io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    BufReader::new(read).read_line(&mut line).await?;
    let response = match serde_json::from_str::<Request>(&line) {
        Ok(request) => {
            let (tx, rx) = oneshot::channel();
            if calls.send((request, tx)).await.is_err() {
                Response::failed("the daemon is shutting down")
            } else {
                rx.await
                    .unwrap_or_else(|_| Response::failed("the daemon dropped the request"))
            }
        }
        Err(e) => Response::failed(format!("bad request: {e}")),
    };
    let mut out = serde_json::to_vec(&response).map_err(io::Error::other)?;
    out.push(b'\n');
    write.write_all(&out).await
}

/// The socket's directory: created private (0700) when missing; an existing one is used as
/// it is (its permissions are not ours to change) unless others may write to it, where
/// anyone could put their own socket in the CLI's way.
fn private_dir(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt as _;
    match std::fs::metadata(dir) {
        Ok(meta) if !meta.is_dir() => Err(io::Error::other(format!(
            "{} is not a directory: choose another `[control] socket`",
            dir.display()
        ))),
        Ok(meta) if meta.permissions().mode() & 0o022 != 0 => Err(io::Error::other(format!(
            "{} is writable by other users (mode {:o}): the control socket needs a directory \
             only root can write to, e.g. the default /run/failover (set `[control] socket`)",
            dir.display(),
            meta.permissions().mode() & 0o7777
        ))),
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            if let Some(parent) = dir.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::DirBuilder::new().mode(0o700).create(dir)
        }
        Err(e) => Err(e),
    }
}

/// Removes a socket left by an earlier run; anything else at the path is refused, not deleted.
fn remove_stale_socket(socket: &Path) -> io::Result<()> {
    use std::os::unix::fs::FileTypeExt as _;
    match std::fs::symlink_metadata(socket) {
        Ok(meta) if meta.file_type().is_socket() => std::fs::remove_file(socket),
        Ok(_) => Err(io::Error::other(format!(
            "{} exists and is not a socket: remove it or choose another `[control] socket`",
            socket.display()
        ))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_request_reaches_the_daemon_and_its_answer_comes_back() {
        let dir = std::env::temp_dir().join(format!("fo-control-{}", std::process::id()));
        let socket = dir.join("control.sock");
        let (tx, mut rx) = mpsc::channel(4);
        let server = serve(&socket, tx).unwrap();
        let daemon = tokio::spawn(async move {
            let (request, reply) = rx.recv().await.unwrap();
            assert_eq!(
                request,
                Request::Switch {
                    uplink: "lte".into(),
                    for_secs: Some(60)
                }
            );
            reply.send(Response::done("switched")).unwrap();
        });
        let mode = std::fs::metadata(&socket).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let answer = request(
            &socket,
            &Request::Switch {
                uplink: "lte".into(),
                for_secs: Some(60),
            },
        )
        .await
        .unwrap();
        assert_eq!(answer, Response::done("switched"));
        daemon.await.unwrap();
        server.abort();
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn no_daemon_is_a_clear_error() {
        let missing = std::env::temp_dir().join("fo-control-missing/control.sock");
        let error = request(&missing, &Request::Status).await.unwrap_err();
        assert!(matches!(error, ControlError::NotRunning(_)), "{error}");
        assert!(error.to_string().contains("not running"));
    }

    fn scratch(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("fo-control-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[tokio::test]
    async fn the_socket_directory_is_created_private_and_an_existing_one_is_left_alone() {
        let base = scratch("dirs");
        std::fs::set_permissions(&base, std::fs::Permissions::from_mode(0o755)).unwrap();
        let (tx, _rx) = mpsc::channel(1);
        let created = base.join("run/failover");
        let server = serve(&created.join("control.sock"), tx.clone()).unwrap();
        server.abort();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode(&created), 0o700, "a missing directory is made private");
        let server = serve(&base.join("control.sock"), tx.clone()).unwrap();
        server.abort();
        assert_eq!(mode(&base), 0o755, "an existing directory keeps its mode");
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[tokio::test]
    async fn a_directory_others_can_write_to_is_refused_and_keeps_its_mode() {
        let base = scratch("shared");
        std::fs::set_permissions(&base, std::fs::Permissions::from_mode(0o1777)).unwrap();
        let (tx, _rx) = mpsc::channel(1);
        let error = serve(&base.join("failover.sock"), tx).unwrap_err();
        assert!(
            error.to_string().contains("writable by other users"),
            "{error}"
        );
        let mode = std::fs::metadata(&base).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o1777, "never chmod a directory we do not own");
        assert!(!base.join("failover.sock").exists());
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[tokio::test]
    async fn a_file_in_the_sockets_place_is_refused_not_deleted() {
        let base = scratch("file");
        std::fs::set_permissions(&base, std::fs::Permissions::from_mode(0o700)).unwrap();
        let path = base.join("control.sock");
        std::fs::write(&path, "keep me").unwrap();
        let (tx, _rx) = mpsc::channel(1);
        let error = serve(&path, tx).unwrap_err();
        assert!(error.to_string().contains("not a socket"), "{error}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "keep me");
        std::fs::remove_dir_all(&base).unwrap();
    }
}
