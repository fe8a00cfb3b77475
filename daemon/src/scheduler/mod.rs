//! The scheduler's decision, as a pure function: which READYTOPRINT job starts on which
//! printer now, and why every other job waits.
//!
//! [`plan`] takes plain views of the queue ([`Candidate`]), of the printers ([`Slot`]), the
//! farm policies ([`Policy`]) and what is printing ([`Farm`]), plus the time, and returns a
//! [`Plan`]. No store, no drivers, no clock: `tests.rs` is a table of farms and the plans
//! they must give. [`run`] is the small task that builds the views, carries the plan out
//! through the workflow and writes the holds onto the jobs.
//!
//! Rules, in the order they are checked for each job (highest priority first, then
//! oldest):
//! 1. a job flagged for staff (failed too often) is not auto-dispatched;
//! 2. the per-student cap on jobs printing at once;
//! 3. the printers it fits: staff's chosen printer only, else every printer whose materials,
//!    loaded spool (material and colour), nozzle and build volume fit, and that can take
//!    G-code when it is connected;
//! 4. of those with auto-dispatch on, the free ones, best first (the loaded spool matching
//!    exactly, then the smallest build volume that fits, then config order);
//! 5. staffed hours: a job whose estimated end falls after closing only goes to an
//!    `unattended_ok` printer;
//! 6. staggered starts: at most one start per `stagger`.

mod run;
#[cfg(test)]
mod tests;
mod views;

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, NaiveTime, Utc};

pub use crate::dispatch_config::StaffedHours;
use crate::model::JobId;
pub use run::run;
pub use views::{candidate, slot};

/// A READYTOPRINT job, as the scheduler sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub id: JobId,
    /// Who the job is for (the e-mail, lower-case), for the per-student cap.
    pub student: String,
    pub material: Option<String>,
    pub color: Option<String>,
    /// The printer staff chose at approval, if any.
    pub printer: Option<String>,
    /// Whether the analysis says the model fits each printer (`analysis.fits`).
    pub fits: BTreeMap<String, bool>,
    /// Extents in mm, when the analysis knows them (used where `fits` is silent).
    pub bbox_mm: Option<[f64; 3]>,
    pub nozzle_mm: Option<f64>,
    /// The estimated print time.
    pub duration: Option<Duration>,
    pub priority: i32,
    pub created_at: DateTime<Utc>,
    /// Flagged for staff after too many failures.
    pub needs_staff: bool,
    /// It has G-code (a connected printer needs it).
    pub has_gcode: bool,
}

/// A printer, as the scheduler sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Slot {
    pub id: String,
    /// `None` when it can start a job now, else what it is doing ("printing", …).
    pub busy: Option<String>,
    pub auto_dispatch: bool,
    /// Connected printers are sent G-code; manual ones are started by hand.
    pub connected: bool,
    pub build_volume_mm: Option<[f64; 3]>,
    pub materials: Vec<String>,
    pub loaded_material: Option<String>,
    pub loaded_color: Option<String>,
    pub nozzle_mm: Option<f64>,
    pub unattended_ok: bool,
}

/// The farm policies.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Policy {
    /// Minimum time between two automatic starts.
    pub stagger: Duration,
    pub max_per_student: Option<u32>,
    pub hours: Option<StaffedHours>,
}

/// What is going on in the farm right now.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Farm {
    pub last_start: Option<DateTime<Utc>>,
    /// Jobs printing now, per student.
    pub printing: BTreeMap<String, u32>,
}

/// The decision: jobs to start now, and the reason each other job waits.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    pub starts: Vec<(JobId, String)>,
    pub waits: BTreeMap<JobId, String>,
}

