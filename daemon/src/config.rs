//! The one typed configuration, strict at start-up.
//!
//! Loading is three steps: parse the TOML file into a value tree, lay
//! `FARMHAND_<SECTION>__<KEY>` environment variables over it (for systemd drop-ins and
//! tests), then deserialize with `deny_unknown_fields` and [`Config::validate`], which
//! collects *every* problem so an operator fixes them all in one go. On an unattended
//! Pi a typo must stop start-up, clearly: nothing here only warns.

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

mod email;
pub use email::EmailConfig;

/// Everything wrong with a configuration, one line per problem.
#[derive(Debug, thiserror::Error)]
#[error("{}", problems.join("\n"))]
pub struct ConfigError {
    pub problems: Vec<String>,
}

impl ConfigError {
    fn one(problem: impl Into<String>) -> Self {
        ConfigError {
            problems: vec![problem.into()],
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub server: ServerConfig,
    pub storage: StorageConfig,
    #[serde(default)]
    pub workstations: Vec<WorkstationConfig>,
    #[serde(default)]
    pub staff: StaffConfig,
    #[serde(default)]
    pub pricing: PricingConfig,
    #[serde(default)]
    pub printers: Vec<PrinterConfig>,
    pub email: Option<EmailConfig>,
    pub sync: Option<SyncConfig>,
    #[serde(default)]
    pub processing: ProcessingConfig,
    #[serde(default)]
    pub dispatch: crate::dispatch_config::DispatchConfig,
    #[serde(default)]
    pub log: LogConfig,
}

/// Logging (`[log]`). Where the log goes is decided by how Farmhand was started
/// (see [`crate::logging`]), not configured.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// `error`, `warn`, `info` (default), `debug`, `trace`, or a filter such as
    /// `info,farmhand::fleet=debug`. `RUST_LOG` overrides it.
    pub level: Option<String>,
}

/// The processing queue (analysis, previews, thumbnails).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessingConfig {
    /// Tasks run at once; default: one less than the cores, at most 2.
    pub workers: Option<usize>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    #[serde(default = "default_listen")]
    pub listen: String,
    /// Base of links in e-mails; defaults to `http://{listen}`.
    pub public_url: Option<String>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: default_listen(),
            public_url: None,
        }
    }
}

fn default_listen() -> String {
    "127.0.0.1:8080".into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    pub data_dir: PathBuf,
    #[serde(default = "default_max_upload_mb")]
    pub max_upload_mb: u64,
}

