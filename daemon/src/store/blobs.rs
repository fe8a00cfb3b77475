//! Content-addressed blobs on disk: `blobs/ab/abcdef…` named by their SHA-256.
//!
//! A blob is written to `tmp/`, fsynced, renamed into place and its directory fsynced,
//! so a name under `blobs/` always holds exactly the bytes it is named after, even after
//! `kill -9` or a power cut. One copy serves every job that uses the file.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

/// The blob directory of a data dir.
#[derive(Debug, Clone)]
pub struct BlobStore {
    root: PathBuf,
    tmp: PathBuf,
}

impl BlobStore {
    /// Opens (creating) `data_dir/blobs` and `data_dir/tmp`, clearing leftovers in `tmp`
    /// from a crash (they were never acknowledged).
    pub fn open(data_dir: &Path) -> io::Result<BlobStore> {
        let root = data_dir.join("blobs");
        let tmp = data_dir.join("tmp");
        fs::create_dir_all(&root)?;
        fs::create_dir_all(&tmp)?;
        for entry in fs::read_dir(&tmp)? {
            let path = entry?.path();
            if path.is_file() {
                fs::remove_file(&path).ok();
            }
        }
        Ok(BlobStore { root, tmp })
    }

    /// Where uploads in progress are written.
    pub fn tmp_dir(&self) -> &Path {
        &self.tmp
    }

    /// The final path of a blob.
    pub fn path(&self, hash: &str) -> PathBuf {
        let prefix = hash.get(..2).unwrap_or("00");
        self.root.join(prefix).join(hash)
    }

    /// True when the blob is present.
    pub fn contains(&self, hash: &str) -> bool {
        self.path(hash).is_file()
    }

    /// Moves a fully written, fsynced temp file into place under `hash`. If the blob
    /// already exists the temp file is removed instead: same hash, same bytes.
    pub fn commit_temp(&self, temp: &Path, hash: &str) -> io::Result<PathBuf> {
        let dest = self.path(hash);
        if dest.is_file() {
            fs::remove_file(temp)?;
            return Ok(dest);
        }
        let dir = dest.parent().unwrap_or(&self.root);
        if !dir.is_dir() {
            fs::create_dir_all(dir)?;
            // The new prefix directory's own entry must reach the disk too.
            File::open(&self.root)?.sync_all()?;
        }
        fs::rename(temp, &dest)?;
        File::open(dir)?.sync_all()?;
        Ok(dest)
    }

    /// Every blob file on disk, as (hash from its name, path): for integrity checks.
    pub fn list(&self) -> io::Result<Vec<(String, PathBuf)>> {
        let mut out = Vec::new();
        for prefix in fs::read_dir(&self.root)? {
            let prefix = prefix?.path();
            if !prefix.is_dir() {
                continue;
            }
            for entry in fs::read_dir(&prefix)? {
                let path = entry?.path();
                if let Some(name) = path.file_name().and_then(|n| n.to_str()) {
                    out.push((name.to_string(), path.clone()));
                }
            }
        }
        Ok(out)
    }
}
