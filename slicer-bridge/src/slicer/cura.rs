//! CuraEngine as a second slicing backend, with the two pitfalls of running the engine
//! without Cura's GUI handled (see corpus/README.md):
//!
//! - The engine writes a placeholder header (`;TIME:6666`, `;Filament used: 0m`,
//!   `;MINX:2.14748e+06`) and prints the real one on its log after `Gcode header after
//!   slicing:`. The GUI swaps it in; so does [`slice_with_cura`].
//! - The engine leaves `{machine_depth}`-style placeholders of the printer's start and
//!   end G-code unreplaced. Values given in [`CuraOptions::settings`] are substituted;
//!   any placeholder left in a command is an error naming it, never a silent bad file
//!   (`G1 Y{machine_depth}` would move wherever the firmware's parser decides).
//!
//! CuraEngine reads STL only, so Farmhand's own mesh (validated, unit-guessed,
//! deduplicated) is always exported for it; `center_object=true` puts it on the bed.

use std::ffi::OsString;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::fence::{Fence, run_fenced, slicer_error};
use super::{SliceReport, verify, write_stl};
use crate::error::AnalysisError;
use crate::mesh::load_mesh;
use crate::report::guess_scale;
use crate::sniff::FileFormat;

/// How to run CuraEngine.
#[derive(Debug, Clone, PartialEq)]
pub struct CuraOptions {
    /// The engine executable (default `CuraEngine`, looked up in `PATH`).
    pub engine: PathBuf,
    /// The printer definition, e.g. `…/resources/definitions/creality_ender3.def.json`.
    pub definition: PathBuf,
    /// Folders the engine searches for inherited definitions and extruders
    /// (`CURA_ENGINE_SEARCH_PATH`).
    pub search_path: Vec<PathBuf>,
    /// `-s key=value` settings; also the values for `{key}` placeholders.
    pub settings: Vec<(String, String)>,
    /// Killed after this long.
    pub timeout: Duration,
    /// Address-space limit, bytes.
    pub memory_limit_bytes: u64,
    /// `nice` increment (0–19).
    pub nice: u8,
}

impl CuraOptions {
    /// Options for a definition inside Cura's `resources/definitions` folder: the search
    /// path is that folder and its sibling `extruders`.
    pub fn new(definition: impl Into<PathBuf>) -> Self {
        let definition = definition.into();
        let dir = definition
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let extruders = dir
            .parent()
            .map(|r| r.join("extruders"))
            .unwrap_or_default();
        CuraOptions {
            engine: PathBuf::from("CuraEngine"),
            definition,
            search_path: vec![dir, extruders],
            settings: Vec::new(),
            timeout: Duration::from_secs(600),
            memory_limit_bytes: 2 << 30,
            nice: 10,
        }
    }
}

/// Slices `model` with CuraEngine into G-code at `output` (temporary file, then rename).
pub fn slice_with_cura(
    model: &Path,
    output: &Path,
    opts: &CuraOptions,
) -> Result<SliceReport, AnalysisError> {
    super::in_workdir(model, output, |format, work| {
        slice_in(model, format, output, work, opts)
    })
}

fn slice_in(
    model: &Path,
    format: FileFormat,
    output: &Path,
    work: &Path,
    opts: &CuraOptions,
) -> Result<SliceReport, AnalysisError> {
    let started = Instant::now();
    let mesh = load_mesh(model, format)?;
    let scale = guess_scale(&mesh, format != FileFormat::ThreeMf);
    let stl = write_stl(&mesh, scale, &work.join("model.stl"))?;
    let raw = work.join("raw.gcode");
    let log = run_fenced(
        &opts.engine,
        &engine_args(opts, &stl, &raw),
        &[search_env(opts)],
        &fence(opts),
        work,
    )?;
    let header = real_header(&log)?;
    let fixed = work.join("out.gcode");
    finish_gcode(&raw, &fixed, &header, &opts.settings)?;
    let gcode = verify(&fixed)?;
    std::fs::rename(&fixed, output).map_err(|e| AnalysisError::io(output, e))?;
    let is_plain_stl = matches!(format, FileFormat::StlBinary | FileFormat::StlAscii);
    Ok(SliceReport {
        gcode,
        used_stl_fallback: !is_plain_stl || scale != 1.0,
        elapsed: started.elapsed(),
    })
}

