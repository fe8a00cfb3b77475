//! One indexed, vertex-deduplicated triangle mesh, and the readers that fill it.
//!
//! Every reader ([`stl`], [`obj`], [`threemf`]) feeds triangles into a [`MeshBuilder`],
//! which merges vertices with bit-identical coordinates. Deduplication is what makes the
//! rest possible: watertightness is judged by counting how many triangles use each edge,
//! and that only works when the three corners of neighbouring triangles share indices.
//!
//! Hostile input is refused here, in one place: coordinates must be finite and the
//! triangle count must stay under [`MAX_TRIANGLES`].

pub mod obj;
pub mod stl;
pub mod threemf;
pub mod zipcap;

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::path::Path;

use crate::error::{AnalysisError, thousands};
use crate::sniff::FileFormat;

/// The most triangles Farmhand will load (a 20 M-triangle mesh is ~1 GB of STL; no
/// desktop printer's slicer handles more, and the Pi has to keep it in memory).
pub const MAX_TRIANGLES: u64 = 20_000_000;

/// An indexed triangle mesh in the file's units (millimetres unless a 3MF said otherwise,
/// in which case the 3MF reader has already converted).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Mesh {
    /// Unique vertex positions.
    pub positions: Vec<[f32; 3]>,
    /// Triangles as three indices into `positions`, counter-clockwise seen from outside.
    pub triangles: Vec<[u32; 3]>,
}

impl Mesh {
    /// Axis-aligned bounds as (min, max); `None` for an empty mesh.
    pub fn bounds(&self) -> Option<([f32; 3], [f32; 3])> {
        let first = *self.positions.first()?;
        let mut lo = first;
        let mut hi = first;
        for p in &self.positions {
            for a in 0..3 {
                lo[a] = lo[a].min(p[a]);
                hi[a] = hi[a].max(p[a]);
            }
        }
        Some((lo, hi))
    }

    /// Concatenates meshes (vertices are not merged across them).
    pub fn merge(meshes: Vec<Mesh>) -> Mesh {
        let mut iter = meshes.into_iter();
        let mut out = iter.next().unwrap_or_default();
        for m in iter {
            let offset = out.positions.len() as u32;
            out.positions.extend_from_slice(&m.positions);
            out.triangles
                .extend(m.triangles.iter().map(|t| t.map(|i| i + offset)));
        }
        out
    }

    /// Multiplies every coordinate by `factor` (unit conversion).
    pub fn scale(&mut self, factor: f32) {
        for p in &mut self.positions {
            for c in p.iter_mut() {
                *c *= factor;
            }
        }
    }
}

/// A tiny multiplicative hasher for vertex keys: SipHash's DoS resistance buys nothing
/// here (the caps bound the table) and costs a third of the load time.
#[derive(Default)]
pub(crate) struct VertexHasher(u64);

impl Hasher for VertexHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }
    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

type VertexMap = HashMap<[u32; 3], u32, BuildHasherDefault<VertexHasher>>;

/// Collects triangles and merges identical vertices.
#[derive(Default)]
pub struct MeshBuilder {
    mesh: Mesh,
    index: VertexMap,
}

impl MeshBuilder {
    /// A builder expecting about `triangles` triangles (capped, so a lying header cannot
    /// make it reserve gigabytes).
    pub fn with_capacity(triangles: u64) -> Self {
        let tris = triangles.min(4_000_000) as usize;
        let mut builder = MeshBuilder::default();
        builder.mesh.triangles.reserve(tris);
        builder.mesh.positions.reserve(tris / 2 + 3);
        builder.index.reserve(tris / 2 + 3);
        builder
    }

