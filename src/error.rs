//! Typed errors for everything a user can get wrong.

use thiserror::Error;

/// Every error the library returns. Messages name the file, element or key at fault.
#[derive(Debug, Error)]
pub enum Error {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file at fault.
        path: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A file could not be parsed (malformed YAML/JSON, unknown key, wrong type).
    #[error("{path}: {message}")]
    Parse {
        /// The file at fault.
        path: String,
        /// What the parser said (line/column and key where known).
        message: String,
    },
    /// The network is structurally wrong (bad bus index, bad parameter).
    #[error("invalid network: {0}")]
    InvalidNetwork(String),
    /// The network uses an element that changes the power flow but is not modelled.
    #[error("unsupported element: {0}")]
    Unsupported(String),
    /// A set-point, action or scenario value is wrong (NaN, infinite, wrong length).
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// The GPU backend is not available or failed.
    #[error("GPU: {0}")]
    Gpu(String),
    /// A batch would not fit in memory (the message gives the estimate and the limit).
    #[error("not enough memory: {0}")]
    Memory(String),
    /// A setup (environment configuration) is wrong.
    #[error("invalid setup: {0}")]
    InvalidSetup(String),
}

/// Result alias.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// An I/O error on `path`.
    pub fn io(path: impl AsRef<std::path::Path>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.as_ref().display().to_string(),
            source,
        }
    }
    /// A parse error in `path`.
    pub fn parse(path: impl AsRef<std::path::Path>, message: impl std::fmt::Display) -> Self {
        Error::Parse {
            path: path.as_ref().display().to_string(),
            message: message.to_string(),
        }
    }
}
