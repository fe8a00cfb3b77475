//! The simulator's task: moves bytes between the pty and the firmware, applies faults.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::firmware::{Firmware, Stats};
use super::pty::{Pty, Read, point_link};
use super::{Ctl, SimOptions};

/// How often to check whether someone opened the port while nobody has it open.
const OPEN_POLL: Duration = Duration::from_millis(20);

pub struct Runtime {
    fw: Firmware,
    opts: SimOptions,
    pty: Option<Pty>,
    /// Nobody has the slave open.
    closed: bool,
    port_path: PathBuf,
    ctl: mpsc::UnboundedReceiver<Ctl>,
    partial: Vec<u8>,
    rng: u64,
    out: Vec<u8>,
    /// Next look at whether someone opened the port (a deadline, not a fresh sleep, so the
    /// firmware's own frequent wake-ups cannot starve it).
    next_open_poll: Instant,
}

enum Wake {
    Stop,
    Ctl(Ctl),
    Read(std::io::Result<Read>),
    PollOpen,
    Tick,
}

impl Runtime {
    pub fn new(
        opts: SimOptions,
        port_path: PathBuf,
        stats: Arc<Mutex<Stats>>,
        ctl: mpsc::UnboundedReceiver<Ctl>,
    ) -> std::io::Result<Self> {
        let pty = Pty::open()?;
        point_link(&port_path, pty.slave_path())?;
        Ok(Self {
            fw: Firmware::new(opts.quirks.clone(), opts.time_scale, stats, Instant::now()),
            rng: opts.seed | 1,
            opts,
            pty: Some(pty),
            closed: true,
            port_path,
            ctl,
            partial: Vec::new(),
            out: Vec::new(),
            next_open_poll: Instant::now(),
        })
    }

    pub async fn run(mut self, stop: CancellationToken) {
        let mut buf = vec![0u8; 16384];
        loop {
            let now = Instant::now();
            self.fw.tick(now);
            if let Err(e) = self.flush().await {
                tracing::warn!("simulator write failed: {e}");
                self.pty = None;
            }
            let wake = self.wait(&mut buf, &stop, now).await;
            match wake {
                Wake::Stop => break,
                Wake::Ctl(c) => self.control(c),
                Wake::Read(Ok(Read::Data(n))) => self.received(n, &buf),
                Wake::Read(Ok(Read::Closed)) => self.closed = true,
                Wake::Read(Ok(Read::Idle)) => self.reregister(),
                Wake::Read(Err(e)) => {
                    tracing::warn!("simulator read failed: {e}");
                    self.pty = None;
                }
                Wake::PollOpen => self.poll_open(&mut buf),
                Wake::Tick => {}
            }
        }
        let _ = std::fs::remove_file(&self.port_path);
    }

    async fn wait(&mut self, buf: &mut [u8], stop: &CancellationToken, now: Instant) -> Wake {
        let wake_at = self.fw.next_wake(now);
        let reading = self.pty.as_ref().filter(|_| !self.closed);
        let polling = self.pty.is_some() && self.closed;
        if polling && now >= self.next_open_poll {
            self.next_open_poll = now + OPEN_POLL;
            return Wake::PollOpen;
        }
        tokio::select! {
            biased;
            _ = stop.cancelled() => Wake::Stop,
            c = self.ctl.recv() => c.map_or(Wake::Stop, Wake::Ctl),
            r = async { match reading { Some(p) => p.read(buf).await, None => std::future::pending().await } }, if reading.is_some() => Wake::Read(r),
            _ = tokio::time::sleep_until(self.next_open_poll.into()), if polling => Wake::Tick,
            _ = tokio::time::sleep_until(wake_at.into()) => Wake::Tick,
        }
    }

    fn reregister(&mut self) {
        if let Some(p) = self.pty.as_mut()
            && let Err(e) = p.reregister()
        {
            tracing::warn!("simulator lost its pty: {e}");
            self.pty = None;
        }
    }

    /// While nobody has the port open, look whether someone has opened it now.
    fn poll_open(&mut self, buf: &mut [u8]) {
        let Some(pty) = &self.pty else { return };
        let n = match pty.try_read(buf) {
            Ok(Read::Closed) => return,
            Ok(Read::Idle) => 0,
            Ok(Read::Data(n)) => n,
            Err(_) => return,
        };
        self.closed = false;
        self.reregister();
        if self.opts.quirks.reset_on_open {
            // DTR pulls reset low: whatever the host sent meanwhile is lost in the bootloader.
            self.fw.reset(Instant::now(), self.opts.boot_delay);
            self.out.extend_from_slice(b"\xfe\x00\xfa");
            return;
        }
        self.received(n, buf);
    }

    fn control(&mut self, c: Ctl) {
        match c {
            Ctl::Unplug => {
                self.pty = None;
                let _ = std::fs::remove_file(&self.port_path);
            }
            Ctl::Plug => match Pty::open() {
                Ok(p) => {
                    if let Err(e) = point_link(&self.port_path, p.slave_path()) {
                        tracing::warn!("simulator cannot link its port: {e}");
                    }
                    self.pty = Some(p);
                    self.closed = true;
                }
                Err(e) => tracing::warn!("simulator cannot open a pty: {e}"),
            },
            Ctl::SetCorrupt(p) => self.opts.corrupt_percent = p,
            Ctl::Halt(reason) => self.fw.halt(&reason),
            Ctl::Freeze => self.fw.freeze(),
            Ctl::Reset => {
                self.fw.reset(Instant::now(), self.opts.boot_delay);
                self.out.extend_from_slice(b"\xfe\x00");
            }
        }
    }

    fn received(&mut self, n: usize, buf: &[u8]) {
        let mut rest = &buf[..n];
        while let Some(pos) = rest.iter().position(|&b| b == b'\n') {
            self.partial.extend_from_slice(&rest[..pos]);
            rest = &rest[pos + 1..];
            let mut line = std::mem::take(&mut self.partial);
            self.maybe_corrupt(&mut line);
            self.fw.receive(String::from_utf8_lossy(&line).into_owned());
            line.clear();
            self.partial = line;
        }
        self.partial.extend_from_slice(rest);
    }

    /// Flip one bit of the line with the configured probability (never into a line break,
    /// which would merge two lines: a different fault than a flipped bit).
    fn maybe_corrupt(&mut self, line: &mut [u8]) {
        if self.opts.corrupt_percent <= 0.0 || line.is_empty() {
            return;
        }
        let roll = (self.next_random() % 1_000_000) as f64 / 10_000.0;
        if roll >= self.opts.corrupt_percent {
            return;
        }
        let i = (self.next_random() % line.len() as u64) as usize;
        for bit in 0..8 {
            let flipped = line[i] ^ (1 << ((self.next_random() + bit) % 8));
            if flipped != b'\n' && flipped != b'\r' {
                line[i] = flipped;
                return;
            }
        }
    }

    fn next_random(&mut self) -> u64 {
        // xorshift64: enough for a repeatable fault pattern.
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }

    async fn flush(&mut self) -> std::io::Result<()> {
        for line in self.fw.take_output() {
            self.out.extend_from_slice(line.as_bytes());
            self.out.push(b'\n');
        }
        if self.out.is_empty() {
            return Ok(());
        }
        // Nobody listening: like a real board, the bytes are lost.
        if let Some(p) = self.pty.as_ref().filter(|_| !self.closed)
            && !p.write_all(&self.out).await?
        {
            self.closed = true;
        }
        self.out.clear();
        Ok(())
    }
}
