//! What slicers write about a file in its comments: their own time estimate, filament
//! used, and layer-change markers.
//!
//! Each slicer has its own wording; the ones understood are quoted by the tests.
//! Unreplaced placeholders (`#P_TIME#`, legacy Cura) simply fail to parse and are
//! ignored; implausible values (`;TIME:6666` from a bare CuraEngine run) are rejected
//! later by comparing with the simulated time.

/// Facts gathered from comments.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SlicerNotes {
    /// The slicer's estimate of the print time, seconds.
    pub estimate_s: Option<f64>,
    /// Filament length the slicer computed, mm.
    pub filament_mm: Option<f64>,
    /// Filament weight the slicer computed, g.
    pub filament_g: Option<f64>,
    /// Layer-change comments seen (`;LAYER_CHANGE` PrusaSlicer/Orca, `; CHANGE_LAYER`
    /// Bambu Studio, `;LAYER:n` Cura).
    pub layer_markers: u64,
}

impl SlicerNotes {
    /// Looks at one comment (the text after `;`).
    pub fn comment(&mut self, text: &[u8]) {
        let Ok(text) = std::str::from_utf8(text) else {
            return;
        };
        if text.starts_with("LAYER_CHANGE")
            || text.starts_with(" CHANGE_LAYER")
            || is_cura_layer(text)
        {
            self.layer_markers += 1;
            return;
        }
        let t = text.trim();
        // Most comments are per-move annotations (`;TYPE:`, `;WIDTH:`); dispatch on the
        // first letter before comparing whole prefixes.
        match t.as_bytes().first() {
            Some(b'e' | b'E' | b'T' | b'm' | b't' | b'B' | b'b' | b'P' | b'p') => self.estimate(t),
            Some(b'f' | b'F') => self.filament(t),
            _ => {}
        }
    }

    fn estimate(&mut self, t: &str) {
        if let Some(v) = t.strip_prefix("estimated printing time (normal mode) =") {
            self.estimate_s = parse_duration(v).or(self.estimate_s);
        } else if let Some(v) = t.strip_prefix("TIME:") {
            self.estimate_s = v
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|s| *s > 0.0)
                .or(self.estimate_s);
        } else if let Some(v) = t.strip_prefix("model printing time:") {
            // Bambu/Orca: "model printing time: 31m 23s; total estimated time: 38m 2s".
            let mut parts = v.split(';');
            let model = parts.next().and_then(parse_duration);
            let total = parts
                .find_map(|p| p.trim().strip_prefix("total estimated time:"))
                .and_then(parse_duration);
            self.estimate_s = total.or(self.estimate_s).or(model);
        } else if let Some(v) = t.strip_prefix("total estimated time:") {
            self.estimate_s = parse_duration(v).or(self.estimate_s);
        } else {
            self.other_estimate(t);
        }
    }

    /// Less common wordings: Simplify3D `Build time: 1 hours 23 minutes`, KISSlicer
    /// `Estimated Build Time:   45.91 minutes`, ideaMaker `Print Time: 5025` (seconds).
    fn other_estimate(&mut self, t: &str) {
        let lower = t.to_ascii_lowercase();
        let value = ["build time:", "estimated build time:", "print time:"]
            .iter()
            .find_map(|p| lower.strip_prefix(p))
            .map(str::trim);
        if let Some(v) = value {
            let seconds = v.parse::<f64>().ok().or_else(|| parse_duration(v));
            self.estimate_s = seconds.filter(|s| *s > 0.0).or(self.estimate_s);
        }
    }

    fn filament(&mut self, t: &str) {
        if let Some(v) = t.strip_prefix("filament used [mm] =") {
            self.filament_mm = sum_list(v).or(self.filament_mm);
        } else if let Some(v) = t.strip_prefix("filament used [g] =") {
            self.filament_g = sum_list(v).or(self.filament_g);
        } else if let Some(v) = t.strip_prefix("Filament used:") {
            // Cura: "2.06006m" (or a list for several extruders).
            let metres = v
                .split(',')
                .map(|m| m.trim().trim_end_matches('m').parse::<f64>().ok());
            self.filament_mm = metres
                .sum::<Option<f64>>()
                .filter(|m| *m > 0.0)
                .map(|m| m * 1000.0)
                .or(self.filament_mm);
        } else if let Some(v) = t.strip_prefix("filament used =") {
            // Slic3r 1.x: "3711.1mm (8.9cm3)".
            let mm = v
                .trim()
                .split("mm")
                .next()
                .and_then(|n| n.trim().parse::<f64>().ok());
            self.filament_mm = mm.or(self.filament_mm);
        }
    }
}

/// `;LAYER:12` (Cura), not `;LAYER_COUNT:100` or `;LAYER_HEIGHT`.
fn is_cura_layer(text: &str) -> bool {
    text.strip_prefix("LAYER:")
        .is_some_and(|n| n.trim().parse::<i64>().is_ok())
}

