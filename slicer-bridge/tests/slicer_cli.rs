//! Slicing through PrusaSlicer's CLI, and the ways a slicer can fail quietly.
//!
//! These tests need `prusa-slicer` (Debian package `prusa-slicer`, installed by
//! scripts/install-test-deps.sh) and `nice`/`prlimit` (coreutils, util-linux). They fail,
//! never skip, when one is missing.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use slicer_bridge::{AnalysisError, CuraOptions, SliceOptions, slice, slice_with_cura};

fn require(tool: &str, package: &str) {
    let found = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|dir| dir.join(tool).is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "`{tool}` is not installed: scripts/install-test-deps.sh must install it (apt-get install {package})"
    );
}

fn profile() -> PathBuf {
    common::corpus().join("slicer-configs/prusa25_mk3s_0.20mm_quality_prusament_pla.ini")
}

fn prusa() -> SliceOptions {
    require("prusa-slicer", "prusa-slicer");
    require("prlimit", "util-linux");
    SliceOptions {
        timeout: Duration::from_secs(120),
        ..SliceOptions::new(profile())
    }
}

/// A stand-in slicer: a shell script that finds `-o OUT` and runs `body` with `$out` set.
fn fake_slicer(dir: &Path, body: &str) -> PathBuf {
    let path = dir.join("fake-slicer.sh");
    let script = format!(
        "#!/bin/sh\nout=\"\"\nwhile [ $# -gt 0 ]; do [ \"$1\" = \"-o\" ] && out=\"$2\"; shift; done\n{body}\n"
    );
    std::fs::write(&path, script).expect("script");
    let status = std::process::Command::new("chmod")
        .arg("+x")
        .arg(&path)
        .status()
        .expect("chmod");
    assert!(status.success());
    path
}

#[test]
fn prusaslicer_slices_a_model_and_the_result_is_analysed() {
    let opts = prusa();
    let out = common::scratch("slice-cube");
    let gcode = out.join("cube.gcode");
    let model = common::corpus().join("models/20mm-xyz-cube.stl");
    let report = slice(&model, &gcode, &opts).unwrap_or_else(|e| panic!("{e}"));
    assert!(!report.used_stl_fallback);
    assert_eq!(report.gcode.layers, 100);
    let slicer_s = report
        .gcode
        .slicer_estimate_s
        .expect("PrusaSlicer writes an estimate");
    assert!((report.gcode.estimated_time_s - slicer_s).abs() / slicer_s < 0.08);
    assert!(gcode.is_file());
    std::fs::remove_dir_all(&out).ok();
}

/// A PrusaSlicer 2.9 project (its own `Slic3r_PE.config` inside, newer than the 2.5
/// slicer here): our profile wins, and the result is real G-code, not a silent bad file.
#[test]
fn a_project_3mf_with_a_newer_embedded_config_slices_with_our_profile() {
    let opts = prusa();
    let out = common::scratch("slice-shape-box");
    let gcode = out.join("box.gcode");
    let model = common::corpus().join("models/Shape-Box.3mf");
    let report = slice(&model, &gcode, &opts).unwrap_or_else(|e| panic!("{e}"));
    assert!(report.gcode.layers > 10, "{}", report.gcode.layers);
    assert!(
        report.gcode.filament_mm.is_some_and(|mm| mm > 100.0),
        "{:?}",
        report.gcode.filament_mm
    );
    assert!(report.gcode.slicer_estimate_s.is_some());
    std::fs::remove_dir_all(&out).ok();
}

#[test]
fn a_bambu_project_prusaslicer_refuses_is_sliced_from_its_meshes() {
    let opts = prusa();
    let out = common::scratch("slice-bambu");
    let gcode = out.join("bambu.gcode");
    let model = common::corpus().join("models/bambu-2-plates.3mf");
    let report = slice(&model, &gcode, &opts).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        report.used_stl_fallback,
        "PrusaSlicer 2.5 cannot read Bambu projects"
    );
    assert!(report.gcode.filament_mm.unwrap_or(0.0) > 100.0);
    std::fs::remove_dir_all(&out).ok();
}

#[test]
fn a_model_in_metres_is_scaled_before_slicing() {
    let opts = prusa();
    let out = common::scratch("slice-metres");
    let gcode = out.join("adis.gcode");
    let model = common::corpus().join("models/ADIS16480.stl");
    let report = slice(&model, &gcode, &opts).unwrap_or_else(|e| panic!("{e}"));
    assert!(report.used_stl_fallback);
    // 47 mm tall at 0.2 mm layers.
    assert!(report.gcode.layers > 200, "{}", report.gcode.layers);
    std::fs::remove_dir_all(&out).ok();
}

