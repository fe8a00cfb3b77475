//! What monitoring and API tools read:
//! - `GET /metrics` scraped as Prometheus would, parsed, and checked against what the
//!   farm has actually done: jobs by status, printers by state, the waits, a completed
//!   print, the backlogs and the HTTP latency histogram;
//! - `GET /api/v1/openapi.json` parsed, checked for every route the contract names,
//!   and each documented parameterless GET answered by the real router.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use common::*;
use serde_json::json;

/// One sample: `name{label="value",…} number`.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Parses the OpenMetrics text exposition (the subset Farmhand writes: no escapes
/// inside label values, no timestamps). Panics on a line it cannot read.
fn parse(text: &str) -> Vec<Sample> {
    let mut out = Vec::new();
    for line in text.lines() {
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("no value in {line:?}"));
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value in {line:?}"));
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => {
                let body = rest
                    .strip_suffix('}')
                    .unwrap_or_else(|| panic!("unclosed labels in {line:?}"));
                let labels = body
                    .split("\",")
                    .filter(|p| !p.is_empty())
                    .map(|pair| {
                        let (k, v) = pair
                            .split_once("=\"")
                            .unwrap_or_else(|| panic!("bad label {pair:?} in {line:?}"));
                        (k.to_string(), v.trim_end_matches('"').to_string())
                    })
                    .collect();
                (name.to_string(), labels)
            }
            None => (series.to_string(), BTreeMap::new()),
        };
        out.push(Sample {
            name,
            labels,
            value,
        });
    }
    out
}

fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .find(|s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .unwrap_or_else(|| panic!("no sample {name}{labels:?}"))
        .value
}

async fn scrape(farm: &TestFarm) -> (String, Vec<Sample>) {
    let response = farm
        .http
        .get(format!("{}/metrics", farm.url))
        .send()
        .await
        .expect("scrape");
    assert_eq!(response.status(), 200);
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "content type {content_type}"
    );
    let text = response.text().await.expect("body");
    assert!(
        text.trim_end().ends_with("# EOF"),
        "OpenMetrics ends with # EOF"
    );
    let samples = parse(&text);
    (text, samples)
}

