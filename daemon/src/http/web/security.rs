//! Security headers on every response, pages and API alike.
//!
//! The pages load only their own scripts and styles (no inline `<script>`, no `style`
//! attributes), so the CSP can forbid everything inline; `blob:` is allowed for images
//! and `connect-src 'self'` covers the live updates and the upload's XHR.

use axum::http::HeaderValue;
use axum::http::header::{self, HeaderName};
use axum::response::Response;

/// The Content-Security-Policy of every page.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
img-src 'self' data: blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; \
form-action 'self'; frame-ancestors 'none'";

const HEADERS: [(HeaderName, &str); 5] = [
    (header::CONTENT_SECURITY_POLICY, CSP),
    (header::X_FRAME_OPTIONS, "DENY"),
    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (header::REFERRER_POLICY, "same-origin"),
    (
        HeaderName::from_static("cross-origin-opener-policy"),
        "same-origin",
    ),
];

/// Adds the security headers a handler did not set itself.
pub async fn headers(mut response: Response) -> Response {
    let map = response.headers_mut();
    for (name, value) in HEADERS {
        if !map.contains_key(&name) {
            map.insert(name, HeaderValue::from_static(value));
        }
    }
    response
}
