//! The validation report for a mesh: size, units, watertightness, volume and fit.
//!
//! Everything here works on the deduplicated [`Mesh`]: an edge shared by exactly two
//! triangles is interior; an edge used once is a hole's rim and one used three or more
//! times is non-manifold. A mesh is watertight when every edge is used exactly twice,
//! and only then is its signed-tetrahedron volume the volume a slicer will fill.

use std::collections::BTreeMap;

use crate::mesh::Mesh;

/// What the mesh says about itself, in millimetres after any unit guess is applied.
#[derive(Debug, Clone, PartialEq)]
pub struct MeshReport {
    /// Triangle count.
    pub triangles: u64,
    /// Size of the axis-aligned bounding box, mm.
    pub bbox_mm: [f64; 3],
    /// Every edge used by exactly two triangles.
    pub watertight: bool,
    /// Edges used once (holes) or more than twice (non-manifold).
    pub non_manifold_edges: u64,
    /// Enclosed volume, cm³ (meaningful only when watertight).
    pub volume_cm3: f64,
    /// A unit guess when the numbers are clearly not millimetres.
    pub units_guess: Option<String>,
    /// The factor applied to reach millimetres (1 unless a guess rescaled the model).
    pub scale: f64,
    /// Does the model fit each printer (by id)?
    pub fits: BTreeMap<String, bool>,
    /// Things staff should know.
    pub warnings: Vec<String>,
}

/// Below this largest side (in file units) a unitless model is taken to be in metres:
/// nothing printable is under a millimetre, and CAD exports in metres are common.
const METRES_BELOW: f64 = 1.0;
/// Between [`METRES_BELOW`] and this, the model might be in inches: said, not rescaled.
const INCHES_BELOW: f64 = 8.0;

/// The factor that brings a mesh to millimetres: 1000 for a unitless model so small it
/// can only be in metres, else 1 (see [`mesh_report`] for the inch case, which is only
/// reported).
pub fn guess_scale(mesh: &Mesh, unitless: bool) -> f64 {
    let largest = mesh.bounds().map_or(0.0, |(lo, hi)| {
        (0..3)
            .map(|a| f64::from(hi[a]) - f64::from(lo[a]))
            .fold(0.0, f64::max)
    });
    if unitless && largest > 0.0 && largest < METRES_BELOW {
        1000.0
    } else {
        1.0
    }
}

/// Builds the report. `unitless` is true for STL/OBJ, whose units are only guessable;
/// 3MF declares its unit and has already been converted.
pub fn mesh_report(mesh: &Mesh, unitless: bool, volumes: &[(String, [f64; 3])]) -> MeshReport {
    let (lo, hi) = mesh.bounds().unwrap_or(([0.0; 3], [0.0; 3]));
    let raw: [f64; 3] = std::array::from_fn(|a| f64::from(hi[a]) - f64::from(lo[a]));
    let largest = raw.iter().copied().fold(0.0, f64::max);
    let mut warnings = Vec::new();
    let (scale, units_guess) = guess_units(largest, unitless, &mut warnings);
    let bbox_mm = raw.map(|v| v * scale);
    let non_manifold_edges = open_edges(mesh);
    let watertight = non_manifold_edges == 0;
    let volume_cm3 = signed_volume(mesh).abs() * scale.powi(3) / 1000.0;
    if !watertight {
        warnings.push(format!(
            "the mesh is not watertight ({non_manifold_edges} open or non-manifold edges): the slicer may repair it or print it wrongly, and the volume is approximate"
        ));
    }
    let floor = f64::from(lo[2]) * scale;
    if floor.abs() > 1.0 {
        warnings.push(format!(
            "the model's lowest point is at z = {floor:.1} mm, not on the bed: slicers drop it to the bed"
        ));
    }
    let fits = volumes
        .iter()
        .map(|(id, volume)| (id.clone(), fits(bbox_mm, *volume)))
        .collect();
    MeshReport {
        triangles: mesh.triangles.len() as u64,
        bbox_mm,
        watertight,
        non_manifold_edges,
        volume_cm3,
        units_guess,
        scale,
        fits,
        warnings,
    }
}

fn guess_units(largest: f64, unitless: bool, warnings: &mut Vec<String>) -> (f64, Option<String>) {
    if !unitless || largest <= 0.0 {
        return (1.0, None);
    }
    if largest < METRES_BELOW {
        warnings.push(format!(
            "the model is only {largest:.3} units across: it was probably exported in metres, so it was scaled ×1000 to {:.1} mm",
            largest * 1000.0
        ));
        (1000.0, Some("metres: scaled ×1000".into()))
    } else if largest < INCHES_BELOW {
        warnings.push(format!(
            "the model is only {largest:.2} mm across: if it was designed in inches it should be {:.1} mm (not rescaled)",
            largest * 25.4
        ));
        (1.0, Some("inches?: not scaled".into()))
    } else {
        (1.0, None)
    }
}

/// True when the box fits the build volume, either way round on the bed.
pub fn fits(bbox: [f64; 3], volume: [f64; 3]) -> bool {
    const SLACK: f64 = 1e-6;
    let straight = bbox[0] <= volume[0] + SLACK && bbox[1] <= volume[1] + SLACK;
    let turned = bbox[1] <= volume[0] + SLACK && bbox[0] <= volume[1] + SLACK;
    (straight || turned) && bbox[2] <= volume[2] + SLACK
}

