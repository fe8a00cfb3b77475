//! [`analyze_file`]: the contract's `analysis` object for any accepted file.
//!
//! Models get the mesh report ([`crate::report`]); G-code gets the planner simulation
//! ([`crate::gcode`]); a sliced `.gcode.3mf` has its first plate's G-code analysed
//! straight out of the archive; binary G-code is recognised but not simulated.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::AnalysisError;
use crate::gcode::{GcodeAnalysis, analyze_gcode};
use crate::mesh::{Mesh, load_mesh, zipcap::Capped};
use crate::report::{fits as fits_volume, mesh_report};
use crate::sniff::{FileFormat, SniffError, sniff_file};

/// Options for analysis.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnalyzeOptions {
    /// Printer id → build volume in mm (x, y, z).
    pub build_volumes: Vec<(String, [f64; 3])>,
    /// Filament diameter, mm (1.75 unless the lab runs 2.85 mm printers).
    pub filament_diameter_mm: f64,
    /// Material density, g/cm³ (PLA 1.24, PETG 1.27, ABS 1.04).
    pub density_g_cm3: f64,
}

impl Default for AnalyzeOptions {
    fn default() -> Self {
        AnalyzeOptions {
            build_volumes: Vec::new(),
            filament_diameter_mm: 1.75,
            density_g_cm3: 1.24,
        }
    }
}

/// The contract's `analysis` object (the daemon adds `state` and `error`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Analysis {
    /// "stl", "obj", "3mf", "gcode", "gcode.3mf" or "bgcode".
    pub format: String,
    /// Triangle count (models).
    pub triangles: Option<u64>,
    /// Bounding-box size in mm: the model's, or the extruded part of a G-code file.
    pub bbox_mm: Option<[f64; 3]>,
    /// Every edge shared by exactly two triangles (models).
    pub watertight: Option<bool>,
    /// Edges used once or more than twice (models).
    pub non_manifold_edges: Option<u64>,
    /// Enclosed volume, cm³ (models).
    pub volume_cm3: Option<f64>,
    /// Set when the model is clearly not in millimetres, e.g. "metres: scaled ×1000".
    pub units_guess: Option<String>,
    /// Printer id → whether the model fits its build volume.
    pub fits: BTreeMap<String, bool>,
    /// Simulated print time, seconds (G-code).
    pub estimated_time_s: Option<f64>,
    /// The slicer's own estimate from the file's comments, seconds.
    pub slicer_estimate_s: Option<f64>,
    /// Filament length, mm (G-code).
    pub filament_mm: Option<f64>,
    /// Filament weight for the configured diameter and density, g (G-code).
    pub filament_g: Option<f64>,
    /// Layer count (G-code).
    pub layers: Option<u64>,
    /// Things staff should know, one sentence each.
    pub warnings: Vec<String>,
}

/// Analyses a model or G-code file; the format is sniffed from the content.
pub fn analyze_file(path: &Path, opts: &AnalyzeOptions) -> Result<Analysis, AnalysisError> {
    let format = sniff(path)?;
    match format {
        FileFormat::StlBinary | FileFormat::StlAscii | FileFormat::Obj | FileFormat::ThreeMf => {
            analyze_model(path, format, opts)
        }
        FileFormat::Gcode => {
            let file = File::open(path).map_err(|e| AnalysisError::io(path, e))?;
            let g = analyze_gcode(BufReader::with_capacity(256 * 1024, file))
                .map_err(|e| AnalysisError::io(path, e))?;
            Ok(gcode_analysis(format, &g, opts))
        }
        FileFormat::GcodeThreeMf => analyze_plate_gcode(path, opts),
        FileFormat::Bgcode => Ok(Analysis {
            format: format.api_name().into(),
            warnings: vec![
                "binary G-code (.bgcode) is recognised but not analysed: time and filament come from the printer"
                    .into(),
            ],
            ..Analysis::default()
        }),
    }
}

/// Sniffs, turning "not a model" into the analysis error the daemon shows.
pub(crate) fn sniff(path: &Path) -> Result<FileFormat, AnalysisError> {
    sniff_file(path).map_err(|e| match e {
        // A damaged STL's description is already the whole reason.
        SniffError::NotAModel(n) if n.detected.contains(" STL") => {
            AnalysisError::invalid(n.detected)
        }
        SniffError::NotAModel(n) => AnalysisError::invalid(n.to_string()),
        SniffError::Io(e) => AnalysisError::io(path, e),
    })
}

