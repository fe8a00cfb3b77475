//! A real SMTP server for the mail tests: Python's `aiosmtpd` (installed by
//! `scripts/install-test-deps.sh`) on a free port, storing every received message as
//! one file in a Maildir, with the envelope in `X-MailFrom` / `X-RcptTo` headers.

#![allow(dead_code)]

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("address").port()
}

/// TLS material for the server: a CA and a leaf for 127.0.0.1 (made with openssl).
pub struct TlsFiles {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// How the server speaks.
#[derive(Clone, Copy)]
pub enum Security<'a> {
    Plain,
    /// STARTTLS offered and required before MAIL FROM.
    StartTls(&'a TlsFiles),
    /// Implicit TLS from the first byte (smtps).
    Implicit(&'a TlsFiles),
    /// AUTH (PLAIN or LOGIN) with this one account required before MAIL FROM.
    Auth {
        user: &'a str,
        password: &'a str,
    },
}

pub struct SmtpServer {
    pub port: u16,
    pub maildir: PathBuf,
    child: Option<Child>,
    _dir: tempfile::TempDir,
}

impl SmtpServer {
    /// A plain server on `port`.
    pub fn start(port: u16) -> SmtpServer {
        Self::start_with(port, Security::Plain)
    }

    pub fn start_with(port: u16, security: Security<'_>) -> SmtpServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let maildir = dir.path().join("Maildir");
        for sub in ["cur", "new", "tmp"] {
            std::fs::create_dir_all(maildir.join(sub)).expect("maildir");
        }
        let mut command = Command::new("python3");
        if let Security::Auth { user, password } = security {
            let script =
                Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/assets/smtp_auth_server.py");
            command
                .arg(script)
                .args(["127.0.0.1", &port.to_string()])
                .arg(&maildir)
                .args([user, password]);
        } else {
            command
                .args(["-m", "aiosmtpd", "-n", "-l"])
                .arg(format!("127.0.0.1:{port}"))
                .args(["-c", "aiosmtpd.handlers.Mailbox"]);
        }
        match security {
            Security::Plain | Security::Auth { .. } => {}
            Security::StartTls(tls) => {
                command
                    .arg("--tlscert")
                    .arg(&tls.cert)
                    .arg("--tlskey")
                    .arg(&tls.key);
            }
            Security::Implicit(tls) => {
                command
                    .arg("--smtpscert")
                    .arg(&tls.cert)
                    .arg("--smtpskey")
                    .arg(&tls.key);
            }
        }
        let log = std::fs::File::create(dir.path().join("smtpd.log")).expect("log");
        if !matches!(security, Security::Auth { .. }) {
            command.arg(&maildir);
        }
        let child = command.stdout(Stdio::null()).stderr(log).spawn().expect(
            "python3 must be installed to run the SMTP test server (scripts/install-test-deps.sh)",
        );
        let mut server = SmtpServer {
            port,
            maildir,
            child: Some(child),
            _dir: dir,
        };
        server.wait_until_listening();
        server
    }

    fn wait_until_listening(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!(
                    "the aiosmtpd test server exited ({status}); is the PyPI package aiosmtpd installed? \
                     Run scripts/install-test-deps.sh. Its log:\n{}",
                    self.log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "aiosmtpd did not listen on port {} within 20 s; its log:\n{}",
                self.port,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log(&self) -> String {
        let log = self.maildir.parent().map(|p| p.join("smtpd.log"));
        log.and_then(|p| std::fs::read_to_string(p).ok())
            .unwrap_or_default()
    }

    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Every message received so far, as files.
    pub fn files(&self) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.maildir.join("new"))
            .map(|entries| entries.filter_map(Result::ok).map(|e| e.path()).collect())
            .unwrap_or_default();
        files.sort();
        files
    }

    /// Every message received so far.
    pub fn messages(&self) -> Vec<Received> {
        self.files()
            .iter()
            .map(|path| Received::read(path))
            .collect()
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().ok();
            child.wait().ok();
        }
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One received message.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: PathBuf,
    pub text: String,
}

impl Received {
    pub fn read(path: &Path) -> Received {
        Received {
            path: path.to_path_buf(),
            text: std::fs::read_to_string(path)
                .expect("read a received mail")
                .replace("\r\n", "\n"),
        }
    }

    /// The first value of a header (unfolded), by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<String> {
        let head = self.text.split("\n\n").next().unwrap_or("");
        let mut value: Option<String> = None;
        for line in head.lines() {
            let line = line.trim_end_matches('\r');
            if let Some(v) = value.as_mut() {
                if line.starts_with([' ', '\t']) {
                    v.push(' ');
                    v.push_str(line.trim());
                    continue;
                }
                break;
            }
            if let Some((key, rest)) = line.split_once(':')
                && key.eq_ignore_ascii_case(name)
            {
                value = Some(rest.trim().to_string());
            }
        }
        value
    }

    pub fn subject(&self) -> String {
        self.header("Subject").unwrap_or_default()
    }

    /// The envelope recipient the server was given.
    pub fn rcpt_to(&self) -> String {
        self.header("X-RcptTo").unwrap_or_default()
    }

    pub fn message_id(&self) -> String {
        self.header("Message-ID").unwrap_or_default()
    }

    /// The first whitespace-separated word that contains `needle` (links).
    pub fn word_with(&self, needle: &str) -> Option<String> {
        self.text
            .split_whitespace()
            .find(|w| w.contains(needle))
            .map(str::to_string)
    }
}

/// Makes a CA and a server certificate for 127.0.0.1 with the openssl command.
pub fn make_tls(dir: &Path) -> TlsFiles {
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("the openssl command is needed to make test certificates (scripts/install-test-deps.sh)");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    std::fs::write(
        dir.join("leaf.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n",
    )
    .expect("ext file");
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=Farmhand test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        "leaf.key",
        "-out",
        "leaf.csr",
    ]);
    run(&[
        "x509",
        "-req",
        "-in",
        "leaf.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "leaf.ext",
        "-out",
        "leaf.pem",
    ]);
    TlsFiles {
        ca: dir.join("ca.pem"),
        cert: dir.join("leaf.pem"),
        key: dir.join("leaf.key"),
    }
}
