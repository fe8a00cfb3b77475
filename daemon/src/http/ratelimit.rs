//! A per-address token bucket on the students' link endpoints (`governor`).
//!
//! Confirmation tokens are 256 random bits, so guessing is hopeless anyway; the limit
//! keeps a script from trying and keeps the store's write lock free for real work. Each
//! client address gets `confirm_requests_per_minute` requests as a burst, refilled
//! evenly over the minute. Over the limit: 429 with `Retry-After` (seconds), in the
//! API's JSON error shape, or as a page when a browser asks for HTML. The address is
//! the TCP peer's; behind a reverse proxy every student shares the proxy's bucket, so
//! raise the limit there.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::num::NonZeroU32;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use serde_json::json;

use super::AppState;

/// Above this many remembered addresses, forget the ones whose buckets are full.
const MAX_TRACKED: usize = 4096;

/// The confirmation endpoints' limiter, shared by every handler.
pub struct LinkLimiter {
    limiter: DefaultKeyedRateLimiter<IpAddr>,
    clock: DefaultClock,
}

impl LinkLimiter {
    /// `per_minute` requests per address, all of them allowed as a burst.
    pub fn new(per_minute: u32) -> Self {
        let per_minute = NonZeroU32::new(per_minute).unwrap_or(NonZeroU32::MIN);
        LinkLimiter {
            limiter: RateLimiter::keyed(Quota::per_minute(per_minute)),
            clock: DefaultClock::default(),
        }
    }

    /// `Ok` when `ip` may make a request now, else the seconds until it may.
    pub fn check(&self, ip: IpAddr) -> Result<(), u64> {
        let outcome = self.limiter.check_key(&ip);
        if self.limiter.len() > MAX_TRACKED {
            self.limiter.retain_recent();
        }
        outcome.map_err(|not_until| {
            let wait = not_until.wait_time_from(self.clock.now());
            wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
        })
    }
}

/// Extracting this takes one token from the caller's bucket, or answers 429.
pub struct LinkQuota;

/// The 429 answer.
pub struct RateLimited {
    retry_after_s: u64,
    html: bool,
}

impl FromRequestParts<AppState> for LinkQuota {
    type Rejection = RateLimited;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, RateLimited> {
        let ip = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip());
        app.link_limiter
            .check(ip)
            .map(|()| LinkQuota)
            .map_err(|retry_after_s| {
                let wants_html = parts
                    .headers
                    .get(header::ACCEPT)
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|v| v.contains("text/html"));
                RateLimited {
                    retry_after_s: retry_after_s.max(1),
                    html: wants_html && !parts.uri.path().starts_with("/api/"),
                }
            })
    }
}

impl IntoResponse for RateLimited {
    fn into_response(self) -> Response {
        let message = format!(
            "too many attempts from your address: try again in {} seconds",
            self.retry_after_s
        );
        let mut response = if self.html {
            let page = super::confirm::message_page("Please wait a moment", &message);
            (StatusCode::TOO_MANY_REQUESTS, page).into_response()
        } else {
            let body = json!({ "error": { "code": "rate_limited", "message": message } });
            (StatusCode::TOO_MANY_REQUESTS, axum::Json(body)).into_response()
        };
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(self.retry_after_s));
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_is_allowed_then_the_address_waits_and_others_do_not() {
        let limiter = LinkLimiter::new(3);
        let a = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
        let b = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));
        for _ in 0..3 {
            assert_eq!(limiter.check(a), Ok(()));
        }
        let wait = limiter.check(a).expect_err("limited");
        assert!((1..=20).contains(&wait), "one token per 20 s: {wait}");
        assert_eq!(limiter.check(b), Ok(()));
    }
}