fn analyze_model(
    path: &Path,
    format: FileFormat,
    opts: &AnalyzeOptions,
) -> Result<Analysis, AnalysisError> {
    let (mesh, item_sizes) = if format == FileFormat::ThreeMf {
        let file = File::open(path).map_err(|e| AnalysisError::io(path, e))?;
        let items = crate::mesh::threemf::parse_items(file)?;
        let sizes: Vec<[f64; 3]> = items.iter().map(size_of).collect();
        (Mesh::merge(items), sizes)
    } else {
        (load_mesh(path, format)?, Vec::new())
    };
    let unitless = format != FileFormat::ThreeMf;
    let mut r = mesh_report(&mesh, unitless, &opts.build_volumes);
    fit_items_separately(
        &mut r.fits,
        &mut r.warnings,
        &item_sizes,
        &opts.build_volumes,
    );
    Ok(Analysis {
        format: format.api_name().into(),
        triangles: Some(r.triangles),
        bbox_mm: Some(r.bbox_mm.map(round3)),
        watertight: Some(r.watertight),
        non_manifold_edges: Some(r.non_manifold_edges),
        volume_cm3: Some(round3(r.volume_cm3)),
        units_guess: r.units_guess,
        fits: r.fits,
        warnings: r.warnings,
        ..Analysis::default()
    })
}

fn size_of(mesh: &Mesh) -> [f64; 3] {
    mesh.bounds().map_or([0.0; 3], |(lo, hi)| {
        std::array::from_fn(|a| f64::from(hi[a]) - f64::from(lo[a]))
    })
}

/// A 3MF's build items may be laid out over several beds (Bambu Studio puts each plate
/// beside the last): when the whole layout does not fit but every item does on its own,
/// the model fits, printed plate by plate or re-arranged, and staff are told.
fn fit_items_separately(
    fits: &mut BTreeMap<String, bool>,
    warnings: &mut Vec<String>,
    items: &[[f64; 3]],
    volumes: &[(String, [f64; 3])],
) {
    if items.len() < 2 {
        return;
    }
    let mut rescued = Vec::new();
    for (id, volume) in volumes {
        if fits.get(id) == Some(&false) && items.iter().all(|size| fits_volume(*size, *volume)) {
            fits.insert(id.clone(), true);
            rescued.push(id.as_str());
        }
    }
    if !rescued.is_empty() {
        warnings.push(format!(
            "the {} build items are laid out wider than the bed of {}, but each fits on its own: print them plate by plate or re-arrange them",
            items.len(),
            rescued.join(", ")
        ));
    }
}

/// Rounds to 0.001 (a micrometre, a millisecond, a milligram): float noise such as
/// 20.000001907 mm helps nobody reading the JSON.
fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

/// Grams of filament for a length, diameter and density.
pub fn filament_grams(length_mm: f64, diameter_mm: f64, density_g_cm3: f64) -> f64 {
    let area_mm2 = std::f64::consts::PI * diameter_mm * diameter_mm / 4.0;
    length_mm * area_mm2 / 1000.0 * density_g_cm3
}

fn gcode_analysis(format: FileFormat, g: &GcodeAnalysis, opts: &AnalyzeOptions) -> Analysis {
    let bbox_mm = g
        .bbox
        .map(|(lo, hi)| std::array::from_fn(|a| round3((hi[a] - lo[a]).max(0.0))));
    let fits = match bbox_mm {
        Some(b) => opts
            .build_volumes
            .iter()
            .map(|(id, v)| (id.clone(), fits_volume(b, *v)))
            .collect(),
        None => BTreeMap::new(),
    };
    Analysis {
        format: format.api_name().into(),
        bbox_mm,
        fits,
        estimated_time_s: (g.moves > 0).then_some(round3(g.estimated_time_s)),
        slicer_estimate_s: g.slicer_estimate_s,
        filament_mm: g.filament_mm.map(round3),
        filament_g: g.filament_mm.map(|mm| {
            round3(filament_grams(
                mm,
                opts.filament_diameter_mm,
                opts.density_g_cm3,
            ))
        }),
        layers: Some(g.layers),
        warnings: g.warnings.clone(),
        ..Analysis::default()
    }
}

