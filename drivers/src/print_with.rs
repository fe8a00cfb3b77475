//! `farmhand print --driver …` for every driver: [`DriverSpec`] holds the contract's keys for
//! one printer, [`print_with`] prints one file on it and returns `Ok` only when it completed.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::bambu::{BambuConfig, BambuHandle};
use crate::moonraker::{MoonrakerConfig, MoonrakerHandle};
use crate::mqtt::{LocalFileServer, MqttConfig, MqttHandle};
use crate::prusalink::{PrusaLinkConfig, PrusaLinkHandle};
use crate::{DriverError, PrintOutcome, Printer, PrinterStatus, print_file};

/// One printer, named by the same keys as its `[[printers]]` config entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DriverSpec {
    /// `--driver marlin --port PATH [--baud N] [--sd]`
    Marlin { port: PathBuf, baud: u32, sd: bool },
    /// `--driver bambu --host H --serial S --access-code C [--mqtt-port P] [--ftps-port P]
    /// [--ca-file F]`
    Bambu {
        host: String,
        serial: String,
        access_code: String,
        mqtt_port: Option<u16>,
        ftps_port: Option<u16>,
        ca_file: Option<PathBuf>,
    },
    /// `--driver mqtt --broker mqtt://host:port --topic T`
    Mqtt { broker: String, topic: String },
    /// `--driver moonraker --url http://host:7125 [--api-key K]`
    Moonraker {
        url: String,
        api_key: Option<String>,
    },
    /// `--driver prusalink --url http://host` with `--api-key K` or `--username N --password P`
    /// (digest login).
    PrusaLink {
        url: String,
        api_key: Option<String>,
        username: Option<String>,
        password: Option<String>,
    },
}

/// Print `file` on the printer `driver` describes, calling `on_status` on every status change
/// (for a progress bar). `Ok` only when the printer completed the job; otherwise the error
/// carries the printer's own words when it gave any.
///
/// For MQTT printers the file is served from a one-off HTTP server on this machine, on a free
/// port of the address this machine uses to reach the broker (so the printer, on the broker's
/// network, can reach it too).
pub async fn print_with(
    driver: DriverSpec,
    file: PathBuf,
    on_status: impl FnMut(&PrinterStatus),
) -> Result<(), DriverError> {
    match driver {
        DriverSpec::Marlin { port, baud, sd } => {
            print_file(
                crate::PrintFileOptions {
                    port,
                    baud,
                    sd,
                    file,
                },
                on_status,
            )
            .await
        }
        DriverSpec::Mqtt { broker, topic } => {
            let (host, port) = crate::mqtt::schema::parse_broker(&broker).map_err(|hint| {
                DriverError::InvalidSetting {
                    key: "broker",
                    value: broker.clone(),
                    hint,
                }
            })?;
            let ip = local_ip_towards(&host, port).await?;
            let files = LocalFileServer::start(SocketAddr::new(ip, 0), &ip.to_string()).await?;
            let cfg = MqttConfig::new(broker, topic, Arc::new(files));
            print_mqtt(cfg, file, on_status).await
        }
        DriverSpec::Bambu {
            host,
            serial,
            access_code,
            mqtt_port,
            ftps_port,
            ca_file,
        } => {
            let mut cfg = BambuConfig::new(host, serial, access_code);
            cfg.mqtt_port = mqtt_port.unwrap_or(cfg.mqtt_port);
            cfg.ftps_port = ftps_port.unwrap_or(cfg.ftps_port);
            cfg.ca_file = ca_file;
            print_bambu(cfg, file, on_status).await
        }
        DriverSpec::Moonraker { url, api_key } => {
            print_moonraker(MoonrakerConfig::new(url, api_key), file, on_status).await
        }
        DriverSpec::PrusaLink {
            url,
            api_key,
            username,
            password,
        } => {
            let cfg = PrusaLinkConfig {
                username,
                password,
                ..PrusaLinkConfig::new(url, api_key)
            };
            print_prusalink(cfg, file, on_status).await
        }
    }
}

