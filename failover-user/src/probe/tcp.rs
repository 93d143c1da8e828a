//! TCP handshake with a far target through one uplink.

use std::{
    net::{IpAddr, SocketAddrV4},
    time::{Duration, Instant},
};

use socket2::{Protocol, Type};
use tokio::net::{TcpSocket, TcpStream};

use super::{PathEnd, ProbeError, ProbePath, bound_socket, within};

/// Connects to `addr` through `path`; the round-trip time is the handshake's.
pub async fn probe(
    path: &ProbePath,
    addr: SocketAddrV4,
    timeout: Duration,
) -> Result<Duration, ProbeError> {
    within(timeout, async {
        let start = Instant::now();
        connect(path, addr).await?;
        Ok(start.elapsed())
    })
    .await
}

/// A connection to `addr` from the uplink's address through its interface (no deadline:
/// callers put one around it), checked to really use that address.
pub(super) async fn connect(path: &ProbePath, addr: SocketAddrV4) -> Result<TcpStream, ProbeError> {
    let socket = bound_socket(path, Type::STREAM, Protocol::TCP)?;
    let stream = TcpSocket::from_std_stream(socket.into())
        .connect(addr.into())
        .await?;
    check_source(path, stream.local_addr()?.ip())?;
    Ok(stream)
}

fn check_source(path: &ProbePath, local: IpAddr) -> Result<(), ProbeError> {
    if local == IpAddr::V4(path.source) {
        Ok(())
    } else {
        Err(ProbeError::WrongPath {
            expected: PathEnd::Source(path.source.into()),
            got: PathEnd::Source(local),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    #[test]
    fn a_connection_from_another_address_is_the_wrong_path() {
        let path = ProbePath {
            uplink: "lte".into(),
            interface: "lte".into(),
            ifindex: 4,
            source: Ipv4Addr::new(100, 64, 0, 2),
            mac: [2, 0, 0, 0, 0, 2],
            gateway: Some(Ipv4Addr::new(100, 64, 0, 1)),
            ethernet: true,
        };
        assert!(check_source(&path, Ipv4Addr::new(100, 64, 0, 2).into()).is_ok());
        let other = IpAddr::from(Ipv4Addr::new(192, 0, 2, 2));
        assert!(matches!(
            check_source(&path, other),
            Err(ProbeError::WrongPath { got: PathEnd::Source(got), .. }) if got == other
        ));
    }
}
