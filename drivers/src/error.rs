//! Errors a driver hands to the daemon. Each message says what happened and what to do,
//! because it ends up verbatim on the staff dashboard and in `farmhand print`'s last line.

use std::path::PathBuf;
use std::time::Duration;

/// Everything a [`crate::Printer`] call can fail with.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum DriverError {
    /// The driver cannot do this at all (an optional ability it lacks).
    #[error("this printer's driver does not support {capability}")]
    Unsupported { capability: &'static str },

    #[error("cannot open serial port {port}: {reason}: check the USB cable and the port path")]
    PortOpen { port: PathBuf, reason: String },

    #[error(
        "printer on {port} did not answer the M110 handshake within {waited:?}: check the baud rate and that the printer is powered on"
    )]
    HandshakeTimeout { port: PathBuf, waited: Duration },

    #[error("printer did not answer M105 for {silent:?}: check the USB cable")]
    LinkDead { silent: Duration },

    #[error("serial port {port} went away: {reason}: check the USB cable")]
    PortLost { port: PathBuf, reason: String },

    #[error("printer is {state}, not {wanted}: {hint}")]
    WrongState {
        state: &'static str,
        wanted: &'static str,
        hint: &'static str,
    },

    #[error("cannot read G-code file {path}: {reason}")]
    File { path: PathBuf, reason: String },

    /// The print ended without completing; `reason` quotes the firmware when it said something.
    #[error("print failed: {reason}")]
    PrintFailed { reason: String },

    #[error("print was cancelled")]
    Cancelled,

    /// A config key or `farmhand print` flag has a value the driver cannot use.
    #[error("{key} = {value:?} is not usable: {hint}")]
    InvalidSetting {
        key: &'static str,
        value: String,
        hint: String,
    },

    /// The printer (or its broker or host) did not answer in time.
    #[error("{printer} did not answer within {waited:?}: {hint}")]
    NotAnswering {
        printer: String,
        waited: Duration,
        hint: String,
    },

    /// The connection to the printer failed in a way retrying will not fix by itself (a
    /// refused login, a certificate of another device); `reason` says which.
    #[error("cannot connect to {printer}: {reason}")]
    LinkFailed { printer: String, reason: String },

    /// The printer's FTPS server refused a step of an upload.
    #[error("{server} refused {what}: {reason}: {hint}")]
    Upload {
        server: String,
        what: String,
        reason: String,
        hint: String,
    },

    /// The printer's HTTP API refused or failed a request.
    #[error("{printer} answered {what} with {reason}: {hint}")]
    Http {
        printer: String,
        what: String,
        reason: String,
        hint: String,
    },

    /// The small HTTP server that hands job files to MQTT printers could not run.
    #[error(
        "cannot serve the job file to the printer: {reason}: check that this machine may open a TCP port"
    )]
    FileServer { reason: String },

    /// The driver's task is gone (the daemon is shutting down).
    #[error("the printer's driver task has stopped: restart farmhand")]
    DriverStopped,
}