#[test]
fn exit_zero_with_empty_or_placeholder_output_is_an_error() {
    require("prlimit", "util-linux");
    let out = common::scratch("slice-fake");
    let model = common::corpus().join("models/20mm-xyz-cube.stl");
    let cases = [
        ("true", "wrote no G-code"),
        (
            "printf ';FLAVOR:Marlin\\n;TIME:6666\\n;Filament used: 0m\\nG1 X1 E1\\n' > \"$out\"",
            "placeholder",
        ),
        ("printf 'M104 S200\\nG28\\n' > \"$out\"", "prints nothing"),
    ];
    for (body, expected) in cases {
        let opts = SliceOptions {
            slicer: fake_slicer(&out, body),
            ..SliceOptions::new(profile())
        };
        let err = slice(&model, &out.join("x.gcode"), &opts).expect_err(body);
        assert!(matches!(err, AnalysisError::Slicer { .. }), "{err}");
        assert!(err.to_string().contains(expected), "{body}: {err}");
        assert!(!out.join("x.gcode").exists(), "no bad file is left behind");
    }
    std::fs::remove_dir_all(&out).ok();
}

#[test]
fn a_hanging_slicer_is_killed_at_the_timeout() {
    require("prlimit", "util-linux");
    let out = common::scratch("slice-hang");
    let opts = SliceOptions {
        slicer: fake_slicer(&out, "exec sleep 30"),
        timeout: Duration::from_millis(300),
        ..SliceOptions::new(profile())
    };
    let started = std::time::Instant::now();
    let model = common::corpus().join("models/20mm-xyz-cube.stl");
    let err = slice(&model, &out.join("x.gcode"), &opts).expect_err("timeout");
    assert!(err.to_string().contains("longer than"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(10));
    std::fs::remove_dir_all(&out).ok();
}

#[test]
fn a_failing_slicer_reports_its_last_words() {
    require("prlimit", "util-linux");
    let out = common::scratch("slice-fail");
    let opts = SliceOptions {
        slicer: fake_slicer(&out, "echo 'Objects could not fit on the bed' >&2; exit 1"),
        ..SliceOptions::new(profile())
    };
    let model = common::corpus().join("models/20mm-xyz-cube.stl");
    let err = slice(&model, &out.join("x.gcode"), &opts).expect_err("fails");
    assert!(err.to_string().contains("could not fit"), "{err}");
    std::fs::remove_dir_all(&out).ok();
}

/// Cura's printer definitions ship only in the `cura` package; without the GUI stack:
/// `apt-get download cura && dpkg-deb -x cura_*.deb DIR`, then copy
/// `DIR/usr/share/cura/resources` to `/opt/cura/resources` (or point `CURA_RESOURCES` at it).
fn cura_definition() -> PathBuf {
    require("CuraEngine", "cura-engine");
    let candidates = [
        std::env::var_os("CURA_RESOURCES").map(PathBuf::from),
        Some(PathBuf::from("/usr/share/cura/resources")),
        Some(PathBuf::from("/opt/cura/resources")),
    ];
    let definition = candidates
        .into_iter()
        .flatten()
        .map(|r| r.join("definitions/creality_ender3.def.json"))
        .find(|d| d.is_file());
    definition.unwrap_or_else(|| {
        panic!(
            "Cura's printer definitions are missing: scripts/install-test-deps.sh must extract the `cura` \
             package's usr/share/cura/resources to /opt/cura/resources (apt-get download cura; dpkg-deb -x)"
        )
    })
}

#[test]
fn curaengine_slices_with_the_real_header_and_filled_placeholders() {
    let mut opts = CuraOptions::new(cura_definition());
    opts.settings = vec![
        ("layer_height".into(), "0.2".into()),
        ("machine_depth".into(), "235".into()),
    ];
    let out = common::scratch("cura-cube");
    let gcode = out.join("cube.gcode");
    let model = common::corpus().join("models/20mm-xyz-cube.stl");
    let report = slice_with_cura(&model, &gcode, &opts).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(report.gcode.layers, 100);
    let text = std::fs::read_to_string(&gcode).expect("gcode");
    assert!(!text.contains(";TIME:6666") && !text.contains("{machine_depth}"));
    assert!(
        report.gcode.slicer_estimate_s.is_some_and(|s| s > 600.0),
        "{:?}",
        report.gcode
    );
    std::fs::remove_dir_all(&out).ok();
}

#[test]
fn curaengine_placeholder_without_a_value_is_an_error() {
    let opts = CuraOptions::new(cura_definition());
    let out = common::scratch("cura-placeholder");
    let model = common::corpus().join("models/20mm-xyz-cube.stl");
    let err = slice_with_cura(&model, &out.join("x.gcode"), &opts).expect_err("placeholder");
    assert!(err.to_string().contains("{machine_depth}"), "{err}");
    assert!(!out.join("x.gcode").exists());
    std::fs::remove_dir_all(&out).ok();
}
