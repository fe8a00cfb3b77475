use super::*;

/// A full `pushall` answer from a P1S (firmware 01.06), trimmed of fields Farmhand ignores.
const FULL_RUNNING: &str = r#"{"print":{"ams_rfid_status":0,"bed_target_temper":55.0,"bed_temper":54.96875,
"chamber_temper":27.0,"command":"push_status","gcode_file":"cube.gcode","gcode_state":"RUNNING",
"hms":[],"layer_num":12,"mc_percent":21,"mc_print_stage":"2","mc_remaining_time":37,"msg":0,
"nozzle_target_temper":220.0,"nozzle_temper":219.8125,"print_error":0,"sequence_id":"2021",
"spd_lvl":2,"subtask_name":"cube","total_layer_num":100,"wifi_signal":"-44dBm"}}"#;

/// (message, expected gcode_state, percent, remaining minutes, layer, nozzle °C)
type Case<'a> = (
    &'a str,
    Option<GcodeState>,
    Option<u32>,
    Option<u32>,
    Option<u32>,
    Option<f64>,
);

#[test]
fn partial_reports_merge_into_the_full_state() {
    let cases: &[Case] = &[
        (
            FULL_RUNNING,
            Some(GcodeState::Running),
            Some(21),
            Some(37),
            Some(12),
            Some(219.8125),
        ),
        // P1 delta: only what changed.
        (
            r#"{"print":{"mc_percent":22,"command":"push_status","msg":1,"sequence_id":"2022"}}"#,
            Some(GcodeState::Running),
            Some(22),
            Some(37),
            Some(12),
            Some(219.8125),
        ),
        (
            r#"{"print":{"nozzle_temper":220.125,"layer_num":13,"mc_remaining_time":35,"command":"push_status","msg":1}}"#,
            Some(GcodeState::Running),
            Some(22),
            Some(35),
            Some(13),
            Some(220.125),
        ),
        // Numbers as strings (seen on A1 firmware).
        (
            r#"{"print":{"mc_percent":"23","command":"push_status","msg":1}}"#,
            Some(GcodeState::Running),
            Some(23),
            Some(35),
            Some(13),
            Some(220.125),
        ),
        (
            r#"{"print":{"gcode_state":"PAUSE","command":"push_status","msg":1}}"#,
            Some(GcodeState::Pause),
            Some(23),
            Some(35),
            Some(13),
            Some(220.125),
        ),
        // An unknown state from newer firmware keeps the last known one.
        (
            r#"{"print":{"gcode_state":"CALIBRATING_LIDAR","command":"push_status","msg":1}}"#,
            Some(GcodeState::Pause),
            Some(23),
            Some(35),
            Some(13),
            Some(220.125),
        ),
        // Other top-level objects change nothing.
        (
            r#"{"info":{"command":"get_version","module":[]}}"#,
            Some(GcodeState::Pause),
            Some(23),
            Some(35),
            Some(13),
            Some(220.125),
        ),
        (
            r#"{"print":{"gcode_state":"FINISH","mc_percent":100,"mc_remaining_time":0,"command":"push_status","msg":1}}"#,
            Some(GcodeState::Finish),
            Some(100),
            Some(0),
            Some(13),
            Some(220.125),
        ),
    ];
    let mut r = Report::default();
    for (msg, state, percent, remaining, layer, nozzle) in cases {
        r.apply(msg.as_bytes()).expect(msg);
        assert_eq!(
            (
                r.gcode_state,
                r.mc_percent,
                r.mc_remaining_time,
                r.layer_num,
                r.nozzle_temper
            ),
            (*state, *percent, *remaining, *layer, *nozzle),
            "after {msg}"
        );
    }
    assert_eq!(r.total_layer_num, Some(100));
    assert_eq!(r.bed_target_temper, Some(55.0));
    assert_eq!(r.subtask_name.as_deref(), Some("cube"));
}

#[test]
fn errors_and_hms_read_as_codes_an_operator_can_look_up() {
    let mut r = Report::default();
    r.apply(
        br#"{"print":{"gcode_state":"FAILED","print_error":50364419,
        "hms":[{"attr":50331904,"code":131073}],"command":"push_status","msg":1}}"#,
    )
    .expect("valid");
    let problem = r.problem().expect("a problem");
    assert!(problem.contains("error 0300_8003"), "{problem}");
    assert!(problem.contains("HMS_0300_0100_0002_0001"), "{problem}");
    assert_eq!(
        print_error_text(PRINT_ERROR_CANCELLED),
        "the print was cancelled (error 0300_400C)"
    );
    r.apply(br#"{"print":{"print_error":0,"hms":[],"command":"push_status"}}"#)
        .expect("valid");
    assert_eq!(r.problem(), None);
}

#[test]
fn replies_and_garbage() {
    let mut r = Report::default();
    assert_eq!(
        r.apply(br#"{"print":{"command":"project_file","result":"fail","reason":"file not found","sequence_id":"7"}}"#),
        Ok(Message::Rejected { command: "project_file".into(), reason: "file not found".into() })
    );
    assert_eq!(
        r.apply(br#"{"print":{"command":"pause","result":"success","sequence_id":"8"}}"#),
        Ok(Message::Other)
    );
    assert!(r.apply(b"not json").is_err());
    assert_eq!(r, Report::default(), "replies do not touch the state");
}

#[test]
fn requests_are_what_the_firmware_expects() {
    let json =
        |r: Request, seq| -> Value { serde_json::from_slice(&r.to_json(seq)).expect("json") };
    assert_eq!(
        json(Request::PushAll, 1),
        serde_json::json!({"pushing":{"sequence_id":"1","command":"pushall","version":1,"push_target":1}})
    );
    assert_eq!(
        json(Request::Stop, 9),
        serde_json::json!({"print":{"sequence_id":"9","command":"stop","param":""}})
    );
    let p = json(
        Request::ProjectFile {
            name: "bracket.gcode.3mf".into(),
        },
        3,
    );
    assert_eq!(p["print"]["command"], "project_file");
    assert_eq!(p["print"]["url"], "ftp:///bracket.gcode.3mf");
    assert_eq!(p["print"]["param"], "Metadata/plate_1.gcode");
    assert_eq!(p["print"]["subtask_name"], "bracket");
    let g = json(
        Request::ProjectFile {
            name: "cube.gcode".into(),
        },
        4,
    );
    assert_eq!(g["print"]["url"], "file:///sdcard/cube.gcode");
    assert_eq!(g["print"]["subtask_name"], "cube");
    // The simulator reads back what the driver writes.
    for req in [
        Request::PushAll,
        Request::Pause,
        Request::Resume,
        Request::Stop,
        Request::ProjectFile {
            name: "a.3mf".into(),
        },
        Request::ProjectFile {
            name: "b.gcode".into(),
        },
    ] {
        assert_eq!(
            Request::parse(&req.to_json(5)),
            Some((req.clone(), "5".into())),
            "{req:?}"
        );
    }
}

#[test]
fn subtask_names_drop_the_extension() {
    for (file, name) in [
        ("cube.gcode", "cube"),
        ("bracket.gcode.3mf", "bracket"),
        ("Part.3MF", "Part"),
        ("a.b.gcode", "a.b"),
        ("noext", "noext"),
    ] {
        assert_eq!(subtask_name(file), name, "{file}");
    }
}
