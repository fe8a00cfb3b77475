//! A small CPU rasteriser: isometric orthographic view, z-buffer, two-sided Lambert
//! shading, 2×2 supersampling. No GPU and no display, so it runs on a headless Pi.

use crate::glb::face_normal;
use crate::mesh::Mesh;

/// Supersampling factor per axis (4 samples per output pixel).
const SS: usize = 2;
/// Fraction of the image the model's projection fills.
const FILL: f64 = 0.9;
/// The model's colour (a neutral blue-grey that reads well on light and dark pages).
const BASE: [f64; 3] = [0.44, 0.58, 0.78];
/// Toolpaths are drawn in filament orange, darker at the bottom.
const FILAMENT: [f64; 3] = [0.95, 0.50, 0.18];

/// An RGBA image, row-major, 8 bits per channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    /// Width and height in pixels.
    pub size: u32,
    /// `size × size × 4` bytes.
    pub rgba: Vec<u8>,
}

/// Camera basis for the isometric view from front-right-above (printer Z up, front = −Y).
struct View {
    right: [f64; 3],
    up: [f64; 3],
    toward_camera: [f64; 3],
}

impl View {
    fn isometric() -> Self {
        let s2 = std::f64::consts::SQRT_2;
        let s3 = 3f64.sqrt();
        let s6 = 6f64.sqrt();
        View {
            right: [1.0 / s2, 1.0 / s2, 0.0],
            up: [-1.0 / s6, 1.0 / s6, 2.0 / s6],
            toward_camera: [1.0 / s3, -1.0 / s3, 1.0 / s3],
        }
    }

    /// Screen x, screen y (up), depth (larger is nearer).
    fn project(&self, p: [f64; 3]) -> [f64; 3] {
        [
            dot(p, self.right),
            dot(p, self.up),
            dot(p, self.toward_camera),
        ]
    }
}

fn dot(a: [f64; 3], b: [f64; 3]) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

/// Renders the mesh as a `size × size` RGBA image with a transparent background.
pub fn render(mesh: &Mesh, size: u32) -> Image {
    let view = View::isometric();
    let n = size as usize * SS;
    let projected: Vec<[f64; 3]> = mesh
        .positions
        .iter()
        .map(|p| view.project(p.map(f64::from)))
        .collect();
    let to_pixels = fit(&projected, n);
    let screen: Vec<[f64; 3]> = projected.iter().map(|p| to_pixels(*p)).collect();
    let light = normalize([
        -0.35 * view.right[0] + 0.6 * view.up[0] + 0.7 * view.toward_camera[0],
        -0.35 * view.right[1] + 0.6 * view.up[1] + 0.7 * view.toward_camera[1],
        -0.35 * view.right[2] + 0.6 * view.up[2] + 0.7 * view.toward_camera[2],
    ]);
    let mut depth = vec![f32::NEG_INFINITY; n * n];
    let mut shade = vec![0f32; n * n];
    for t in &mesh.triangles {
        let normal = normalize(face_normal(&mesh.positions, t));
        // Two-sided: open or inside-out meshes still look solid.
        let lambert = dot(normal, light).abs();
        let intensity = (0.28 + 0.72 * lambert) as f32;
        let corners = t.map(|i| screen[i as usize]);
        fill_triangle(&corners, n, intensity, &mut depth, &mut shade);
    }
    Image {
        size,
        rgba: downsample(&depth, &shade, size as usize, BASE),
    }
}

fn normalize(v: [f64; 3]) -> [f64; 3] {
    let len = dot(v, v).sqrt();
    if len > 0.0 {
        v.map(|c| c / len)
    } else {
        [0.0, 0.0, 1.0]
    }
}

/// Scales and centres the projection into an `n × n` pixel grid (y down).
fn fit(points: &[[f64; 3]], n: usize) -> impl Fn([f64; 3]) -> [f64; 3] {
    let (mut lo, mut hi) = ([f64::MAX; 2], [f64::MIN; 2]);
    for p in points {
        for a in 0..2 {
            lo[a] = lo[a].min(p[a]);
            hi[a] = hi[a].max(p[a]);
        }
    }
    let extent = (hi[0] - lo[0]).max(hi[1] - lo[1]).max(1e-9);
    let scale = FILL * n as f64 / extent;
    let centre = [(lo[0] + hi[0]) / 2.0, (lo[1] + hi[1]) / 2.0];
    let half = n as f64 / 2.0;
    move |p| {
        [
            half + (p[0] - centre[0]) * scale,
            half - (p[1] - centre[1]) * scale,
            p[2],
        ]
    }
}

