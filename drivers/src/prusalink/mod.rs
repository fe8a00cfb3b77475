//! Prusa printers (MK4, XL, MINI) through PrusaLink's v1 HTTP API.
//!
//! - [`status`]: `/api/v1/status` and `/api/v1/job` → [`crate::PrinterStatus`], and when
//!   Farmhand's job ended. Pure, table-tested.
//! - [`driver`]: [`PrusaLinkHandle`] (uploads with `Print-After-Upload: 1`, pause/resume/stop by
//!   job id) and the [`PrusaLinkRunner`] that polls the status, the only writer of it.
//! - [`sim`]: an axum server that answers these calls like PrusaLink (feature `sim`).
//!
//! Authentication is the printer's API key (`X-Api-Key`); digest login with username and
//! password is not implemented yet and is refused with a message saying so.

pub mod driver;
#[cfg(feature = "sim")]
pub mod sim;
pub mod status;

pub use driver::{PrusaLinkConfig, PrusaLinkHandle, PrusaLinkRunner};
