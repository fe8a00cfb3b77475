//! Workstation tokens and staff attribution.
//!
//! A workstation proves itself with `Authorization: Bearer <token>`. Tokens are kept
//! only as SHA-256 hashes; the presented token is hashed and compared with *every*
//! stored hash in constant time, so timing reveals neither which workstation matched
//! nor how much of a hash did. The staff member acting is named in each request body
//! and must be on the active attribution list.

use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::request::Parts;
use subtle::ConstantTimeEq;

use super::AppState;
use super::error::ApiError;
use crate::config::Role;
use crate::model::Actor;
use crate::store::WorkstationRecord;
use crate::workflow::sha256_hex;

/// The workstations allowed to call staff endpoints, loaded at start-up.
pub struct Auth {
    workstations: Vec<WorkstationRecord>,
}

impl Auth {
    pub fn new(workstations: Vec<WorkstationRecord>) -> Self {
        Auth { workstations }
    }

    /// The workstation whose token this is.
    pub fn verify(&self, token: &str) -> Option<&WorkstationRecord> {
        let presented = sha256_hex(token.as_bytes());
        let mut found = None;
        for ws in &self.workstations {
            if bool::from(ws.token_sha256.as_bytes().ct_eq(presented.as_bytes())) {
                found = Some(ws);
            }
        }
        found
    }
}

/// A request from an authenticated workstation.
#[derive(Debug, Clone)]
pub struct Workstation {
    pub id: String,
    pub role: Role,
}

impl FromRequestParts<AppState> for Workstation {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, ApiError> {
        // The kiosk's pages read artifacts (the 3D preview, thumbnails) with their
        // session cookie. Only for reads: a cookie is sent by the browser on its own,
        // so writes need the bearer token or a kiosk form with its CSRF token.
        let reading =
            parts.method == axum::http::Method::GET || parts.method == axum::http::Method::HEAD;
        let bearer = parts
            .headers
            .contains_key(axum::http::header::AUTHORIZATION);
        if let Some(ws) = (reading && !bearer)
            .then(|| super::web::session::workstation_of(parts, app))
            .flatten()
        {
            return Ok(ws);
        }
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "missing_token",
                    "this endpoint needs a workstation token: send Authorization: Bearer <token>",
                )
            })?;
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .unwrap_or("")
            .trim();
        let ws = app.auth.verify(token).ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_token",
                "the workstation token is not valid",
            )
        })?;
        Ok(Workstation {
            id: ws.id.clone(),
            role: ws.role,
        })
    }
}

impl Workstation {
    /// Refuses unless this workstation has the admin role.
    pub fn require_admin(&self) -> Result<(), ApiError> {
        match self.role {
            Role::Admin => Ok(()),
            Role::Staff => Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "admin_only",
                format!("workstation {} is not an admin workstation", self.id),
            )),
        }
    }

    /// The actor for `staff` acting at this workstation; the name must be active staff.
    pub fn actor(&self, app: &AppState, staff: Option<&str>) -> Result<Actor, ApiError> {
        let name = staff
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                ApiError::bad_request(
                    "missing_staff",
                    "name the staff member acting in the body as \"staff\"",
                )
            })?;
        let members = app.store.staff()?;
        match members.iter().find(|m| m.name == name) {
            Some(member) if member.active => Ok(Actor::Staff {
                name: member.name.clone(),
                workstation: self.id.clone(),
            }),
            Some(_) => Err(ApiError::unprocessable(
                "inactive_staff",
                format!("{name} is no longer on the active staff list"),
            )),
            None => Err(ApiError::unprocessable(
                "unknown_staff",
                format!("{name:?} is not on the staff list"),
            )),
        }
    }
}
