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
    let host = public_host(&public_url);
    let fleet = Arc::new(Fleet::start(&config, &host, tasks, shutdown).await);
    let composer = Arc::new(Composer::new(&config.email().from, &public_url)?);
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
    let tasks = TaskTracker::new();
    let (app, wakeups) = build(config, url, &tasks, &shutdown).await?;
    app.workflow.reconcile_on_start(Utc::now())?;
    for (printer, status) in app.fleet.receivers() {
        tasks.spawn(crate::fleet::track(
            printer,
            status,
            app.store.clone(),
            app.workflow.clone(),
            shutdown.clone(),
        ));
    }
    tasks.spawn(mail::run_outbox(
        app.store.clone(),
        wakeups.mail,
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
    let router = crate::http::router(app);
    let serve =
        axum::serve(listener, router).with_graceful_shutdown(shutdown.clone().cancelled_owned());
    let result = serve.await.map_err(RunError::Serve);
    shutdown.cancel();
    tasks.close();
    tasks.wait().await;
    result
}