/// [`print_with`] for a PrusaLink printer with every setting exposed.
pub async fn print_prusalink(
    cfg: PrusaLinkConfig,
    file: PathBuf,
    on_status: impl FnMut(&PrinterStatus),
) -> Result<(), DriverError> {
    let (printer, runner) = PrusaLinkHandle::new(PrusaLinkConfig {
        auto_connect: true,
        ..cfg
    })?;
    drive(&printer, |stop| runner.run(stop), file, on_status).await
}

/// [`print_with`] for a Bambu Lab printer with every setting exposed.
pub async fn print_bambu(
    cfg: BambuConfig,
    file: PathBuf,
    on_status: impl FnMut(&PrinterStatus),
) -> Result<(), DriverError> {
    let (printer, runner) = BambuHandle::new(BambuConfig {
        auto_connect: true,
        ..cfg
    })?;
    drive(&printer, |stop| runner.run(stop), file, on_status).await
}

/// [`print_with`] for a Moonraker printer with every setting exposed.
pub async fn print_moonraker(
    cfg: MoonrakerConfig,
    file: PathBuf,
    on_status: impl FnMut(&PrinterStatus),
) -> Result<(), DriverError> {
    let (printer, runner) = MoonrakerHandle::new(MoonrakerConfig {
        auto_connect: true,
        ..cfg
    })?;
    drive(&printer, |stop| runner.run(stop), file, on_status).await
}

/// [`print_with`] for an MQTT printer with every setting exposed (file server, timeouts).
pub async fn print_mqtt(
    cfg: MqttConfig,
    file: PathBuf,
    on_status: impl FnMut(&PrinterStatus),
) -> Result<(), DriverError> {
    let (printer, runner) = MqttHandle::new(MqttConfig {
        auto_connect: true,
        ..cfg
    })?;
    drive(&printer, |stop| runner.run(stop), file, on_status).await
}

/// Runs a driver's runner for the length of one [`follow`], then stops it.
async fn drive<R>(
    printer: &dyn Printer,
    run: impl FnOnce(CancellationToken) -> R,
    file: PathBuf,
    on_status: impl FnMut(&PrinterStatus),
) -> Result<(), DriverError>
where
    R: Future<Output = ()> + Send + 'static,
{
    let stop = CancellationToken::new();
    let task = tokio::spawn(run(stop.clone()));
    let result = follow(printer, file, on_status).await;
    stop.cancel();
    let _ = task.await;
    result
}

/// Connect, start `file`, and report every status until the job's outcome.
pub async fn follow(
    printer: &dyn Printer,
    file: PathBuf,
    mut on_status: impl FnMut(&PrinterStatus),
) -> Result<(), DriverError> {
    let mut status = printer.status();
    printer.connect().await?;
    printer.start_job(file).await?;
    loop {
        let snapshot = status.borrow_and_update().clone();
        on_status(&snapshot);
        match snapshot.last_outcome {
            Some(PrintOutcome::Completed) => return Ok(()),
            Some(PrintOutcome::Failed { reason }) => {
                return Err(DriverError::PrintFailed { reason });
            }
            Some(PrintOutcome::Cancelled) => return Err(DriverError::Cancelled),
            None => {}
        }
        status
            .changed()
            .await
            .map_err(|_| DriverError::DriverStopped)?;
    }
}

/// The local address the kernel would use to reach `host:port` (no packet is sent).
async fn local_ip_towards(host: &str, port: u16) -> Result<IpAddr, DriverError> {
    let fail = |e: std::io::Error| DriverError::InvalidSetting {
        key: "broker",
        value: format!("{host}:{port}"),
        hint: format!("cannot find a route to it ({e}): check the host name and the network"),
    };
    let target = tokio::net::lookup_host((host, port))
        .await
        .map_err(fail)?
        .next()
        .ok_or_else(|| fail(std::io::Error::other("the name has no address")))?;
    let any: SocketAddr = if target.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let sock = tokio::net::UdpSocket::bind(any).await.map_err(fail)?;
    sock.connect(target).await.map_err(fail)?;
    Ok(sock.local_addr().map_err(fail)?.ip())
}
