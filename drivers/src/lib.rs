//! Printer drivers for Farmhand: one module per protocol behind the [`Printer`] trait, each with
//! a simulator that speaks the real protocol over the real transport.
//!
//! Layout:
//! - [`Printer`] and the optional-ability traits ([`SdCard`], [`Console`]) are all the daemon
//!   knows about a printer; [`PrinterStatus`] is what every driver reports.
//! - [`marlin`] drives Marlin-compatible firmware over a serial port. Its protocol logic
//!   (`marlin::protocol`) is a pure state machine; one task (`marlin::driver`) owns the port.
//! - `marlin::sim` (default feature `sim`) is a Marlin firmware simulator on a real
//!   pseudo-terminal, used by the tests, the benchmark and `farmhand demo`.
//! - [`mqtt`] drives generic JSON-over-MQTT printers (`docs/mqtt-schema.md`); `mqtt::sim` is a
//!   simulated one that talks to a real broker.
//! - [`moonraker`] drives Klipper through Moonraker's HTTP API and websocket; `moonraker::sim`
//!   is an axum server that behaves like Moonraker for those calls.
//! - [`prusalink`] drives Prusa printers through PrusaLink's v1 HTTP API (polled);
//!   `prusalink::sim` is an axum stand-in.
//! - [`bambu`] drives Bambu Lab printers in LAN mode (MQTT over TLS + FTPS); `bambu::sim` is a
//!   simulated one that is a client of a real broker.
//! - [`print_file`] is `farmhand print --driver marlin` without the progress bar;
//!   [`print_with`] takes a [`DriverSpec`] for any driver.

pub mod bambu;
mod error;
pub mod marlin;
pub mod moonraker;
pub mod mqtt;
mod print_file;
mod print_with;
pub mod prusalink;
mod status;

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;

pub use error::DriverError;
pub use print_file::{PrintFileOptions, print_file, print_file_with};
pub use print_with::{
    DriverSpec, follow, print_bambu, print_moonraker, print_mqtt, print_prusalink, print_with,
};
pub use status::{JobProgress, PrintOutcome, PrinterState, PrinterStatus, Temp, Temperatures};
use tokio::sync::watch;

/// A boxed future, so the traits stay object-safe: the daemon holds `Arc<dyn Printer>`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What the daemon can ask of any printer.
///
/// Calls return once the driver has accepted the request; the effect shows up on
/// [`Printer::status`]. A job's end is reported there as [`PrinterStatus::last_outcome`].
pub trait Printer: Send + Sync {
    /// Open the link (if closed) and wait until the printer answers, or fail with the reason.
    fn connect(&self) -> BoxFuture<'_, Result<(), DriverError>>;
    /// A live view of the printer; cheap to clone, never blocks the driver.
    fn status(&self) -> watch::Receiver<PrinterStatus>;
    /// Start printing a G-code file from the host's disk.
    fn start_job(&self, file: PathBuf) -> BoxFuture<'_, Result<(), DriverError>>;
    fn pause(&self) -> BoxFuture<'_, Result<(), DriverError>>;
    fn resume(&self) -> BoxFuture<'_, Result<(), DriverError>>;
    /// Stop the job, park the head safely and turn the heaters off.
    fn cancel(&self) -> BoxFuture<'_, Result<(), DriverError>>;
    /// Close the link; the driver stays offline until [`Printer::connect`].
    fn disconnect(&self) -> BoxFuture<'_, Result<(), DriverError>>;

    /// The SD-card ability, or `Unsupported` when this printer has none.
    fn sd_card(&self) -> Result<&dyn SdCard, DriverError> {
        Err(DriverError::Unsupported {
            capability: "printing from the printer's SD card",
        })
    }
    /// Raw command access (staff console), or `Unsupported`.
    fn console(&self) -> Result<&dyn Console, DriverError> {
        Err(DriverError::Unsupported {
            capability: "a G-code console",
        })
    }
}

/// Printing from the printer's own storage, so a print survives the host restarting.
pub trait SdCard: Send + Sync {
    /// Upload `file` to the card (under a name the driver picks) and start printing it.
    fn start_sd_job(&self, file: PathBuf) -> BoxFuture<'_, Result<(), DriverError>>;
}

/// Sending one raw command line, for a staff console.
pub trait Console: Send + Sync {
    fn send_gcode(&self, line: String) -> BoxFuture<'_, Result<(), DriverError>>;
}

/// Sleeps until `at`, or forever without a deadline: the timer arm of the runners' `select!`.
pub(crate) async fn sleep_until(at: Option<std::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}
