//! slicer-bridge: everything Farmhand knows about model and print files.
//!
//! No HTTP and no store: the daemon hands this crate paths and bytes and gets back
//! formats, reports, previews and G-code analyses.
//!
//! - [`sniff`]: what a file is, from its bytes (intake's first check).

pub mod sniff;

pub use sniff::{FileFormat, NotAModel, SniffError, sniff_file};
