//! `farmhand print` as a library call: connect, print one file, report progress, and return
//! `Ok` only when the printer completed it (what Printrun's `printcore` is to Printrun).

use std::path::PathBuf;

use tokio_util::sync::CancellationToken;

use crate::marlin::{MarlinConfig, MarlinHandle};
use crate::{DriverError, PrintOutcome, Printer, PrinterStatus};

/// The `farmhand print --driver marlin` flags.
#[derive(Debug, Clone)]
pub struct PrintFileOptions {
    pub port: PathBuf,
    pub baud: u32,
    /// Upload to the printer's SD card and print from there.
    pub sd: bool,
    pub file: PathBuf,
}

/// Print `opts.file` on the Marlin printer at `opts.port`, calling `on_status` on every status
/// change (for a progress bar). Errors carry the firmware's own text when it gave one.
pub async fn print_file(
    opts: PrintFileOptions,
    on_status: impl FnMut(&PrinterStatus),
) -> Result<(), DriverError> {
    print_file_with(
        MarlinConfig::new(&opts.port, opts.baud),
        opts.sd,
        opts.file,
        on_status,
    )
    .await
}

/// [`print_file`] with every driver setting exposed (timeouts, polling, window).
pub async fn print_file_with(
    cfg: MarlinConfig,
    sd: bool,
    file: PathBuf,
    mut on_status: impl FnMut(&PrinterStatus),
) -> Result<(), DriverError> {
    let (printer, runner) = MarlinHandle::new(MarlinConfig {
        auto_connect: true,
        ..cfg
    });
    let stop = CancellationToken::new();
    let task = tokio::spawn(runner.run(stop.clone()));
    let result = async {
        let mut status = printer.status();
        printer.connect().await?;
        if sd {
            printer.sd_card()?.start_sd_job(file).await?;
        } else {
            printer.start_job(file).await?;
        }
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
    .await;
    stop.cancel();
    let _ = task.await;
    result
}
