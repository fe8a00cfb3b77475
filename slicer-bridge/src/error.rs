//! The one error type of this crate's analysis half.
//!
//! Each variant's message is written for a student or a member of staff reading the
//! job page: it says what is wrong with the file, not where the parser gave up.

use serde::{Deserialize, Serialize};

/// Why a file could not be analysed, converted or thumbnailed.
#[derive(Debug, Clone, PartialEq, thiserror::Error, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AnalysisError {
    /// The file claims to be a model (or G-code) but its content is broken or hostile.
    #[error("invalid model: {reason}")]
    InvalidModel {
        /// One human sentence, e.g. "truncated binary STL: header promises …".
        reason: String,
    },
    /// The file is not a format this operation handles (e.g. a GLB from G-code).
    #[error("unsupported for this operation: {reason}")]
    Unsupported {
        /// What was asked and why it cannot be done.
        reason: String,
    },
    /// Reading the input or writing the output failed.
    #[error("file error on {path}: {message}")]
    Io {
        /// The path involved.
        path: String,
        /// The operating system's message.
        message: String,
    },
    /// The external slicer failed or produced an unusable file.
    #[error("slicer failed: {reason}")]
    Slicer {
        /// What the slicer did wrong, with its own last words when there are some.
        reason: String,
    },
}

impl AnalysisError {
    /// Shorthand for [`AnalysisError::InvalidModel`].
    pub fn invalid(reason: impl Into<String>) -> Self {
        AnalysisError::InvalidModel {
            reason: reason.into(),
        }
    }

    /// Wraps an I/O error with the path it happened on.
    pub fn io(path: &std::path::Path, err: std::io::Error) -> Self {
        AnalysisError::Io {
            path: path.display().to_string(),
            message: err.to_string(),
        }
    }
}

/// Formats a byte or element count with thousands separators ("50,084") for messages.
pub(crate) fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(50_084), "50,084");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }
}
