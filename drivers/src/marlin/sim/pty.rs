//! A pseudo-terminal whose slave side the driver opens like a USB serial port.
//!
//! The simulator keeps only the master. When no one has the slave open, Linux makes reads on
//! the master fail with `EIO`; that is how the simulator notices the driver opening the port
//! (and can reset like an Arduino whose DTR line is wired to reset) or closing it.
//! Everything here uses nix's safe wrappers: no `unsafe`.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::sys::termios::{SetArg, cfmakeraw, tcgetattr, tcsetattr};
use tokio::io::unix::AsyncFd;

/// The master side, registered with tokio.
pub struct Pty {
    /// Always `Some` between calls; an `Option` only so [`Pty::reregister`] can move it.
    master: Option<AsyncFd<OwnedFd>>,
    slave_path: PathBuf,
}

/// Outcome of a read attempt on the master.
pub enum Read {
    Data(usize),
    /// The slave is open but nothing arrived.
    Idle,
    /// Nobody has the slave open.
    Closed,
}

impl Pty {
    /// Allocate a pty pair; the slave is put in raw mode and closed again.
    pub fn open() -> io::Result<Self> {
        let pair = nix::pty::openpty(None, None).map_err(io::Error::from)?;
        // Raw from the start so nothing written before the driver configures the port is
        // echoed back or has its line endings rewritten.
        let mut t = tcgetattr(pair.slave.as_fd()).map_err(io::Error::from)?;
        cfmakeraw(&mut t);
        tcsetattr(pair.slave.as_fd(), SetArg::TCSANOW, &t).map_err(io::Error::from)?;
        let slave_path = nix::unistd::ttyname(pair.slave.as_fd()).map_err(io::Error::from)?;
        drop(pair.slave);
        fcntl(pair.master.as_fd(), FcntlArg::F_SETFL(OFlag::O_NONBLOCK))
            .map_err(io::Error::from)?;
        Ok(Self {
            master: Some(register(pair.master)?),
            slave_path,
        })
    }

    pub fn slave_path(&self) -> &Path {
        &self.slave_path
    }

    fn fd(&self) -> io::Result<&AsyncFd<OwnedFd>> {
        self.master
            .as_ref()
            .ok_or_else(|| io::Error::other("pty master lost during re-registration"))
    }

    /// Register the master afresh. Tokio latches "read closed" once it sees the hang-up that
    /// Linux reports while nobody has the slave open; after someone opens it, only a new
    /// registration makes `readable()` wait again instead of returning at once forever.
    pub fn reregister(&mut self) -> io::Result<()> {
        let fd = self
            .master
            .take()
            .ok_or_else(|| io::Error::other("pty master lost during re-registration"))?;
        self.master = Some(register(fd.into_inner())?);
        Ok(())
    }

    /// Read without waiting.
    pub fn try_read(&self, buf: &mut [u8]) -> io::Result<Read> {
        match nix::unistd::read(self.fd()?.get_ref(), buf) {
            Ok(n) => Ok(Read::Data(n)),
            Err(Errno::EAGAIN) => Ok(Read::Idle),
            Err(Errno::EIO) => Ok(Read::Closed),
            Err(e) => Err(e.into()),
        }
    }

    /// Wait for data; returns `Closed` as soon as the slave side is closed, and `Idle` when
    /// the registration is stale (see [`Pty::reregister`]).
    pub async fn read(&self, buf: &mut [u8]) -> io::Result<Read> {
        loop {
            let mut guard = self.fd()?.readable().await?;
            match self.try_read(buf)? {
                Read::Idle if guard.ready().is_read_closed() => return Ok(Read::Idle),
                Read::Idle => guard.clear_ready(),
                Read::Data(n) => {
                    // A short read emptied the buffer: skip the read that would only say so.
                    if n < buf.len() {
                        guard.clear_ready();
                    }
                    return Ok(Read::Data(n));
                }
                Read::Closed => return Ok(Read::Closed),
            }
        }
    }

    /// Write everything, or report `Closed` if the slave went away.
    pub async fn write_all(&self, mut data: &[u8]) -> io::Result<bool> {
        while !data.is_empty() {
            let mut guard = self.fd()?.writable().await?;
            match nix::unistd::write(self.fd()?.get_ref(), data) {
                Ok(n) => data = &data[n..],
                Err(Errno::EAGAIN) => guard.clear_ready(),
                Err(Errno::EIO) => return Ok(false),
                Err(e) => return Err(e.into()),
            }
        }
        Ok(true)
    }
}

/// Register the master with tokio's reactor.
///
/// `AsyncFd::new` is deprecated as unsound for types that can close their fd behind tokio's
/// back; its replacement `register` is `unsafe` for that reason. Here the `OwnedFd` moves into
/// the `AsyncFd` and nothing else holds it, so it stays open exactly as long as it is
/// registered, which is the condition `register` asks for.
#[allow(unsafe_code)]
fn register(fd: OwnedFd) -> io::Result<AsyncFd<OwnedFd>> {
    // SAFETY: `fd` is owned by the returned AsyncFd and is closed only when it is dropped,
    // after tokio deregisters it.
    unsafe { AsyncFd::register(fd) }.map_err(|e| e.into_parts().1)
}

/// A stable name for the port, like `/dev/serial/by-id/…`: a symlink re-pointed when the
/// simulated USB cable is plugged in again (the pty number changes, the name does not).
pub fn point_link(link: &Path, target: &Path) -> io::Result<()> {
    let _ = std::fs::remove_file(link);
    std::os::unix::fs::symlink(target, link)
}
