//! Prints the analysis of each file given as JSON (what `farmhand analyze` shows).
//!
//! `cargo run -p slicer-bridge --example analyze -- FILE…`

use slicer_bridge::{AnalyzeOptions, analyze_file};

fn main() {
    let opts = AnalyzeOptions {
        build_volumes: vec![("mk3s".into(), [250.0, 210.0, 210.0])],
        ..AnalyzeOptions::default()
    };
    for arg in std::env::args().skip(1) {
        match analyze_file(std::path::Path::new(&arg), &opts) {
            Ok(a) => println!("{arg}: {}", serde_json::to_string(&a).unwrap_or_default()),
            Err(e) => println!("{arg}: error: {e}"),
        }
    }
}
