//! Kiosk sessions: a workstation signs in once with its token and gets a session
//! cookie; the session remembers which staff member is acting and holds the CSRF
//! token every form must send back.
//!
//! Sessions live in memory: a restart signs the kiosks out, which costs a token
//! re-entry and loses nothing (every action is already in the store). The cookie
//! holds 256 random bits; the table is keyed by their SHA-256, so a memory dump of
//! the table does not hand out live cookies. The table is bounded: at
//! [`MAX_SESSIONS`] the session closest to expiry makes room.

use std::collections::HashMap;
use std::sync::Mutex;

use axum::http::request::Parts;
use chrono::{DateTime, Duration, Utc};
use subtle::ConstantTimeEq;

use crate::config::Role;
use crate::http::AppState;
use crate::http::auth::Workstation;
use crate::workflow::{new_token, sha256_hex};

/// The cookie's name.
pub const COOKIE: &str = "farmhand_session";
/// How long a session lasts after sign-in (a lab day plus slack).
pub const LIFETIME_HOURS: i64 = 12;
/// At most this many live sessions; a kiosk signing in repeatedly cannot grow memory.
pub const MAX_SESSIONS: usize = 1000;

/// One signed-in workstation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub workstation: String,
    pub role: Role,
    /// Sent back in every form as `csrf`; compared in constant time.
    pub csrf: String,
    /// The staff member picked in the header dropdown, remembered per session.
    pub staff: Option<String>,
    /// A one-shot message for the next page (the outcome of the last form).
    pub flash: Option<Flash>,
    pub expires_at: DateTime<Utc>,
}

impl Session {
    /// Whether `presented` is this session's CSRF token.
    pub fn csrf_matches(&self, presented: &str) -> bool {
        bool::from(self.csrf.as_bytes().ct_eq(presented.as_bytes()))
    }

    /// The workstation this session signed in as, for the API's extractors.
    pub fn workstation(&self) -> Workstation {
        Workstation {
            id: self.workstation.clone(),
            role: self.role,
        }
    }
}

/// A message shown once at the top of the next page.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Flash {
    /// `ok` or `error`, used as a CSS class.
    pub kind: &'static str,
    pub text: String,
}

impl Flash {
    pub fn ok(text: impl Into<String>) -> Self {
        Flash {
            kind: "ok",
            text: text.into(),
        }
    }

    pub fn error(text: impl Into<String>) -> Self {
        Flash {
            kind: "error",
            text: text.into(),
        }
    }
}

/// The live sessions, by SHA-256 of the cookie value.
#[derive(Default)]
pub struct Sessions {
    table: Mutex<HashMap<String, Session>>,
}

impl Sessions {
    /// Starts a session for a workstation; returns the cookie value.
    pub fn create(&self, workstation: &str, role: Role, now: DateTime<Utc>) -> String {
        let cookie = new_token();
        let session = Session {
            workstation: workstation.to_string(),
            role,
            csrf: new_token(),
            staff: None,
            flash: None,
            expires_at: now + Duration::hours(LIFETIME_HOURS),
        };
        let mut table = self.lock();
        table.retain(|_, s| s.expires_at > now);
        if table.len() >= MAX_SESSIONS {
            let soonest = table
                .iter()
                .min_by_key(|(_, s)| s.expires_at)
                .map(|(k, _)| k.clone());
            if let Some(key) = soonest {
                table.remove(&key);
            }
        }
        table.insert(sha256_hex(cookie.as_bytes()), session);
        cookie
    }

    /// The live session of a cookie value.
    pub fn get(&self, cookie: &str, now: DateTime<Utc>) -> Option<Session> {
        let key = sha256_hex(cookie.as_bytes());
        let mut table = self.lock();
        match table.get(&key) {
            Some(s) if s.expires_at > now => Some(s.clone()),
            Some(_) => {
                table.remove(&key);
                None
            }
            None => None,
        }
    }

    /// Changes a live session; false when it is gone.
    pub fn update(&self, cookie: &str, change: impl FnOnce(&mut Session)) -> bool {
        let key = sha256_hex(cookie.as_bytes());
        match self.lock().get_mut(&key) {
            Some(session) => {
                change(session);
                true
            }
            None => false,
        }
    }

