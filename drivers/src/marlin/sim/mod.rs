//! A simulated Marlin printer on a real pseudo-terminal, driven through the real driver code
//! by the tests, the benchmark and `farmhand demo` (STYLE.md item 8).
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use drivers::marlin::sim::{MarlinSim, SimOptions};
//! let sim = MarlinSim::spawn(SimOptions::default())?;
//! println!("open {} at any baud rate", sim.port_path().display());
//! # Ok(()) }
//! ```
//!
//! The firmware logic is [`firmware::Firmware`] (pure, like the driver's link); `runtime`
//! moves bytes between it and the pty and applies the fault knobs.

pub mod firmware;
mod pty;
mod runtime;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sha2::Digest;
use tokio::sync::mpsc;
use tokio_util::sync::{CancellationToken, DropGuard};

pub use self::firmware::{Quirks, ResendFormat, Stats, is_housekeeping};

/// How the simulated printer behaves.
#[derive(Debug, Clone)]
pub struct SimOptions {
    pub quirks: Quirks,
    /// Real seconds per simulated second: 1 = real time, 0.01 = 100× faster, 0 = instant.
    pub time_scale: f64,
    /// Percent of received lines with one bit flipped, as a noisy USB cable would.
    pub corrupt_percent: f64,
    /// Seed for the corruption pattern, so a failing run can be repeated.
    pub seed: u64,
    /// Delay between a reset and the `start` banner (a bootloader's wait).
    pub boot_delay: Duration,
    /// Keep every accepted command in [`Stats::log`] as well as in the hash.
    pub keep_log: bool,
}

impl Default for SimOptions {
    fn default() -> Self {
        Self {
            quirks: Quirks::default(),
            time_scale: 0.0,
            corrupt_percent: 0.0,
            seed: 0x5eed,
            boot_delay: Duration::from_millis(200),
            keep_log: false,
        }
    }
}

/// Fault injection and control, sent to the running simulator.
#[derive(Debug)]
enum Ctl {
    /// Pull the USB cable: the pty closes and the port path disappears.
    Unplug,
    /// Plug it back in: a new pty behind the same port path.
    Plug,
    SetCorrupt(f64),
    Halt(String),
    Reset,
    /// Lock up: the port stays open but nothing is answered (a hung board, watchdog off).
    Freeze,
}

/// Entry point: see [`MarlinSim::spawn`].
pub struct MarlinSim;

impl MarlinSim {
    /// Start a simulated printer on the current tokio runtime. It stops when the handle is
    /// dropped. The port path exists when this returns.
    pub fn spawn(opts: SimOptions) -> io::Result<SimHandle> {
        Self::spawn_until(opts, &CancellationToken::new())
    }

    /// Like [`MarlinSim::spawn`], but also stops when `shutdown` is cancelled (the daemon's
    /// token, for `farmhand demo`).
    pub fn spawn_until(opts: SimOptions, shutdown: &CancellationToken) -> io::Result<SimHandle> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "farmhand-sim-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir)?;
        let port_path = dir.join("ttyMarlin");
        let stats = Arc::new(Mutex::new(Stats {
            log: opts.keep_log.then(Vec::new),
            ..Stats::default()
        }));
        let (ctl_tx, ctl_rx) = mpsc::unbounded_channel();
        let token = shutdown.child_token();
        let rt = runtime::Runtime::new(opts, port_path.clone(), stats.clone(), ctl_rx)?;
        tokio::spawn(rt.run(token.clone()));
        Ok(SimHandle {
            port_path,
            dir,
            stats,
            ctl: ctl_tx,
            _stop: token.drop_guard(),
        })
    }
}

/// The running simulator. Dropping it stops the simulator and removes its port path.
pub struct SimHandle {
    port_path: PathBuf,
    dir: PathBuf,
    stats: Arc<Mutex<Stats>>,
    ctl: mpsc::UnboundedSender<Ctl>,
    _stop: DropGuard,
}

impl SimHandle {
    /// The serial port to open (a symlink to the pty slave, stable across unplug/plug).
    pub fn port_path(&self) -> &Path {
        &self.port_path
    }

    /// A copy of the delivery statistics so far.
    pub fn stats(&self) -> Stats {
        self.stats.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Hex SHA-256 of every accepted command (host queries excluded), each followed by `\n`.
    pub fn accepted_hash(&self) -> String {
        hex(&self.stats().hasher.finalize())
    }

    pub fn unplug(&self) {
        let _ = self.ctl.send(Ctl::Unplug);
    }

    pub fn plug(&self) {
        let _ = self.ctl.send(Ctl::Plug);
    }

    pub fn set_corrupt_percent(&self, percent: f64) {
        let _ = self.ctl.send(Ctl::SetCorrupt(percent));
    }

    /// Stop like a thermal runaway: `Error:<reason>` then `Error:Printer halted. kill() called!`.
    pub fn halt(&self, reason: &str) {
        let _ = self.ctl.send(Ctl::Halt(reason.to_string()));
    }

    /// Reboot the board (watchdog, brown-out): prints `start` after the boot delay.
    pub fn reset(&self) {
        let _ = self.ctl.send(Ctl::Reset);
    }

    /// Hang: keep the port open and never answer again (until [`SimHandle::reset`]).
    pub fn freeze(&self) {
        let _ = self.ctl.send(Ctl::Freeze);
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.port_path);
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// Lower-case hex of a digest.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
