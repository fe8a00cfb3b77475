//! Reading zip members without trusting them: a zip bomb (a few kilobytes that inflate
//! to gigabytes) is stopped by counting the bytes that come out of the decompressor,
//! never by believing the sizes the archive declares.

use std::io::{self, Read};

/// Nothing in a 3MF is allowed to inflate beyond this (the 16.9 MB Benchy XML is one
/// of the largest real ones; this leaves ×30 room).
pub const MAX_MEMBER_BYTES: u64 = 512 * 1024 * 1024;
/// All members read from one archive together.
pub const MAX_TOTAL_BYTES: u64 = 1024 * 1024 * 1024;
/// Real XML compresses ~5–20×; a bomb ~1000×. Ratios above this are refused once a
/// member is past [`RATIO_GRACE_BYTES`] (tiny members may legitimately compress well).
pub const MAX_RATIO: u64 = 200;
/// Output below this size is never judged by its ratio.
pub const RATIO_GRACE_BYTES: u64 = 8 * 1024 * 1024;

/// A reader that fails once more bytes came out than the caps allow.
pub struct Capped<R> {
    inner: R,
    produced: u64,
    limit: u64,
    name: String,
}

impl<R: Read> Capped<R> {
    /// Caps `inner`, a member called `name` stored in `compressed` bytes, of which
    /// `already` bytes of the archive's total budget are spent.
    pub fn new(inner: R, name: &str, compressed: u64, already: u64) -> Self {
        let by_ratio = compressed.saturating_mul(MAX_RATIO).max(RATIO_GRACE_BYTES);
        let limit = by_ratio
            .min(MAX_MEMBER_BYTES)
            .min(MAX_TOTAL_BYTES.saturating_sub(already));
        Capped {
            inner,
            produced: 0,
            limit,
            name: name.to_string(),
        }
    }

    /// Bytes produced so far.
    pub fn produced(&self) -> u64 {
        self.produced
    }
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // Ask for at most one byte past the limit: `take()` semantics, so a bomb is never
        // inflated further than the cap.
        let room = (self.limit + 1 - self.produced.min(self.limit + 1)) as usize;
        let want = buf.len().min(room.max(1));
        let n = self.inner.read(&mut buf[..want])?;
        self.produced += n as u64;
        if self.produced > self.limit {
            return Err(io::Error::other(format!(
                "zip bomb refused: {} inflates past {} MB (too large or compressed too well to be a real model)",
                self.name,
                self.limit / (1024 * 1024)
            )));
        }
        Ok(n)
    }
}
