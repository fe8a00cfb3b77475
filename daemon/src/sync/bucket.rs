//! `[sync] url` → an `object_store` client rooted at the URL's prefix.
//!
//! One code path for every kind of bucket: `object_store` speaks S3 (and the
//! S3-compatible servers via `endpoint`), Google Cloud Storage, Azure Blob and a local
//! folder. Its own retries are kept short (3 tries, 15 s), because the outbox worker
//! does the long-term retrying with its own back-off: a request must fail quickly when
//! the Wi-Fi is down, not hang the worker for minutes.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use object_store::aws::AmazonS3Builder;
use object_store::azure::MicrosoftAzureBuilder;
use object_store::gcp::GoogleCloudStorageBuilder;
use object_store::local::LocalFileSystem;
use object_store::prefix::PrefixStore;
use object_store::{BackoffConfig, ClientOptions, ObjectStore, RetryConfig};

use super::SyncError;
use crate::config::SyncConfig;

/// Which service a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    S3,
    Gcs,
    Azure,
    Local,
}

/// A parsed `[sync] url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketUrl {
    pub service: Service,
    /// The bucket or container (empty for a local folder).
    pub bucket: String,
    /// The key prefix inside the bucket, without slashes at either end.
    pub prefix: String,
    /// The folder of a `file://` URL.
    pub local: Option<PathBuf>,
}

impl BucketUrl {
    /// Parses `s3://bucket/prefix`, `gs://…`, `az://container/prefix`, `file:///path`.
    pub fn parse(url: &str) -> Result<BucketUrl, String> {
        let Some((scheme, rest)) = url.split_once("://") else {
            return Err(format!(
                "{url:?} is not a URL like s3://bucket/prefix or file:///path"
            ));
        };
        let service = match scheme.to_ascii_lowercase().as_str() {
            "s3" | "s3a" => Service::S3,
            "gs" => Service::Gcs,
            "az" | "azure" | "abfs" | "abfss" => Service::Azure,
            "file" => Service::Local,
            other => {
                return Err(format!(
                    "the scheme {other}:// is not supported: use s3://, gs://, az:// or file://"
                ));
            }
        };
        if service == Service::Local {
            if !rest.starts_with('/') {
                return Err(format!(
                    "{url:?} must name an absolute folder, like file:///var/lib/farmhand-cloud"
                ));
            }
            return Ok(BucketUrl {
                service,
                bucket: String::new(),
                prefix: String::new(),
                local: Some(PathBuf::from(rest)),
            });
        }
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(format!("{url:?} names no bucket"));
        }
        Ok(BucketUrl {
            service,
            bucket: bucket.to_string(),
            prefix: prefix.trim_matches('/').to_string(),
            local: None,
        })
    }
}

/// The bucket the farm syncs to.
#[derive(Debug, Clone)]
pub struct Bucket {
    pub store: Arc<dyn ObjectStore>,
    /// The configured URL, as the operator wrote it (shown in status and logs).
    pub url: String,
}

impl Bucket {
    /// Builds the client (no request is made yet: an unreachable bucket is not an error here).
    pub fn open(config: &SyncConfig) -> Result<Bucket, SyncError> {
        let parsed = BucketUrl::parse(&config.url).map_err(SyncError::BadUrl)?;
        let retry = RetryConfig {
            backoff: BackoffConfig::default(),
            max_retries: 3,
            retry_timeout: Duration::from_secs(15),
        };
        let client = ClientOptions::new()
            .with_connect_timeout(Duration::from_secs(5))
            // A part is at most a few MiB; five minutes allows a slow link and a bandwidth cap.
            .with_timeout(Duration::from_secs(300))
            .with_allow_http(
                config
                    .endpoint
                    .as_deref()
                    .is_some_and(|e| e.starts_with("http://")),
            );
        let root: Arc<dyn ObjectStore> = match parsed.service {
            Service::Local => {
                let path = parsed.local.clone().unwrap_or_default();
                std::fs::create_dir_all(&path).map_err(SyncError::io(&path))?;
                Arc::new(LocalFileSystem::new_with_prefix(&path).map_err(SyncError::Setup)?)
            }
            Service::S3 => {
                let mut builder = AmazonS3Builder::from_env()
                    .with_bucket_name(&parsed.bucket)
                    .with_retry(retry)
                    .with_client_options(client);
                if let Some(endpoint) = &config.endpoint {
                    builder = builder.with_endpoint(endpoint);
                }
                let region = config
                    .region
                    .clone()
                    .or_else(|| std::env::var("AWS_REGION").ok())
                    .unwrap_or_else(|| "us-east-1".into());
                builder = builder.with_region(region);
                if let (Some(id), Some(secret)) = (&config.access_key_id, &config.secret_access_key)
                {
                    builder = builder
                        .with_access_key_id(id)
                        .with_secret_access_key(secret);
                }
                Arc::new(builder.build().map_err(SyncError::Setup)?)
            }
            Service::Gcs => Arc::new(
                GoogleCloudStorageBuilder::from_env()
                    .with_bucket_name(&parsed.bucket)
                    .with_retry(retry)
                    .with_client_options(client)
                    .build()
                    .map_err(SyncError::Setup)?,
            ),
            Service::Azure => Arc::new(
                MicrosoftAzureBuilder::from_env()
                    .with_container_name(&parsed.bucket)
                    .with_retry(retry)
                    .with_client_options(client)
                    .build()
                    .map_err(SyncError::Setup)?,
            ),
        };
        let store: Arc<dyn ObjectStore> = if parsed.prefix.is_empty() {
            root
        } else {
            Arc::new(PrefixStore::new(root, parsed.prefix.as_str()))
        };
        Ok(Bucket {
            store,
            url: config.url.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_service_bucket_and_prefix() {
        let s3 = BucketUrl::parse("s3://lab-backup/farm/pi-1/").expect("s3");
        assert_eq!(
            (s3.service, s3.bucket.as_str(), s3.prefix.as_str()),
            (Service::S3, "lab-backup", "farm/pi-1")
        );
        let gcs = BucketUrl::parse("gs://b").expect("gs");
        assert_eq!((gcs.service, gcs.prefix.as_str()), (Service::Gcs, ""));
        let az = BucketUrl::parse("az://container/p").expect("az");
        assert_eq!(az.service, Service::Azure);
        let local = BucketUrl::parse("file:///srv/cloud").expect("file");
        assert_eq!(local.local, Some(PathBuf::from("/srv/cloud")));
    }

    #[test]
    fn bad_urls_say_what_is_wrong() {
        assert!(BucketUrl::parse("bucket/prefix").is_err());
        assert!(
            BucketUrl::parse("ftp://x/y")
                .expect_err("ftp")
                .contains("not supported")
        );
        assert!(BucketUrl::parse("file://relative/dir").is_err());
        assert!(BucketUrl::parse("s3:///prefix").is_err());
    }
}
