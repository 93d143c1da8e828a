//! A minimal HTTP/1.x server for `GET /metrics`: one request per connection, answered and
//! closed. Scrapers need nothing more, and it keeps a web framework out of the router.

use std::{io, net::SocketAddr, time::Duration};

use tokio::{
    io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _},
    net::TcpListener,
    sync::{mpsc, oneshot},
    task::JoinHandle,
};
use tracing::{debug, info, warn};

use super::text::CONTENT_TYPE;
use crate::control::{Call, Request};

/// A request head larger than this is refused: a scrape's is a few hundred bytes.
const MAX_HEAD: usize = 8 * 1024;
/// A client that has not sent its request by then is dropped.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Serves metrics on `listen`, if set. A failure to listen is logged, not fatal: the router
/// must keep routing without its metrics.
pub fn spawn(listen: Option<SocketAddr>, calls: &mpsc::Sender<Call>) {
    let Some(listen) = listen else { return };
    match listen_on(listen, calls.clone()) {
        Ok((bound, _task)) => info!("metrics at http://{bound}/metrics"),
        Err(e) => warn!(%listen, error = %e, "cannot serve metrics; the daemon runs without them"),
    }
}

/// Binds `listen` and answers every connection on it; returns the bound address.
pub fn listen_on(
    listen: SocketAddr,
    calls: mpsc::Sender<Call>,
) -> io::Result<(SocketAddr, JoinHandle<()>)> {
    // Bound synchronously, so a taken port is reported at start-up.
    let listener = std::net::TcpListener::bind(listen)?;
    listener.set_nonblocking(true)?;
    let listener = TcpListener::from_std(listener)?;
    let bound = listener.local_addr()?;
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, peer)) = listener.accept().await else {
                continue;
            };
            let calls = calls.clone();
            tokio::spawn(async move {
                if let Err(e) = answer(stream, &calls).await {
                    debug!(%peer, error = %e, "metrics connection");
                }
            });
        }
    });
    Ok((bound, task))
}

/// Reads one request head from `stream` and writes the response.
pub async fn answer<S>(mut stream: S, calls: &mpsc::Sender<Call>) -> io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let head = tokio::time::timeout(READ_TIMEOUT, read_head(&mut stream))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no request head in time"))??;
    let (status, content_type, body) = match route(&head) {
        Route::Metrics => match metrics(calls).await {
            Ok(text) => ("200 OK", CONTENT_TYPE, text),
            Err(e) => ("503 Service Unavailable", "text/plain", format!("{e}\n")),
        },
        Route::NotFound => ("404 Not Found", "text/plain", "try /metrics\n".to_owned()),
        Route::MethodNotAllowed => (
            "405 Method Not Allowed",
            "text/plain",
            "only GET\n".to_owned(),
        ),
        Route::BadRequest => ("400 Bad Request", "text/plain", String::new()),
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}

#[derive(Debug, PartialEq, Eq)]
enum Route {
    Metrics,
    NotFound,
    MethodNotAllowed,
    BadRequest,
}

/// Routes on the request line alone; the headers do not matter here.
fn route(head: &str) -> Route {
    let mut parts = head.lines().next().unwrap_or_default().split(' ');
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return Route::BadRequest;
    };
    if !version.starts_with("HTTP/1.") {
        return Route::BadRequest;
    }
    let path = target.split('?').next().unwrap_or_default();
    match (method, path) {
        ("GET", "/metrics") => Route::Metrics,
        (_, "/metrics") => Route::MethodNotAllowed,
        _ => Route::NotFound,
    }
}

/// Bytes up to the blank line that ends the head (or the peer's end of stream).
async fn read_head<S: AsyncRead + Unpin>(stream: &mut S) -> io::Result<String> {
    let mut head = Vec::new();
    let mut buffer = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buffer).await?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buffer[..n]);
        if head.len() > MAX_HEAD {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "request head too large",
            ));
        }
    }
    Ok(String::from_utf8_lossy(&head).into_owned())
}

