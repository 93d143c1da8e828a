//! DNS follows the uplink: the `[dns]` records are pointed at the uplink carrying new flows
//! by an RFC 2136 update signed with TSIG, sent through that uplink and repeated until the
//! server acknowledges it; a newer switch supersedes an update still unacknowledged.

pub mod key;
mod message;

use std::{
    hash::{BuildHasher as _, RandomState},
    net::{Ipv4Addr, SocketAddrV4},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use hickory_proto::{dnssec::tsig::TSigner, rr::Name};
use socket2::{Protocol, Type};
use tokio::{
    net::UdpSocket,
    sync::{mpsc, watch},
    task::JoinHandle,
};

use self::message::Answer;
use crate::{config::DnsConfig, probe::ProbePath};

/// The pause after the first unacknowledged attempt; it doubles up to [`MAX_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_secs(1);
const MAX_PAUSE: Duration = Duration::from_secs(30);

/// `[dns]` ready to use: names parsed, key read.
pub struct Settings {
    server: SocketAddrV4,
    zone: Name,
    records: Vec<Name>,
    ttl: u32,
    timeout: Duration,
    signer: TSigner,
}

impl Settings {
    /// Reads the key file; the error names what is wrong (never the secret).
    pub fn new(config: &DnsConfig) -> Result<Self, String> {
        let fqdn = |text: &str| {
            Name::from_ascii(text)
                .map(|mut name| {
                    name.set_fqdn(true);
                    name
                })
                .map_err(|e| format!("`{text}`: {e}"))
        };
        Ok(Self {
            server: config.server.0,
            zone: fqdn(&config.zone)?,
            records: config
                .records
                .iter()
                .map(|r| fqdn(r))
                .collect::<Result<_, _>>()?,
            ttl: u32::try_from(config.ttl.as_secs()).unwrap_or(u32::MAX),
            timeout: config.timeout,
            signer: key::TsigKey::read(&config.key_file)?.signer()?,
        })
    }
}

/// Where the records should point, and the uplink to send the update through.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub uplink: String,
    pub address: Ipv4Addr,
    pub path: ProbePath,
}

/// What became of an attempt to point the records at `address`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub uplink: String,
    pub address: Ipv4Addr,
    /// Attempts so far for this address, this one included.
    pub attempts: u32,
    /// `Err` says why the server has not acknowledged it yet (it is retried).
    pub result: Result<(), String>,
    pub at: SystemTime,
}

/// Follows `targets`, reporting every attempt's outcome on `outcomes`.
#[must_use]
pub fn spawn(
    settings: Settings,
    targets: watch::Receiver<Option<Target>>,
    outcomes: mpsc::Sender<Outcome>,
) -> JoinHandle<()> {
    tokio::spawn(follow(settings, targets, outcomes))
}

async fn follow(
    settings: Settings,
    mut targets: watch::Receiver<Option<Target>>,
    outcomes: mpsc::Sender<Outcome>,
) {
    // What the server last acknowledged: a change of path alone needs no new update.
    let mut acknowledged: Option<(String, Ipv4Addr)> = None;
    loop {
        let target = targets.borrow_and_update().clone();
        if let Some(target) = target
            && acknowledged.as_ref() != Some(&(target.uplink.clone(), target.address))
        {
            match update_until_acknowledged(&settings, &target, &mut targets, &outcomes).await {
                Ending::Acknowledged => {
                    acknowledged = Some((target.uplink.clone(), target.address));
                }
                // The new target is read at once.
                Ending::Superseded => continue,
                Ending::Stopped => return,
            }
        }
        if targets.changed().await.is_err() {
            return;
        }
    }
}

enum Ending {
    Acknowledged,
    /// `targets` changed before the server acknowledged.
    Superseded,
    /// The controller is gone.
    Stopped,
}

async fn update_until_acknowledged(
    settings: &Settings,
    target: &Target,
    targets: &mut watch::Receiver<Option<Target>>,
    outcomes: &mpsc::Sender<Outcome>,
) -> Ending {
    let mut pause = FIRST_PAUSE;
    for attempts in 1.. {
        let result = tokio::select! {
            result = attempt(settings, target) => result,
            changed = targets.changed() => return if changed.is_ok() { Ending::Superseded } else { Ending::Stopped },
        };
        let acknowledged = result.is_ok();
        let outcome = Outcome {
            uplink: target.uplink.clone(),
            address: target.address,
            attempts,
            result,
            at: SystemTime::now(),
        };
        if outcomes.send(outcome).await.is_err() {
            return Ending::Stopped;
        }
        if acknowledged {
            return Ending::Acknowledged;
        }
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            changed = targets.changed() => return if changed.is_ok() { Ending::Superseded } else { Ending::Stopped },
        }
        pause = (pause * 2).min(MAX_PAUSE);
    }
    Ending::Stopped
}

/// One signed update through the target's uplink, waiting up to `timeout` for the answer.
async fn attempt(settings: &Settings, target: &Target) -> Result<(), String> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX));
    // Unpredictable, so a forged answer must guess it as well as the source port.
    #[expect(
        clippy::cast_possible_truncation,
        reason = "any 16 bits of a random hash"
    )]
    let id = RandomState::new().hash_one(now) as u16;
    let update = message::update(
        &settings.zone,
        &settings.records,
        target.address,
        settings.ttl,
        id,
    );
    let mut signed = message::sign(update, &settings.signer, now)?;
    let io = |e: std::io::Error| format!("sending through {}: {e}", target.uplink);
    let socket =
        crate::probe::bound_socket(&target.path, Type::DGRAM, Protocol::UDP).map_err(io)?;
    let socket = UdpSocket::from_std(socket.into()).map_err(io)?;
    // Connected: the kernel drops datagrams from anyone else and reports port unreachable.
    socket.connect(settings.server).await.map_err(io)?;
    let exchange = async {
        socket.send(&signed.bytes).await.map_err(io)?;
        let mut buf = [0; 4096];
        loop {
            let len = socket.recv(&mut buf).await.map_err(io)?;
            match signed.answer(&buf[..len]) {
                Answer::NotOurs => {}
                Answer::Acknowledged => return Ok(()),
                Answer::Refused(code) => return Err(format!("the server refused it: {code}")),
                Answer::BadSignature(e) => {
                    return Err(format!("the answer's signature does not verify: {e}"));
                }
            }
        }
    };
    tokio::time::timeout(settings.timeout, exchange)
        .await
        .unwrap_or_else(|_| {
            Err(format!(
                "no answer from {} within {:?}",
                settings.server, settings.timeout
            ))
        })
}
