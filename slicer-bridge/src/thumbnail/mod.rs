//! [`render_thumbnail`]: a PNG for the job list.
//!
//! A thumbnail the slicer embedded is preferred (it shows what the student saw); a
//! model without one is rendered by [`raster`]; G-code without one gets its extruded
//! toolpath drawn from the same isometric view (a bounded sample, see
//! [`crate::gcode::toolpath`]).

pub mod embedded;
pub mod raster;

use std::fs::File;
use std::path::Path;

use crate::analysis::{read_head, sniff};
use crate::error::AnalysisError;
use crate::gcode::machine::Machine;
use crate::gcode::scan::for_each_line;
use crate::gcode::toolpath::Toolpath;
use crate::mesh::load_mesh;
use crate::output::write_atomically;
use crate::sniff::FileFormat;

/// The largest thumbnail rendered (a 4096² supersampled buffer is ~100 MB on a Pi).
pub const MAX_SIZE: u32 = 2048;

/// Writes a PNG thumbnail of `input` to `output`: the embedded one when the 3MF or
/// G-code has one (at its own size), else a `size_px`² isometric rendering.
pub fn render_thumbnail(input: &Path, output: &Path, size_px: u32) -> Result<(), AnalysisError> {
    if size_px == 0 || size_px > MAX_SIZE {
        return Err(AnalysisError::Unsupported {
            reason: format!("thumbnail size must be 1–{MAX_SIZE} pixels, not {size_px}"),
        });
    }
    let format = sniff(input)?;
    if let Some(png) = embedded_png(input, format)? {
        return write_atomically(output, &png);
    }
    if format == FileFormat::Gcode {
        let image = gcode_toolpath(input, size_px)?;
        let png = encode_png(image.size, image.size, png::ColorType::Rgba, &image.rgba)?;
        return write_atomically(output, &png);
    }
    if format.is_printable() {
        return Err(AnalysisError::Unsupported {
            reason: format!(
                "a {} file without an embedded thumbnail cannot be drawn",
                format.api_name()
            ),
        });
    }
    let mesh = load_mesh(input, format)?;
    let image = raster::render(&mesh, size_px);
    let png = encode_png(image.size, image.size, png::ColorType::Rgba, &image.rgba)?;
    write_atomically(output, &png)
}

/// Draws the extruded toolpath of a G-code file (a bounded sample of it).
fn gcode_toolpath(input: &Path, size_px: u32) -> Result<raster::Image, AnalysisError> {
    let file = File::open(input).map_err(|e| AnalysisError::io(input, e))?;
    let mut machine = Machine::default();
    machine.state.toolpath = Some(Toolpath::default());
    for_each_line(
        std::io::BufReader::with_capacity(256 * 1024, file),
        |line| {
            machine.line(line);
            // Timing is not needed here: drop planner events as they come.
            machine.state.events.clear();
        },
    )
    .map_err(|e| AnalysisError::io(input, e))?;
    let path = machine.state.toolpath.take().unwrap_or_default();
    if path.printed().is_empty() {
        return Err(AnalysisError::Unsupported {
            reason: "this G-code has no embedded thumbnail and no extruding moves to draw".into(),
        });
    }
    Ok(raster::render_toolpath(path.printed(), size_px))
}

fn embedded_png(input: &Path, format: FileFormat) -> Result<Option<Vec<u8>>, AnalysisError> {
    match format {
        FileFormat::ThreeMf | FileFormat::GcodeThreeMf => {
            let file = File::open(input).map_err(|e| AnalysisError::io(input, e))?;
            embedded::from_3mf(file)
        }
        FileFormat::Gcode => embedded::from_gcode(&read_head(input, embedded::GCODE_HEAD)?),
        _ => Ok(None),
    }
}

/// Encodes 8-bit pixels as PNG.
pub fn encode_png(
    width: u32,
    height: u32,
    color: png::ColorType,
    pixels: &[u8],
) -> Result<Vec<u8>, AnalysisError> {
    let mut out = Vec::new();
    let fail = |e: png::EncodingError| AnalysisError::invalid(format!("could not encode PNG: {e}"));
    {
        let mut encoder = png::Encoder::new(&mut out, width, height);
        encoder.set_color(color);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header().map_err(fail)?;
        writer.write_image_data(pixels).map_err(fail)?;
        writer.finish().map_err(fail)?;
    }
    Ok(out)
}
