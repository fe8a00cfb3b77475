//! Whole prints through the real driver and a simulated Marlin on a real pseudo-terminal.

mod common;

use common::*;
use drivers::marlin::sim::{MarlinSim, Quirks, SimOptions};
use drivers::print_file_with;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_print_acknowledges_every_line_once_and_in_order() {
    let file = corpus_gcode(CUBE);
    let (want_hash, want_count) = expected_stream(&file);
    let sim = MarlinSim::spawn(SimOptions::default()).expect("simulator starts");
    let mut updates = 0;
    let result = print_file_with(test_config(sim.port_path()), false, file, |_| updates += 1).await;
    assert_eq!(result, Ok(()));
    let stats = sim.stats();
    assert_eq!(
        stats.line_errors, 0,
        "no line was rejected, so none was sent twice"
    );
    assert_eq!(stats.accepted, want_count, "every command arrived once");
    assert_eq!(sim.accepted_hash(), want_hash, "in order, byte for byte");
    assert!(updates > 2, "progress was reported ({updates} updates)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_percent_corrupted_lines_still_deliver_exact_bytes() {
    let file = corpus_gcode(CUBE);
    let (want_hash, want_count) = expected_stream(&file);
    let sim = MarlinSim::spawn(SimOptions {
        corrupt_percent: 1.0,
        seed: 42,
        ..SimOptions::default()
    })
    .expect("simulator starts");
    let result = print_file_with(test_config(sim.port_path()), false, file, |_| {}).await;
    assert_eq!(result, Ok(()));
    let stats = sim.stats();
    assert!(
        stats.line_errors > 50,
        "about 1% of ~14,000 lines were corrupted, got {} errors",
        stats.line_errors
    );
    assert_eq!(stats.accepted, want_count);
    assert_eq!(sim.accepted_hash(), want_hash);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corruption_with_other_resend_dialects() {
    // A Marlin 2.0 build without the ok after Resend, and Repetier's `rs N:n` spelling;
    // a short file keeps this quick.
    let file = corpus_gcode("3DBenchy-gunwale.stl_cura413-ender3-0.20.gcode");
    let (want_hash, _) = expected_stream(&file);
    let dialects = [
        Quirks {
            ok_after_resend: false,
            ..Quirks::default()
        },
        Quirks {
            resend_format: drivers::marlin::sim::ResendFormat::RsN,
            ..Quirks::default()
        },
        Quirks {
            advanced_ok: true,
            ..Quirks::default()
        },
    ];
    for quirks in dialects {
        let sim = MarlinSim::spawn(SimOptions {
            quirks: quirks.clone(),
            corrupt_percent: 1.0,
            seed: 7,
            ..SimOptions::default()
        })
        .expect("simulator starts");
        let result =
            print_file_with(test_config(sim.port_path()), false, file.clone(), |_| {}).await;
        assert_eq!(result, Ok(()), "{quirks:?}");
        assert!(sim.stats().line_errors > 0);
        assert_eq!(sim.accepted_hash(), want_hash, "{quirks:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn temperatures_by_autoreport_or_by_polling() {
    use drivers::Printer;
    use drivers::marlin::MarlinHandle;
    use std::time::Duration;
    for autoreport_temp in [true, false] {
        let sim = MarlinSim::spawn(SimOptions {
            quirks: Quirks {
                autoreport_temp,
                ..Quirks::default()
            },
            ..SimOptions::default()
        })
        .expect("simulator starts");
        let (printer, runner) = MarlinHandle::new(test_config(sim.port_path()));
        let stop = tokio_util::sync::CancellationToken::new();
        tokio::spawn(runner.run(stop.clone()));
        printer.connect().await.expect("connects");
        let console = printer.console().expect("Marlin has a console");
        console
            .send_gcode("M140 S60 ; heat the bed".into())
            .await
            .expect("sent");
        let mut status = printer.status();
        wait_status(
            &mut status,
            "the bed target in a report",
            Duration::from_secs(5),
            |s| s.temps.bed.is_some_and(|b| b.target == 60.0) && !s.temps.tools.is_empty(),
        )
        .await;
        stop.cancel();
    }
}
