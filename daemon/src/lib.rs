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
//! - [`mail`]: composing mail into the durable outbox, and delivering it.
//! - [`processing`]: the durable queue that analyses uploads and makes previews.
//! - [`service`]: systemd readiness, watchdog and stopping notifications.
//! - [`logging`]: journald under systemd, readable lines on stderr otherwise.
//! - [`app`]: wiring and [`app::run`], shared by `main` and the tests.
//! - [`cli`]: the client commands (`submit`, `jobs`, `printers`).
//! - [`tools`]: the offline commands (`analyze`, `convert`, `thumbnail`, `print`).

pub mod app;
pub mod cli;
pub mod config;
pub mod demo;
pub mod fleet;
pub mod http;
pub mod intake;
pub mod lifecycle;
pub mod logging;
pub mod mail;
pub mod model;
pub mod pages;
pub mod processing;
pub mod service;
pub mod store;
pub mod tools;
pub mod workflow;

pub use app::run;
