//! The upload bandwidth cap: a token bucket, without I/O.
//!
//! Tokens (bytes) refill at `rate` per second up to one second's worth; sending more
//! than is available is allowed but puts the bucket in debt, and [`Throttle::take`]
//! answers how long to wait first. Over any stretch longer than a second the average
//! rate stays at or below the cap, whatever the sizes of the pieces sent.

use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct Throttle {
    /// Bytes per second; `None` = no cap.
    rate: Option<f64>,
    tokens: f64,
    last: Instant,
}

impl Throttle {
    /// A cap of `kib_per_s` KiB/s, or none.
    pub fn new(kib_per_s: Option<u64>, now: Instant) -> Throttle {
        let rate = kib_per_s.map(|k| (k as f64) * 1024.0);
        Throttle {
            rate,
            tokens: rate.unwrap_or(0.0),
            last: now,
        }
    }

    /// Spends `bytes` at `now`; returns how long to wait before sending them.
    pub fn take(&mut self, bytes: u64, now: Instant) -> Duration {
        let Some(rate) = self.rate else {
            return Duration::ZERO;
        };
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * rate).min(rate);
        self.tokens -= bytes as f64;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / rate)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_cap_never_waits() {
        let now = Instant::now();
        let mut t = Throttle::new(None, now);
        assert_eq!(t.take(u64::MAX, now), Duration::ZERO);
    }

    #[test]
    fn the_average_rate_stays_under_the_cap() {
        let start = Instant::now();
        let mut t = Throttle::new(Some(100), start);
        let mut now = start;
        let chunk = 30 * 1024;
        let mut sent = 0u64;
        for _ in 0..40 {
            now += t.take(chunk, now);
            sent += chunk;
        }
        let secs = now.duration_since(start).as_secs_f64();
        // One second of burst is allowed, no more.
        let allowed = 100.0 * 1024.0 * (secs + 1.0);
        assert!(sent as f64 <= allowed + 1.0, "{sent} B in {secs} s");
        assert!(
            secs > 10.0,
            "1.2 MB at 100 KiB/s takes over 10 s, took {secs}"
        );
    }

    #[test]
    fn one_big_piece_waits_for_its_size() {
        let start = Instant::now();
        let mut t = Throttle::new(Some(1), start);
        let wait = t.take(1024 * 11, start);
        assert_eq!(wait.as_secs(), 10);
    }
}
