use chrono::{Duration, TimeZone};

use super::*;
use crate::model::JobId;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 23, 12, 0, 0)
        .single()
        .expect("valid time")
}

fn ada() -> Actor {
    Actor::Staff {
        name: "Ada Lovelace".into(),
        workstation: "kiosk-1".into(),
    }
}

fn job(status: Status) -> Job {
    Job {
        id: JobId(7),
        display_name: "GraceHopper_PLA_Red_7".into(),
        status,
        student_name: "Grace Hopper".into(),
        student_email: "grace@example.edu".into(),
        discipline: None,
        class_number: None,
        original_filename: "boat.stl".into(),
        file_hash: "ab".repeat(32),
        size_bytes: 10,
        format: "stl".into(),
        file_version: 1,
        material: Some("PLA".into()),
        color: Some("Red".into()),
        printer: Some("mk3-1".into()),
        weight_g: None,
        time_hours: None,
        cost_usd: None,
        student_confirmed: false,
        reject_reasons: vec![],
        notes: String::new(),
        locked_by: None,
        locked_until: None,
        attempts: 0,
        duplicate_of: None,
        analysis: serde_json::json!({"state": "pending"}),
        artifacts: Default::default(),
        progress: None,
        staff_viewed_at: None,
        paid_usd: None,
        payment_ref: None,
        picked_up_by: None,
        created_at: now(),
        updated_at: now(),
        priority: 0,
        waits: None,
        needs_staff: None,
        staff_printer: None,
    }
}

/// Every status-changing action with the actor that may take it and where it leads.
fn transitions() -> Vec<(Action, Actor, Status)> {
    vec![
        (
            Action::Approve(Approval {
                printer: None,
                material: "PLA".into(),
                color: "Red".into(),
                weight_g: Some(12.0),
                time_hours: Some(1.5),
                cost_usd: 3.0,
            }),
            ada(),
            Status::Pending,
        ),
        (
            Action::Reject {
                reasons: vec!["walls too thin".into()],
            },
            ada(),
            Status::Rejected,
        ),
        (Action::ResendConfirmation, ada(), Status::Pending),
        (Action::Confirm, Actor::Student, Status::ReadyToPrint),
        (
            Action::Dispatch {
                printer: "mk3-1".into(),
            },
            ada(),
            Status::Printing,
        ),
        (
            Action::Fail {
                reason: "spaghetti".into(),
                cause: FailureCause::Printer,
            },
            ada(),
            Status::ReadyToPrint,
        ),
        (Action::Complete, ada(), Status::Completed),
        (
            Action::Pickup(Pickup::default()),
            ada(),
            Status::PaidPickedUp,
        ),
        (Action::Archive, ada(), Status::Archived),
    ]
}

#[test]
fn every_action_from_every_status_is_allowed_or_refused_with_the_current_status() {
    let mut legal = 0;
    for status in Status::ALL {
        for (action, actor, target) in transitions() {
            let allowed = action.allowed_from().expect("status-changing action");
            match apply(&job(status), &action, &actor, now()) {
                Ok(t) => {
                    assert!(allowed.contains(&status), "{action:?} from {status}");
                    assert_eq!(t.job.status, target, "{action:?} from {status}");
                    assert_eq!(t.events.len(), 1, "one event per action");
                    legal += 1;
                }
                Err(TransitionError::IllegalTransition {
                    status: reported, ..
                }) => {
                    assert!(!allowed.contains(&status), "{action:?} from {status}");
                    assert_eq!(reported, status);
                    let message = apply(&job(status), &action, &actor, now())
                        .expect_err("illegal")
                        .to_string();
                    assert!(message.contains(status.as_str()), "{message}");
                }
                Err(other) => panic!("{action:?} from {status}: {other}"),
            }
        }
    }
    // approve 1, reject 3, resend 1, confirm 1, dispatch 1, fail 1, complete 1, pickup 1, archive 2
    assert_eq!(legal, 12);
}

