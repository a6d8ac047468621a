//! The engine's error type.
//!
//! Errors come in two kinds, kept apart so that a server can map them:
//! [`Error::is_invalid_input`] is true for what the caller sent wrong (bad line
//! protocol, a type conflict, an unknown column role); everything else is the
//! engine's or the machine's trouble (I/O, a corrupted WAL, a bug).

use std::path::PathBuf;

use crate::line_protocol::ParseError;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A line-protocol request did not parse; nothing of it was written.
    #[error("invalid line protocol: {0}")]
    LineProtocol(#[from] ParseError),

    /// A write names a column with a type other than the one the table has.
    /// For line protocol, `line` is the first line (from 1) that writes the
    /// column with the conflicting type.
    #[error(
        "type conflict in table {table:?}{}: column {column:?} is {existing}, the write has {incoming}",
        on_line(*.line)
    )]
    TypeConflict {
        table: String,
        column: String,
        existing: String,
        incoming: String,
        line: Option<usize>,
    },

    /// A write that is malformed in some other way (missing time column,
    /// unsupported Arrow type, a bad database name, ...).
    #[error("invalid write: {0}")]
    InvalidWrite(String),

    /// A write holds a row older than its database's retention period
    /// keeps; nothing of the write was stored. For line protocol, `line` is
    /// the first line (from 1) with such a row.
    #[error(
        "write to table {table:?} of database {database:?} has a row at {}{}, older than \
         the database's retention period of {period} keeps (rows before {}); nothing of the \
         write was stored",
        rfc3339(*.time),
        on_line(*.line),
        rfc3339(*.horizon)
    )]
    BeyondRetention {
        database: String,
        table: String,
        /// The period as written back: `30d`, `12h`.
        period: String,
        /// The oldest row's time and the horizon, ns since the epoch.
        time: i64,
        horizon: i64,
        line: Option<usize>,
    },

    /// A request or statement that is wrong in a way its message explains.
    #[error("{0}")]
    InvalidInput(String),

    /// A database (or another named thing) that does not exist.
    #[error("{0}")]
    NotFound(String),

    /// A database (or another named thing) that exists already.
    #[error("{0}")]
    AlreadyExists(String),

    /// The memtable is over its memory budget and flushing did not free room in time.
    #[error(
        "resource exhausted: the memtable holds {used_bytes} bytes, over its budget of \
         {budget_bytes} bytes, and flushing did not free room within {waited_ms} ms; \
         retry later or raise Options::memtable_budget_bytes"
    )]
    ResourceExhausted {
        used_bytes: usize,
        budget_bytes: usize,
        waited_ms: u128,
    },

    /// Another process holds the data directory open.
    #[error(
        "data directory {path} is in use by another process ({holder}); \
         stop it or open another directory"
    )]
    Locked { path: PathBuf, holder: String },

    /// A WAL record failed its checksum or framing somewhere other than the
    /// torn tail of the last segment.
    #[error("WAL corrupted in {path} at byte offset {offset}: {reason}")]
    WalCorrupted {
        path: PathBuf,
        offset: u64,
        reason: String,
    },

    /// The manifest could not be read.
    #[error("manifest {path} is unreadable: {reason}")]
    ManifestCorrupted { path: PathBuf, reason: String },

    /// The engine is a read-only query replica.
    #[error(
        "this node is a read-only query replica of {store}: it refuses writes, deletes and \
         schema changes; send them to the writer node"
    )]
    ReadOnly { store: String },

    /// Another writer recorded this version of a bucket's manifest first.
    #[error(
        "another writer recorded version {version} of the manifest in {store} first: two \
         writers share one bucket prefix. Give each writer its own prefix (node id); this \
         engine records no more changes there until it is reopened"
    )]
    ManifestConflict { store: String, version: u64 },

    /// The WAL failed earlier (for example the disk filled up); the engine
    /// refuses further writes until it is reopened.
    #[error("the WAL failed earlier and refuses writes until the engine is reopened: {0}")]
    WalPoisoned(String),

    #[error("the engine is closed")]
    Closed,

    #[error("I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error(transparent)]
    Arrow(#[from] arrow::error::ArrowError),

    #[error(transparent)]
    Parquet(#[from] parquet::errors::ParquetError),

    #[error(transparent)]
    ObjectStore(#[from] object_store::Error),

    #[error(transparent)]
    DataFusion(#[from] datafusion::error::DataFusionError),

    #[error("Delta Lake: {0}")]
    Delta(#[from] Box<deltalake_core::DeltaTableError>),

    /// An invariant of the engine did not hold: a bug.
    #[error("internal error (a bug in Ingot): {0}")]
    Internal(String),
}

/// An RFC 3339 rendering of a time in nanoseconds, for messages.
pub(crate) fn rfc3339(ns: i64) -> String {
    chrono::DateTime::from_timestamp_nanos(ns).to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

fn on_line(line: Option<usize>) -> String {
    line.map(|n| format!(" on line {n}")).unwrap_or_default()
}

impl Error {
    /// True when the caller's input is at fault (HTTP 400 / INVALID_ARGUMENT),
    /// false when the engine or the machine is.
    pub fn is_invalid_input(&self) -> bool {
        matches!(
            self,
            Error::LineProtocol(_)
                | Error::TypeConflict { .. }
                | Error::InvalidWrite(_)
                | Error::BeyondRetention { .. }
                | Error::InvalidInput(_)
                | Error::NotFound(_)
                | Error::AlreadyExists(_)
        )
    }

    /// True when the disk (or a quota) is full: HTTP 507 / RESOURCE_EXHAUSTED.
    /// Nothing of the failed write was kept, and writes succeed again once
    /// space is freed.
    pub fn is_storage_full(&self) -> bool {
        match self {
            Error::Io { source, .. } => {
                source.kind() == std::io::ErrorKind::StorageFull
                    || source.kind() == std::io::ErrorKind::QuotaExceeded
            }
            _ => false,
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}
