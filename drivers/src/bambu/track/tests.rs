use super::*;
use crate::bambu::protocol::print_error_text;

const FULL_IDLE_AFTER_OLD_JOB: &str = r#"{"print":{"gcode_state":"FINISH","mc_percent":100,
"mc_remaining_time":0,"nozzle_temper":30.0,"nozzle_target_temper":0,"bed_temper":28.0,
"bed_target_temper":0,"print_error":0,"hms":[],"subtask_name":"old","command":"push_status","msg":0}}"#;

fn running(percent: u32) -> String {
    format!(
        r#"{{"print":{{"gcode_state":"RUNNING","mc_percent":{percent},"mc_remaining_time":10,"layer_num":3,"total_layer_num":50,"subtask_name":"cube","command":"push_status","msg":0}}}}"#
    )
}

fn delta(fields: &str) -> String {
    format!(r#"{{"print":{{{fields},"command":"push_status","msg":1}}}}"#)
}

fn feed(t: &mut Track, msgs: &[String]) {
    for m in msgs {
        t.report_mut().apply(m.as_bytes()).expect(m);
        t.reported();
    }
}

fn sent() -> Track {
    let mut t = Track::new("01S00A000000000", Duration::from_secs(30));
    t.link_up();
    feed(&mut t, &[FULL_IDLE_AFTER_OLD_JOB.into()]);
    assert_eq!(t.status().state, PrinterState::Idle);
    t.job_sent("cube.gcode".into(), Instant::now());
    t
}

/// (reports after the job was sent, stop requested, state, outcome, still tracked)
type Case = (Vec<String>, bool, PrinterState, Option<PrintOutcome>, bool);

#[test]
fn reports_table() {
    use PrinterState::*;
    let cases: Vec<Case> = vec![
        // The old job's FINISH is not ours.
        (
            vec![delta(r#""mc_percent":100"#)],
            false,
            Printing,
            None,
            true,
        ),
        (
            vec![delta(r#""gcode_state":"PREPARE""#)],
            false,
            Printing,
            None,
            true,
        ),
        (vec![running(40)], false, Printing, None, true),
        (
            vec![running(40), delta(r#""gcode_state":"PAUSE""#)],
            false,
            Paused,
            None,
            true,
        ),
        (
            vec![
                running(40),
                delta(r#""gcode_state":"FINISH","mc_percent":100"#),
            ],
            false,
            Idle,
            Some(PrintOutcome::Completed),
            false,
        ),
        (
            vec![
                running(40),
                delta(r#""gcode_state":"FAILED","print_error":50364419"#),
            ],
            false,
            Error,
            Some(PrintOutcome::Failed {
                reason: print_error_text(50_364_419),
            }),
            false,
        ),
        // A stop from the screen: the firmware's cancel code.
        (
            vec![
                running(40),
                delta(r#""gcode_state":"FAILED","print_error":50348044"#),
            ],
            false,
            Idle,
            Some(PrintOutcome::Cancelled),
            false,
        ),
        // Our own stop, on firmware that just goes IDLE.
        (
            vec![running(40), delta(r#""gcode_state":"IDLE""#)],
            true,
            Idle,
            Some(PrintOutcome::Cancelled),
            false,
        ),
    ];
    for (msgs, stop, state, outcome, tracked) in cases {
        let mut t = sent();
        if stop {
            t.stop_sent();
        }
        feed(&mut t, &msgs);
        assert_eq!(t.status().state, state, "{msgs:?}");
        assert_eq!(t.status().last_outcome, outcome, "{msgs:?}");
        assert_eq!(t.job().is_some(), tracked, "{msgs:?}");
    }
}

#[test]
fn progress_and_temperatures_map_to_the_shared_status() {
    let mut t = sent();
    feed(
        &mut t,
        &[
            running(42),
            delta(r#""nozzle_temper":219.5,"nozzle_target_temper":220"#),
        ],
    );
    let s = t.status();
    let job = s.job.clone().expect("progress");
    assert_eq!(
        (job.percent, job.layer, job.total_layers, job.eta_s),
        (42.0, Some(3), Some(50), Some(600))
    );
    assert_eq!(
        s.temps.tools,
        vec![Temp {
            actual: 219.5,
            target: 220.0
        }]
    );
    assert_eq!(
        s.temps.bed,
        Some(Temp {
            actual: 28.0,
            target: 0.0
        })
    );
    assert_eq!(
        s.job_ref.as_deref(),
        Some("cube"),
        "the subtask name the printer echoes"
    );
}

#[test]
fn broker_loss_keeps_the_job_and_a_reconnect_resumes_it() {
    let mut t = sent();
    feed(&mut t, &[running(30)]);
    t.link_down("broker gone".into());
    assert_eq!(t.status().state, PrinterState::Offline);
    assert!(t.job().is_some());
    t.link_up();
    assert!(!t.heard(), "nothing known until the pushall answer");
    feed(&mut t, &[delta(r#""nozzle_temper":200"#)]);
    assert_eq!(
        t.status().state,
        PrinterState::Offline,
        "a delta is not a full state"
    );
    feed(&mut t, &[running(60)]);
    assert_eq!(t.status().state, PrinterState::Printing);
    assert_eq!(t.status().job.as_ref().map(|j| j.percent), Some(60.0));
    feed(&mut t, &[delta(r#""gcode_state":"FINISH""#)]);
    assert_eq!(t.status().last_outcome, Some(PrintOutcome::Completed));
}

#[test]
fn a_job_never_picked_up_times_out_and_a_refusal_fails_it_at_once() {
    let now = Instant::now();
    let mut t = sent();
    t.tick(now + Duration::from_secs(31));
    assert!(matches!(
        t.status().last_outcome,
        Some(PrintOutcome::Failed { .. })
    ));
    assert_eq!(t.status().state, PrinterState::Idle);

    let mut t = sent();
    t.rejected("project_file", "file not found");
    let Some(PrintOutcome::Failed { reason }) = &t.status().last_outcome else {
        panic!("{:?}", t.status());
    };
    assert!(reason.contains("file not found"), "{reason}");
}

#[test]
fn a_print_running_when_we_connect_is_adopted() {
    let mut t = Track::new("S", Duration::from_secs(30));
    t.link_up();
    feed(&mut t, &[running(70)]);
    assert_eq!(t.job().map(|j| j.name.as_str()), Some("cube"));
    feed(&mut t, &[delta(r#""gcode_state":"FINISH""#)]);
    assert_eq!(t.status().last_outcome, Some(PrintOutcome::Completed));
}

#[test]
fn the_end_of_a_job_that_finished_while_farmhand_was_down_is_reported_with_its_name() {
    let mut t = Track::new("S", Duration::from_secs(30));
    t.link_up();
    feed(&mut t, &[FULL_IDLE_AFTER_OLD_JOB.into()]);
    assert_eq!(t.status().last_outcome, Some(PrintOutcome::Completed));
    assert_eq!(t.status().job_ref.as_deref(), Some("old"));
    assert!(t.job().is_none(), "nothing to follow");
    // A reconnect does not report it again as something new.
    t.link_down("gone".into());
    t.link_up();
    feed(&mut t, &[FULL_IDLE_AFTER_OLD_JOB.into()]);
    assert_eq!(t.status().job_ref.as_deref(), Some("old"));

    let mut t = Track::new("S", Duration::from_secs(30));
    t.link_up();
    feed(
        &mut t,
        &[delta(
            r#""gcode_state":"FAILED","print_error":50364419,"subtask_name":"bracket""#,
        )],
    );
    assert!(matches!(
        t.status().last_outcome,
        Some(PrintOutcome::Failed { .. })
    ));
    assert_eq!(t.status().state, PrinterState::Error);
}
