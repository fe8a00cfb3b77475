//! Klipper printers behind Moonraker.
//!
//! - [`status`]: Klipper's objects merged from the websocket, turned into a [`PrinterStatus`];
//!   when Farmhand's job ended ([`status::JobWatch`]). Pure, table-tested.
//! - [`api`]: the HTTP calls (upload, start, pause, resume, cancel), each a plain function.
//! - [`driver`]: the [`MoonrakerRunner`] task that owns the websocket
//!   (`printer.objects.subscribe`), reconnecting with back-off, and the [`MoonrakerHandle`].
//! - [`sim`]: an axum server that answers these calls like Moonraker (feature `sim`).
//!
//! Klipper prints from its own virtual SD card, so a lost websocket or a Farmhand restart does
//! not stop a print: the job stays tracked and the next subscription says where it got to.
//!
//! [`PrinterStatus`]: crate::PrinterStatus

pub mod api;
pub mod driver;
#[cfg(feature = "sim")]
pub mod sim;
pub mod status;

pub use driver::{MoonrakerConfig, MoonrakerHandle, MoonrakerRunner};
