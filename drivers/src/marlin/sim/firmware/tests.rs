//! The simulator must answer like the firmware it imitates; the driver's tests lean on it.

use super::*;
use crate::marlin::protocol::encode_into;

fn fw(q: Quirks) -> (Firmware, Instant) {
    let now = Instant::now();
    (Firmware::new(q, 0.0, Arc::default(), now), now)
}

fn numbered(n: u32, cmd: &str) -> String {
    let mut buf = Vec::new();
    encode_into(&mut buf, n, cmd);
    String::from_utf8_lossy(&buf).trim_end().to_string()
}

/// Feed lines, run, and collect what the firmware printed.
fn exchange(fw: &mut Firmware, now: Instant, lines: &[String]) -> Vec<String> {
    for l in lines {
        fw.receive(l.clone());
    }
    fw.tick(now);
    fw.take_output().collect()
}

#[test]
fn good_lines_get_one_ok_each() {
    let (mut f, now) = fw(Quirks::default());
    let out = exchange(
        &mut f,
        now,
        &[numbered(1, "G28"), numbered(2, "G1 X10 F3000")],
    );
    assert_eq!(out, ["ok", "ok"]);
    assert_eq!(f.stats.lock().map(|s| s.accepted).ok(), Some(2));
}

#[test]
fn bad_lines_get_error_resend_ok_per_quirks() {
    let bad_sum = "N1 G28*0".to_string();
    let cases: &[(Quirks, &[&str])] = &[
        (
            Quirks::default(), // Marlin 2.1
            &["Error:checksum mismatch, Last Line: 0", "Resend: 1", "ok"],
        ),
        (
            Quirks {
                ok_after_resend: false, // some Marlin 2.0 builds
                ..Quirks::default()
            },
            &["Error:checksum mismatch, Last Line: 0", "Resend: 1"],
        ),
        (
            Quirks {
                resend_format: ResendFormat::RsN, // Repetier
                ..Quirks::default()
            },
            &["Error:checksum mismatch, Last Line: 0", "rs N:1", "ok"],
        ),
        (
            Quirks {
                resend_after_error: false,
                ..Quirks::default()
            },
            &["Error:checksum mismatch, Last Line: 0"],
        ),
    ];
    for (q, want) in cases {
        let (mut f, now) = fw(q.clone());
        assert_eq!(
            &exchange(&mut f, now, std::slice::from_ref(&bad_sum)),
            want,
            "{q:?}"
        );
    }
}

#[test]
fn line_number_is_checked_before_the_checksum() {
    let (mut f, now) = fw(Quirks::default());
    let out = exchange(&mut f, now, &[numbered(5, "G28")]);
    assert_eq!(
        out[0],
        "Error:Line Number is not Last Line Number+1, Last Line: 0"
    );
    let out = exchange(&mut f, now, &["G28*12".to_string()]);
    assert_eq!(out[0], "Error:No Line Number with checksum, Last Line: 0");
}

#[test]
fn advanced_ok_and_temperature_replies() {
    let (mut f, now) = fw(Quirks {
        advanced_ok: true,
        ..Quirks::default()
    });
    let out = exchange(&mut f, now, &[numbered(1, "G28"), numbered(2, "M105")]);
    // BUFSIZE 4: the line being answered and the M105 still queued behind it take two.
    assert_eq!(out[0], "ok N1 P16 B2");
    assert!(out[1].starts_with("ok T:21.00 /0.00 B:21.00 /0.00"));
}

#[test]
fn sd_upload_then_print_then_done() {
    let (mut f, now) = fw(Quirks::default());
    let lines: Vec<String> = [
        "M28 CUBE.GCO",
        "G1 X1",
        "G1 X2",
        "M29",
        "M23 CUBE.GCO",
        "M24",
    ]
    .iter()
    .enumerate()
    .map(|(i, c)| numbered(i as u32 + 1, c))
    .collect();
    let out = exchange(&mut f, now, &lines);
    assert!(out.contains(&"Writing to file: CUBE.GCO".to_string()));
    assert!(out.contains(&"File opened: CUBE.GCO Size: 12".to_string()));
    assert!(out.contains(&"Done printing file".to_string()), "{out:?}");
    let out = exchange(&mut f, now, &[numbered(7, "M27")]);
    assert_eq!(out, ["Not SD printing", "ok"]);
}

#[test]
fn halt_prints_the_reason_then_kill_and_goes_silent() {
    let (mut f, now) = fw(Quirks::default());
    f.halt("Thermal Runaway, system stopped! Heater_ID: 0");
    let out = exchange(&mut f, now, &[numbered(1, "G28")]);
    assert_eq!(
        out,
        [
            "Error:Thermal Runaway, system stopped! Heater_ID: 0",
            "Error:Printer halted. kill() called!"
        ]
    );
}
