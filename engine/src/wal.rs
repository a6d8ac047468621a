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
//!
//! A segment whose records are all persisted is kept for reuse (renamed
//! `{first_seq:020}.free`, at most `keep_free` of them) rather than deleted,
//! and the next segment is written over it, as PostgreSQL and RocksDB
//! recycle their logs. Its pages are then still in the page cache and its
//! blocks still allocated, so a write copies into resident pages and an
//! `fdatasync` has no file size to update; a new file takes fresh pages for
//! every byte, which on a virtual machine whose host reclaims freed memory
//! cost more than the copy. A reused segment holds the bytes of its earlier
//! use past its new records. Those records have sequence numbers below the
//! segment's first, or are cut at arbitrary offsets, so replay reads them as
//! the end of the log: in the last segment, a bad record with no record of
//! the segment's own sequence after it is the tail. A segment is cut to its
//! records when it is closed, so that only the last one has such a tail.

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

fn free_path(dir: &Path, first_seq: u64) -> PathBuf {
    dir.join(format!("{first_seq:020}.free"))
}

/// The files in `dir` with extension `ext` and a number for a name, in
/// order, as (number, path).
fn numbered(dir: &Path, ext: &str) -> Result<Vec<(u64, PathBuf)>> {
    let mut out = Vec::new();
    let entries = fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    for entry in entries {
        let path = entry.map_err(|e| Error::io(dir, e))?.path();
        let Some(stem) = path
            .extension()
            .filter(|e| *e == ext)
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

/// The segments in `dir`, oldest first, as (first_seq, path).
pub(crate) fn segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    numbered(dir, "wal")
}

/// The retired segments kept for reuse in `dir`.
fn free_segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    numbered(dir, "free")
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
    /// Length of the file when it was opened: a reused segment holds its
    /// earlier bytes past `size` until it is closed.
    reused_len: u64,
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

    /// Starts a new segment whose first record will get `next_seq`, over a
    /// retired one if `dir` keeps any; writes fail while `fault` is set (a
    /// test hook).
    pub fn create_with(dir: &Path, next_seq: u64, fault: Option<Arc<AtomicBool>>) -> Result<Self> {
        let path = segment_path(dir, next_seq);
        let mut header = Vec::with_capacity(HEADER_LEN);
        header.extend_from_slice(MAGIC);
        header.extend_from_slice(&VERSION.to_le_bytes());
        header.extend_from_slice(&next_seq.to_le_bytes());
        let (file, reused_len) = match free_segments(dir)?.pop() {
            Some((_, free)) => {
                // The header names the new first sequence before the file
                // takes the segment's name: a crash in between leaves a
                // free file, never a segment whose header and name differ.
                let mut file = OpenOptions::new()
                    .write(true)
                    .open(&free)
                    .map_err(|e| Error::io(&free, e))?;
                let len = file.metadata().map_err(|e| Error::io(&free, e))?.len();
                file.write_all(&header)
                    .and_then(|_| file.sync_data())
                    .map_err(|e| Error::io(&free, e))?;
                fs::rename(&free, &path).map_err(|e| Error::io(&free, e))?;
                (file, len)
            }
            None => {
                let mut file = OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .open(&path)
                    .map_err(|e| Error::io(&path, e))?;
                file.write_all(&header)
                    .and_then(|_| file.sync_all())
                    .map_err(|e| Error::io(&path, e))?;
                (file, HEADER_LEN as u64)
            }
        };
        sync_dir(dir)?;
        Ok(Self {
            dir: dir.to_path_buf(),
            path,
            file,
            size: HEADER_LEN as u64,
            reused_len,
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

    /// Cuts a reused segment's earlier bytes past the records written, and
    /// makes the segment durable. Replay then finds them in no segment but
    /// the last.
    pub fn finish(&mut self) -> Result<()> {
        self.write_out()?;
        if self.reused_len > self.size {
            self.file
                .set_len(self.size)
                .and_then(|_| self.file.sync_all())
                .map_err(|e| Error::io(&self.path, e))?;
            self.reused_len = self.size;
            return Ok(());
        }
        self.sync()
    }

    /// Closes this segment (synced) and starts the next.
    pub fn rotate(&mut self) -> Result<()> {
        self.finish()?;
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
            let message = match read_record(bytes, pos) {
                Ok((seq, payload, next)) if seq == expected => {
                    if seq > floor {
                        apply(seq, payload)?;
                    }
                    last_seq = last_seq.max(seq);
                    expected += 1;
                    pos = next;
                    continue;
                }
                // A whole record of the segment's earlier use.
                Ok((seq, ..)) if seq < *first_seq && is_last => {
                    format!("record has sequence {seq}, older than the segment")
                }
                Ok((seq, ..)) => {
                    return Err(corrupted(
                        path,
                        pos as u64,
                        format!("record has sequence {seq}, expected {expected}"),
                    ));
                }
                Err(reason) => reason,
            };
            // In the last segment, past the records a crash let through: a
            // write cut short, zeros, or a reused segment's earlier bytes.
            // Any record of this segment's own sequence past it would be
            // acknowledged data behind a damaged record: never dropped.
            if !is_last || record_follows(bytes, pos + 1, expected) {
                return Err(corrupted(path, pos as u64, message));
            }
            warn!(
                path = %path.display(),
                offset = pos,
                dropped_bytes = bytes.len() - pos,
                reason = %message,
                "WAL tail past the last whole record cut (a write cut short, or a reused segment's earlier bytes)"
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
        info!(path = %path.display(), "WAL segment replayed");
    }
    Ok(last_seq)
}

/// Whether a whole record with a sequence number from `expected` on starts
/// anywhere in `bytes` at or after `from`. Records are not aligned, so
/// every offset is tried; the sequence number is checked before the
/// checksum, so that other bytes rarely cost one.
fn record_follows(bytes: &[u8], from: usize, expected: u64) -> bool {
    let last_start = bytes.len().saturating_sub(FRAME_LEN + SEQ_LEN);
    (from..=last_start).any(|p| {
        let seq = u64::from_le_bytes(
            bytes[p + FRAME_LEN..p + FRAME_LEN + SEQ_LEN]
                .try_into()
                .expect("8 bytes"),
        );
        seq.wrapping_sub(expected) <= u64::from(u32::MAX)
            && matches!(read_record(bytes, p), Ok((s, ..)) if s >= expected)
    })
}

/// The record at `pos`: its sequence number, payload and end; or why it is
/// not a whole record.
fn read_record(bytes: &[u8], pos: usize) -> std::result::Result<(u64, &[u8], usize), String> {
    let rest = bytes.len() - pos;
    if rest < FRAME_LEN + SEQ_LEN {
        return Err(format!("record header cut short ({rest} bytes left)"));
    }
    let body_len = u32::from_le_bytes(bytes[pos..pos + 4].try_into().expect("4 bytes")) as usize;
    let crc = u32::from_le_bytes(bytes[pos + 4..pos + 8].try_into().expect("4 bytes"));
    let body_start = pos + FRAME_LEN;
    let end = body_start.saturating_add(body_len);
    if body_len < SEQ_LEN {
        return Err(format!("record length {body_len} is too small"));
    }
    if end > bytes.len() {
        return Err(format!(
            "record of {body_len} bytes runs past the end of the segment"
        ));
    }
    let body = &bytes[body_start..end];
    let actual = crc32c::crc32c(body);
    if actual != crc {
        return Err(format!(
            "checksum mismatch (stored {crc:#010x}, computed {actual:#010x})"
        ));
    }
    let seq = u64::from_le_bytes(body[..SEQ_LEN].try_into().expect("8 bytes"));
    Ok((seq, &body[SEQ_LEN..], end))
}

fn corrupted(path: &Path, offset: u64, reason: String) -> Error {
    Error::WalCorrupted {
        path: path.to_path_buf(),
        offset,
        reason,
    }
}

/// Retires the segments whose records are all at or below `persisted_seq`:
/// keeps up to `keep_free` retired segments in `dir` for reuse, and deletes
/// the rest. The newest segment is always kept. Returns how many were
/// retired.
pub(crate) fn retire(dir: &Path, persisted_seq: u64, keep_free: usize) -> Result<usize> {
    let segs = segments(dir)?;
    let kept = free_segments(dir)?;
    // Fewer kept than before (the option changed): the oldest go.
    let extra = kept.len().saturating_sub(keep_free);
    for (_, path) in &kept[..extra] {
        match fs::remove_file(path) {
            // A new segment took it meanwhile.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            done => done.map_err(|e| Error::io(path, e))?,
        }
    }
    let mut free = kept.len() - extra;
    let retiring: Vec<&(u64, PathBuf)> = segs
        .windows(2)
        .filter(|pair| pair[1].0 <= persisted_seq.saturating_add(1))
        .map(|pair| &pair[0])
        .collect();
    // Newest first: the pages most recently written are the likeliest to
    // be still cached.
    for (first_seq, path) in retiring.iter().rev() {
        if free < keep_free {
            let to = free_path(dir, *first_seq);
            fs::rename(path, &to).map_err(|e| Error::io(path, e))?;
            free += 1;
        } else {
            fs::remove_file(path).map_err(|e| Error::io(path, e))?;
        }
    }
    Ok(retiring.len())
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
        assert_eq!(fs::metadata(&path).unwrap().len(), segment_len(&[5]));
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
        assert_eq!(retire(dir.path(), 3, 0).unwrap(), 1);
        assert_eq!(segments(dir.path()).unwrap().len(), 2);
        assert_eq!(retire(dir.path(), 100, 0).unwrap(), 1);
        let left = segments(dir.path()).unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].0, 5);
    }

    /// The length of a segment of records with payloads this long.
    fn segment_len(payloads: &[usize]) -> u64 {
        let records: usize = payloads.iter().map(|p| FRAME_LEN + SEQ_LEN + p).sum();
        (HEADER_LEN + records) as u64
    }

    fn free_count(dir: &Path) -> usize {
        free_segments(dir).unwrap().len()
    }

    #[test]
    fn retire_keeps_up_to_keep_free_segments_for_reuse_and_deletes_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        for first in 1..=4 {
            write(dir.path(), first, &[b"x"]);
        }
        assert_eq!(retire(dir.path(), 3, 2).unwrap(), 3);
        assert_eq!(segments(dir.path()).unwrap().len(), 1);
        assert_eq!(free_count(dir.path()), 2);
        // Replay reads no kept segment.
        assert_eq!(collect(dir.path(), 0).unwrap(), vec![(4, b"x".to_vec())]);
        // Keeping fewer drops the oldest.
        retire(dir.path(), 3, 1).unwrap();
        let kept = free_segments(dir.path()).unwrap();
        assert_eq!(kept.iter().map(|k| k.0).collect::<Vec<_>>(), [3]);
    }

    /// A segment of three long records, retired and reused by a segment
    /// from `next` with one short record: the reused file, before it is
    /// finished.
    fn reused_with_stale_tail(dir: &Path, next: u64) -> WalWriter {
        write(dir, 1, &[&[7u8; 300], &[8u8; 300], &[9u8; 300]]);
        write(dir, 4, &[b"d"]);
        assert_eq!(retire(dir, 4, 4).unwrap(), 1);
        let mut w = WalWriter::create(dir, next).unwrap();
        assert_eq!(free_count(dir), 0, "the kept segment was not reused");
        assert!(w.reused_len > 900, "reused segment length {}", w.reused_len);
        w.append(b"e").unwrap();
        w.write_out().unwrap();
        w.sync().unwrap();
        w
    }

    #[test]
    fn a_reused_segments_earlier_records_are_not_replayed() {
        let dir = tempfile::tempdir().unwrap();
        let w = reused_with_stale_tail(dir.path(), 5);
        let path = w.path.clone();
        // As after a crash: the earlier use's records are still in the file.
        drop(w);
        assert!(fs::metadata(&path).unwrap().len() > 900);
        let got = collect(dir.path(), 0).unwrap();
        assert_eq!(got, vec![(4, b"d".to_vec()), (5, b"e".to_vec())]);
        assert_eq!(fs::metadata(&path).unwrap().len(), segment_len(&[1]));
        assert_eq!(collect(dir.path(), 0).unwrap().len(), 2);
    }

    #[test]
    fn a_reused_segment_is_cut_to_its_records_when_finished() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = reused_with_stale_tail(dir.path(), 5);
        w.finish().unwrap();
        assert_eq!(fs::metadata(&w.path).unwrap().len(), segment_len(&[1]));
        // Rotating cuts too, so the segment before the last has no tail.
        let dir = tempfile::tempdir().unwrap();
        let mut w = reused_with_stale_tail(dir.path(), 5);
        w.rotate().unwrap();
        w.append(b"f").unwrap();
        w.write_out().unwrap();
        assert_eq!(
            fs::metadata(segment_path(&w.dir, 5)).unwrap().len(),
            segment_len(&[1])
        );
    }

    #[test]
    fn a_reused_segment_torn_mid_record_keeps_the_whole_records() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = reused_with_stale_tail(dir.path(), 5);
        w.append(&[1u8; 200]).unwrap();
        w.write_out().unwrap();
        let path = w.path.clone();
        drop(w);
        // The second record reached the disk only in part: its first half
        // over the earlier use's bytes.
        let mut bytes = fs::read(&path).unwrap();
        let second = HEADER_LEN + FRAME_LEN + SEQ_LEN + 1;
        bytes[second + 100..second + 216].fill(8);
        fs::write(&path, &bytes).unwrap();
        assert_eq!(collect(dir.path(), 0).unwrap().len(), 2);
    }

    #[test]
    fn a_damaged_length_before_a_whole_record_of_the_last_segment_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), 1, &[b"first", b"second"]);
        let mut bytes = fs::read(&path).unwrap();
        // The first record's length now runs past the end of the file.
        bytes[HEADER_LEN..HEADER_LEN + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        fs::write(&path, &bytes).unwrap();
        let err = collect(dir.path(), 0).unwrap_err().to_string();
        assert!(err.contains(&format!("offset {HEADER_LEN}")), "{err}");
    }

    #[test]
    fn a_crash_while_a_kept_segment_is_taken_leaves_it_kept() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), 1, &[b"a"]);
        write(dir.path(), 2, &[b"b"]);
        retire(dir.path(), 2, 1).unwrap();
        // The header is rewritten before the rename: a crash between the two
        // leaves a kept segment naming a sequence, which replay never reads.
        let (_, free) = free_segments(dir.path()).unwrap().pop().unwrap();
        let mut bytes = fs::read(&free).unwrap();
        bytes[12..20].copy_from_slice(&3u64.to_le_bytes());
        fs::write(&free, &bytes).unwrap();
        assert_eq!(collect(dir.path(), 0).unwrap(), vec![(2, b"b".to_vec())]);
        let w = WalWriter::create(dir.path(), 3).unwrap();
        assert_eq!(free_count(dir.path()), 0);
        drop(w);
        assert_eq!(collect(dir.path(), 0).unwrap(), vec![(2, b"b".to_vec())]);
    }

    #[test]
    fn a_whole_record_out_of_sequence_in_the_last_segment_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = WalWriter::create(dir.path(), 1).unwrap();
        w.append(b"a").unwrap();
        // A record that skips a sequence number.
        w.next_seq += 1;
        w.append(b"c").unwrap();
        w.write_out().unwrap();
        let err = collect(dir.path(), 0).unwrap_err().to_string();
        assert!(err.contains("record has sequence 3, expected 2"), "{err}");
    }
}
