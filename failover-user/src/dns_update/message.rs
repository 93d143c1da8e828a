//! The RFC 2136 update that points the records at an address, signed with TSIG, and the
//! check of the server's answer.

use std::net::Ipv4Addr;

use hickory_proto::{
    dnssec::tsig::TSigner,
    op::{Message, MessageType, MessageVerifier, OpCode, Query, ResponseCode, UpdateMessage as _},
    rr::{DNSClass, Name, RData, Record, RecordType, rdata::A},
};

/// An update on the wire and what checks the answer to it.
pub struct SignedUpdate {
    pub id: u16,
    pub bytes: Vec<u8>,
    verifier: MessageVerifier,
}

/// What a datagram from the server says about the update.
#[derive(Debug, PartialEq, Eq)]
pub enum Answer {
    /// Not a response to this update (another id, or not a response): keep waiting.
    NotOurs,
    /// Applied: a NOERROR response with a valid signature from the key's holder.
    Acknowledged,
    /// Refused with this response code (a wrong key, a zone the server does not hold...).
    Refused(String),
    /// A NOERROR response whose signature does not verify: not proof of anything.
    BadSignature(String),
}

/// In zone `zone`: every name in `records` gets one A record, `address` with `ttl`, in
/// place of whatever A records it had (one message, so the server applies it whole).
#[must_use]
pub fn update(zone: &Name, records: &[Name], address: Ipv4Addr, ttl: u32, id: u16) -> Message {
    let mut zone_query = Query::new();
    zone_query
        .set_name(zone.clone())
        .set_query_class(DNSClass::IN)
        .set_query_type(RecordType::SOA);
    let mut message = Message::new();
    message
        .set_id(id)
        .set_message_type(MessageType::Query)
        .set_op_code(OpCode::Update)
        .set_recursion_desired(false);
    message.add_zone(zone_query);
    for name in records {
        // RFC 2136 2.5.2: class ANY, TTL 0 and no data delete the name's A RRset.
        let mut delete = Record::update0(name.clone(), 0, RecordType::A);
        delete.set_dns_class(DNSClass::ANY);
        message.add_update(delete);
        message.add_update(Record::from_rdata(name.clone(), ttl, RData::A(A(address))));
    }
    message
}

/// `message` signed with `signer` at `now` (seconds since the epoch), ready to send.
pub fn sign(mut message: Message, signer: &TSigner, now: u32) -> Result<SignedUpdate, String> {
    let verifier = message
        .finalize(signer, now)
        .map_err(|e| format!("signing the update: {e}"))?
        .ok_or_else(|| "signing the update gave no way to check the answer".to_owned())?;
    let bytes = message
        .to_vec()
        .map_err(|e| format!("encoding the update: {e}"))?;
    Ok(SignedUpdate {
        id: message.id(),
        bytes,
        verifier,
    })
}

