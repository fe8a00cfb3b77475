//! Wavefront OBJ: `v` and `f` lines; everything else (normals, texture coordinates,
//! groups, materials) is irrelevant to printing and skipped.
//!
//! Faces may be written `f 1 2 3`, `f 1/1/1 …`, `f 1//1 …`, with negative (relative)
//! indices, and as polygons of any size, which are fan-triangulated.

use std::io::BufRead;

use super::{MAX_TRIANGLES, Mesh, MeshBuilder};
use crate::error::{AnalysisError, thousands};

/// Parses an OBJ stream line by line.
pub fn parse(mut input: impl BufRead) -> Result<Mesh, AnalysisError> {
    let mut builder = MeshBuilder::default();
    // OBJ index (1-based, in file order) -> deduplicated vertex id.
    let mut ids: Vec<u32> = Vec::new();
    let mut line = Vec::new();
    let mut number = 0u64;
    let mut face = Vec::new();
    loop {
        line.clear();
        let read = input
            .read_until(b'\n', &mut line)
            .map_err(|e| AnalysisError::invalid(format!("could not read the OBJ file: {e}")))?;
        if read == 0 {
            break;
        }
        number += 1;
        let mut words = line
            .split(|b| b.is_ascii_whitespace())
            .filter(|w| !w.is_empty());
        match words.next() {
            Some(b"v") => {
                if ids.len() as u64 >= 3 * MAX_TRIANGLES {
                    return Err(AnalysisError::invalid("the OBJ file has too many vertices"));
                }
                let p = parse_vertex(&mut words, number)?;
                ids.push(builder.vertex(p)?);
            }
            Some(b"f") => {
                face.clear();
                for word in words {
                    face.push(resolve(word, &ids, number)?);
                }
                if face.len() < 3 {
                    return Err(bad_line(number, "a face needs at least three vertices"));
                }
                for i in 1..face.len() - 1 {
                    builder.triangle([face[0], face[i], face[i + 1]])?;
                }
            }
            _ => {}
        }
    }
    if ids.is_empty() {
        return Err(AnalysisError::invalid("the OBJ file has no vertices"));
    }
    builder.finish()
}

fn bad_line(number: u64, what: &str) -> AnalysisError {
    AnalysisError::invalid(format!("OBJ line {}: {what}", thousands(number)))
}

fn parse_vertex<'a>(
    words: &mut impl Iterator<Item = &'a [u8]>,
    number: u64,
) -> Result<[f32; 3], AnalysisError> {
    let mut p = [0f32; 3];
    for c in &mut p {
        let word = words
            .next()
            .ok_or_else(|| bad_line(number, "a vertex needs three coordinates"))?;
        *c = std::str::from_utf8(word)
            .ok()
            .and_then(|s| s.parse::<f32>().ok())
            .ok_or_else(|| bad_line(number, "a vertex coordinate is not a number"))?;
    }
    Ok(p)
}

/// Resolves one face corner (`7`, `7/2`, `7//3`, `-1`) to a deduplicated vertex id.
fn resolve(word: &[u8], ids: &[u32], number: u64) -> Result<u32, AnalysisError> {
    let index = word.split(|&b| b == b'/').next().unwrap_or_default();
    let value: i64 = std::str::from_utf8(index)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad_line(number, "a face index is not a number"))?;
    let zero_based = match value {
        v if v > 0 => v - 1,
        v if v < 0 => ids.len() as i64 + v,
        _ => -1,
    };
    usize::try_from(zero_based)
        .ok()
        .and_then(|i| ids.get(i).copied())
        .ok_or_else(|| {
            bad_line(
                number,
                &format!(
                    "face index {value} refers to a vertex that does not exist ({} defined so far)",
                    ids.len()
                ),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slashes_negative_indices_and_polygons() {
        let obj = b"# quad\nv 0 0 0\nv 1 0 0\nv 1 1 0\nv 0 1 0\nvn 0 0 1\nvt 0 0\nf 1/1/1 2/1/1 3//1 4\nf -4 -2 -1\n";
        let mesh = parse(&obj[..]).expect("obj");
        assert_eq!(mesh.positions.len(), 4);
        assert_eq!(mesh.triangles, vec![[0, 1, 2], [0, 2, 3], [0, 2, 3]]);
    }

    #[test]
    fn bad_references_and_coordinates() {
        let err = parse(&b"v 0 0 0\nv 1 0 0\nf 1 2 3\n"[..]).expect_err("range");
        assert!(err.to_string().contains("line 3"), "{err}");
        let err = parse(&b"v 0 nan 0\n"[..]).expect_err("nan");
        assert!(err.to_string().contains("finite"), "{err}");
        let err = parse(&b""[..]).expect_err("empty");
        assert!(err.to_string().contains("no vertices"), "{err}");
    }
}