#[test]
fn a_failed_print_goes_back_to_ready_with_one_more_attempt() {
    let mut printing = job(Status::Printing);
    printing.attempts = 2;
    let fail = Action::Fail {
        reason: "nozzle clog".into(),
        cause: FailureCause::Printer,
    };
    let t = apply(&printing, &fail, &ada(), now()).expect("fail");
    assert_eq!(t.job.status, Status::ReadyToPrint);
    assert_eq!(t.job.attempts, 3);
    assert_eq!(t.events[0].event_type, EventType::PrintFailed);
    assert_eq!(t.events[0].details["cause"], "printer");
    assert_eq!(t.events[0].details["from"], "PRINTING");
    assert!(t.effects.contains(&Effect::PrinterStopped {
        printer: "mk3-1".into()
    }));
}

#[test]
fn only_the_student_confirms_and_students_do_nothing_else() {
    let pending = job(Status::Pending);
    assert!(matches!(
        apply(&pending, &Action::Confirm, &ada(), now()),
        Err(TransitionError::NotPermitted { .. })
    ));
    assert!(matches!(
        apply(
            &job(Status::Uploaded),
            &Action::Archive,
            &Actor::Student,
            now()
        ),
        Err(TransitionError::NotPermitted { .. })
    ));
}

#[test]
fn a_lock_held_by_someone_else_blocks_until_it_expires() {
    let mut locked = job(Status::Uploaded);
    locked.locked_by = Some("Grace Hopper".into());
    locked.locked_until = Some(now() + Duration::minutes(10));
    let notes = Action::UpdateNotes {
        notes: "check walls".into(),
    };
    let err = apply(&locked, &notes, &ada(), now()).expect_err("locked");
    assert!(err.to_string().contains("locked by Grace Hopper"), "{err}");
    // The holder may act; after expiry anyone may.
    let grace = Actor::Staff {
        name: "Grace Hopper".into(),
        workstation: "kiosk-2".into(),
    };
    assert!(apply(&locked, &notes, &grace, now()).is_ok());
    assert!(apply(&locked, &notes, &ada(), now() + Duration::minutes(11)).is_ok());
    // Viewing is never blocked.
    assert!(apply(&locked, &Action::MarkViewed, &ada(), now()).is_ok());
}

#[test]
fn rejection_needs_a_reason_and_approval_sane_numbers() {
    let empty = Action::Reject {
        reasons: vec!["  ".into()],
    };
    assert!(matches!(
        apply(&job(Status::Uploaded), &empty, &ada(), now()),
        Err(TransitionError::Invalid(_))
    ));
    let negative = Action::Approve(Approval {
        printer: None,
        material: "PLA".into(),
        color: "Red".into(),
        weight_g: Some(-1.0),
        time_hours: None,
        cost_usd: 3.0,
    });
    assert!(matches!(
        apply(&job(Status::Uploaded), &negative, &ada(), now()),
        Err(TransitionError::Invalid(_))
    ));
}

#[test]
fn viewing_sets_the_mark_once_and_records_nothing() {
    let t = apply(&job(Status::Uploaded), &Action::MarkViewed, &ada(), now()).expect("view");
    assert_eq!(t.job.staff_viewed_at, Some(now()));
    assert!(t.events.is_empty());
    let later = apply(
        &t.job,
        &Action::MarkViewed,
        &ada(),
        now() + Duration::hours(1),
    )
    .expect("view again");
    assert_eq!(later.job.staff_viewed_at, Some(now()));
}

