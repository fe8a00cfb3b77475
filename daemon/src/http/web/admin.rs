//! The admin pages: the staff list (add, deactivate), the printers' config, the mail
//! outbox and the audit log with filters and CSV export. Reading is open to every
//! signed-in kiosk; changing the staff list needs an admin workstation, as in the API.

use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, NaiveDate, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

use super::guard::{Kiosk, KioskForm};
use super::staff_page;
use super::views::{human_bytes, run_blocking, short_time};
use crate::http::AppState;
use crate::http::error::ApiError;
use crate::http::jobs::parse_job_id;
use crate::model::Event;
use crate::store::EventQuery;

pub async fn staff(State(app): State<AppState>, kiosk: Kiosk) -> Response {
    let members = match app.store.staff() {
        Ok(members) => members,
        Err(e) => return ApiError::from(e).into_response(),
    };
    let members: Vec<Value> = members
        .iter()
        .map(|m| json!({ "name": m.name, "active": m.active, "added": short_time(m.added_at) }))
        .collect();
    staff_page(
        &app,
        &kiosk,
        "admin_staff.html",
        json!({ "members": members, "tab": "staff" }),
    )
}

pub async fn add_staff(State(app): State<AppState>, form: KioskForm) -> Response {
    let result = (|| -> Result<String, ApiError> {
        form.kiosk.require_admin()?;
        let actor = form.kiosk.actor(&app)?;
        let name = form.get("name").ok_or_else(|| {
            ApiError::bad_request("missing_field", "give the new staff member's name")
        })?;
        let member = app.workflow.add_staff(name, &actor, Utc::now())?;
        Ok(format!("{} is on the staff list", member.name))
    })();
    form.finish(&app, "/admin", result)
}

pub async fn deactivate_staff(State(app): State<AppState>, form: KioskForm) -> Response {
    let result = (|| -> Result<String, ApiError> {
        form.kiosk.require_admin()?;
        let actor = form.kiosk.actor(&app)?;
        let name = form
            .get("name")
            .ok_or_else(|| ApiError::bad_request("missing_field", "name the staff member"))?;
        let member = app.workflow.deactivate_staff(name, &actor, Utc::now())?;
        Ok(format!("{} can no longer act", member.name))
    })();
    form.finish(&app, "/admin", result)
}

pub async fn printers(State(app): State<AppState>, kiosk: Kiosk) -> Response {
    let printers: Vec<Value> = app
        .config
        .printers
        .iter()
        .map(|p| {
            // The config as staff may see it: never passwords, keys or access codes.
            json!({ "id": p.id, "name": p.display_name(), "driver": p.driver,
                    "build_volume": p.build_volume_mm, "materials": p.materials,
                    "connection": p.port.clone().or_else(|| p.url.clone()).or_else(|| p.host.clone())
                        .or_else(|| p.broker.clone().map(|b| format!("{b} {}", p.topic.clone().unwrap_or_default()))),
                    "slicer_profile": p.slicer_profile.as_ref().map(|s| s.display().to_string()) })
        })
        .collect();
    staff_page(
        &app,
        &kiosk,
        "admin_printers.html",
        json!({ "printers": printers, "tab": "printers" }),
    )
}

/// At most this many outbox files are listed (newest first).
const OUTBOX_LIST: usize = 200;

pub async fn outbox(State(app): State<AppState>, kiosk: Kiosk) -> Response {
    let read = run_blocking(&app, |app| {
        let queued: Vec<Value> = app
            .store
            .pending_mail()?
            .iter()
            .map(|m| json!({ "id": m.id, "to": m.to, "subject": m.subject, "kind": m.kind,
                              "attempts": m.attempts, "error": m.last_error,
                              "next": short_time(m.next_attempt_at) }))
            .collect();
        let dir = crate::mail::outbox_dir(app.store.data_dir());
        let mut files: Vec<(String, u64, Option<DateTime<Utc>>)> = std::fs::read_dir(&dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "eml"))
            .map(|e| {
                let meta = e.metadata().ok();
                (
                    e.file_name().to_string_lossy().into_owned(),
                    meta.as_ref().map_or(0, |m| m.len()),
                    meta.and_then(|m| m.modified().ok()).map(DateTime::<Utc>::from),
                )
            })
            .collect();
        files.sort_by(|a, b| b.0.cmp(&a.0));
        let total = files.len();
        let files: Vec<Value> = files
            .into_iter()
            .take(OUTBOX_LIST)
            .map(|(name, size, at)| json!({ "name": name, "size": human_bytes(size), "at": at.map(short_time) }))
            .collect();
        Ok(json!({ "queued": queued, "files": files, "total": total, "dir": dir.display().to_string() }))
    })
    .await;
    match read {
        Ok(mut context) => {
            context["tab"] = json!("outbox");
            staff_page(&app, &kiosk, "admin_outbox.html", context)
        }
        Err(e) => e.into_response(),
    }
}