fn default_max_upload_mb() -> u64 {
    200
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Staff,
    Admin,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkstationConfig {
    pub id: String,
    pub token: Option<String>,
    pub token_file: Option<PathBuf>,
    #[serde(default = "default_role")]
    pub role: Role,
}

fn default_role() -> Role {
    Role::Staff
}

impl WorkstationConfig {
    /// The token, read from `token_file` when that is how it is given.
    pub fn resolve_token(&self) -> Result<String, String> {
        match (&self.token, &self.token_file) {
            (Some(token), None) => Ok(token.clone()),
            (None, Some(path)) => std::fs::read_to_string(path)
                .map(|t| t.trim().to_string())
                .map_err(|e| format!("cannot read {}: {e}", path.display())),
            (Some(_), Some(_)) => Err("give either token or token_file, not both".into()),
            (None, None) => Err("needs a token or a token_file".into()),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaffConfig {
    /// Seeds the attribution list once, when the store has no staff yet.
    #[serde(default)]
    pub initial: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PricingConfig {
    #[serde(default = "default_minimum_charge")]
    pub minimum_charge_usd: f64,
    #[serde(default)]
    pub materials: BTreeMap<String, MaterialConfig>,
}

impl Default for PricingConfig {
    fn default() -> Self {
        PricingConfig {
            minimum_charge_usd: default_minimum_charge(),
            materials: BTreeMap::new(),
        }
    }
}

fn default_minimum_charge() -> f64 {
    3.0
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaterialConfig {
    pub usd_per_gram: f64,
    #[serde(default = "default_density")]
    pub density_g_cm3: f64,
}

fn default_density() -> f64 {
    1.24
}

impl PricingConfig {
    /// The configured spelling of a material, matched case-insensitively.
    pub fn material(&self, name: &str) -> Option<(&str, &MaterialConfig)> {
        self.materials
            .iter()
            .find(|(known, _)| known.eq_ignore_ascii_case(name.trim()))
            .map(|(known, m)| (known.as_str(), m))
    }

    /// Cost = max(minimum charge, grams × material rate), rounded to cents.
    pub fn cost_usd(&self, material: &str, grams: f64) -> f64 {
        let rate = self.material(material).map_or(0.0, |(_, m)| m.usd_per_gram);
        let cost = (grams * rate).max(self.minimum_charge_usd);
        (cost * 100.0).round() / 100.0
    }
}

/// The printer drivers the contract names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DriverKind {
    Marlin,
    Bambu,
    Mqtt,
    Moonraker,
    Prusalink,
    Manual,
}

/// One printer. Keys are flat, as in the contract; [`Config::validate`] checks that the
/// driver's required keys are there and that no key of another driver is.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrinterConfig {
    pub id: String,
    pub name: Option<String>,
    pub driver: DriverKind,
    pub build_volume_mm: Option<[f64; 3]>,
    #[serde(default)]
    pub materials: Vec<String>,
    pub slicer_profile: Option<PathBuf>,
    // marlin
    pub port: Option<String>,
    pub baud: Option<u32>,
    // bambu
    pub host: Option<String>,
    pub serial: Option<String>,
    pub access_code: Option<String>,
    pub mqtt_port: Option<u16>,
    pub ftps_port: Option<u16>,
    pub ca_file: Option<PathBuf>,
    // moonraker, prusalink
    pub url: Option<String>,
    pub api_key: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    // generic mqtt
    pub broker: Option<String>,
    pub topic: Option<String>,
    // dispatch (any driver): see `crate::dispatch_config`
    /// Marlin only: upload each print to the SD card and print from there, so a print
    /// survives Farmhand restarting.
    #[serde(default)]
    pub sd_card: bool,
    /// The printer clears its own bed (a belt, a scraper): a finished print needs no
    /// person, so it is auto-dispatched by default.
    #[serde(default)]
    pub auto_bed_clear: bool,
    /// The scheduler may start jobs here by itself; default: `auto_bed_clear`.
    pub auto_dispatch: Option<bool>,
    /// Safe to print while the lab is closed (staffed hours do not hold its jobs).
    #[serde(default)]
    pub unattended_ok: bool,
    /// The spool on the printer now; the scheduler only sends jobs of this material.
    pub loaded_material: Option<String>,
    /// The colour of that spool; jobs asking for another colour (not "Any") wait.
    pub loaded_color: Option<String>,
    /// Nozzle diameter in mm; a job sliced for another nozzle is not sent here.
    pub nozzle_mm: Option<f64>,
}

impl PrinterConfig {
    /// The name shown to people.
    pub fn display_name(&self) -> &str {
        self.name.as_deref().unwrap_or(&self.id)
    }

    /// True when the printer can print `material` (no list means anything).
    pub fn accepts_material(&self, material: Option<&str>) -> bool {
        match material {
            Some(m) if !self.materials.is_empty() => self
                .materials
                .iter()
                .any(|known| known.eq_ignore_ascii_case(m)),
            _ => true,
        }
    }

    fn problems(&self) -> Vec<String> {
        let given: Vec<(&str, bool)> = vec![
            ("port", self.port.is_some()),
            ("baud", self.baud.is_some()),
            ("host", self.host.is_some()),
            ("serial", self.serial.is_some()),
            ("access_code", self.access_code.is_some()),
            ("mqtt_port", self.mqtt_port.is_some()),
            ("ftps_port", self.ftps_port.is_some()),
            ("ca_file", self.ca_file.is_some()),
            ("url", self.url.is_some()),
            ("api_key", self.api_key.is_some()),
            ("username", self.username.is_some()),
            ("password", self.password.is_some()),
            ("broker", self.broker.is_some()),
            ("topic", self.topic.is_some()),
            ("sd_card", self.sd_card),
        ];
        let (required, optional): (&[&str], &[&str]) = match self.driver {
            DriverKind::Marlin => (&["port"], &["baud", "sd_card"]),
            DriverKind::Bambu => (
                &["host", "serial", "access_code"],
                &["mqtt_port", "ftps_port", "ca_file"],
            ),
            DriverKind::Mqtt => (&["broker", "topic"], &[]),
            DriverKind::Moonraker => (&["url"], &["api_key"]),
            DriverKind::Prusalink => (&["url"], &["api_key", "username", "password"]),
            DriverKind::Manual => (&[], &[]),
        };
        let driver = format!("{:?}", self.driver).to_lowercase();
        let mut problems = Vec::new();
        for (key, present) in given {
            if !present && required.contains(&key) {
                problems.push(format!(
                    "printers: {}: driver {driver} needs `{key}`",
                    self.id
                ));
            } else if present && !required.contains(&key) && !optional.contains(&key) {
                problems.push(format!(
                    "printers: {}: `{key}` does not apply to driver {driver}",
                    self.id
                ));
            }
        }
        if self.driver == DriverKind::Prusalink
            && self.username.is_some() != self.password.is_some()
        {
            problems.push(format!(
                "printers: {}: driver prusalink logs in with `username` and `password` together (digest), or with `api_key`",
                self.id
            ));
        }
        problems.extend(crate::dispatch_config::printer_problems(self));
        if let Some(volume) = self.build_volume_mm
            && volume.iter().any(|v| !v.is_finite() || *v <= 0.0)
        {
            problems.push(format!(
                "printers: {}: build_volume_mm must be three positive numbers",
                self.id
            ));
        }
        problems
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncConfig {
    /// `s3://bucket/prefix`, `gs://bucket/prefix`, `az://container/prefix` or `file:///path`.
    pub url: String,
    /// An S3-compatible server instead of AWS (MinIO, Garage, Ceph, s3s-fs).
    pub endpoint: Option<String>,
    /// S3 region; default `us-east-1` (or `AWS_REGION`).
    pub region: Option<String>,
    /// Credentials; absent = the usual `AWS_*` / `GOOGLE_*` / `AZURE_*` environment.
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    /// Upload bandwidth cap in KiB/s; absent = unlimited.
    pub max_upload_kib_s: Option<u64>,
    /// How often a snapshot of the whole store is uploaded (when something changed).
    #[serde(default = "default_snapshot_interval")]
    pub snapshot_interval_s: u64,
    /// The longest wait between retries while the bucket is unreachable.
    #[serde(default = "default_max_backoff")]
    pub max_backoff_s: u64,
    /// Ingest submissions dropped into `inbox/` in the bucket (docs/sync.md).
    #[serde(default)]
    pub inbox: bool,
    /// How often the inbox is looked at.
    #[serde(default = "default_inbox_interval")]
    pub inbox_interval_s: u64,
}

fn default_inbox_interval() -> u64 {
    30
}

fn default_snapshot_interval() -> u64 {
    3600
}

fn default_max_backoff() -> u64 {
    300
}

impl SyncConfig {
    /// A sync to `url` with every other setting at its default.
    pub fn new(url: impl Into<String>) -> SyncConfig {
        SyncConfig {
            url: url.into(),
            endpoint: None,
            region: None,
            access_key_id: None,
            secret_access_key: None,
            max_upload_kib_s: None,
            snapshot_interval_s: default_snapshot_interval(),
            max_backoff_s: default_max_backoff(),
            inbox: false,
            inbox_interval_s: default_inbox_interval(),
        }
    }

    fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if let Err(e) = crate::sync::bucket::BucketUrl::parse(&self.url) {
            problems.push(format!("sync.url: {e}"));
        }
        if let Some(endpoint) = &self.endpoint
            && !(endpoint.starts_with("http://") || endpoint.starts_with("https://"))
        {
            problems.push(format!(
                "sync.endpoint: {endpoint:?} must start with http:// or https://"
            ));
        }
        if self.max_upload_kib_s == Some(0) {
            problems
                .push("sync.max_upload_kib_s must be at least 1 (leave it out for no cap)".into());
        }
        if self.snapshot_interval_s == 0 {
            problems.push("sync.snapshot_interval_s must be at least 1".into());
        }
        if self.inbox_interval_s == 0 || self.inbox_interval_s > 86_400 {
            problems.push("sync.inbox_interval_s must be between 1 and 86400".into());
        }
        if self.max_backoff_s == 0 || self.max_backoff_s > 86_400 {
            problems.push("sync.max_backoff_s must be between 1 and 86400".into());
        }
        if self.access_key_id.is_some() != self.secret_access_key.is_some() {
            problems.push("sync: give both access_key_id and secret_access_key, or neither".into());
        }
        problems
    }
}

impl Config {
    /// Reads, overlays the environment, parses and validates a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::one(format!("cannot read {}: {e}", path.display())))?;
        Config::from_toml(&text, std::env::vars())
    }

    /// Parses TOML text with `FARMHAND_<SECTION>__<KEY>` overrides from `env`.
    pub fn from_toml(
        text: &str,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let mut tree: toml::Table = text.parse().map_err(|e: toml::de::Error| {
            ConfigError::one(format!("not valid TOML: {}", e.message().trim()))
        })?;
        apply_env_overrides(&mut tree, env)?;
        let config: Config = toml::Value::Table(tree)
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::one(e.message().trim().to_string()))?;
        config.validate()?;
        Ok(config)
    }

    /// Every problem in the configuration, or `Ok`.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut problems = Vec::new();
        if self.server.listen.parse::<SocketAddr>().is_err() {
            problems.push(format!(
                "server.listen: {:?} is not an address like 0.0.0.0:8080",
                self.server.listen
            ));
        }
        if let Some(url) = &self.server.public_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            problems.push(format!(
                "server.public_url: {url:?} must start with http:// or https://"
            ));
        }
        if self.processing.workers.is_some_and(|w| w == 0 || w > 64) {
            problems.push("processing.workers must be between 1 and 64".into());
        }
        if self.storage.max_upload_mb == 0 || self.storage.max_upload_mb > 10_000 {
            problems.push("storage.max_upload_mb must be between 1 and 10000".into());
        }
        if let Some(level) = &self.log.level
            && let Err(problem) = crate::logging::parse_level(level)
        {
            problems.push(format!("log.level: {problem}"));
        }
        self.validate_workstations(&mut problems);
        self.validate_pricing(&mut problems);
        problems.extend(self.dispatch.problems());
        let mut printer_ids = HashSet::new();
        for printer in &self.printers {
            if !valid_id(&printer.id) {
                problems.push(format!(
                    "printers: id {:?} may only use letters, digits, '-' and '_'",
                    printer.id
                ));
            }
            if !printer_ids.insert(printer.id.as_str()) {
                problems.push(format!("printers: id {:?} is used twice", printer.id));
            }
            problems.extend(printer.problems());
        }
        problems.extend(self.email().problems());
        if let Some(sync) = &self.sync {
            problems.extend(sync.problems());
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError { problems })
        }
    }

    fn validate_workstations(&self, problems: &mut Vec<String>) {
        let mut ids = HashSet::new();
        let mut tokens = HashSet::new();
        for ws in &self.workstations {
            if !ids.insert(ws.id.as_str()) {
                problems.push(format!("workstations: id {:?} is used twice", ws.id));
            }
            match ws.resolve_token() {
                Ok(token) if token.len() < 8 => problems.push(format!(
                    "workstations: {}: the token is too short (8 characters at least)",
                    ws.id
                )),
                Ok(token) => {
                    if !tokens.insert(token) {
                        problems.push(format!(
                            "workstations: {}: the same token is used by another workstation",
                            ws.id
                        ));
                    }
                }
                Err(problem) => problems.push(format!("workstations: {}: {problem}", ws.id)),
            }
        }
    }

    fn validate_pricing(&self, problems: &mut Vec<String>) {
        if !self.pricing.minimum_charge_usd.is_finite() || self.pricing.minimum_charge_usd < 0.0 {
            problems.push("pricing.minimum_charge_usd must be zero or more".into());
        }
        for (name, material) in &self.pricing.materials {
            if !material.usd_per_gram.is_finite() || material.usd_per_gram < 0.0 {
                problems.push(format!(
                    "pricing.materials.{name}.usd_per_gram must be zero or more"
                ));
            }
            if !material.density_g_cm3.is_finite() || material.density_g_cm3 <= 0.0 {
                problems.push(format!(
                    "pricing.materials.{name}.density_g_cm3 must be positive"
                ));
            }
        }
    }

    /// The e-mail settings, defaults when the section is absent.
    pub fn email(&self) -> EmailConfig {
        self.email.clone().unwrap_or_default()
    }

    /// The printer with this id.
    pub fn printer(&self, id: &str) -> Option<&PrinterConfig> {
        self.printers.iter().find(|p| p.id == id)
    }

    /// A human summary of what this config would run (for `check-config`).
    pub fn summary(&self) -> String {
        let mut out = vec![
            format!("listen:        {}", self.server.listen),
            format!(
                "public url:    {}",
                self.server
                    .public_url
                    .clone()
                    .unwrap_or_else(|| format!("http://{} (default)", self.server.listen))
            ),
            format!("data dir:      {}", self.storage.data_dir.display()),
            format!("max upload:    {} MB", self.storage.max_upload_mb),
        ];
        let workstations: Vec<String> = self
            .workstations
            .iter()
            .map(|w| format!("{} ({:?})", w.id, w.role).to_lowercase())
            .collect();
        out.push(format!("workstations:  {}", join_or_none(&workstations)));
        out.push(format!(
            "staff seed:    {}",
            join_or_none(&self.staff.initial)
        ));
        let materials: Vec<String> = self
            .pricing
            .materials
            .iter()
            .map(|(name, m)| format!("{name} ${}/g", m.usd_per_gram))
            .collect();
        out.push(format!(
            "pricing:       minimum ${:.2}; {}",
            self.pricing.minimum_charge_usd,
            join_or_none(&materials)
        ));
        out.push(format!("dispatch:      {}", self.dispatch.summary()));
        out.push(format!("printers:      {}", self.printers.len()));
        for p in &self.printers {
            out.push(format!("  - {} [{:?}] {}", p.id, p.driver, p.display_name()).to_string());
        }
        let email = self.email();
        out.push(match &email.smtp_url {
            Some(_) => format!(
                "e-mail:        SMTP {} from {}",
                email.smtp_redacted(),
                email.from
            ),
            None => format!(
                "e-mail:        kept as .eml files in {}",
                self.storage.data_dir.join("outbox").display()
            ),
        });
        out.push(match &self.sync {
            Some(sync) => format!("cloud sync:    {}", sync.url),
            None => "cloud sync:    off".into(),
        });
        out.join("\n")
    }
}

