//! One row per real firmware line. The comment names the firmware that prints it.

use super::*;

fn ok() -> Response {
    Response::Ok {
        line: None,
        planner_free: None,
        buffer_free: None,
        temps: None,
    }
}

#[test]
fn acknowledgements() {
    let cases: &[(&str, Response)] = &[
        ("ok", ok()), // Marlin, Klipper, Repetier, Smoothie
        (
            "ok N123 P15 B3", // Marlin 2 with ADVANCED_OK
            Response::Ok {
                line: Some(123),
                planner_free: Some(15),
                buffer_free: Some(3),
                temps: None,
            },
        ),
        ("ok\r", ok()), // Smoothie ends lines with CR LF
    ];
    for (line, want) in cases {
        assert_eq!(&parse_line(line), want, "{line:?}");
    }
}

#[test]
fn ok_with_temperature_report() {
    // Marlin answers M105 on the ok line.
    let Response::Ok { temps: Some(t), .. } =
        parse_line("ok T:210.0 /210.0 B:60.0 /60.0 @:127 B@:0")
    else {
        panic!("no temps on ok line")
    };
    assert_eq!(t.tools[0].actual, 210.0);
    assert_eq!(t.bed.map(|b| b.target), Some(60.0));
}

#[test]
fn resend_requests() {
    let cases = [
        ("Resend: 42", 42),  // Marlin 1.1 / 2.x
        ("Resend:42", 42),   // Marlin 1.0, Prusa firmware
        ("rs 42", 42),       // Teacup, old Sprinter
        ("rs N:42", 42),     // Repetier
        ("Resend: N42", 42), // some forks prefix N
    ];
    for (line, n) in cases {
        assert_eq!(parse_line(line), Response::Resend(n), "{line:?}");
    }
}

#[test]
fn line_errors() {
    let cases = [
        ("Error:checksum mismatch, Last Line: 41", Some(41)), // Marlin
        (
            "Error:Line Number is not Last Line Number+1, Last Line: 7",
            Some(7),
        ), // Marlin
        ("Error: No Line Number with checksum", None),        // Marlin 1.0 (no Last Line)
        ("Error:No Checksum with line number, Last Line: 9", Some(9)), // Marlin
    ];
    for (line, last) in cases {
        assert_eq!(
            parse_line(line),
            Response::LineError { last_line: last },
            "{line:?}"
        );
    }
}

#[test]
fn keep_alives_are_not_acks() {
    for line in [
        "echo:busy: processing",
        "busy: processing",
        "echo:busy: paused for user",
        "wait",
    ] {
        // Marlin host keepalive (first three); Repetier idle "wait".
        assert_eq!(parse_line(line), Response::Busy, "{line:?}");
    }
}

#[test]
fn errors_and_halts() {
    let cases: &[(&str, Response)] = &[
        (
            "Error:Thermal Runaway, system stopped! Heater_ID: 0", // Marlin 2
            Response::Error("Thermal Runaway, system stopped! Heater_ID: 0".into()),
        ),
        (
            "Error:Printer halted. kill() called!", // Marlin 2
            Response::Halt("Printer halted. kill() called!".into()),
        ),
        (
            "Error:Printer stopped due to errors. Fix the error and use M999 to restart.", // Marlin 1.1
            Response::Halt(
                "Printer stopped due to errors. Fix the error and use M999 to restart.".into(),
            ),
        ),
        (
            "!! Move out of range: 0.000 0.000 -5.000 [0.000]", // Klipper
            Response::Error("Move out of range: 0.000 0.000 -5.000 [0.000]".into()),
        ),
        (
            "!! MCU 'mcu' shutdown: Timer too close", // Klipper
            Response::Halt("MCU 'mcu' shutdown: Timer too close".into()),
        ),
        (
            "// Klipper state: Ready", // Klipper info
            Response::Info("Klipper state: Ready".into()),
        ),
    ];
    for (line, want) in cases {
        assert_eq!(&parse_line(line), want, "{line:?}");
    }
}

#[test]
fn boot_banner() {
    assert_eq!(parse_line("start"), Response::Start); // Marlin after reset
    // An AVR board that resets when the port opens: bootloader noise before "start".
    let noisy = String::from_utf8_lossy(b"\xfe\x00\xfastart").into_owned();
    assert_eq!(parse_line(&noisy), Response::Start);
    assert!(matches!(
        parse_line("echo:Marlin 2.1.2.1"),
        Response::Info(_)
    ));
}

