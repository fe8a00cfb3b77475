//! HTTP Digest login (RFC 7616, MD5) for PrusaLink's `username`/`password`, on the
//! `digest_auth` crate (header parsing and the hashes).
//!
//! The printer answers a request without (valid) credentials with `401` and
//! `WWW-Authenticate: Digest realm="Printer API", nonce="…", stale=false`. Buddy firmware
//! offers no `qop`, so the response is RFC 2069's `MD5(HA1:nonce:HA2)`; a server that offers
//! `qop="auth"` gets RFC 7616's form with a fresh `cnonce` and a counting `nc`. The
//! challenge is kept and reused for every later request (the counter going up), so a login
//! costs one extra round trip per nonce, not per request. When the printer retires a nonce
//! (time, reboot) it answers `stale=true` with a new one: we retry with that at once. A
//! second `401` that is *not* stale means the username or password is wrong.

use std::sync::Mutex;

use digest_auth::{AuthContext, HttpMethod, WwwAuthenticateHeader};

/// The login and the printer's latest challenge; shared by every request to one printer.
#[derive(Debug)]
pub struct DigestLogin {
    username: String,
    password: String,
    challenge: Mutex<Option<WwwAuthenticateHeader>>,
}

/// What to do after a `401` that carried a digest challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AfterChallenge {
    /// A first or renewed (stale) nonce: send the request again with it.
    Retry,
    /// Our answer to a live nonce was refused: wrong username or password.
    Refused,
}

/// Why a `401`'s challenge cannot be answered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    #[error(
        "the printer did not offer digest login (WWW-Authenticate: {0:?}): set api_key instead"
    )]
    NotDigest(String),
    #[error("the printer's digest challenge cannot be read ({0})")]
    Malformed(String),
}

impl DigestLogin {
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> DigestLogin {
        DigestLogin {
            username: username.into(),
            password: password.into(),
            challenge: Mutex::new(None),
        }
    }

    pub fn username(&self) -> &str {
        &self.username
    }

    /// The `Authorization` value for `method` on `uri` (path and query), or `None` before the
    /// printer has challenged us. Each call counts one use of the nonce (`nc`).
    pub fn authorization(&self, method: &str, uri: &str) -> Option<String> {
        let mut guard = self.challenge.lock().unwrap_or_else(|p| p.into_inner());
        let challenge = guard.as_mut()?;
        let context = AuthContext::new_with_method(
            self.username.as_str(),
            self.password.as_str(),
            uri,
            Option::<&[u8]>::None,
            HttpMethod(method.to_string().into()),
        );
        // `respond` fails only for a challenge whose qop list names nothing usable, which
        // `challenged` already refused.
        challenge
            .respond(&context)
            .ok()
            .map(|h| h.to_header_string())
    }

