//! Hostile files through the public API, as the daemon meets them: every one is refused
//! with `InvalidModel` and a reason, quickly, by analysis, preview and thumbnail alike.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use slicer_bridge::{
    AnalysisError, AnalyzeOptions, analyze_file, convert_to_glb, render_thumbnail,
};

fn binary_stl(claimed: u32, triangles: usize, corner: [f32; 3]) -> Vec<u8> {
    let mut out = b"solid exported by a CAD tool".to_vec();
    out.resize(80, b' ');
    out.extend_from_slice(&claimed.to_le_bytes());
    for _ in 0..triangles {
        out.extend_from_slice(&[0u8; 12]);
        for v in [corner, [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]] {
            for c in v {
                out.extend_from_slice(&c.to_le_bytes());
            }
        }
        out.extend_from_slice(&[0, 0]);
    }
    out
}

fn threemf(model_xml: &[u8]) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    zip.start_file("3D/3dmodel.model", opts).expect("start");
    zip.write_all(model_xml).expect("write");
    zip.finish().expect("finish").into_inner()
}

/// Writes `bytes` as `name` and checks all three entry points refuse it with `expected`
/// in the reason.
fn refused(dir: &Path, name: &str, bytes: &[u8], expected: &str) {
    let path: PathBuf = dir.join(name);
    std::fs::write(&path, bytes).expect("write");
    let started = Instant::now();
    let results = [
        analyze_file(&path, &AnalyzeOptions::default()).map(|_| ()),
        convert_to_glb(&path, &dir.join("out.glb")).map(|_| ()),
        render_thumbnail(&path, &dir.join("out.png"), 128),
    ];
    for result in results {
        match result {
            Err(AnalysisError::InvalidModel { reason }) => {
                assert!(
                    reason.contains(expected),
                    "{name}: {reason:?} lacks {expected:?}"
                )
            }
            other => panic!("{name}: expected InvalidModel, got {other:?}"),
        }
    }
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{name} took too long"
    );
    assert!(
        !dir.join("out.glb").exists() && !dir.join("out.png").exists(),
        "{name}: output written"
    );
}

#[test]
fn hostile_files_are_refused_by_every_entry_point() {
    let dir = common::scratch("hostile");
    refused(&dir, "empty.stl", b"", "empty");
    let mut truncated = binary_stl(1000, 60, [0.0; 3]);
    truncated.truncate(3000);
    refused(
        &dir,
        "truncated.stl",
        &truncated,
        "header promises 1,000 triangles (50,084 bytes)",
    );
    refused(
        &dir,
        "lying.stl",
        &binary_stl(u32::MAX, 2, [0.0; 3]),
        "4,294,967,295 triangles",
    );
    refused(
        &dir,
        "nan.stl",
        &binary_stl(1, 1, [f32::NAN, 0.0, 0.0]),
        "finite",
    );
    refused(
        &dir,
        "inf.obj",
        b"v 0 0 0\nv 1 0 0\nv 0 inf 0\nf 1 2 3\n",
        "finite",
    );
    let bomb = threemf(&vec![b' '; 64 * 1024 * 1024]);
    assert!(
        bomb.len() < 1024 * 1024,
        "a real bomb: {} bytes",
        bomb.len()
    );
    refused(&dir, "bomb.3mf", &bomb, "zip bomb");
    let entities = br#"<?xml version="1.0"?><!DOCTYPE m [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]><model>&b;</model>"#;
    refused(&dir, "entities.3mf", &threemf(entities), "DOCTYPE");
    std::fs::remove_dir_all(&dir).ok();
}
