//! `GET /api/v1/openapi.json`: the OpenAPI document, generated from the code.
//!
//! Each handler carries a `#[utoipa::path]` attribute next to its code, and each
//! component file gathers its own into one `…Api` struct (so handlers stay private to
//! their file); this module merges them with the document's info and the workstation
//! token's security scheme. Request and response bodies are described in words and
//! as free-form objects: the JSON shapes are in `../shared/CONTRACT.md` and
//! `docs/api.md`.

use std::sync::OnceLock;

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};

use super::AppState;

pub fn routes() -> Router<AppState> {
    Router::new().route("/api/v1/openapi.json", get(openapi))
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Farmhand",
        description = "The print-farm controller's HTTP API. Errors are always {\"error\": {\"code\", \"message\"}}. Staff endpoints need `Authorization: Bearer <workstation token>`.",
    ),
    paths(openapi, super::metrics::metrics),
    modifiers(&WorkstationToken)
)]
struct ApiDoc;

/// The `workstation_token` scheme the staff endpoints name.
struct WorkstationToken;

impl utoipa::Modify for WorkstationToken {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let scheme = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .description(Some(
                "A workstation token from [[workstations]] in the config",
            ))
            .build();
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme("workstation_token", SecurityScheme::Http(scheme));
    }
}

/// The whole document.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.merge(super::jobs::JobsApi::openapi());
    doc.merge(super::files::FilesApi::openapi());
    doc.merge(super::farm::FarmApi::openapi());
    doc.merge(super::confirm::ConfirmApi::openapi());
    doc.merge(super::mail::MailApi::openapi());
    doc.merge(super::sync::SyncApi::openapi());
    doc.merge(super::stream::StreamApi::openapi());
    doc.merge(super::status::StatusApi::openapi());
    doc
}

/// This document (the one being read).
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "meta", responses((status = 200, description = "The OpenAPI document")))]
async fn openapi() -> impl IntoResponse {
    static JSON: OnceLock<String> = OnceLock::new();
    let json = JSON.get_or_init(|| {
        // Our own document always serializes; an empty object would show if not.
        document().to_pretty_json().unwrap_or_else(|_| "{}".into())
    });
    ([(header::CONTENT_TYPE, "application/json")], json.as_str())
}
