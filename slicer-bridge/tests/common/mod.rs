//! Shared helpers for the corpus tests.

// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

use std::path::PathBuf;

/// The shared corpus beside the repository; a clear failure (never a skip) if absent.
pub fn corpus() -> PathBuf {
    let dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/corpus"));
    assert!(
        dir.join("README.md").exists(),
        "the test corpus is missing: expected ../shared/corpus beside the repository ({})",
        dir.display()
    );
    dir
}

/// Every file in `corpus/<sub>`, sorted.
pub fn files(sub: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(corpus().join(sub))
        .unwrap_or_else(|e| panic!("corpus/{sub}: {e}"))
        .map(|e| e.expect("entry").path())
        .collect();
    out.sort();
    out
}

/// A scratch directory unique to this test process and `name`.
pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("slicer-bridge-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}
