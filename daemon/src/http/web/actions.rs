//! Every kiosk form post. Each builds the same request the JSON API builds and hands
//! it to the same `perform` / `printer_act`, so a form and an API call cannot differ
//! in what they do, what they check or what they record.

use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::Utc;
use serde_json::{Map, Value, json};

use super::guard::{Kiosk, KioskForm};
use super::render;
use super::session;
use crate::http::AppState;
use crate::http::error::ApiError;
use crate::http::farm::printer_act;
use crate::http::jobs::{parse_job_id, perform, request};
use crate::model::{JobId, Status};
use crate::store::JobQuery;

pub async fn login_page(State(app): State<AppState>) -> Response {
    render(&app, "login.html", json!({}))
}

/// Signs a workstation in with its token: a session cookie and the dashboard.
pub async fn login(
    State(app): State<AppState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if !same_origin(&headers) {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "cross_origin",
            "sign in from Farmhand's own page",
        )
        .into_response();
    }
    let token = form_urlencoded::parse(&body)
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_default();
    let Some(ws) = app.auth.verify(&token) else {
        // A pause per wrong token makes guessing slow; tokens are long anyway.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mut page = render(
            &app,
            "login.html",
            json!({ "error": "That token is not valid for any workstation." }),
        );
        *page.status_mut() = StatusCode::UNAUTHORIZED;
        return page;
    };
    let cookie = app.sessions.create(&ws.id, ws.role, Utc::now());
    let secure = app.public_url.starts_with("https://");
    (
        [(header::SET_COOKIE, session::set_cookie(&cookie, secure))],
        Redirect::to("/"),
    )
        .into_response()
}

/// A browser's `Origin` names the page a post came from; when present it must be ours.
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    origin
        .split_once("://")
        .is_some_and(|(_, authority)| authority == host)
}

pub async fn logout(State(app): State<AppState>, form: KioskForm) -> Response {
    app.sessions.remove(&form.kiosk.cookie);
    (
        [(header::SET_COOKIE, session::clear_cookie())],
        Redirect::to("/login"),
    )
        .into_response()
}

/// The header dropdown: who is acting at this kiosk from now on.
pub async fn pick_staff(State(app): State<AppState>, form: KioskForm) -> Response {
    let next = form.next("/");
    let result = match form.get("staff") {
        None => {
            app.sessions.update(&form.kiosk.cookie, |s| s.staff = None);
            Ok("No one is picked: pick your name before acting".to_string())
        }
        Some(name) => form
            .kiosk
            .session
            .workstation()
            .actor(&app, Some(name))
            .map(|actor| {
                let name = actor.triggered_by();
                app.sessions
                    .update(&form.kiosk.cookie, |s| s.staff = Some(name.clone()));
                format!("{name} is acting at this kiosk")
            }),
    };
    form.finish(&app, &next, result)
}

/// Form fields that the API takes as numbers.
const NUMBER_FIELDS: [&str; 5] = ["weight_g", "time_hours", "cost_usd", "paid_usd", "minutes"];
/// Form fields that are not part of the request.
const FORM_ONLY: [&str; 4] = ["csrf", "next", "reasons", "reason_other"];

/// The JSON body the API would get for this form: numbers parsed, blanks left out,
/// the reject checklist and its free text joined into `reasons`.
pub fn form_body(form: &KioskForm) -> Result<Value, ApiError> {
    let mut body = Map::new();
    for (key, value) in &form.fields {
        let value = value.trim();
        if value.is_empty() || FORM_ONLY.contains(&key.as_str()) || body.contains_key(key) {
            continue;
        }
        let value = if NUMBER_FIELDS.contains(&key.as_str()) {
            let number: f64 = value
                .parse()
                .ok()
                .filter(|n: &f64| n.is_finite())
                .ok_or_else(|| {
                    ApiError::bad_request(
                        "invalid_number",
                        format!("{key} must be a number, not {value:?}"),
                    )
                })?;
            if key == "minutes" {
                json!(number.max(0.0).min(f64::from(u32::MAX)) as u32)
            } else {
                json!(number)
            }
        } else {
            json!(value)
        };
        body.insert(key.clone(), value);
    }
    let mut reasons = form.all("reasons");
    reasons.extend(form.get("reason_other").map(str::to_string));
    if !reasons.is_empty() {
        body.insert("reasons".into(), json!(reasons));
    }
    Ok(Value::Object(body))
}