/// Whether `job` could ever print on `slot`, or why not.
pub fn fits(job: &Candidate, slot: &Slot) -> Result<(), String> {
    let material = job.material.as_deref().filter(|m| !is_any(m));
    if let Some(m) = material {
        if !slot.materials.is_empty() && !slot.materials.iter().any(|k| same(k, m)) {
            return Err(format!("{} does not print {m}", slot.id));
        }
        if let Some(loaded) = &slot.loaded_material
            && !same(loaded, m)
        {
            return Err(format!("{} has {loaded} loaded, not {m}", slot.id));
        }
    }
    if let (Some(color), Some(loaded)) = (
        job.color.as_deref().filter(|c| !is_any(c)),
        &slot.loaded_color,
    ) && !same(color, loaded)
    {
        return Err(format!("{} has {loaded} loaded, not {color}", slot.id));
    }
    if let (Some(want), Some(have)) = (job.nozzle_mm, slot.nozzle_mm)
        && (want - have).abs() > 0.01
    {
        return Err(format!(
            "{} has a {have} mm nozzle, the job needs {want} mm",
            slot.id
        ));
    }
    let fits_volume = match job.fits.get(&slot.id) {
        Some(known) => *known,
        None => match (job.bbox_mm, slot.build_volume_mm) {
            (Some(bbox), Some(volume)) => fits_in(bbox, volume),
            _ => true,
        },
    };
    if !fits_volume {
        return Err(format!("the model is too big for {}", slot.id));
    }
    if slot.connected && !job.has_gcode {
        return Err(format!("{} needs G-code and the job has none yet", slot.id));
    }
    Ok(())
}

/// The printers `job` fits, best first (never mind whether they are free).
pub fn ranked<'a>(job: &Candidate, slots: &'a [Slot]) -> Result<Vec<&'a Slot>, String> {
    let allowed: Vec<&Slot> = match &job.printer {
        Some(chosen) => slots.iter().filter(|s| &s.id == chosen).collect(),
        None => slots.iter().collect(),
    };
    if allowed.is_empty() {
        return Err(format!(
            "printer {} is not configured",
            job.printer.as_deref().unwrap_or("?")
        ));
    }
    let mut why = Vec::new();
    let mut fitting: Vec<(usize, &Slot)> = Vec::new();
    for (order, slot) in allowed.into_iter().enumerate() {
        match fits(job, slot) {
            Ok(()) => fitting.push((order, slot)),
            Err(reason) => why.push(reason),
        }
    }
    if fitting.is_empty() {
        return Err(format!("no printer fits: {}", why.join("; ")));
    }
    fitting.sort_by(|(ao, a), (bo, b)| {
        spool_match(job, b)
            .cmp(&spool_match(job, a))
            .then(volume(a).total_cmp(&volume(b)))
            .then(ao.cmp(bo))
    });
    Ok(fitting.into_iter().map(|(_, s)| s).collect())
}

/// The printer a manual dispatch without a printer goes to: the best free one that fits
/// (auto-dispatch and policies do not apply: staff are there and chose to start it).
pub fn best_free(job: &Candidate, slots: &[Slot]) -> Result<String, String> {
    let ranked = ranked(job, slots)?;
    ranked
        .iter()
        .find(|s| s.busy.is_none())
        .map(|s| s.id.clone())
        .ok_or_else(|| waits_for_printer(&ranked))
}

/// Decides what starts now.
pub fn plan(
    jobs: &[Candidate],
    slots: &[Slot],
    policy: &Policy,
    farm: &Farm,
    now: DateTime<Utc>,
) -> Plan {
    let mut order: Vec<&Candidate> = jobs.iter().collect();
    order.sort_by(|a, b| {
        b.priority
            .cmp(&a.priority)
            .then(a.created_at.cmp(&b.created_at))
            .then(a.id.cmp(&b.id))
    });
    let mut plan = Plan::default();
    let mut taken: Vec<String> = Vec::new();
    let mut printing = farm.printing.clone();
    let mut last_start = farm.last_start;
    for job in order {
        match place(job, slots, policy, &printing, last_start, &taken, now) {
            Ok(printer) => {
                *printing.entry(job.student.clone()).or_default() += 1;
                last_start = Some(now);
                taken.push(printer.clone());
                plan.starts.push((job.id, printer));
            }
            Err(reason) => {
                plan.waits.insert(job.id, reason);
            }
        }
    }
    plan
}

