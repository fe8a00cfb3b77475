//! The PrusaLink driver: the handle makes the HTTP calls that change things, the runner polls
//! `GET /api/v1/status` (and `/api/v1/job` while a job of ours runs) and owns the status.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use reqwest::header::{HeaderMap, HeaderValue};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

use super::digest::{AfterChallenge, DigestLogin};
use super::status::{JobDoc, JobWatch, StatusDoc};
use crate::mqtt::files::url_safe_name;
use crate::{BoxFuture, DriverError, PrintOutcome, Printer, PrinterState, PrinterStatus};

/// One PrusaLink printer (config keys `url`, and `api_key` or `username` + `password`).
#[derive(Debug, Clone)]
pub struct PrusaLinkConfig {
    /// e.g. `http://192.168.1.60`
    pub url: String,
    pub api_key: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub poll_every: Duration,
    pub connect_timeout: Duration,
    /// How long the printer may take to show an uploaded file as its job.
    pub start_timeout: Duration,
    pub auto_connect: bool,
}

impl PrusaLinkConfig {
    pub fn new(url: impl Into<String>, api_key: Option<String>) -> Self {
        Self {
            url: url.into(),
            api_key,
            username: None,
            password: None,
            poll_every: Duration::from_secs(1),
            connect_timeout: Duration::from_secs(10),
            start_timeout: Duration::from_secs(60),
            auto_connect: true,
        }
    }
}

type Reply = oneshot::Sender<Result<(), DriverError>>;

#[derive(Debug)]
enum Command {
    Connect(Reply),
    Disconnect(Reply),
    Watch(String, Reply),
    Unwatch(String),
    JobId(oneshot::Sender<Option<u64>>),
}

#[derive(Debug, Clone)]
struct Api {
    base: String,
    http: reqwest::Client,
    /// Digest login (`username`/`password`), when not logging in with `api_key`.
    login: Option<Arc<DigestLogin>>,
}

impl Api {
    fn printer(&self) -> String {
        format!("PrusaLink at {}", self.base)
    }

    async fn call(
        &self,
        req: reqwest::RequestBuilder,
        what: &str,
    ) -> Result<reqwest::Response, DriverError> {
        let err = |reason: String, hint: &str| DriverError::Http {
            printer: self.printer(),
            what: what.to_string(),
            reason,
            hint: hint.into(),
        };
        let unreachable = "check the url and that the printer is on";
        let request = req.build().map_err(|e| err(e.to_string(), unreachable))?;
        // A first challenge, then at most one renewed (stale) nonce.
        let mut attempts = 0;
        let resp = loop {
            attempts += 1;
            // Our bodies are bytes in memory, which reqwest can always copy.
            let mut attempt = request
                .try_clone()
                .ok_or_else(|| err("the request body cannot be re-sent".into(), unreachable))?;
            let sent_credentials = self.sign(&mut attempt);
            let resp = self
                .http
                .execute(attempt)
                .await
                .map_err(|e| err(e.to_string(), unreachable))?;
            let Some(login) = &self.login else { break resp };
            if resp.status() != StatusCode::UNAUTHORIZED || attempts >= 3 {
                break resp;
            }
            let www = resp
                .headers()
                .get(reqwest::header::WWW_AUTHENTICATE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            match login.challenged(&www, sent_credentials) {
                Ok(AfterChallenge::Retry) => continue,
                Ok(AfterChallenge::Refused) => break resp,
                Err(e) => return Err(err(format!("401 Unauthorized: {e}"), &self.auth_hint())),
            }
        };
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let body = resp.text().await.unwrap_or_default();
        let hint = match status {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => self.auth_hint(),
            StatusCode::CONFLICT => {
                "the printer is busy or the file exists: check its screen".into()
            }
            _ => "see the message; the printer's state may not allow this now".into(),
        };
        Err(err(format!("{status}: {}", body.trim()), &hint))
    }

    /// Adds the digest `Authorization` when we log in with a password and the printer has
    /// challenged us; whether it did.
    fn sign(&self, request: &mut reqwest::Request) -> bool {
        let Some(login) = &self.login else {
            return false;
        };
        let url = request.url();
        let uri = match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_string(),
        };
        let Some(value) = login
            .authorization(request.method().as_str(), &uri)
            .and_then(|v| HeaderValue::from_str(&v).ok())
        else {
            return false;
        };
        request
            .headers_mut()
            .insert(reqwest::header::AUTHORIZATION, value);
        true
    }

