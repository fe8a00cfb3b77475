//! The staff pages: dashboard, live updates, queues, one job, printers.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

use super::guard::Kiosk;
use super::tiles::{self, Count, Tile};
use super::{render, staff_page};
use crate::http::AppState;
use crate::http::error::ApiError;
use crate::http::farm::printer_views;
use crate::http::jobs::{job_json, parse_job_id};
use crate::model::{Job, JobId, Status};
use crate::store::{EventQuery, JobQuery};

/// Statuses whose jobs can still be "new" (unopened); counting the finished ones
/// would read every archived job on every live update.
const OPEN_STATUSES: [Status; 5] = [
    Status::Uploaded,
    Status::Pending,
    Status::ReadyToPrint,
    Status::Printing,
    Status::Completed,
];

/// What the dashboard shows and `/ui/live` sends.
pub struct Board {
    pub tiles: Vec<Tile>,
    pub counts: Vec<Count>,
}

/// The few fields of an open job the board needs; reading only these (serde skips
/// the rest without building it) keeps a 500-job board cheap enough to poll.
#[derive(Deserialize)]
struct Glance {
    status: Status,
    material: Option<String>,
    printer: Option<String>,
    staff_viewed_at: Option<DateTime<Utc>>,
    #[serde(default)]
    analysis: GlanceAnalysis,
}

#[derive(Deserialize, Default)]
struct GlanceAnalysis {
    #[serde(default)]
    fits: std::collections::BTreeMap<String, Option<bool>>,
}

/// Reads the board: one pass over the printers, one over the open jobs.
pub fn board(app: &AppState) -> Result<Board, ApiError> {
    let mut open: Vec<Glance> = Vec::new();
    for status in OPEN_STATUSES {
        open.extend(app.store.jobs_in_status_as::<Glance>(status)?);
    }
    let counts = app
        .store
        .count_by_status()?
        .into_iter()
        .map(|(status, count)| Count {
            status: status.as_str(),
            label: tiles::status_label(status),
            count,
            new: open
                .iter()
                .filter(|j| j.status == status && j.staff_viewed_at.is_none())
                .count() as u64,
        })
        .collect();
    let views = printer_views(app)?;
    let mut tiles = Vec::with_capacity(views.len());
    for view in &views {
        let on_printer = view["job_id"]
            .as_str()
            .or_else(|| view["last_job_id"].as_str())
            .and_then(|id| id.parse::<JobId>().ok());
        let job = match on_printer {
            Some(id) => app.store.job(id)?,
            None => None,
        };
        let printer = view["id"].as_str();
        let waiting = open.iter().any(|j| {
            j.status == Status::ReadyToPrint
                && may_take(
                    app,
                    printer,
                    j.material.as_deref(),
                    j.printer.as_deref(),
                    printer.and_then(|p| j.analysis.fits.get(p).copied().flatten()),
                )
        });
        tiles.push(tiles::tile(view, job.as_ref(), waiting));
    }
    Ok(Board { tiles, counts })
}

/// Whether `job` may go to `printer` (its material, its preference, its size).
pub fn fits_printer(app: &AppState, job: &Job, printer: Option<&str>) -> bool {
    let fits = printer.and_then(|p| job.analysis["fits"][p].as_bool());
    may_take(
        app,
        printer,
        job.material.as_deref(),
        job.printer.as_deref(),
        fits,
    )
}

fn may_take(
    app: &AppState,
    printer: Option<&str>,
    material: Option<&str>,
    preferred: Option<&str>,
    fits: Option<bool>,
) -> bool {
    let Some(config) = printer.and_then(|p| app.config.printer(p)) else {
        return false;
    };
    config.accepts_material(material)
        && preferred.is_none_or(|p| p == config.id)
        && fits != Some(false)
}

pub async fn dashboard(State(app): State<AppState>, kiosk: Kiosk) -> Response {
    let board = match run_blocking(&app, board).await {
        Ok(board) => board,
        Err(e) => return e.into_response(),
    };
    staff_page(
        &app,
        &kiosk,
        "dashboard.html",
        json!({ "tiles": board.tiles, "counts": board.counts }),
    )
}

/// The live part of the dashboard: counts and tiles, each tile with its rendered
/// HTML so the script can redraw a tile whose state changed.
pub async fn live(State(app): State<AppState>, kiosk: Kiosk) -> Result<Json<Value>, ApiError> {
    Ok(Json(live_update(&app, &kiosk.session.csrf).await?))
}

