//! How an MQTT printer gets the G-code: it downloads it over plain HTTP from a URL in the start
//! command. The daemon hands the driver a [`FileUrls`] that mints such URLs from its own web
//! server; `farmhand print` and the tests use [`LocalFileServer`], a tiny server of its own.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::{BoxFuture, DriverError};

/// Mints a URL a printer can `GET` one job file from.
pub trait FileUrls: Send + Sync {
    /// A URL for `file` that stays valid while job `job_id` may still download it. It should be
    /// unguessable (the printer sends no credentials) and expire.
    fn url_for<'a>(
        &'a self,
        file: &'a Path,
        job_id: &'a str,
    ) -> BoxFuture<'a, Result<String, DriverError>>;
}

type Shared = Arc<Mutex<HashMap<String, PathBuf>>>;

/// Serves registered files under `http://{advertise}:{port}/files/{token}/{name}`, each token
/// unguessable (SHA-256 of the time, process, a counter and the path). Stops when dropped.
pub struct LocalFileServer {
    base: String,
    files: Shared,
    _stop: DropGuard,
}

impl LocalFileServer {
    /// Listen on `bind` (e.g. `0.0.0.0:0` for any free port) and build URLs with
    /// `advertise_host`, the address printers reach this machine at.
    pub async fn start(bind: SocketAddr, advertise_host: &str) -> Result<Self, DriverError> {
        let listener =
            tokio::net::TcpListener::bind(bind)
                .await
                .map_err(|e| DriverError::FileServer {
                    reason: format!("cannot listen on {bind}: {e}"),
                })?;
        let port = listener
            .local_addr()
            .map_err(|e| DriverError::FileServer {
                reason: e.to_string(),
            })?
            .port();
        let files: Shared = Arc::default();
        let app = axum::Router::new()
            .route("/files/{token}/{name}", axum::routing::get(serve))
            .with_state(files.clone());
        let stop = CancellationToken::new();
        let until = stop.clone();
        tokio::spawn(async move {
            let server = axum::serve(listener, app).with_graceful_shutdown(until.cancelled_owned());
            if let Err(e) = server.await {
                tracing::warn!("job file server stopped: {e}");
            }
        });
        let host = if advertise_host.contains(':') {
            format!("[{advertise_host}]")
        } else {
            advertise_host.to_string()
        };
        Ok(Self {
            base: format!("http://{host}:{port}"),
            files,
            _stop: stop.drop_guard(),
        })
    }

    /// `http://host:port`, without a trailing slash.
    pub fn base_url(&self) -> &str {
        &self.base
    }
}

impl FileUrls for LocalFileServer {
    fn url_for<'a>(
        &'a self,
        file: &'a Path,
        job_id: &'a str,
    ) -> BoxFuture<'a, Result<String, DriverError>> {
        Box::pin(async move {
            static NEXT: AtomicU64 = AtomicU64::new(0);
            let mut h = Sha256::new();
            h.update(format!("{:?}", std::time::SystemTime::now()));
            h.update(std::process::id().to_le_bytes());
            h.update(NEXT.fetch_add(1, Ordering::Relaxed).to_le_bytes());
            h.update(file.as_os_str().as_encoded_bytes());
            h.update(job_id.as_bytes());
            let token: String = h.finalize()[..16]
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            let name = url_safe_name(file);
            self.files
                .lock()
                .map_err(|_| DriverError::FileServer {
                    reason: "file table poisoned".into(),
                })?
                .insert(token.clone(), file.to_path_buf());
            Ok(format!("{}/files/{token}/{name}", self.base))
        })
    }
}

/// The file name with anything outside `[A-Za-z0-9._-]` replaced by `_`.
pub fn url_safe_name(file: &Path) -> String {
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "job.gcode".into());
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

async fn serve(
    State(files): State<Shared>,
    UrlPath((token, _name)): UrlPath<(String, String)>,
) -> Response {
    let path = files.lock().ok().and_then(|f| f.get(&token).cloned());
    let Some(path) = path else {
        return (StatusCode::NOT_FOUND, "unknown or expired job file\n").into_response();
    };
    match tokio::fs::read(&path).await {
        Ok(bytes) => ([(axum::http::header::CONTENT_TYPE, "text/x-gcode")], bytes).into_response(),
        Err(e) => (
            StatusCode::GONE,
            format!("job file {} is gone: {e}\n", path.display()),
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_url_safe() {
        assert_eq!(
            url_safe_name(Path::new("/a/My Part #2.gcode")),
            "My_Part__2.gcode"
        );
        assert_eq!(url_safe_name(Path::new("/")), "job.gcode");
    }
}
