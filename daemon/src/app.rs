//! The daemon as a library: [`run`] takes a config, a bound listener and a shutdown
//! token (as mini-redis's `server::run` does), so `main` and the tests start the very
//! same thing.

use std::sync::Arc;

use chrono::Utc;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Config;
use crate::fleet::Fleet;
use crate::http::auth::Auth;
use crate::mail::{self, Composer, MailError};
use crate::processing;
use crate::store::{Store, StoreError};
use crate::workflow::{Workflow, WorkflowError};

/// Everything handlers share.
pub struct App {
    pub config: Arc<Config>,
    pub store: Store,
    pub workflow: Workflow,
    pub auth: Auth,
    pub pages: minijinja::Environment<'static>,
    pub public_url: String,
    pub fleet: Arc<Fleet>,
    /// Makes and checks the students' status-page links.
    pub status_links: crate::status_link::StatusLinks,
    /// The per-address limit on the confirmation endpoints.
    pub link_limiter: crate::http::ratelimit::LinkLimiter,
    /// Where mail goes (SMTP or `.eml` files).
    pub mail_transport: Arc<mail::Transport>,
    /// HTTP latencies for `GET /metrics`.
    pub http_metrics: crate::http::metrics::HttpMetrics,
    /// The kiosks' signed-in sessions (`http::web::session`).
    pub sessions: crate::http::web::session::Sessions,
}

/// Why the daemon could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Setup(#[from] WorkflowError),
    #[error("e-mail settings: {0}")]
    Mail(#[from] MailError),
    #[error("cloud sync settings: {0}")]
    Sync(#[from] crate::sync::SyncError),
    #[error("the HTTP server failed: {0}")]
    Serve(std::io::Error),
}

/// Wake-ups for the background workers, poked after commits that give them work.
pub struct Wakeups {
    pub mail: Arc<Notify>,
    pub processing: Arc<Notify>,
}

/// Opens the store, starts the printer drivers and builds the shared state.
pub async fn build(
    config: Config,
    public_url: String,
    tasks: &TaskTracker,
    shutdown: &CancellationToken,
) -> Result<(Arc<App>, Wakeups), RunError> {
    let config = Arc::new(config);
    let store = Store::open(&config.storage.data_dir)?;
    let store = match config.sync {
        Some(_) => store.with_sync_outbox(),
        None => store,
    };
    let host = public_host(&public_url);
    let fleet = Arc::new(Fleet::start(&config, &host, tasks, shutdown).await);
    let email = config.email();
    let status_links = crate::status_link::StatusLinks::new(
        store.secret(crate::status_link::StatusLinks::SECRET_NAME)?,
    );
    let composer = Arc::new(Composer::new(&email, &public_url, status_links.clone())?);
    let mail_transport = Arc::new(mail::Transport::from_config(
        &email,
        &config.storage.data_dir,
    )?);
    let wakeups = Wakeups {
        mail: Arc::new(Notify::new()),
        processing: Arc::new(Notify::new()),
    };
    let workflow = Workflow::new(
        store.clone(),
        config.clone(),
        composer,
        wakeups.mail.clone(),
        wakeups.processing.clone(),
        fleet.clone(),
    );
    workflow.seed(Utc::now())?;
    let auth = Auth::new(store.workstations()?);
    let app = App {
        config,
        store,
        workflow,
        auth,
        pages: crate::pages::environment(),
        public_url,
        fleet,
        status_links,
        link_limiter: crate::http::ratelimit::LinkLimiter::new(email.confirm_requests_per_minute),
        mail_transport,
        http_metrics: Default::default(),
        sessions: Default::default(),
    };
    Ok((Arc::new(app), wakeups))
}

/// The host part of a URL (`http://host:port/…` → `host`), where printers reach us.
fn public_host(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split('/').next().unwrap_or(rest);
    match authority.rsplit_once(':') {
        Some((host, port)) if port.chars().all(|c| c.is_ascii_digit()) => host.to_string(),
        _ => authority.to_string(),
    }
}

/// The base URL for links: the configured one, or the address actually bound.
pub fn public_url(config: &Config, listener: &TcpListener) -> String {
    match (&config.server.public_url, listener.local_addr()) {
        (Some(url), _) => url.trim_end_matches('/').to_string(),
        (None, Ok(addr)) => format!("http://{addr}"),
        (None, Err(_)) => format!("http://{}", config.server.listen),
    }
}

/// Runs the daemon on `listener` until `shutdown` is cancelled, then waits for every
/// task to reach a safe point.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<(), RunError> {
    let url = public_url(&config, &listener);
    let bucket = config
        .sync
        .as_ref()
        .map(crate::sync::bucket::Bucket::open)
        .transpose()?;
    let tasks = TaskTracker::new();
    let (app, wakeups) = build(config, url, &tasks, &shutdown).await?;
    let reattach = app.workflow.reconcile_on_start(Utc::now())?;
    for (printer, status) in app.fleet.receivers() {
        let options = crate::tracker::TrackOptions {
            store: app.store.clone(),
            workflow: app.workflow.clone(),
            grace: app.config.dispatch.grace(),
            reattach: reattach.get(&printer).cloned(),
            printer_events_per_s: app.config.dispatch.printer_events_per_s,
        };
        tasks.spawn(crate::tracker::track(
            printer,
            status,
            options,
            shutdown.clone(),
        ));
    }
    tasks.spawn(crate::scheduler::run(app.clone(), shutdown.clone()));
    tasks.spawn(mail::run_outbox(
        app.store.clone(),
        app.mail_transport.clone(),
        wakeups.mail,
        shutdown.clone(),
    ));
    tasks.spawn(crate::workflow::mail::run(
        app.workflow.clone(),
        shutdown.clone(),
    ));
    let workers = app
        .config
        .processing
        .workers
        .unwrap_or_else(processing::default_workers);
    tasks.spawn(processing::run(
        app.store.clone(),
        app.config.clone(),
        wakeups.processing,
        workers,
        shutdown.clone(),
    ));
    if let (Some(sync), Some(bucket)) = (&app.config.sync, bucket) {
        if sync.inbox {
            tasks.spawn(crate::sync::inbox::run(
                app.clone(),
                bucket.clone(),
                std::time::Duration::from_secs(sync.inbox_interval_s),
                shutdown.clone(),
            ));
        }
        tasks.spawn(crate::sync::worker::run(
            app.store.clone(),
            sync.clone(),
            bucket,
            shutdown.clone(),
        ));
    }
    // The store is open and the port bound: tell systemd (READY=1, watchdog, STOPPING=1).
    crate::service::started(&app.store, &tasks, &shutdown);
    let router = crate::http::router(app);
    // The peer address feeds the per-address rate limit on the students' links.
    let router = router.into_make_service_with_connect_info::<std::net::SocketAddr>();
    let serve =
        axum::serve(listener, router).with_graceful_shutdown(shutdown.clone().cancelled_owned());
    let result = serve.await.map_err(RunError::Serve);
    shutdown.cancel();
    tasks.close();
    tasks.wait().await;
    result
}