    fn auth_hint(&self) -> String {
        match &self.login {
            Some(login) => format!(
                "the printer refused username {:?} with this password (digest login): check \
                 username and password in the printer's Settings → Network → PrusaLink",
                login.username()
            ),
            None => "set api_key to the key shown in the printer's Settings → Network → PrusaLink"
                .into(),
        }
    }
}

/// Cheap to clone; every clone talks to the same runner.
#[derive(Clone, Debug)]
pub struct PrusaLinkHandle {
    api: Api,
    cmd_tx: mpsc::Sender<Command>,
    status_rx: watch::Receiver<PrinterStatus>,
}

/// Polls the printer; see the module documentation.
pub struct PrusaLinkRunner {
    cfg: PrusaLinkConfig,
    api: Api,
    cmd_rx: mpsc::Receiver<Command>,
    cmds_open: bool,
    status_tx: watch::Sender<PrinterStatus>,
    last: Option<StatusDoc>,
    link_error: Option<String>,
    job: Option<JobWatch>,
    outcome: Option<PrintOutcome>,
    want_connected: bool,
    connect_waiters: Vec<(Reply, Instant)>,
}

impl PrusaLinkHandle {
    pub fn new(cfg: PrusaLinkConfig) -> Result<(PrusaLinkHandle, PrusaLinkRunner), DriverError> {
        let base = cfg.url.trim_end_matches('/').to_string();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(DriverError::InvalidSetting {
                key: "url",
                value: cfg.url.clone(),
                hint: "it must look like http://192.168.1.60".into(),
            });
        }
        let mut headers = HeaderMap::new();
        let mut login = None;
        match (&cfg.api_key, &cfg.username) {
            (Some(key), _) => {
                let v = HeaderValue::from_str(key).map_err(|_| DriverError::InvalidSetting {
                    key: "api_key",
                    value: "(hidden)".into(),
                    hint: "copy the key from the printer's settings again".into(),
                })?;
                headers.insert("X-Api-Key", v);
            }
            (None, Some(user)) => {
                let Some(password) = &cfg.password else {
                    return Err(DriverError::InvalidSetting {
                        key: "password",
                        value: String::new(),
                        hint: format!(
                            "digest login as {user:?} needs the password too (the printer's Settings → Network → PrusaLink)"
                        ),
                    });
                };
                login = Some(Arc::new(DigestLogin::new(user.clone(), password.clone())));
            }
            (None, None) => {}
        }
        let http = reqwest::Client::builder()
            .default_headers(headers)
            .connect_timeout(cfg.connect_timeout)
            .build()
            .map_err(|e| DriverError::InvalidSetting {
                key: "url",
                value: cfg.url.clone(),
                hint: e.to_string(),
            })?;
        let api = Api { base, http, login };
        let (cmd_tx, cmd_rx) = mpsc::channel(32);
        let (status_tx, status_rx) = watch::channel(PrinterStatus::default());
        let runner = PrusaLinkRunner {
            want_connected: cfg.auto_connect,
            cfg,
            api: api.clone(),
            cmd_rx,
            cmds_open: true,
            status_tx,
            last: None,
            link_error: None,
            job: None,
            outcome: None,
            connect_waiters: Vec::new(),
        };
        Ok((
            Self {
                api,
                cmd_tx,
                status_rx,
            },
            runner,
        ))
    }

    async fn request(&self, make: impl FnOnce(Reply) -> Command) -> Result<(), DriverError> {
        let (tx, rx) = oneshot::channel();
        self.cmd_tx
            .send(make(tx))
            .await
            .map_err(|_| DriverError::DriverStopped)?;
        rx.await.map_err(|_| DriverError::DriverStopped)?
    }

    async fn start(&self, file: PathBuf) -> Result<(), DriverError> {
        let state = self.status_rx.borrow().state;
        if state != PrinterState::Idle {
            return Err(DriverError::WrongState {
                state: if state == PrinterState::Offline {
                    "offline"
                } else {
                    "busy"
                },
                wanted: "idle",
                hint: "connect the printer, clear its bed and let it report idle first",
            });
        }
        let bytes = tokio::fs::read(&file)
            .await
            .map_err(|e| DriverError::File {
                path: file.clone(),
                reason: e.to_string(),
            })?;
        let name = url_safe_name(&file);
        self.request(|r| Command::Watch(name.clone(), r)).await?;
        let req = self
            .api
            .http
            .put(format!("{}/api/v1/files/usb/{name}", self.api.base))
            .header("Print-After-Upload", "1")
            .header("Overwrite", "1")
            .body(bytes);
        if let Err(e) = self.api.call(req, "the upload").await {
            let _ = self.cmd_tx.send(Command::Unwatch(name)).await;
            return Err(e);
        }
        Ok(())
    }

    async fn job_call(&self, method: reqwest::Method, suffix: &str) -> Result<(), DriverError> {
        let (tx, rx) = oneshot::channel();
        self.cmd_tx
            .send(Command::JobId(tx))
            .await
            .map_err(|_| DriverError::DriverStopped)?;
        let Some(id) = rx.await.map_err(|_| DriverError::DriverStopped)? else {
            return Err(DriverError::WrongState {
                state: "idle",
                wanted: "printing",
                hint: "the printer has no job right now",
            });
        };
        let url = format!("{}/api/v1/job/{id}{suffix}", self.api.base);
        let what = if suffix.is_empty() {
            "stop"
        } else {
            &suffix[1..]
        };
        self.api
            .call(self.api.http.request(method, url), what)
            .await
            .map(drop)
    }
}

