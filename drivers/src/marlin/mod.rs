//! Marlin (and Marlin-compatible: Prusa, Creality, Klipper's serial emulation, Repetier,
//! Smoothie) over a USB serial port.
//!
//! - [`parse`]: one received line → a [`parse::Response`]; every dialect as a table test.
//! - [`protocol`]: the link state machine (line numbers, checksums, `ok` window, resends).
//! - [`gcode`]: reading a job file: comments stripped, layers and `M73` progress noted.
//! - [`driver`]: the task that owns the port, and the [`MarlinHandle`] the daemon holds.
//! - [`sim`]: a simulated Marlin printer on a real pseudo-terminal.

pub mod driver;
pub mod gcode;
pub mod parse;
pub mod protocol;
#[cfg(feature = "sim")]
pub mod sim;

pub use driver::{MarlinConfig, MarlinHandle, MarlinRunner};
