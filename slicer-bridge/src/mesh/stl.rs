//! STL, binary and ASCII, read by hand.
//!
//! `stl_io` was not used: it misreads binary files whose 80-byte header starts with
//! `solid ` (SolidWorks writes that), bare `solid` lines and upper-case `SOLID`
//! (see TOOLING.md). The rule here is the only reliable one: a file is binary iff its
//! length is exactly `84 + 50 × count`, where `count` is the u32 at offset 80. Anything
//! else that starts with `solid` is scanned as ASCII tokens; everything else is a broken
//! binary file, and the error says how it is broken.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use super::{MAX_TRIANGLES, Mesh, MeshBuilder, too_many_triangles};
use crate::error::{AnalysisError, thousands};

const HEADER: usize = 84;
const RECORD: usize = 50;

/// Parses a whole STL file held in memory.
pub fn parse(bytes: &[u8]) -> Result<Mesh, AnalysisError> {
    if bytes.is_empty() {
        return Err(AnalysisError::invalid("the file is empty (0 bytes)"));
    }
    if let Some(count) = binary_count(bytes) {
        return parse_binary(bytes, count);
    }
    if looks_ascii(bytes) {
        return parse_ascii(bytes);
    }
    Err(describe_broken_binary(bytes))
}

/// The triangle count if the file is a well-formed binary STL by the size rule. A count
/// of 0 with a whole number of records after the header is taken from the size (some
/// exporters never fill the count in).
fn binary_count(bytes: &[u8]) -> Option<u64> {
    let count = u64::from(u32::from_le_bytes(bytes.get(80..84)?.try_into().ok()?));
    let len = bytes.len() as u64;
    let body = len.checked_sub(HEADER as u64)?;
    if len == HEADER as u64 + RECORD as u64 * count {
        Some(count)
    } else if count == 0 && body > 0 && body % RECORD as u64 == 0 && !looks_ascii(bytes) {
        Some(body / RECORD as u64)
    } else {
        None
    }
}

/// ASCII STL starts with `solid` (any case, after blanks or a BOM) and has no NUL bytes
/// in its first kilobyte (binary headers may start with `solid` too).
fn looks_ascii(bytes: &[u8]) -> bool {
    let text = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
    let start = text.iter().position(|b| !b.is_ascii_whitespace());
    let Some(start) = start else { return false };
    let text = &text[start..];
    let head = &text[..text.len().min(1024)];
    text.len() >= 5 && text[..5].eq_ignore_ascii_case(b"solid") && !head.contains(&0)
}

fn describe_broken_binary(bytes: &[u8]) -> AnalysisError {
    AnalysisError::invalid(broken_binary_reason(bytes, bytes.len() as u64))
}

/// Why a file that should be a binary STL is not one, from its first bytes (`head`, at
/// least the 84-byte header when the file has one) and its length.
pub fn broken_binary_reason(head: &[u8], len: u64) -> String {
    let Some(count) = head.get(80..84) else {
        return format!("truncated binary STL: {len} bytes is shorter than the 84-byte header");
    };
    let count = u64::from(u32::from_le_bytes([count[0], count[1], count[2], count[3]]));
    let expected = HEADER as u64 + RECORD as u64 * count;
    let what = if expected > len {
        "truncated binary STL"
    } else {
        "binary STL with a wrong triangle count"
    };
    format!(
        "{what}: header promises {} triangles ({} bytes) but the file has {} bytes",
        thousands(count),
        thousands(expected),
        thousands(len)
    )
}

fn parse_binary(bytes: &[u8], count: u64) -> Result<Mesh, AnalysisError> {
    if count > MAX_TRIANGLES {
        return Err(too_many_triangles(count));
    }
    let mut builder = MeshBuilder::with_capacity(count);
    for record in bytes[HEADER..].chunks_exact(RECORD).take(count as usize) {
        builder.triangle_at(record_corners(record))?;
    }
    builder.finish()
}

/// One 50-byte record: normal (ignored: recomputed from the corners), 3 corners, 2
/// attribute bytes.
fn record_corners(record: &[u8]) -> [[f32; 3]; 3] {
    let corner = |i: usize| -> [f32; 3] {
        let at = 12 + 12 * i;
        let f = |o: usize| {
            let b = &record[at + o..at + o + 4];
            f32::from_le_bytes([b[0], b[1], b[2], b[3]])
        };
        [f(0), f(4), f(8)]
    };
    [corner(0), corner(1), corner(2)]
}