#[test]
fn only_farmhand_expires_a_link_and_the_job_stays_pending_without_it() {
    let timer = Actor::System { component: "timer" };
    let t = apply(
        &job(Status::Pending),
        &Action::ExpireConfirmation,
        &timer,
        now(),
    )
    .expect("expire");
    assert_eq!(t.job.status, Status::Pending);
    assert_eq!(t.events[0].event_type, EventType::ConfirmationExpired);
    assert_eq!(
        t.effects,
        vec![Effect::RevokeConfirmation, Effect::SendExpiryNotice]
    );
    for actor in [ada(), Actor::Student] {
        assert!(matches!(
            apply(
                &job(Status::Pending),
                &Action::ExpireConfirmation,
                &actor,
                now()
            ),
            Err(TransitionError::NotPermitted { .. })
        ));
    }
    assert!(matches!(
        apply(
            &job(Status::ReadyToPrint),
            &Action::ExpireConfirmation,
            &timer,
            now()
        ),
        Err(TransitionError::IllegalTransition { .. })
    ));
}

fn added(format: &str, gcode: bool) -> Action {
    Action::AddFile {
        version: 2,
        file: Box::new(AddedFile {
            hash: "cd".repeat(32),
            size_bytes: 99,
            filename: format!("part.{format}"),
            format: format.into(),
            gcode_analysis: gcode.then(|| serde_json::json!({ "time_s": 60 })),
        }),
    }
}

#[test]
fn staff_sliced_gcode_rides_beside_the_students_model() {
    let mut model = job(Status::Pending);
    model
        .artifacts
        .insert("preview.glb".into(), "ee".repeat(32));
    let t = apply(&model, &added("gcode", true), &ada(), now()).expect("add G-code");
    assert_eq!(t.job.file_hash, model.file_hash, "the model stays current");
    assert_eq!(t.job.file_version, 1);
    assert_eq!(t.job.artifacts["gcode"], "cd".repeat(32));
    assert_eq!(t.job.artifacts["preview.glb"], "ee".repeat(32));
    assert_eq!(t.job.analysis["sliced"]["time_s"], 60);
    assert_eq!(t.events[0].event_type, EventType::FileAdded);
    assert_eq!(t.events[0].details["becomes"], "gcode");
    assert!(
        t.effects.is_empty(),
        "nothing to reprocess: {:?}",
        t.effects
    );
}

#[test]
fn a_repaired_model_becomes_current_and_is_processed_again() {
    let mut model = job(Status::ReadyToPrint);
    model
        .artifacts
        .insert("preview.glb".into(), "ee".repeat(32));
    model.artifacts.insert("gcode".into(), "ff".repeat(32));
    let t = apply(&model, &added("3mf", false), &ada(), now()).expect("add model");
    assert_eq!(
        (
            t.job.file_hash.as_str(),
            t.job.format.as_str(),
            t.job.file_version
        ),
        ("cd".repeat(32).as_str(), "3mf", 2)
    );
    assert!(
        t.job.artifacts.is_empty(),
        "stale artifacts: {:?}",
        t.job.artifacts
    );
    assert_eq!(t.job.analysis["state"], "pending");
    assert_eq!(t.job.status, Status::ReadyToPrint);
    assert_eq!(t.events[0].details["becomes"], "current");
    assert_eq!(t.effects, vec![Effect::Reprocess]);
}

#[test]
fn files_change_only_before_printing_and_only_by_staff() {
    for status in Status::ALL {
        let result = apply(&job(status), &added("stl", false), &ada(), now());
        let editable = matches!(
            status,
            Status::Uploaded | Status::Pending | Status::ReadyToPrint
        );
        assert_eq!(result.is_ok(), editable, "{status:?}: {result:?}");
        if !editable {
            assert!(matches!(
                result,
                Err(TransitionError::IllegalTransition { .. })
            ));
        }
    }
    assert!(matches!(
        apply(
            &job(Status::Pending),
            &added("stl", false),
            &Actor::Student,
            now()
        ),
        Err(TransitionError::NotPermitted { .. })
    ));
    let mut locked = job(Status::Pending);
    locked.locked_by = Some("Grace Hopper".into());
    locked.locked_until = Some(now() + Duration::minutes(5));
    assert!(matches!(
        check(&locked, &added("stl", false), &ada(), now()),
        Err(TransitionError::Locked { .. })
    ));
}
