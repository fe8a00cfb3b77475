//! Content sniffing: what a file *is*, judged from its bytes, never from its name.
//!
//! Intake calls [`sniff_file`] on every upload before anything else looks at it, so that
//! a `.exe` renamed `.stl` is refused with a reason the student can act on ("this is a
//! Windows executable, not a 3D model") instead of failing somewhere deep in a parser.
//!
//! The checks are cheap: the first [`HEAD_LEN`] bytes, the file length, and for zip
//! containers the central directory. Full parsing (and its hostile-input limits) is the
//! job of the format readers.

use std::fs::File;
use std::io::Read;
use std::path::Path;

/// How many bytes from the start of a file the text heuristics look at.
pub const HEAD_LEN: usize = 64 * 1024;

/// A model or print file format Farmhand accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileFormat {
    /// Binary STL: 80-byte header, u32 triangle count, 50 bytes per triangle.
    StlBinary,
    /// ASCII STL: `solid … facet normal … endsolid`.
    StlAscii,
    /// Wavefront OBJ.
    Obj,
    /// 3MF: a zip holding `3D/3dmodel.model` (core, PrusaSlicer and Bambu projects).
    ThreeMf,
    /// A sliced 3MF (`.gcode.3mf`, Bambu/Orca): a zip holding `Metadata/plate_N.gcode`.
    GcodeThreeMf,
    /// Plain-text G-code.
    Gcode,
    /// Prusa binary G-code (`.bgcode`, magic `GCDE`).
    Bgcode,
}

impl FileFormat {
    /// The short name used in the API's `analysis.format` field.
    pub fn api_name(self) -> &'static str {
        match self {
            FileFormat::StlBinary | FileFormat::StlAscii => "stl",
            FileFormat::Obj => "obj",
            FileFormat::ThreeMf => "3mf",
            FileFormat::GcodeThreeMf => "gcode.3mf",
            FileFormat::Gcode => "gcode",
            FileFormat::Bgcode => "bgcode",
        }
    }

    /// True for files a printer can run as they are (no slicing needed).
    pub fn is_printable(self) -> bool {
        matches!(
            self,
            FileFormat::Gcode | FileFormat::Bgcode | FileFormat::GcodeThreeMf
        )
    }
}

/// Why a file is not accepted, with what it looks like instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{detected}, not a 3D model or G-code file")]
pub struct NotAModel {
    /// A human description of what the bytes are, e.g. "a Windows executable (PE)".
    pub detected: String,
}