/// The update object `/ui/live` answers and `/ui/stream` pushes: each tile's changing
/// fields plus its whole HTML (for when its job changed), and the status counts.
async fn live_update(app: &AppState, csrf: &str) -> Result<Value, ApiError> {
    let board = run_blocking(app, board).await?;
    let template = app.pages.get_template("tile.html").map_err(|e| {
        ApiError::new(
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            "template",
            e.to_string(),
        )
    })?;
    let tiles: Vec<Value> = board
        .tiles
        .iter()
        .map(|tile| {
            let html = template
                .render(json!({ "tile": tile, "chrome": { "csrf": csrf } }))
                .unwrap_or_default();
            json!({ "id": tile.id, "key": tile.key, "percent": tile.percent, "percent_text": tile.percent_text,
                    "layer_text": tile.layer_text, "eta_text": tile.eta_text, "temps_text": tile.temps_text, "html": html })
        })
        .collect();
    Ok(json!({ "tiles": tiles, "counts": board.counts }))
}

/// After a change, wait this long for more before rendering the board: a print reports
/// several times a second across a farm, and a Pi should render once for all of them.
const STREAM_COALESCE: std::time::Duration = std::time::Duration::from_millis(500);

/// `GET /ui/stream`: the dashboard's live updates as Server-Sent Events (`event: update`,
/// the same object as `/ui/live`), pushed when the farm changes instead of polled.
///
/// One update at once, then one after each burst of changes (coalesced over
/// [`STREAM_COALESCE`]). A client that falls behind the broadcast channel loses nothing
/// here: the next update is the whole board anyway. Connections share the API stream's
/// client limit.
pub async fn stream(State(app): State<AppState>, kiosk: Kiosk) -> Result<Response, ApiError> {
    use axum::response::sse::{Event, KeepAlive, Sse};
    use tokio::sync::broadcast::error::RecvError;

    let live = app.workflow.live();
    let permit = live.client_permit().ok_or_else(|| {
        ApiError::new(
            axum::http::StatusCode::TOO_MANY_REQUESTS,
            "too_many_streams",
            "too many live streams are open: close a kiosk tab and reload",
        )
    })?;
    // Subscribe before the first render so no change falls between the two.
    let rx = live.subscribe();
    let csrf = kiosk.session.csrf.clone();
    let first = live_update(&app, &csrf).await?;
    let state = (app, csrf, rx, permit, Some(first));
    let updates =
        futures_util::stream::unfold(state, |(app, csrf, mut rx, permit, ready)| async move {
            let update = match ready {
                Some(update) => update,
                None => {
                    match rx.recv().await {
                        Ok(_) | Err(RecvError::Lagged(_)) => {}
                        Err(RecvError::Closed) => return None,
                    }
                    tokio::time::sleep(STREAM_COALESCE).await;
                    // Everything that arrived meanwhile is covered by this render.
                    while let Ok(_) | Err(tokio::sync::broadcast::error::TryRecvError::Lagged(_)) =
                        rx.try_recv()
                    {}
                    match live_update(&app, &csrf).await {
                        Ok(update) => update,
                        Err(e) => {
                            tracing::warn!("cannot render the live board: {}", e.message);
                            json!({ "tiles": [], "counts": [] })
                        }
                    }
                }
            };
            let event = Event::default().event("update").data(update.to_string());
            Some((
                Ok::<_, std::convert::Infallible>(event),
                (app, csrf, rx, permit, None),
            ))
        });
    Ok(Sse::new(updates)
        .keep_alive(KeepAlive::new().interval(std::time::Duration::from_secs(15)))
        .into_response())
}

#[derive(Deserialize, Default)]
pub struct QueueParams {
    status: Option<String>,
    q: Option<String>,
    sort: Option<String>,
}

/// How a queue can be sorted.
const SORTS: [(&str, &str); 4] = [
    ("newest", "Newest first"),
    ("oldest", "Oldest first"),
    ("name", "Student name"),
    ("cost", "Cost, highest first"),
];

/// Bulk actions that make sense for a whole tab, by status.
fn bulk_actions(status: Status) -> &'static [(&'static str, &'static str)] {
    match status {
        Status::Pending => &[("resend-confirmation", "Resend confirmation")],
        Status::ReadyToPrint => &[("dispatch", "Dispatch to any idle printer")],
        Status::PaidPickedUp | Status::Rejected => &[("archive", "Archive")],
        _ => &[],
    }
}

