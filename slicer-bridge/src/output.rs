//! Writing result files so that a reader never sees half of one.

use std::io::Write;
use std::path::Path;

use crate::error::AnalysisError;

/// Writes `bytes` to a temporary file beside `path`, syncs it, then renames it into place:
/// the daemon may serve `path` at any moment and must see either nothing or all of it.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), AnalysisError> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".{}.tmp", std::process::id()));
    let tmp = std::path::PathBuf::from(tmp);
    let result = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    result.map_err(|e| {
        std::fs::remove_file(&tmp).ok();
        AnalysisError::io(path, e)
    })
}