/// Asks the daemon for the text.
async fn metrics(calls: &mpsc::Sender<Call>) -> Result<String, &'static str> {
    let (tx, rx) = oneshot::channel();
    calls
        .send((Request::Metrics, tx))
        .await
        .map_err(|_| "the daemon is shutting down")?;
    rx.await
        .ok()
        .and_then(|response| response.metrics)
        .ok_or("the daemon gave no metrics")
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    use super::*;
    use crate::control::Response;

    /// A daemon that answers every metrics request with `text`.
    fn daemon(text: &'static str) -> mpsc::Sender<Call> {
        let (tx, mut rx) = mpsc::channel::<Call>(4);
        tokio::spawn(async move {
            while let Some((request, reply)) = rx.recv().await {
                assert_eq!(request, Request::Metrics);
                let _ = reply.send(Response {
                    ok: true,
                    metrics: Some(text.to_owned()),
                    ..Response::default()
                });
            }
        });
        tx
    }

    async fn exchange(request: &str, calls: &mpsc::Sender<Call>) -> String {
        let (mut client, server) = tokio::io::duplex(64 * 1024);
        let calls = calls.clone();
        let handler = tokio::spawn(async move { answer(server, &calls).await });
        client.write_all(request.as_bytes()).await.unwrap();
        let mut response = String::new();
        client.read_to_string(&mut response).await.unwrap();
        handler.await.unwrap().unwrap();
        response
    }

    #[test]
    fn routes() {
        assert_eq!(
            route("GET /metrics HTTP/1.1\r\nHost: x\r\n"),
            Route::Metrics
        );
        assert_eq!(route("GET /metrics?x=1 HTTP/1.0\r\n"), Route::Metrics);
        assert_eq!(route("GET / HTTP/1.1\r\n"), Route::NotFound);
        assert_eq!(route("POST /metrics HTTP/1.1\r\n"), Route::MethodNotAllowed);
        assert_eq!(route("GET /metrics\r\n"), Route::BadRequest);
        assert_eq!(route("GET /metrics SPDY/3\r\n"), Route::BadRequest);
        assert_eq!(route(""), Route::BadRequest);
    }

    #[tokio::test]
    async fn get_metrics_answers_the_daemons_text_in_the_prometheus_format() {
        let calls = daemon("failover_switches_total 3\n");
        let response = exchange("GET /metrics HTTP/1.1\r\nHost: router\r\n\r\n", &calls).await;
        assert_eq!(
            response,
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n\
             Content-Length: 26\r\nConnection: close\r\n\r\nfailover_switches_total 3\n"
        );
    }

    #[tokio::test]
    async fn other_paths_are_404_and_a_stopped_daemon_is_503() {
        let calls = daemon("");
        let response = exchange("GET /favicon.ico HTTP/1.1\r\n\r\n", &calls).await;
        assert!(
            response.starts_with("HTTP/1.1 404 Not Found\r\n"),
            "{response}"
        );

        let (gone, _) = mpsc::channel::<Call>(1);
        let response = exchange("GET /metrics HTTP/1.1\r\n\r\n", &gone).await;
        assert!(
            response.starts_with("HTTP/1.1 503 Service Unavailable\r\n"),
            "{response}"
        );
        assert!(response.ends_with("shutting down\n"), "{response}");
    }

    #[tokio::test]
    async fn an_oversized_head_is_refused() {
        let (mut client, server) = tokio::io::duplex(64 * 1024);
        let handler = tokio::spawn(async move { answer(server, &daemon("")).await });
        let junk = format!("GET /metrics HTTP/1.1\r\nX: {}\r\n", "a".repeat(MAX_HEAD));
        client.write_all(junk.as_bytes()).await.unwrap();
        let error = handler.await.unwrap().unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidData);
    }

    #[tokio::test]
    async fn it_listens_on_tcp() {
        let (bound, task) = listen_on("127.0.0.1:0".parse().unwrap(), daemon("up 1\n")).unwrap();
        let mut stream = tokio::net::TcpStream::connect(bound).await.unwrap();
        stream
            .write_all(b"GET /metrics HTTP/1.1\r\n\r\n")
            .await
            .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).await.unwrap();
        assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
        assert!(response.ends_with("\r\n\r\nup 1\n"), "{response}");
        // A second server cannot take the same port; `spawn` would log it and go on.
        let (tx, _rx) = mpsc::channel(1);
        assert!(listen_on(bound, tx).is_err());
        task.abort();
    }
}