/// Counts edges not shared by exactly two triangles. Degenerate triangles (two corners
/// merged) are skipped: they have no area and slicers drop them.
pub fn open_edges(mesh: &Mesh) -> u64 {
    let mut edges: Vec<u64> = Vec::with_capacity(mesh.triangles.len() * 3);
    for &[a, b, c] in &mesh.triangles {
        if a == b || b == c || a == c {
            continue;
        }
        for (p, q) in [(a, b), (b, c), (c, a)] {
            edges.push((u64::from(p.min(q)) << 32) | u64::from(p.max(q)));
        }
    }
    edges.sort_unstable();
    let mut bad = 0;
    let mut i = 0;
    while i < edges.len() {
        let run = edges[i..].iter().take_while(|&&e| e == edges[i]).count();
        bad += u64::from(run != 2);
        i += run;
    }
    bad
}

/// Sum of signed tetrahedra from a point inside the bounds (mm³). Measuring from near
/// the model rather than the origin keeps f64 rounding small for models far from it.
pub fn signed_volume(mesh: &Mesh) -> f64 {
    let origin = mesh
        .bounds()
        .map(|(lo, hi)| {
            std::array::from_fn::<f64, 3, _>(|a| (f64::from(lo[a]) + f64::from(hi[a])) / 2.0)
        })
        .unwrap_or([0.0; 3]);
    let at = |i: u32| -> [f64; 3] {
        let p = mesh.positions[i as usize];
        std::array::from_fn(|a| f64::from(p[a]) - origin[a])
    };
    mesh.triangles
        .iter()
        .map(|&[a, b, c]| {
            let (a, b, c) = (at(a), at(b), at(c));
            a[0] * (b[1] * c[2] - b[2] * c[1]) - a[1] * (b[0] * c[2] - b[2] * c[0])
                + a[2] * (b[0] * c[1] - b[1] * c[0])
        })
        .sum::<f64>()
        / 6.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mesh::MeshBuilder;

    /// An axis-aligned box from (0,0,0) to `size`, outward-facing.
    pub(crate) fn cube(size: [f32; 3]) -> Mesh {
        let v = |x: usize, y: usize, z: usize| {
            [size[0] * x as f32, size[1] * y as f32, size[2] * z as f32]
        };
        let quads = [
            [v(0, 0, 0), v(0, 1, 0), v(1, 1, 0), v(1, 0, 0)],
            [v(0, 0, 1), v(1, 0, 1), v(1, 1, 1), v(0, 1, 1)],
            [v(0, 0, 0), v(1, 0, 0), v(1, 0, 1), v(0, 0, 1)],
            [v(0, 1, 0), v(0, 1, 1), v(1, 1, 1), v(1, 1, 0)],
            [v(0, 0, 0), v(0, 0, 1), v(0, 1, 1), v(0, 1, 0)],
            [v(1, 0, 0), v(1, 1, 0), v(1, 1, 1), v(1, 0, 1)],
        ];
        let mut b = MeshBuilder::default();
        for q in quads {
            b.triangle_at([q[0], q[1], q[2]]).expect("tri");
            b.triangle_at([q[0], q[2], q[3]]).expect("tri");
        }
        b.finish().expect("cube")
    }

    #[test]
    fn closed_cube_is_watertight_with_exact_volume() {
        let r = mesh_report(&cube([20.0, 10.0, 5.0]), true, &[]);
        assert!(r.watertight);
        assert_eq!(r.non_manifold_edges, 0);
        assert!((r.volume_cm3 - 1.0).abs() < 1e-9, "{}", r.volume_cm3);
        assert_eq!(r.bbox_mm, [20.0, 10.0, 5.0]);
        assert_eq!(r.units_guess, None);
    }

    #[test]
    fn removing_a_face_opens_three_edges() {
        let mut mesh = cube([10.0; 3]);
        mesh.triangles.pop();
        let r = mesh_report(&mesh, true, &[]);
        assert!(!r.watertight);
        assert_eq!(r.non_manifold_edges, 3);
        assert!(r.warnings.iter().any(|w| w.contains("not watertight")));
    }

    #[test]
    fn metres_are_scaled_and_inches_only_suspected() {
        let r = mesh_report(&cube([0.044, 0.014, 0.047]), true, &[]);
        assert_eq!(r.units_guess.as_deref(), Some("metres: scaled ×1000"));
        assert!((r.bbox_mm[0] - 44.0).abs() < 1e-3);
        assert!((r.volume_cm3 - 0.044 * 0.014 * 0.047 * 1e6).abs() < 1e-3);
        let r = mesh_report(&cube([2.0, 1.0, 1.0]), true, &[]);
        assert_eq!(r.units_guess.as_deref(), Some("inches?: not scaled"));
        assert_eq!(r.bbox_mm[0], 2.0);
        // A 3MF declares its unit: no guessing.
        let r = mesh_report(&cube([0.5; 3]), false, &[]);
        assert_eq!(r.units_guess, None);
    }

    #[test]
    fn fit_allows_a_quarter_turn_on_the_bed() {
        let volumes = vec![
            ("mk3".to_string(), [250.0, 210.0, 210.0]),
            ("mini".to_string(), [180.0, 180.0, 180.0]),
        ];
        let r = mesh_report(&cube([200.0, 240.0, 10.0]), true, &volumes);
        assert!(r.fits["mk3"]);
        assert!(!r.fits["mini"]);
        assert!(!fits([100.0, 100.0, 211.0], [250.0, 210.0, 210.0]));
    }
}
