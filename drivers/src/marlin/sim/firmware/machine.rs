//! The physical side of the simulated printer: a planner queue of timed moves and heaters that
//! ramp towards their targets. Durations are simulated seconds multiplied by the time scale,
//! so a scale of 0 makes everything instant.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// A heater with a first-order ramp (°C per simulated second).
#[derive(Debug, Clone, Copy)]
pub struct Heater {
    pub actual: f64,
    pub target: f64,
    rate: f64,
}

impl Heater {
    pub fn new(rate: f64) -> Self {
        Self {
            actual: 21.0,
            target: 0.0,
            rate,
        }
    }

    /// Move towards the target (or back to room temperature) over `dt` simulated seconds.
    fn step(&mut self, dt: f64) {
        let goal = if self.target > 0.0 { self.target } else { 21.0 };
        let delta = (goal - self.actual).clamp(-self.rate * dt, self.rate * dt);
        self.actual += delta;
    }

    pub fn reached(&self) -> bool {
        (self.actual - self.target).abs() < 1.0 || self.target <= 0.0
    }
}

/// Position, planner and heaters.
#[derive(Debug)]
pub struct Machine {
    /// Real seconds per simulated second; 0 = as fast as possible.
    pub time_scale: f64,
    pub planner_size: usize,
    /// End times of queued moves, in order.
    planner: VecDeque<Instant>,
    pos: [f64; 4],
    feedrate: f64,
    pub hotend: Heater,
    pub bed: Heater,
    last_step: Instant,
}

impl Machine {
    pub fn new(time_scale: f64, planner_size: usize, now: Instant) -> Self {
        Self {
            time_scale,
            planner_size: planner_size.max(1),
            planner: VecDeque::new(),
            pos: [0.0; 4],
            feedrate: 1500.0,
            hotend: Heater::new(3.0),
            bed: Heater::new(1.0),
            last_step: now,
        }
    }

    /// Real time for `sim_s` simulated seconds.
    pub fn scaled(&self, sim_s: f64) -> Duration {
        Duration::from_secs_f64((sim_s * self.time_scale).max(0.0))
    }

    /// Advance moves and heaters to `now`.
    pub fn step(&mut self, now: Instant) {
        while self.planner.front().is_some_and(|&end| end <= now) {
            self.planner.pop_front();
        }
        let real = now.saturating_duration_since(self.last_step).as_secs_f64();
        self.last_step = now;
        if self.time_scale == 0.0 {
            for h in [&mut self.hotend, &mut self.bed] {
                h.actual = if h.target > 0.0 { h.target } else { 21.0 };
            }
        } else {
            let dt = real / self.time_scale;
            self.hotend.step(dt);
            self.bed.step(dt);
        }
    }

    pub fn planner_full(&self) -> bool {
        self.planner.len() >= self.planner_size
    }

    pub fn planner_empty(&self) -> bool {
        self.planner.is_empty()
    }

    pub fn free_slots(&self) -> usize {
        self.planner_size - self.planner.len().min(self.planner_size)
    }

    /// When the next queued move ends.
    pub fn next_event(&self) -> Option<Instant> {
        self.planner.front().copied()
    }

    /// Queue a `G0`/`G1` with the given words; returns false when the planner is full.
    pub fn queue_move(&mut self, words: &[(char, f64)], now: Instant) -> bool {
        if self.planner_full() {
            return false;
        }
        let mut target = self.pos;
        for &(k, v) in words {
            match k {
                'X' => target[0] = v,
                'Y' => target[1] = v,
                'Z' => target[2] = v,
                'E' => target[3] = v,
                'F' => self.feedrate = v.max(1.0),
                _ => {}
            }
        }
        let d: f64 = (0..3)
            .map(|i| (target[i] - self.pos[i]).powi(2))
            .sum::<f64>()
            .sqrt();
        let dist = if d > 0.0 {
            d
        } else {
            (target[3] - self.pos[3]).abs()
        };
        self.pos = target;
        let start = self.planner.back().copied().unwrap_or(now).max(now);
        self.planner
            .push_back(start + self.scaled(dist / (self.feedrate / 60.0)));
        true
    }

    /// `G92`: set positions without moving.
    pub fn set_position(&mut self, words: &[(char, f64)]) {
        for &(k, v) in words {
            if let Some(i) = "XYZE".find(k) {
                self.pos[i] = v;
            }
        }
    }

    pub fn clear(&mut self) {
        self.planner.clear();
        self.hotend.target = 0.0;
        self.bed.target = 0.0;
    }

    /// Marlin's temperature report: `T:210.00 /210.00 B:60.00 /60.00 @:0 B@:0`.
    pub fn temp_report(&self) -> String {
        format!(
            "T:{:.2} /{:.2} B:{:.2} /{:.2} @:0 B@:0",
            self.hotend.actual, self.hotend.target, self.bed.actual, self.bed.target
        )
    }
}

/// The letter-number words of a command (`G1 X10 F3000` → `[('X',10),('F',3000)]`).
pub fn words(command: &str) -> Vec<(char, f64)> {
    command
        .split_whitespace()
        .skip(1)
        .filter_map(|w| {
            let mut chars = w.chars();
            let key = chars.next()?.to_ascii_uppercase();
            Some((key, chars.as_str().parse().ok()?))
        })
        .collect()
}
