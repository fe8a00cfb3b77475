//! Talking to systemd: readiness, the watchdog and shutdown (the `sd_notify` protocol).
//!
//! The unit is `Type=notify`. [`started`] is called once the store is open and the
//! HTTP port is bound: it sends `READY=1`, arms a task that sends `STOPPING=1` the
//! moment shutdown begins, and, when systemd set `WATCHDOG_USEC` (`WatchdogSec=` in
//! the unit), starts [`watchdog`]. Without `NOTIFY_SOCKET` (a terminal, the tests that
//! call [`crate::run`] in-process) every message is a no-op.
//!
//! The watchdog pings only after proving the process can still do its job: the async
//! runtime schedules a fresh task, and the store answers a real read and write
//! transaction ([`Store::probe`]) within a deadline. A hung store therefore stops the
//! pings and systemd restarts Farmhand, instead of a process that answers pings from a
//! timer while every request hangs.

use std::time::Duration;

use sd_notify::NotifyState;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::store::{Store, StoreError};

/// Why a watchdog round did not ping. The text goes to the log and to systemd's
/// `STATUS=` (shown by `systemctl status farmhand`).
#[derive(Debug, thiserror::Error)]
pub enum Unhealthy {
    #[error(
        "the async runtime did not run a new task within {0:?}: Farmhand is overloaded or stuck"
    )]
    RuntimeStalled(Duration),
    #[error(
        "the store did not answer a read and a write within {0:?}: the disk may be hung or full"
    )]
    StoreHung(Duration),
    #[error("the store check failed: {0}")]
    StoreFailed(#[from] StoreError),
    #[error("the store check crashed: {0}")]
    ProbeCrashed(tokio::task::JoinError),
}

/// Announces readiness and starts the watchdog and the stopping announcement.
/// Call when the store is open and the listener bound, right before serving.
pub fn started(store: &Store, tasks: &TaskTracker, shutdown: &CancellationToken) {
    if let Some(timeout) = sd_notify::watchdog_enabled() {
        // systemd's advice (sd_watchdog_enabled(3)): ping at half the timeout.
        let every = timeout / 2;
        tracing::info!("systemd watchdog: {timeout:?} timeout, checking every {every:?}");
        tasks.spawn(watchdog(store.clone(), every, shutdown.clone()));
        #[cfg(debug_assertions)]
        debug_fault::arm(store);
    }
    let stopping = shutdown.clone();
    tasks.spawn(async move {
        stopping.cancelled().await;
        notify(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
    });
    notify(&[NotifyState::Ready, NotifyState::Status("serving")]);
}

/// Sends `WATCHDOG=1` every `every` while [`check`] passes, until `shutdown`.
pub async fn watchdog(store: Store, every: Duration, shutdown: CancellationToken) {
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Half the interval for the checks, so a passing round still pings in time.
    let deadline = every / 2;
    let mut probe = None;
    let mut healthy = true;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = ticker.tick() => {}
        }
        match check(&store, &mut probe, deadline).await {
            Ok(()) => {
                notify(&[NotifyState::Watchdog]);
                if !healthy {
                    tracing::info!("watchdog: healthy again");
                    notify(&[NotifyState::Status("serving")]);
                    healthy = true;
                }
            }
            Err(problem) => {
                if healthy {
                    tracing::error!("watchdog: not pinging systemd: {problem}");
                    let status = format!("unhealthy: {problem}");
                    notify(&[NotifyState::Status(&status)]);
                    healthy = false;
                }
            }
        }
    }
}

/// One round of checks. `probe` carries a store probe that overran its deadline into
/// the next round: a stuck store gets one blocked thread, not a new one every round.
pub async fn check(
    store: &Store,
    probe: &mut Option<JoinHandle<Result<(), StoreError>>>,
    deadline: Duration,
) -> Result<(), Unhealthy> {
    // The scheduler must still pick up new work, not just this task's timer.
    tokio::time::timeout(deadline, tokio::spawn(async {}))
        .await
        .map_err(|_| Unhealthy::RuntimeStalled(deadline))?
        .map_err(Unhealthy::ProbeCrashed)?;
    let mut handle = probe.take().unwrap_or_else(|| {
        let store = store.clone();
        tokio::task::spawn_blocking(move || store.probe())
    });
    match tokio::time::timeout(deadline, &mut handle).await {
        Err(_elapsed) => {
            *probe = Some(handle);
            Err(Unhealthy::StoreHung(deadline))
        }
        Ok(Ok(result)) => result.map_err(Unhealthy::from),
        Ok(Err(join)) => Err(Unhealthy::ProbeCrashed(join)),
    }
}

/// Sends one message to systemd, if systemd is listening. A failure is logged, not
/// fatal: losing a status line must not stop the farm.
fn notify(states: &[NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::warn!("cannot notify systemd: {e}");
    }
}

/// DEBUG BUILDS ONLY: a real store fault on request, so tests can prove the watchdog
/// stops pinging when the store hangs. Release builds have none of this.
#[cfg(debug_assertions)]
mod debug_fault {
    use std::time::Duration;

    use crate::store::Store;

    /// Milliseconds after start-up at which a thread takes redb's write lock for good.
    pub const HANG_STORE_AFTER_MS: &str = "FARMHAND_DEBUG_HANG_STORE_AFTER_MS";

    pub fn arm(store: &Store) {
        let Some(ms) = std::env::var(HANG_STORE_AFTER_MS)
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
        else {
            return;
        };
        let store = store.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(ms));
            tracing::warn!("{HANG_STORE_AFTER_MS}: holding the store's write lock forever");
            if let Err(e) = store.debug_hold_write_lock_forever() {
                tracing::error!("{HANG_STORE_AFTER_MS}: {e}");
            }
        });
    }
}
