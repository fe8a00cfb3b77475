//! The one MQTT connection manager, shared by the generic driver and its simulator: one task
//! owns the rumqttc `EventLoop`, reconnects with exponential back-off, re-subscribes after
//! every (clean-session) reconnect, and turns what happens into [`LinkEvent`]s.
//!
//! Publishing goes through the rumqttc `AsyncClient` the caller keeps; requests made while the
//! broker is away wait in rumqttc's queue and go out after the reconnect.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rumqttc::{
    AsyncClient, ConnectReturnCode, ConnectionError, Event, LastWill, MqttOptions, Packet, QoS,
    TlsConfiguration, Transport,
};
use tokio::sync::mpsc;
use tokio_util::sync::{CancellationToken, DropGuard};

/// Exponential back-off between reconnect attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub first: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            first: Duration::from_millis(200),
            max: Duration::from_secs(10),
        }
    }
}

impl Backoff {
    /// The wait after `failures` consecutive failed attempts (1 → `first`, doubling, capped).
    pub fn delay(&self, failures: u32) -> Duration {
        let shift = failures.saturating_sub(1).min(16);
        self.first.saturating_mul(1 << shift).min(self.max)
    }
}

/// What a connection reports to its owner.
#[derive(Debug, Clone, PartialEq)]
pub enum LinkEvent {
    /// Connected (again) and subscribed.
    Up,
    /// The connection failed or dropped; the manager is retrying.
    Down(String),
    Message {
        topic: String,
        payload: Vec<u8>,
    },
}

/// How to reach the broker.
#[derive(Debug, Clone)]
pub struct LinkOptions {
    pub host: String,
    pub port: u16,
    /// Unique per broker; a second client with the same id kicks the first off.
    pub client_id: String,
    pub subscribe: Vec<String>,
    pub will: Option<(String, Vec<u8>)>,
    pub keep_alive: Duration,
    pub backoff: Backoff,
    /// MQTT user name and password (Bambu: `bblp` and the access code).
    pub credentials: Option<(String, String)>,
    /// TLS settings; `None` = plain TCP.
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

/// A unique client id: `prefix-pid-n`.
pub fn client_id(prefix: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// A running connection: publish through `client`, receive on `events`. Dropping it stops the
/// connection task (after a clean MQTT DISCONNECT when the broker is up).
pub struct Link {
    pub client: AsyncClient,
    pub events: mpsc::Receiver<LinkEvent>,
    task: tokio::task::JoinHandle<()>,
    _stop: DropGuard,
}

impl Link {
    /// Start connecting on the current tokio runtime.
    pub fn spawn(opts: LinkOptions, shutdown: &CancellationToken) -> Link {
        let mut mqtt = MqttOptions::new(opts.client_id.clone(), opts.host.clone(), opts.port);
        mqtt.set_keep_alive(opts.keep_alive.max(Duration::from_secs(1)));
        mqtt.set_clean_session(true);
        // Bambu's full reports are ~10 KB; 256 KB leaves room without trusting the peer.
        mqtt.set_max_packet_size(256 * 1024, 256 * 1024);
        if let Some((user, password)) = &opts.credentials {
            mqtt.set_credentials(user.clone(), password.clone());
        }
        if let Some(tls) = &opts.tls {
            mqtt.set_transport(Transport::Tls(TlsConfiguration::Rustls(tls.clone())));
        }
        if let Some((topic, payload)) = &opts.will {
            mqtt.set_last_will(LastWill::new(
                topic.clone(),
                payload.clone(),
                QoS::AtLeastOnce,
                true,
            ));
        }
        let (client, eventloop) = AsyncClient::new(mqtt, 64);
        let (tx, events) = mpsc::channel(256);
        let stop = shutdown.child_token();
        let task = tokio::spawn(drive(eventloop, client.clone(), opts, tx, stop.clone()));
        Link {
            client,
            events,
            task,
            _stop: stop.drop_guard(),
        }
    }
}

impl Link {
    /// Drop the TCP connection without an MQTT DISCONNECT, like a printer losing power: the
    /// broker then publishes the last will.
    pub fn abort(self) {
        self.task.abort();
    }
}

async fn drive(
    mut eventloop: rumqttc::EventLoop,
    client: AsyncClient,
    opts: LinkOptions,
    tx: mpsc::Sender<LinkEvent>,
    stop: CancellationToken,
) {
    let scheme = if opts.tls.is_some() { "mqtts" } else { "mqtt" };
    let broker = format!("{scheme}://{}:{}", opts.host, opts.port);
    let mut failures = 0u32;
    loop {
        let event = tokio::select! {
            _ = stop.cancelled() => break,
            event = eventloop.poll() => event,
        };
        match event {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                failures = 0;
                for topic in &opts.subscribe {
                    if let Err(e) = client.try_subscribe(topic.clone(), QoS::AtLeastOnce) {
                        tracing::warn!(%broker, %topic, "cannot queue subscription: {e}");
                    }
                }
                tracing::debug!(%broker, id = %opts.client_id, "MQTT connected");
                if tx.send(LinkEvent::Up).await.is_err() {
                    break;
                }
            }
            Ok(Event::Incoming(Packet::Publish(p))) => {
                let msg = LinkEvent::Message {
                    topic: p.topic,
                    payload: p.payload.to_vec(),
                };
                if tx.send(msg).await.is_err() {
                    break;
                }
            }
            Ok(_) => {}
            Err(e) => {
                failures += 1;
                let reason = explain(&broker, &e);
                if failures == 1 {
                    tracing::warn!("{reason}");
                    if tx.send(LinkEvent::Down(reason)).await.is_err() {
                        break;
                    }
                }
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tokio::time::sleep(opts.backoff.delay(failures)) => {}
                }
            }
        }
    }
    // Best effort: a clean DISCONNECT (the broker then does not publish the last will, so a
    // printer stopping on purpose publishes its offline status itself first).
    if client.try_disconnect().is_ok() {
        let _ = tokio::time::timeout(Duration::from_millis(200), async {
            while let Ok(ev) = eventloop.poll().await {
                if matches!(ev, Event::Outgoing(rumqttc::Outgoing::Disconnect)) {
                    break;
                }
            }
        })
        .await;
    }
}

