//! A firmware motion planner, simulated to estimate print time.
//!
//! This follows Marlin's classic planner (the one Prusa MK3 firmware and PrusaSlicer's
//! own estimator model): every move becomes a block with a trapezoidal speed profile
//! (accelerate, cruise, decelerate). How fast a block may be entered depends on its
//! neighbour, via *classic jerk*: the largest instantaneous speed change each axis
//! tolerates. Look-ahead runs over a bounded window of blocks, like the firmware's
//! ring buffer: a forward pass caps entry speeds by what the previous block can reach
//! accelerating, a reverse pass by what the next block can be slowed down to. Blocks
//! leave the window once [`WINDOW`] newer blocks stand behind them, so memory is fixed.

use super::limits::{Limited, Limits};

/// How many planned blocks must follow a block before its time is final.
pub const WINDOW: usize = 64;
const X: usize = 0;
const E: usize = 3;

/// One move as the interpreter hands it over: per-axis deltas (mm) and the requested
/// feed rate (mm/s).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Move {
    /// X, Y, Z, E deltas in mm.
    pub delta: [f64; 4],
    /// Requested speed along the move, mm/s.
    pub feedrate: f64,
}

/// What the interpreter tells the planner. Events travel in batches from the parsing
/// thread to the planning thread (see [`super::analyze_gcode`]).
#[derive(Debug, Clone, PartialEq)]
pub enum PlanEvent {
    /// Plan a move.
    Move(Move),
    /// Wait for all moves to finish, then dwell this many seconds.
    Synchronize(f64),
    /// New machine limits (M201/M203/M204/M205), boxed to keep events small.
    Limits(Box<Limits>),
}

#[derive(Debug, Clone, Copy)]
struct Block {
    distance: f64,
    acceleration: f64,
    cruise: f64,
    entry: f64,
    max_entry: f64,
    safe: f64,
    nominal_length: bool,
}

/// The previous move's speeds, needed to judge the junction with the next.
#[derive(Debug, Clone, Copy)]
struct Previous {
    feedrate: f64,
    axis_feedrate: [f64; 4],
    safe: f64,
}

/// Accumulates time over a stream of moves.
#[derive(Debug)]
pub struct Planner {
    /// The machine limits in force (M201/M203/M204/M205 change them mid-file).
    pub limits: Limits,
    blocks: Vec<Block>,
    previous: Option<Previous>,
    time: f64,
}

impl Planner {
    /// A planner with the given limits and nothing planned.
    pub fn new(limits: Limits) -> Self {
        Planner {
            limits,
            blocks: Vec::with_capacity(2 * WINDOW + 1),
            previous: None,
            time: 0.0,
        }
    }

    /// Applies one event from the interpreter.
    pub fn apply(&mut self, event: PlanEvent) {
        match event {
            PlanEvent::Move(m) => self.push(m),
            PlanEvent::Synchronize(extra) => self.synchronize(extra),
            PlanEvent::Limits(limits) => self.limits = *limits,
        }
    }

    /// Plans one move.
    pub fn push(&mut self, m: Move) {
        let d = m.delta;
        let xyz = (d[0] * d[0] + d[1] * d[1] + d[2] * d[2]).sqrt();
        let distance = if xyz > 1e-9 { xyz } else { d[E].abs() };
        if distance < 1e-9 {
            return;
        }
        let Limited {
            feedrate,
            axis_feedrate,
            acceleration,
            safe,
        } = self.limits.limit(&d, xyz, distance, m.feedrate);
        let junction = self.junction_speed(feedrate, &axis_feedrate, safe);
        let allowable = max_allowable_speed(-acceleration, safe, distance);
        self.blocks.push(Block {
            distance,
            acceleration,
            cruise: feedrate,
            entry: junction.min(allowable),
            max_entry: junction,
            safe,
            nominal_length: feedrate <= allowable,
        });
        self.previous = Some(Previous {
            feedrate,
            axis_feedrate,
            safe,
        });
        if self.blocks.len() >= 2 * WINDOW {
            self.plan_and_retire(WINDOW);
        }
    }

    /// The fastest speed at the junction between the previous move and this one that
    /// keeps every axis's speed change within its jerk limit.
    // The four axes are indexed in parallel across several arrays: clearer than zips.
    #[allow(clippy::needless_range_loop)]
    fn junction_speed(&self, cruise: f64, axis: &[f64; 4], safe: f64) -> f64 {
        let Some(prev) = self
            .previous
            .filter(|p| p.feedrate > 1e-4 && !self.blocks.is_empty())
        else {
            return safe;
        };
        let prev_larger = prev.feedrate > cruise;
        let smaller_factor = if prev_larger {
            cruise / prev.feedrate
        } else {
            prev.feedrate / cruise
        };
        let mut vmax = if prev_larger { cruise } else { prev.feedrate };
        let mut v_factor: f64 = 1.0;
        let mut limited = false;
        for a in X..=E {
            let mut v_exit = prev.axis_feedrate[a];
            let mut v_entry = axis[a];
            if prev_larger {
                v_exit *= smaller_factor;
            }
            if limited {
                v_exit *= v_factor;
                v_entry *= v_factor;
            }
            // Coasting in one direction costs the difference; reversing costs the larger.
            let jerk = if v_exit > v_entry {
                if v_entry > 0.0 || v_exit < 0.0 {
                    v_exit - v_entry
                } else {
                    v_exit.max(-v_entry)
                }
            } else if v_entry < 0.0 || v_exit > 0.0 {
                v_entry - v_exit
            } else {
                (-v_exit).max(v_entry)
            };
            if jerk > self.limits.jerk[a] {
                v_factor *= self.limits.jerk[a] / jerk;
                limited = true;
            }
        }
        if limited {
            vmax *= v_factor;
        }
        // Both moves could start from standstill at their safe speeds anyway.
        let threshold = vmax * 0.99;
        if prev.safe > threshold && safe > threshold {
            vmax = safe;
        }
        vmax
    }

