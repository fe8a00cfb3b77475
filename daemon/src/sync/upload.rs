//! Idempotent uploads: blobs are content addressed, so a blob already in the bucket
//! with the right size is never sent again (HEAD first), and files above
//! [`MULTIPART_ABOVE`] go up in parts, each paced by the bandwidth cap.

use std::path::Path;
use std::time::Instant;

use bytes::Bytes;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStoreExt, PutPayload};
use tokio::io::AsyncReadExt;

use super::bucket::Bucket;
use super::throttle::Throttle;
use super::{SyncError, layout};
use crate::store::Store;

/// Files larger than this are uploaded in parts.
pub const MULTIPART_ABOVE: u64 = 8 << 20;
/// The part size (S3's minimum for all but the last part is 5 MiB).
pub const PART_SIZE: usize = 5 << 20;

/// Puts objects into one bucket at a capped rate.
pub struct Uploader {
    pub bucket: Bucket,
    throttle: Throttle,
}

impl Uploader {
    pub fn new(bucket: Bucket, max_kib_s: Option<u64>) -> Uploader {
        Uploader {
            bucket,
            throttle: Throttle::new(max_kib_s, Instant::now()),
        }
    }

    async fn pace(&mut self, bytes: usize) {
        let wait = self.throttle.take(bytes as u64, Instant::now());
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }

    /// Puts `bytes` at `key` in one request.
    pub async fn put_bytes(&mut self, key: &ObjectPath, bytes: Bytes) -> Result<(), SyncError> {
        self.pace(bytes.len()).await;
        self.bucket
            .store
            .put(key, PutPayload::from(bytes))
            .await
            .map_err(SyncError::bucket(key))?;
        Ok(())
    }

    /// Puts the local file `local` at `key`: one request, or parts when it is big.
    pub async fn put_file(&mut self, local: &Path, key: &ObjectPath) -> Result<(), SyncError> {
        let size = tokio::fs::metadata(local)
            .await
            .map_err(SyncError::io(local))?
            .len();
        if size <= MULTIPART_ABOVE {
            let bytes = tokio::fs::read(local).await.map_err(SyncError::io(local))?;
            return self.put_bytes(key, Bytes::from(bytes)).await;
        }
        let mut file = tokio::fs::File::open(local)
            .await
            .map_err(SyncError::io(local))?;
        let mut upload = self
            .bucket
            .store
            .put_multipart(key)
            .await
            .map_err(SyncError::bucket(key))?;
        loop {
            let part = match read_part(&mut file).await {
                Ok(part) => part,
                Err(e) => {
                    upload.abort().await.ok();
                    return Err(SyncError::io(local)(e));
                }
            };
            if part.is_empty() {
                break;
            }
            self.pace(part.len()).await;
            if let Err(e) = upload.put_part(PutPayload::from(part)).await {
                upload.abort().await.ok();
                return Err(SyncError::bucket(key)(e));
            }
        }
        upload.complete().await.map_err(SyncError::bucket(key))?;
        Ok(())
    }

    /// Makes sure the bucket holds blob `hash`. Returns the object path when this call
    /// established it (uploaded, or found by HEAD), `None` when the store already knew.
    pub async fn ensure_blob(
        &mut self,
        store: &Store,
        hash: &str,
    ) -> Result<Option<String>, SyncError> {
        let key = layout::blob(hash);
        if store.synced_object(key.as_ref())?.as_deref() == Some(hash) {
            return Ok(None);
        }
        let local = store.blobs().path(hash);
        let size = match tokio::fs::metadata(&local).await {
            Ok(meta) => meta.len(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(SyncError::MissingLocalBlob(hash.to_string()));
            }
            Err(e) => return Err(SyncError::io(&local)(e)),
        };
        match self.bucket.store.head(&key).await {
            Ok(meta) if meta.size == size => return Ok(Some(key.to_string())),
            Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(SyncError::bucket(&key)(e)),
        }
        self.put_file(&local, &key).await?;
        Ok(Some(key.to_string()))
    }

    /// Copies blob `hash` (already in the bucket) to `to` inside the bucket, falling
    /// back to uploading it when the service cannot copy.
    pub async fn copy_blob(
        &mut self,
        store: &Store,
        hash: &str,
        to: &ObjectPath,
    ) -> Result<(), SyncError> {
        let from = layout::blob(hash);
        match self.bucket.store.copy(&from, to).await {
            Ok(()) => Ok(()),
            Err(object_store::Error::NotImplemented { .. }) => {
                self.put_file(&store.blobs().path(hash), to).await
            }
            Err(e) => Err(SyncError::bucket(to)(e)),
        }
    }
}

/// Reads up to one part (less only at the end of the file).
async fn read_part(file: &mut tokio::fs::File) -> std::io::Result<Vec<u8>> {
    let mut part = vec![0u8; PART_SIZE];
    let mut filled = 0;
    while filled < PART_SIZE {
        let n = file.read(&mut part[filled..]).await?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    part.truncate(filled);
    Ok(part)
}
