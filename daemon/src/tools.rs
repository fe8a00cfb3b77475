//! The offline commands: `analyze`, `convert`, `thumbnail` and `print`. They use the same
//! library code as the daemon (slicer-bridge, drivers) without a running daemon.

use std::path::{Path, PathBuf};
use std::time::Duration;

use drivers::DriverSpec;
use indicatif::{ProgressBar, ProgressStyle};
use slicer_bridge::AnalyzeOptions;

use crate::config::Config;

/// Errors of the offline commands: one sentence each, for the terminal.
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    #[error(transparent)]
    Analysis(#[from] slicer_bridge::AnalysisError),
    #[error(transparent)]
    Driver(#[from] drivers::DriverError),
    #[error("{0}")]
    Usage(String),
}

/// Analysis options from a config (build volumes of every printer, the material's
/// density), or defaults when there is none.
pub fn analyze_options(config: Option<&Config>, material: Option<&str>) -> AnalyzeOptions {
    let mut opts = AnalyzeOptions::default();
    if let Some(config) = config {
        opts.build_volumes = config
            .printers
            .iter()
            .filter_map(|p| p.build_volume_mm.map(|v| (p.id.clone(), v)))
            .collect();
        if let Some((_, m)) = material.and_then(|m| config.pricing.material(m)) {
            opts.density_g_cm3 = m.density_g_cm3;
        }
    }
    opts
}

/// `farmhand analyze FILE`: the analysis as pretty JSON.
pub fn analyze(file: &Path, opts: &AnalyzeOptions) -> Result<String, ToolError> {
    let analysis = slicer_bridge::analyze_file(file, opts)?;
    let mut value = serde_json::to_value(&analysis).unwrap_or_default();
    value["state"] = serde_json::json!("done");
    Ok(serde_json::to_string_pretty(&value).unwrap_or_default())
}

/// `farmhand convert IN OUT.glb`.
pub fn convert(input: &Path, output: &Path) -> Result<String, ToolError> {
    if output
        .extension()
        .is_none_or(|e| !e.eq_ignore_ascii_case("glb"))
    {
        return Err(ToolError::Usage(format!(
            "{} should end in .glb",
            output.display()
        )));
    }
    let stats = slicer_bridge::convert_to_glb(input, output)?;
    Ok(format!(
        "wrote {}: {} vertices, {} triangles, {} bytes",
        output.display(),
        stats.vertices,
        stats.triangles,
        stats.bytes
    ))
}

/// `farmhand thumbnail IN OUT.png`.
pub fn thumbnail(input: &Path, output: &Path, size: u32) -> Result<String, ToolError> {
    if !(16..=2048).contains(&size) {
        return Err(ToolError::Usage("--size must be 16 to 2048 pixels".into()));
    }
    slicer_bridge::render_thumbnail(input, output, size)?;
    Ok(format!("wrote {} ({size}×{size} PNG)", output.display()))
}

/// What `farmhand print` drives: the contract's printer keys, as flags.
#[derive(Debug, Default)]
pub struct PrintRequest {
    pub driver: String,
    pub port: Option<PathBuf>,
    pub baud: u32,
    pub sd: bool,
    pub url: Option<String>,
    pub api_key: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub broker: Option<String>,
    pub topic: Option<String>,
    pub host: Option<String>,
    pub serial: Option<String>,
    pub access_code: Option<String>,
    pub mqtt_port: Option<u16>,
    pub ftps_port: Option<u16>,
    pub ca_file: Option<PathBuf>,
    pub file: PathBuf,
}

impl PrintRequest {
    /// The driver description, or which flag is missing.
    fn spec(&self) -> Result<DriverSpec, ToolError> {
        let need = |value: &Option<String>, flag: &str| {
            value
                .clone()
                .ok_or_else(|| ToolError::Usage(format!("--driver {} needs {flag}", self.driver)))
        };
        Ok(match self.driver.as_str() {
            "marlin" => DriverSpec::Marlin {
                port: self
                    .port
                    .clone()
                    .ok_or_else(|| ToolError::Usage("--driver marlin needs --port PATH".into()))?,
                baud: self.baud,
                sd: self.sd,
            },
            "mqtt" => DriverSpec::Mqtt {
                broker: need(&self.broker, "--broker mqtt://HOST:PORT")?,
                topic: need(&self.topic, "--topic T")?,
            },
            "moonraker" => DriverSpec::Moonraker {
                url: need(&self.url, "--url http://HOST:7125")?,
                api_key: self.api_key.clone(),
            },
            "prusalink" => DriverSpec::PrusaLink {
                url: need(&self.url, "--url http://HOST")?,
                api_key: self.api_key.clone(),
                username: self.username.clone(),
                password: self.password.clone(),
            },
            "bambu" => DriverSpec::Bambu {
                host: need(&self.host, "--host IP")?,
                serial: need(&self.serial, "--serial S")?,
                access_code: need(&self.access_code, "--access-code C")?,
                mqtt_port: self.mqtt_port,
                ftps_port: self.ftps_port,
                ca_file: self.ca_file.clone(),
            },
            other => {
                return Err(ToolError::Usage(format!(
                    "unknown driver {other:?}: use marlin, bambu, mqtt, moonraker or prusalink"
                )));
            }
        })
    }
}

/// `farmhand print`: one file on one printer, with a progress bar. `Ok` only when the
/// print completed; otherwise the printer's own error text.
pub async fn print(request: PrintRequest) -> Result<(), ToolError> {
    let spec = request.spec()?;
    if !request.file.is_file() {
        return Err(ToolError::Usage(format!(
            "{} is not a file",
            request.file.display()
        )));
    }
    let bar = progress_bar();
    let shown = bar.clone();
    let result = drivers::print_with(spec, request.file, move |status| {
        show_status(&shown, status)
    })
    .await;
    match &result {
        Ok(()) => bar.finish_with_message("print completed"),
        Err(_) => bar.abandon_with_message("print failed"),
    }
    Ok(result?)
}

fn progress_bar() -> ProgressBar {
    let bar = ProgressBar::new(1000);
    bar.set_style(
        ProgressStyle::with_template("[{elapsed_precise}] [{bar:40}] {percent:>3}% {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.enable_steady_tick(Duration::from_millis(250));
    bar
}

fn show_status(bar: &ProgressBar, status: &drivers::PrinterStatus) {
    let mut parts = vec![format!("{:?}", status.state).to_lowercase()];
    if let Some(job) = &status.job {
        bar.set_position((job.percent * 10.0).round().clamp(0.0, 1000.0) as u64);
        if let (Some(layer), Some(total)) = (job.layer, job.total_layers) {
            parts.push(format!("layer {layer}/{total}"));
        }
        if let Some(eta) = job.eta_s {
            parts.push(format!("eta {}:{:02}", eta / 60, eta % 60));
        }
    }
    if let Some(tool) = status.temps.tools.first() {
        parts.push(format!("hotend {:.0}/{:.0}°C", tool.actual, tool.target));
    }
    if let Some(bed) = &status.temps.bed {
        parts.push(format!("bed {:.0}/{:.0}°C", bed.actual, bed.target));
    }
    bar.set_message(parts.join("  "));
}
