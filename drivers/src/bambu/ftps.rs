//! Uploading a job file to the printer's storage over implicit FTPS (port 990), the way Bambu
//! Studio does. The traps (TOOLING.md), each handled here:
//! - implicit TLS: suppaftp's `connect_secure_implicit` (feature `deprecated`);
//! - it sends neither `PBSZ 0` nor `PROT P` on that path, and the printer refuses a clear data
//!   channel (`522`), so both are sent by hand after login;
//! - its default transfer type is ASCII, which turns LF into CRLF: `TYPE I` (binary);
//! - the printer wants the data channel to resume the control channel's TLS session: both use
//!   one rustls `ClientConfig` (one session cache) and the same server name, so rustls offers
//!   the control session's ticket on the data connection.
//!
//! suppaftp is blocking; the upload runs on tokio's blocking pool.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use suppaftp::types::FileType;
use suppaftp::{RustlsConnector, RustlsFtpStream, Status};

use crate::DriverError;

/// Where and how to upload.
#[derive(Clone)]
pub struct FtpsTarget {
    pub host: String,
    pub port: u16,
    /// Always `bblp` on a Bambu printer.
    pub user: String,
    pub access_code: String,
    pub tls: Arc<rustls::ClientConfig>,
    /// For the connection and every reply.
    pub timeout: Duration,
}

/// Upload `file` as `name` into the printer's storage root; returns the bytes sent.
pub async fn upload(target: &FtpsTarget, file: &Path, name: &str) -> Result<u64, DriverError> {
    let target = target.clone();
    let file = file.to_path_buf();
    let name = name.to_string();
    let waited = target.timeout;
    let host = target.host.clone();
    // The blocking call has its own socket timeouts; this outer one is a last resort.
    let job = tokio::task::spawn_blocking(move || upload_blocking(&target, &file, &name));
    match tokio::time::timeout(waited * 4 + Duration::from_secs(60), job).await {
        Ok(Ok(result)) => result,
        Ok(Err(_)) => Err(DriverError::DriverStopped),
        Err(_) => Err(DriverError::NotAnswering {
            printer: format!("the printer's FTPS server on {host}"),
            waited,
            hint: "the upload stalled: check the Wi-Fi signal and that LAN mode is on".into(),
        }),
    }
}

fn upload_blocking(t: &FtpsTarget, file: &PathBuf, name: &str) -> Result<u64, DriverError> {
    let mut source = std::fs::File::open(file).map_err(|e| DriverError::File {
        path: file.clone(),
        reason: e.to_string(),
    })?;
    let server = format!("FTPS server {}:{}", t.host, t.port);
    let fail = |what: &str, e: suppaftp::FtpError| {
        let reason = e.to_string();
        // 522: the data channel was refused (no TLS, or no resumed session).
        let hint = if reason.contains("522") {
            "the printer refused the encrypted data connection: check that nothing between here and the printer intercepts TLS"
        } else {
            hint_for(what)
        };
        DriverError::Upload {
            server: server.clone(),
            what: what.to_string(),
            reason,
            hint: hint.into(),
        }
    };
    let addr = resolve(&t.host, t.port).map_err(|e| fail("the connection", e))?;
    let connector = RustlsConnector::from(t.tls.clone());
    let mut ftp = connect_implicit(addr, connector, &t.host, t.timeout)
        .map_err(|e| fail("the TLS connection", e))?;
    ftp.login(t.user.as_str(), t.access_code.as_str())
        .map_err(|e| fail("the login", e))?;
    ftp.custom_command("PBSZ 0", &[Status::CommandOk])
        .map_err(|e| fail("PBSZ 0", e))?;
    ftp.custom_command("PROT P", &[Status::CommandOk])
        .map_err(|e| fail("PROT P", e))?;
    ftp.transfer_type(FileType::Binary)
        .map_err(|e| fail("TYPE I", e))?;
    // Printers answer PASV with their own LAN address; trust the one we connected to.
    ftp.set_passive_nat_workaround(true);
    let sent = ftp
        .put_file(name, &mut source)
        .map_err(|e| fail("the upload", e))?;
    let _ = ftp.quit();
    Ok(sent)
}

fn hint_for(what: &str) -> &'static str {
    match what {
        "the login" => {
            "check the access code on the printer's screen (it changes when LAN mode is toggled)"
        }
        "the TLS connection" | "the connection" => {
            "check the host, the FTPS port (990 on Bambu printers), the serial and that LAN mode is on"
        }
        _ => "check that the printer's storage (SD card) is inserted and has room",
    }
}

fn resolve(host: &str, port: u16) -> Result<SocketAddr, suppaftp::FtpError> {
    (host, port)
        .to_socket_addrs()
        .map_err(suppaftp::FtpError::ConnectionError)?
        .next()
        .ok_or_else(|| {
            suppaftp::FtpError::ConnectionError(std::io::Error::other("the name has no address"))
        })
}

/// `connect_secure_implicit` with socket timeouts set on the control connection.
fn connect_implicit(
    addr: SocketAddr,
    connector: RustlsConnector,
    host: &str,
    timeout: Duration,
) -> Result<RustlsFtpStream, suppaftp::FtpError> {
    // suppaftp's own connect has no timeout; `upload` bounds the whole call instead.
    let ftp = RustlsFtpStream::connect_secure_implicit(addr, connector, host)?;
    {
        let sock = ftp.get_ref();
        let _ = sock.set_read_timeout(Some(timeout));
        let _ = sock.set_write_timeout(Some(timeout));
    }
    Ok(ftp)
}
