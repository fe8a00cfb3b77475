//! Link behaviour per firmware quirk; each firmware line quoted as the firmware prints it.

use super::*;

/// A link plus a fake clock; `lines()` returns what was written since the last call.
struct Harness {
    link: Link,
    now: Instant,
}

impl Harness {
    fn new(cfg: LinkConfig) -> Self {
        let now = Instant::now();
        let mut h = Self {
            link: Link::new(cfg, now),
            now,
        };
        assert_eq!(h.lines(), ["N0 M110 N0*125"]);
        h.rx("ok");
        assert_eq!(h.events(), [LinkEvent::Ready]);
        h
    }

    fn rx(&mut self, line: &str) {
        self.link.on_line(line, self.now);
    }

    fn advance(&mut self, d: Duration) {
        self.now += d;
        self.link.on_tick(self.now);
    }

    fn lines(&mut self) -> Vec<String> {
        let text = String::from_utf8_lossy(self.link.tx()).into_owned();
        self.link.clear_tx();
        text.lines()
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect()
    }

    fn events(&mut self) -> Vec<LinkEvent> {
        self.link.drain_events().collect()
    }

    fn acked(&mut self) -> Vec<u32> {
        self.events()
            .into_iter()
            .filter_map(|e| match e {
                LinkEvent::Acked(n) => Some(n),
                _ => None,
            })
            .collect()
    }

    /// Numbers of the lines written since the last call.
    fn sent_numbers(&mut self) -> Vec<u32> {
        self.lines()
            .iter()
            .filter_map(|l| l.strip_prefix('N')?.split(' ').next()?.parse().ok())
            .collect()
    }
}

#[test]
fn lines_carry_number_and_xor_checksum() {
    let mut buf = Vec::new();
    encode_into(&mut buf, 1, "G28");
    // 'N'^'1'^' '^'G'^'2'^'8' computed by hand: the value Marlin expects.
    let sum = b"N1 G28".iter().fold(0u8, |a, b| a ^ b);
    assert_eq!(buf, format!("N1 G28*{sum}\n").into_bytes());
}

#[test]
fn window_of_one_waits_for_each_ok() {
    let mut h = Harness::new(LinkConfig::default());
    assert!(h.link.can_send());
    h.link.send("G28");
    assert!(!h.link.can_send());
    assert_eq!(h.sent_numbers(), [1]);
    h.rx("ok"); // Marlin, Klipper, Repetier, Smoothie
    assert_eq!(h.acked(), [1]);
    assert!(h.link.can_send() && h.link.is_drained());
}

#[test]
fn resend_followed_by_an_ok_that_acknowledges_nothing() {
    // Marlin 1.1.x / 2.1.x: Error, Resend, then an ok that belongs to the resend.
    for resend in ["Resend: 2", "Resend:2", "rs 2", "rs N:2"] {
        let mut h = Harness::new(LinkConfig::default());
        h.link.send("G28");
        h.rx("ok");
        h.link.send("G1 X10");
        h.lines();
        h.rx("Error:checksum mismatch, Last Line: 1");
        h.rx(resend);
        assert_eq!(h.sent_numbers(), Vec::<u32>::new(), "waits for the ok");
        h.rx("ok");
        assert_eq!(h.sent_numbers(), [2], "{resend}: line 2 again");
        h.rx("ok");
        assert_eq!(h.acked(), [1, 2], "{resend}");
        assert!(h.link.is_drained());
    }
}

#[test]
fn resend_without_any_ok_is_learned() {
    // Some Marlin 2.0 builds: "Resend: n" and nothing else.
    let mut h = Harness::new(LinkConfig::default());
    h.link.send("G28");
    h.lines();
    h.rx("Resend: 1");
    h.advance(Duration::from_millis(499));
    assert!(h.sent_numbers().is_empty());
    h.advance(Duration::from_millis(1));
    assert_eq!(h.sent_numbers(), [1], "sent again after the grace period");
    h.rx("ok");
    assert_eq!(h.acked(), [1]);
    // Learned: the next Resend is acted on at once.
    h.link.send("G1 X1");
    h.lines();
    h.rx("Resend: 2");
    assert_eq!(h.sent_numbers(), [2]);
}

#[test]
fn line_errors_with_neither_ok_nor_resend() {
    let cases = [
        ("Error:checksum mismatch, Last Line: 1", 2), // Marlin
        (
            "Error:Line Number is not Last Line Number+1, Last Line: 1",
            2,
        ), // Marlin
        ("Error: No Line Number with checksum", 2),   // Marlin 1.0: no Last Line
    ];
    for (error, expect) in cases {
        let mut h = Harness::new(LinkConfig::default());
        h.link.send("G28");
        h.rx("ok");
        h.link.send("G1 X1");
        h.lines();
        h.rx(error);
        assert!(!h.link.can_send());
        h.advance(Duration::from_millis(500));
        assert_eq!(h.sent_numbers(), [expect], "{error}");
        h.rx("ok");
        assert_eq!(h.acked(), [1, 2], "{error}");
    }
}

#[test]
fn keep_alives_are_not_acks_but_keep_the_link_alive() {
    let mut h = Harness::new(LinkConfig::default());
    h.link.send("G28");
    for line in ["echo:busy: processing", "busy: processing", "wait"] {
        // Marlin host keepalive / Repetier.
        h.advance(Duration::from_secs(9));
        h.rx(line);
        assert!(h.acked().is_empty(), "{line}");
    }
    h.advance(Duration::from_secs(9));
    assert!(!h.events().contains(&LinkEvent::Poked));
}

