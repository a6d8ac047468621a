//! The write-ahead log: numbered segment files of checksummed records.
//!
//! The WAL knows nothing of tables or Arrow; it stores opaque payloads, each
//! with a sequence number, and gives them back in order at replay. The byte
//! layout is drawn in `engine/docs/format.md`:
//!
//! ```text
//! segment = header record*
//! header  = "INGOTWAL" (8 bytes) | version u32 LE (= 1) | first_seq u64 LE
//! record  = body_len u32 LE | crc32c(body) u32 LE | body
//! body    = seq u64 LE | payload
//! ```
//!
//! Segments are named `{first_seq:020}.wal`. A torn record at the tail of the
//! last segment (a crash mid-write) is truncated with a warning; a bad record
//! anywhere else is [`Error::WalCorrupted`], never skipped.

use std::fs::{self, File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tracing::{info, warn};

use crate::error::{Error, Result};

pub(crate) const MAGIC: &[u8; 8] = b"INGOTWAL";
pub(crate) const VERSION: u32 = 1;
pub(crate) const HEADER_LEN: usize = 20;
pub(crate) const FRAME_LEN: usize = 8;
const SEQ_LEN: usize = 8;

fn segment_path(dir: &Path, first_seq: u64) -> PathBuf {
    dir.join(format!("{first_seq:020}.wal"))
}

/// The segments in `dir`, oldest first, as (first_seq, path).
pub(crate) fn segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let mut out = Vec::new();
    let entries = fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    for entry in entries {
        let path = entry.map_err(|e| Error::io(dir, e))?.path();
        let Some(stem) = path
            .extension()
            .filter(|e| *e == "wal")
            .and(path.file_stem())
            .and_then(|s| s.to_str())
        else {
            continue;
        };
        if let Ok(seq) = stem.parse::<u64>() {
            out.push((seq, path));
        }
    }
    out.sort();
    Ok(out)
}

pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(dir, e))
}

/// Appends records to the newest segment. Owned by one thread.
pub(crate) struct WalWriter {
    dir: PathBuf,
    path: PathBuf,
    file: File,
    /// Bytes of whole records (and the header) in the segment.
    size: u64,
    next_seq: u64,
    /// `next_seq` as of the last successful [`WalWriter::write_out`].
    written_seq: u64,
    buf: Vec<u8>,
    /// A failed write could not be undone: the segment's end is unknown.
    broken: bool,
    /// Test hook: while set, writes fail as on a full disk.
    fault: Option<Arc<AtomicBool>>,
}

impl WalWriter {
    /// Starts a new segment whose first record will get `next_seq`.
    #[cfg(test)]
    pub fn create(dir: &Path, next_seq: u64) -> Result<Self> {
        Self::create_with(dir, next_seq, None)
    }

    /// Starts a new segment whose first record will get `next_seq`; writes
    /// fail while `fault` is set (a test hook).
    pub fn create_with(dir: &Path, next_seq: u64, fault: Option<Arc<AtomicBool>>) -> Result<Self> {
        let path = segment_path(dir, next_seq);
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        let mut header = Vec::with_capacity(HEADER_LEN);
        header.extend_from_slice(MAGIC);
        header.extend_from_slice(&VERSION.to_le_bytes());
        header.extend_from_slice(&next_seq.to_le_bytes());
        file.write_all(&header)
            .and_then(|_| file.sync_all())
            .map_err(|e| Error::io(&path, e))?;
        sync_dir(dir)?;
        Ok(Self {
            dir: dir.to_path_buf(),
            path,
            file,
            size: HEADER_LEN as u64,
            next_seq,
            written_seq: next_seq,
            buf: Vec::new(),
            broken: false,
            fault,
        })
    }