#[tokio::test]
async fn metrics_follow_what_the_farm_did() {
    let farm = TestFarm::start().await;
    let (_, before) = scrape(&farm).await;
    for status in [
        "UPLOADED",
        "PENDING",
        "READYTOPRINT",
        "PRINTING",
        "COMPLETED",
        "PAIDPICKEDUP",
        "REJECTED",
        "ARCHIVED",
    ] {
        assert_eq!(value(&before, "farmhand_jobs", &[("status", status)]), 0.0);
    }
    assert_eq!(
        value(&before, "farmhand_printers", &[("state", "idle")]),
        2.0
    );

    // One job waits for approval; a second goes all the way through a print.
    let (status, waiting) = farm
        .submit("a.stl", tiny_stl(1), "Ada Student", "a@example.edu")
        .await;
    assert_eq!(status, 201, "{waiting}");
    let (status, job) = farm
        .submit("b.stl", tiny_stl(2), "Bob Student", "b@example.edu")
        .await;
    assert_eq!(status, 201, "{job}");
    let id = job["id"].as_str().expect("id").to_string();
    let (status, pending) = farm
        .act(&id, "approve", json!({ "staff": ADA, "material": "PLA", "color": "Red", "weight_g": 10.0, "time_hours": 1.0 }))
        .await;
    assert_eq!(status, 200, "{pending}");
    farm.confirm_by_mail(&id).await;
    let (status, printing) = farm.act(&id, "dispatch", json!({ "staff": ADA })).await;
    assert_eq!(status, 200, "{printing}");

    let (_, during) = scrape(&farm).await;
    assert_eq!(
        value(&during, "farmhand_printers", &[("state", "printing")]),
        1.0
    );
    assert_eq!(
        value(&during, "farmhand_jobs", &[("status", "PRINTING")]),
        1.0
    );

    let (status, done) = farm.act(&id, "complete", json!({ "staff": ADA })).await;
    assert_eq!(status, 200, "{done}");
    // Let the mail worker deliver what the workflow queued.
    wait_for("the outbox to drain", Duration::from_secs(10), || {
        (farm.outbox().len() >= 2).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(50)).await;

    let (text, after) = scrape(&farm).await;
    assert_eq!(
        value(&after, "farmhand_jobs", &[("status", "UPLOADED")]),
        1.0,
        "{text}"
    );
    assert_eq!(
        value(&after, "farmhand_jobs", &[("status", "COMPLETED")]),
        1.0
    );
    assert_eq!(
        value(
            &after,
            "farmhand_print_outcomes_total",
            &[("outcome", "completed")]
        ),
        1.0
    );
    assert_eq!(
        value(
            &after,
            "farmhand_print_outcomes_total",
            &[("outcome", "failed")]
        ),
        0.0
    );
    // The finished print leaves its bed to be cleared.
    assert_eq!(
        value(&after, "farmhand_printers", &[("state", "needs_clearing")]),
        1.0
    );
    assert!(value(&after, "farmhand_outbox_backlog", &[("outbox", "mail")]) >= 0.0);
    assert!(
        value(
            &after,
            "farmhand_outbox_backlog",
            &[("outbox", "processing")]
        ) >= 0.0
    );
    let wait = value(
        &after,
        "farmhand_queue_oldest_wait_seconds",
        &[("status", "UPLOADED")],
    );
    assert!(wait > 0.0 && wait < 120.0, "oldest upload waits {wait} s");
    assert_eq!(
        value(
            &after,
            "farmhand_queue_oldest_wait_seconds",
            &[("status", "READYTOPRINT")]
        ),
        0.0
    );

    // Latency by route template: the two uploads, not one series per job id.
    let uploads = value(
        &after,
        "farmhand_http_request_duration_seconds_count",
        &[
            ("method", "POST"),
            ("route", "/api/v1/jobs"),
            ("status", "2xx"),
        ],
    );
    assert_eq!(uploads, 2.0);
    let actions = value(
        &after,
        "farmhand_http_request_duration_seconds_count",
        &[
            ("method", "POST"),
            ("route", "/api/v1/jobs/{id}/{action}"),
            ("status", "2xx"),
        ],
    );
    assert!(actions >= 3.0, "approve, dispatch, complete: {actions}");
    let (status, _) = farm.get("/api/v1/no-such-thing").await;
    assert_eq!(status, 404);
    let (_, last) = scrape(&farm).await;
    assert_eq!(
        value(
            &last,
            "farmhand_http_request_duration_seconds_count",
            &[("route", "unmatched"), ("status", "4xx")]
        ),
        1.0
    );
}

/// `(method, path)` of every `.route(…)` in `daemon/src/http/*.rs` (the API modules; the
/// kiosk's HTML pages under `http/web/` and `/static` are not API). Read from the source so
/// a new endpoint without a `#[utoipa::path]` fails this test.
fn registered_routes() -> Vec<(&'static str, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/http");
    let mut routes = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("daemon/src/http") {
        let path = entry.expect("dir entry").path();
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let source = std::fs::read_to_string(&path).expect("source");
        for call in source.split(".route(").skip(1) {
            let Some(route) = call.split('"').nth(1) else {
                continue;
            };
            if route.starts_with("/static") {
                continue;
            }
            // The handlers: `get(x)`, `post(y)`, `get(x).post(y)` up to the call's closing
            // parenthesis.
            let mut depth = 1usize;
            let end = call
                .char_indices()
                .find(|&(_, c)| {
                    match c {
                        '(' => depth += 1,
                        ')' => depth -= 1,
                        _ => {}
                    }
                    depth == 0
                })
                .map_or(call.len(), |(at, _)| at);
            let handlers = &call[..end];
            for method in ["get", "post", "put", "delete", "patch"] {
                let called = handlers
                    .match_indices(&format!("{method}("))
                    .any(|(at, _)| at == 0 || !handlers.as_bytes()[at - 1].is_ascii_alphanumeric());
                if called {
                    routes.push((method, route.to_string()));
                }
            }
        }
    }
    routes.sort();
    routes
}

/// The contract's endpoints that the OpenAPI document must describe.
const DOCUMENTED: &[(&str, &str)] = &[
    ("post", "/api/v1/jobs"),
    ("get", "/api/v1/jobs"),
    ("get", "/api/v1/jobs/{id}"),
    ("get", "/api/v1/jobs/{id}/events"),
    ("get", "/api/v1/jobs/{id}/files/{name}"),
    ("post", "/api/v1/jobs/{id}/{action}"),
    ("post", "/api/v1/confirm/{token}"),
    ("get", "/confirm/{token}"),
    ("get", "/api/v1/printers"),
    ("post", "/api/v1/printers/{id}/{action}"),
    ("get", "/api/v1/staff"),
    ("post", "/api/v1/staff"),
    ("post", "/api/v1/staff/{name}/deactivate"),
    ("get", "/api/v1/events"),
    ("get", "/healthz"),
    ("get", "/metrics"),
    ("get", "/api/v1/openapi.json"),
];

#[tokio::test]
async fn the_openapi_document_describes_the_real_routes() {
    let farm = TestFarm::start().await;
    let response = farm
        .http
        .get(format!("{}/api/v1/openapi.json", farm.url))
        .send()
        .await
        .expect("openapi.json");
    assert_eq!(response.status(), 200);
    let doc: serde_json::Value = response.json().await.expect("the document is JSON");
    let version = doc["openapi"].as_str().unwrap_or_default();
    assert!(
        version.starts_with("3."),
        "an OpenAPI 3 document: {version:?}"
    );
    assert_eq!(doc["info"]["title"], "Farmhand");
    assert!(doc["info"]["version"].is_string());
    let paths = doc["paths"].as_object().expect("paths");
    // The contract's endpoints, and every API route the code registers.
    let registered = registered_routes();
    assert!(
        registered.len() > DOCUMENTED.len(),
        "the source scan found too few routes: {registered:?}"
    );
    let everything: Vec<(&str, &str)> = DOCUMENTED
        .iter()
        .copied()
        .chain(registered.iter().map(|(m, p)| (*m, p.as_str())))
        .collect();
    for (method, path) in &everything {
        let operation = &paths
            .get(*path)
            .unwrap_or_else(|| panic!("{path} is not documented"))[*method];
        assert!(operation.is_object(), "{method} {path} is not documented");
        let responses = operation["responses"].as_object().expect("responses");
        assert!(!responses.is_empty(), "{method} {path} lists no responses");
        // Every path parameter in the template is declared.
        for name in path
            .split('/')
            .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
        {
            let declared = operation["parameters"]
                .as_array()
                .is_some_and(|ps| ps.iter().any(|p| p["name"] == name && p["in"] == "path"));
            assert!(
                declared,
                "{method} {path}: parameter {name} is not declared"
            );
        }
    }
    // Staff endpoints name the workstation token scheme, and the scheme exists.
    assert_eq!(
        doc["components"]["securitySchemes"]["workstation_token"]["scheme"],
        "bearer"
    );
    assert!(paths["/api/v1/printers"]["get"]["security"].is_array());
    assert!(paths["/healthz"]["get"]["security"].is_null());
    // The document and the router agree: each documented GET without parameters
    // is a real route (the fallback's "there is no endpoint" 404 would say otherwise).
    for (path, item) in paths {
        if path.contains('{') || item.get("get").is_none() {
            continue;
        }
        let response = farm
            .http
            .get(format!("{}{path}", farm.url))
            .bearer_auth(STAFF_TOKEN)
            .send()
            .await
            .expect("documented GET");
        let status = response.status();
        let streams = response
            .headers()
            .get("content-type")
            .is_some_and(|t| t == "text/event-stream");
        // An event stream never ends: its status and type are the answer.
        let body = if streams {
            String::new()
        } else {
            response.text().await.unwrap_or_default()
        };
        assert!(
            status.is_success(),
            "documented GET {path} answered {status}: {body}"
        );
    }
}
