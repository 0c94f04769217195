//! The crate's one error type.

use std::path::PathBuf;

/// Everything the engine can fail with. Each variant's doc says what the caller should do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An I/O error on a named file. The operation did not take effect in memory; retrying
    /// may work if the cause (disk full, permissions) is fixed.
    #[error("I/O error on {path}: {source}")]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Writes are refused; reads go on. After an fsync failure until a restart (a retried
    /// fsync can report success for data that never reached the disk); after a write the OS
    /// refused (a full disk) until the engine's retry of it succeeds. The text says which.
    #[error("writes refused: {0}")]
    WritesRefused(String),
    /// The configuration cannot be used; the text says which field and why. Fix the config.
    #[error("invalid config: {0}")]
    Config(String),
    /// A database index outside `0..databases`: a caller bug.
    #[error("invalid database index {db} (databases: {databases})")]
    InvalidDb {
        /// The index asked for.
        db: usize,
        /// How many databases the engine has.
        databases: usize,
    },
    /// A key longer than `max_key_bytes`. Refuse the command.
    #[error("key of {got} bytes exceeds the limit of {max} bytes")]
    KeyTooLarge {
        /// The key's length.
        got: usize,
        /// The configured maximum.
        max: usize,
    },
    /// A value too large for the on-disk format (4 GiB per record). Refuse the command.
    #[error("value of {got} bytes exceeds the limit of {max} bytes")]
    ValueTooLarge {
        /// The value's length.
        got: usize,
        /// The maximum.
        max: usize,
    },
    /// A write to a ConstTree database whose value is not the database's fixed size. Refuse
    /// the command (nothing was written).
    #[error("value is {got} bytes; database {db} is a ConstTree of {expected}-byte values")]
    ValueSize {
        /// The database.
        db: usize,
        /// The tree's fixed value size.
        expected: usize,
        /// The value's size.
        got: usize,
    },
    /// A record or hint on disk failed its check and could not be used.
    #[error("corrupt data in {file} at byte {offset}: {reason}")]
    Corrupt {
        /// The file.
        file: PathBuf,
        /// Byte offset of the bad record.
        offset: u64,
        /// What was wrong.
        reason: &'static str,
    },
    /// Another engine (this process or another) has the data directory open. Close it first;
    /// two engines appending to the same logs would corrupt them.
    #[error("data directory {0} is in use by another engine (lock file held)")]
    DirInUse(PathBuf),
    /// The master encryption key is not the one this file was written with. Start with the
    /// right key file (or rotate the folder's key offline first).
    #[error("wrong encryption key for {file} (its key check does not match)")]
    WrongKey {
        /// The tag file (or folder marker) whose key check failed.
        file: PathBuf,
    },
    /// An encrypted page failed its authentication: damaged, torn or tampered with. Its bytes
    /// are never returned; restore the file from a backup.
    #[error("encrypted page {page} of {file} failed authentication (damaged or tampered)")]
    Tampered {
        /// The data file.
        file: PathBuf,
        /// The page number (4096-byte pages from the start of the file).
        page: u64,
    },
    /// The engine is closing or closed.
    #[error("engine is closed")]
    Closed,
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Error {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}
