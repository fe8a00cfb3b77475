//! Table tests of the decision: each case a small farm and the plan it must give.

use super::*;
use chrono::TimeZone;

fn at(h: u32, m: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 1, h, m, 0)
        .single()
        .expect("time")
}

fn job(id: u64, material: &str, color: &str) -> Candidate {
    Candidate {
        id: JobId(id),
        student: format!("s{id}@example.edu"),
        material: Some(material.into()),
        color: Some(color.into()),
        printer: None,
        fits: BTreeMap::new(),
        bbox_mm: Some([20.0, 20.0, 20.0]),
        nozzle_mm: None,
        duration: Some(Duration::hours(1)),
        priority: 0,
        // Lower ids are older.
        created_at: at(8, 0) + Duration::minutes(id as i64),
        needs_staff: false,
        has_gcode: true,
    }
}

fn printer(id: &str, materials: &[&str]) -> Slot {
    Slot {
        id: id.into(),
        busy: None,
        auto_dispatch: true,
        connected: true,
        build_volume_mm: Some([250.0, 210.0, 210.0]),
        materials: materials.iter().map(|m| m.to_string()).collect(),
        loaded_material: None,
        loaded_color: None,
        nozzle_mm: None,
        unattended_ok: false,
    }
}

fn loaded(mut slot: Slot, material: &str, color: &str) -> Slot {
    slot.loaded_material = Some(material.into());
    slot.loaded_color = Some(color.into());
    slot
}

fn hours() -> Policy {
    Policy {
        hours: Some(StaffedHours {
            open: NaiveTime::from_hms_opt(9, 0, 0).expect("time"),
            close: NaiveTime::from_hms_opt(17, 0, 0).expect("time"),
            offset: chrono::FixedOffset::east_opt(0).expect("offset"),
        }),
        ..Policy::default()
    }
}