/// What the kiosk tells staff after an action went through.
fn done_message(id: JobId, action: &str, job: &Value) -> String {
    match action {
        "approve" => format!("Job {id} approved: the student gets the confirmation e-mail"),
        "reject" => format!("Job {id} rejected: the student gets the reasons by e-mail"),
        "dispatch" => format!(
            "Job {id} dispatched to {}",
            job["printer"].as_str().unwrap_or("a printer")
        ),
        "resend-confirmation" => format!("Job {id}: a new confirmation link is on its way"),
        "fail" => format!("Job {id} marked failed: it is back in Ready to print"),
        "complete" => format!("Job {id} marked complete"),
        "pickup" => format!("Job {id}: paid and picked up"),
        "archive" => format!("Job {id} archived"),
        "notes" => format!("Notes of job {id} saved"),
        "lock" => format!("Job {id} is locked for you"),
        "unlock" => format!("Job {id} is unlocked"),
        other => format!("Job {id}: {other} done"),
    }
}

/// `POST /jobs/{id}/{action}` from the job page.
pub async fn job_action(
    State(app): State<AppState>,
    Path((raw, action)): Path<(String, String)>,
    form: KioskForm,
) -> Response {
    let next = form.next(&format!("/jobs/{raw}"));
    let result = run_job_action(&app, &form, &raw, &action).await;
    form.finish(&app, &next, result)
}

async fn run_job_action(
    app: &AppState,
    form: &KioskForm,
    raw: &str,
    action: &str,
) -> Result<String, ApiError> {
    let id = parse_job_id(raw)?;
    let request = request(action, form_body(form)?)?;
    let actor = form.kiosk.actor(app)?;
    let job = perform(app, id, request, actor).await?;
    Ok(done_message(id, action, &job))
}

/// `POST /printers/{id}/{action}` from a dashboard tile.
pub async fn printer_action(
    State(app): State<AppState>,
    Path((id, action)): Path<(String, String)>,
    form: KioskForm,
) -> Response {
    let next = form.next("/");
    let result = run_printer_action(&app, &form, &id, &action).await;
    form.finish(&app, &next, result)
}

async fn run_printer_action(
    app: &AppState,
    form: &KioskForm,
    id: &str,
    action: &str,
) -> Result<String, ApiError> {
    let printer = app
        .config
        .printer(id)
        .ok_or_else(|| ApiError::not_found(format!("there is no printer {id:?}")))?;
    let actor = form.kiosk.actor(app)?;
    if action == "dispatch-next" {
        let job = next_job_for(app, id).await?;
        let request = request("dispatch", json!({ "printer": id }))?;
        perform(app, job, request, actor).await?;
        return Ok(format!(
            "Job {job} dispatched to {}",
            printer.display_name()
        ));
    }
    printer_act(app, printer, action, actor).await?;
    Ok(match action {
        "clear" => format!(
            "{}: bed cleared, ready for the next print",
            printer.display_name()
        ),
        other => format!("{}: {other} sent", printer.display_name()),
    })
}

/// The job waiting longest in READYTOPRINT that this printer can take.
async fn next_job_for(app: &AppState, printer: &str) -> Result<JobId, ApiError> {
    let store = app.store.clone();
    let query = JobQuery {
        status: Some(Status::ReadyToPrint),
        limit: usize::MAX,
        ..Default::default()
    };
    let (jobs, _) = tokio::task::spawn_blocking(move || store.list_jobs(&query))
        .await
        .map_err(super::views::busy)??;
    jobs.iter()
        .rev()
        .find(|j| super::views::fits_printer(app, j, Some(printer)))
        .map(|j| j.id)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::CONFLICT,
                "no_job_waiting",
                format!("no job ready to print can go to printer {printer}"),
            )
        })
}