    /// A `401` arrived with this `WWW-Authenticate` value, after a request that carried
    /// credentials (`sent_credentials`) or not.
    pub fn challenged(
        &self,
        www_authenticate: &str,
        sent_credentials: bool,
    ) -> Result<AfterChallenge, DigestError> {
        let value = www_authenticate.trim();
        let scheme = value.split_whitespace().next().unwrap_or_default();
        if !scheme.eq_ignore_ascii_case("digest") {
            return Err(DigestError::NotDigest(value.to_string()));
        }
        let challenge = WwwAuthenticateHeader::parse(&value[scheme.len()..])
            .map_err(|e| DigestError::Malformed(e.to_string()))?;
        if challenge.qop.as_ref().is_some_and(|q| q.is_empty()) {
            return Err(DigestError::Malformed("an empty qop list".into()));
        }
        let stale = challenge.stale;
        *self.challenge.lock().unwrap_or_else(|p| p.into_inner()) = Some(challenge);
        Ok(if sent_credentials && !stale {
            AfterChallenge::Refused
        } else {
            AfterChallenge::Retry
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use digest_auth::AuthorizationHeader;

    fn field<'a>(header: &'a str, key: &str) -> Option<&'a str> {
        header
            .trim_start_matches("Digest ")
            .split(", ")
            .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
            .map(|v| v.trim_matches('"'))
    }

    #[test]
    fn answers_like_buddy_firmware_expects() {
        // The vector from Prusa-Firmware-Buddy's own nhttp server tests ("Authenticated
        // Digest"): user maker, password "password", no qop.
        let login = DigestLogin::new("maker", "password");
        assert_eq!(login.authorization("GET", "/secret.html"), None);
        let www = r#"Digest realm="Printer API", nonce="aaaaaaaa00000000", stale=false"#;
        assert_eq!(login.challenged(www, false), Ok(AfterChallenge::Retry));
        let header = login
            .authorization("GET", "/secret.html")
            .expect("challenged");
        assert_eq!(
            field(&header, "response"),
            Some("0cbf0ac5ca4c879c35a3b91430214a47")
        );
        assert_eq!(field(&header, "username"), Some("maker"));
        assert_eq!(field(&header, "uri"), Some("/secret.html"));
        assert_eq!(field(&header, "qop"), None);
    }

    #[test]
    fn rfc_7616_md5_example_with_qop_auth() {
        // RFC 7616 §3.9.1, MD5: the crate's hashing with the RFC's fixed cnonce.
        let mut prompt = WwwAuthenticateHeader::parse(
            r#"realm="http-auth@example.org", qop="auth, auth-int", algorithm=MD5, nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS""#,
        )
        .expect("the RFC's challenge parses");
        let mut context = AuthContext::new("Mufasa", "Circle of Life", "/dir/index.html");
        context.set_custom_cnonce("f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ");
        let answer = prompt.respond(&context).expect("answer");
        assert_eq!(answer.response, "8ca523f5e9506fed4657c9700eebdbec");
        assert_eq!(answer.nc, 1);
    }

    #[test]
    fn qop_auth_counts_nonce_uses_with_fresh_cnonces() {
        let login = DigestLogin::new("maker", "pw");
        let www = r#"Digest realm="Printer API", qop="auth", nonce="n1""#;
        login.challenged(www, false).expect("challenge");
        let first = login.authorization("GET", "/api/v1/status").expect("1");
        let second = login
            .authorization("PUT", "/api/v1/job/7/pause")
            .expect("2");
        assert_eq!(field(&first, "nc"), Some("00000001"));
        assert_eq!(field(&second, "nc"), Some("00000002"));
        assert_eq!(field(&second, "qop"), Some("auth"));
        assert_ne!(field(&first, "cnonce"), field(&second, "cnonce"));
        // A server holding the password gets the same response from the header alone.
        let mut parsed = AuthorizationHeader::parse(&second).expect("parses");
        let sent = parsed.response.clone();
        parsed.digest(&AuthContext::new_with_method(
            "maker",
            "pw",
            "/api/v1/job/7/pause",
            Option::<&[u8]>::None,
            HttpMethod::PUT,
        ));
        assert_eq!(parsed.response, sent);
    }

    #[test]
    fn stale_nonces_retry_and_refusals_do_not() {
        let login = DigestLogin::new("maker", "pw");
        let fresh = r#"Digest realm="Printer API", nonce="n1", stale=false"#;
        let stale = r#"Digest realm="Printer API", nonce="n2", stale=true"#;
        let cases = [
            // (header, sent credentials, expected)
            (fresh, false, AfterChallenge::Retry),
            (fresh, true, AfterChallenge::Refused),
            (stale, true, AfterChallenge::Retry),
            (stale, false, AfterChallenge::Retry),
        ];
        for (www, sent, expected) in cases {
            assert_eq!(login.challenged(www, sent), Ok(expected), "{www} {sent}");
        }
        // The stale answer's nonce is the one used next.
        let header = login.authorization("GET", "/").expect("challenged");
        assert_eq!(field(&header, "nonce"), Some("n2"));
        assert!(matches!(
            login.challenged("ApiKey", false),
            Err(DigestError::NotDigest(_))
        ));
        assert!(matches!(
            login.challenged(r#"Digest nonce="x""#, false),
            Err(DigestError::Malformed(_))
        ));
    }
}
