//! Executing one accepted command (from the serial port or the SD card).

use std::time::{Duration, Instant};

use super::machine::words;
use super::{Block, Firmware};

impl Firmware {
    /// Run `command`. `serial` commands get an `ok` once done; SD-card commands get none.
    pub(super) fn exec(&mut self, command: &str, serial: bool, now: Instant) {
        let code = command
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_ascii_uppercase();
        let w = words(command);
        let s_word = w
            .iter()
            .find(|(k, _)| *k == 'S' || *k == 'R')
            .map(|(_, v)| *v);
        let block = match code.as_str() {
            "G0" | "G1" => (!self.m.queue_move(&w, now)).then_some(Block::Move(w)),
            "G28" => Some(Block::Until(now + self.m.scaled(2.0))),
            "G4" => Some(Block::Until(now + self.m.scaled(dwell_seconds(&w)))),
            "G92" => {
                self.m.set_position(&w);
                None
            }
            "M400" => Some(Block::Drain),
            "M104" | "M109" | "M140" | "M190" => self.set_heater(&code, s_word.unwrap_or(0.0)),
            "M155" => {
                let secs = s_word.unwrap_or(0.0);
                self.autoreport = (self.q.autoreport_temp && secs > 0.0)
                    .then(|| self.m.scaled(secs).max(Duration::from_millis(100)));
                self.next_report = now;
                None
            }
            "M115" => {
                self.m115();
                None
            }
            "M112" => {
                self.halt("Emergency stop (M112)");
                return;
            }
            "M20" | "M21" | "M23" | "M24" | "M25" | "M27" | "M28" | "M524" if self.q.sd_card => {
                let arg = command.split_once(' ').map_or("", |(_, a)| a);
                let mut out = std::mem::take(&mut self.out);
                self.sd.command(&code, arg, &mut out);
                self.out = out;
                None
            }
            _ => None,
        };
        match block {
            Some(b) => {
                self.next_busy = now + self.m.scaled(self.q.busy_interval_s);
                self.block = Some((b, serial));
            }
            None if serial => self.ok(),
            None => {}
        }
    }

    /// `M104`/`M140` set a target; `M109`/`M190` also wait for it.
    fn set_heater(&mut self, code: &str, target: f64) -> Option<Block> {
        let bed = code == "M140" || code == "M190";
        let heater = if bed {
            &mut self.m.bed
        } else {
            &mut self.m.hotend
        };
        heater.target = target;
        matches!(code, "M109" | "M190").then_some(Block::Heat { bed })
    }

    fn m115(&mut self) {
        self.out.push(format!(
            "FIRMWARE_NAME:{} SOURCE_CODE_URL:github.com/MarlinFirmware/Marlin PROTOCOL_VERSION:1.0 MACHINE_TYPE:Farmhand Sim EXTRUDER_COUNT:1",
            self.q.firmware_name
        ));
        let caps = [
            ("AUTOREPORT_TEMP", self.q.autoreport_temp),
            ("SDCARD", self.q.sd_card),
            ("AUTOREPORT_SD_STATUS", false),
            ("EMERGENCY_PARSER", true),
        ];
        for (name, on) in caps {
            self.out.push(format!("Cap:{name}:{}", u8::from(on)));
        }
    }
}

/// `G4 P<ms>` / `G4 S<s>`.
fn dwell_seconds(words: &[(char, f64)]) -> f64 {
    words.iter().fold(0.0, |acc, (k, v)| match k {
        'P' => acc + v / 1000.0,
        'S' => acc + v,
        _ => acc,
    })
}