    /// Frames `payload` into the write buffer and returns its sequence number.
    /// Nothing reaches the file until [`WalWriter::write_out`].
    pub fn append(&mut self, payload: &[u8]) -> Result<u64> {
        let body_len = u32::try_from(SEQ_LEN + payload.len())
            .map_err(|_| Error::InvalidWrite("a single write is over 4 GiB".into()))?;
        let seq = self.next_seq;
        let seq_bytes = seq.to_le_bytes();
        let crc = crc32c::crc32c_append(crc32c::crc32c(&seq_bytes), payload);
        self.buf.extend_from_slice(&body_len.to_le_bytes());
        self.buf.extend_from_slice(&crc.to_le_bytes());
        self.buf.extend_from_slice(&seq_bytes);
        self.buf.extend_from_slice(payload);
        self.next_seq += 1;
        Ok(seq)
    }

    /// Writes the buffered records to the segment (one `write` call).
    ///
    /// If the write fails (a full disk, say), the records are dropped: the
    /// segment is cut back to its last whole record and their sequence
    /// numbers are handed out again, so the log stays as if they had never
    /// been appended and later writes can go on once space is back. If even
    /// that fails, the writer is [`broken`](WalWriter::is_broken).
    pub fn write_out(&mut self) -> Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        match self.write_buffer() {
            Ok(()) => {
                self.size += self.buf.len() as u64;
                self.buf.clear();
                self.written_seq = self.next_seq;
                Ok(())
            }
            Err(e) => {
                self.buf.clear();
                self.next_seq = self.written_seq;
                let undone = self
                    .file
                    .set_len(self.size)
                    .and_then(|_| self.file.seek(SeekFrom::Start(self.size)));
                if let Err(undo) = undone {
                    warn!(path = %self.path.display(), error = %undo, "cannot cut a failed WAL write back");
                    self.broken = true;
                }
                Err(Error::io(&self.path, e))
            }
        }
    }

    fn write_buffer(&mut self) -> std::io::Result<()> {
        if self
            .fault
            .as_ref()
            .is_some_and(|f| f.load(Ordering::Acquire))
        {
            // Part of it reaches the file, as when a disk fills mid-write.
            self.file.write_all(&self.buf[..self.buf.len() / 2])?;
            return Err(std::io::Error::new(
                std::io::ErrorKind::StorageFull,
                "no space left on device (injected)",
            ));
        }
        self.file.write_all(&self.buf)
    }

    /// A failed write left the segment in a state it could not undo.
    pub fn is_broken(&self) -> bool {
        self.broken
    }

    /// Makes everything written so far durable.
    pub fn sync(&mut self) -> Result<()> {
        self.file.sync_data().map_err(|e| Error::io(&self.path, e))
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// Closes this segment (synced) and starts the next.
    pub fn rotate(&mut self) -> Result<()> {
        self.write_out()?;
        self.sync()?;
        *self = WalWriter::create_with(&self.dir, self.next_seq, self.fault.clone())?;
        Ok(())
    }
}