/// Errors from sniffing a file on disk.
#[derive(Debug, thiserror::Error)]
pub enum SniffError {
    /// The file is readable but is not something Farmhand accepts.
    #[error(transparent)]
    NotAModel(#[from] NotAModel),
    /// The file could not be read.
    #[error("could not read the uploaded file: {0}")]
    Io(#[from] std::io::Error),
}

/// Sniffs a file on disk. Zip containers are opened to tell a 3MF from any other zip.
pub fn sniff_file(path: &Path) -> Result<FileFormat, SniffError> {
    sniff_file_named(path, &path.to_string_lossy())
}

/// Like [`sniff_file`] for a file stored under another name (an upload's temporary
/// file): `original_name` only sharpens the error for a damaged file (a broken binary
/// STL is described by how its size disagrees with its header); it never makes a file
/// acceptable.
pub fn sniff_file_named(path: &Path, original_name: &str) -> Result<FileFormat, SniffError> {
    let mut file = File::open(path)?;
    let len = file.metadata()?.len();
    let mut head = Vec::with_capacity(HEAD_LEN.min(len as usize));
    (&mut file).take(HEAD_LEN as u64).read_to_end(&mut head)?;
    match sniff_head(&head, len) {
        Sniffed::Known(format) => Ok(format),
        Sniffed::Zip => Ok(classify_zip(File::open(path)?)?),
        Sniffed::Unknown(detected) => {
            let detected = broken_stl(original_name, &head, len).unwrap_or(detected);
            Err(NotAModel { detected }.into())
        }
    }
}

/// An unrecognised binary file named `.stl` is most likely a damaged binary STL: say
/// exactly how its size disagrees with its header, which the student can act on
/// ("export again"), rather than "unrecognised binary data".
fn broken_stl(name: &str, head: &[u8], len: u64) -> Option<String> {
    let is_stl = Path::new(name)
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("stl"));
    let binary = looks_binary(strip_bom(head)) && known_binary_signature(head).is_none();
    (is_stl && binary).then(|| crate::mesh::stl::broken_binary_reason(head, len))
}

/// Result of looking at the head of a file.
#[derive(Debug, PartialEq, Eq)]
pub enum Sniffed {
    /// A format Farmhand accepts.
    Known(FileFormat),
    /// A zip container: 3MF or not, only its directory can tell.
    Zip,
    /// Something else, described for the error message.
    Unknown(String),
}

/// Judges a file from its first bytes (`head`, up to [`HEAD_LEN`]) and its total length.
pub fn sniff_head(head: &[u8], total_len: u64) -> Sniffed {
    if total_len == 0 {
        return Sniffed::Unknown("an empty file (0 bytes)".into());
    }
    if is_binary_stl(head, total_len) {
        return Sniffed::Known(FileFormat::StlBinary);
    }
    if let Some(what) = known_binary_signature(head) {
        return what;
    }
    let text = strip_bom(head);
    if looks_binary(text) {
        return Sniffed::Unknown(format!(
            "unrecognised binary data (first bytes {})",
            hex_prefix(head)
        ));
    }
    if starts_with_ignore_case(trim_start(text), b"solid") {
        return Sniffed::Known(FileFormat::StlAscii);
    }
    match classify_text(text) {
        Some(format) => Sniffed::Known(format),
        None => Sniffed::Unknown(describe_text(text)),
    }
}

/// A binary STL's size is exactly determined by its triangle count.
fn is_binary_stl(head: &[u8], total_len: u64) -> bool {
    if head.len() < 84 {
        return false;
    }
    let count = u32::from_le_bytes([head[80], head[81], head[82], head[83]]) as u64;
    total_len == 84 + 50 * count
}

fn known_binary_signature(head: &[u8]) -> Option<Sniffed> {
    const SIGNATURES: &[(&[u8], &str)] = &[
        (b"MZ", "a Windows executable (PE)"),
        (b"\x7fELF", "a Linux executable (ELF)"),
        (b"\xcf\xfa\xed\xfe", "a macOS executable (Mach-O)"),
        (b"%PDF", "a PDF document"),
        (b"\x89PNG", "a PNG image"),
        (b"\xff\xd8\xff", "a JPEG image"),
        (b"GIF8", "a GIF image"),
        (b"\x1f\x8b", "a gzip archive"),
        (b"7z\xbc\xaf", "a 7-Zip archive"),
        (b"Rar!", "a RAR archive"),
        (b"\xd0\xcf\x11\xe0", "a Microsoft Office document"),
        (b"{\\rtf", "an RTF document"),
        (b"#!", "a script"),
    ];
    if head.starts_with(b"GCDE") {
        return Some(Sniffed::Known(FileFormat::Bgcode));
    }
    if head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06") {
        return Some(Sniffed::Zip);
    }
    SIGNATURES
        .iter()
        .find(|(magic, _)| head.starts_with(magic))
        .map(|(_, what)| Sniffed::Unknown((*what).to_string()))
}

fn strip_bom(head: &[u8]) -> &[u8] {
    head.strip_prefix(b"\xef\xbb\xbf").unwrap_or(head)
}

fn trim_start(text: &[u8]) -> &[u8] {
    let start = text
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(text.len());
    &text[start..]
}

fn starts_with_ignore_case(text: &[u8], prefix: &[u8]) -> bool {
    text.len() >= prefix.len() && text[..prefix.len()].eq_ignore_ascii_case(prefix)
}

/// Text files have no NUL bytes and few control characters.
fn looks_binary(head: &[u8]) -> bool {
    let controls = head
        .iter()
        .filter(|&&b| b == 0 || (b < 0x20 && !matches!(b, b'\n' | b'\r' | b'\t' | 0x0c)))
        .count();
    head.contains(&0) || controls * 100 > head.len().max(1)
}