/// At most this many jobs on one queue page; the search narrows it.
const QUEUE_LIMIT: usize = 200;

pub async fn queues(
    State(app): State<AppState>,
    kiosk: Kiosk,
    Query(params): Query<QueueParams>,
) -> Response {
    let status = params
        .status
        .as_deref()
        .and_then(|s| s.parse::<Status>().ok())
        .unwrap_or(Status::Uploaded);
    let sort = params
        .sort
        .as_deref()
        .filter(|s| SORTS.iter().any(|(k, _)| k == s))
        .unwrap_or("newest")
        .to_string();
    let q = params
        .q
        .map(|q| q.trim().chars().take(100).collect::<String>())
        .filter(|q| !q.is_empty());
    let query = JobQuery {
        status: Some(status),
        text: q.clone(),
        limit: QUEUE_LIMIT,
        before: None,
    };
    let store = app.store.clone();
    let listed = tokio::task::spawn_blocking(move || {
        Ok::<_, ApiError>((store.list_jobs(&query)?, store.count_by_status()?))
    })
    .await;
    let ((mut jobs, more), counts) = match listed {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => return e.into_response(),
        Err(e) => return busy(e).into_response(),
    };
    sort_jobs(&mut jobs, &sort);
    let tabs: Vec<Value> = counts
        .iter()
        .map(|(s, n)| json!({ "status": s.as_str(), "label": tiles::status_label(*s), "count": n, "current": *s == status }))
        .collect();
    let rows: Vec<Value> = jobs.iter().map(job_row).collect();
    let sorts: Vec<Value> = SORTS
        .iter()
        .map(|(k, label)| json!({ "key": k, "label": label, "current": *k == sort }))
        .collect();
    staff_page(
        &app,
        &kiosk,
        "queues.html",
        json!({
            "status": status.as_str(), "status_label": tiles::status_label(status),
            "tabs": tabs, "jobs": rows, "q": q, "sorts": sorts, "more": more.is_some(),
            "bulk": bulk_actions(status).iter().map(|(a, l)| json!({ "action": a, "label": l })).collect::<Vec<_>>(),
        }),
    )
}

fn sort_jobs(jobs: &mut [Job], sort: &str) {
    match sort {
        "oldest" => jobs.sort_by_key(|j| j.id),
        "name" => jobs.sort_by_key(|j| j.student_name.to_lowercase()),
        "cost" => jobs.sort_by(|a, b| {
            b.cost_usd
                .unwrap_or(0.0)
                .total_cmp(&a.cost_usd.unwrap_or(0.0))
        }),
        _ => jobs.sort_by_key(|j| std::cmp::Reverse(j.id)),
    }
}

/// A job as a queue row.
fn job_row(job: &Job) -> Value {
    json!({
        "id": job.id.to_string(), "display_name": job.display_name, "student_name": job.student_name,
        "filename": job.original_filename, "material": job.material, "color": job.color,
        "printer": job.printer, "cost": job.cost_usd.map(|c| format!("${c:.2}")),
        "created": short_time(job.created_at), "is_new": job.staff_viewed_at.is_none(),
        "attempts": job.attempts, "locked_by": job.locked_by,
        "thumbnail": job.artifacts.contains_key("thumbnail.png"),
    })
}

/// `2026-11-23 09:05` (UTC).
pub fn short_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M").to_string()
}

/// Common reasons to reject, offered as a checklist.
pub const REJECT_REASONS: [&str; 7] = [
    "The model is not watertight or has errors",
    "The model is too large for our printers",
    "Walls or details are too thin to print",
    "It needs supports or a setup we cannot provide",
    "It is not for coursework or breaks lab policy",
    "The file is not a printable model",
    "It is a duplicate of another submission",
];

pub async fn job(State(app): State<AppState>, kiosk: Kiosk, Path(raw): Path<String>) -> Response {
    let id = match parse_job_id(&raw) {
        Ok(id) => id,
        Err(e) => return not_found_page(&app, &e.message),
    };
    // Opening the job clears its NEW mark, attributed like any action; without a
    // name picked, no one has opened it yet. Only the first opening writes (an SD
    // card should not take a transaction per page view).
    let unseen = app
        .store
        .job(id)
        .ok()
        .flatten()
        .is_some_and(|j| j.staff_viewed_at.is_none());
    if let Some(actor) = unseen.then(|| kiosk.actor(&app).ok()).flatten() {
        let request = crate::workflow::JobRequest::Other(crate::lifecycle::Action::MarkViewed);
        let _ = crate::http::jobs::perform(&app, id, request, actor).await;
    }
    let app2 = app.clone();
    let loaded = tokio::task::spawn_blocking(move || job_context(&app2, id)).await;
    match loaded {
        Ok(Ok(Some(context))) => staff_page(&app, &kiosk, "job.html", context),
        Ok(Ok(None)) => not_found_page(&app, &format!("There is no job {id}.")),
        Ok(Err(e)) => e.into_response(),
        Err(e) => busy(e).into_response(),
    }
}

