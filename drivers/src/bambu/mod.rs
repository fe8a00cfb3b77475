//! Bambu Lab printers (X1, P1, A1) in LAN mode: MQTT over TLS on 8883 (user `bblp`, the access
//! code as password) and implicit FTPS on 990 for the job file.
//!
//! - [`protocol`]: the `print` report, merged from partial reports, and the requests; pure.
//! - [`track`]: what the driver believes about the printer and its job, as a state machine.
//! - [`tls`]: the certificate check (CN = serial; optionally a configured CA).
//! - [`ftps`]: the upload, with the FTPS traps handled.
//! - [`driver`]: [`BambuHandle`] for the daemon and the [`BambuRunner`] that owns the one
//!   MQTT connection per printer (through the shared [`crate::mqtt::conn`] manager).
//! - [`sim`]: a simulated printer (feature `sim`). A real printer *is* the MQTT broker; the
//!   simulator instead is a client of a real mosquitto (TLS, password file) that publishes
//!   the report topic and obeys the request topic, so tests use a real broker and the
//!   driver's code path is the same.

pub mod driver;
pub mod ftps;
pub mod protocol;
#[cfg(feature = "sim")]
pub mod sim;
pub mod tls;
pub mod track;

pub use driver::{BambuConfig, BambuHandle, BambuRunner};

/// Where the printer publishes its reports.
pub fn report_topic(serial: &str) -> String {
    format!("device/{serial}/report")
}

/// Where the printer takes requests.
pub fn request_topic(serial: &str) -> String {
    format!("device/{serial}/request")
}