    /// Takes the session's flash message, if any.
    pub fn take_flash(&self, cookie: &str) -> Option<Flash> {
        let key = sha256_hex(cookie.as_bytes());
        self.lock().get_mut(&key).and_then(|s| s.flash.take())
    }

    /// Ends a session (sign out).
    pub fn remove(&self, cookie: &str) {
        self.lock().remove(&sha256_hex(cookie.as_bytes()));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        // A panic while holding the lock leaves plain data behind; keep serving.
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The session cookie's value in a request, if it sent one.
pub fn cookie_of(parts: &Parts) -> Option<String> {
    parts
        .headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.trim().to_string())
        .filter(|v| !v.is_empty() && v.len() <= 128)
}

/// The workstation of the request's session, for read-only API calls from the pages.
pub fn workstation_of(parts: &Parts, app: &AppState) -> Option<Workstation> {
    let cookie = cookie_of(parts)?;
    app.sessions
        .get(&cookie, Utc::now())
        .map(|s| s.workstation())
}

/// The `Set-Cookie` value for a new session. `Secure` when the lab serves HTTPS.
pub fn set_cookie(value: &str, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!(
        "{COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
        LIFETIME_HOURS * 3600
    )
}

/// The `Set-Cookie` value that removes the session cookie.
pub fn clear_cookie() -> String {
    format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(hours: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).expect("time") + Duration::hours(hours)
    }

    #[test]
    fn a_session_lives_until_it_expires() {
        let sessions = Sessions::default();
        let cookie = sessions.create("kiosk-1", Role::Staff, at(0));
        let session = sessions.get(&cookie, at(1)).expect("live");
        assert_eq!(session.workstation, "kiosk-1");
        assert!(sessions.get(&cookie, at(LIFETIME_HOURS)).is_none());
        // Once expired it is gone for good, not revived by a clock going back.
        assert!(sessions.get(&cookie, at(1)).is_none());
        assert!(sessions.get("not-a-cookie", at(0)).is_none());
    }

    #[test]
    fn csrf_tokens_differ_per_session_and_must_match_exactly() {
        let sessions = Sessions::default();
        let a = sessions.create("kiosk-1", Role::Staff, at(0));
        let b = sessions.create("kiosk-1", Role::Staff, at(0));
        let (a, b) = (
            sessions.get(&a, at(0)).expect("a"),
            sessions.get(&b, at(0)).expect("b"),
        );
        assert_ne!(a.csrf, b.csrf);
        assert!(a.csrf.len() >= 32);
        assert!(a.csrf_matches(&a.csrf.clone()));
        assert!(!a.csrf_matches(&b.csrf));
        assert!(!a.csrf_matches(""));
    }

    #[test]
    fn the_table_is_bounded_and_sign_out_ends_a_session() {
        let sessions = Sessions::default();
        let first = sessions.create("kiosk-1", Role::Staff, at(0));
        for _ in 0..MAX_SESSIONS {
            sessions.create("kiosk-1", Role::Staff, at(1));
        }
        assert_eq!(sessions.lock().len(), MAX_SESSIONS);
        assert!(
            sessions.get(&first, at(1)).is_none(),
            "the oldest made room"
        );
        let last = sessions.create("kiosk-2", Role::Admin, at(1));
        assert!(sessions.update(&last, |s| s.staff = Some("Ada".into())));
        assert_eq!(
            sessions.get(&last, at(1)).and_then(|s| s.staff),
            Some("Ada".into())
        );
        sessions.remove(&last);
        assert!(sessions.get(&last, at(1)).is_none());
        assert!(!sessions.update(&last, |_| {}));
    }

    #[test]
    fn the_cookie_is_http_only_and_same_site_strict() {
        let cookie = set_cookie("abc", false);
        assert!(cookie.starts_with("farmhand_session=abc;"));
        assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
        assert!(!cookie.contains("Secure"));
        assert!(set_cookie("abc", true).ends_with("; Secure"));
    }
}
