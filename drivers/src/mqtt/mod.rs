//! Generic MQTT printers: any printer or bridge that speaks Farmhand's small JSON schema
//! (`docs/mqtt-schema.md`) on a broker.
//!
//! - [`schema`]: the wire format (status, commands, last will), versioned, with table tests.
//! - [`track`]: what the driver believes about the printer, as a pure state machine.
//! - [`conn`]: the one MQTT connection manager (reconnect, back-off, re-subscribe).
//! - [`files`]: how the printer gets the G-code (a URL it downloads; [`LocalFileServer`]).
//! - [`driver`]: [`MqttHandle`] for the daemon and the [`MqttRunner`] task that owns the link.
//! - [`sim`]: a simulated printer that speaks the schema to a real broker (feature `sim`).

pub mod conn;
pub mod driver;
pub mod files;
pub mod schema;
#[cfg(feature = "sim")]
pub mod sim;
pub mod track;

pub use conn::Backoff;
pub use driver::{MqttConfig, MqttHandle, MqttRunner};
pub use files::{FileUrls, LocalFileServer};