/// Reads an STL file. A binary one is streamed record by record, so memory holds the
/// mesh but never the file; ASCII and broken files are read whole (ASCII has no size
/// rule to check up front, and the daemon caps upload sizes).
pub fn parse_file(path: &Path) -> Result<Mesh, AnalysisError> {
    let io = |e| AnalysisError::io(path, e);
    let mut file = File::open(path).map_err(io)?;
    let len = file.metadata().map_err(io)?.len();
    let mut head = Vec::with_capacity(1024);
    (&mut file).take(1024).read_to_end(&mut head).map_err(io)?;
    let count = head
        .get(80..84)
        .map(|c| u64::from(u32::from_le_bytes([c[0], c[1], c[2], c[3]])));
    let Some(count) = count.filter(|&c| c > 0 && len == HEADER as u64 + RECORD as u64 * c) else {
        return parse(&std::fs::read(path).map_err(io)?);
    };
    if count > MAX_TRIANGLES {
        return Err(too_many_triangles(count));
    }
    file.seek(SeekFrom::Start(HEADER as u64)).map_err(io)?;
    let mut reader = BufReader::with_capacity(256 * 1024, file);
    let mut builder = MeshBuilder::with_capacity(count);
    let mut record = [0u8; RECORD];
    for _ in 0..count {
        reader.read_exact(&mut record).map_err(io)?;
        builder.triangle_at(record_corners(&record))?;
    }
    builder.finish()
}

/// Scans ASCII STL as whitespace-separated tokens: every `vertex` keyword is followed
/// by three numbers, and every three vertices make a facet. `facet normal`, `outer loop`
/// and the `solid` name are ignored, which also copes with CRLF line ends and odd case.
fn parse_ascii(bytes: &[u8]) -> Result<Mesh, AnalysisError> {
    let mut builder = MeshBuilder::with_capacity(bytes.len() as u64 / 250);
    let mut tokens = bytes
        .split(|b| b.is_ascii_whitespace())
        .filter(|t| !t.is_empty());
    let mut corners = [[0f32; 3]; 3];
    let mut filled = 0usize;
    while let Some(token) = tokens.next() {
        if !token.eq_ignore_ascii_case(b"vertex") {
            continue;
        }
        let facet = builder.triangle_count() + 1;
        for slot in corners[filled].iter_mut() {
            let number = tokens.next().ok_or_else(|| {
                AnalysisError::invalid(format!(
                    "ASCII STL ends in the middle of facet {}",
                    thousands(facet as u64)
                ))
            })?;
            *slot = parse_number(number, facet)?;
        }
        filled += 1;
        if filled == 3 {
            builder.triangle_at(corners)?;
            filled = 0;
        }
    }
    if filled != 0 {
        return Err(AnalysisError::invalid(format!(
            "ASCII STL ends in the middle of facet {}",
            thousands(builder.triangle_count() as u64 + 1)
        )));
    }
    builder.finish()
}

