//! Measuring an outage as a LAN host sees it: a sequenced UDP stream to the lab's echo server
//! (one datagram every 10 ms), and which uplink address the server sees (`/whoami`).

use std::io::{Read as _, Write as _};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};

use crate::lab::{self, Isp, Plan};
use crate::netns;

/// Time between two datagrams.
pub const INTERVAL: Duration = Duration::from_millis(10);
/// How far from the instant a gap may start or end for [`EchoStream::gap_around`]: a packet in
/// flight when a fault hits still comes back, so the outage starts a little later.
pub const AROUND: Duration = Duration::from_secs(1);

/// When each echo came back, in arrival order, how many were sent, and when the stream stopped.
#[derive(Debug, Default)]
struct Record {
    arrivals: Vec<Instant>,
    sent: u64,
    stopped: Option<Instant>,
}

/// The stream, running until [`EchoStream::stop`] or drop.
pub struct EchoStream {
    record: Arc<Mutex<Record>>,
    running: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl EchoStream {
    /// Starts the stream from `ns` to the echo server.
    pub fn start(ns: &str) -> Result<Self> {
        let socket = netns::in_netns(ns, || UdpSocket::bind("0.0.0.0:0"))?
            .context("binding the stream's UDP socket")?;
        let server = SocketAddr::from((Plan::SERVER, Plan::UDP_ECHO_PORT));
        socket.connect(server)?;
        // Short, so the receiver notices `stop` quickly.
        socket.set_read_timeout(Some(Duration::from_millis(50)))?;
        let receiver = socket.try_clone()?;
        let record = Arc::new(Mutex::new(Record::default()));
        let running = Arc::new(AtomicBool::new(true));
        let ns = ns.to_owned();
        let sender = {
            let (record, running) = (record.clone(), running.clone());
            thread::spawn(move || {
                // The socket is already in the host's namespace; entering it too keeps the
                // whole stream there should anything else be opened on this thread.
                if netns::enter(&ns).is_err() {
                    return;
                }
                send_loop(&socket, &record, &running);
            })
        };
        let receive = {
            let (record, running) = (record.clone(), running.clone());
            thread::spawn(move || receive_loop(&receiver, &record, &running))
        };
        Ok(Self {
            record,
            running,
            threads: vec![sender, receive],
        })
    }

    /// Stops sending and receiving; the record stays readable.
    pub fn stop(&mut self) {
        if self.running.swap(false, Ordering::SeqCst) {
            for thread in self.threads.drain(..) {
                let _ = thread.join();
            }
            self.lock().stopped = Some(Instant::now());
        }
    }

    /// Datagrams sent and echoes received so far.
    #[must_use]
    pub fn counts(&self) -> (u64, usize) {
        let record = self.lock();
        (record.sent, record.arrivals.len())
    }

    /// The longest time without an echo, from the first echo to the last (or to now / the
    /// stop, if the echoes ended: an outage still going on counts).
    #[must_use]
    pub fn largest_gap(&self) -> Duration {
        self.gaps()
            .into_iter()
            .map(|(a, b)| b - a)
            .max()
            .unwrap_or_default()
    }

    /// The longest time without an echo that overlaps `at ± AROUND`: the outage caused by
    /// something done at `at`.
    #[must_use]
    pub fn gap_around(&self, at: Instant) -> Duration {
        let (from, to) = (at.checked_sub(AROUND).unwrap_or(at), at + AROUND);
        self.gaps()
            .into_iter()
            .filter(|&(start, end)| start <= to && end >= from)
            .map(|(a, b)| b - a)
            .max()
            .unwrap_or_default()
    }

    /// Waits until an echo arrives (the path works), at most `within`.
    pub fn wait_flowing(&self, within: Duration) -> Result<()> {
        let before = self.counts().1;
        lab::expect_within("UDP echoes from the server", within, || {
            Ok(self.counts().1 > before)
        })
    }

    /// Consecutive arrivals, plus the open gap from the last one to now or the stop.
    fn gaps(&self) -> Vec<(Instant, Instant)> {
        let record = self.lock();
        let end = record.stopped.unwrap_or_else(Instant::now);
        let mut gaps: Vec<(Instant, Instant)> =
            record.arrivals.windows(2).map(|w| (w[0], w[1])).collect();
        if let Some(&last) = record.arrivals.last() {
            gaps.push((last, end.max(last)));
        }
        gaps
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Record> {
        self.record.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for EchoStream {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Sends `seq` (8 bytes, big endian) on a fixed schedule, so a late wake-up does not slow the
/// stream down. Send errors (no route for a moment) are part of an outage, not the end.
fn send_loop(socket: &UdpSocket, record: &Mutex<Record>, running: &AtomicBool) {
    let start = Instant::now();
    let mut seq: u64 = 0;
    while running.load(Ordering::SeqCst) {
        let _ = socket.send(&seq.to_be_bytes());
        record.lock().unwrap_or_else(PoisonError::into_inner).sent = seq + 1;
        seq += 1;
        let next = start + INTERVAL * u32::try_from(seq).unwrap_or(u32::MAX);
        thread::sleep(next.saturating_duration_since(Instant::now()));
    }
}

fn receive_loop(socket: &UdpSocket, record: &Mutex<Record>, running: &AtomicBool) {
    let mut buf = [0u8; 64];
    while running.load(Ordering::SeqCst) {
        // Timeouts wake us to check `running`; other errors (ICMP unreachable reported on a
        // connected socket) are part of an outage too.
        if let Ok(8) = socket.recv(&mut buf) {
            let now = Instant::now();
            record
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .arrivals
                .push(now);
        }
    }
}

/// The address the server sees for a new HTTP request from `ns`.
pub fn whoami(ns: &str) -> Result<Ipv4Addr> {
    let body = lab::http_get(ns, &Plan::whoami_url(), Duration::from_secs(2))?;
    let text = String::from_utf8_lossy(&body);
    text.trim()
        .parse()
        .with_context(|| format!("/whoami answered {text:?}"))
}

/// The uplink a new flow from `ns` leaves through, as the server sees it; `None` when the
/// request fails or the address is no uplink's.
#[must_use]
pub fn whoami_isp(ns: &str) -> Option<Isp> {
    let seen = whoami(ns).ok()?;
    Isp::ALL
        .into_iter()
        .find(|isp| isp.uplink().router.ip() == seen)
}

/// Polls `/whoami` from `ns` until new flows leave through `isp`; returns when that was first
/// seen, or an error after `within`.
pub fn wait_for_uplink(ns: &str, isp: Isp, within: Duration) -> Result<Instant> {
    wait_for_source(ns, isp.uplink().router.ip(), within)
        .with_context(|| format!("waiting for new flows through {isp}"))
}

/// Polls `/whoami` from `ns` until the server sees new flows from `source` (an uplink's
/// address); returns when that was first seen, or an error after `within`.
pub fn wait_for_source(ns: &str, source: Ipv4Addr, within: Duration) -> Result<Instant> {
    let deadline = Instant::now() + within;
    let mut last = None;
    loop {
        last = whoami(ns).ok().or(last);
        if last == Some(source) {
            return Ok(Instant::now());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "new flows from {ns} did not come from {source} within {within:?} (last seen: {last:?})"
        );
        thread::sleep(Duration::from_millis(200));
    }
}

/// The server port of [`assert_upload_arrives`].
const UPLOAD_PORT: u16 = 9000;

/// Uploads 2 MiB from `ns` to the server, which answers with the SHA-256 it received; both
/// sides must see the data intact. Lost packets with no working path-MTU discovery stall
/// the upload, which then fails after 20 s.
pub fn assert_upload_arrives(ns: &str) {
    let data: Vec<u8> = (0..2 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24).to_le_bytes()[0])
        .collect();
    let want = lab::sha256_hex(&data);
    let timeout = Some(Duration::from_secs(20));
    let listener = netns::in_netns(Plan::NS_INET, || {
        TcpListener::bind((Plan::SERVER, UPLOAD_PORT))
    })
    .expect("enter inet")
    .expect("listen on the server");
    let server = thread::spawn(move || -> std::io::Result<String> {
        let (mut conn, _) = listener.accept()?;
        conn.set_read_timeout(timeout)?;
        let mut received = Vec::new();
        conn.read_to_end(&mut received)?;
        let digest = lab::sha256_hex(&received);
        conn.write_all(digest.as_bytes())?;
        Ok(digest)
    });
    let reply = netns::in_netns(ns, move || -> std::io::Result<String> {
        let server = SocketAddr::from((Plan::SERVER, UPLOAD_PORT));
        let mut conn = TcpStream::connect_timeout(&server, Duration::from_secs(5))?;
        conn.set_write_timeout(timeout)?;
        conn.set_read_timeout(timeout)?;
        conn.write_all(&data)?;
        conn.shutdown(std::net::Shutdown::Write)?;
        let mut reply = String::new();
        conn.read_to_string(&mut reply)?;
        Ok(reply)
    })
    .expect("enter the host")
    .expect("upload (a stall means path-MTU discovery failed)");
    let server_digest = server.join().expect("server thread").expect("server side");
    assert_eq!(server_digest, want, "the server received the data intact");
    assert_eq!(reply, want);
}