/// One sentence an operator can act on, for each way a connection fails.
fn explain(broker: &str, e: &ConnectionError) -> String {
    match e {
        ConnectionError::ConnectionRefused(
            ConnectReturnCode::BadUserNamePassword | ConnectReturnCode::NotAuthorized,
        ) => format!(
            "MQTT broker {broker} refused the login (wrong user name or password; for a Bambu Lab printer: check the access code on its screen) (retrying)"
        ),
        ConnectionError::Tls(tls) => {
            let detail = certificate_problem(tls).unwrap_or_else(|| tls.to_string());
            format!("TLS to MQTT broker {broker} failed: {detail} (retrying)")
        }
        other => format!(
            "cannot reach MQTT broker {broker}: {other}: check that the broker runs and the address is right (retrying)"
        ),
    }
}

/// A refused certificate in words: rustls shows custom verifier errors only as `Debug`, so the
/// verifier's own message is dug out of the error chain.
fn certificate_problem(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = next {
        let tls = err
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
            .or_else(|| err.downcast_ref::<rustls::Error>());
        if let Some(rustls::Error::InvalidCertificate(cert)) = tls {
            return Some(match cert {
                rustls::CertificateError::Other(other) => {
                    format!("the printer's certificate was refused: {}", other.0)
                }
                kind => format!(
                    "the printer's certificate was refused ({kind:?}): check ca_file, or leave it out to trust the printer by its serial"
                ),
            });
        }
        next = err.source();
    }
    None
}

/// The next event of a connection that may not exist (yet): never resolves without one, so
/// a runner's `select!` can always include it.
pub async fn next_event(link: &mut Option<Link>) -> Option<LinkEvent> {
    match link {
        Some(l) => l.events.recv().await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let b = Backoff {
            first: Duration::from_millis(100),
            max: Duration::from_secs(1),
        };
        let got: Vec<u128> = (1..=6).map(|n| b.delay(n).as_millis()).collect();
        assert_eq!(got, [100, 200, 400, 800, 1000, 1000]);
        assert_eq!(b.delay(0).as_millis(), 100);
        assert_eq!(b.delay(u32::MAX), b.max);
    }
}
