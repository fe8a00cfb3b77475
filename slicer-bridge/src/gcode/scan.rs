//! A streaming G-code line scanner and word parser.
//!
//! The `gcode` crate is deliberately not used (see TOOLING.md): its AST parser rejects
//! a whole file over one Klipper macro or `M117 text` line, it stores `f32` (so long
//! absolute `E` values lose whole hundredths of a millimetre), and it runs at a tenth
//! of the speed of this scanner. Here a file is read in fixed-size chunks through
//! [`BufRead`], lines are cut with `memchr`, and numbers are parsed by hand into `f64`:
//! memory stays constant however large the file is.

use std::io::{self, BufRead};

/// Lines longer than this are cut (base64 thumbnails are ~80 characters; nothing in
/// G-code needs kilobytes, and a hostile file must not make one line fill memory).
pub const MAX_LINE: usize = 4096;

/// Calls `f` with every line (without its `\n` or `\r`), reading through `input` in
/// chunks. Returns the number of bytes read.
pub fn for_each_line(mut input: impl BufRead, mut f: impl FnMut(&[u8])) -> io::Result<u64> {
    let mut carry: Vec<u8> = Vec::with_capacity(MAX_LINE);
    let mut total = 0u64;
    loop {
        let chunk = input.fill_buf()?;
        if chunk.is_empty() {
            break;
        }
        let len = chunk.len();
        total += len as u64;
        let mut start = 0;
        for end in memchr::memchr_iter(b'\n', chunk) {
            if carry.is_empty() {
                f(trim_cr(&chunk[start..end]));
            } else {
                append_capped(&mut carry, &chunk[start..end]);
                f(trim_cr(&carry));
                carry.clear();
            }
            start = end + 1;
        }
        append_capped(&mut carry, &chunk[start..]);
        input.consume(len);
    }
    if !carry.is_empty() {
        f(trim_cr(&carry));
    }
    Ok(total)
}

fn append_capped(carry: &mut Vec<u8>, bytes: &[u8]) {
    let room = MAX_LINE.saturating_sub(carry.len());
    carry.extend_from_slice(&bytes[..bytes.len().min(room)]);
}

fn trim_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// A command such as `G1` or `M204`: its letter and number (`G29.1` has minor 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Code {
    /// `G`, `M` or `T`.
    pub letter: u8,
    /// The number after the letter.
    pub major: u32,
    /// The digit after a dot, if any.
    pub minor: u8,
}

/// The parameters of one line: a value per letter A–Z and which are present.
#[derive(Debug, Clone, Default)]
pub struct Words {
    present: u32,
    values: [f64; 26],
}

impl Words {
    /// The value of parameter `letter` (upper case), if present.
    pub fn get(&self, letter: u8) -> Option<f64> {
        let i = usize::from(letter.wrapping_sub(b'A'));
        (i < 26 && self.present & (1 << i) != 0).then(|| self.values[i])
    }

    /// True if no parameter is present.
    pub fn is_empty(&self) -> bool {
        self.present == 0
    }

    fn set(&mut self, letter: u8, value: f64) {
        let i = usize::from(letter - b'A');
        self.present |= 1 << i;
        self.values[i] = value;
    }
}

/// What a line is, once its comment is set aside.
#[derive(Debug, PartialEq)]
pub enum Line<'a> {
    /// A G/M/T command (parameters are written into the caller's [`Words`]).
    Command(Code),
    /// A `;` comment line; the text after the `;`.
    Comment(&'a [u8]),
    /// Blank lines, Klipper macros and anything else without a G/M/T code.
    Other,
}

/// Commands whose rest of line is free text, not parameters.
fn takes_text(code: Code) -> bool {
    code.letter == b'M' && matches!(code.major, 23 | 28 | 30 | 32 | 117 | 118 | 550 | 928)
}

/// Parses one line. `words` is cleared and filled with the command's parameters.
pub fn parse_line<'a>(line: &'a [u8], words: &mut Words) -> Line<'a> {
    words.present = 0;
    let mut s = skip_blank(line, 0);
    if line.get(s) == Some(&b';') {
        return Line::Comment(&line[s + 1..]);
    }
    let body = match memchr::memchr2(b';', b'*', line) {
        Some(end) => &line[..end],
        None => line,
    };
    // Optional line number: `N123 G1 …`.
    if matches!(body.get(s), Some(b'N' | b'n')) {
        let (_, next) = number(body, s + 1);
        s = skip_blank(body, next);
    }
    let Some(&letter) = body.get(s) else {
        return Line::Other;
    };
    let letter = letter.to_ascii_uppercase();
    if !matches!(letter, b'G' | b'M' | b'T') || !body.get(s + 1).is_some_and(u8::is_ascii_digit) {
        return Line::Other;
    }
    let (major, minor, mut i) = code_number(body, s + 1);
    let code = Code {
        letter,
        major,
        minor,
    };
    if takes_text(code) {
        return Line::Command(code);
    }
    while i < body.len() {
        let c = body[i].to_ascii_uppercase();
        if c.is_ascii_uppercase() {
            let (value, next) = number(body, i + 1);
            if next > i + 1 {
                words.set(c, value);
            } else {
                words.set(c, 0.0);
            }
            i = next.max(i + 1);
        } else {
            i += 1;
        }
    }
    Line::Command(code)
}