/// Tells OBJ from G-code by counting lines that only one of them would contain.
fn classify_text(text: &[u8]) -> Option<FileFormat> {
    let mut obj_lines = 0usize;
    let mut obj_vertices = 0usize;
    let mut gcode_lines = 0usize;
    let mut other_lines = 0usize;
    // `;` starts a G-code comment; some real files (thumbnail/config-only exports) hold
    // nothing else.
    let mut semicolon_comments = 0usize;
    // The last line of the head may be cut short: leave it out.
    let complete = match text.iter().rposition(|&b| b == b'\n') {
        Some(end) if text.len() == HEAD_LEN => &text[..end],
        _ => text,
    };
    for raw in complete.split(|&b| b == b'\n') {
        let line = trim_start(raw);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.first() == Some(&b';') {
            semicolon_comments += 1;
            continue;
        }
        if line.is_empty() || line[0] == b'#' {
            continue;
        }
        let word = line
            .split(|b| b.is_ascii_whitespace())
            .next()
            .unwrap_or_default();
        if is_gcode_word(line) {
            gcode_lines += 1;
        } else if matches!(
            word,
            b"v" | b"vn" | b"vt" | b"vp" | b"f" | b"o" | b"g" | b"s" | b"l" | b"mtllib" | b"usemtl"
        ) {
            obj_lines += 1;
            obj_vertices += usize::from(word == b"v");
        } else {
            other_lines += 1;
        }
    }
    let meaningful = obj_lines + gcode_lines;
    if meaningful == 0 && semicolon_comments > 0 && other_lines * 4 <= semicolon_comments {
        return Some(FileFormat::Gcode);
    }
    if meaningful == 0 || other_lines * 4 > meaningful + other_lines {
        return None;
    }
    if gcode_lines > obj_lines {
        Some(FileFormat::Gcode)
    } else if obj_vertices > 0 {
        Some(FileFormat::Obj)
    } else {
        None
    }
}

/// `G1 X…`, `M104 S…`, `T0`, optionally with a line number `N12 G1…`; Klipper macros
/// (upper-case words such as `PRINT_START`) and `M117 text` count too.
fn is_gcode_word(line: &[u8]) -> bool {
    let line = match line.first() {
        Some(b'N' | b'n') if line.get(1).is_some_and(u8::is_ascii_digit) => {
            let rest = &line[1..];
            let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
            trim_start(&rest[digits..])
        }
        _ => line,
    };
    match line {
        [b'G' | b'M' | b'T' | b'g' | b'm' | b't', digit, ..] => digit.is_ascii_digit(),
        _ => {
            let word: Vec<u8> = line
                .iter()
                .copied()
                .take_while(|b| !b.is_ascii_whitespace())
                .collect();
            word.len() >= 4
                && word
                    .iter()
                    .all(|b| b.is_ascii_uppercase() || *b == b'_' || b.is_ascii_digit())
                && word.contains(&b'_')
        }
    }
}

fn describe_text(text: &[u8]) -> String {
    let start = trim_start(text);
    if starts_with_ignore_case(start, b"<!doctype html") || starts_with_ignore_case(start, b"<html")
    {
        "an HTML page".into()
    } else if starts_with_ignore_case(start, b"<?xml") {
        "an XML document".into()
    } else if start.first() == Some(&b'{') || start.first() == Some(&b'[') {
        "a JSON document".into()
    } else {
        "plain text that is neither STL, OBJ nor G-code".into()
    }
}

