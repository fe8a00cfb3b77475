//! A real mosquitto per test: a free port, a throw-away config, killed on drop.

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Broker {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
    bin: PathBuf,
}

/// The mosquitto binary; a missing one fails the test (never skips) and names the package.
fn mosquitto_bin() -> PathBuf {
    let from_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    from_path
        .into_iter()
        .chain(["/usr/sbin".into(), "/usr/local/sbin".into()])
        .map(|d| d.join("mosquitto"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "the MQTT tests need a real broker: install the Debian package `mosquitto` \
                 (apt-get install -y mosquitto)"
            )
        })
}

impl Broker {
    pub fn start() -> Broker {
        Broker::start_with(|_, port| {
            format!(
                "listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nuser root\n"
            )
        })
    }

    /// A broker whose config `conf(dir, port)` writes (TLS, password files in `dir`).
    pub fn start_with(conf: impl FnOnce(&std::path::Path, u16) -> String) -> Broker {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let dir = tempfile::tempdir().expect("temp dir");
        let text = conf(dir.path(), port);
        std::fs::write(dir.path().join("mosquitto.conf"), text).expect("write mosquitto config");
        let mut b = Broker {
            child: None,
            port,
            dir,
            bin: mosquitto_bin(),
        };
        b.restart();
        b
    }

    #[allow(dead_code)] // tests/scheduler.rs includes this file and does not need it
    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }

    /// SIGKILL: no goodbye to the clients, retained messages gone (persistence off).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Start (again) on the same port and wait until it accepts connections.
    pub fn restart(&mut self) {
        self.kill();
        let log = std::fs::File::create(self.dir.path().join("mosquitto.log")).expect("log file");
        let child = Command::new(&self.bin)
            .arg("-c")
            .arg(self.dir.path().join("mosquitto.conf"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("mosquitto starts");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if Instant::now() > deadline {
                let log = std::fs::read_to_string(self.dir.path().join("mosquitto.log"))
                    .unwrap_or_default();
                panic!(
                    "mosquitto did not listen on {} within 10 s: {log}",
                    self.port
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill();
    }
}
