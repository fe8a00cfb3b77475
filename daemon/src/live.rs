//! Live changes for `GET /api/v1/stream`: one broadcast channel, fed by the places that
//! write (the workflow after each commit, the tracker on driver status), read by every
//! stream client. A slow client lags and skips; it never holds up a writer.

use std::sync::Arc;

use serde_json::{Value, json};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, broadcast};

use crate::config::{DriverKind, PrinterConfig};
use crate::model::{Job, PrinterRecord, PrinterState, Progress};

/// Events kept for clients that fall behind before they skip.
const CAPACITY: usize = 256;
/// Stream clients at once (each holds a connection and a receiver).
const MAX_CLIENTS: usize = 64;

/// What changed: `event: job` or `event: printer` on the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Job,
    Printer,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Job => "job",
            Kind::Printer => "printer",
        }
    }
}

/// One change, serialised once for every client.
#[derive(Debug, Clone)]
pub struct Change {
    pub kind: Kind,
    pub data: Arc<str>,
}

/// The broadcast hub. Cheap to clone.
#[derive(Clone)]
pub struct Live {
    tx: broadcast::Sender<Change>,
    clients: Arc<Semaphore>,
}

impl Default for Live {
    fn default() -> Self {
        Live {
            tx: broadcast::channel(CAPACITY).0,
            clients: Arc::new(Semaphore::new(MAX_CLIENTS)),
        }
    }
}

impl Live {
    /// A place for one more stream client, or `None` when all are taken.
    pub fn client_permit(&self) -> Option<OwnedSemaphorePermit> {
        self.clients.clone().try_acquire_owned().ok()
    }

    /// A job changed (sent as the job's JSON).
    pub fn job(&self, job: &Job) {
        self.send(Kind::Job, &crate::http::jobs::job_json(job));
    }

    /// A printer changed (sent as its `GET /api/v1/printers` entry).
    pub fn printer(&self, value: &Value) {
        self.send(Kind::Printer, value);
    }

    fn send(&self, kind: Kind, value: &Value) {
        // No receivers is not an error: nobody is watching.
        let _ = self.tx.send(Change {
            kind,
            data: value.to_string().into(),
        });
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.tx.subscribe()
    }
}

/// A printer as `GET /api/v1/printers` and the stream show it.
pub fn printer_json(
    printer: &PrinterConfig,
    record: &PrinterRecord,
    live: Option<&drivers::PrinterStatus>,
    progress: Option<&Progress>,
) -> Value {
    let state = printer_state(printer.driver, record.state, live);
    json!({
        "id": printer.id, "name": printer.display_name(), "driver": printer.driver,
        "state": state, "job_id": record.job_id, "progress": progress,
        "temps": live.map(|s| &s.temps), "error": live.and_then(|s| s.error.clone()),
        "materials": printer.materials, "build_volume_mm": printer.build_volume_mm,
        "loaded_material": printer.loaded_material, "loaded_color": printer.loaded_color,
        "nozzle_mm": printer.nozzle_mm, "auto_dispatch": printer.auto_dispatches(),
        "unattended_ok": printer.unattended_ok, "last_job_id": record.last_job_id,
    })
}

/// The contract's printer state: a connected printer whose link is down is `offline`
/// (whatever else is true); otherwise the store knows about beds to clear and the
/// driver knows the rest.
pub fn printer_state(
    driver: DriverKind,
    stored: PrinterState,
    live: Option<&drivers::PrinterStatus>,
) -> PrinterState {
    if driver == DriverKind::Manual {
        return stored;
    }
    match live.map(|s| s.state) {
        None | Some(drivers::PrinterState::Offline) => PrinterState::Offline,
        _ if stored == PrinterState::NeedsClearing => PrinterState::NeedsClearing,
        Some(drivers::PrinterState::Idle) => PrinterState::Idle,
        Some(drivers::PrinterState::Printing) => PrinterState::Printing,
        Some(drivers::PrinterState::Paused) => PrinterState::Paused,
        Some(drivers::PrinterState::Error) => PrinterState::Error,
    }
}