/// Scan-converts one triangle with edge functions, keeping the nearest surface.
fn fill_triangle(
    c: &[[f64; 3]; 3],
    n: usize,
    intensity: f32,
    depth: &mut [f32],
    shade: &mut [f32],
) {
    let area = edge(c[0], c[1], c[2]);
    if area.abs() < 1e-12 {
        return;
    }
    let min_x = c
        .iter()
        .map(|p| p[0])
        .fold(f64::MAX, f64::min)
        .floor()
        .max(0.0) as usize;
    let max_x = c
        .iter()
        .map(|p| p[0])
        .fold(f64::MIN, f64::max)
        .ceil()
        .min(n as f64 - 1.0);
    let min_y = c
        .iter()
        .map(|p| p[1])
        .fold(f64::MAX, f64::min)
        .floor()
        .max(0.0) as usize;
    let max_y = c
        .iter()
        .map(|p| p[1])
        .fold(f64::MIN, f64::max)
        .ceil()
        .min(n as f64 - 1.0);
    if max_x < 0.0 || max_y < 0.0 {
        return;
    }
    for y in min_y..=max_y as usize {
        for x in min_x..=max_x as usize {
            let p = [x as f64 + 0.5, y as f64 + 0.5, 0.0];
            let w0 = edge(c[1], c[2], p) / area;
            let w1 = edge(c[2], c[0], p) / area;
            let w2 = 1.0 - w0 - w1;
            if w0 < 0.0 || w1 < 0.0 || w2 < 0.0 {
                continue;
            }
            let z = (w0 * c[0][2] + w1 * c[1][2] + w2 * c[2][2]) as f32;
            let at = y * n + x;
            if z > depth[at] {
                depth[at] = z;
                shade[at] = intensity;
            }
        }
    }
}

fn edge(a: [f64; 3], b: [f64; 3], p: [f64; 3]) -> f64 {
    (b[0] - a[0]) * (p[1] - a[1]) - (b[1] - a[1]) * (p[0] - a[0])
}

/// Renders extruded G-code segments (`[x0, y0, z0, x1, y1, z1]`) from the same view,
/// shaded by height so layers read as a solid.
pub fn render_toolpath(segments: &[[f32; 6]], size: u32) -> Image {
    let view = View::isometric();
    let n = size as usize * SS;
    let ends: Vec<[f64; 3]> = segments
        .iter()
        .flat_map(|s| [[s[0], s[1], s[2]], [s[3], s[4], s[5]]])
        .map(|p| view.project(p.map(f64::from)))
        .collect();
    let to_pixels = fit(&ends, n);
    let (z_lo, z_hi) = segments.iter().fold((f32::MAX, f32::MIN), |(lo, hi), s| {
        (lo.min(s[2]), hi.max(s[5]))
    });
    let z_span = f64::from((z_hi - z_lo).max(1e-3));
    let mut depth = vec![f32::NEG_INFINITY; n * n];
    let mut shade = vec![0f32; n * n];
    for (s, pair) in segments.iter().zip(ends.chunks_exact(2)) {
        let height = (f64::from(s[5] - z_lo) / z_span).clamp(0.0, 1.0);
        let intensity = (0.45 + 0.55 * height) as f32;
        let (a, b) = (to_pixels(pair[0]), to_pixels(pair[1]));
        draw_line(a, b, n, intensity, &mut depth, &mut shade);
    }
    Image {
        size,
        rgba: downsample(&depth, &shade, size as usize, FILAMENT),
    }
}