fn not_found_page(app: &AppState, message: &str) -> Response {
    let mut page = render(
        app,
        "message.html",
        json!({ "title": "Not found", "message": message }),
    );
    *page.status_mut() = axum::http::StatusCode::NOT_FOUND;
    page
}

/// Everything the job page shows.
fn job_context(app: &AppState, id: JobId) -> Result<Option<Value>, ApiError> {
    let Some(job) = app.store.job(id)? else {
        return Ok(None);
    };
    let (events, _) = app.store.events(&EventQuery {
        job: Some(id),
        limit: 500,
        ..Default::default()
    })?;
    let events: Vec<Value> = events
        .iter()
        .rev()
        .map(|e| {
            json!({ "time": short_time(e.timestamp), "type": e.event_type.as_str(), "by": e.triggered_by,
                    "workstation": e.workstation_id, "details": details_text(&e.details) })
        })
        .collect();
    let versions: Vec<Value> = app
        .store
        .file_versions(id)?
        .iter()
        .map(|v| json!({ "version": v.version, "filename": v.filename, "format": v.format,
                          "size": human_bytes(v.size_bytes), "added": short_time(v.added_at), "by": v.added_by,
                          "current": v.version == job.file_version }))
        .collect();
    let analysis = analysis_summary(app, &job);
    let printers: Vec<Value> = app
        .config
        .printers
        .iter()
        .map(|p| json!({ "id": p.id, "name": p.display_name(), "fits": job.analysis["fits"][&p.id].as_bool(),
                          "accepts": p.accepts_material(job.material.as_deref()) }))
        .collect();
    let materials: Vec<&String> = app.config.pricing.materials.keys().collect();
    let approve = approve_defaults(app, &job, &analysis);
    Ok(Some(json!({
        "job": job_json(&job), "id": job.id.to_string(), "status": job.status.as_str(),
        "status_label": tiles::status_label(job.status),
        "events": events, "versions": versions, "analysis": analysis, "printers": printers,
        "materials": materials, "approve": approve, "reject_reasons": REJECT_REASONS,
        "has_preview": job.artifacts.contains_key("preview.glb"),
        "has_thumbnail": job.artifacts.contains_key("thumbnail.png"),
        "locked": job.locked_until.is_some_and(|u| u > Utc::now()).then(|| json!({
            "by": job.locked_by, "until": job.locked_until.map(short_time) })),
        "cost": job.cost_usd.map(|c| format!("{c:.2}")),
        "time": job.time_hours.map(|h| hours(h * 3600.0)),
        "created": short_time(job.created_at),
        "can": can(job.status),
        "can_add_file": matches!(job.status, Status::Uploaded | Status::Pending | Status::ReadyToPrint),
    })))
}

/// Which action groups the page offers in this status (from `Action::allowed_from`).
fn can(status: Status) -> Value {
    use crate::lifecycle::{Action, Pickup};
    let allowed = |action: Action| {
        action
            .allowed_from()
            .is_none_or(|from| from.contains(&status))
    };
    json!({
        "approve": allowed(Action::Approve(crate::lifecycle::Approval {
            printer: None, material: String::new(), color: String::new(),
            weight_g: None, time_hours: None, cost_usd: 0.0,
        })),
        "reject": allowed(Action::Reject { reasons: vec![] }),
        "resend": allowed(Action::ResendConfirmation),
        "dispatch": allowed(Action::Dispatch { printer: String::new() }),
        "fail": allowed(Action::Complete),
        "pickup": allowed(Action::Pickup(Pickup::default())),
        "archive": allowed(Action::Archive),
    })
}

