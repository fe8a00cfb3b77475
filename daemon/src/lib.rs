//! Farmhand: the print-farm controller daemon.
//!
//! Layout (data flows top to bottom):
//!
//! - [`config`]: the typed, strict configuration.
//! - [`http`]: the axum server; each component registers its routes.
//! - [`intake`]: streaming uploads to disk while hashing.
//! - [`workflow`]: every change, each in one store transaction.
//! - [`lifecycle`]: the pure job state machine (`apply`).
//! - [`store`]: redb tables and the content-addressed blob folder.
//! - [`fleet`]: the connected printers' drivers, and the tracker that turns their status
//!   into job progress and outcomes.
//! - [`tracker`]: one task per connected printer turning its status into job outcomes.
//! - [`scheduler`]: the pure dispatch decision and the task that carries it out;
//!   [`dispatch`] hands a dispatched job to its driver; [`dispatch_config`] the policies.
//! - [`live`]: the broadcast of job and printer changes behind `GET /api/v1/stream`.
//! - [`mail`]: composing mail into the durable outbox, and delivering it.
//! - [`status_link`]: the HMAC tokens of the students' status-page links.
//! - [`processing`]: the durable queue that analyses uploads and makes previews.
//! - [`sync`]: the cloud copy: outbox worker, bucket layout, `restore`.
//! - [`service`]: systemd readiness, watchdog and stopping notifications.
//! - [`logging`]: journald under systemd, readable lines on stderr otherwise.
//! - [`app`]: wiring and [`app::run`], shared by `main` and the tests.
//! - [`cli`]: the client commands (`submit`, `jobs`, `printers`).
//! - [`tools`]: the offline commands (`analyze`, `convert`, `thumbnail`, `print`).

pub mod app;
pub mod cli;
pub mod config;
pub mod demo;
pub mod dispatch;
pub mod dispatch_config;
pub mod fleet;
pub mod http;
pub mod intake;
pub mod lifecycle;
pub mod live;
pub mod logging;
pub mod mail;
pub mod model;
pub mod pages;
pub mod processing;
pub mod scheduler;
pub mod service;
pub mod status_link;
pub mod store;
pub mod sync;
pub mod tools;
pub mod tracker;
pub mod workflow;

pub use app::run;
