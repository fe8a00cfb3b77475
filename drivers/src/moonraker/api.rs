//! Moonraker's HTTP endpoints that Farmhand uses, one function each.

use std::path::Path;

use reqwest::header::{HeaderMap, HeaderValue};

use crate::DriverError;
use crate::mqtt::files::url_safe_name;

/// An HTTP client for one Moonraker instance (`url` like `http://voron.local:7125`).
#[derive(Debug, Clone)]
pub struct Api {
    base: String,
    http: reqwest::Client,
}

impl Api {
    pub fn new(url: &str, api_key: Option<&str>) -> Result<Self, DriverError> {
        let base = url.trim_end_matches('/').to_string();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(DriverError::InvalidSetting {
                key: "url",
                value: url.into(),
                hint: "it must look like http://voron.local:7125".into(),
            });
        }
        let mut headers = HeaderMap::new();
        if let Some(key) = api_key {
            let value = HeaderValue::from_str(key).map_err(|_| DriverError::InvalidSetting {
                key: "api_key",
                value: "(hidden)".into(),
                hint: "copy the key from Moonraker's [authorization] page again".into(),
            })?;
            headers.insert("X-Api-Key", value);
        }
        let http = reqwest::Client::builder()
            .default_headers(headers)
            .connect_timeout(std::time::Duration::from_secs(10))
            .build()
            .map_err(|e| DriverError::InvalidSetting {
                key: "url",
                value: url.into(),
                hint: e.to_string(),
            })?;
        Ok(Self { base, http })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// `ws://…/websocket` for the status subscription.
    pub fn websocket_url(&self) -> String {
        let rest = self.base.strip_prefix("http").unwrap_or(self.base.as_str());
        format!("ws{rest}/websocket")
    }

    /// `POST /server/files/upload` (multipart, root `gcodes`); returns the name Moonraker stored.
    pub async fn upload(&self, file: &Path) -> Result<String, DriverError> {
        let bytes = tokio::fs::read(file).await.map_err(|e| DriverError::File {
            path: file.to_path_buf(),
            reason: e.to_string(),
        })?;
        let name = url_safe_name(file);
        let form = reqwest::multipart::Form::new().text("root", "gcodes").part(
            "file",
            reqwest::multipart::Part::bytes(bytes).file_name(name.clone()),
        );
        let req = self
            .http
            .post(format!("{}/server/files/upload", self.base))
            .multipart(form);
        self.send(req, "the upload").await?;
        Ok(name)
    }

    /// `POST /printer/print/start?filename=…`
    pub async fn start(&self, filename: &str) -> Result<(), DriverError> {
        let req = self.http.post(format!(
            "{}/printer/print/start?filename={}",
            self.base,
            percent_encode(filename)
        ));
        self.send(req, "print start").await
    }

    /// `POST /printer/print/{pause|resume|cancel}`
    pub async fn job(&self, action: &'static str) -> Result<(), DriverError> {
        let req = self
            .http
            .post(format!("{}/printer/print/{action}", self.base));
        self.send(req, action).await
    }

    async fn send(&self, req: reqwest::RequestBuilder, what: &str) -> Result<(), DriverError> {
        let err = |reason: String, hint: &str| DriverError::Http {
            printer: format!("Moonraker at {}", self.base),
            what: what.to_string(),
            reason,
            hint: hint.to_string(),
        };
        let resp = req
            .send()
            .await
            .map_err(|e| err(e.to_string(), "check the url and that Moonraker is running"))?;
        let status = resp.status();
        if status.is_success() {
            return Ok(());
        }
        let body = resp.text().await.unwrap_or_default();
        let message = serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["error"]["message"].as_str().map(str::to_string))
            .unwrap_or(body);
        let hint = match status.as_u16() {
            401 | 403 => "set api_key to a key from Moonraker's [authorization] section",
            _ => "see the message; the printer's state may not allow this now",
        };
        Err(err(format!("{status}: {}", message.trim()), hint))
    }
}

/// Percent-encode everything but RFC 3986 unreserved characters (a query value).
pub fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_encoded() {
        assert_eq!(percent_encode("a b&c.gcode"), "a%20b%26c.gcode");
    }

    #[test]
    fn urls() {
        let api = Api::new("http://voron.local:7125/", None).expect("valid");
        assert_eq!(api.base(), "http://voron.local:7125");
        assert_eq!(api.websocket_url(), "ws://voron.local:7125/websocket");
        let api = Api::new("https://v", Some("k")).expect("valid");
        assert_eq!(api.websocket_url(), "wss://v/websocket");
        assert!(Api::new("voron.local:7125", None).is_err());
    }
}
