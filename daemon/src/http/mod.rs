//! The HTTP server: each component registers its own routes (as Moonraker's components
//! do), and everything shares one [`App`] through [`AppState`].

pub mod auth;
pub mod confirm;
pub mod error;
pub mod farm;
pub mod files;
pub mod jobs;
pub mod mail;
pub mod metrics;
pub mod openapi;
pub mod ratelimit;
pub mod status;
pub mod stream;
pub mod submit;
pub mod sync;
pub mod web;

use std::sync::Arc;

use axum::Router;
use axum::http::{StatusCode, Uri, header};
use axum::response::{Html, IntoResponse, Response};

use crate::app::App;
use error::ApiError;

/// Shared state of every handler.
pub type AppState = Arc<App>;

/// The whole router.
pub fn router(app: AppState) -> Router {
    Router::new()
        .merge(jobs::routes())
        .merge(files::routes())
        .merge(confirm::routes())
        .merge(farm::routes())
        .merge(mail::routes())
        .merge(status::routes())
        .merge(stream::routes())
        .merge(sync::routes())
        .merge(metrics::routes())
        .merge(openapi::routes())
        .merge(web::routes())
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            metrics::track,
        ))
        .layer(axum::middleware::map_response(web::security::headers))
        .with_state(app)
}

async fn not_found(uri: Uri) -> Response {
    if uri.path().starts_with("/api/") {
        ApiError::not_found(format!("there is no endpoint {}", uri.path())).into_response()
    } else {
        let page = crate::http::confirm::message_page(
            "Page not found",
            "There is nothing at this address.",
        );
        (StatusCode::NOT_FOUND, page).into_response()
    }
}

/// Serves an embedded static file.
pub async fn static_file(axum::extract::Path(path): axum::extract::Path<String>) -> Response {
    match farmhand_web::asset(&path) {
        Some(asset) => (
            [
                (header::CONTENT_TYPE, asset.content_type),
                (header::CACHE_CONTROL, "public, max-age=3600"),
            ],
            asset.bytes,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, Html("not found")).into_response(),
    }
}
