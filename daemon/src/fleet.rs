//! The connected printers: one driver per configured printer, owned here.
//!
//! [`Fleet::start`] creates each driver's handle and spawns its runner (the one future
//! that owns the port); everyone else holds handles. [`crate::tracker`] is the one place
//! that turns a driver's status into job changes.

use std::collections::BTreeMap;
use std::sync::Arc;

use std::net::SocketAddr;

use drivers::bambu::{BambuConfig, BambuHandle};
use drivers::marlin::{MarlinConfig, MarlinHandle};
use drivers::moonraker::{MoonrakerConfig, MoonrakerHandle};
use drivers::mqtt::{LocalFileServer, MqttConfig, MqttHandle};
use drivers::prusalink::{PrusaLinkConfig, PrusaLinkHandle};
use drivers::{Printer, PrinterStatus};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{Config, DriverKind, PrinterConfig};

/// The drivers of every connected printer, by printer id.
#[derive(Default)]
pub struct Fleet {
    printers: BTreeMap<String, Arc<dyn Printer>>,
    /// Serves G-code to MQTT printers, which fetch it by URL (kept alive with the fleet).
    files: Option<Arc<LocalFileServer>>,
}

type Started = Result<Arc<dyn Printer>, drivers::DriverError>;

fn start_marlin(
    printer: &PrinterConfig,
    tasks: &TaskTracker,
    shutdown: &CancellationToken,
) -> Started {
    let port = printer.port.clone().unwrap_or_default();
    let cfg = MarlinConfig {
        auto_connect: true,
        ..MarlinConfig::new(port, printer.baud.unwrap_or(115_200))
    };
    let (handle, runner) = MarlinHandle::new(cfg);
    tasks.spawn(runner.run(shutdown.clone()));
    Ok(Arc::new(handle))
}

fn start_moonraker(
    printer: &PrinterConfig,
    tasks: &TaskTracker,
    shutdown: &CancellationToken,
) -> Started {
    let cfg = MoonrakerConfig::new(
        printer.url.clone().unwrap_or_default(),
        printer.api_key.clone(),
    );
    let (handle, runner) = MoonrakerHandle::new(cfg)?;
    tasks.spawn(runner.run(shutdown.clone()));
    Ok(Arc::new(handle))
}

fn start_prusalink(
    printer: &PrinterConfig,
    tasks: &TaskTracker,
    shutdown: &CancellationToken,
) -> Started {
    let mut cfg = PrusaLinkConfig::new(
        printer.url.clone().unwrap_or_default(),
        printer.api_key.clone(),
    );
    cfg.username = printer.username.clone();
    cfg.password = printer.password.clone();
    let (handle, runner) = PrusaLinkHandle::new(cfg)?;
    tasks.spawn(runner.run(shutdown.clone()));
    Ok(Arc::new(handle))
}

/// One runner per Bambu printer: it holds the printer's only MQTT connection (the printer
/// accepts few clients) and every part of Farmhand reads its status from this one handle.
fn start_bambu(
    printer: &PrinterConfig,
    tasks: &TaskTracker,
    shutdown: &CancellationToken,
) -> Started {
    let mut cfg = BambuConfig::new(
        printer.host.clone().unwrap_or_default(),
        printer.serial.clone().unwrap_or_default(),
        printer.access_code.clone().unwrap_or_default(),
    );
    cfg.mqtt_port = printer.mqtt_port.unwrap_or(cfg.mqtt_port);
    cfg.ftps_port = printer.ftps_port.unwrap_or(cfg.ftps_port);
    cfg.ca_file = printer.ca_file.clone();
    let (handle, runner) = BambuHandle::new(cfg)?;
    tasks.spawn(runner.run(shutdown.clone()));
    Ok(Arc::new(handle))
}

fn start_mqtt(
    printer: &PrinterConfig,
    files: Arc<LocalFileServer>,
    tasks: &TaskTracker,
    shutdown: &CancellationToken,
) -> Started {
    let broker = printer.broker.clone().unwrap_or_default();
    let topic = printer.topic.clone().unwrap_or_default();
    let (handle, runner) = MqttHandle::new(MqttConfig::new(broker, topic, files))?;
    tasks.spawn(runner.run(shutdown.clone()));
    Ok(Arc::new(handle))
}

impl Fleet {
    /// Starts a driver for every connected printer in the config. A printer whose
    /// driver cannot start (a bad URL, say) is logged and left out: it shows as offline
    /// and the rest of the farm runs.
    pub async fn start(
        config: &Config,
        public_host: &str,
        tasks: &TaskTracker,
        shutdown: &CancellationToken,
    ) -> Fleet {
        let mut fleet = Fleet::default();
        let mut files: Option<Arc<LocalFileServer>> = None;
        for printer in &config.printers {
            let started = match printer.driver {
                DriverKind::Marlin => start_marlin(printer, tasks, shutdown),
                DriverKind::Moonraker => start_moonraker(printer, tasks, shutdown),
                DriverKind::Prusalink => start_prusalink(printer, tasks, shutdown),
                DriverKind::Mqtt => {
                    if files.is_none() {
                        let bind = SocketAddr::from(([0, 0, 0, 0], 0));
                        match LocalFileServer::start(bind, public_host).await {
                            Ok(server) => files = Some(Arc::new(server)),
                            Err(e) => tracing::error!("cannot serve files to MQTT printers: {e}"),
                        }
                    }
                    match &files {
                        Some(files) => start_mqtt(printer, files.clone(), tasks, shutdown),
                        None => continue,
                    }
                }
                DriverKind::Bambu => start_bambu(printer, tasks, shutdown),
                DriverKind::Manual => continue,
            };
            match started {
                Ok(handle) => {
                    fleet.printers.insert(printer.id.clone(), handle);
                }
                Err(e) => tracing::error!(printer = %printer.id, "cannot start the driver: {e}"),
            }
        }
        fleet.files = files;
        fleet
    }

    /// The driver of a connected printer.
    pub fn get(&self, id: &str) -> Option<&Arc<dyn Printer>> {
        self.printers.get(id)
    }

    /// The live status of a connected printer.
    pub fn status(&self, id: &str) -> Option<PrinterStatus> {
        self.printers.get(id).map(|p| p.status().borrow().clone())
    }

    /// Ids and status receivers of every connected printer.
    pub fn receivers(&self) -> Vec<(String, watch::Receiver<PrinterStatus>)> {
        self.printers
            .iter()
            .map(|(id, p)| (id.clone(), p.status()))
            .collect()
    }
}
