//! Thumbnails that slicers already put inside files.
//!
//! - 3MF projects: `Metadata/thumbnail.png` (PrusaSlicer, core 3MF), `Metadata/plate_1.png`
//!   (Bambu Studio, Orca).
//! - G-code: base64 blocks in comments, `; thumbnail begin 300x300 12345` … `; thumbnail end`
//!   (PNG), `; thumbnail_QOI begin …` (QOI, re-encoded here as PNG). JPG blocks are
//!   skipped (decoding JPEG would need another dependency). The largest image wins.

use std::io::{Read, Seek};

use base64::Engine;

use crate::error::AnalysisError;
use crate::gcode::scan::for_each_line;
use crate::mesh::threemf::read_member;

/// PNG files start with this.
pub const PNG_SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";
/// How much of a G-code file is searched: slicers write thumbnails in the header.
pub const GCODE_HEAD: u64 = 8 * 1024 * 1024;
/// Largest base64 block accepted (a 1024×1024 PNG is well under this).
const MAX_BLOCK: usize = 4 * 1024 * 1024;

/// The members of a 3MF tried in order.
const THREEMF_CANDIDATES: &[&str] = &[
    "Metadata/thumbnail.png",
    "Metadata/plate_1.png",
    "Metadata/Thumbnails/thumbnail.png",
];

/// The PNG embedded in a 3MF, if any.
pub fn from_3mf<R: Read + Seek>(reader: R) -> Result<Option<Vec<u8>>, AnalysisError> {
    let mut archive = zip::ZipArchive::new(reader)
        .map_err(|e| AnalysisError::invalid(format!("damaged 3MF (zip) archive: {e}")))?;
    for name in THREEMF_CANDIDATES {
        if archive.index_for_name(name).is_none() {
            continue;
        }
        let bytes = read_member(&mut archive, name, 0)?;
        if bytes.starts_with(PNG_SIGNATURE) {
            return Ok(Some(bytes));
        }
    }
    Ok(None)
}

/// An image block found in G-code comments.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Block {
    qoi: bool,
    area: u64,
    base64: Vec<u8>,
}

/// The largest PNG or QOI thumbnail in a G-code header, as PNG bytes.
pub fn from_gcode(head: &[u8]) -> Result<Option<Vec<u8>>, AnalysisError> {
    let mut best: Option<Block> = None;
    let mut open: Option<Block> = None;
    for_each_line(head, |line| {
        let Some(text) = line.strip_prefix(b";").map(|t| t.trim_ascii()) else {
            return;
        };
        if let Some(block) = open.as_mut() {
            if text.starts_with(b"thumbnail") && text.ends_with(b"end") {
                let done = open.take().filter(|b| !b.base64.is_empty());
                if let Some(done) = done.filter(|d| best.as_ref().is_none_or(|b| d.area > b.area)) {
                    best = Some(done);
                }
            } else if block.base64.len() + text.len() <= MAX_BLOCK {
                block.base64.extend_from_slice(text);
            } else {
                open = None;
            }
        } else {
            open = block_start(text);
        }
    })
    .map_err(|e| AnalysisError::invalid(format!("could not read the G-code: {e}")))?;
    let Some(block) = best else { return Ok(None) };
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(&block.base64)
        .map_err(|e| {
            AnalysisError::invalid(format!("the embedded thumbnail is not valid base64: {e}"))
        })?;
    if block.qoi {
        qoi_to_png(&bytes).map(Some)
    } else if bytes.starts_with(PNG_SIGNATURE) {
        Ok(Some(bytes))
    } else {
        Err(AnalysisError::invalid(
            "the embedded thumbnail is not a PNG",
        ))
    }
}

/// `thumbnail begin 640x480 151928` or `thumbnail_QOI begin …`; JPG blocks are not opened.
fn block_start(text: &[u8]) -> Option<Block> {
    let text = std::str::from_utf8(text).ok()?;
    let (kind, rest) = text.split_once(" begin ")?;
    let qoi = match kind {
        "thumbnail" | "thumbnail_PNG" => false,
        "thumbnail_QOI" => true,
        _ => return None,
    };
    let dims = rest.split_whitespace().next()?;
    let (w, h) = dims.split_once('x')?;
    let area = w.parse::<u64>().ok()? * h.parse::<u64>().ok()?;
    Some(Block {
        qoi,
        area,
        base64: Vec::new(),
    })
}

fn qoi_to_png(bytes: &[u8]) -> Result<Vec<u8>, AnalysisError> {
    let (header, pixels) = qoi::decode_to_vec(bytes).map_err(|e| {
        AnalysisError::invalid(format!("the embedded QOI thumbnail is broken: {e}"))
    })?;
    let color = match header.channels {
        qoi::Channels::Rgb => png::ColorType::Rgb,
        qoi::Channels::Rgba => png::ColorType::Rgba,
    };
    super::encode_png(header.width, header.height, color, &pixels)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(kind: &str, w: u32, h: u32, payload: &[u8]) -> String {
        let b64 = base64::engine::general_purpose::STANDARD.encode(payload);
        let mut out = format!("; {kind} begin {w}x{h} {}\n", b64.len());
        for chunk in b64.as_bytes().chunks(78) {
            out.push_str(&format!("; {}\n", String::from_utf8_lossy(chunk)));
        }
        out.push_str(&format!("; {kind} end\n;\n"));
        out
    }

    #[test]
    fn largest_png_or_qoi_block_wins() {
        let small = super::super::encode_png(2, 2, png::ColorType::Rgba, &[9; 16]).expect("png");
        let pixels = vec![200u8; 4 * 4 * 4];
        let qoi = qoi::encode_to_vec(&pixels, 4, 4).expect("qoi");
        let text = format!(
            "; generated\n{}{}{}G1 X0\n",
            block("thumbnail", 2, 2, &small),
            block("thumbnail_QOI", 4, 4, &qoi),
            block("thumbnail_JPG", 64, 64, b"\xff\xd8\xffjpeg")
        );
        let png = from_gcode(text.as_bytes()).expect("scan").expect("found");
        let decoder = png::Decoder::new(std::io::Cursor::new(png));
        let reader = decoder.read_info().expect("png");
        assert_eq!((reader.info().width, reader.info().height), (4, 4));
        assert_eq!(from_gcode(b"G1 X1\n").expect("scan"), None);
    }
}
