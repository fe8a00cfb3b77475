//! A simulated PrusaLink printer: an axum server answering `PUT /api/v1/files/usb/{name}`
//! (with `Print-After-Upload`), `GET /api/v1/status`, `GET /api/v1/job`,
//! `PUT /api/v1/job/{id}/pause|resume` and `DELETE /api/v1/job/{id}`, behind an optional
//! `X-Api-Key` or digest login ([`DigestSim`]: a real challenge/response check, as Buddy
//! firmware does it). Prints take the slicer's estimate scaled by `time_scale`.

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
    /// Demand digest login with this username and password.
    pub digest: Option<(String, String)>,
    /// Offer `qop="auth"` (RFC 7616: cnonce, nc must count up). Buddy firmware does not, so
    /// off by default.
    pub digest_qop: bool,
}

impl Default for PrusaLinkSimOptions {
    fn default() -> Self {
        Self {
            time_scale: 1.0,
            api_key: None,
            digest: None,
            digest_qop: false,
        }
    }
}

/// PrusaLink's realm.
const REALM: &str = "Printer API";

/// The server side of digest login: the current nonce, and what each answer proves.
#[derive(Debug)]
struct DigestSim {
    username: String,
    password: String,
    qop: bool,
    state: Mutex<DigestState>,
}

#[derive(Debug, Default)]
struct DigestState {
    nonce: String,
    issued: u64,
    /// The `nc` values accepted for the current nonce (qop mode: a replay is refused;
    /// concurrent requests may arrive out of order, so not "must exceed the last").
    seen_nc: std::collections::HashSet<u32>,
    challenges: u32,
}

/// The middleware's verdict on one request.
#[derive(Debug, PartialEq)]
enum Verdict {
    Pass,
    /// 401 with a (new, when stale) challenge.
    Challenge {
        stale: bool,
    },
}

impl DigestSim {
    fn new(username: String, password: String, qop: bool) -> DigestSim {
        let sim = DigestSim {
            username,
            password,
            qop,
            state: Mutex::new(DigestState::default()),
        };
        sim.renew();
        sim
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, DigestState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A new nonce; answers to the old one are stale from now on.
    fn renew(&self) {
        let mut st = self.lock();
        st.issued += 1;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        st.nonce = format!("{nanos:08x}{:08x}", st.issued);
        st.seen_nc.clear();
    }

    fn www_authenticate(&self, stale: bool) -> String {
        let mut st = self.lock();
        st.challenges += 1;
        let qop = if self.qop { r#"qop="auth", "# } else { "" };
        format!(
            r#"Digest realm="{REALM}", {qop}nonce="{}", stale={stale}"#,
            st.nonce
        )
    }

    fn check(&self, method: &str, uri: &str, authorization: Option<&str>) -> Verdict {
        use digest_auth::{AuthContext, AuthorizationHeader, HttpMethod, Qop};
        let refuse = Verdict::Challenge { stale: false };
        let Some(value) = authorization.and_then(|v| v.strip_prefix("Digest ")) else {
            return refuse;
        };
        let Ok(answer) = AuthorizationHeader::parse(value) else {
            return refuse;
        };
        if answer.username != self.username || answer.realm != REALM || answer.uri != uri {
            return refuse;
        }
        let mut expected = answer.clone();
        expected.digest(&AuthContext::new_with_method(
            self.username.as_str(),
            self.password.as_str(),
            uri,
            Option::<&[u8]>::None,
            HttpMethod(method.to_string().into()),
        ));
        if expected.response != answer.response {
            return refuse; // wrong password (or a tampered header)
        }
        let mut st = self.lock();
        if answer.nonce != st.nonce {
            // Right credentials, retired nonce: tell the client to retry, not to re-prompt.
            return Verdict::Challenge { stale: true };
        }
        if self.qop && (answer.qop != Some(Qop::AUTH) || !st.seen_nc.insert(answer.nc)) {
            return refuse;
        }
        Verdict::Pass
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
    digest: Option<Arc<DigestSim>>,
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
            digest: opts
                .digest
                .clone()
                .map(|(user, pass)| Arc::new(DigestSim::new(user, pass, opts.digest_qop))),
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

    /// Retire the digest nonce (as the printer does after a while or a reboot): the next
    /// answer to the old one gets `401 … stale=true` and a new nonce.
    pub fn expire_nonce(&self) {
        if let Some(d) = &self.shared.digest {
            d.renew();
        }
    }

    /// How many digest challenges (401s with `WWW-Authenticate`) the printer has sent.
    pub fn challenges(&self) -> u32 {
        self.shared
            .digest
            .as_ref()
            .map_or(0, |d| d.lock().challenges)
    }
}

async fn auth(State(s): State<Shared>, req: Request, next: Next) -> Response {
    if let Some(key) = &s.api_key
        && req.headers().get("X-Api-Key").and_then(|v| v.to_str().ok()) != Some(key.as_str())
    {
        return (StatusCode::UNAUTHORIZED, "Unauthorized").into_response();
    }
    if let Some(digest) = &s.digest {
        let uri = req.uri().path_and_query().map_or("/", |pq| pq.as_str());
        let authorization = req
            .headers()
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        if let Verdict::Challenge { stale } =
            digest.check(req.method().as_str(), uri, authorization)
        {
            let www = digest.www_authenticate(stale);
            return (
                StatusCode::UNAUTHORIZED,
                [(axum::http::header::WWW_AUTHENTICATE, www)],
                "401: Unauthorized",
            )
                .into_response();
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prusalink::digest::DigestLogin;

    /// The client's answer to the simulator's current challenge.
    fn answer(server: &DigestSim, login: &DigestLogin, method: &str, uri: &str) -> String {
        login
            .challenged(&server.www_authenticate(false), false)
            .expect("challenge parses");
        login.authorization(method, uri).expect("challenged")
    }

    #[test]
    fn digest_checks_password_uri_nonce_and_replays() {
        let server = DigestSim::new("maker".into(), "pw".into(), true);
        let good = DigestLogin::new("maker", "pw");
        let pass = Verdict::Pass;
        let refuse = Verdict::Challenge { stale: false };
        let header = answer(&server, &good, "GET", "/api/v1/status");
        assert_eq!(server.check("GET", "/api/v1/status", None), refuse);
        assert_eq!(server.check("GET", "/api/v1/status", Some(&header)), pass);
        // The same nc again is a replay; another method or path is another request.
        assert_eq!(server.check("GET", "/api/v1/status", Some(&header)), refuse);
        let next = good.authorization("GET", "/api/v1/status").expect("nc 2");
        assert_eq!(server.check("PUT", "/api/v1/status", Some(&next)), refuse);
        assert_eq!(server.check("GET", "/api/v1/job", Some(&next)), refuse);
        assert_eq!(server.check("GET", "/api/v1/status", Some(&next)), pass);
        let wrong = DigestLogin::new("maker", "nope");
        let header = answer(&server, &wrong, "GET", "/");
        assert_eq!(server.check("GET", "/", Some(&header)), refuse);
        let other_user = DigestLogin::new("admin", "pw");
        let header = answer(&server, &other_user, "GET", "/");
        assert_eq!(server.check("GET", "/", Some(&header)), refuse);
        // Right password on a retired nonce: stale, so the client retries without asking.
        let header = good.authorization("GET", "/").expect("nc 3");
        server.renew();
        assert_eq!(
            server.check("GET", "/", Some(&header)),
            Verdict::Challenge { stale: true }
        );
    }
}
