//! A simulated PrusaLink printer: an axum server answering `PUT /api/v1/files/usb/{name}`
//! (with `Print-After-Upload`), `GET /api/v1/status`, `GET /api/v1/job`,
//! `PUT /api/v1/job/{id}/pause|resume` and `DELETE /api/v1/job/{id}`, behind an optional
//! `X-Api-Key`. Prints take the slicer's estimate scaled by `time_scale`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use serde_json::json;
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::mqtt::sim::printer::{Plan, plan_for};

/// How the simulated printer behaves.
#[derive(Debug, Clone)]
pub struct PrusaLinkSimOptions {
    /// Real seconds per simulated second.
    pub time_scale: f64,
    /// Demand this `X-Api-Key`.
    pub api_key: Option<String>,
}

impl Default for PrusaLinkSimOptions {
    fn default() -> Self {
        Self {
            time_scale: 1.0,
            api_key: None,
        }
    }
}

#[derive(Debug)]
struct Job {
    id: u64,
    name: String,
    plan: Plan,
    elapsed_s: f64,
}

#[derive(Debug)]
struct Machine {
    /// IDLE, PRINTING, PAUSED, FINISHED, STOPPED, ERROR
    state: &'static str,
    job: Option<Job>,
    next_id: u64,
    message: Option<String>,
}

impl Machine {
    fn advance(&mut self, sim_s: f64) {
        if self.state != "PRINTING" {
            return;
        }
        if let Some(j) = &mut self.job {
            j.elapsed_s = (j.elapsed_s + sim_s).min(j.plan.total_s);
            if j.elapsed_s >= j.plan.total_s {
                self.state = "FINISHED";
            }
        }
    }

    fn status(&self) -> serde_json::Value {
        let printing = matches!(self.state, "PRINTING" | "PAUSED");
        let (n, b) = if printing { (215.0, 60.0) } else { (0.0, 0.0) };
        let mut v = json!({
            "storage": {"path": "/usb/", "name": "usb", "read_only": false},
            "printer": {"state": self.state, "temp_nozzle": f64::max(n, 24.0), "target_nozzle": n,
                        "temp_bed": f64::max(b, 24.0), "target_bed": b,
                        "status_printer": {"ok": self.message.is_none(), "message": self.message}},
        });
        if let Some(j) = &self.job {
            let frac = (j.elapsed_s / j.plan.total_s).clamp(0.0, 1.0);
            v["job"] = json!({"id": j.id, "progress": (frac * 1000.0).round() / 10.0,
                              "time_remaining": (j.plan.total_s - j.elapsed_s).max(0.0).round() as u64,
                              "time_printing": j.elapsed_s.round() as u64});
        }
        v
    }
}

#[derive(Clone)]
struct Shared {
    m: Arc<Mutex<Machine>>,
    api_key: Option<String>,
}

impl Shared {
    fn with<T>(&self, f: impl FnOnce(&mut Machine) -> T) -> T {
        f(&mut self.m.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// Entry point: see [`PrusaLinkSim::spawn`].
pub struct PrusaLinkSim;

impl PrusaLinkSim {
    /// Serve on `127.0.0.1` (a free port) until the handle is dropped.
    pub async fn spawn(opts: PrusaLinkSimOptions) -> std::io::Result<PrusaLinkSimHandle> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let url = format!("http://{}", listener.local_addr()?);
        let shared = Shared {
            m: Arc::new(Mutex::new(Machine {
                state: "IDLE",
                job: None,
                next_id: 100,
                message: None,
            })),
            api_key: opts.api_key.clone(),
        };
        let app = axum::Router::new()
            .route("/api/v1/status", get(status))
            .route("/api/v1/job", get(job))
            .route("/api/v1/files/usb/{name}", put(upload))
            .route("/api/v1/job/{id}", axum::routing::delete(stop))
            .route("/api/v1/job/{id}/{action}", put(action))
            .layer(axum::middleware::from_fn_with_state(shared.clone(), auth))
            .layer(DefaultBodyLimit::max(1 << 30))
            .with_state(shared.clone());
        let stop = CancellationToken::new();
        let until = stop.clone();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(until.cancelled_owned())
                .await;
        });
        let clock_shared = shared.clone();
        let until = stop.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            let mut last = tokio::time::Instant::now();
            loop {
                tokio::select! {
                    _ = until.cancelled() => return,
                    now = tick.tick() => {
                        let real = now.duration_since(last).as_secs_f64();
                        last = now;
                        let sim_s = if opts.time_scale > 0.0 { real / opts.time_scale } else { f64::INFINITY };
                        clock_shared.with(|m| m.advance(sim_s));
                    }
                }
            }
        });
        Ok(PrusaLinkSimHandle {
            url,
            shared,
            _stop: stop.drop_guard(),
        })
    }
}