fn engine_args(opts: &CuraOptions, stl: &Path, out: &Path) -> Vec<OsString> {
    let mut args: Vec<OsString> = vec!["slice".into(), "-v".into(), "-j".into()];
    args.push(opts.definition.clone().into_os_string());
    args.extend(["-s".into(), "center_object=true".into()]);
    for (key, value) in &opts.settings {
        args.push("-s".into());
        args.push(format!("{key}={value}").into());
    }
    args.extend([
        "-l".into(),
        stl.as_os_str().to_owned(),
        "-o".into(),
        out.as_os_str().to_owned(),
    ]);
    args
}

fn search_env(opts: &CuraOptions) -> (String, OsString) {
    let joined = std::env::join_paths(&opts.search_path).unwrap_or_default();
    ("CURA_ENGINE_SEARCH_PATH".to_string(), joined)
}

fn fence(opts: &CuraOptions) -> Fence {
    Fence {
        timeout: opts.timeout,
        memory_limit_bytes: opts.memory_limit_bytes,
        nice: opts.nice,
    }
}

/// The header block the engine logs between `Gcode header after slicing:` and
/// `End of gcode header.`.
fn real_header(log: &Path) -> Result<Vec<String>, AnalysisError> {
    let text = std::fs::read(log).map_err(|e| AnalysisError::io(log, e))?;
    let text = String::from_utf8_lossy(&text);
    let mut lines = text
        .lines()
        .skip_while(|l| !l.starts_with("Gcode header after slicing:"));
    if lines.next().is_none() {
        return Err(slicer_error(
            "CuraEngine logged no G-code header: its file would carry placeholder times".into(),
        ));
    }
    Ok(lines
        .take_while(|l| !l.starts_with("End of gcode header"))
        .filter(|l| l.starts_with(';'))
        .map(str::to_string)
        .collect())
}

/// Copies the engine's G-code, replacing its leading placeholder header with `header`
/// and `{key}` placeholders with `settings`, line by line (memory stays constant).
fn finish_gcode(
    raw: &Path,
    fixed: &Path,
    header: &[String],
    settings: &[(String, String)],
) -> Result<(), AnalysisError> {
    let input = File::open(raw).map_err(|_| slicer_error("CuraEngine wrote no G-code".into()))?;
    let mut input = BufReader::new(input);
    let file = File::create(fixed).map_err(|e| AnalysisError::io(fixed, e))?;
    let mut out = BufWriter::new(file);
    let write_err = |e: std::io::Error| AnalysisError::io(fixed, e);
    let mut line = Vec::new();
    let mut in_header = true;
    loop {
        line.clear();
        if input
            .read_until(b'\n', &mut line)
            .map_err(|e| AnalysisError::io(raw, e))?
            == 0
        {
            break;
        }
        if in_header {
            if line.starts_with(b";") {
                continue;
            }
            for h in header {
                writeln!(out, "{h}").map_err(write_err)?;
            }
            in_header = false;
        }
        let text = substitute(&line, settings)?;
        out.write_all(&text).map_err(write_err)?;
    }
    out.flush().map_err(write_err)
}

/// Fills `{key}` placeholders in the command part of a line (comments may hold JSON).
fn substitute(line: &[u8], settings: &[(String, String)]) -> Result<Vec<u8>, AnalysisError> {
    let command_end = line.iter().position(|&b| b == b';').unwrap_or(line.len());
    if !line[..command_end].contains(&b'{') {
        return Ok(line.to_vec());
    }
    let (command, comment) = line.split_at(command_end);
    let mut text = String::from_utf8_lossy(command).into_owned();
    for (key, value) in settings {
        text = text.replace(&format!("{{{key}}}"), value);
    }
    if let (Some(open), Some(close)) = (text.find('{'), text.find('}')) {
        let name = text.get(open..=close).unwrap_or("{…}").to_string();
        return Err(slicer_error(format!(
            "CuraEngine left the placeholder {name} unreplaced in the G-code (`{}`): give its value in the slicer settings",
            text.trim()
        )));
    }
    let mut out = text.into_bytes();
    out.extend_from_slice(comment);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_filled_or_named() {
        let settings = vec![("machine_depth".to_string(), "235".to_string())];
        let line =
            substitute(b"G1 X0 Y{machine_depth} ;Present print\n", &settings).expect("filled");
        assert_eq!(line, b"G1 X0 Y235 ;Present print\n");
        let err = substitute(b"G1 Y{machine_width}\n", &settings).expect_err("unknown");
        assert!(err.to_string().contains("{machine_width}"), "{err}");
        let json = b";SETTING_3 {\"global_quality\": \"x\"}\n";
        assert_eq!(substitute(json, &[]).expect("comment"), json.to_vec());
    }
}
