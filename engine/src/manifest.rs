//! The manifest: the one record of what is persisted. It names every live
//! Parquet file, holds the table schemas, and says up to which WAL sequence
//! number everything is in those files.
//!
//! It is replaced whole and atomically: written to `MANIFEST.tmp`, fsynced,
//! renamed over `MANIFEST`, and the directory fsynced. A crash leaves the old
//! manifest or the new one. Layout (see `engine/docs/format.md`):
//!
//! ```text
//! "INGOTMAN" (8 bytes) | version u32 LE (= 1) | payload_len u64 LE | crc32c(payload) u32 LE | payload (JSON)
//! ```

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::catalog::CatalogSnapshot;
use crate::delete::Tombstone;
use crate::error::{Error, Result};
use crate::wal::sync_dir;

const MAGIC: &[u8; 8] = b"INGOTMAN";
const VERSION: u32 = 1;
const HEADER_LEN: usize = 24;
pub(crate) const FILE_NAME: &str = "MANIFEST";

/// One persisted Parquet file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileMeta {
    pub id: u64,
    pub database: String,
    pub table: String,
    /// Path inside the object store.
    pub path: String,
    /// Start of the time partition (ns since the epoch).
    pub partition: i64,
    pub min_time: i64,
    pub max_time: i64,
    pub rows: u64,
    pub bytes: u64,
    /// Every row in the file was written at or below this WAL sequence number;
    /// a file with a higher `max_seq` holds later writes.
    pub max_seq: u64,
    /// The tag columns the rows are sorted by, before `time`; `None` in
    /// manifests written before Ingot recorded it.
    #[serde(default)]
    pub sort_key: Option<Vec<String>>,
    /// Smallest and largest value of every tag column that has a value in
    /// the file (a tag missing here is null in every row); `None` in manifests
    /// written before Ingot recorded it. Scans prune files with it.
    #[serde(default)]
    pub tag_ranges: Option<BTreeMap<String, (String, String)>>,
    /// 0 for a file a flush wrote; 1 for the merge of flushed files; 2 for a
    /// whole partition merged into one file.
    #[serde(default)]
    pub level: u8,
    /// When the file was recorded (ns since the epoch); 0 in manifests
    /// written before Ingot recorded it.
    #[serde(default)]
    pub written_at: i64,
    /// The sequence number of the newest delete applied to the file's rows
    /// when it was written (0: none); older deletes no longer apply to it.
    #[serde(default)]
    pub deletes_applied: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Manifest {
    /// Every WAL record up to this sequence number is in the files.
    pub persisted_seq: u64,
    pub next_file_id: u64,
    pub catalog: CatalogSnapshot,
    pub files: Vec<FileMeta>,
    /// Deletes that may still remove rows of the files, or of WAL records
    /// after `persisted_seq`; absent in manifests written before deletes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tombstones: Vec<Tombstone>,
}

impl Manifest {
    /// Reads `{dir}/MANIFEST`, or an empty manifest if there is none yet.
    pub fn load(dir: &Path) -> Result<Self> {
        let path = dir.join(FILE_NAME);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Manifest {
                    next_file_id: 1,
                    ..Default::default()
                });
            }
            Err(e) => return Err(Error::io(&path, e)),
        };
        let bad = |reason: String| Error::ManifestCorrupted {
            path: path.clone(),
            reason,
        };
        if bytes.len() < HEADER_LEN || &bytes[..8] != MAGIC {
            return Err(bad("not an Ingot manifest (bad magic or too short)".into()));
        }
        let version = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
        if version != VERSION {
            return Err(bad(format!("unsupported manifest version {version}")));
        }
        let len = u64::from_le_bytes(bytes[12..20].try_into().expect("8 bytes"));
        let crc = u32::from_le_bytes(bytes[20..24].try_into().expect("4 bytes"));
        let payload = &bytes[HEADER_LEN..];
        if payload.len() as u64 != len {
            return Err(bad(format!(
                "payload is {} bytes, header says {len}",
                payload.len()
            )));
        }
        if crc32c::crc32c(payload) != crc {
            return Err(bad("checksum mismatch".into()));
        }
        serde_json::from_slice(payload).map_err(|e| bad(e.to_string()))
    }

    /// Replaces `{dir}/MANIFEST` atomically and durably.
    pub fn store(&self, dir: &Path) -> Result<()> {
        let payload = serde_json::to_vec(self)
            .map_err(|e| Error::Internal(format!("manifest does not serialize: {e}")))?;
        let mut bytes = Vec::with_capacity(HEADER_LEN + payload.len());
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(&VERSION.to_le_bytes());
        bytes.extend_from_slice(&(payload.len() as u64).to_le_bytes());
        bytes.extend_from_slice(&crc32c::crc32c(&payload).to_le_bytes());
        bytes.extend_from_slice(&payload);
        let tmp = dir.join(format!("{FILE_NAME}.tmp"));
        let path = dir.join(FILE_NAME);
        let mut f = fs::File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
        f.write_all(&bytes)
            .and_then(|_| f.sync_all())
            .map_err(|e| Error::io(&tmp, e))?;
        fs::rename(&tmp, &path).map_err(|e| Error::io(&path, e))?;
        sync_dir(dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_detects_damage() {
        let dir = tempfile::tempdir().unwrap();
        let empty = Manifest::load(dir.path()).unwrap();
        assert_eq!(empty.next_file_id, 1);
        let m = Manifest {
            persisted_seq: 42,
            next_file_id: 3,
            ..Default::default()
        };
        m.store(dir.path()).unwrap();
        assert_eq!(Manifest::load(dir.path()).unwrap().persisted_seq, 42);
        let path = dir.path().join(FILE_NAME);
        let mut bytes = fs::read(&path).unwrap();
        let last = bytes.len() - 2;
        bytes[last] ^= 1;
        fs::write(&path, bytes).unwrap();
        let err = Manifest::load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("checksum"), "{err}");
    }
}