/// Draws a line two samples wide with depth testing.
fn draw_line(
    a: [f64; 3],
    b: [f64; 3],
    n: usize,
    intensity: f32,
    depth: &mut [f32],
    shade: &mut [f32],
) {
    let length = (b[0] - a[0]).abs().max((b[1] - a[1]).abs());
    let steps = length.ceil().clamp(1.0, 4.0 * n as f64) as usize;
    for i in 0..=steps {
        let t = i as f64 / steps as f64;
        let x = a[0] + (b[0] - a[0]) * t;
        let y = a[1] + (b[1] - a[1]) * t;
        let z = (a[2] + (b[2] - a[2]) * t) as f32;
        for (dx, dy) in [(0.0, 0.0), (1.0, 0.0), (0.0, 1.0), (1.0, 1.0)] {
            let (px, py) = (x + dx - 0.5, y + dy - 0.5);
            if px < 0.0 || py < 0.0 || px >= n as f64 || py >= n as f64 {
                continue;
            }
            let at = py as usize * n + px as usize;
            if z > depth[at] {
                depth[at] = z;
                shade[at] = intensity;
            }
        }
    }
}

/// Averages each SS×SS block into one RGBA pixel; empty samples are transparent.
fn downsample(depth: &[f32], shade: &[f32], size: usize, base: [f64; 3]) -> Vec<u8> {
    let n = size * SS;
    let mut out = vec![0u8; size * size * 4];
    for y in 0..size {
        for x in 0..size {
            let (mut covered, mut light) = (0usize, 0f64);
            for sy in 0..SS {
                for sx in 0..SS {
                    let at = (y * SS + sy) * n + x * SS + sx;
                    if depth[at] > f32::NEG_INFINITY {
                        covered += 1;
                        light += f64::from(shade[at]);
                    }
                }
            }
            if covered == 0 {
                continue;
            }
            let px = &mut out[(y * size + x) * 4..][..4];
            let l = light / covered as f64;
            for a in 0..3 {
                px[a] = (base[a] * l * 255.0 + 30.0 * l).clamp(0.0, 255.0) as u8;
            }
            px[3] = (covered * 255 / (SS * SS)) as u8;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mesh::MeshBuilder;

    #[test]
    fn toolpath_lines_are_drawn() {
        let square: Vec<[f32; 6]> = (0..50)
            .flat_map(|layer| {
                let z = layer as f32 * 0.2;
                [
                    [0.0, 0.0, z, 20.0, 0.0, z],
                    [20.0, 0.0, z, 20.0, 20.0, z],
                    [20.0, 20.0, z, 0.0, 20.0, z],
                    [0.0, 20.0, z, 0.0, 0.0, z],
                ]
            })
            .collect();
        let img = render_toolpath(&square, 64);
        let opaque = img.rgba.chunks(4).filter(|p| p[3] > 0).count();
        assert!(opaque > 200, "{opaque}");
        assert_eq!(img.rgba[3], 0, "corner stays transparent");
    }

    #[test]
    fn a_cube_fills_the_middle_and_leaves_corners_clear() {
        let mut b = MeshBuilder::default();
        let v = |x: f32, y: f32, z: f32| [x * 10.0, y * 10.0, z * 10.0];
        let quads = [
            [v(0., 0., 0.), v(0., 1., 0.), v(1., 1., 0.), v(1., 0., 0.)],
            [v(0., 0., 1.), v(1., 0., 1.), v(1., 1., 1.), v(0., 1., 1.)],
            [v(0., 0., 0.), v(1., 0., 0.), v(1., 0., 1.), v(0., 0., 1.)],
            [v(1., 0., 0.), v(1., 1., 0.), v(1., 1., 1.), v(1., 0., 1.)],
        ];
        for q in quads {
            b.triangle_at([q[0], q[1], q[2]]).expect("tri");
            b.triangle_at([q[0], q[2], q[3]]).expect("tri");
        }
        let img = render(&b.finish().expect("mesh"), 64);
        let alpha = |x: usize, y: usize| img.rgba[(y * 64 + x) * 4 + 3];
        assert_eq!(alpha(32, 32), 255);
        assert_eq!(alpha(0, 0), 0);
        // Top, front and right faces get three different shades.
        let mut shades: Vec<u8> = [(32, 14), (22, 40), (42, 40)]
            .iter()
            .map(|&(x, y)| img.rgba[(y * 64 + x) * 4])
            .collect();
        shades.dedup();
        assert_eq!(shades.len(), 3, "{shades:?}");
    }
}
