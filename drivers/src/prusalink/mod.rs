//! Prusa printers (MK4, XL, MINI) through PrusaLink's v1 HTTP API.
//!
//! - [`status`]: `/api/v1/status` and `/api/v1/job` → [`crate::PrinterStatus`], and when
//!   Farmhand's job ended. Pure, table-tested.
//! - [`driver`]: [`PrusaLinkHandle`] (uploads with `Print-After-Upload: 1`, pause/resume/stop by
//!   job id) and the [`PrusaLinkRunner`] that polls the status, the only writer of it.
//! - [`sim`]: an axum server that answers these calls like PrusaLink (feature `sim`).
//!
//! - [`digest`]: HTTP Digest login with `username`/`password` (RFC 7616, MD5).
//!
//! Authentication is the printer's API key (`X-Api-Key`) or its digest login (PrusaLink's
//! user, usually `maker`, and the password on the printer's screen).

pub mod digest;
pub mod driver;
#[cfg(feature = "sim")]
pub mod sim;
pub mod status;

pub use driver::{PrusaLinkConfig, PrusaLinkHandle, PrusaLinkRunner};