/// "1.5, 0.0" → 1.5 (several extruders are summed).
fn sum_list(v: &str) -> Option<f64> {
    v.split(',').map(|n| n.trim().parse::<f64>().ok()).sum()
}

/// Parses "1d 2h 3m 4s", "1h 29m 8s", "31m 17s", "45s" into seconds.
pub fn parse_duration(text: &str) -> Option<f64> {
    let mut total = 0.0;
    let mut any = false;
    let mut pending: Option<f64> = None;
    for part in text.split_whitespace() {
        let split = part
            .find(|c: char| c.is_ascii_alphabetic())
            .unwrap_or(part.len());
        let (number, unit) = part.split_at(split);
        let value = match (number.is_empty(), pending.take()) {
            // "23 minutes": the number came as its own word.
            (true, Some(v)) => v,
            (false, None) => number.parse::<f64>().ok()?,
            _ => return None,
        };
        if unit.is_empty() {
            pending = Some(value);
            continue;
        }
        total += value * unit_seconds(unit)?;
        any = true;
    }
    (any && pending.is_none()).then_some(total)
}

/// Seconds per unit word: `d`/`day(s)`, `h`/`hour(s)`, `m`/`min`/`minute(s)`, `s`/`sec`/`second(s)`.
fn unit_seconds(unit: &str) -> Option<f64> {
    let unit = unit.trim_end_matches([',', '.']).to_ascii_lowercase();
    Some(match unit.as_str() {
        "d" | "day" | "days" => 86_400.0,
        "h" | "hr" | "hrs" | "hour" | "hours" => 3_600.0,
        "m" | "min" | "mins" | "minute" | "minutes" => 60.0,
        "s" | "sec" | "secs" | "second" | "seconds" => 1.0,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notes(lines: &[&str]) -> SlicerNotes {
        let mut n = SlicerNotes::default();
        for l in lines {
            n.comment(l.as_bytes());
        }
        n
    }

    #[test]
    fn prusaslicer() {
        let n = notes(&[
            "LAYER_CHANGE",
            "LAYER_CHANGE",
            " filament used [mm] = 1320.10",
            " filament used [g] = 3.94",
            " estimated printing time (normal mode) = 1h 29m 8s",
            " estimated printing time (silent mode) = 1h 35m 0s",
        ]);
        assert_eq!(n.estimate_s, Some(5348.0));
        assert_eq!(n.filament_mm, Some(1320.10));
        assert_eq!(n.filament_g, Some(3.94));
        assert_eq!(n.layer_markers, 2);
    }

    #[test]
    fn bambu_layer_comments() {
        let n = notes(&[
            " CHANGE_LAYER",
            " Z_HEIGHT: 0.2",
            " CHANGE_LAYER",
            " LAYER_HEIGHT: 0.2",
        ]);
        assert_eq!(n.layer_markers, 2);
    }

    #[test]
    fn simplify3d_kisslicer_ideamaker() {
        assert_eq!(
            notes(&["   Build time: 1 hours 23 minutes"]).estimate_s,
            Some(4_980.0)
        );
        assert_eq!(
            notes(&[" Estimated Build Time:   45.5 minutes"]).estimate_s,
            Some(2_730.0)
        );
        assert_eq!(notes(&["Print Time: 5025"]).estimate_s, Some(5_025.0));
        assert_eq!(notes(&["Print time: #P_TIME#"]).estimate_s, None);
    }

    #[test]
    fn cura_bambu_slic3r_and_placeholders() {
        let n = notes(&[
            "TIME:1577",
            "Filament used: 2.06006m",
            "LAYER_COUNT:100",
            "LAYER:0",
            "LAYER:1",
        ]);
        assert_eq!(n.estimate_s, Some(1577.0));
        assert_eq!(n.filament_mm, Some(2060.06));
        assert_eq!(n.layer_markers, 2);
        let n = notes(&[" model printing time: 31m 23s; total estimated time: 38m 2s"]);
        assert_eq!(n.estimate_s, Some(2282.0));
        let n = notes(&[" filament used = 3711.1mm (8.9cm3)"]);
        assert_eq!(n.filament_mm, Some(3711.1));
        let n = notes(&[
            "Print time: #P_TIME#",
            "Filament used: #F_AMNT#m #F_WGHT#g",
            "TIME:#P_TIME#",
        ]);
        assert_eq!(n, SlicerNotes::default());
        assert_eq!(parse_duration("1d 2h 3m 4s"), Some(93_784.0));
        assert_eq!(parse_duration("1 hours 23 minutes"), Some(4_980.0));
        assert_eq!(parse_duration("3 minutes"), Some(180.0));
        assert_eq!(parse_duration("12"), None);
        assert_eq!(parse_duration("soon"), None);
    }
}
