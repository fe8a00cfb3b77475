//! `GET /metrics`: Prometheus (OpenMetrics text) for the lab's monitoring.
//!
//! Two kinds of numbers, from the places that own them:
//! - **from the store, at scrape time**: jobs by status, the longest wait in each
//!   waiting status, print outcomes (counted from the audit log, so they survive
//!   restarts), the mail and processing backlogs ([`crate::store::stats`]); printers
//!   by state, from the store and the live drivers, as `GET /api/v1/printers` shows
//!   them;
//! - **recorded as it happens**: HTTP latency, by method, matched route (not the raw
//!   path, so ids do not explode the label set) and status class, in [`HttpMetrics`].
//!
//! We use `prometheus-client` rather than `metrics` + its exporter: its registry is a
//! value we own (one per daemon, no process-wide recorder), so tests that start
//! several daemons in one process keep their numbers apart.

use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::Utc;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use super::AppState;
use super::error::ApiError;
use crate::model::PrinterState;
use crate::store::stats::FarmStats;

/// The content type of the OpenMetrics text format, which Prometheus scrapes.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

pub fn routes() -> Router<AppState> {
    Router::new().route("/metrics", get(metrics))
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    route: String,
    status: String,
}

type LatencyFamily = Family<RequestLabels, Histogram, fn() -> Histogram>;

/// HTTP request latencies, recorded by [`track`]. Cheap to clone; clones share.
#[derive(Clone)]
pub struct HttpMetrics {
    latency: LatencyFamily,
}

impl Default for HttpMetrics {
    fn default() -> Self {
        fn histogram() -> Histogram {
            // 1 ms … ~16 s: a cached page to a 200 MB upload on a Pi.
            Histogram::new(exponential_buckets(0.001, 2.0, 15))
        }
        HttpMetrics {
            latency: Family::new_with_constructor(histogram),
        }
    }
}

/// Middleware: times every request into [`HttpMetrics`].
pub async fn track(State(app): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().to_string();
    // Unmatched paths (404s from scanners) share one label value.
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str)
        .to_string();
    let response = next.run(request).await;
    let status = format!("{}xx", response.status().as_u16() / 100);
    app.http_metrics
        .latency
        .get_or_create(&RequestLabels {
            method,
            route,
            status,
        })
        .observe(started.elapsed().as_secs_f64());
    response
}

/// Prometheus metrics (OpenMetrics text).
#[utoipa::path(get, path = "/metrics", tag = "meta", responses((status = 200, description = "OpenMetrics text: jobs, printers, waits, print outcomes, backlogs, HTTP latency"), (status = 503, description = "The store is unavailable")))]
pub(super) async fn metrics(State(app): State<AppState>) -> Result<Response, ApiError> {
    let store = app.store.clone();
    let stats = tokio::task::spawn_blocking(move || store.stats())
        .await
        .map_err(|e| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "store_unavailable",
                format!("the store is busy: {e}"),
            )
        })??;
    let mut printers = Vec::new();
    for printer in &app.config.printers {
        let record = app.store.printer(&printer.id)?;
        let live = app.fleet.status(&printer.id);
        printers.push(crate::live::printer_state(
            printer.driver,
            record.state,
            live.as_ref(),
        ));
    }
    let registry = registry(&stats, &printers, &app.http_metrics);
    let mut body = String::new();
    encode(&mut body, &registry).map_err(|e| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "metrics_unavailable",
            format!("cannot encode the metrics: {e}"),
        )
    })?;
    let mut response = body.into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(OPENMETRICS));
    Ok(response)
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabel {
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutboxLabel {
    outbox: String,
}

const PRINTER_STATES: [PrinterState; 6] = [
    PrinterState::Offline,
    PrinterState::Idle,
    PrinterState::Printing,
    PrinterState::Paused,
    PrinterState::Error,
    PrinterState::NeedsClearing,
];

fn printer_state_name(state: PrinterState) -> &'static str {
    match state {
        PrinterState::Offline => "offline",
        PrinterState::Idle => "idle",
        PrinterState::Printing => "printing",
        PrinterState::Paused => "paused",
        PrinterState::Error => "error",
        PrinterState::NeedsClearing => "needs_clearing",
    }
}

/// Builds this scrape's registry: pure, from the numbers already read.
fn registry(stats: &FarmStats, printers: &[PrinterState], http: &HttpMetrics) -> Registry {
    let mut registry = Registry::with_prefix("farmhand");

    let jobs = Family::<StatusLabel, Gauge>::default();
    for (status, count) in &stats.jobs {
        let label = StatusLabel {
            status: status.as_str().into(),
        };
        jobs.get_or_create(&label).set(saturating_i64(*count));
    }
    registry.register("jobs", "Jobs in each status", jobs);

    let waits = Family::<StatusLabel, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
    let now = Utc::now();
    for (status, oldest) in &stats.oldest_waiting {
        let seconds = oldest.map_or(0.0, |t| (now - t).num_milliseconds().max(0) as f64 / 1e3);
        let label = StatusLabel {
            status: status.as_str().into(),
        };
        waits.get_or_create(&label).set(seconds);
    }
    registry.register(
        "queue_oldest_wait_seconds",
        "How long the longest-waiting job in each waiting status (approval, student confirmation, a printer) has been there, 0 when none waits",
        waits,
    );

    let by_state = Family::<StateLabel, Gauge>::default();
    for state in PRINTER_STATES {
        let count = printers.iter().filter(|s| **s == state).count();
        let label = StateLabel {
            state: printer_state_name(state).into(),
        };
        by_state.get_or_create(&label).set(count as i64);
    }
    registry.register("printers", "Printers in each state", by_state);

    let outcomes = Family::<OutcomeLabel, Counter>::default();
    for (outcome, count) in [
        ("completed", stats.prints_completed),
        ("failed", stats.prints_failed),
    ] {
        let label = OutcomeLabel {
            outcome: outcome.into(),
        };
        outcomes.get_or_create(&label).inc_by(count);
    }
    registry.register(
        "print_outcomes",
        "Prints that ended, by outcome, from the audit log",
        outcomes,
    );

    let backlog = Family::<OutboxLabel, Gauge>::default();
    for (outbox, count) in [
        ("mail", stats.mail_backlog),
        ("processing", stats.processing_backlog),
        ("sync", stats.sync_backlog),
    ] {
        let label = OutboxLabel {
            outbox: outbox.into(),
        };
        backlog.get_or_create(&label).set(saturating_i64(count));
    }
    registry.register(
        "outbox_backlog",
        "Work queued in a durable outbox and not yet done",
        backlog,
    );

    registry.register(
        "http_request_duration_seconds",
        "HTTP request latency by method, route and status class",
        http.latency.clone(),
    );
    registry
}

fn saturating_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}