    /// Waits for all moves to finish (G4, M400, end of file) and adds `extra` seconds.
    pub fn synchronize(&mut self, extra: f64) {
        self.plan_and_retire(0);
        self.previous = None;
        self.time += extra;
    }

    /// The total time, after planning what is still in the window.
    pub fn finish(mut self) -> f64 {
        self.synchronize(0.0);
        self.time
    }

    /// Runs the look-ahead passes over the window, then adds the time of all but the
    /// newest `keep` blocks and drops them.
    fn plan_and_retire(&mut self, keep: usize) {
        let b = &mut self.blocks;
        if b.is_empty() {
            return;
        }
        for i in 0..b.len() - 1 {
            let (prev, next) = (b[i], &mut b[i + 1]);
            if prev.entry < next.entry {
                next.entry = next.entry.min(max_allowable_speed(
                    -prev.acceleration,
                    prev.entry,
                    prev.distance,
                ));
            }
        }
        for i in (1..b.len()).rev() {
            let next_entry = b[i].entry;
            let cur = &mut b[i - 1];
            if cur.entry != cur.max_entry {
                cur.entry = if !cur.nominal_length && cur.max_entry > next_entry {
                    cur.max_entry.min(max_allowable_speed(
                        -cur.acceleration,
                        next_entry,
                        cur.distance,
                    ))
                } else {
                    cur.max_entry
                };
            }
        }
        let retire = b.len() - keep.min(b.len());
        for i in 0..retire {
            let exit = b.get(i + 1).map_or(b[i].safe, |n| n.entry);
            self.time += trapezoid_time(&b[i], exit);
        }
        b.drain(..retire);
    }
}

/// Time to cover a block entering at `entry`, leaving at `exit`, accelerating at most
/// to its cruise speed.
fn trapezoid_time(b: &Block, exit: f64) -> f64 {
    let a = b.acceleration;
    if a <= 0.0 {
        return b.distance / b.cruise.max(1e-9);
    }
    let mut accel_d = ((b.cruise * b.cruise - b.entry * b.entry) / (2.0 * a)).max(0.0);
    let decel_d = ((b.cruise * b.cruise - exit * exit) / (2.0 * a)).max(0.0);
    let mut cruise_d = b.distance - accel_d - decel_d;
    let mut cruise_v = b.cruise;
    if cruise_d < 0.0 {
        // Too short to reach cruise speed: accelerate until the point where braking
        // must begin to leave at `exit`.
        accel_d = ((2.0 * a * b.distance - b.entry * b.entry + exit * exit) / (4.0 * a))
            .clamp(0.0, b.distance);
        cruise_d = 0.0;
        cruise_v = speed_after(b.entry, accel_d, a);
    }
    let t_accel = (speed_after(b.entry, accel_d, a) - b.entry) / a;
    let t_cruise = if cruise_v > 0.0 {
        cruise_d / cruise_v
    } else {
        0.0
    };
    let decel_len = b.distance - accel_d - cruise_d;
    let t_decel = (cruise_v - speed_after(cruise_v, decel_len, -a)) / a;
    t_accel + t_cruise + t_decel
}

fn speed_after(initial: f64, distance: f64, acceleration: f64) -> f64 {
    (initial * initial + 2.0 * acceleration * distance)
        .max(0.0)
        .sqrt()
}

/// The highest speed from which `target` can be reached over `distance` at `acceleration`
/// (negative: braking).
fn max_allowable_speed(acceleration: f64, target: f64, distance: f64) -> f64 {
    (target * target - 2.0 * acceleration * distance)
        .max(0.0)
        .sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn planner() -> Planner {
        Planner::new(Limits::default())
    }

    #[test]
    fn long_straight_move_is_distance_over_speed_plus_ramps() {
        let mut p = planner();
        p.push(Move {
            delta: [100.0, 0.0, 0.0, 0.0],
            feedrate: 100.0,
        });
        // M204 asks 1250 mm/s² but M201 caps X at 1000. From 8 mm/s (jerk) to 100 mm/s:
        // 4.97 mm and 0.092 s each way.
        let ramp_d = (100.0f64.powi(2) - 64.0) / 2000.0;
        let expected = 2.0 * (92.0 / 1000.0) + (100.0 - 2.0 * ramp_d) / 100.0;
        let t = p.finish();
        assert!((t - expected).abs() < 1e-9, "{t} vs {expected}");
    }

    #[test]
    fn collinear_moves_flow_through_and_corners_slow_down() {
        let mut straight = planner();
        let mut zigzag = planner();
        for i in 0..200 {
            straight.push(Move {
                delta: [1.0, 0.0, 0.0, 0.05],
                feedrate: 60.0,
            });
            let dy = if i % 2 == 0 { 1.0 } else { -1.0 };
            zigzag.push(Move {
                delta: [0.0, dy, 0.0, 0.05],
                feedrate: 60.0,
            });
        }
        let (s, z) = (straight.finish(), zigzag.finish());
        assert!((s - 200.0 / 60.0).abs() < 0.2, "straight {s}");
        assert!(z > 2.0 * s, "reversals must cost time: {z} vs {s}");
    }

    #[test]
    fn feedrate_is_capped_by_axis_limits() {
        let mut p = planner();
        p.push(Move {
            delta: [0.0, 0.0, 10.0, 0.0],
            feedrate: 100.0,
        });
        // Z is limited to 12 mm/s and 200 mm/s².
        assert!(p.finish() > 10.0 / 12.0);
    }
}
