//! slicer-bridge: everything Farmhand knows about model and print files.
//!
//! No HTTP and no store: the daemon hands this crate paths and bytes and gets back
//! formats, reports, previews and G-code analyses.
//!
//! Every function here blocks (file I/O and seconds of CPU on a Pi): call them from
//! `tokio::task::spawn_blocking` or a worker thread, never on the async runtime.
//! They are safe on hostile input: each refusal is an [`AnalysisError`] with a reason
//! a person can act on, within the memory and time caps documented per format.
//!
//! - [`sniff`]: what a file is, from its bytes (intake's first check).
//! - [`mesh`]: STL/OBJ/3MF readers into one indexed, deduplicated [`mesh::Mesh`].
//! - [`report`]: triangles, size, units, watertightness, volume, fit.
//! - [`gcode`]: G-code scanning and print-time simulation.
//! - [`analysis`]: [`analyze_file`], the contract's `analysis` object.
//! - [`glb`]: [`convert_to_glb`], the web viewer's preview.
//! - [`thumbnail`]: [`render_thumbnail`], embedded or rendered on the CPU.
//! - [`slicer`]: [`slice()`] with PrusaSlicer's CLI (nice, prlimit, timeout, output checks),
//!   [`slice_with_cura`] with CuraEngine's.
//! - [`error`]: [`AnalysisError`], the reasons shown to students and staff.
//! - [`output`]: atomic writes (temporary file, then rename).

pub mod analysis;
pub mod error;
pub mod gcode;
pub mod glb;
pub mod mesh;
pub mod output;
pub mod report;
pub mod slicer;
pub mod sniff;
pub mod thumbnail;

pub use analysis::{Analysis, AnalyzeOptions, analyze_file};
pub use error::AnalysisError;
pub use glb::{GlbStats, convert_to_glb};
pub use slicer::cura::{CuraOptions, slice_with_cura};
pub use slicer::{SliceOptions, SliceReport, slice};
pub use sniff::{FileFormat, NotAModel, SniffError, sniff_file, sniff_file_named};
pub use thumbnail::render_thumbnail;
