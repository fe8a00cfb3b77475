//! A simulated Klipper + Moonraker: an axum server answering the calls Farmhand makes
//! (`/server/files/upload`, `/printer/print/{start,pause,resume,cancel}`, and the websocket's
//! `printer.objects.subscribe` followed by `notify_status_update` pushes), with an optional
//! `X-Api-Key`. Prints take the slicer's estimate scaled by `time_scale`.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use drivers::moonraker::sim::{MoonrakerSim, MoonrakerSimOptions};
//! let sim = MoonrakerSim::spawn(MoonrakerSimOptions::default()).await?;
//! println!("farmhand print --driver moonraker --url {} cube.gcode", sim.url());
//! # Ok(()) }
//! ```

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{DefaultBodyLimit, Multipart, Path, Query, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use tokio::sync::{broadcast, watch};
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::mqtt::sim::printer::{Plan, plan_for};

/// How the simulated Moonraker behaves.
#[derive(Debug, Clone)]
pub struct MoonrakerSimOptions {
    /// Real seconds per simulated second (0.001 = 1000× faster).
    pub time_scale: f64,
    /// Interval of `notify_status_update` pushes while printing.
    pub report_every: Duration,
    /// Demand this `X-Api-Key` on every request (HTTP and websocket).
    pub api_key: Option<String>,
}

impl Default for MoonrakerSimOptions {
    fn default() -> Self {
        Self {
            time_scale: 1.0,
            report_every: Duration::from_millis(250),
            api_key: None,
        }
    }
}

#[derive(Debug, Clone)]
struct Job {
    plan: Plan,
    size: u64,
    elapsed_s: f64,
}

/// Klipper's print state, as `print_stats` spells it.
#[derive(Debug)]
struct Machine {
    files: HashMap<String, (Plan, u64)>,
    job: Option<Job>,
    state: &'static str,
    filename: String,
    message: String,
}

impl Machine {
    fn start(&mut self, filename: &str) -> Result<(), String> {
        if matches!(self.state, "printing" | "paused") {
            return Err("Print is already in progress".into());
        }
        let Some((plan, size)) = self.files.get(filename).copied() else {
            return Err(format!("File {filename} does not exist"));
        };
        self.job = Some(Job {
            plan,
            size,
            elapsed_s: 0.0,
        });
        self.state = "printing";
        self.filename = filename.into();
        self.message.clear();
        Ok(())
    }

    fn act(&mut self, action: &str) -> Result<(), String> {
        match (action, self.state) {
            ("pause", "printing") => self.state = "paused",
            ("resume", "paused") => self.state = "printing",
            ("cancel", "printing" | "paused") => self.state = "cancelled",
            (_, state) => return Err(format!("Cannot {action} while {state}")),
        }
        Ok(())
    }

    fn advance(&mut self, sim_s: f64) {
        if self.state != "printing" {
            return;
        }
        if let Some(job) = &mut self.job {
            job.elapsed_s += sim_s;
            if job.elapsed_s >= job.plan.total_s {
                job.elapsed_s = job.plan.total_s;
                self.state = "complete";
            }
        }
    }

    fn fail(&mut self, reason: &str) {
        self.state = "error";
        self.message = reason.into();
    }

    /// The subscribed objects; `full` adds the heaters (sent once, at subscription).
    fn objects(&self, full: bool) -> Value {
        let (frac, layers, pos, size, duration) = match &self.job {
            Some(j) => {
                let frac = (j.elapsed_s / j.plan.total_s).clamp(0.0, 1.0);
                let layer = j
                    .plan
                    .layers
                    .map(|n| ((frac * f64::from(n)) as u32 + 1).min(n));
                (
                    frac,
                    json!({"current_layer": layer, "total_layer": j.plan.layers}),
                    (frac * j.size as f64) as u64,
                    j.size,
                    j.elapsed_s,
                )
            }
            None => (0.0, json!({}), 0, 0, 0.0),
        };
        let mut o = json!({
            "print_stats": {"state": self.state, "filename": self.filename, "message": self.message,
                            "print_duration": duration, "info": layers},
            "virtual_sdcard": {"progress": frac, "file_position": pos, "file_size": size,
                               "is_active": self.state == "printing"},
            "display_status": {"progress": frac, "message": null},
        });
        if full {
            let heating = matches!(self.state, "printing" | "paused");
            let (e, b) = if heating { (210.0, 60.0) } else { (0.0, 0.0) };
            o["extruder"] = json!({"temperature": f64::max(e, 24.0), "target": e});
            o["heater_bed"] = json!({"temperature": f64::max(b, 24.0), "target": b});
        }
        o
    }
}

#[derive(Clone)]
struct Shared {
    m: Arc<Mutex<Machine>>,
    updates: broadcast::Sender<String>,
    kick: watch::Receiver<u64>,
    api_key: Option<String>,
}

impl Shared {
    fn with<T>(&self, f: impl FnOnce(&mut Machine) -> T) -> T {
        let mut m = self.m.lock().unwrap_or_else(|p| p.into_inner());
        let out = f(&mut m);
        let note = json!({"jsonrpc": "2.0", "method": "notify_status_update",
                          "params": [m.objects(false), 0.0]});
        let _ = self.updates.send(note.to_string());
        out
    }
}

/// Entry point: see [`MoonrakerSim::spawn`].
pub struct MoonrakerSim;

impl MoonrakerSim {
    /// Serve on `127.0.0.1` (a free port) until the handle is dropped.
    pub async fn spawn(opts: MoonrakerSimOptions) -> std::io::Result<MoonrakerSimHandle> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let url = format!("http://{}", listener.local_addr()?);
        let (kick_tx, kick) = watch::channel(0u64);
        let shared = Shared {
            m: Arc::new(Mutex::new(Machine {
                files: HashMap::new(),
                job: None,
                state: "standby",
                filename: String::new(),
                message: String::new(),
            })),
            updates: broadcast::channel(64).0,
            kick,
            api_key: opts.api_key.clone(),
        };
        let app = axum::Router::new()
            .route("/server/files/upload", post(upload))
            .route("/printer/print/start", post(start))
            .route("/printer/print/{action}", post(action))
            .route("/websocket", get(websocket))
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
        tokio::spawn(clock(shared.clone(), opts, stop.clone()));
        Ok(MoonrakerSimHandle {
            url,
            shared,
            kick: kick_tx,
            _stop: stop.drop_guard(),
        })
    }
}

