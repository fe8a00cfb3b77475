//! The student's submission form. It posts to the API's `POST /api/v1/jobs` from
//! `web/static/submit.js` (an XHR, for the upload progress bar); without script the
//! browser posts the same multipart form there and shows the JSON answer.

use axum::extract::State;
use axum::response::Response;
use serde_json::json;

use super::render;
use crate::http::AppState;

/// File types the form offers; the server sniffs the content whatever the name says.
pub const ACCEPT: &str = ".stl,.obj,.3mf,.gcode,.gco,.g,.bgcode";

pub async fn submit_page(State(app): State<AppState>) -> Response {
    let materials: Vec<&String> = app.config.pricing.materials.keys().collect();
    let printers: Vec<_> = app
        .config
        .printers
        .iter()
        .map(|p| json!({ "id": p.id, "name": p.display_name() }))
        .collect();
    render(
        &app,
        "submit.html",
        json!({
            "materials": materials, "printers": printers, "accept": ACCEPT,
            "max_mb": app.config.storage.max_upload_mb,
            "minimum": format!("{:.2}", app.config.pricing.minimum_charge_usd),
        }),
    )
}