#[derive(Deserialize, Default, Clone)]
pub struct AuditParams {
    job: Option<String>,
    staff: Option<String>,
    #[serde(rename = "type")]
    event_type: Option<String>,
    since: Option<String>,
}

/// The filters as a store query. `since` takes a date (`2026-11-23`) or an RFC 3339 time.
fn audit_query(params: &AuditParams, limit: usize) -> Result<EventQuery, ApiError> {
    let nonempty = |v: &Option<String>| {
        v.as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    let since = nonempty(&params.since)
        .map(|s| {
            NaiveDate::parse_from_str(&s, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .map(|d| d.and_utc())
                .or_else(|| {
                    DateTime::parse_from_rfc3339(&s)
                        .ok()
                        .map(|t| t.with_timezone(&Utc))
                })
                .ok_or_else(|| {
                    ApiError::bad_request("invalid_since", "since is a date such as 2026-11-23")
                })
        })
        .transpose()?;
    Ok(EventQuery {
        job: nonempty(&params.job)
            .map(|j| parse_job_id(&j))
            .transpose()?,
        staff: nonempty(&params.staff),
        event_type: nonempty(&params.event_type),
        since,
        after: None,
        limit,
    })
}

/// Rows on the audit page; the CSV has up to [`CSV_LIMIT`].
const PAGE_LIMIT: usize = 500;
const CSV_LIMIT: usize = 100_000;

pub async fn audit(
    State(app): State<AppState>,
    kiosk: Kiosk,
    Query(params): Query<AuditParams>,
) -> Response {
    let query = match audit_query(&params, PAGE_LIMIT) {
        Ok(q) => q,
        Err(e) => return e.into_response(),
    };
    let read = run_blocking(&app, move |app| Ok(app.store.events(&query)?)).await;
    let (events, more) = match read {
        Ok(v) => v,
        Err(e) => return e.into_response(),
    };
    let rows: Vec<Value> = events
        .iter()
        .map(|e| {
            json!({ "id": e.id, "time": e.timestamp.to_rfc3339(), "type": e.event_type.as_str(),
                          "job": e.job_id.map(|j| j.to_string()), "by": e.triggered_by,
                          "workstation": e.workstation_id, "details": e.details.to_string() })
        })
        .collect();
    let csv_query = serde_urlencoded_pairs(&params);
    staff_page(
        &app,
        &kiosk,
        "admin_audit.html",
        json!({ "events": rows, "more": more.is_some(), "tab": "audit", "csv": format!("/admin/audit.csv?{csv_query}"),
                "f": { "job": params.job, "staff": params.staff, "type": params.event_type, "since": params.since } }),
    )
}

fn serde_urlencoded_pairs(params: &AuditParams) -> String {
    let mut out = form_urlencoded::Serializer::new(String::new());
    for (key, value) in [
        ("job", &params.job),
        ("staff", &params.staff),
        ("type", &params.event_type),
        ("since", &params.since),
    ] {
        if let Some(v) = value.as_deref().filter(|v| !v.is_empty()) {
            out.append_pair(key, v);
        }
    }
    out.finish()
}

pub async fn audit_csv(
    State(app): State<AppState>,
    _kiosk: Kiosk,
    Query(params): Query<AuditParams>,
) -> Response {
    let query = match audit_query(&params, CSV_LIMIT) {
        Ok(q) => q,
        Err(e) => return e.into_response(),
    };
    match run_blocking(&app, move |app| Ok(app.store.events(&query)?.0)).await {
        Ok(events) => (
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
                (
                    header::CONTENT_DISPOSITION,
                    "attachment; filename=\"farmhand-audit.csv\"",
                ),
            ],
            to_csv(&events),
        )
            .into_response(),
        Err(e) => e.into_response(),
    }
}

/// The audit log as CSV (RFC 4180: quoted fields, doubled quotes, CRLF rows).
pub fn to_csv(events: &[Event]) -> String {
    let mut out =
        String::from("id,timestamp,event_type,job_id,triggered_by,workstation_id,details\r\n");
    for e in events {
        let fields = [
            e.id.to_string(),
            e.timestamp.to_rfc3339(),
            e.event_type.as_str().to_string(),
            e.job_id.map(|j| j.to_string()).unwrap_or_default(),
            e.triggered_by.clone(),
            e.workstation_id.clone().unwrap_or_default(),
            e.details.to_string(),
        ];
        let row: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
        out.push_str(&row.join(","));
        out.push_str("\r\n");
    }
    out
}

/// One CSV field; a leading `=`, `+`, `-` or `@` is defused so a spreadsheet does not
/// run a student-typed formula.
fn csv_field(value: &str) -> String {
    let defused = if value.starts_with(['=', '+', '-', '@']) {
        format!("'{value}")
    } else {
        value.to_string()
    };
    if defused.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", defused.replace('"', "\"\""))
    } else {
        defused
    }
}

