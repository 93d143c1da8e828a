//! The TSIG key updates are signed with, read from the file `[dns] key_file` names.

use std::path::Path;

use hickory_proto::{
    dnssec::{rdata::tsig::TsigAlgorithm, tsig::TSigner},
    rr::Name,
};

/// How far the server's clock may be from ours (RFC 8945 recommends 300 s).
const FUDGE_SECS: u16 = 300;

/// A TSIG key: its name, algorithm and secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TsigKey {
    pub name: String,
    pub algorithm: String,
    secret: Vec<u8>,
}

impl TsigKey {
    /// Reads and parses `path`; the error says what is wrong without showing the secret.
    pub fn read(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("reading the TSIG key file {}: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| format!("TSIG key file {}: {e}", path.display()))
    }

    /// `key "NAME" { algorithm ALG; secret "BASE64"; };` (as `tsig-keygen` and
    /// `ddns-confgen` write it) or one line `ALG:NAME:BASE64` (as `knsupdate -y` takes it).
    pub fn parse(text: &str) -> Result<Self, String> {
        let text: String = text
            .lines()
            .map(|line| line.split(['#']).next().unwrap_or_default())
            .filter(|line| !line.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n");
        let text = text.trim();
        let (name, algorithm, secret) = if text.starts_with("key") {
            clause(text)?
        } else {
            let mut parts = text.splitn(3, ':');
            match (parts.next(), parts.next(), parts.next()) {
                (Some(alg), Some(name), Some(secret)) => {
                    (name.to_owned(), alg.to_owned(), secret.to_owned())
                }
                _ => {
                    return Err(
                        "expected `key \"NAME\" { algorithm ALG; secret \"BASE64\"; };` or `ALG:NAME:BASE64`"
                            .to_owned(),
                    );
                }
            }
        };
        let algorithm = algorithm.trim().to_ascii_lowercase();
        algorithm_of(&algorithm)?;
        let name = name.trim().to_owned();
        Name::from_ascii(&name).map_err(|_| format!("key name `{name}` is not a domain name"))?;
        let secret = data_encoding::BASE64
            .decode(secret.trim().as_bytes())
            .map_err(|_| "the secret is not base64".to_owned())?;
        if secret.is_empty() {
            return Err("the secret is empty".to_owned());
        }
        Ok(Self {
            name,
            algorithm,
            secret,
        })
    }

    /// What signs the updates and checks the server's answers.
    pub fn signer(&self) -> Result<TSigner, String> {
        let name = Name::from_ascii(&self.name).map_err(|e| e.to_string())?;
        TSigner::new(
            self.secret.clone(),
            algorithm_of(&self.algorithm)?,
            name,
            FUDGE_SECS,
        )
        .map_err(|e| format!("TSIG key `{}`: {e}", self.name))
    }
}

/// The algorithms the signer implements.
fn algorithm_of(name: &str) -> Result<TsigAlgorithm, String> {
    match name {
        "hmac-sha256" => Ok(TsigAlgorithm::HmacSha256),
        "hmac-sha384" => Ok(TsigAlgorithm::HmacSha384),
        "hmac-sha512" => Ok(TsigAlgorithm::HmacSha512),
        other => Err(format!(
            "algorithm `{other}` is not supported; use hmac-sha256, hmac-sha384 or hmac-sha512"
        )),
    }
}

/// The parts of a BIND `key` clause.
fn clause(text: &str) -> Result<(String, String, String), String> {
    let rest = text["key".len()..].trim_start();
    let (name, body) = rest
        .split_once('{')
        .ok_or_else(|| "the key clause has no `{`".to_owned())?;
    let body = body
        .rsplit_once('}')
        .ok_or_else(|| "the key clause has no `}`".to_owned())?
        .0;
    let mut algorithm = None;
    let mut secret = None;
    for statement in body.split(';').map(str::trim).filter(|s| !s.is_empty()) {
        let (word, value) = statement
            .split_once(char::is_whitespace)
            .ok_or_else(|| format!("`{statement}` has no value"))?;
        let value = value.trim().trim_matches('"').to_owned();
        match word {
            "algorithm" => algorithm = Some(value),
            "secret" => secret = Some(value),
            other => return Err(format!("unknown statement `{other}` in the key clause")),
        }
    }
    Ok((
        name.trim().trim_matches('"').to_owned(),
        algorithm.ok_or_else(|| "the key clause has no algorithm".to_owned())?,
        secret.ok_or_else(|| "the key clause has no secret".to_owned())?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "c2VjcmV0IG9mIHRoZSBsYWIgdGhhdCBpcyBsb25nIGVub3VnaA==";

    #[test]
    fn bind_clause_and_one_line_forms_give_the_same_key() {
        let bind = format!(
            "# written by tsig-keygen\nkey \"failover.\" {{\n\talgorithm hmac-sha256;\n\tsecret \"{SECRET}\";\n}};\n"
        );
        let line = format!("hmac-sha256:failover.:{SECRET}\n");
        let a = TsigKey::parse(&bind).expect("the BIND form");
        assert_eq!(a, TsigKey::parse(&line).expect("the one-line form"));
        assert_eq!(a.name, "failover.");
        assert_eq!(a.algorithm, "hmac-sha256");
        assert_eq!(a.secret, b"secret of the lab that is long enough");
        assert!(a.signer().is_ok());
    }

    #[test]
    fn bad_keys_say_what_is_wrong() {
        for (text, says) in [
            ("", "expected"),
            (
                "key \"k\" { algorithm hmac-md5; secret \"YQ==\"; };",
                "not supported",
            ),
            ("key \"k\" { algorithm hmac-sha256; };", "no secret"),
            ("key \"k\" { secret \"YQ==\"; };", "no algorithm"),
            (
                "key \"k\" { algorithm hmac-sha256; secret \"not base64!\"; };",
                "not base64",
            ),
            (
                "key \"k\" { algorithm hmac-sha256; secret \"YQ==\"; owner x; };",
                "unknown statement",
            ),
            ("key \"k\" algorithm hmac-sha256;", "no `{`"),
            ("hmac-sha256:k", "expected"),
        ] {
            let error = TsigKey::parse(text).expect_err(text);
            assert!(error.contains(says), "{text:?}: {error}");
            assert!(
                !error.contains("YQ=="),
                "the secret stays out of errors: {error}"
            );
        }
    }
}
