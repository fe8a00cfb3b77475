//! Slicing with PrusaSlicer's command line, in a fenced-off subprocess.
//!
//! The slicer runs as `nice -n N prlimit --as=BYTES -- prusa-slicer --export-gcode
//! --load PROFILE MODEL -o TMP`: a lower CPU priority so the daemon stays responsive, an
//! address-space cap so a hostile model cannot take the Pi's memory (done by `prlimit`
//! from util-linux because this workspace forbids the `unsafe` a `pre_exec` setrlimit
//! needs), and a wall-clock timeout after which the process is killed.
//!
//! Slicers fail in quiet ways, so the output is never trusted: it must exist, hold
//! moves and filament, and carry no placeholder header (CuraEngine alone writes
//! `;TIME:6666` and `;Filament used: 0m`). When PrusaSlicer rejects a 3MF (Bambu
//! projects, configs from a newer version), the mesh Farmhand itself read from the
//! file is handed over as a plain STL instead: the slice then uses the printer's
//! profile only, which is what the lab wants anyway.
//!
//! - [`slice()`] (here): PrusaSlicer.
//! - [`cura`]: CuraEngine, the second backend.
//! - `fence`: the nice/prlimit/timeout runner both use.

use std::ffi::OsString;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::analysis::sniff;
use crate::error::AnalysisError;
use crate::gcode::{GcodeAnalysis, analyze_gcode};
use crate::mesh::{Mesh, load_mesh};
use crate::report::guess_scale;
use crate::sniff::FileFormat;

pub mod cura;
mod fence;

use fence::{Fence, run_fenced, slicer_error};

/// How to run the slicer.
#[derive(Debug, Clone, PartialEq)]
pub struct SliceOptions {
    /// The slicer executable (default `prusa-slicer`, looked up in `PATH`).
    pub slicer: PathBuf,
    /// The printer/print/filament profile (`--load`).
    pub profile: PathBuf,
    /// Killed after this long.
    pub timeout: Duration,
    /// Address-space limit for the slicer process, bytes.
    pub memory_limit_bytes: u64,
    /// `nice` increment (0–19).
    pub nice: u8,
}

impl SliceOptions {
    /// Defaults for a Pi: 10 minutes, 2 GiB, nice 10.
    pub fn new(profile: impl Into<PathBuf>) -> Self {
        SliceOptions {
            slicer: PathBuf::from("prusa-slicer"),
            profile: profile.into(),
            timeout: Duration::from_secs(600),
            memory_limit_bytes: 2 << 30,
            nice: 10,
        }
    }
}

/// What slicing produced.
#[derive(Debug, Clone, PartialEq)]
pub struct SliceReport {
    /// The G-code's analysis (time, filament, layers).
    pub gcode: GcodeAnalysis,
    /// True when the original file was refused and Farmhand's own STL export was sliced.
    pub used_stl_fallback: bool,
    /// How long the slicer ran.
    pub elapsed: Duration,
}

/// Slices `model` into G-code at `output` (written via a temporary file and a rename).
pub fn slice(
    model: &Path,
    output: &Path,
    opts: &SliceOptions,
) -> Result<SliceReport, AnalysisError> {
    in_workdir(model, output, |format, work| {
        slice_in(model, format, output, work, opts)
    })
}

/// The part every slicer backend shares: refuse G-code, give `run` a scratch folder
/// beside `output` (same file system, so the final rename is atomic), remove it after.
pub(crate) fn in_workdir(
    model: &Path,
    output: &Path,
    run: impl FnOnce(FileFormat, &Path) -> Result<SliceReport, AnalysisError>,
) -> Result<SliceReport, AnalysisError> {
    let format = sniff(model)?;
    if format.is_printable() {
        return Err(AnalysisError::Unsupported {
            reason: "the file is already G-code".into(),
        });
    }
    let work = tempdir(output)?;
    let result = run(format, &work);
    std::fs::remove_dir_all(&work).ok();
    result
}

fn slice_in(
    model: &Path,
    format: FileFormat,
    output: &Path,
    work: &Path,
    opts: &SliceOptions,
) -> Result<SliceReport, AnalysisError> {
    let started = Instant::now();
    let tmp = work.join("out.gcode");
    let mesh = load_mesh(model, format)?;
    let scale = guess_scale(&mesh, format != FileFormat::ThreeMf);
    let (input, mut used_stl_fallback) = if scale != 1.0 {
        // A model in metres: the slicer would print it a thousandth of its size.
        (write_stl(&mesh, scale, &work.join("model.stl"))?, true)
    } else {
        (model.to_path_buf(), false)
    };
    let mut outcome = run_slicer(&[input], &tmp, work, opts).and_then(|()| verify(&tmp));
    if outcome.is_err() && format == FileFormat::ThreeMf && !used_stl_fallback {
        let items = File::open(model)
            .map_err(|e| AnalysisError::io(model, e))
            .and_then(crate::mesh::threemf::parse_items)?;
        let stls = items
            .iter()
            .enumerate()
            .map(|(i, m)| write_stl(m, 1.0, &work.join(format!("item-{i}.stl"))))
            .collect::<Result<Vec<_>, _>>()?;
        outcome = run_slicer(&stls, &tmp, work, opts).and_then(|()| verify(&tmp));
        used_stl_fallback = true;
    }
    let gcode = outcome?;
    std::fs::rename(&tmp, output).map_err(|e| AnalysisError::io(output, e))?;
    Ok(SliceReport {
        gcode,
        used_stl_fallback,
        elapsed: started.elapsed(),
    })
}