impl SignedUpdate {
    /// What `datagram` says of this update.
    pub fn answer(&mut self, datagram: &[u8]) -> Answer {
        let Ok(message) = Message::from_vec(datagram) else {
            return Answer::NotOurs;
        };
        if message.id() != self.id
            || message.message_type() != MessageType::Response
            || message.op_code() != OpCode::Update
        {
            return Answer::NotOurs;
        }
        let code = message.response_code();
        if code != ResponseCode::NoError {
            // A refusal is often unsigned (a key the server does not know): it proves
            // nothing, but the update is retried anyway and the code says why it waits.
            // Its RFC name (NOTAUTH, REFUSED, NOTZONE), as DNS tools print it.
            return Answer::Refused(format!("{code:?}").to_uppercase());
        }
        match (self.verifier)(datagram) {
            Ok(_) => Answer::Acknowledged,
            Err(e) => Answer::BadSignature(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use hickory_proto::dnssec::{
        rdata::tsig::{TSIG, TsigAlgorithm, make_tsig_record, message_tbs},
        tsig::TSigner,
    };

    use super::*;

    fn signer(secret: &[u8]) -> TSigner {
        TSigner::new(
            secret.to_vec(),
            TsigAlgorithm::HmacSha256,
            Name::from_ascii("failover.").expect("name"),
            300,
        )
        .expect("a signer")
    }

    fn names(list: &[&str]) -> Vec<Name> {
        list.iter()
            .map(|n| Name::from_ascii(n).expect("name"))
            .collect()
    }

    /// The server's answer to `request`, signed with `key` as RFC 8945 4.3 says: over the
    /// request's MAC, then the response.
    fn response(request: &[u8], key: &TSigner, code: ResponseCode, now: u64) -> Vec<u8> {
        let request = Message::from_vec(request).expect("the update parses");
        let request_mac = match request.signature()[0].data() {
            RData::DNSSEC(hickory_proto::dnssec::rdata::DNSSECRData::TSIG(t)) => t.mac().to_vec(),
            other => panic!("not a TSIG: {other:?}"),
        };
        let mut reply = Message::new();
        reply
            .set_id(request.id())
            .set_message_type(MessageType::Response)
            .set_op_code(OpCode::Update)
            .set_response_code(code);
        let pre = TSIG::new(
            TsigAlgorithm::HmacSha256,
            now,
            300,
            Vec::new(),
            request.id(),
            0,
            Vec::new(),
        );
        let tbs = message_tbs(Some(&request_mac), &reply, &pre, key.signer_name()).expect("tbs");
        let mac = key.sign(&tbs).expect("mac");
        reply.add_tsig(make_tsig_record(
            key.signer_name().clone(),
            pre.set_mac(mac),
        ));
        reply.to_vec().expect("encoded")
    }

    #[test]
    fn the_update_replaces_each_records_a_rrset_in_the_zone() {
        let zone = Name::from_ascii("example.com.").expect("zone");
        let records = names(&["www.example.com.", "mail.example.com."]);
        let address = Ipv4Addr::new(198, 51, 100, 2);
        let message = update(&zone, &records, address, 30, 7);
        let wire = Message::from_vec(&message.to_vec().expect("encoded")).expect("parsed");
        assert_eq!(wire.op_code(), OpCode::Update);
        assert_eq!(wire.queries()[0].name(), &zone);
        assert_eq!(wire.queries()[0].query_type(), RecordType::SOA);
        let updates = wire.name_servers();
        assert_eq!(updates.len(), 4);
        for (pair, name) in updates.chunks(2).zip(&records) {
            assert_eq!(pair[0].name(), name);
            assert_eq!(pair[0].dns_class(), DNSClass::ANY);
            assert_eq!(pair[0].record_type(), RecordType::A);
            assert_eq!(pair[0].ttl(), 0);
            assert_eq!(pair[1].name(), name);
            assert_eq!(pair[1].dns_class(), DNSClass::IN);
            assert_eq!(pair[1].ttl(), 30);
            assert_eq!(pair[1].data(), &RData::A(A(address)));
        }
    }

    #[test]
    fn only_a_signed_noerror_answer_to_this_update_acknowledges_it() {
        let key = signer(b"the lab's secret");
        let zone = Name::from_ascii("example.com.").expect("zone");
        let message = update(
            &zone,
            &names(&["www.example.com."]),
            Ipv4Addr::LOCALHOST,
            30,
            9,
        );
        let now = 1_800_000_000;
        let mut signed = sign(message, &key, now).expect("signed");
        assert_eq!(signed.id, 9);
        let good = response(&signed.bytes, &key, ResponseCode::NoError, now.into());

        // Another id, garbage: not an answer.
        let mut other = good.clone();
        other[1] ^= 1;
        assert_eq!(signed.answer(&other), Answer::NotOurs);
        assert_eq!(signed.answer(b"\x00\x09garbage"), Answer::NotOurs);
        // Signed with another key, or tampered with: not proof.
        let forged = response(
            &signed.bytes,
            &signer(b"guessed"),
            ResponseCode::NoError,
            now.into(),
        );
        assert!(matches!(signed.answer(&forged), Answer::BadSignature(_)));
        // A refusal says why.
        let refused = response(&signed.bytes, &key, ResponseCode::NotAuth, now.into());
        assert_eq!(
            signed.answer(&refused),
            Answer::Refused("NOTAUTH".to_owned())
        );
        // A fresh signed update and the server's good answer.
        let message = update(
            &zone,
            &names(&["www.example.com."]),
            Ipv4Addr::LOCALHOST,
            30,
            9,
        );
        let mut signed = sign(message, &key, now).expect("signed");
        let good = response(&signed.bytes, &key, ResponseCode::NoError, now.into());
        assert_eq!(signed.answer(&good), Answer::Acknowledged);
    }
}