#[test]
fn m115_and_capabilities() {
    // Marlin 2.1
    let info = "FIRMWARE_NAME:Marlin 2.1.2.1 (Jun 15 2023 12:00:00) SOURCE_CODE_URL:github.com/MarlinFirmware/Marlin PROTOCOL_VERSION:1.0 MACHINE_TYPE:Ender-3 EXTRUDER_COUNT:1";
    assert!(matches!(parse_line(info), Response::FirmwareInfo(_)));
    assert_eq!(
        parse_line("Cap:AUTOREPORT_TEMP:1"),
        Response::Capability {
            name: "AUTOREPORT_TEMP".into(),
            enabled: true
        }
    );
    assert_eq!(
        parse_line("Cap:SDCARD:0"),
        Response::Capability {
            name: "SDCARD".into(),
            enabled: false
        }
    );
    // Klipper answers M115 on the ok line.
    assert!(matches!(
        parse_line("ok FIRMWARE_VERSION:v0.12.0 FIRMWARE_NAME:Klipper"),
        Response::Ok { .. }
    ));
}

#[test]
fn sd_card_replies() {
    let cases: &[(&str, Response)] = &[
        (
            "SD printing byte 1234/56789",
            Response::SdProgress {
                done: 1234,
                total: 56789,
            },
        ), // Marlin M27
        ("Not SD printing", Response::SdIdle),    // Marlin M27
        ("Done printing file", Response::SdDone), // Marlin
        ("Writing to file: CUBE.GCO", Response::SdWriting), // Marlin M28
        (
            "File opened: CUBE.GCO Size: 56789",
            Response::SdOpened { size: 56789 },
        ), // Marlin M23
    ];
    for (line, want) in cases {
        assert_eq!(&parse_line(line), want, "{line:?}");
    }
}

fn temps(line: &str) -> Temperatures {
    match parse_line(line) {
        Response::Temps(t) | Response::Ok { temps: Some(t), .. } => t,
        other => panic!("{line:?} gave {other:?}"),
    }
}

/// A temperature table row: line, tool actuals, tool targets, bed (actual, target).
type TempCase<'a> = (&'a str, &'a [f64], &'a [f64], Option<(f64, f64)>);

#[test]
fn temperature_dialects() {
    // Firmware named per row.
    let cases: &[TempCase] = &[
        (
            " T:210.00 /210.00 B:60.00 /60.00 @:0 B@:0",
            &[210.0],
            &[210.0],
            Some((60.0, 60.0)),
        ), // Marlin autoreport
        (
            "T:200.0 /200.0 B:60.0 /60.0 T0:200.0 /200.0 T1:25.0 /0.0 @:0 B@:0 @0:0 @1:0", // Marlin, two tools
            &[200.0, 25.0],
            &[200.0, 0.0],
            Some((60.0, 60.0)),
        ),
        (
            "ok B:60.0 /60.0 T0:210.0 /210.0",
            &[210.0],
            &[210.0],
            Some((60.0, 60.0)),
        ), // Klipper
        (
            "T:24.17 /0 B:23.72 /0 B@:0 @:0",
            &[24.17],
            &[0.0],
            Some((23.72, 0.0)),
        ), // Repetier
        (
            "T:24.17/0 B:23.72/0 B@:0 @:0",
            &[24.17],
            &[0.0],
            Some((23.72, 0.0)),
        ), // Repetier, no spaces
        (
            "ok T:21.8 /0.0 @0 B:22.1 /0.0 @0",
            &[21.8],
            &[0.0],
            Some((22.1, 0.0)),
        ), // Smoothieware
    ];
    for (line, actual, target, bed) in cases {
        let t = temps(line);
        let got: Vec<f64> = t.tools.iter().map(|t| t.actual).collect();
        assert_eq!(&got, actual, "{line:?}");
        let got: Vec<f64> = t.tools.iter().map(|t| t.target).collect();
        assert_eq!(&got, target, "{line:?}");
        assert_eq!(t.bed.map(|b| (b.actual, b.target)), *bed, "{line:?}");
    }
    // Marlin while M109 waits: no target in the line.
    let waiting = temps("T:190.11 E:0 W:?");
    assert_eq!(waiting.tools[0].actual, 190.11);
    assert!(waiting.tools[0].target.is_nan());
    // Chamber (Marlin with a chamber sensor).
    let c = temps("T:20.0 /0.0 B:20.0 /0.0 C:31.5 /40.0 @:0 B@:0");
    assert_eq!(c.chamber.map(|c| c.target), Some(40.0));
}

#[test]
fn other_lines_do_not_look_like_temperatures() {
    assert!(matches!(parse_line("echo:SD card ok"), Response::Info(_)));
    assert!(matches!(
        parse_line("X:0.00 Y:0.00 Z:0.00 E:0.00 Count X:0 Y:0 Z:0"),
        Response::Info(_)
    ));
}
