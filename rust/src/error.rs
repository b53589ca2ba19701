//! The one error type of the core. The Python glue converts it in one place.

use std::fmt;
use std::io;
use std::path::Path;

#[derive(Debug)]
pub enum Error {
    /// A WAL block failed its checks (or a torn tail where none is allowed).
    Corruption {
        path: String,
        offset: u64,
        reason: String,
    },
    /// A file's size or blake3 digest differs from its manifest entry.
    ChecksumMismatch {
        path: String,
        expected: String,
        actual: String,
    },
    /// A file changed size (or was rewritten) while it was hashed or copied,
    /// so no digest of it can be trusted.
    FileChanged {
        path: String,
        expected_size: u64,
        actual_size: u64,
    },
    /// An argument of the right type with a value that cannot be taken.
    InvalidArgument(String),
    /// Bytes from a Pegasus-protocol peer that are not a valid frame or message.
    Protocol {
        offset: u64,
        reason: String,
    },
    Io(io::Error),
}

pub type Result<T> = std::result::Result<T, Error>;

/// The payload of an [`Error::io_at`] I/O error: the path and the error as the OS gave it.
#[derive(Debug)]
pub struct PathError {
    pub path: String,
    pub source: io::Error,
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.source)
    }
}

impl std::error::Error for PathError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

impl Error {
    pub fn corruption(path: &Path, offset: u64, reason: impl Into<String>) -> Self {
        Error::Corruption {
            path: path.to_string_lossy().into_owned(),
            offset,
            reason: reason.into(),
        }
    }

    pub fn file_changed(path: &Path, expected_size: u64, actual_size: u64) -> Self {
        Error::FileChanged {
            path: path.to_string_lossy().into_owned(),
            expected_size,
            actual_size,
        }
    }

    /// An I/O error whose message names the path, keeping its kind and OS error code (and so
    /// the Python exception class, ``errno`` and ``filename`` it maps to).
    pub fn io_at(path: &Path, err: io::Error) -> Self {
        Error::Io(io::Error::new(
            err.kind(),
            PathError {
                path: path.to_string_lossy().into_owned(),
                source: err,
            },
        ))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Corruption {
                path,
                offset,
                reason,
            } => write!(f, "WAL corruption in {path} at offset {offset}: {reason}"),
            Error::ChecksumMismatch {
                path,
                expected,
                actual,
            } => write!(
                f,
                "checksum mismatch for {path}: expected {expected}, got {actual}"
            ),
            Error::FileChanged {
                path,
                expected_size,
                actual_size,
            } => write!(
                f,
                "{path} changed while it was read: {expected_size} bytes at open, {actual_size} read"
            ),
            Error::InvalidArgument(msg) => f.write_str(msg),
            Error::Protocol { offset, reason } => {
                write!(f, "Pegasus protocol error at offset {offset}: {reason}")
            }
            Error::Io(err) => err.fmt(f),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io(err) => Some(err),
            _ => None,
        }
    }
}

impl From<io::Error> for Error {
    fn from(err: io::Error) -> Self {
        Error::Io(err)
    }
}
