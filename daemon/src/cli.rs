//! The client commands: they talk to a running daemon over its HTTP API.

use std::path::{Path, PathBuf};

use futures_util::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;

/// The token the `demo` farm's kiosk uses; the client falls back to it so
/// `farmhand jobs` works against a local demo without flags.
pub const DEMO_TOKEN: &str = "demo-kiosk-token";

/// Errors of the client commands, each a sentence for the terminal.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot read {path}: {source}")]
    File {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot reach Farmhand at {server}: {source} (is the daemon running? try --server)")]
    Unreachable {
        server: String,
        source: reqwest::Error,
    },
    #[error("the server refused: {message} ({status}, {code})")]
    Refused {
        status: u16,
        code: String,
        message: String,
    },
    #[error("the server answered something unexpected: {0}")]
    Protocol(String),
}

/// Where and as whom the client talks.
pub struct Client {
    pub server: String,
    pub token: Option<String>,
    http: reqwest::Client,
}

impl Client {
    pub fn new(server: &str, token: Option<String>) -> Client {
        Client {
            server: server.trim_end_matches('/').to_string(),
            token,
            http: reqwest::Client::new(),
        }
    }

    async fn get_json(&self, path: &str) -> Result<Value, ClientError> {
        let token = self.token.clone().unwrap_or_else(|| DEMO_TOKEN.to_string());
        let response = self
            .http
            .get(format!("{}{path}", self.server))
            .bearer_auth(token)
            .send()
            .await
            .map_err(|source| self.unreachable(source))?;
        read_json(response).await
    }

    fn unreachable(&self, source: reqwest::Error) -> ClientError {
        ClientError::Unreachable {
            server: self.server.clone(),
            source,
        }
    }
}

async fn read_json(response: reqwest::Response) -> Result<Value, ClientError> {
    let status = response.status();
    let body: Value = response
        .json()
        .await
        .map_err(|e| ClientError::Protocol(e.to_string()))?;
    if status.is_success() {
        return Ok(body);
    }
    let error = &body["error"];
    let mut message = error["message"]
        .as_str()
        .unwrap_or("no message")
        .to_string();
    if status.as_u16() == 401 {
        message.push_str(" (pass --token or set FARMHAND_TOKEN)");
    }
    Err(ClientError::Refused {
        status: status.as_u16(),
        code: error["code"].as_str().unwrap_or("unknown").to_string(),
        message,
    })
}

/// The form fields of a submission besides the file.
#[derive(Debug, Clone, Default)]
pub struct Submission {
    pub name: String,
    pub email: String,
    pub material: Option<String>,
    pub color: Option<String>,
    pub discipline: Option<String>,
    pub class_number: Option<String>,
    pub printer: Option<String>,
}

/// Streams `file` to the server as the web form does, with a progress bar.
pub async fn submit(
    client: &Client,
    file: &Path,
    form: &Submission,
    show_progress: bool,
) -> Result<Value, ClientError> {
    let file_error = |source| ClientError::File {
        path: file.to_path_buf(),
        source,
    };
    let handle = tokio::fs::File::open(file).await.map_err(file_error)?;
    let size = handle.metadata().await.map_err(file_error)?.len();
    let bar = if show_progress {
        ProgressBar::new(size)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{msg} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    let filename = file
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("model")
        .to_string();
    bar.set_message(format!("uploading {filename}"));
    let counted = bar.clone();
    let stream =
        tokio_util::io::ReaderStream::with_capacity(handle, 256 * 1024).inspect(move |chunk| {
            if let Ok(bytes) = chunk {
                counted.inc(bytes.len() as u64);
            }
        });
    let part =
        reqwest::multipart::Part::stream_with_length(reqwest::Body::wrap_stream(stream), size)
            .file_name(filename);
    let mut multipart = reqwest::multipart::Form::new()
        .text("student_name", form.name.clone())
        .text("student_email", form.email.clone())
        .text("acknowledged_minimum_charge", "true");
    for (key, value) in [
        ("material", &form.material),
        ("color", &form.color),
        ("discipline", &form.discipline),
        ("class_number", &form.class_number),
        ("printer", &form.printer),
    ] {
        if let Some(value) = value {
            multipart = multipart.text(key, value.clone());
        }
    }
    let multipart = multipart.part("file", part);
    let response = client
        .http
        .post(format!("{}/api/v1/jobs", client.server))
        .multipart(multipart)
        .send()
        .await
        .map_err(|source| client.unreachable(source))?;
    bar.finish_and_clear();
    read_json(response).await
}

/// Lists jobs, newest first, optionally of one status.
pub async fn jobs(client: &Client, status: Option<&str>) -> Result<Vec<Value>, ClientError> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("/api/v1/jobs?limit=500&status={}", status.unwrap_or(""));
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let page = client.get_json(&path).await?;
        let jobs = page["jobs"].as_array().cloned().unwrap_or_default();
        out.extend(jobs);
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => return Ok(out),
        }
    }
}

/// The printers and their states.
pub async fn printers(client: &Client) -> Result<Vec<Value>, ClientError> {
    let value = client.get_json("/api/v1/printers").await?;
    value
        .as_array()
        .cloned()
        .ok_or_else(|| ClientError::Protocol("expected a list of printers".into()))
}

fn text(value: &Value) -> String {
    match value {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A table of jobs for a terminal.
pub fn format_jobs(jobs: &[Value]) -> String {
    let mut out = format!(
        "{:<6} {:<13} {:<36} {:<24} {:>8}\n",
        "ID", "STATUS", "NAME", "FILE", "COST"
    );
    for job in jobs {
        let cost = job["cost_usd"]
            .as_f64()
            .map_or("-".into(), |c| format!("${c:.2}"));
        out.push_str(&format!(
            "{:<6} {:<13} {:<36} {:<24} {:>8}\n",
            text(&job["id"]),
            text(&job["status"]),
            truncate(&text(&job["display_name"]), 36),
            truncate(&text(&job["original_filename"]), 24),
            cost
        ));
    }
    out.push_str(&format!("{} job(s)\n", jobs.len()));
    out
}

/// A table of printers for a terminal.
pub fn format_printers(printers: &[Value]) -> String {
    let mut out = format!(
        "{:<16} {:<10} {:<15} {:<6} {}\n",
        "ID", "DRIVER", "STATE", "JOB", "NAME"
    );
    for p in printers {
        out.push_str(&format!(
            "{:<16} {:<10} {:<15} {:<6} {}\n",
            text(&p["id"]),
            text(&p["driver"]),
            text(&p["state"]),
            text(&p["job_id"]),
            text(&p["name"])
        ));
    }
    out
}

fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_string()
    } else {
        let cut: String = text.chars().take(max - 1).collect();
        format!("{cut}…")
    }
}