/// Bulk actions from a queue tab allowed on many jobs at once.
const BULK: [&str; 3] = ["archive", "resend-confirmation", "dispatch"];
/// At most this many jobs per bulk action.
const BULK_MAX: usize = 200;

/// `POST /jobs/bulk`: one action on the ticked jobs, each its own transaction.
pub async fn bulk(State(app): State<AppState>, form: KioskForm) -> Response {
    let next = form.next("/jobs");
    let result = run_bulk(&app, &form).await;
    form.finish(&app, &next, result)
}

async fn run_bulk(app: &AppState, form: &KioskForm) -> Result<String, ApiError> {
    let action = form
        .get("action")
        .filter(|a| BULK.contains(a))
        .ok_or_else(|| ApiError::bad_request("invalid_action", "choose a bulk action"))?;
    let ids = form.all("ids");
    if ids.is_empty() || ids.len() > BULK_MAX {
        return Err(ApiError::bad_request(
            "invalid_selection",
            format!("tick 1 to {BULK_MAX} jobs first"),
        ));
    }
    let actor = form.kiosk.actor(app)?;
    let (mut done, mut failed) = (0, Vec::new());
    for raw in &ids {
        match bulk_one(app, raw, action, actor.clone()).await {
            Ok(_) => done += 1,
            Err(e) => failed.push(format!("job {raw}: {}", e.message)),
        }
    }
    if failed.is_empty() {
        Ok(format!("{action}: done for {done} jobs"))
    } else {
        Err(ApiError::new(
            StatusCode::CONFLICT,
            "partly_done",
            format!("{action}: done for {done}; not for {}", failed.join("; ")),
        ))
    }
}

async fn bulk_one(
    app: &AppState,
    raw: &str,
    action: &str,
    actor: crate::model::Actor,
) -> Result<Value, ApiError> {
    let id = parse_job_id(raw)?;
    perform(app, id, request(action, json!({}))?, actor).await
}

/// `POST /jobs/{id}/files` from the job page: a multipart form (the CSRF token as its
/// first field, then the file) adding a file version, through the same path as the
/// API's `POST /api/v1/jobs/{id}/files`. The CSRF token is checked before anything is
/// recorded; a refused upload's staged file is removed.
pub async fn upload(
    State(app): State<AppState>,
    kiosk: Kiosk,
    Path(raw): Path<String>,
    headers: HeaderMap,
    multipart: Result<axum::extract::Multipart, axum::extract::multipart::MultipartRejection>,
) -> Response {
    let next = format!("/jobs/{raw}");
    let mut form = match crate::http::submit::receive(&app, &headers, multipart).await {
        Ok(form) => form,
        Err(e) => return finish_upload(&app, &kiosk, &next, Err(e)),
    };
    let presented = form.fields.get("csrf").map(String::as_str).unwrap_or("");
    if !kiosk.session.csrf_matches(presented) {
        form.discard();
        return super::guard::csrf_refused().into_response();
    }
    let result = async {
        let id = parse_job_id(&raw)?;
        let actor = kiosk.actor(&app)?;
        let job = crate::http::files::record(&app, actor, id, &mut form).await?;
        Ok(format!(
            "Job {id}: version added ({})",
            job.original_filename
        ))
    }
    .await;
    form.discard();
    finish_upload(&app, &kiosk, &next, result)
}

fn finish_upload(
    app: &AppState,
    kiosk: &Kiosk,
    next: &str,
    result: Result<String, ApiError>,
) -> Response {
    let flash = match result {
        Ok(message) => session::Flash::ok(message),
        Err(e) => session::Flash::error(e.message),
    };
    kiosk.flash(app, flash);
    Redirect::to(next).into_response()
}
