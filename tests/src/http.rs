//! One long-lived HTTP/1.1 connection from a LAN host to the lab's server: `/whoami` on it
//! tells which uplink carries that very flow, and a slowly read `/blob.bin` is a download
//! in progress when a fault hits.

use std::io::{self, BufRead as _, BufReader, Read as _, Write as _};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};

use crate::lab::Plan;
use crate::netns;

/// A keep-alive connection to the server, opened in a host's namespace.
pub struct KeepAlive {
    reader: BufReader<TcpStream>,
}

impl KeepAlive {
    /// Connects from `ns` to the server's HTTP port.
    pub fn open(ns: &str) -> Result<Self> {
        let server = SocketAddr::from((Plan::SERVER, Plan::HTTP_PORT));
        let stream = netns::in_netns(ns, || {
            TcpStream::connect_timeout(&server, Duration::from_secs(3))
        })?
        .with_context(|| format!("connecting from {ns} to {server}"))?;
        stream.set_read_timeout(Some(Duration::from_secs(3)))?;
        Ok(Self {
            reader: BufReader::new(stream),
        })
    }

    /// How long a read may wait for data before it fails (3 s after [`Self::open`]).
    pub fn set_read_timeout(&mut self, timeout: Duration) -> Result<()> {
        Ok(self.reader.get_ref().set_read_timeout(Some(timeout))?)
    }

    /// `GET /whoami` on this connection: the address the server sees for this flow.
    pub fn whoami(&mut self) -> Result<Ipv4Addr> {
        self.request(Plan::WHOAMI_PATH)?;
        let length = self.read_headers()?;
        let mut body = vec![0; length];
        self.reader
            .read_exact(&mut body)
            .context("reading /whoami")?;
        let text = String::from_utf8_lossy(&body);
        text.trim()
            .parse()
            .with_context(|| format!("/whoami answered {text:?}"))
    }

    /// `GET /blob.bin`, then reads `bytes` of it at about `rate` bytes a second, so the
    /// download is still going on afterwards.
    pub fn start_slow_download(&mut self, bytes: usize, rate: u32) -> Result<()> {
        const CHUNK: u32 = 1024;
        self.request(Plan::BLOB_PATH)?;
        self.read_headers()?;
        let pause = Duration::from_secs(1) * CHUNK / rate.max(1);
        let mut buf = [0; CHUNK as usize];
        let mut read = 0;
        while read < bytes {
            self.reader
                .read_exact(&mut buf)
                .context("reading the download")?;
            read += buf.len();
            std::thread::sleep(pause);
        }
        Ok(())
    }

    /// `GET /blob.bin`, read whole at about `rate` bytes a second: the SHA-256 (hex) of what
    /// arrived, to compare with [`crate::lab::BLOB_SHA256`].
    pub fn download_blob(&mut self, rate: u32) -> Result<String> {
        const CHUNK: usize = 4096;
        self.request(Plan::BLOB_PATH)?;
        let length = self.read_headers()?;
        let pause = Duration::from_secs(1) * u32::try_from(CHUNK)? / rate.max(1);
        let mut body = Vec::with_capacity(length);
        let mut buf = [0; CHUNK];
        while body.len() < length {
            let want = CHUNK.min(length - body.len());
            self.reader
                .read_exact(&mut buf[..want])
                .with_context(|| format!("reading the download at byte {}", body.len()))?;
            body.extend_from_slice(&buf[..want]);
            std::thread::sleep(pause);
        }
        Ok(crate::lab::sha256_hex(&body))
    }

    /// Reads what is left as fast as it comes until the connection fails or `deadline`:
    /// the error the application sees (e.g. `ConnectionReset`), or an error saying the data
    /// ended or kept coming.
    pub fn read_until_error(&mut self, deadline: Instant) -> Result<io::Error> {
        let mut buf = vec![0; 64 * 1024];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                bail!("the connection still worked at the deadline");
            }
            self.reader.get_ref().set_read_timeout(Some(left))?;
            match self.reader.read(&mut buf) {
                Ok(0) => bail!("the server ended the connection normally"),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    bail!("no data and no error before the deadline")
                }
                Err(e) => return Ok(e),
            }
        }
    }

    fn request(&mut self, path: &str) -> Result<()> {
        let request = format!("GET {path} HTTP/1.1\r\nHost: {}\r\n\r\n", Plan::SERVER);
        self.reader
            .get_mut()
            .write_all(request.as_bytes())
            .with_context(|| format!("sending GET {path}"))
    }

    /// Reads the status line and headers; returns the body's `Content-Length`.
    fn read_headers(&mut self) -> Result<usize> {
        let mut length = None;
        let mut line = String::new();
        let mut first = true;
        loop {
            line.clear();
            if self
                .reader
                .read_line(&mut line)
                .context("reading headers")?
                == 0
            {
                bail!("the connection closed before the headers ended");
            }
            let header = line.trim_end();
            if first {
                if !header.starts_with("HTTP/1.1 200") {
                    bail!("unexpected status line {header:?}");
                }
                first = false;
            } else if header.is_empty() {
                return length.context("no Content-Length");
            } else if let Some((name, value)) = header.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = Some(value.trim().parse().context("Content-Length")?);
            }
        }
    }
}