/// Replays every record of every segment in order, calling `apply(seq,
/// payload)`. Returns the highest sequence number seen (or `floor` when the
/// log is empty). A torn tail of the last segment is truncated.
pub(crate) fn replay(
    dir: &Path,
    floor: u64,
    mut apply: impl FnMut(u64, &[u8]) -> Result<()>,
) -> Result<u64> {
    let segs = segments(dir)?;
    let mut last_seq = floor;
    for (i, (first_seq, path)) in segs.iter().enumerate() {
        let is_last = i + 1 == segs.len();
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
        if len == 0 {
            if is_last {
                warn!(path = %path.display(), "empty WAL segment removed");
                fs::remove_file(path).map_err(|e| Error::io(path, e))?;
                continue;
            }
            return Err(corrupted(path, 0, "segment is empty".into()));
        }
        // SAFETY: the segment is not modified while mapped: the engine holds
        // the directory lock and replay runs before any writer starts.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
        let bytes: &[u8] = &map;
        if bytes.len() < HEADER_LEN {
            if is_last {
                warn!(path = %path.display(), "WAL segment with a torn header removed");
                drop(map);
                fs::remove_file(path).map_err(|e| Error::io(path, e))?;
                continue;
            }
            return Err(corrupted(path, 0, "segment header is cut short".into()));
        }
        if &bytes[..8] != MAGIC {
            return Err(corrupted(
                path,
                0,
                "not an Ingot WAL segment (bad magic)".into(),
            ));
        }
        let version = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
        if version != VERSION {
            return Err(corrupted(
                path,
                8,
                format!("unsupported WAL version {version}"),
            ));
        }
        let header_seq = u64::from_le_bytes(bytes[12..20].try_into().expect("8 bytes"));
        if header_seq != *first_seq {
            return Err(corrupted(
                path,
                12,
                format!("header says first sequence {header_seq}, file name says {first_seq}"),
            ));
        }
        let mut pos = HEADER_LEN;
        let mut expected = *first_seq;
        while pos < bytes.len() {
            match read_record(bytes, pos) {
                Ok((seq, payload, next)) => {
                    if seq != expected {
                        return Err(corrupted(
                            path,
                            pos as u64,
                            format!("record has sequence {seq}, expected {expected}"),
                        ));
                    }
                    if seq > floor {
                        apply(seq, payload)?;
                    }
                    last_seq = last_seq.max(seq);
                    expected += 1;
                    pos = next;
                }
                Err(reason) => {
                    let torn = is_last
                        && (reason.past_end || is_zeros(&bytes[pos..]) || {
                            // A bad checksum on the final record of the last segment is
                            // a write cut short by a crash.
                            reason.record_end >= bytes.len()
                        });
                    if !torn {
                        return Err(corrupted(path, pos as u64, reason.message));
                    }
                    warn!(
                        path = %path.display(),
                        offset = pos,
                        dropped_bytes = bytes.len() - pos,
                        reason = %reason.message,
                        "torn WAL record at the tail truncated"
                    );
                    drop(map);
                    let f = OpenOptions::new()
                        .write(true)
                        .open(path)
                        .map_err(|e| Error::io(path, e))?;
                    f.set_len(pos as u64)
                        .and_then(|_| f.sync_all())
                        .map_err(|e| Error::io(path, e))?;
                    break;
                }
            }
        }
        info!(path = %path.display(), "WAL segment replayed");
    }
    Ok(last_seq)
}

struct BadRecord {
    message: String,
    /// The record claims to extend past the end of the file.
    past_end: bool,
    /// Where the record would end.
    record_end: usize,
}

fn read_record(bytes: &[u8], pos: usize) -> std::result::Result<(u64, &[u8], usize), BadRecord> {
    let rest = bytes.len() - pos;
    if rest < FRAME_LEN + SEQ_LEN {
        return Err(BadRecord {
            message: format!("record header cut short ({rest} bytes left)"),
            past_end: true,
            record_end: bytes.len(),
        });
    }
    let body_len = u32::from_le_bytes(bytes[pos..pos + 4].try_into().expect("4 bytes")) as usize;
    let crc = u32::from_le_bytes(bytes[pos + 4..pos + 8].try_into().expect("4 bytes"));
    let body_start = pos + FRAME_LEN;
    let end = body_start.saturating_add(body_len);
    if body_len < SEQ_LEN {
        return Err(BadRecord {
            message: format!("record length {body_len} is too small"),
            past_end: false,
            record_end: end,
        });
    }
    if end > bytes.len() {
        return Err(BadRecord {
            message: format!("record of {body_len} bytes runs past the end of the segment"),
            past_end: true,
            record_end: end,
        });
    }
    let body = &bytes[body_start..end];
    let actual = crc32c::crc32c(body);
    if actual != crc {
        return Err(BadRecord {
            message: format!("checksum mismatch (stored {crc:#010x}, computed {actual:#010x})"),
            past_end: false,
            record_end: end,
        });
    }
    let seq = u64::from_le_bytes(body[..SEQ_LEN].try_into().expect("8 bytes"));
    Ok((seq, &body[SEQ_LEN..], end))
}

fn is_zeros(b: &[u8]) -> bool {
    b.iter().all(|&x| x == 0)
}

fn corrupted(path: &Path, offset: u64, reason: String) -> Error {
    Error::WalCorrupted {
        path: path.to_path_buf(),
        offset,
        reason,
    }
}