/// A private working folder beside the output (same file system, so renames work).
fn tempdir(output: &Path) -> Result<PathBuf, AnalysisError> {
    let parent = output
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let dir = parent.join(format!(".slice-{}-{stamp}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| AnalysisError::io(&dir, e))?;
    Ok(dir)
}

/// Writes the mesh, scaled, as a binary STL at `path`.
fn write_stl(mesh: &Mesh, scale: f64, path: &Path) -> Result<PathBuf, AnalysisError> {
    let path = path.to_path_buf();
    let mut bytes = Vec::with_capacity(84 + mesh.triangles.len() * 50);
    bytes.extend_from_slice(&[b' '; 80]);
    bytes.extend_from_slice(&(mesh.triangles.len() as u32).to_le_bytes());
    for t in &mesh.triangles {
        bytes.extend_from_slice(&[0u8; 12]);
        for &i in t {
            for c in mesh.positions[i as usize] {
                bytes.extend_from_slice(&((f64::from(c) * scale) as f32).to_le_bytes());
            }
        }
        bytes.extend_from_slice(&[0, 0]);
    }
    std::fs::write(&path, bytes).map_err(|e| AnalysisError::io(&path, e))?;
    Ok(path)
}

/// Runs PrusaSlicer on one or more model files (several become separate objects,
/// arranged on the bed); its output goes to files in `work`.
fn run_slicer(
    inputs: &[PathBuf],
    out: &Path,
    work: &Path,
    opts: &SliceOptions,
) -> Result<(), AnalysisError> {
    let mut args: Vec<OsString> = vec!["--export-gcode".into(), "--load".into()];
    args.push(opts.profile.clone().into_os_string());
    args.extend(inputs.iter().map(|p| p.clone().into_os_string()));
    args.push("-o".into());
    args.push(out.as_os_str().to_owned());
    let fence = Fence {
        timeout: opts.timeout,
        memory_limit_bytes: opts.memory_limit_bytes,
        nice: opts.nice,
    };
    run_fenced(&opts.slicer, &args, &[], &fence, work).map(|_| ())
}

/// Checks that the slicer's output is a real print: present, with moves and filament,
/// without placeholder header values.
fn verify(gcode: &Path) -> Result<GcodeAnalysis, AnalysisError> {
    let len = std::fs::metadata(gcode).map(|m| m.len()).unwrap_or(0);
    if len == 0 {
        return Err(slicer_error(
            "the slicer reported success but wrote no G-code".into(),
        ));
    }
    let mut head = Vec::new();
    File::open(gcode)
        .and_then(|f| f.take(64 * 1024).read_to_end(&mut head))
        .map_err(|e| AnalysisError::io(gcode, e))?;
    let head = String::from_utf8_lossy(&head);
    if let Some(p) = [";TIME:6666", ";Filament used: 0m", "#P_TIME#"]
        .iter()
        .find(|p| head.contains(**p))
    {
        return Err(slicer_error(format!(
            "the slicer wrote a placeholder header ({p}): the G-code is not usable"
        )));
    }
    let file = File::open(gcode).map_err(|e| AnalysisError::io(gcode, e))?;
    let analysis = analyze_gcode(BufReader::new(file)).map_err(|e| AnalysisError::io(gcode, e))?;
    if analysis.moves == 0 || analysis.filament_mm.unwrap_or(0.0) <= 0.0 || analysis.layers == 0 {
        return Err(slicer_error(
            "the slicer's G-code prints nothing (no extruding moves): is the model inside the build volume?".into(),
        ));
    }
    Ok(analysis)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_stl_export_reads_back() {
        let mut b = crate::mesh::MeshBuilder::default();
        b.triangle_at([[0.0, 0.0, 0.0], [0.001, 0.0, 0.0], [0.0, 0.001, 0.0]])
            .expect("tri");
        let mesh = b.finish().expect("mesh");
        let dir = std::env::temp_dir().join(format!("slicer-stl-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = write_stl(&mesh, 1000.0, &dir.join("m.stl")).expect("stl");
        let back = crate::mesh::stl::parse(&std::fs::read(&path).expect("read")).expect("parse");
        assert_eq!(back.positions[1], [1.0, 0.0, 0.0]);
        std::fs::remove_dir_all(&dir).ok();
    }
}