/// Parses a command number such as `1`, `204` or `29.1` as integers.
fn code_number(body: &[u8], mut i: usize) -> (u32, u8, usize) {
    let mut major = 0u32;
    while let Some(d) = body.get(i).filter(|b| b.is_ascii_digit()) {
        major = major.saturating_mul(10).saturating_add(u32::from(d - b'0'));
        i += 1;
    }
    let mut minor = 0u8;
    if body.get(i) == Some(&b'.') {
        i += 1;
        if let Some(d) = body.get(i).filter(|b| b.is_ascii_digit()) {
            minor = d - b'0';
        }
        while body.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
    }
    (major, minor, i)
}

fn skip_blank(line: &[u8], mut i: usize) -> usize {
    while i < line.len() && (line[i] == b' ' || line[i] == b'\t') {
        i += 1;
    }
    i
}

/// Parses `[-+]digits[.digits]` at `i`; returns the value and the index after it.
///
/// No exponent: in G-code `E` is the extruder axis, so `X1E2` means X=1, E=2. Up to 18
/// significant digits are exact integers, and one division by an exact power of ten is
/// correctly rounded, so the result equals what `str::parse::<f64>` would give.
pub fn number(bytes: &[u8], mut i: usize) -> (f64, usize) {
    let negative = match bytes.get(i) {
        Some(b'-') => {
            i += 1;
            true
        }
        Some(b'+') => {
            i += 1;
            false
        }
        _ => false,
    };
    let start = i;
    let mut mantissa: u64 = 0;
    let mut significant = 0u32;
    // Power of ten to apply: + for integer digits past 18, − per kept decimal.
    let mut exponent = 0i32;
    // Two plain loops (integer part, then decimals) keep the hot path branch-light.
    while let Some(d) = digit(bytes, i) {
        if significant < 18 {
            mantissa = mantissa * 10 + d;
            significant += u32::from(mantissa != 0);
        } else {
            exponent += 1;
        }
        i += 1;
    }
    let mut any = i > start;
    if bytes.get(i) == Some(&b'.') {
        i += 1;
        while let Some(d) = digit(bytes, i) {
            if significant < 18 {
                mantissa = mantissa * 10 + d;
                significant += u32::from(mantissa != 0);
                exponent -= 1;
            }
            any = true;
            i += 1;
        }
    }
    if !any {
        return (0.0, start.saturating_sub(usize::from(negative)));
    }
    let value = if exponent < 0 {
        mantissa as f64 / POW10[(-exponent).min(22) as usize]
    } else {
        mantissa as f64 * POW10[exponent.min(22) as usize]
    };
    (if negative { -value } else { value }, i)
}

#[inline]
fn digit(bytes: &[u8], i: usize) -> Option<u64> {
    let d = bytes.get(i)?.wrapping_sub(b'0');
    (d <= 9).then_some(u64::from(d))
}

const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_match_std_parse() {
        for text in [
            "0",
            "1",
            "-1.5",
            "98765.43219",
            "+.5",
            "0.000123",
            "1234567890.12345",
            "7.",
        ] {
            let (v, end) = number(text.as_bytes(), 0);
            let expected: f64 = text.trim_end_matches('.').parse().expect("std");
            assert_eq!(v, expected, "{text}");
            assert_eq!(end, text.len());
        }
        assert_eq!(number(b"X", 0), (0.0, 0));
    }

    #[test]
    fn commands_comments_checksums_and_text() {
        let mut w = Words::default();
        assert_eq!(
            parse_line(b"N12 G1 X10.5 Y-3 E0.04 F1800 ; perimeter", &mut w),
            Line::Command(Code {
                letter: b'G',
                major: 1,
                minor: 0
            })
        );
        assert_eq!(w.get(b'X'), Some(10.5));
        assert_eq!(w.get(b'Y'), Some(-3.0));
        assert_eq!(w.get(b'E'), Some(0.04));
        assert_eq!(w.get(b'Z'), None);
        assert!(matches!(parse_line(b"g1x1e2*71", &mut w), Line::Command(_)));
        assert_eq!((w.get(b'X'), w.get(b'E')), (Some(1.0), Some(2.0)));
        assert!(matches!(
            parse_line(b"M117 X marks the spot", &mut w),
            Line::Command(_)
        ));
        assert!(w.is_empty());
        assert_eq!(parse_line(b"  ;LAYER:3", &mut w), Line::Comment(b"LAYER:3"));
        assert_eq!(parse_line(b"PRINT_START BED=60", &mut w), Line::Other);
        assert_eq!(parse_line(b"", &mut w), Line::Other);
        assert!(matches!(
            parse_line(b"G29.1", &mut w),
            Line::Command(Code { minor: 1, .. })
        ));
    }

    #[test]
    fn lines_across_chunks_and_overlong_lines() {
        let text = format!("G1 X1\r\n;{}\nG1 X2", "a".repeat(10_000));
        let reader = std::io::BufReader::with_capacity(7, text.as_bytes());
        let mut lines = Vec::new();
        let total = for_each_line(reader, |l| lines.push(l.len())).expect("scan");
        assert_eq!(total, text.len() as u64);
        assert_eq!(lines, vec![5, MAX_LINE, 5]);
    }
}