/// Deletes the segments whose records are all at or below `persisted_seq`.
/// The newest segment is always kept.
pub(crate) fn retire(dir: &Path, persisted_seq: u64) -> Result<usize> {
    let segs = segments(dir)?;
    let mut removed = 0;
    for pair in segs.windows(2) {
        let (_, path) = &pair[0];
        let (next_first, _) = pair[1];
        if next_first <= persisted_seq.saturating_add(1) {
            fs::remove_file(path).map_err(|e| Error::io(path, e))?;
            removed += 1;
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(dir: &Path, floor: u64) -> Result<Vec<(u64, Vec<u8>)>> {
        let mut out = Vec::new();
        replay(dir, floor, |seq, p| {
            out.push((seq, p.to_vec()));
            Ok(())
        })?;
        Ok(out)
    }

    fn write(dir: &Path, first: u64, payloads: &[&[u8]]) -> PathBuf {
        let mut w = WalWriter::create(dir, first).unwrap();
        for p in payloads {
            w.append(p).unwrap();
        }
        w.write_out().unwrap();
        w.sync().unwrap();
        w.path.clone()
    }

    #[test]
    fn replays_in_order_across_segments_and_honours_floor() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), 1, &[b"a", b"b"]);
        write(dir.path(), 3, &[b"c"]);
        let all = collect(dir.path(), 0).unwrap();
        assert_eq!(all.iter().map(|r| r.0).collect::<Vec<_>>(), [1, 2, 3]);
        assert_eq!(all[2].1, b"c");
        let after = collect(dir.path(), 2).unwrap();
        assert_eq!(after.len(), 1);
    }

    #[test]
    fn torn_tail_is_truncated() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), 1, &[b"first", b"second-record"]);
        let full = fs::metadata(&path).unwrap().len();
        // Cut the last record in half.
        let f = OpenOptions::new().write(true).open(&path).unwrap();
        f.set_len(full - 5).unwrap();
        let got = collect(dir.path(), 0).unwrap();
        assert_eq!(got, vec![(1, b"first".to_vec())]);
        let first_len = (HEADER_LEN + FRAME_LEN + SEQ_LEN + 5) as u64;
        assert_eq!(fs::metadata(&path).unwrap().len(), first_len);
        // Replaying again is clean.
        assert_eq!(collect(dir.path(), 0).unwrap().len(), 1);
    }

    #[test]
    fn corruption_before_the_tail_names_file_and_offset() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), 1, &[b"first", b"second"]);
        write(dir.path(), 3, &[b"third"]);
        let mut bytes = fs::read(&path).unwrap();
        let off = HEADER_LEN + FRAME_LEN + SEQ_LEN; // first payload byte
        bytes[off] ^= 0xff;
        fs::write(&path, &bytes).unwrap();
        let err = collect(dir.path(), 0).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains(&path.display().to_string()), "{msg}");
        assert!(msg.contains(&format!("offset {HEADER_LEN}")), "{msg}");
        assert!(msg.contains("checksum"), "{msg}");
    }

    #[test]
    fn bad_checksum_mid_last_segment_is_an_error_not_a_truncation() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), 1, &[b"first", b"second"]);
        let mut bytes = fs::read(&path).unwrap();
        bytes[HEADER_LEN + FRAME_LEN + SEQ_LEN] ^= 0xff;
        fs::write(&path, &bytes).unwrap();
        assert!(matches!(
            collect(dir.path(), 0),
            Err(Error::WalCorrupted { .. })
        ));
    }

    #[test]
    fn zero_filled_tail_is_torn() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), 1, &[b"x"]);
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(&[0u8; 100]).unwrap();
        assert_eq!(collect(dir.path(), 0).unwrap().len(), 1);
    }

    #[test]
    fn retire_keeps_the_newest_and_unpersisted_segments() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), 1, &[b"a", b"b"]);
        write(dir.path(), 3, &[b"c", b"d"]);
        write(dir.path(), 5, &[b"e"]);
        assert_eq!(retire(dir.path(), 3).unwrap(), 1);
        assert_eq!(segments(dir.path()).unwrap().len(), 2);
        assert_eq!(retire(dir.path(), 100).unwrap(), 1);
        let left = segments(dir.path()).unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].0, 5);
    }
}