fn hex_prefix(head: &[u8]) -> String {
    head.iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Reads a zip's central directory to tell a 3MF (or sliced `.gcode.3mf`) from other zips.
fn classify_zip(file: File) -> Result<FileFormat, NotAModel> {
    let archive = zip::ZipArchive::new(file).map_err(|e| NotAModel {
        detected: format!("a damaged zip archive ({e})"),
    })?;
    let mut has_model = false;
    let mut has_plate_gcode = false;
    for name in archive.file_names() {
        let Ok(name) = name else { continue };
        let lower = name.to_ascii_lowercase();
        // The root part is normally 3D/3dmodel.model; _rels/.rels may name another.
        has_model |= lower.starts_with("3d/") && lower.ends_with(".model");
        has_plate_gcode |= lower.starts_with("metadata/plate_") && lower.ends_with(".gcode");
    }
    if has_plate_gcode {
        Ok(FileFormat::GcodeThreeMf)
    } else if has_model {
        Ok(FileFormat::ThreeMf)
    } else {
        Err(NotAModel {
            detected: "a zip archive that is not a 3MF (it has no 3D/3dmodel.model)".into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sniff(bytes: &[u8]) -> Sniffed {
        sniff_head(&bytes[..bytes.len().min(HEAD_LEN)], bytes.len() as u64)
    }

    #[test]
    fn binary_stl_is_recognised_by_its_size_even_with_a_solid_header() {
        let mut stl = b"solid exported by SolidWorks".to_vec();
        stl.resize(80, b' ');
        stl.extend_from_slice(&1u32.to_le_bytes());
        stl.extend_from_slice(&[0u8; 50]);
        assert_eq!(sniff(&stl), Sniffed::Known(FileFormat::StlBinary));
        // One byte short: the count lies about the size, so it is not a binary STL.
        stl.pop();
        assert!(matches!(sniff(&stl), Sniffed::Unknown(_)));
    }

    #[test]
    fn ascii_stl_in_any_case() {
        for text in [
            "solid x\nfacet normal 0 0 1\n",
            "SOLID\r\n",
            "\u{feff}  solid cube",
        ] {
            assert_eq!(
                sniff(text.as_bytes()),
                Sniffed::Known(FileFormat::StlAscii),
                "{text:?}"
            );
        }
    }

    #[test]
    fn executables_and_documents_are_named() {
        let cases: &[(&[u8], &str)] = &[
            (b"MZ\x90\x00\x03\x00\x00\x00", "Windows executable"),
            (b"\x7fELF\x02\x01\x01", "Linux executable"),
            (b"%PDF-1.7\n", "PDF"),
            (b"<!DOCTYPE html><html>", "HTML"),
            (b"hello, this is my essay\nabout boats\n", "plain text"),
            (b"", "empty"),
        ];
        for (bytes, expected) in cases {
            match sniff(bytes) {
                Sniffed::Unknown(what) => assert!(what.contains(expected), "{what} vs {expected}"),
                other => panic!("{bytes:?} sniffed as {other:?}"),
            }
        }
    }

    #[test]
    fn obj_and_gcode_are_told_apart() {
        let obj =
            b"# Blender\nmtllib a.mtl\no Cube\nv 1 0 0\nv 0 1 0\nv 0 0 1\nvn 0 0 1\nf 1 2 3\n";
        assert_eq!(sniff(obj), Sniffed::Known(FileFormat::Obj));
        let gcode = b"; generated by PrusaSlicer\nM73 P0 R31\nG28 W\nPRINT_START BED=60\nM117 Printing boat\nG1 X10 Y10 E1.5\n";
        assert_eq!(sniff(gcode), Sniffed::Known(FileFormat::Gcode));
        assert_eq!(
            sniff(b"GCDE\x01\x00\x00\x00"),
            Sniffed::Known(FileFormat::Bgcode)
        );
    }

    #[test]
    fn a_damaged_stl_is_described_by_its_sizes() {
        let dir = std::env::temp_dir().join(format!("sniff-stl-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("upload.tmp");
        let mut stl = vec![0u8; 80];
        stl.extend_from_slice(&10u32.to_le_bytes());
        stl.extend_from_slice(&[0u8; 100]);
        std::fs::write(&path, &stl).expect("write");
        let err = sniff_file_named(&path, "Bracket.STL").expect_err("broken");
        assert!(
            err.to_string()
                .contains("truncated binary STL: header promises 10 triangles"),
            "{err}"
        );
        let err = sniff_file(&path).expect_err("no hint");
        assert!(
            err.to_string().contains("unrecognised binary data"),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn zip_without_model_is_refused() {
        assert_eq!(sniff(b"PK\x03\x04rest"), Sniffed::Zip);
        let dir = std::env::temp_dir().join(format!("sniff-zip-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("not-a-3mf.zip");
        {
            let file = File::create(&path).expect("create");
            let mut zip = zip::ZipWriter::new(file);
            zip.start_file("readme.txt", zip::write::SimpleFileOptions::default())
                .expect("start");
            std::io::Write::write_all(&mut zip, b"hi").expect("write");
            zip.finish().expect("finish");
        }
        let err = sniff_file(&path).expect_err("plain zip refused");
        assert!(err.to_string().contains("not a 3MF"), "{err}");
        std::fs::remove_dir_all(&dir).ok();
    }
}
