use super::*;

const GRACE: Duration = Duration::from_secs(60);
const J: JobId = JobId(7);

fn status(state: PrinterState, outcome: Option<PrintOutcome>) -> PrinterStatus {
    PrinterStatus {
        state,
        last_outcome: outcome,
        job: matches!(state, PrinterState::Printing).then(|| drivers::JobProgress {
            percent: 12.34,
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn ended(d: Option<Decision>) -> Option<Action> {
    match d {
        Some(Decision::End(job, action)) => {
            assert_eq!(job, J);
            Some(action)
        }
        _ => None,
    }
}

fn reason(action: Option<Action>) -> String {
    match action {
        Some(Action::Fail { reason, .. }) => reason,
        other => panic!("expected a failure, got {other:?}"),
    }
}

#[test]
fn outcomes_count_only_after_the_job_was_seen_printing() {
    use PrinterState::*;
    let t0 = Instant::now();
    // (statuses in order, what the last one decides)
    let done = Some(PrintOutcome::Completed);
    let cases: Vec<(Vec<PrinterStatus>, Option<Action>)> = vec![
        // The previous print's outcome lingers before ours starts: ignored.
        (vec![status(Idle, done.clone())], None),
        (
            vec![status(Printing, None), status(Idle, done.clone())],
            Some(Action::Complete),
        ),
        (
            vec![
                status(Printing, None),
                status(Idle, Some(PrintOutcome::Cancelled)),
            ],
            Some(fail("the print was cancelled".into())),
        ),
        (
            vec![
                status(Printing, None),
                status(
                    Error,
                    Some(PrintOutcome::Failed {
                        reason: "Thermal Runaway".into(),
                    }),
                ),
            ],
            Some(fail("Thermal Runaway".into())),
        ),
        // Paused is still printing.
        (vec![status(Printing, None), status(Paused, None)], None),
    ];
    for (statuses, want) in cases {
        let mut w = Watch::new("p1", GRACE, None);
        let mut last = None;
        for s in &statuses {
            last = w.step(t0, s, Some(J));
        }
        assert_eq!(ended(last), want, "{statuses:?}");
    }
}

#[test]
fn progress_is_rounded_and_rate_limited() {
    let t0 = Instant::now();
    let mut w = Watch::new("p1", GRACE, None);
    let printing = status(PrinterState::Printing, None);
    match w.step(t0, &printing, Some(J)) {
        Some(Decision::Progress(J, p)) => assert_eq!(p.percent, 12.3),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        w.step(t0 + Duration::from_millis(300), &printing, Some(J)),
        None
    );
    assert!(matches!(
        w.step(t0 + Duration::from_millis(1000), &printing, Some(J)),
        Some(Decision::Progress(..))
    ));
}

#[test]
fn a_link_lost_longer_than_the_grace_period_fails_the_print() {
    let t0 = Instant::now();
    let mut w = Watch::new("p1", GRACE, None);
    w.step(t0, &status(PrinterState::Printing, None), Some(J));
    let offline = status(PrinterState::Offline, None);
    assert_eq!(w.step(t0 + Duration::from_secs(1), &offline, Some(J)), None);
    assert_eq!(w.next_deadline(), Some(t0 + Duration::from_secs(61)));
    // Back within the grace period: nothing lost, the clock starts again next time.
    w.step(
        t0 + Duration::from_secs(50),
        &status(PrinterState::Printing, None),
        Some(J),
    );
    assert_eq!(
        w.step(t0 + Duration::from_secs(70), &offline, Some(J)),
        None
    );
    assert_eq!(
        w.step(t0 + Duration::from_secs(129), &offline, Some(J)),
        None
    );
    let why = reason(ended(w.step(
        t0 + Duration::from_secs(130),
        &offline,
        Some(J),
    )));
    assert!(
        why.contains("lost the link to printer p1 for 60 s"),
        "{why}"
    );
}

#[test]
fn a_printer_that_stops_without_an_outcome_fails_the_print_after_settling() {
    let t0 = Instant::now();
    let mut w = Watch::new("p1", GRACE, None);
    w.step(t0, &status(PrinterState::Printing, None), Some(J));
    let idle = status(PrinterState::Idle, None);
    assert_eq!(w.step(t0 + Duration::from_secs(1), &idle, Some(J)), None);
    assert_eq!(w.step(t0 + Duration::from_secs(5), &idle, Some(J)), None);
    let why = reason(ended(w.step(t0 + Duration::from_secs(6), &idle, Some(J))));
    assert!(why.contains("without saying how"), "{why}");
}

#[test]
fn a_reattached_job_is_kept_while_printing_and_failed_when_the_printer_forgot_it() {
    use PrinterState::*;
    let t0 = Instant::now();
    let s = Duration::from_secs;
    // Still printing after the restart: tracked to the end as usual.
    let mut w = Watch::new("p1", GRACE, Some((J, t0)));
    assert_eq!(w.step(t0, &status(Offline, None), Some(J)), None);
    w.step(t0 + s(2), &status(Printing, None), Some(J));
    let end = w.step(
        t0 + s(300),
        &status(Idle, Some(PrintOutcome::Completed)),
        Some(J),
    );
    assert_eq!(ended(end), Some(Action::Complete));

    // Idle after the restart (it finished or died unseen): failed once idle has settled.
    let mut w = Watch::new("p1", GRACE, Some((J, t0)));
    assert_eq!(w.step(t0 + s(1), &status(Idle, None), Some(J)), None);
    let why = reason(ended(w.step(t0 + s(6), &status(Idle, None), Some(J))));
    assert!(why.contains("did not survive"), "{why}");

    // Never reachable: failed after the grace period (the offline rule).
    let mut w = Watch::new("p1", GRACE, Some((J, t0)));
    assert_eq!(w.step(t0, &status(Offline, None), Some(J)), None);
    assert_eq!(w.next_deadline(), Some(t0 + GRACE));
    let why = reason(ended(w.step(t0 + GRACE, &status(Offline, None), Some(J))));
    assert!(why.contains("lost the link"), "{why}");
}

#[test]
fn a_reattached_job_that_finished_while_we_were_down_ends_as_the_printer_says() {
    let t0 = Instant::now();
    let mut done = status(PrinterState::Idle, Some(PrintOutcome::Completed));
    done.job_ref = Some("j-41".into());
    let mut w = Watch::new("p1", GRACE, Some((J, t0))).expecting(Some("j-41".into()));
    assert_eq!(ended(w.step(t0, &done, Some(J))), Some(Action::Complete));
    // Another job's outcome is not ours: the printer forgot ours, so it failed.
    done.job_ref = Some("j-40".into());
    let mut w = Watch::new("p1", GRACE, Some((J, t0))).expecting(Some("j-41".into()));
    assert_eq!(w.step(t0, &done, Some(J)), None);
    let why = reason(ended(w.step(t0 + Duration::from_secs(5), &done, Some(J))));
    assert!(why.contains("did not survive"), "{why}");
}

#[test]
fn no_job_no_decision() {
    let t0 = Instant::now();
    let mut w = Watch::new("p1", GRACE, None);
    let done = status(PrinterState::Idle, Some(PrintOutcome::Completed));
    assert_eq!(w.step(t0, &done, None), None);
    assert_eq!(w.next_deadline(), None);
}