/// `GET /admin/sync`: how far behind the cloud copy is (the same figures as
/// `GET /api/v1/sync`), so staff see a growing backlog while the bucket is unreachable.
pub async fn sync(State(app): State<AppState>, kiosk: Kiosk) -> Response {
    let read = run_blocking(&app, |app| {
        let mut backlog = crate::http::sync::backlog(app)?;
        for key in [
            "oldest_pending_at",
            "last_success_at",
            "last_error_at",
            "last_snapshot_at",
        ] {
            let shown = backlog[key]
                .as_str()
                .and_then(|t| t.parse::<DateTime<Utc>>().ok())
                .map(short_time);
            backlog[key] = json!(shown);
        }
        Ok(json!({ "sync": backlog }))
    })
    .await;
    match read {
        Ok(mut context) => {
            context["tab"] = json!("sync");
            staff_page(&app, &kiosk, "admin_sync.html", context)
        }
        Err(e) => e.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{EventType, JobId};

    #[test]
    fn csv_quotes_what_needs_quoting_and_defuses_formulas() {
        let event = Event {
            id: 7,
            job_id: Some(JobId(3)),
            timestamp: DateTime::from_timestamp(1_800_000_000, 0).expect("time"),
            event_type: EventType::StaffRejected,
            details: json!({ "reasons": ["too \"big\", sorry"] }),
            triggered_by: "=HYPERLINK(\"x\")".into(),
            workstation_id: Some("kiosk-1".into()),
        };
        let csv = to_csv(&[event]);
        let mut lines = csv.split("\r\n");
        assert_eq!(
            lines.next(),
            Some("id,timestamp,event_type,job_id,triggered_by,workstation_id,details")
        );
        let row = lines.next().expect("row");
        assert!(
            row.starts_with("7,2027-01-15T08:00:00+00:00,StaffRejected,3,"),
            "{row}"
        );
        assert!(row.contains(r#""'=HYPERLINK(""x"")""#), "{row}");
        assert!(
            row.ends_with(r#""{""reasons"":[""too \""big\"", sorry""]}""#),
            "{row}"
        );
    }

    #[test]
    fn since_takes_a_date_or_a_time() {
        let params = |since: &str| AuditParams {
            since: Some(since.into()),
            ..Default::default()
        };
        let q = audit_query(&params("2026-11-23"), 10).expect("date");
        assert_eq!(
            q.since.map(|t| t.to_rfc3339()).as_deref(),
            Some("2026-11-23T00:00:00+00:00")
        );
        assert!(audit_query(&params("2026-11-23T09:00:00Z"), 10).is_ok());
        assert_eq!(
            audit_query(&params("yesterday"), 10).err().map(|e| e.code),
            Some("invalid_since")
        );
    }
}
