//! DNS through one uplink: an A query for `[health] dns_name`; any well-formed response with
//! the query's id counts (NXDOMAIN or SERVFAIL still prove the resolver was reached).

use std::{
    hash::{BuildHasher as _, RandomState},
    net::{Ipv4Addr, SocketAddrV4},
    time::{Duration, Instant},
};

use hickory_proto::{
    op::{Message, MessageType, Query},
    rr::{Name, RecordType},
};
use socket2::{Protocol, Type};
use tokio::net::UdpSocket;

use super::{ProbeError, ProbePath, bound_socket, within};

const DNS_PORT: u16 = 53;

/// Asks `server` for `name`'s A record through `path`.
pub async fn probe(
    path: &ProbePath,
    server: Ipv4Addr,
    name: &str,
    timeout: Duration,
) -> Result<Duration, ProbeError> {
    // Unpredictable, so a forged answer must guess it as well as the source port.
    #[expect(
        clippy::cast_possible_truncation,
        reason = "any 16 bits of a random hash"
    )]
    let id = RandomState::new().hash_one(name) as u16;
    let query = query(id, name)?;
    let socket = UdpSocket::from_std(bound_socket(path, Type::DGRAM, Protocol::UDP)?.into())?;
    // Connected: the kernel drops datagrams from anyone else and reports port unreachable.
    socket.connect(SocketAddrV4::new(server, DNS_PORT)).await?;
    within(timeout, async {
        let start = Instant::now();
        socket.send(&query).await?;
        let mut buf = [0; 1500];
        loop {
            let len = socket.recv(&mut buf).await?;
            if is_answer(&buf[..len], id) {
                return Ok(start.elapsed());
            }
        }
    })
    .await
}

/// A recursive A query for `name` with `id`, as sent on the wire.
fn query(id: u16, name: &str) -> Result<Vec<u8>, ProbeError> {
    let name = Name::from_ascii(name)
        .map_err(|e| ProbeError::Invalid(format!("DNS name `{name}`: {e}")))?;
    let mut message = Message::new();
    message
        .set_id(id)
        .set_recursion_desired(true)
        .add_query(Query::query(name, RecordType::A));
    message
        .to_vec()
        .map_err(|e| ProbeError::Invalid(format!("encoding the DNS query: {e}")))
}

/// `bytes` is a well-formed DNS response to the query `id`.
fn is_answer(bytes: &[u8], id: u16) -> bool {
    Message::from_vec(bytes)
        .is_ok_and(|message| message.id() == id && message.message_type() == MessageType::Response)
}

#[cfg(test)]
mod tests {
    use hickory_proto::{
        op::ResponseCode,
        rr::{RData, Record, rdata::A},
    };

    use super::*;

    fn response_to(query: &[u8], code: ResponseCode) -> Vec<u8> {
        let mut message = Message::from_vec(query).unwrap();
        let name = message.queries()[0].name().clone();
        message
            .set_message_type(MessageType::Response)
            .set_response_code(code);
        if code == ResponseCode::NoError {
            message.add_answer(Record::from_rdata(
                name,
                60,
                RData::A(A::new(203, 0, 113, 53)),
            ));
        }
        message.to_vec().unwrap()
    }

    #[test]
    fn query_asks_for_the_a_record_recursively() {
        let bytes = query(0x1234, "example.com").unwrap();
        let message = Message::from_vec(&bytes).unwrap();
        assert_eq!(message.id(), 0x1234);
        assert_eq!(message.message_type(), MessageType::Query);
        assert!(message.recursion_desired());
        let question = &message.queries()[0];
        assert_eq!(question.name().to_ascii(), "example.com.");
        assert_eq!(question.query_type(), RecordType::A);
    }

    #[test]
    fn any_response_with_our_id_counts() {
        let bytes = query(7, "example.com").unwrap();
        assert!(is_answer(&response_to(&bytes, ResponseCode::NoError), 7));
        assert!(is_answer(&response_to(&bytes, ResponseCode::NXDomain), 7));
        assert!(
            !is_answer(&response_to(&bytes, ResponseCode::NoError), 8),
            "other id"
        );
        assert!(!is_answer(&bytes, 7), "a query is not an answer");
        assert!(!is_answer(&[0, 7, 0x80], 7), "truncated");
    }

    #[test]
    fn a_bad_name_is_reported() {
        let long_label = "a".repeat(64);
        assert!(matches!(query(1, &long_label), Err(ProbeError::Invalid(_))));
    }
}
