//! The students' status-page links: `/status/{job id}?t={token}`.
//!
//! The token is HMAC-SHA256 of the job id under a 256-bit secret made once and kept in
//! the store, so every mail about a job can carry the same link without a per-job
//! token table, nobody can make a link for another job without the secret, and a
//! restored store keeps old links working. Checking uses the `hmac` crate's
//! constant-time comparison.

use base64::Engine;
use hmac::{KeyInit, Mac};
use sha2::Sha256;

use crate::model::JobId;

type HmacSha256 = hmac::Hmac<Sha256>;

/// Makes and checks status tokens. Cheap to clone.
#[derive(Clone)]
pub struct StatusLinks {
    secret: [u8; 32],
}

impl StatusLinks {
    /// The name of the secret in the store.
    pub const SECRET_NAME: &'static str = "status_links";

    pub fn new(secret: [u8; 32]) -> Self {
        StatusLinks { secret }
    }

    fn mac(&self, job: JobId) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.secret).expect("HMAC takes any key length");
        mac.update(b"farmhand status link v1:");
        mac.update(job.to_string().as_bytes());
        mac
    }

    /// The token of a job's status page (43 URL-safe characters).
    pub fn token(&self, job: JobId) -> String {
        let tag = self.mac(job).finalize().into_bytes();
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(tag)
    }

    /// True when `token` is the job's token (constant time in the token's content).
    pub fn verify(&self, job: JobId, token: &str) -> bool {
        let Ok(tag) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(token.trim()) else {
            return false;
        };
        self.mac(job).verify_slice(&tag).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_verify_only_for_their_job_and_secret() {
        let links = StatusLinks::new([7; 32]);
        let token = links.token(JobId(17));
        assert_eq!(token.len(), 43);
        assert!(links.verify(JobId(17), &token));
        assert!(!links.verify(JobId(18), &token));
        assert!(!StatusLinks::new([8; 32]).verify(JobId(17), &token));
        assert!(!links.verify(JobId(17), &token[..42]));
        assert!(!links.verify(JobId(17), ""));
        assert!(!links.verify(JobId(17), "not base64 !"));
    }
}
