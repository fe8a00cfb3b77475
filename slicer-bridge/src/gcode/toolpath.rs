//! A bounded sample of the extruded toolpath, for drawing G-code that carries no
//! thumbnail of its own.
//!
//! Memory must not grow with the file, so the sample thins itself: when it reaches
//! [`MAX_SEGMENTS`] it drops every other segment and from then on keeps only every
//! second (then fourth, …) new one. A thinned toolpath still shows the part's shape.

/// Segments kept at most (24 bytes each: ~24 MB).
pub const MAX_SEGMENTS: usize = 1 << 20;

/// Extruding segments as `[x0, y0, z0, x1, y1, z1]`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Toolpath {
    /// The kept segments, in file order.
    pub segments: Vec<[f32; 6]>,
    /// Index of the first segment after the first layer comment (purge lines come
    /// before it), if a layer comment was seen.
    pub first_layer_start: Option<usize>,
    stride: u64,
    seen: u64,
}

impl Toolpath {
    /// Offers one extruding segment; `in_layers` is true once a layer comment was seen.
    pub fn push(&mut self, from: &[f64; 4], to: &[f64; 4], in_layers: bool) {
        self.seen += 1;
        if self.stride > 1 && !self.seen.is_multiple_of(self.stride) {
            return;
        }
        if in_layers && self.first_layer_start.is_none() {
            self.first_layer_start = Some(self.segments.len());
        }
        self.segments.push([
            from[0] as f32,
            from[1] as f32,
            from[2] as f32,
            to[0] as f32,
            to[1] as f32,
            to[2] as f32,
        ]);
        if self.segments.len() >= MAX_SEGMENTS {
            self.thin();
        }
    }

    fn thin(&mut self) {
        let mut i = 0usize;
        self.segments.retain(|_| {
            i += 1;
            i.is_multiple_of(2)
        });
        self.first_layer_start = self.first_layer_start.map(|s| s / 2);
        self.stride = (self.stride.max(1)) * 2;
    }

    /// The segments worth drawing: those after the purge line when layers are marked.
    pub fn printed(&self) -> &[[f32; 6]] {
        &self.segments[self.first_layer_start.unwrap_or(0).min(self.segments.len())..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_is_bounded_by_thinning() {
        let mut t = Toolpath::default();
        for i in 0..(3 * MAX_SEGMENTS) {
            let x = i as f64;
            t.push(&[x, 0.0, 0.0, 0.0], &[x + 1.0, 0.0, 0.0, 1.0], i > 10);
        }
        assert!(t.segments.len() < MAX_SEGMENTS);
        assert!(t.segments.len() > MAX_SEGMENTS / 4);
        assert_eq!(
            t.printed().len(),
            t.segments.len() - t.first_layer_start.unwrap_or(0)
        );
    }
}