struct Case {
    name: &'static str,
    jobs: Vec<Candidate>,
    printers: Vec<Slot>,
    policy: Policy,
    farm: Farm,
    now: DateTime<Utc>,
    starts: Vec<(u64, &'static str)>,
    /// (job, a phrase its reason must contain)
    waits: Vec<(u64, &'static str)>,
}

fn case(name: &'static str) -> Case {
    Case {
        name,
        jobs: vec![],
        printers: vec![],
        policy: Policy::default(),
        farm: Farm::default(),
        now: at(10, 0),
        starts: vec![],
        waits: vec![],
    }
}

fn cases() -> Vec<Case> {
    let mut big = job(2, "PLA", "Red");
    big.bbox_mm = Some([300.0, 20.0, 20.0]);
    let mut told_no_fit = job(3, "PLA", "Red");
    told_no_fit.fits.insert("mk3".into(), false);
    let mut chosen = job(1, "PLA", "Red");
    chosen.printer = Some("b".into());
    let mut urgent = job(9, "PLA", "Red");
    urgent.priority = 5;
    let mut flagged = job(1, "PLA", "Red");
    flagged.needs_staff = true;
    let mut same_student = job(2, "PLA", "Red");
    same_student.student = "s1@example.edu".into();
    let mut long = job(1, "PLA", "Red");
    long.duration = Some(Duration::hours(8));
    let mut stl = job(1, "PLA", "Red");
    stl.has_gcode = false;
    let mut nozzle = job(1, "PLA", "Red");
    nozzle.nozzle_mm = Some(0.6);
    let mut manual = printer("manual", &["PLA"]);
    manual.connected = false;
    manual.auto_dispatch = false;
    let mut busy = printer("a", &["PLA"]);
    busy.busy = Some("needs clearing".into());
    let mut off = printer("a", &["PLA"]);
    off.auto_dispatch = false;
    let mut night = printer("night", &["PLA"]);
    night.unattended_ok = true;
    let mut fine = printer("fine", &["PLA"]);
    fine.nozzle_mm = Some(0.4);
    let mut small = printer("small", &["PLA"]);
    small.build_volume_mm = Some([120.0, 120.0, 120.0]);

    vec![
        Case {
            jobs: vec![job(1, "PLA", "Red"), job(2, "PETG", "Black")],
            printers: vec![printer("petg", &["PETG"]), printer("pla", &["PLA"])],
            starts: vec![(1, "pla"), (2, "petg")],
            ..case("each material goes to the printer that prints it")
        },
        Case {
            jobs: vec![job(1, "PLA", "Red"), job(2, "PLA", "Blue")],
            printers: vec![
                loaded(printer("blue", &["PLA"]), "PLA", "Blue"),
                loaded(printer("red", &["PLA"]), "PLA", "Red"),
            ],
            starts: vec![(1, "red"), (2, "blue")],
            ..case("the loaded colour decides between printers of one material")
        },
        Case {
            jobs: vec![job(1, "PLA", "Green")],
            printers: vec![loaded(printer("red", &["PLA"]), "PLA", "Red")],
            waits: vec![(1, "has Red loaded, not Green")],
            ..case("a colour nobody has loaded waits, saying so")
        },
        Case {
            jobs: vec![job(1, "PLA", "Any")],
            printers: vec![loaded(printer("red", &["PLA"]), "PLA", "Red")],
            starts: vec![(1, "red")],
            ..case("colour Any prints on whatever is loaded")
        },
        Case {
            jobs: vec![job(1, "PLA", "Red")],
            printers: vec![printer("big", &["PLA"]), small.clone()],
            starts: vec![(1, "small")],
            ..case("the smallest printer that fits keeps the big one free")
        },
        Case {
            jobs: vec![big, told_no_fit],
            printers: vec![printer("mk3", &["PLA"])],
            waits: vec![(2, "too big for mk3"), (3, "too big for mk3")],
            ..case("build volume from the bbox and from the analysis' fits")
        },
        Case {
            jobs: vec![nozzle],
            printers: vec![fine],
            waits: vec![(1, "0.4 mm nozzle")],
            ..case("a job sliced for another nozzle waits")
        },
        Case {
            jobs: vec![stl],
            printers: vec![printer("a", &["PLA"])],
            waits: vec![(1, "needs G-code")],
            ..case("a connected printer needs G-code")
        },
        Case {
            jobs: vec![chosen],
            printers: vec![printer("a", &["PLA"]), printer("b", &["PLA"])],
            starts: vec![(1, "b")],
            ..case("staff's chosen printer and no other")
        },
        Case {
            jobs: vec![job(1, "PLA", "Red"), urgent],
            printers: vec![printer("a", &["PLA"])],
            starts: vec![(9, "a")],
            waits: vec![(1, "for a free printer")],
            ..case("priority beats age")
        },
        Case {
            jobs: vec![job(2, "PLA", "Red"), job(1, "PLA", "Red")],
            printers: vec![printer("a", &["PLA"])],
            starts: vec![(1, "a")],
            waits: vec![(2, "for a free printer (a taken)")],
            ..case("oldest first")
        },
        Case {
            jobs: vec![flagged, job(2, "PLA", "Red")],
            printers: vec![printer("a", &["PLA"])],
            starts: vec![(2, "a")],
            waits: vec![(1, "needs staff")],
            ..case("a job flagged for staff does not block the queue")
        },
        Case {
            jobs: vec![job(1, "PLA", "Red")],
            printers: vec![busy],
            waits: vec![(1, "a needs clearing")],
            ..case("a bed to clear blocks its printer")
        },
        Case {
            jobs: vec![job(1, "PLA", "Red")],
            printers: vec![off, manual],
            waits: vec![(1, "staff to press Dispatch")],
            ..case("printers without auto-dispatch wait for staff")
        },
        Case {
            jobs: vec![job(1, "PLA", "Red"), same_student, job(3, "PLA", "Red")],
            printers: vec![
                printer("a", &["PLA"]),
                printer("b", &["PLA"]),
                printer("c", &["PLA"]),
            ],
            policy: Policy {
                max_per_student: Some(1),
                ..Policy::default()
            },
            starts: vec![(1, "a"), (3, "b")],
            waits: vec![(2, "1 job(s) printing (limit 1)")],
            ..case("per-student cap counts the starts of this very plan")
        },
        Case {
            jobs: vec![job(1, "PLA", "Red")],
            printers: vec![printer("a", &["PLA"])],
            policy: Policy {
                max_per_student: Some(2),
                ..Policy::default()
            },
            farm: Farm {
                printing: [("s1@example.edu".to_string(), 2)].into(),
                ..Farm::default()
            },
            waits: vec![(1, "2 job(s) printing (limit 2)")],
            ..case("per-student cap counts what already prints")
        },
        Case {
            jobs: vec![job(1, "PLA", "Red"), job(2, "PLA", "Red")],
            printers: vec![printer("a", &["PLA"]), printer("b", &["PLA"])],
            policy: Policy {
                stagger: Duration::minutes(2),
                ..Policy::default()
            },
            starts: vec![(1, "a")],
            waits: vec![(2, "staggered start, next start at 10:02:00")],
            ..case("staggered starts: one per gap")
        },
        Case {
            jobs: vec![job(1, "PLA", "Red")],
            printers: vec![printer("a", &["PLA"])],
            policy: Policy {
                stagger: Duration::minutes(2),
                ..Policy::default()
            },
            farm: Farm {
                last_start: Some(at(9, 59)),
                ..Farm::default()
            },
            waits: vec![(1, "next start at 10:01:00")],
            ..case("staggered starts remember the last start")
        },
        Case {
            jobs: vec![long.clone()],
            printers: vec![printer("a", &["PLA"])],
            policy: hours(),
            waits: vec![(1, "waits: lab closes at 17:00")],
            ..case("a job ending after closing is held")
        },
        Case {
            jobs: vec![long],
            printers: vec![printer("a", &["PLA"]), night.clone()],
            policy: hours(),
            starts: vec![(1, "night")],
            ..case("unless an unattended printer takes it")
        },
        Case {
            jobs: vec![job(1, "PLA", "Red")],
            printers: vec![printer("a", &["PLA"])],
            policy: hours(),
            now: at(7, 30),
            waits: vec![(1, "waits: lab opens at 09:00")],
            ..case("nothing starts on an attended printer while the lab is closed")
        },
        Case {
            jobs: vec![job(1, "PLA", "Red")],
            printers: vec![printer("a", &["PLA"])],
            policy: hours(),
            now: at(15, 59),
            starts: vec![(1, "a")],
            ..case("a job ending before closing starts")
        },
    ]
}

#[test]
fn plans() {
    for c in cases() {
        let plan = plan(&c.jobs, &c.printers, &c.policy, &c.farm, c.now);
        let starts: Vec<(u64, &str)> = plan
            .starts
            .iter()
            .map(|(id, p)| (id.0, p.as_str()))
            .collect();
        assert_eq!(starts, c.starts, "{}: {plan:?}", c.name);
        for (id, phrase) in &c.waits {
            let reason = plan.waits.get(&JobId(*id)).map_or("", String::as_str);
            assert!(
                reason.contains(phrase),
                "{}: job {id} should wait with {phrase:?}, got {reason:?}",
                c.name
            );
        }
        assert_eq!(
            plan.waits.len() + plan.starts.len(),
            c.jobs.len(),
            "{}: every job either starts or has a reason",
            c.name
        );
    }
}

#[test]
fn manual_dispatch_takes_the_best_free_printer_and_ignores_the_policies() {
    let mut a = printer("a", &["PLA"]);
    a.auto_dispatch = false;
    let mut busy = loaded(printer("red", &["PLA"]), "PLA", "Red");
    busy.busy = Some("printing".into());
    let slots = vec![a, busy, loaded(printer("red2", &["PLA"]), "PLA", "Red")];
    assert_eq!(best_free(&job(1, "PLA", "Red"), &slots), Ok("red2".into()));
    // The loaded material counts even when any colour will do.
    assert_eq!(best_free(&job(1, "PLA", "Any"), &slots), Ok("red2".into()));
    assert_eq!(best_free(&job(1, "PLA", "Blue"), &slots), Ok("a".into()));
    let none = best_free(&job(1, "PETG", "Red"), &slots).expect_err("no PETG printer");
    assert!(none.contains("no printer fits"), "{none}");
}
