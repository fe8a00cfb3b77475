//! Every corpus model and G-code file is analysed, with facts from corpus/README.md.

mod common;

use slicer_bridge::{Analysis, AnalyzeOptions, analyze_file};

fn opts() -> AnalyzeOptions {
    AnalyzeOptions {
        build_volumes: vec![
            ("mk3s".into(), [250.0, 210.0, 210.0]),
            ("ender3".into(), [220.0, 220.0, 250.0]),
        ],
        ..AnalyzeOptions::default()
    }
}

fn analyse(sub: &str, name: &str) -> Analysis {
    let path = common::corpus().join(sub).join(name);
    analyze_file(&path, &opts()).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn every_model_is_analysed() {
    for path in common::files("models") {
        let a = analyze_file(&path, &opts()).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let bbox = a.bbox_mm.expect("bbox");
        assert!(a.triangles.unwrap_or(0) > 0, "{}", path.display());
        assert!(
            bbox.iter().all(|v| *v > 1.0 && *v < 1000.0),
            "{}: {bbox:?}",
            path.display()
        );
        assert_eq!(a.fits.len(), 2);
    }
}

#[test]
fn model_facts_from_the_readme() {
    let cube = analyse("models", "20mm-xyz-cube.stl");
    assert_eq!((cube.format.as_str(), cube.triangles), ("stl", Some(260)));
    assert_eq!(cube.watertight, Some(true));
    assert!((cube.volume_cm3.expect("vol") - 8.0).abs() < 0.5);
    let cal = analyse("models", "calibrate_size.stl");
    assert_eq!(cal.triangles, Some(1660));
    let b = cal.bbox_mm.expect("bbox");
    assert!(
        (b[0] - 140.0).abs() < 1.0 && (b[2] - 6.5).abs() < 0.1,
        "{b:?}"
    );
    let adis = analyse("models", "ADIS16480.stl");
    assert_eq!(adis.triangles, Some(7436));
    assert_eq!(adis.units_guess.as_deref(), Some("metres: scaled ×1000"));
    assert!((adis.bbox_mm.expect("bbox")[0] - 44.0).abs() < 1.0);
    let hourglass = analyse("models", "hourglass-fill-holes-bad.stl");
    assert_eq!(hourglass.watertight, Some(false));
    assert!(hourglass.non_manifold_edges.expect("edges") > 0);
    assert!(hourglass.units_guess.is_some());
    let counter = analyse("models", "counter.unitsmm.stl");
    assert_eq!(counter.triangles, Some(83_750));
    assert!(counter.fits.values().all(|f| !f), "{:?}", counter.fits);
    assert!(
        counter
            .warnings
            .iter()
            .any(|w| w.contains("not on the bed"))
    );
    let bunny = analyse("models", "stanford-bunny.obj");
    assert_eq!(
        (bunny.format.as_str(), bunny.triangles),
        ("obj", Some(69_451))
    );
    assert_eq!(bunny.watertight, Some(false));
    let benchy = analyse("models", "3DBenchy.3mf");
    assert_eq!(
        (benchy.format.as_str(), benchy.triangles),
        ("3mf", Some(225_154))
    );
    assert!(benchy.fits["mk3s"]);
    let gears = analyse("models", "cube_gears.3mf");
    assert!(gears.triangles.expect("tris") > 10_000);
    // Two plates side by side: 333 mm wide in all, but each object fits a bed.
    let bambu = analyse("models", "bambu-2-plates.3mf");
    assert!(bambu.triangles.expect("tris") > 100);
    assert!(bambu.bbox_mm.expect("bbox")[0] > 300.0);
    assert!(bambu.fits.values().all(|f| *f), "{:?}", bambu.fits);
    assert!(bambu.warnings.iter().any(|w| w.contains("plate by plate")));
}

#[test]
fn every_gcode_file_is_analysed() {
    for path in common::files("gcode") {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        if name.contains("-x8_") {
            continue; // 66 MB: analysed by its own test below, in a release-like budget.
        }
        let a = analyze_file(&path, &opts()).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(a.format, "gcode");
        if name.contains("thumbnails-only") {
            assert_eq!(a.layers, Some(0));
            continue;
        }
        let t = a.estimated_time_s.expect("time");
        assert!(t > 60.0, "{name}: {t}");
        assert!(a.filament_mm.expect("filament") > 100.0, "{name}");
        if let Some(s) = a.slicer_estimate_s {
            let error = (t - s).abs() / s;
            let allowed = if name.contains("prusa") { 0.08 } else { 0.25 };
            assert!(error < allowed, "{name}: ours {t:.0} s vs slicer {s:.0} s");
        }
    }
}

#[test]
fn gcode_facts_from_the_readme() {
    let cube = analyse("gcode", "20mm-xyz-cube.stl_prusa25-mk3s-0.20.gcode");
    assert_eq!(cube.layers, Some(100));
    // PrusaSlicer leaves the start G-code's 21.5 mm purge line out of its 1320.10 mm;
    // the printer still pushes it through the nozzle, so Farmhand counts it.
    assert!((cube.filament_mm.expect("mm") - 1341.6).abs() < 1.0);
    assert!((cube.filament_g.expect("g") - 4.0).abs() < 0.05);
    assert_eq!(cube.slicer_estimate_s, Some(1877.0));
    let cura = analyse("gcode", "calibrate_size.stl_cura413-ender3-0.20.gcode");
    assert_eq!(cura.layers, Some(32));
    assert_eq!(cura.slicer_estimate_s, Some(4880.0));
    // Cura's figure leaves out the start G-code's prime line, as PrusaSlicer's does.
    let mm = cura.filament_mm.expect("mm");
    assert!((mm - 5023.09).abs() / 5023.09 < 0.01, "{mm}");
    let b = cura.bbox_mm.expect("bbox");
    // The 140 × 139 mm part plus its skirt, without the prime line along the bed's edge.
    assert!(b[0] < 160.0 && b[1] < 160.0, "purge line left out: {b:?}");
    let slic3r = analyse("gcode", "bp_case.stl_slic3r13-0.20.gcode");
    assert_eq!(slic3r.layers, Some(35));
    // Net of the final 2 mm retraction, which Slic3r still counts.
    assert!((slic3r.filament_mm.expect("mm") - 3711.1).abs() / 3711.1 < 0.01);
    let legacy = analyse("gcode", "bp_case_octoprint-tests_legacy-cura.gcode");
    assert_eq!(legacy.layers, Some(70));
    assert_eq!(legacy.slicer_estimate_s, None);
}

#[test]
fn large_gcode_is_analysed_in_bounded_time() {
    let a = analyse("gcode", "3DBenchy.stl-x8_prusa25-mk3s-0.10.gcode");
    assert_eq!(a.layers, Some(479));
    let t = a.estimated_time_s.expect("time");
    assert!((t - 82_877.0).abs() / 82_877.0 < 0.08, "{t}");
    let mm = a.filament_mm.expect("mm");
    assert!((mm - 34_475.03).abs() / 34_475.03 < 0.01, "{mm}");
}
