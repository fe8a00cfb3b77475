//! At most `n` printer events per second on the stream, but a change of state always goes
//! out at once and the latest status is never dropped (it is sent when the window ends).

use std::time::{Duration, Instant};

use drivers::PrinterState;

#[derive(Debug)]
pub struct Throttle {
    every: Duration,
    last: Option<Instant>,
    last_state: Option<PrinterState>,
    pending: bool,
}

impl Throttle {
    pub fn per_second(n: u32) -> Throttle {
        Throttle {
            every: Duration::from_secs(1) / n.max(1),
            last: None,
            last_state: None,
            pending: false,
        }
    }

    /// A new status arrived: whether to send it now (else it is sent at [`Self::deadline`]).
    pub fn offer(&mut self, now: Instant, state: PrinterState) -> bool {
        let changed = self.last_state != Some(state);
        let window_over = self
            .last
            .is_none_or(|t| now.duration_since(t) >= self.every);
        if changed || window_over {
            self.sent(now, state);
            true
        } else {
            self.pending = true;
            false
        }
    }

    /// A deadline passed: whether the held-back status is due now.
    pub fn due(&mut self, now: Instant, state: PrinterState) -> bool {
        if self.pending && self.deadline().is_some_and(|d| now >= d) {
            self.sent(now, state);
            true
        } else {
            false
        }
    }

    /// When the held-back status goes out.
    pub fn deadline(&self) -> Option<Instant> {
        match (self.pending, self.last) {
            (true, Some(t)) => Some(t + self.every),
            _ => None,
        }
    }

    fn sent(&mut self, now: Instant, state: PrinterState) {
        self.last = Some(now);
        self.last_state = Some(state);
        self.pending = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bursts_are_cut_to_the_rate_and_the_last_one_is_kept() {
        let t0 = Instant::now();
        let mut t = Throttle::per_second(2);
        let ms = |n| t0 + Duration::from_millis(n);
        assert!(t.offer(ms(0), PrinterState::Printing));
        // Fifty progress updates within the next 400 ms: none goes out…
        for i in 1..=50 {
            assert!(!t.offer(ms(i * 8), PrinterState::Printing));
        }
        // …until the window ends, when the latest is sent once.
        assert_eq!(t.deadline(), Some(ms(500)));
        assert!(!t.due(ms(499), PrinterState::Printing));
        assert!(t.due(ms(500), PrinterState::Printing));
        assert!(!t.due(ms(900), PrinterState::Printing));
        assert_eq!(t.deadline(), None);
    }

    #[test]
    fn a_change_of_state_goes_out_at_once() {
        let t0 = Instant::now();
        let mut t = Throttle::per_second(2);
        assert!(t.offer(t0, PrinterState::Printing));
        assert!(t.offer(t0 + Duration::from_millis(10), PrinterState::Idle));
        assert!(!t.offer(t0 + Duration::from_millis(20), PrinterState::Idle));
    }
}