#[test]
fn silence_pokes_with_m105_then_declares_the_link_dead() {
    let mut h = Harness::new(LinkConfig::default());
    h.link.send("G28");
    h.lines();
    h.advance(Duration::from_secs(10));
    assert_eq!(h.events(), [LinkEvent::Poked]);
    assert!(h.lines()[0].starts_with("N2 M105*"));
    h.advance(Duration::from_secs(20));
    assert_eq!(
        h.events(),
        [LinkEvent::Dead {
            silent: Duration::from_secs(30)
        }]
    );
}

#[test]
fn temperature_report_on_the_ok_line_still_acknowledges() {
    let mut h = Harness::new(LinkConfig::default());
    h.link.send("M105");
    h.rx("ok T:210.0 /210.0 B:60.0 /60.0 @:127 B@:0"); // Marlin
    let events = h.events();
    assert!(matches!(events[0], LinkEvent::Response(Response::Temps(_))));
    assert_eq!(events[1], LinkEvent::Acked(1));
}

#[test]
fn thermal_runaway_and_kill_are_one_failure() {
    let mut h = Harness::new(LinkConfig::default());
    h.link.send("G1 X1");
    h.rx("Error:Thermal Runaway, system stopped! Heater_ID: 0"); // Marlin 2
    h.rx("Error:Printer halted. kill() called!"); // Marlin 2
    let halted: Vec<_> = h
        .events()
        .into_iter()
        .filter(|e| matches!(e, LinkEvent::Halted(_)))
        .collect();
    assert_eq!(
        halted,
        [LinkEvent::Halted(
            "Thermal Runaway, system stopped! Heater_ID: 0 Printer halted. kill() called!".into()
        )]
    );
    assert!(!h.link.can_send());
}

#[test]
fn klipper_errors_and_info() {
    let mut h = Harness::new(LinkConfig::default());
    h.link.send("G1 Z-5");
    h.rx("!! Move out of range: 0.000 0.000 -5.000 [0.000]"); // Klipper
    h.rx("ok"); // Klipper acknowledges the rejected command
    h.rx("// Klipper state: Ready"); // Klipper
    let events = h.events();
    assert_eq!(
        events[0],
        LinkEvent::FirmwareError("Move out of range: 0.000 0.000 -5.000 [0.000]".into())
    );
    assert_eq!(events[1], LinkEvent::Acked(1));
    assert!(matches!(events[2], LinkEvent::Response(Response::Info(_))));
}

#[test]
fn board_that_resets_when_the_port_opens() {
    let now = Instant::now();
    let mut link = Link::new(LinkConfig::default(), now);
    link.clear_tx();
    // AVR bootloader noise, then Marlin's banner: our first M110 was lost, so knock again.
    link.on_line("\u{fffd}\u{fffd}start", now);
    assert!(String::from_utf8_lossy(link.tx()).contains("M110 N0"));
    link.on_line("echo:Marlin 2.1.2.1", now);
    link.on_line("ok", now);
    assert!(link.drain_events().any(|e| e == LinkEvent::Ready));
}

#[test]
fn reset_mid_print_is_reported_and_handshakes_again() {
    let mut h = Harness::new(LinkConfig::default());
    h.link.send("G1 X1");
    h.lines();
    h.rx("start"); // Marlin after a brown-out or watchdog reset
    assert_eq!(h.events(), [LinkEvent::Reset]);
    assert_eq!(h.lines(), ["N0 M110 N0*125"]);
}

#[test]
fn handshake_retries_then_gives_up() {
    let start = Instant::now();
    let mut link = Link::new(LinkConfig::default(), start);
    link.clear_tx();
    link.on_tick(start + Duration::from_secs(2));
    assert!(String::from_utf8_lossy(link.tx()).contains("M110"));
    link.on_tick(start + Duration::from_secs(20));
    assert!(matches!(
        link.drain_events().next(),
        Some(LinkEvent::HandshakeFailed { .. })
    ));
}

#[test]
fn advanced_ok_opens_the_window_and_repeated_resends_are_ignored() {
    let mut h = Harness::new(LinkConfig::default());
    h.link.send("G28");
    h.rx("ok N1 P15 B3"); // Marlin 2 with ADVANCED_OK: 3 command slots free
    assert_eq!(h.link.window(), 3);
    for cmd in ["G1 X1", "G1 X2", "G1 X3"] {
        assert!(h.link.can_send());
        h.link.send(cmd);
    }
    assert_eq!(h.sent_numbers(), [1, 2, 3, 4]);
    h.acked();
    // Line 2 arrived corrupted; lines 3 and 4 were already on the wire behind it.
    for error in [
        "Error:checksum mismatch, Last Line: 1",
        "Error:Line Number is not Last Line Number+1, Last Line: 1",
        "Error:Line Number is not Last Line Number+1, Last Line: 1",
    ] {
        h.rx(error);
        h.rx("Resend: 2");
        h.rx("ok N1 P15 B3");
    }
    assert_eq!(h.sent_numbers(), [2, 3, 4], "sent again exactly once");
    for n in 2..=4 {
        h.rx(&format!("ok N{n} P15 B3"));
    }
    assert_eq!(h.acked(), [2, 3, 4]);
    assert!(h.link.is_drained());
}

#[test]
fn resend_older_than_history_is_a_desync() {
    let cfg = LinkConfig {
        history: 2,
        ..LinkConfig::default()
    };
    let mut h = Harness::new(cfg);
    for _ in 0..4 {
        h.link.send("G1 X1");
        h.rx("ok");
    }
    h.rx("Resend: 1");
    assert!(h.events().contains(&LinkEvent::Desync { line: 1 }));
}