fn parse_number(token: &[u8], facet: usize) -> Result<f32, AnalysisError> {
    std::str::from_utf8(token)
        .ok()
        .and_then(|s| s.parse::<f32>().ok())
        .ok_or_else(|| {
            AnalysisError::invalid(format!(
                "ASCII STL facet {}: {:?} is not a number",
                thousands(facet as u64),
                String::from_utf8_lossy(&token[..token.len().min(40)])
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binary(header: &[u8], tris: &[[[f32; 3]; 3]], claimed: u32) -> Vec<u8> {
        let mut out = header.to_vec();
        out.resize(80, b' ');
        out.extend_from_slice(&claimed.to_le_bytes());
        for t in tris {
            out.extend_from_slice(&[0u8; 12]);
            for v in t {
                for c in v {
                    out.extend_from_slice(&c.to_le_bytes());
                }
            }
            out.extend_from_slice(&[0, 0]);
        }
        out
    }

    const TRI: [[f32; 3]; 3] = [[0.0, 0.0, 0.0], [10.0, 0.0, 0.0], [0.0, 10.0, 0.0]];

    #[test]
    fn binary_with_solid_header_is_read_as_binary() {
        let bytes = binary(b"solid made by SolidWorks", &[TRI, TRI], 2);
        let mesh = parse(&bytes).expect("binary");
        assert_eq!(mesh.triangles.len(), 2);
        assert_eq!(mesh.positions.len(), 3);
    }

    #[test]
    fn streamed_file_equals_in_memory_parse() {
        let bytes = binary(
            b"solid streamed",
            &[TRI, [[5.0, 5.0, 5.0], [6.0, 5.0, 5.0], [5.0, 6.0, 5.0]]],
            2,
        );
        let dir = std::env::temp_dir().join(format!("stl-stream-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("m.stl");
        std::fs::write(&path, &bytes).expect("write");
        assert_eq!(
            parse_file(&path).expect("file"),
            parse(&bytes).expect("bytes")
        );
        std::fs::write(&path, b"solid a\nfacet normal 0 0 1\nouter loop\nvertex 0 0 0\nvertex 1 0 0\nvertex 0 1 0\nendloop\nendfacet\nendsolid\n").expect("write");
        assert_eq!(parse_file(&path).expect("ascii").triangles.len(), 1);
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn ascii_upper_case_crlf() {
        let text = "SOLID cube\r\n FACET NORMAL 0 0 1\r\n  OUTER LOOP\r\n   VERTEX 0 0 0\r\n   VERTEX 1e1 0 0\r\n   VERTEX 0 10.0 0\r\n  ENDLOOP\r\n ENDFACET\r\nENDSOLID\r\n";
        let mesh = parse(text.as_bytes()).expect("ascii");
        assert_eq!(mesh.triangles.len(), 1);
        assert_eq!(mesh.positions[1], [10.0, 0.0, 0.0]);
    }

    #[test]
    fn empty_file() {
        let err = parse(b"").expect_err("empty");
        assert!(err.to_string().contains("empty (0 bytes)"), "{err}");
    }

    #[test]
    fn truncated_binary_names_both_sizes() {
        let mut bytes = binary(b"binary", &[TRI; 60], 1000);
        bytes.truncate(3000);
        let err = parse(&bytes).expect_err("truncated");
        assert_eq!(
            err.to_string(),
            "invalid model: truncated binary STL: header promises 1,000 triangles (50,084 bytes) but the file has 3,000 bytes"
        );
    }

    #[test]
    fn count_that_lies_upward_or_downward() {
        let bytes = binary(b"x", &[TRI; 3], 2);
        let err = parse(&bytes).expect_err("too small count");
        assert!(err.to_string().contains("wrong triangle count"), "{err}");
        // A count of 4 billion must not make the reader allocate: it is refused from sizes.
        let bytes = binary(b"x", &[TRI], u32::MAX);
        let err = parse(&bytes).expect_err("huge count");
        assert!(err.to_string().contains("4,294,967,295 triangles"), "{err}");
    }

    #[test]
    fn absurd_but_consistent_count_is_capped() {
        // Not materialised: the cap is checked before any triangle is read.
        let err = parse_binary(&[0u8; 84], MAX_TRIANGLES + 1).expect_err("cap");
        assert!(err.to_string().contains("at most 20,000,000"), "{err}");
    }

    #[test]
    fn nan_coordinates_are_refused() {
        let bytes = binary(
            b"x",
            &[[[f32::NAN, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]],
            1,
        );
        assert!(
            parse(&bytes)
                .expect_err("nan")
                .to_string()
                .contains("finite")
        );
        let text = b"solid x\nfacet normal 0 0 1\nouter loop\nvertex inf 0 0\nvertex 1 0 0\nvertex 0 1 0\nendloop\nendfacet\nendsolid\n";
        assert!(parse(text).expect_err("inf").to_string().contains("finite"));
    }

    #[test]
    fn ascii_cut_mid_facet_and_garbage_numbers() {
        let text = b"solid x\nfacet normal 0 0 1\nouter loop\nvertex 0 0 0\nvertex 1 0";
        let err = parse(text).expect_err("cut");
        assert!(err.to_string().contains("middle of facet 1"), "{err}");
        let text = b"solid x\nvertex 0 zero 0\n";
        assert!(
            parse(text)
                .expect_err("bad")
                .to_string()
                .contains("not a number")
        );
    }
}