/// The running simulator; dropping it stops the server.
pub struct PrusaLinkSimHandle {
    url: String,
    shared: Shared,
    _stop: DropGuard,
}

impl PrusaLinkSimHandle {
    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The printer stops with an error (`printer.state = "ERROR"`, the message in
    /// `status_printer.message`).
    pub fn fail(&self, reason: &str) {
        self.shared.with(|m| {
            m.state = "ERROR";
            m.message = Some(reason.into());
        });
    }

    /// `printer.state` right now.
    pub fn state(&self) -> &'static str {
        self.shared.with(|m| m.state)
    }
}

async fn auth(State(s): State<Shared>, req: Request, next: Next) -> Response {
    if let Some(key) = &s.api_key
        && req.headers().get("X-Api-Key").and_then(|v| v.to_str().ok()) != Some(key.as_str())
    {
        return (StatusCode::UNAUTHORIZED, "Unauthorized").into_response();
    }
    next.run(req).await
}

async fn status(State(s): State<Shared>) -> Response {
    axum::Json(s.with(|m| m.status())).into_response()
}

async fn job(State(s): State<Shared>) -> Response {
    s.with(|m| match &m.job {
        None => StatusCode::NO_CONTENT.into_response(),
        Some(j) => {
            let body = json!({"id": j.id, "state": m.state,
                              "file": {"name": j.name, "display_name": j.name, "path": "/usb"}});
            axum::Json(body).into_response()
        }
    })
}

async fn upload(
    State(s): State<Shared>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let print = headers
        .get("Print-After-Upload")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| matches!(v, "1" | "?1" | "true"));
    s.with(|m| {
        if print && matches!(m.state, "PRINTING" | "PAUSED" | "ERROR") {
            return (StatusCode::CONFLICT, "Printer is busy").into_response();
        }
        if print {
            m.next_id += 1;
            m.job = Some(Job {
                id: m.next_id,
                name,
                plan: plan_for(&String::from_utf8_lossy(&body)),
                elapsed_s: 0.0,
            });
            m.state = "PRINTING";
            m.message = None;
        }
        StatusCode::CREATED.into_response()
    })
}

async fn action(State(s): State<Shared>, Path((id, action)): Path<(u64, String)>) -> Response {
    s.with(|m| {
        if m.job.as_ref().is_none_or(|j| j.id != id) {
            return (StatusCode::NOT_FOUND, "Job not found").into_response();
        }
        match (action.as_str(), m.state) {
            ("pause", "PRINTING") => m.state = "PAUSED",
            ("resume", "PAUSED") => m.state = "PRINTING",
            ("pause" | "resume", state) => {
                return (
                    StatusCode::CONFLICT,
                    format!("Cannot {action} while {state}"),
                )
                    .into_response();
            }
            _ => return (StatusCode::NOT_FOUND, "Not Found").into_response(),
        }
        StatusCode::NO_CONTENT.into_response()
    })
}

async fn stop(State(s): State<Shared>, Path(id): Path<u64>) -> Response {
    s.with(|m| {
        if m.job.as_ref().is_none_or(|j| j.id != id) {
            return (StatusCode::NOT_FOUND, "Job not found").into_response();
        }
        if !matches!(m.state, "PRINTING" | "PAUSED") {
            return (
                StatusCode::CONFLICT,
                format!("Cannot stop while {}", m.state),
            )
                .into_response();
        }
        m.state = "STOPPED";
        StatusCode::NO_CONTENT.into_response()
    })
}
