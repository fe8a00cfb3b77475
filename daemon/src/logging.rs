//! Where log lines go: the journal, with structured fields, when systemd started us;
//! readable lines on stderr otherwise.
//!
//! We use `tracing-journald` rather than `systemd-journal-logger`: the daemon logs
//! through `tracing`, and `systemd-journal-logger` is a `log` backend, so its fields
//! would pass through the `log` bridge, which flattens `job = %id` into the message
//! text. `tracing-journald` sends each field as its own journal field, so
//! `journalctl -u farmhand JOB=42` or `PRINTER=mk3-1` finds every line about a job or
//! a printer.
//!
//! The level: `RUST_LOG` when set (for a one-off debugging session), else `[log]
//! level` from the config, else `info`.

use std::os::unix::fs::MetadataExt;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// The level when neither `RUST_LOG` nor the config names one.
pub const DEFAULT_LEVEL: &str = "info";

/// Where the log goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sink {
    Journal,
    Stderr,
}

/// What systemd tells a service about its output, as environment variables.
#[derive(Debug, Default, Clone)]
pub struct SystemdEnv {
    /// `JOURNAL_STREAM=<device>:<inode>`: stderr/stdout are connected to the journal.
    pub journal_stream: Option<String>,
    /// `INVOCATION_ID`: set for every unit systemd starts.
    pub invocation_id: Option<String>,
}

impl SystemdEnv {
    pub fn from_process() -> SystemdEnv {
        SystemdEnv {
            journal_stream: std::env::var("JOURNAL_STREAM").ok(),
            invocation_id: std::env::var("INVOCATION_ID").ok(),
        }
    }
}

/// Chooses the sink. `stderr_id` is stderr's `(device, inode)`.
///
/// `JOURNAL_STREAM` only counts when it names our stderr (systemd.exec(5)): a shell
/// started from a unit inherits the variable but writes to a terminal. A unit whose
/// stderr goes elsewhere is still systemd's, so `INVOCATION_ID` alone means the
/// journal too.
pub fn choose_sink(env: &SystemdEnv, stderr_id: Option<(u64, u64)>) -> Sink {
    if let (Some(stream), Some((dev, ino))) = (&env.journal_stream, stderr_id) {
        return if stream == &format!("{dev}:{ino}") {
            Sink::Journal
        } else {
            Sink::Stderr
        };
    }
    if env.invocation_id.is_some() {
        Sink::Journal
    } else {
        Sink::Stderr
    }
}

/// The filter directives: `RUST_LOG` wins over the config, which wins over the default.
pub fn directives<'a>(rust_log: Option<&'a str>, configured: Option<&'a str>) -> &'a str {
    rust_log
        .filter(|s| !s.trim().is_empty())
        .or(configured)
        .unwrap_or(DEFAULT_LEVEL)
}

/// Whether `level` is a valid filter (`info`, `farmhand=debug,warn`, …), for config
/// validation.
pub fn parse_level(level: &str) -> Result<(), String> {
    EnvFilter::builder()
        .parse(level)
        .map(|_| ())
        .map_err(|e| format!("{level:?} is not a log level or filter ({e})"))
}

/// Installs the global subscriber. Call once, before anything logs.
pub fn init(configured_level: Option<&str>) {
    let rust_log = std::env::var("RUST_LOG").ok();
    let text = directives(rust_log.as_deref(), configured_level);
    let filter = EnvFilter::builder().parse(text).unwrap_or_else(|e| {
        eprintln!("farmhand: ignoring the log filter {text:?} ({e}); logging at {DEFAULT_LEVEL}");
        EnvFilter::new(DEFAULT_LEVEL)
    });
    let registry = tracing_subscriber::registry().with(filter);
    if choose_sink(&SystemdEnv::from_process(), stderr_id()) == Sink::Journal {
        match tracing_journald::layer() {
            Ok(journal) => {
                // No prefix: fields arrive as JOB=, PRINTER=, not F_JOB=.
                let journal = journal
                    .with_field_prefix(None)
                    .with_syslog_identifier("farmhand".into());
                registry.with(journal).init();
                return;
            }
            Err(e) => eprintln!("farmhand: cannot reach the journal ({e}); logging to stderr"),
        }
    }
    registry
        .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
        .init();
}

/// stderr's `(device, inode)`, to compare with `JOURNAL_STREAM`.
fn stderr_id() -> Option<(u64, u64)> {
    let meta = std::fs::metadata("/proc/self/fd/2").ok()?;
    Some((meta.dev(), meta.ino()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(stream: Option<&str>, invocation: Option<&str>) -> SystemdEnv {
        SystemdEnv {
            journal_stream: stream.map(String::from),
            invocation_id: invocation.map(String::from),
        }
    }

    #[test]
    fn the_journal_only_when_systemd_started_us() {
        assert_eq!(choose_sink(&env(None, None), Some((1, 2))), Sink::Stderr);
        assert_eq!(
            choose_sink(&env(Some("1:2"), None), Some((1, 2))),
            Sink::Journal
        );
        assert_eq!(
            choose_sink(&env(None, Some("abc")), Some((1, 2))),
            Sink::Journal
        );
    }

    #[test]
    fn an_inherited_journal_stream_that_is_not_our_stderr_means_stderr() {
        // A shell started from a unit: the variable is inherited, stderr is a terminal.
        assert_eq!(
            choose_sink(&env(Some("1:2"), Some("abc")), Some((1, 3))),
            Sink::Stderr
        );
    }

    #[test]
    fn rust_log_wins_over_the_config_which_wins_over_the_default() {
        assert_eq!(directives(Some("debug"), Some("warn")), "debug");
        assert_eq!(directives(None, Some("warn")), "warn");
        assert_eq!(directives(Some(" "), Some("warn")), "warn");
        assert_eq!(directives(None, None), "info");
    }

    #[test]
    fn levels_are_checked() {
        assert!(parse_level("info").is_ok());
        assert!(parse_level("farmhand=debug,warn").is_ok());
        assert!(parse_level("loud=please=now").is_err());
    }
}