impl Printer for PrusaLinkHandle {
    fn connect(&self) -> BoxFuture<'_, Result<(), DriverError>> {
        Box::pin(self.request(Command::Connect))
    }
    fn status(&self) -> watch::Receiver<PrinterStatus> {
        self.status_rx.clone()
    }
    fn start_job(&self, file: PathBuf) -> BoxFuture<'_, Result<(), DriverError>> {
        Box::pin(self.start(file))
    }
    fn pause(&self) -> BoxFuture<'_, Result<(), DriverError>> {
        Box::pin(self.job_call(reqwest::Method::PUT, "/pause"))
    }
    fn resume(&self) -> BoxFuture<'_, Result<(), DriverError>> {
        Box::pin(self.job_call(reqwest::Method::PUT, "/resume"))
    }
    fn cancel(&self) -> BoxFuture<'_, Result<(), DriverError>> {
        Box::pin(self.job_call(reqwest::Method::DELETE, ""))
    }
    fn disconnect(&self) -> BoxFuture<'_, Result<(), DriverError>> {
        Box::pin(self.request(Command::Disconnect))
    }
}

impl PrusaLinkRunner {
    /// Run until `shutdown` is cancelled, polling every `poll_every` while connected.
    pub async fn run(mut self, shutdown: CancellationToken) {
        loop {
            if self.want_connected {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    r = self.poll() => self.polled(r),
                }
            }
            self.tick(Instant::now());
            self.publish();
            let next = tokio::time::sleep(self.cfg.poll_every);
            tokio::pin!(next);
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => {
                        self.last = None;
                        self.link_error = Some("farmhand stopped".into());
                        self.publish();
                        return;
                    }
                    _ = &mut next => break,
                    cmd = self.cmd_rx.recv(), if self.cmds_open => match cmd {
                        None => self.cmds_open = false,
                        Some(cmd) => if self.command(cmd) { break },
                    },
                }
            }
        }
    }

    async fn poll(&self) -> Result<(StatusDoc, Option<JobDoc>), DriverError> {
        let get = |path: &str| self.api.http.get(format!("{}{path}", self.api.base));
        let resp = self
            .api
            .call(get("/api/v1/status"), "a status poll")
            .await?;
        let bad = |e: reqwest::Error| DriverError::Http {
            printer: self.api.printer(),
            what: "a status poll".into(),
            reason: e.to_string(),
            hint: "is this a PrusaLink printer (firmware with the v1 API)?".into(),
        };
        let status: StatusDoc = resp.json().await.map_err(bad)?;
        let job = if self.job.is_some() {
            let resp = self.api.call(get("/api/v1/job"), "a job poll").await?;
            if resp.status() == StatusCode::NO_CONTENT {
                None
            } else {
                Some(resp.json::<JobDoc>().await.map_err(bad)?)
            }
        } else {
            None
        };
        Ok((status, job))
    }

    fn polled(&mut self, r: Result<(StatusDoc, Option<JobDoc>), DriverError>) {
        match r {
            Ok((status, job)) => {
                if let Some(w) = self.job.as_mut()
                    && let Some(out) = w.observe(&status, job.as_ref())
                {
                    self.outcome = Some(out);
                    self.job = None;
                }
                self.last = Some(status);
                self.link_error = None;
                self.publish();
                for (w, _) in self.connect_waiters.drain(..) {
                    let _ = w.send(Ok(()));
                }
            }
            Err(e) => {
                self.last = None;
                let auth = matches!(&e, DriverError::Http { reason, .. }
                    if reason.starts_with("401") || reason.starts_with("403"));
                if auth {
                    for (w, _) in self.connect_waiters.drain(..) {
                        let _ = w.send(Err(e.clone()));
                    }
                }
                self.link_error = Some(e.to_string());
            }
        }
    }

    fn tick(&mut self, now: Instant) {
        if let Some(out) = self
            .job
            .as_ref()
            .and_then(|j| j.expired(now, self.cfg.start_timeout))
        {
            self.outcome = Some(out);
            self.job = None;
        }
        let (due, waiting): (Vec<_>, Vec<_>) = self
            .connect_waiters
            .drain(..)
            .partition(|(_, at)| *at <= now);
        self.connect_waiters = waiting;
        for (w, _) in due {
            let _ = w.send(Err(DriverError::NotAnswering {
                printer: self.api.printer(),
                waited: self.cfg.connect_timeout,
                hint: self
                    .link_error
                    .clone()
                    .unwrap_or_else(|| "check the url and that the printer is on".into()),
            }));
        }
    }

    /// Returns true when the runner should poll now.
    fn command(&mut self, cmd: Command) -> bool {
        match cmd {
            Command::Connect(reply) => {
                self.want_connected = true;
                if self.last.is_some() {
                    let _ = reply.send(Ok(()));
                    return false;
                }
                self.connect_waiters
                    .push((reply, Instant::now() + self.cfg.connect_timeout));
                true
            }
            Command::Disconnect(reply) => {
                self.want_connected = false;
                self.last = None;
                self.link_error = Some("disconnected on request".into());
                self.publish();
                let _ = reply.send(Ok(()));
                false
            }
            Command::Watch(name, reply) => {
                let previous = self
                    .last
                    .as_ref()
                    .and_then(|s| s.job.as_ref())
                    .map(|j| j.id);
                self.job = Some(JobWatch::new(name, previous, Instant::now()));
                self.outcome = None;
                self.publish();
                let _ = reply.send(Ok(()));
                false
            }
            Command::Unwatch(name) => {
                if self.job.as_ref().is_some_and(|j| j.filename == name) {
                    self.job = None;
                }
                self.publish();
                false
            }
            Command::JobId(reply) => {
                let id = self
                    .last
                    .as_ref()
                    .and_then(|s| s.job.as_ref())
                    .map(|j| j.id);
                let _ = reply.send(id.or(self.job.as_ref().and_then(|j| j.id)));
                false
            }
        }
    }

    fn status(&self) -> PrinterStatus {
        let mut s = match &self.last {
            Some(doc) => doc.to_status(),
            None => PrinterStatus {
                state: PrinterState::Offline,
                error: self.link_error.clone(),
                ..PrinterStatus::default()
            },
        };
        if self.job.is_some() && s.state == PrinterState::Idle {
            s.state = PrinterState::Printing;
            s.job = Some(crate::JobProgress::default());
        }
        if let Some(PrintOutcome::Failed { reason }) = &self.outcome
            && s.error.is_none()
        {
            s.error = Some(reason.clone());
        }
        s.last_outcome = self.outcome.clone();
        s
    }

    fn publish(&self) {
        let now = self.status();
        self.status_tx.send_if_modified(|s| {
            let changed = *s != now;
            if changed {
                *s = now;
            }
            changed
        });
    }
}
