//! HTTP GET through one uplink: any `HTTP/1.x NNN` status line counts as an answer (an error
//! page still proves the path works).

use std::{
    net::SocketAddrV4,
    time::{Duration, Instant},
};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use super::{ProbeError, ProbePath, tcp, within};

/// The most of the response read while looking for the status line.
const MAX_READ: usize = 4096;

/// `GET page` from `addr` through `path`; the round-trip time runs from the start of the
/// handshake to the status line.
pub async fn probe(
    path: &ProbePath,
    addr: SocketAddrV4,
    page: &str,
    timeout: Duration,
) -> Result<Duration, ProbeError> {
    within(timeout, async {
        let start = Instant::now();
        let mut stream = tcp::connect(path, addr).await?;
        stream.write_all(request(addr, page).as_bytes()).await?;
        let mut response = Vec::with_capacity(MAX_READ);
        loop {
            if let Some(line_end) = response.windows(2).position(|w| w == b"\r\n") {
                let line = String::from_utf8_lossy(&response[..line_end]);
                return status(&line)
                    .map(|_| start.elapsed())
                    .ok_or_else(|| ProbeError::BadReply(format!("status line `{line}`")));
            }
            let room = MAX_READ - response.len();
            if room == 0
                || (&mut stream)
                    .take(room as u64)
                    .read_buf(&mut response)
                    .await?
                    == 0
            {
                return Err(ProbeError::BadReply(format!(
                    "no status line in the first {} bytes",
                    response.len()
                )));
            }
        }
    })
    .await
}

/// The request; `Host` is the address, as a target is configured by address.
fn request(addr: SocketAddrV4, page: &str) -> String {
    format!(
        "GET {page} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: failover-probe\r\nConnection: close\r\n\r\n",
        host = addr.ip()
    )
}

/// The status code of an `HTTP/1.x NNN [reason]` line.
fn status(line: &str) -> Option<u16> {
    let rest = line
        .strip_prefix("HTTP/1.")?
        .strip_prefix(['0', '1'])?
        .strip_prefix(' ')?;
    let code = rest.get(..3)?;
    let after = &rest[3..];
    if !(after.is_empty() || after.starts_with(' ')) || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    code.parse().ok().filter(|code| (100..600).contains(code))
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    #[test]
    fn request_names_the_page_and_host_and_closes() {
        let addr = SocketAddrV4::new(Ipv4Addr::new(203, 0, 113, 10), 80);
        let text = request(addr, "/whoami");
        assert!(text.starts_with("GET /whoami HTTP/1.1\r\n"), "{text}");
        assert!(text.contains("\r\nHost: 203.0.113.10\r\n"), "{text}");
        assert!(text.contains("\r\nConnection: close\r\n"), "{text}");
        assert!(text.ends_with("\r\n\r\n"), "{text}");
    }

    #[test]
    fn any_valid_status_line_counts() {
        assert_eq!(status("HTTP/1.1 200 OK"), Some(200));
        assert_eq!(status("HTTP/1.0 404 Not Found"), Some(404));
        assert_eq!(status("HTTP/1.1 503"), Some(503));
        for bad in [
            "HTTP/2 200 OK",
            "HTTP/1.1 20 OK",
            "HTTP/1.1 2000 OK",
            "HTTP/1.1 abc OK",
            "HTTP/1.1 999 Nine",
            "SSH-2.0-OpenSSH_9.2",
            "",
        ] {
            assert_eq!(status(bad), None, "{bad:?}");
        }
    }
}
