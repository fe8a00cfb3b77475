//! Preview benchmark: model → GLB and model → PNG thumbnail over the corpus models,
//! printing time and output size per file.
//!
//! `cargo run --release -p slicer-bridge --example preview_bench [OUT_DIR]`
//! (outputs are kept in OUT_DIR, default a temporary folder).
//!
//! With `ASSIMP=/usr/bin/assimp` set (Debian `assimp-utils`), assimp converts the same
//! files in the same run (`assimp export IN OUT.glb -fglb2`) and its time and size are
//! printed beside ours. With `F3D=1` set, f3d renders the same thumbnails through
//! `xvfb-run -a f3d --output=OUT.png --resolution=512,512 IN` (f3d needs an X server;
//! on a headless Pi that means Xvfb, whose start-up is part of what a user would pay).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use slicer_bridge::{convert_to_glb, render_thumbnail};

fn main() {
    let out = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("slicer-bridge-preview-bench"));
    std::fs::create_dir_all(&out).expect("output dir");
    let models = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/corpus/models"
    ));
    let mut files: Vec<PathBuf> = std::fs::read_dir(&models)
        .unwrap_or_else(|e| panic!("{}: {e}", models.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    files.sort();
    let assimp = std::env::var_os("ASSIMP").map(PathBuf::from);
    let f3d = std::env::var_os("F3D").is_some();
    println!(
        "{:<30} {:>10} {:>8} {:>10} {:>9} {:>8} {:>10} {:>12} {:>8}",
        "model",
        "in bytes",
        "GLB ms",
        "GLB bytes",
        "vertices",
        "PNG ms",
        "assimp ms",
        "assimp bytes",
        "f3d ms"
    );
    for path in files {
        row(&path, &out, assimp.as_deref(), f3d);
    }
    println!("outputs in {}", out.display());
}

fn row(path: &Path, out: &Path, assimp: Option<&Path>, f3d: bool) {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("?")
        .to_string();
    let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let started = Instant::now();
    let stats = convert_to_glb(path, &out.join(format!("{name}.glb")));
    let glb_ms = started.elapsed().as_secs_f64() * 1000.0;
    let started = Instant::now();
    let thumb = render_thumbnail(path, &out.join(format!("{name}.png")), 512);
    let png_ms = started.elapsed().as_secs_f64() * 1000.0;
    let (assimp_ms, assimp_bytes) =
        match assimp.map(|exe| run_assimp(exe, path, &out.join(format!("{name}.assimp.glb")))) {
            Some(Some((ms, bytes))) => (format!("{ms:.1}"), bytes.to_string()),
            Some(None) => ("failed".into(), "-".into()),
            None => ("-".into(), "-".into()),
        };
    let f3d_ms = if f3d {
        run_f3d(path, &out.join(format!("{name}.f3d.png")))
            .map_or("failed".into(), |ms| format!("{ms:.1}"))
    } else {
        "-".to_string()
    };
    match (stats, thumb) {
        (Ok(s), Ok(())) => println!(
            "{name:<30} {size:>10} {glb_ms:>8.1} {:>10} {:>9} {png_ms:>8.1} {assimp_ms:>10} {assimp_bytes:>12} {f3d_ms:>8}",
            s.bytes, s.vertices
        ),
        (s, t) => println!("{name:<30} failed: {:?} {:?}", s.err(), t.err()),
    }
}

/// assimp's conversion time (ms) and output size, or `None` when it fails or writes an
/// empty scene (it does so for Bambu projects).
fn run_assimp(exe: &Path, input: &Path, output: &Path) -> Option<(f64, u64)> {
    let started = Instant::now();
    let status = Command::new(exe)
        .arg("export")
        .arg(input)
        .arg(output)
        .arg("-fglb2")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .ok()?;
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    let bytes = std::fs::metadata(output).map(|m| m.len()).unwrap_or(0);
    (status.success() && bytes > 0).then_some((ms, bytes))
}

/// f3d's time (ms) to render a 512² PNG under Xvfb, or `None` if it wrote nothing.
fn run_f3d(input: &Path, output: &Path) -> Option<f64> {
    let started = Instant::now();
    let status = Command::new("xvfb-run")
        .args(["-a", "f3d", "--resolution=512,512"])
        .arg(format!("--output={}", output.display()))
        .arg(input)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .ok()?;
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    (status.success() && output.exists()).then_some(ms)
}