    /// Adds one vertex (deduplicated) and returns its index.
    pub fn vertex(&mut self, p: [f32; 3]) -> Result<u32, AnalysisError> {
        if p.iter().any(|c| !c.is_finite()) {
            return Err(AnalysisError::invalid(format!(
                "a vertex has a coordinate that is not a finite number ({} {} {})",
                p[0], p[1], p[2]
            )));
        }
        // -0.0 and 0.0 are the same point; adding 0.0 turns -0.0 into 0.0.
        let key = [
            (p[0] + 0.0).to_bits(),
            (p[1] + 0.0).to_bits(),
            (p[2] + 0.0).to_bits(),
        ];
        let next = self.mesh.positions.len() as u32;
        let id = *self.index.entry(key).or_insert(next);
        if id == next {
            self.mesh.positions.push(p);
        }
        Ok(id)
    }

    /// Adds a triangle of three already-added vertex indices.
    pub fn triangle(&mut self, t: [u32; 3]) -> Result<(), AnalysisError> {
        if self.mesh.triangles.len() as u64 >= MAX_TRIANGLES {
            return Err(too_many_triangles(MAX_TRIANGLES + 1));
        }
        self.mesh.triangles.push(t);
        Ok(())
    }

    /// Adds a triangle given by its three corner positions.
    pub fn triangle_at(&mut self, corners: [[f32; 3]; 3]) -> Result<(), AnalysisError> {
        let a = self.vertex(corners[0])?;
        let b = self.vertex(corners[1])?;
        let c = self.vertex(corners[2])?;
        self.triangle([a, b, c])
    }

    /// Number of triangles so far.
    pub fn triangle_count(&self) -> usize {
        self.mesh.triangles.len()
    }

    /// The finished mesh; an empty one is an error because nothing can be printed from it.
    pub fn finish(self) -> Result<Mesh, AnalysisError> {
        if self.mesh.triangles.is_empty() {
            return Err(AnalysisError::invalid("the file contains no triangles"));
        }
        Ok(self.mesh)
    }
}

/// The error for a mesh over [`MAX_TRIANGLES`].
pub(crate) fn too_many_triangles(count: u64) -> AnalysisError {
    AnalysisError::invalid(format!(
        "the model has {} triangles; Farmhand accepts at most {} (simplify it or export with a coarser resolution)",
        thousands(count),
        thousands(MAX_TRIANGLES)
    ))
}

/// Reads any mesh format into a [`Mesh`] in millimetres (3MF units converted; STL and
/// OBJ have no units and are returned as written).
pub fn load_mesh(path: &Path, format: FileFormat) -> Result<Mesh, AnalysisError> {
    match format {
        FileFormat::StlBinary | FileFormat::StlAscii => stl::parse_file(path),
        FileFormat::Obj => {
            let file = std::fs::File::open(path).map_err(|e| AnalysisError::io(path, e))?;
            obj::parse(std::io::BufReader::new(file))
        }
        FileFormat::ThreeMf => {
            let file = std::fs::File::open(path).map_err(|e| AnalysisError::io(path, e))?;
            threemf::parse(file)
        }
        other => Err(AnalysisError::Unsupported {
            reason: format!("a {} file is not a mesh", other.api_name()),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_vertices_are_merged_and_negative_zero_is_zero() {
        let mut b = MeshBuilder::default();
        b.triangle_at([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
            .expect("tri");
        b.triangle_at([[-0.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
            .expect("tri");
        let mesh = b.finish().expect("mesh");
        assert_eq!(mesh.positions.len(), 4);
        assert_eq!(mesh.triangles, vec![[0, 1, 2], [0, 2, 3]]);
    }

    #[test]
    fn nan_and_infinity_are_refused() {
        let mut b = MeshBuilder::default();
        let err = b.vertex([f32::NAN, 0.0, 0.0]).expect_err("NaN");
        assert!(err.to_string().contains("not a finite number"), "{err}");
        assert!(b.vertex([0.0, f32::INFINITY, 0.0]).is_err());
    }

    #[test]
    fn empty_mesh_is_refused() {
        let err = MeshBuilder::default().finish().expect_err("empty");
        assert!(err.to_string().contains("no triangles"), "{err}");
    }
}
