//! Every real file in `../shared/corpus` sniffs as the format its name says.

use std::path::PathBuf;

use slicer_bridge::{FileFormat, sniff_file};

fn corpus() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus");
    assert!(
        dir.join("README.md").exists(),
        "the test corpus is missing: expected ../shared/corpus beside the repository ({})",
        dir.display()
    );
    dir
}

#[test]
fn every_corpus_file_sniffs_as_its_extension_says() {
    let mut checked = 0;
    for sub in ["models", "gcode"] {
        for entry in std::fs::read_dir(corpus().join(sub)).expect("corpus folder") {
            let path = entry.expect("entry").path();
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            let format = sniff_file(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
            let expected = match name.rsplit('.').next() {
                Some("stl") => "stl",
                Some("obj") => "obj",
                Some("3mf") => "3mf",
                Some("gcode") => "gcode",
                other => panic!("unexpected corpus file type {other:?}"),
            };
            assert_eq!(format.api_name(), expected, "{name} sniffed as {format:?}");
            checked += 1;
        }
    }
    assert!(checked >= 25, "only {checked} corpus files found");
    let binary = corpus().join("models/20mm-xyz-cube.stl");
    assert_eq!(sniff_file(&binary).expect("cube"), FileFormat::StlBinary);
}
