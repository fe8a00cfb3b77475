//! The simulated SD card: files in memory, `M28`/`M29` writing, `M23`/`M24` printing with
//! `M27` progress by bytes, exactly as Marlin reports them.

use std::collections::BTreeMap;

#[derive(Debug)]
struct Print {
    name: String,
    pos: usize,
    paused: bool,
}

#[derive(Debug, Default)]
pub struct SdCard {
    pub files: BTreeMap<String, Vec<u8>>,
    writing: Option<(String, Vec<u8>)>,
    selected: Option<String>,
    printing: Option<Print>,
}

impl SdCard {
    pub fn is_writing(&self) -> bool {
        self.writing.is_some()
    }

    /// A line received while `M28` is active goes into the file (`M29` closes it).
    pub fn write_line(&mut self, command: &str, out: &mut Vec<String>) {
        if command.starts_with("M29") {
            if let Some((name, data)) = self.writing.take() {
                self.files.insert(name, data);
            }
            out.push("Done saving file.".into());
        } else if let Some((_, data)) = self.writing.as_mut() {
            data.extend_from_slice(command.as_bytes());
            data.push(b'\n');
        }
    }

    /// Handle an SD command; replies go to `out`.
    pub fn command(&mut self, code: &str, arg: &str, out: &mut Vec<String>) {
        let name = arg.trim().to_ascii_uppercase();
        match code {
            "M20" => {
                out.push("Begin file list".into());
                out.extend(self.files.iter().map(|(n, d)| format!("{n} {}", d.len())));
                out.push("End file list".into());
            }
            "M21" => out.push("echo:SD card ok".into()),
            "M23" => match self.files.get(&name) {
                Some(data) => {
                    out.push(format!("File opened: {name} Size: {}", data.len()));
                    out.push("File selected".into());
                    self.selected = Some(name);
                }
                None => out.push(format!("open failed, File: {name}.")),
            },
            "M24" => match (&mut self.printing, &self.selected) {
                (Some(p), _) => p.paused = false,
                (None, Some(name)) => {
                    self.printing = Some(Print {
                        name: name.clone(),
                        pos: 0,
                        paused: false,
                    })
                }
                (None, None) => {}
            },
            "M25" => {
                if let Some(p) = &mut self.printing {
                    p.paused = true;
                }
            }
            "M27" => out.push(self.status()),
            "M28" => {
                out.push(format!("Writing to file: {name}"));
                self.writing = Some((name, Vec::new()));
            }
            "M524" if self.printing.take().is_some() => out.push("echo:Print aborted".into()),
            _ => {}
        }
    }

    fn status(&self) -> String {
        match &self.printing {
            Some(p) => {
                let size = self.files.get(&p.name).map_or(0, Vec::len);
                format!("SD printing byte {}/{}", p.pos, size)
            }
            None => "Not SD printing".into(),
        }
    }

    /// The next command of the running SD print, skipping comments and blank lines.
    /// Pushes `Done printing file` when the file ends.
    pub fn next_command(&mut self, out: &mut Vec<String>) -> Option<String> {
        let print = self.printing.as_mut().filter(|p| !p.paused)?;
        let data = self.files.get(&print.name)?;
        while print.pos < data.len() {
            let rest = &data[print.pos..];
            let len = rest
                .iter()
                .position(|&b| b == b'\n')
                .map_or(rest.len(), |i| i + 1);
            print.pos += len;
            let text = String::from_utf8_lossy(&rest[..len]);
            let code = text.split(';').next().unwrap_or("").trim();
            if !code.is_empty() {
                return Some(code.to_string());
            }
        }
        self.printing = None;
        out.push("Done printing file".into());
        None
    }

    /// A reset or kill stops SD printing and writing, but the files stay on the card.
    pub fn abort(&mut self) {
        self.printing = None;
        self.writing = None;
    }
}