/// The analysis in words: size, fits, time, grams, estimated cost.
fn analysis_summary(app: &AppState, job: &Job) -> Value {
    let a = &job.analysis;
    let estimate = |key: &str| a[key].as_f64().or_else(|| a["sliced"][key].as_f64());
    let size = a["bbox_mm"].as_array().map(|b| {
        b.iter()
            .map(|v| format!("{:.1}", v.as_f64().unwrap_or(0.0)))
            .collect::<Vec<_>>()
            .join(" × ")
            + " mm"
    });
    let fits: Vec<Value> = a["fits"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| json!({ "printer": k, "fits": v.as_bool() == Some(true) }))
                .collect()
        })
        .unwrap_or_default();
    let grams = estimate("filament_g");
    let material = job
        .material
        .clone()
        .or_else(|| app.config.pricing.materials.keys().next().cloned());
    let cost = match (grams, material.as_deref()) {
        (Some(g), Some(m)) => Some(app.config.pricing.cost_usd(m, g)),
        _ => None,
    };
    json!({
        "state": a["state"], "format": a["format"].as_str().unwrap_or(&job.format), "error": a["error"],
        "size": size, "fits": fits, "triangles": a["triangles"], "watertight": a["watertight"],
        "time": estimate("estimated_time_s").map(hours), "grams": grams.map(|g| format!("{g:.1}")),
        "grams_value": grams, "time_hours_value": estimate("estimated_time_s").map(|s| s / 3600.0),
        "cost": cost.map(|c| format!("{c:.2}")), "cost_value": cost, "layers": estimate("layers"),
        "sliced": !a["sliced"].is_null(),
    })
}

/// The approve form's prefilled values.
fn approve_defaults(app: &AppState, job: &Job, analysis: &Value) -> Value {
    let material = job
        .material
        .clone()
        .filter(|m| app.config.pricing.material(m).is_some())
        .or_else(|| app.config.pricing.materials.keys().next().cloned());
    let printer = job.printer.clone().or_else(|| {
        app.config
            .printers
            .iter()
            .find(|p| {
                p.accepts_material(material.as_deref())
                    && job.analysis["fits"][&p.id].as_bool() != Some(false)
            })
            .map(|p| p.id.clone())
    });
    let round = |v: &Value, digits: i32| {
        v.as_f64().map(|x| {
            let f = 10f64.powi(digits);
            (x * f).round() / f
        })
    };
    json!({
        "material": material, "color": job.color.clone().unwrap_or_default(), "printer": printer,
        "weight_g": round(&analysis["grams_value"], 1), "time_hours": round(&analysis["time_hours_value"], 2),
        "cost_usd": round(&analysis["cost_value"], 2),
    })
}

/// `2 h 05 min`.
pub fn hours(seconds: f64) -> String {
    let minutes = (seconds / 60.0).round().max(0.0) as u64;
    format!("{} h {:02} min", minutes / 60, minutes % 60)
}

/// `1.4 MB`.
pub fn human_bytes(n: u64) -> String {
    match n {
        n if n >= 1 << 20 => format!("{:.1} MB", n as f64 / (1u64 << 20) as f64),
        n if n >= 1 << 10 => format!("{:.0} KB", n as f64 / 1024.0),
        n => format!("{n} B"),
    }
}

/// An event's details as `key: value` pairs.
fn details_text(details: &Value) -> String {
    match details {
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) => format!("{k}: {s}"),
                other => format!("{k}: {other}"),
            })
            .collect::<Vec<_>>()
            .join(" · "),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

pub async fn printers(State(app): State<AppState>, kiosk: Kiosk) -> Response {
    let board = match run_blocking(&app, board).await {
        Ok(board) => board,
        Err(e) => return e.into_response(),
    };
    let config: Vec<Value> = app
        .config
        .printers
        .iter()
        .map(|p| json!({ "id": p.id, "name": p.display_name(), "driver": p.driver,
                          "materials": p.materials, "build_volume": p.build_volume_mm,
                          "slicer_profile": p.slicer_profile.as_ref().map(|s| s.display().to_string()) }))
        .collect();
    staff_page(
        &app,
        &kiosk,
        "printers.html",
        json!({ "tiles": board.tiles, "printers": config }),
    )
}

/// Runs a store read off the async threads.
pub async fn run_blocking<T: Send + 'static>(
    app: &AppState,
    f: impl FnOnce(&AppState) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    let app = app.clone();
    tokio::task::spawn_blocking(move || f(&app))
        .await
        .map_err(busy)?
}

pub fn busy(e: tokio::task::JoinError) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::SERVICE_UNAVAILABLE,
        "busy",
        e.to_string(),
    )
}