/// Where one job goes now, or why it waits.
fn place(
    job: &Candidate,
    slots: &[Slot],
    policy: &Policy,
    printing: &BTreeMap<String, u32>,
    last_start: Option<DateTime<Utc>>,
    taken: &[String],
    now: DateTime<Utc>,
) -> Result<String, String> {
    if job.needs_staff {
        return Err("needs staff: it failed too often to be dispatched automatically".into());
    }
    if let Some(cap) = policy.max_per_student {
        let running = printing.get(&job.student).copied().unwrap_or(0);
        if running >= cap {
            return Err(format!(
                "waits: the student already has {running} job(s) printing (limit {cap})"
            ));
        }
    }
    let ranked = ranked(job, slots)?;
    let auto: Vec<&Slot> = ranked.into_iter().filter(|s| s.auto_dispatch).collect();
    if auto.is_empty() {
        return Err(
            "waits: staff to press Dispatch (no printer it fits is auto-dispatched)".into(),
        );
    }
    let free: Vec<&Slot> = auto
        .iter()
        .copied()
        .filter(|s| s.busy.is_none() && !taken.contains(&s.id))
        .collect();
    let Some(first) = free.first() else {
        return Err(waits_for_printer(&auto));
    };
    let printer = match (&policy.hours, job.duration) {
        (Some(hours), duration) => {
            let allowed = staffed(hours, now, duration.unwrap_or_else(Duration::zero));
            match allowed {
                Ok(()) => first.id.clone(),
                Err(reason) => free
                    .iter()
                    .find(|s| s.unattended_ok)
                    .map(|s| s.id.clone())
                    .ok_or(reason)?,
            }
        }
        (None, _) => first.id.clone(),
    };
    if let Some(last) = last_start
        && now < last + policy.stagger
    {
        let next = last + policy.stagger;
        return Err(format!(
            "waits: staggered start, next start at {}",
            next.format("%H:%M:%S")
        ));
    }
    Ok(printer)
}

fn waits_for_printer(ranked: &[&Slot]) -> String {
    let doing: Vec<String> = ranked
        .iter()
        .map(|s| format!("{} {}", s.id, s.busy.as_deref().unwrap_or("taken")))
        .collect();
    format!("waits: for a free printer ({})", doing.join(", "))
}

/// Whether a job of `duration` started `now` ends within the staffed hours.
pub fn staffed(hours: &StaffedHours, now: DateTime<Utc>, duration: Duration) -> Result<(), String> {
    let local = now.with_timezone(&hours.offset);
    let time = local.time();
    if time < hours.open || time >= hours.close {
        return Err(format!("waits: lab opens at {}", hm(hours.open)));
    }
    let end = (local + duration).naive_local();
    let close = local.date_naive().and_time(hours.close);
    if end > close {
        return Err(format!("waits: lab closes at {}", hm(hours.close)));
    }
    Ok(())
}

fn hm(time: NaiveTime) -> String {
    time.format("%H:%M").to_string()
}

/// 2 for the loaded spool matching material and colour, 1 for material only, else 0.
fn spool_match(job: &Candidate, slot: &Slot) -> u8 {
    let material = match (&slot.loaded_material, &job.material) {
        (Some(loaded), Some(m)) => same(loaded, m),
        _ => false,
    };
    let color = match (&slot.loaded_color, &job.color) {
        (Some(loaded), Some(c)) => same(loaded, c),
        _ => false,
    };
    u8::from(material) + u8::from(material && color)
}

fn volume(slot: &Slot) -> f64 {
    slot.build_volume_mm
        .map_or(f64::INFINITY, |v| v[0] * v[1] * v[2])
}

/// X and Y may be swapped (the model can be turned on the bed); Z may not.
fn fits_in(bbox: [f64; 3], volume: [f64; 3]) -> bool {
    let flat = |a: f64, b: f64| a <= volume[0] && b <= volume[1];
    bbox[2] <= volume[2] && (flat(bbox[0], bbox[1]) || flat(bbox[1], bbox[0]))
}

fn same(a: &str, b: &str) -> bool {
    a.trim().eq_ignore_ascii_case(b.trim())
}

fn is_any(value: &str) -> bool {
    value.trim().is_empty() || same(value, "any")
}