fn join_or_none(items: &[String]) -> String {
    if items.is_empty() {
        "none".into()
    } else {
        items.join(", ")
    }
}

/// Ids appear in URLs and file names: keep them plain.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// Lays `FARMHAND_SECTION__KEY=value` over the parsed file. Values are read as TOML
/// (so `true`, `42` and `["a"]` keep their types) and fall back to plain strings.
fn apply_env_overrides(
    tree: &mut toml::Table,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<(), ConfigError> {
    for (name, raw) in env {
        let Some(path) = name.strip_prefix("FARMHAND_") else {
            continue;
        };
        let Some((section, key)) = path.split_once("__") else {
            continue;
        };
        let (section, key) = (section.to_ascii_lowercase(), key.to_ascii_lowercase());
        let value = format!("v = {raw}")
            .parse::<toml::Table>()
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or(toml::Value::String(raw));
        let entry = tree
            .entry(section.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        match entry {
            toml::Value::Table(table) => {
                table.insert(key, value);
            }
            _ => {
                return Err(ConfigError::one(format!(
                    "{name}: [{section}] is not a table that a single key can be set in"
                )));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = include_str!("../../config/farmhand.example.toml");

    #[test]
    fn the_example_config_is_valid() {
        let config = Config::from_toml(EXAMPLE, []).expect("example parses");
        assert!(config.printers.len() >= 6);
        assert!(config.summary().contains("mk3-1"));
    }

    #[test]
    fn env_overrides_single_keys_with_types() {
        let config = Config::from_toml(
            EXAMPLE,
            [
                (
                    "FARMHAND_SERVER__LISTEN".to_string(),
                    "127.0.0.1:0".to_string(),
                ),
                (
                    "FARMHAND_STORAGE__MAX_UPLOAD_MB".to_string(),
                    "5".to_string(),
                ),
                (
                    "FARMHAND_STORAGE__DATA_DIR".to_string(),
                    "/tmp/x y".to_string(),
                ),
                ("UNRELATED".to_string(), "1".to_string()),
            ],
        )
        .expect("overrides apply");
        assert_eq!(config.server.listen, "127.0.0.1:0");
        assert_eq!(config.storage.max_upload_mb, 5);
        assert_eq!(config.storage.data_dir, PathBuf::from("/tmp/x y"));
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let bad = r#"
            [server]
            listen = "not an address"
            [storage]
            data_dir = "/tmp/x"
            [[workstations]]
            id = "k"
            [[printers]]
            id = "a"
            driver = "marlin"
            url = "http://x"
            [[printers]]
            id = "a"
            driver = "manual"
        "#;
        let err = Config::from_toml(bad, []).expect_err("invalid");
        let text = err.to_string();
        for expected in [
            "server.listen",
            "needs a token",
            "needs `port`",
            "`url` does not apply",
            "used twice",
        ] {
            assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
        }
    }

    #[test]
    fn unknown_keys_stop_start_up() {
        let err = Config::from_toml("[storage]\ndata_dir = \"/x\"\nmax_uplod_mb = 3\n", [])
            .expect_err("typo");
        assert!(err.to_string().contains("max_uplod_mb"), "{err}");
    }

    #[test]
    fn cost_is_at_least_the_minimum_charge() {
        let config = Config::from_toml(EXAMPLE, []).expect("example parses");
        assert_eq!(config.pricing.cost_usd("pla", 10.0), 3.0);
        assert_eq!(config.pricing.cost_usd("PLA", 100.0), 5.0);
    }
}