/// The running simulator; dropping it stops the server.
pub struct MoonrakerSimHandle {
    url: String,
    shared: Shared,
    kick: watch::Sender<u64>,
    _stop: DropGuard,
}

impl MoonrakerSimHandle {
    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Klipper shuts the print down with `reason` (`print_stats.state = "error"`).
    pub fn fail(&self, reason: &str) {
        self.shared.with(|m| m.fail(reason));
    }

    /// Close every websocket (Moonraker restarting); clients must reconnect and resubscribe.
    pub fn drop_websockets(&self) {
        self.kick.send_modify(|n| *n += 1);
    }

    /// `print_stats.state` right now.
    pub fn print_state(&self) -> &'static str {
        self.shared.m.lock().map(|m| m.state).unwrap_or("error")
    }
}

async fn clock(shared: Shared, opts: MoonrakerSimOptions, stop: CancellationToken) {
    let mut tick = tokio::time::interval(opts.report_every);
    let mut last = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            now = tick.tick() => {
                let real = now.duration_since(last).as_secs_f64();
                last = now;
                let sim_s = if opts.time_scale > 0.0 { real / opts.time_scale } else { f64::INFINITY };
                shared.with(|m| m.advance(sim_s));
            }
        }
    }
}

async fn auth(State(s): State<Shared>, req: Request, next: Next) -> Response {
    if let Some(key) = &s.api_key {
        let given = req.headers().get("X-Api-Key").and_then(|v| v.to_str().ok());
        if given != Some(key.as_str()) {
            return rpc_error(StatusCode::UNAUTHORIZED, "Unauthorized");
        }
    }
    next.run(req).await
}

fn rpc_error(code: StatusCode, message: &str) -> Response {
    let body = json!({"error": {"code": code.as_u16(), "message": message}});
    (code, axum::Json(body)).into_response()
}

fn ok() -> Response {
    axum::Json(json!({"result": "ok"})).into_response()
}

async fn upload(State(s): State<Shared>, mut form: Multipart) -> Response {
    while let Ok(Some(field)) = form.next_field().await {
        if field.name() != Some("file") {
            continue;
        }
        let name = field.file_name().unwrap_or("upload.gcode").to_string();
        let Ok(bytes) = field.bytes().await else {
            return rpc_error(StatusCode::BAD_REQUEST, "upload broke off");
        };
        let plan = plan_for(&String::from_utf8_lossy(&bytes));
        s.with(|m| m.files.insert(name.clone(), (plan, bytes.len() as u64)));
        let item = json!({"item": {"path": name, "root": "gcodes"}, "action": "create_file"});
        return (StatusCode::CREATED, axum::Json(item)).into_response();
    }
    rpc_error(StatusCode::BAD_REQUEST, "No file to upload")
}

async fn start(State(s): State<Shared>, Query(q): Query<HashMap<String, String>>) -> Response {
    let Some(name) = q.get("filename") else {
        return rpc_error(StatusCode::BAD_REQUEST, "No data for argument: filename");
    };
    match s.with(|m| m.start(name)) {
        Ok(()) => ok(),
        Err(e) => rpc_error(StatusCode::BAD_REQUEST, &e),
    }
}

async fn action(State(s): State<Shared>, Path(action): Path<String>) -> Response {
    if !matches!(action.as_str(), "pause" | "resume" | "cancel") {
        return rpc_error(StatusCode::NOT_FOUND, "Not Found");
    }
    match s.with(|m| m.act(&action)) {
        Ok(()) => ok(),
        Err(e) => rpc_error(StatusCode::BAD_REQUEST, &e),
    }
}

async fn websocket(State(s): State<Shared>, ws: WebSocketUpgrade) -> Response {
    ws.on_upgrade(move |socket| session(socket, s))
}

async fn session(mut socket: WebSocket, s: Shared) {
    let mut updates = s.updates.subscribe();
    let mut kick = s.kick.clone();
    kick.mark_unchanged();
    let mut subscribed = false;
    loop {
        let out = tokio::select! {
            _ = kick.changed() => break,
            msg = socket.recv() => match msg {
                Some(Ok(Message::Text(t))) => match serde_json::from_str::<Value>(t.as_str()) {
                    Ok(req) if req["method"] == "printer.objects.subscribe" => {
                        subscribed = true;
                        let status = s.m.lock().map(|m| m.objects(true)).unwrap_or_default();
                        json!({"jsonrpc": "2.0", "result": {"eventtime": 0.0, "status": status},
                               "id": req["id"]})
                    }
                    Ok(req) => json!({"jsonrpc": "2.0", "id": req["id"],
                                      "error": {"code": -32601, "message": "Method not found"}}),
                    Err(_) => continue,
                },
                Some(Ok(_)) => continue,
                _ => break,
            },
            note = updates.recv() => match note {
                Ok(n) if subscribed => {
                    if socket.send(Message::Text(n.into())).await.is_err() { break }
                    continue;
                }
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(_) => break,
            },
        };
        if socket
            .send(Message::Text(out.to_string().into()))
            .await
            .is_err()
        {
            break;
        }
    }
}