/// A `.gcode.3mf` (Bambu/Orca plate file): analyses `Metadata/plate_1.gcode` (or the
/// first plate present) streamed out of the archive through the zip-bomb caps.
fn analyze_plate_gcode(path: &Path, opts: &AnalyzeOptions) -> Result<Analysis, AnalysisError> {
    let file = File::open(path).map_err(|e| AnalysisError::io(path, e))?;
    let mut archive = zip::ZipArchive::new(file)
        .map_err(|e| AnalysisError::invalid(format!("damaged 3MF (zip) archive: {e}")))?;
    let mut plates: Vec<String> = archive
        .file_names()
        .filter_map(Result::ok)
        .filter(|n| n.starts_with("Metadata/plate_") && n.ends_with(".gcode"))
        .map(|n| n.into_owned())
        .collect();
    plates.sort();
    let name = plates
        .first()
        .ok_or_else(|| AnalysisError::invalid("the .gcode.3mf holds no plate G-code"))?;
    let member = archive
        .by_name(name)
        .map_err(|e| AnalysisError::invalid(format!("{name}: {e}")))?;
    let compressed = member.compressed_size();
    let capped = Capped::new(member, name, compressed, 0);
    let g = analyze_gcode(BufReader::with_capacity(256 * 1024, capped))
        .map_err(|e| AnalysisError::invalid(format!("{name}: {e}")))?;
    let mut analysis = gcode_analysis(FileFormat::GcodeThreeMf, &g, opts);
    if plates.len() > 1 {
        analysis.warnings.push(format!(
            "the file holds {} plates; only {name} was analysed",
            plates.len()
        ));
    }
    Ok(analysis)
}

/// Reads at most `limit` bytes of a file (used for thumbnails embedded in G-code).
pub(crate) fn read_head(path: &Path, limit: u64) -> Result<Vec<u8>, AnalysisError> {
    let file = File::open(path).map_err(|e| AnalysisError::io(path, e))?;
    let mut out = Vec::new();
    file.take(limit)
        .read_to_end(&mut out)
        .map_err(|e| AnalysisError::io(path, e))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grams_of_pla() {
        // PrusaSlicer: 1320.10 mm of 1.75 mm PLA at 1.24 g/cm³ = 3.94 g.
        let g = filament_grams(1320.10, 1.75, 1.24);
        assert!((g - 3.94).abs() < 0.01, "{g}");
    }

    #[test]
    fn zero_byte_file_is_a_clear_error() {
        let dir = std::env::temp_dir().join(format!("analysis-empty-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("empty.stl");
        std::fs::write(&path, b"").expect("write");
        let err = analyze_file(&path, &AnalyzeOptions::default()).expect_err("empty");
        assert!(err.to_string().contains("empty"), "{err}");
        std::fs::remove_dir_all(&dir).ok();
    }

    fn scratch(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("analysis-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        dir
    }

    #[test]
    fn sliced_3mf_plate_gcode_is_analysed_from_the_archive() {
        use std::io::Write;
        let dir = scratch("gcode3mf");
        let path = dir.join("plate.gcode.3mf");
        let mut zip = zip::ZipWriter::new(File::create(&path).expect("create"));
        let opts = zip::write::SimpleFileOptions::default();
        zip.start_file("3D/3dmodel.model", opts).expect("start");
        zip.start_file("Metadata/plate_1.gcode", opts)
            .expect("start");
        zip.write_all(b"; total estimated time: 2s\nM83\nG1 X0 Y0 F6000\n;LAYER_CHANGE\nG1 Z0.2\nG1 X50 E2 F3000\n")
            .expect("write");
        zip.finish().expect("finish");
        let a = analyze_file(&path, &AnalyzeOptions::default()).expect("analysis");
        assert_eq!(a.format, "gcode.3mf");
        assert_eq!((a.layers, a.filament_mm), (Some(1), Some(2.0)));
        assert_eq!(a.slicer_estimate_s, Some(2.0));
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn binary_gcode_is_recognised_not_simulated() {
        let dir = scratch("bgcode");
        let path = dir.join("print.bgcode");
        std::fs::write(&path, b"GCDE\x01\x00\x00\x00\x01\x00").expect("write");
        let a = analyze_file(&path, &AnalyzeOptions::default()).expect("analysis");
        assert_eq!(a.format, "bgcode");
        assert_eq!(a.estimated_time_s, None);
        assert!(a.warnings[0].contains("not analysed"));
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn analysis_round_trips_through_json() {
        let a = Analysis {
            format: "stl".into(),
            triangles: Some(12),
            fits: BTreeMap::from([("mk3-1".to_string(), true)]),
            ..Analysis::default()
        };
        let json = serde_json::to_string(&a).expect("json");
        assert!(json.contains("\"bbox_mm\":null"), "{json}");
        assert_eq!(serde_json::from_str::<Analysis>(&json).expect("back"), a);
    }
}
