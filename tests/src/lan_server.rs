//! A web server on a LAN host, for the inbound tests: it answers every request with the
//! address and port it sees the client at, so a test tells whether the connection arrived
//! untranslated (the internet client's own address) and through which forward; and the
//! internet's client of it, by address or by a name the lab's zone holds.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};

use crate::{
    lab::{Knot, Plan},
    netns,
};

/// A server thread listening in a namespace; stopped when dropped.
pub struct LanServer {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl LanServer {
    /// Listens on `port` of every address of `ns`.
    pub fn start(ns: &str, port: u16) -> Result<Self> {
        let listener = netns::in_netns(ns, || {
            TcpListener::bind(SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)))
        })?
        .with_context(|| format!("listening on port {port} in {ns}"))?;
        listener.set_nonblocking(true)?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            while !stopping.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, peer)) => {
                        std::thread::spawn(move || serve(stream, peer));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Ok(Self {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for LanServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Answers each request on the connection (keep-alive) with `peer`, until the client closes
/// it or stays silent for 90 s (longer than the demo's failback hold-down).
fn serve(stream: TcpStream, peer: SocketAddr) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(90)));
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    loop {
        // The request line and headers, up to the empty line.
        let mut saw_request = false;
        loop {
            let mut line = String::new();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) if line.trim().is_empty() && saw_request => break,
                Ok(_) => saw_request = true,
            }
        }
        let body = format!("{peer}\n");
        let answer = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        if writer.write_all(answer.as_bytes()).is_err() {
            return;
        }
    }
}

/// A keep-alive HTTP connection from the internet to a forward.
pub struct Client {
    reader: BufReader<TcpStream>,
}

impl Client {
    /// From the internet.
    pub fn open(to: SocketAddr) -> Result<Self> {
        Self::open_from(Plan::NS_INET, to)
    }

    /// From namespace `ns` (a LAN host, for hairpin).
    pub fn open_from(ns: &str, to: SocketAddr) -> Result<Self> {
        let stream = netns::in_netns(ns, || {
            TcpStream::connect_timeout(&to, Duration::from_secs(3))
        })?
        .with_context(|| format!("connecting from {ns} to {to}"))?;
        stream.set_read_timeout(Some(Duration::from_secs(3)))?;
        Ok(Self {
            reader: BufReader::new(stream),
        })
    }

    /// `GET /`: the address the LAN server sees the client at.
    pub fn get(&mut self) -> Result<SocketAddr> {
        self.reader
            .get_mut()
            .write_all(b"GET / HTTP/1.1\r\nHost: site\r\n\r\n")?;
        let mut length = 0;
        loop {
            let mut line = String::new();
            if self.reader.read_line(&mut line)? == 0 {
                bail!("the connection closed");
            }
            if let Some(value) = line.strip_prefix("Content-Length: ") {
                length = value.trim().parse()?;
            }
            if line == "\r\n" {
                break;
            }
        }
        let mut body = vec![0; length];
        self.reader.read_exact(&mut body)?;
        Ok(String::from_utf8(body)?.trim().parse()?)
    }
}

/// One request on a new connection: the address the LAN server saw the client at.
pub fn fetch(to: SocketAddr) -> Result<SocketAddr> {
    Client::open(to)?.get()
}

/// The site fetched by name from the internet: `name` asked of the zone's server (as a
/// resolver whose cache has expired would), then one request to the address it gives on
/// `port`. Returns that address and what the server saw.
pub fn fetch_by_name(knot: &Knot, name: &str, port: u16) -> Result<(Ipv4Addr, SocketAddr)> {
    let [address] = knot.query(name)?[..] else {
        bail!("{name} has not exactly one address");
    };
    Ok((address, fetch(SocketAddr::from((address, port)))?))
}
