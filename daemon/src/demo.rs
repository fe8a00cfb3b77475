//! `farmhand demo`: the farm with simulated printers, on one machine.
//!
//! Two Marlin simulators on real pseudo-terminals (driven through the real serial
//! driver) and, when mosquitto is installed, a private mosquitto broker on a free port
//! with a simulated generic-MQTT printer on it. Everything stops with the demo.

use std::net::TcpListener;
use std::path::{Path, PathBuf};

use drivers::marlin::sim::{MarlinSim, SimHandle, SimOptions};
use drivers::mqtt::sim::{MqttSim, MqttSimHandle, MqttSimOptions};

use crate::config::{Config, PrinterConfig, SyncConfig};

/// Simulated time runs this much faster than real time in the demo.
const SPEED_UP: f64 = 20.0;

/// What keeps the demo's printers alive: dropping it stops them.
#[derive(Default)]
pub struct DemoPrinters {
    marlin: Vec<SimHandle>,
    mqtt: Vec<MqttSimHandle>,
    broker: Option<tokio::process::Child>,
    _broker_dir: Option<tempfile::TempDir>,
}

/// Starts the simulators the demo config asks for (`port = "simulated"`) and, when
/// possible, an MQTT printer; rewrites `config` to point at them. Returns lines to show.
pub async fn start(config: &mut Config) -> Result<(DemoPrinters, Vec<String>), std::io::Error> {
    let mut printers = DemoPrinters::default();
    let mut notes = Vec::new();
    if config.sync.is_none() {
        // The demo's "cloud": a local folder bucket beside its data.
        let folder = config.storage.data_dir.join("cloud");
        config.sync = Some(SyncConfig::new(format!("file://{}", folder.display())));
        notes.push(format!(
            "Cloud sync to the local folder {}",
            folder.display()
        ));
    }
    for printer in &mut config.printers {
        if printer.port.as_deref() == Some("simulated") {
            let sim = MarlinSim::spawn(SimOptions {
                time_scale: 1.0 / SPEED_UP,
                ..Default::default()
            })?;
            printer.port = Some(sim.port_path().display().to_string());
            printers.marlin.push(sim);
        }
    }
    match find_program("mosquitto") {
        Some(mosquitto) => {
            let (child, dir, broker) = start_broker(&mosquitto).await?;
            let topic = "farmhand/printers/mqtt-1";
            let sim = MqttSim::spawn(MqttSimOptions {
                time_scale: 1.0 / SPEED_UP,
                ..MqttSimOptions::new(broker.clone(), topic)
            })
            .map_err(|e| std::io::Error::other(e.to_string()))?;
            config.printers.push(mqtt_printer(&broker, topic)?);
            printers.mqtt.push(sim);
            printers.broker = Some(child);
            printers._broker_dir = Some(dir);
            notes.push(format!(
                "MQTT printer mqtt-1 on a private mosquitto at {broker}"
            ));
        }
        None => notes
            .push("no MQTT printer: mosquitto is not installed (apt-get install mosquitto)".into()),
    }
    Ok((printers, notes))
}

/// Makes the demo farm have `total` simulated Marlin printers (`farmhand demo
/// --printers N`, for the idle benchmark): copies of the first, `sim-3`, `sim-4`, …
/// Fewer than the config has leaves the config as it is.
pub fn simulate_marlin_printers(config: &mut Config, total: usize) {
    let simulated = |p: &PrinterConfig| p.port.as_deref() == Some("simulated");
    let Some(template) = config.printers.iter().find(|p| simulated(p)).cloned() else {
        return;
    };
    let have = config.printers.iter().filter(|p| simulated(p)).count();
    for n in have + 1..=total {
        let mut printer = template.clone();
        printer.id = format!("sim-{n}");
        printer.name = Some(format!("Simulated Marlin #{n}"));
        config.printers.push(printer);
    }
}

impl Drop for DemoPrinters {
    fn drop(&mut self) {
        if let Some(child) = &mut self.broker {
            child.start_kill().ok();
        }
    }
}

fn mqtt_printer(broker: &str, topic: &str) -> Result<PrinterConfig, std::io::Error> {
    let text = format!(
        "id = \"mqtt-1\"\nname = \"Lab printer on MQTT (simulated)\"\ndriver = \"mqtt\"\n\
         broker = \"{broker}\"\ntopic = \"{topic}\"\nbuild_volume_mm = [220, 220, 250]\n\
         materials = [\"PLA\", \"PETG\"]\n"
    );
    toml::from_str(&text).map_err(|e| std::io::Error::other(e.to_string()))
}

/// Starts mosquitto on a free loopback port with a throw-away config.
async fn start_broker(
    program: &Path,
) -> Result<(tokio::process::Child, tempfile::TempDir, String), std::io::Error> {
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let dir = tempfile::tempdir()?;
    let conf = dir.path().join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!("listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nuser root\n"),
    )?;
    let child = tokio::process::Command::new(program)
        .arg("-c")
        .arg(&conf)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    // Wait (briefly) until it accepts connections.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        if std::time::Instant::now() > deadline {
            return Err(std::io::Error::other("mosquitto did not start within 5 s"));
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    Ok((child, dir, format!("mqtt://127.0.0.1:{port}")))
}

/// A program on `PATH` or in the sbin folders (Debian puts mosquitto in /usr/sbin).
fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/local/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}
