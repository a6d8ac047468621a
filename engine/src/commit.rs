//! Group commit: how an encoded write request becomes durable and visible.
//!
//! Writers queue their requests; one of them at a time is the **leader**. The
//! leader takes everything queued (up to [`MAX_GROUP`] requests), appends it to
//! the WAL in one `write`, fsyncs once for the whole group (under
//! [`WalSync::Always`]), applies each request to the memtable in WAL order and
//! answers every writer of the group. Then it hands the lead to the first
//! writer still queued, or, if none is, lets the next writer to arrive lead.
//!
//! A writer alone (a gateway sending one reading at a time) therefore commits
//! on its own thread, with no handoff to another thread and back: that is two
//! context switches saved per write, a large share of a small write's cost.
//! Concurrent writers still share one fsync per group, as they did with a
//! dedicated commit thread, and a leader commits exactly one group, so its
//! own latency is bounded however many writers keep arriving.
//!
//! Under [`WalSync::Interval`], a small timer thread fsyncs what the groups
//! wrote, at most the interval after they were acknowledged.
//!
//! After a WAL write or fsync fails, the log is **poisoned**: every later
//! request gets [`Error::WalPoisoned`] until the engine is reopened, because
//! what reached the file after the failure is unknown.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError, bounded};
use tracing::{error, warn};

use crate::delete::{Dropped, Tombstone};
use crate::engine::{FlushMsg, Shared};
use crate::error::{Error, Result};
use crate::options::WalSync;
use crate::wal::WalWriter;
use crate::write::TableWrite;

/// Most write requests one group commit takes.
pub(crate) const MAX_GROUP: usize = 1024;

/// One write, delete or drop on its way to the WAL and the memtable.
pub(crate) struct WriteRequest {
    pub database: String,
    /// The WAL record.
    pub payload: Vec<u8>,
    pub change: Change,
    /// Memtable bytes the writer reserved for it.
    pub reserved: usize,
    pub reply: Sender<Reply>,
}

/// What a request changes.
pub(crate) enum Change {
    /// Rows, one batch per table, resolved against the catalog when it had
    /// seen `resolved_at` drops ([`crate::catalog::Catalog::drops`]).
    Write {
        writes: Vec<TableWrite>,
        resolved_at: u64,
    },
    Delete(Tombstone),
    /// A drop commits in a group of its own.
    Drop(Dropped),
}

impl WriteRequest {
    fn is_drop(&self) -> bool {
        matches!(self.change, Change::Drop(_))
    }
}

/// What a queued writer hears.
pub(crate) enum Reply {
    /// Its write is committed (with this WAL sequence number) or failed.
    Done(Result<u64>),
    /// It leads the next group.
    Lead,
}

struct Queue {
    waiting: VecDeque<WriteRequest>,
    /// Someone leads: the queue is not empty, or a group is being committed.
    leading: bool,
    closed: bool,
}

/// The WAL and what the commits know about it.
struct Log {
    wal: WalWriter,
    /// Why the WAL refuses writes, once a write or fsync failed.
    poisoned: Option<String>,
    /// Written but not yet fsynced (under [`WalSync::Interval`]).
    dirty: bool,
}

pub(crate) struct Committer {
    queue: Mutex<Queue>,
    /// Notified when no one leads any more.
    idle: Condvar,
    log: Mutex<Log>,
    flush_tx: Sender<FlushMsg>,
    /// Stops the interval-sync thread.
    stop_timer: Mutex<Option<Sender<()>>>,
    timer: Mutex<Option<JoinHandle<()>>>,
}

impl Committer {
    /// Takes over the WAL; starts the interval-sync thread when the policy
    /// needs one.
    pub fn start(
        shared: &Arc<Shared>,
        wal: WalWriter,
        flush_tx: Sender<FlushMsg>,
    ) -> Result<Arc<Committer>> {
        let committer = Arc::new(Committer {
            queue: Mutex::new(Queue {
                waiting: VecDeque::new(),
                leading: false,
                closed: false,
            }),
            idle: Condvar::new(),
            log: Mutex::new(Log {
                wal,
                poisoned: None,
                dirty: false,
            }),
            flush_tx,
            stop_timer: Mutex::new(None),
            timer: Mutex::new(None),
        });
        if let WalSync::Interval(every) = shared.options.wal_sync {
            let (stop_tx, stop_rx) = bounded(1);
            let c = committer.clone();
            let s = shared.clone();
            let handle = std::thread::Builder::new()
                .name("ingot-wal-sync".into())
                .spawn(move || c.run_timer(&s, every, stop_rx))
                .map_err(|e| Error::Internal(format!("cannot start the WAL sync thread: {e}")))?;
            *lock(&committer.stop_timer) = Some(stop_tx);
            *lock(&committer.timer) = Some(handle);
        }
        Ok(committer)
    }

    /// Commits `request` and returns its WAL sequence number once it is
    /// durable (under the sync policy) and in the memtable. `result` is the
    /// receiving end of `request.reply`. On [`Error::Closed`] before the
    /// request was queued, the caller still owns its memory reservation.
    pub fn commit(
        &self,
        shared: &Shared,
        request: WriteRequest,
        result: Receiver<Reply>,
    ) -> Result<u64> {
        let mut lead = {
            let mut queue = lock(&self.queue);
            if queue.closed {
                return Err(Error::Closed);
            }
            queue.waiting.push_back(request);
            !std::mem::replace(&mut queue.leading, true)
        };
        loop {
            if lead {
                self.lead(shared);
            }
            match result.recv() {
                Ok(Reply::Done(done)) => return done,
                Ok(Reply::Lead) => lead = true,
                Err(_) => return Err(Error::Closed),
            }
        }
    }

    /// Commits one group, then passes the lead on.
    fn lead(&self, shared: &Shared) {
        // Passes the lead on even if the group panics, so that the writers
        // queued behind it are not stranded.
        let _handoff = Handoff(self);
        let mut group: Vec<WriteRequest> = {
            let mut queue = lock(&self.queue);
            // A drop changes the catalog that the writes after it were
            // resolved against: it ends the group, or is a group alone.
            let n = match queue.waiting.iter().position(WriteRequest::is_drop) {
                Some(0) => 1,
                Some(at) => at.min(MAX_GROUP),
                None => queue.waiting.len().min(MAX_GROUP),
            };
            queue.waiting.drain(..n).collect()
        };
        let mut log = lock(&self.log);
        commit_group(shared, &mut log, &mut group);
        if shared.state_read().active.bytes() >= shared.options.memtable_budget_bytes / 2 {
            match self.flush_tx.try_send(FlushMsg::Flush(None)) {
                Ok(()) | Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {}
            }
        }
        if log.poisoned.is_none() && log.wal.size() >= shared.options.wal_segment_bytes {
            match log.wal.sync() {
                Err(e) => {
                    error!(error = %e, "WAL fsync failed; refusing writes until reopened");
                    log.poisoned = Some(e.to_string());
                }
                // A segment that cannot be started (a full disk) leaves the
                // current one growing; the next group tries again.
                Ok(()) => {
                    if let Err(e) = log.wal.rotate() {
                        warn!(error = %e, "starting a new WAL segment failed; tried again after the next write");
                    }
                }
            }
        }
    }

    /// Refuses new writes, waits for the queued ones to commit, and syncs
    /// the WAL a last time.
    pub fn close(&self) {
        {
            let mut queue = lock(&self.queue);
            queue.closed = true;
            while queue.leading {
                queue = self.idle.wait(queue).unwrap_or_else(|p| p.into_inner());
            }
        }
        if let Some(stop) = lock(&self.stop_timer).take() {
            let _ = stop.send(());
        }
        if let Some(timer) = lock(&self.timer).take()
            && timer.join().is_err()
        {
            error!("the WAL sync thread panicked");
        }
        let mut log = lock(&self.log);
        if log.poisoned.is_none()
            && let Err(e) = log.wal.finish()
        {
            error!(error = %e, "final WAL sync failed");
        }
    }

    /// Under [`WalSync::Interval`]: fsyncs what groups wrote, every `every`.
    fn run_timer(&self, shared: &Shared, every: Duration, stop: Receiver<()>) {
        loop {
            match stop.recv_timeout(every) {
                Err(RecvTimeoutError::Timeout) => {}
                Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
            }
            let mut log = lock(&self.log);
            if !log.dirty || log.poisoned.is_some() {
                continue;
            }
            shared.stats.wal_fsyncs.fetch_add(1, Ordering::Relaxed);
            if let Err(e) = log.wal.sync() {
                error!(error = %e, "WAL fsync failed");
                log.poisoned = Some(e.to_string());
            }
            log.dirty = false;
        }
    }
}

/// Hands the lead to the first queued writer, or marks the queue idle.
struct Handoff<'a>(&'a Committer);

impl Drop for Handoff<'_> {
    fn drop(&mut self) {
        let mut queue = lock(&self.0.queue);
        match queue.waiting.front() {
            Some(next) => {
                // Its writer is blocked in `commit` on this channel, which
                // holds nothing yet: its `Done` comes only from a group it
                // leads.
                let _ = next.reply.send(Reply::Lead);
            }
            None => {
                queue.leading = false;
                self.0.idle.notify_all();
            }
        }
    }
}

/// The error each writer of a failed group gets: the I/O error itself when
/// the write was undone (so that a full disk reads as one), otherwise
/// [`Error::WalPoisoned`].
fn copy_of(e: &Error, undone: bool) -> Error {
    match e {
        Error::Io { path, source } if undone => Error::Io {
            path: path.clone(),
            source: std::io::Error::new(source.kind(), source.to_string()),
        },
        Error::WalPoisoned(reason) => Error::WalPoisoned(reason.clone()),
        e => Error::WalPoisoned(e.to_string()),
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Resolves again the writes of `group` that were resolved before a drop:
/// a table they name may be gone, to be created anew by them. A write that
/// no longer fits the catalog (another writer re-created its table with
/// other types) is refused, with the rest of the group going ahead.
fn resolve_after_drops(shared: &Shared, group: &mut Vec<WriteRequest>) {
    let drops = shared.catalog_read().drops();
    let stale = |w: &WriteRequest| matches!(w.change, Change::Write { resolved_at, .. } if resolved_at != drops);
    if !group.iter().any(stale) {
        return;
    }
    let mut catalog = shared.catalog_mut();
    let mut refused = Vec::new();
    group.retain(|w| {
        let Change::Write { writes, .. } = &w.change else {
            return true;
        };
        match catalog.resolve_writes(&w.database, writes) {
            Ok(()) => true,
            Err(e) => {
                refused.push((w.reply.clone(), w.reserved, e));
                false
            }
        }
    });
    drop(catalog);
    for (reply, reserved, e) in refused {
        shared.release_memory(reserved);
        let _ = reply.send(Reply::Done(Err(e)));
    }
}

/// Appends a group to the WAL, makes it durable under the sync policy,
/// applies it to the memtable and answers each writer.
fn commit_group(shared: &Shared, log: &mut Log, group: &mut Vec<WriteRequest>) {
    resolve_after_drops(shared, group);
    let mut seqs = Vec::with_capacity(group.len());
    let mut result: Result<()> = match &log.poisoned {
        Some(reason) => Err(Error::WalPoisoned(reason.clone())),
        None => Ok(()),
    };
    if result.is_ok() {
        for w in group.iter() {
            match log.wal.append(&w.payload) {
                Ok(seq) => seqs.push(seq),
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
    }
    // A write that failed and was undone (a full disk) fails this group
    // only: the log is as it was, and the next group may find space again.
    let mut undone = false;
    if result.is_ok() {
        result = log.wal.write_out();
        if result.is_err() && !log.wal.is_broken() {
            undone = true;
        } else if result.is_ok() {
            match shared.options.wal_sync {
                WalSync::Always => {
                    let started = Instant::now();
                    result = log.wal.sync();
                    shared.stats.wal_fsyncs.fetch_add(1, Ordering::Relaxed);
                    shared
                        .stats
                        .wal_fsync_nanos
                        .fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
                }
                WalSync::Interval(_) => log.dirty = true,
                WalSync::None => {}
            }
        }
        if let Err(e) = &result {
            if undone {
                warn!(error = %e, writes = group.len(), "WAL write failed and was undone; the writes are refused");
            } else {
                error!(error = %e, "WAL write failed; refusing writes until reopened");
                log.poisoned = Some(e.to_string());
            }
        }
    }
    match result {
        Ok(()) => {
            shared
                .stats
                .wal_records
                .fetch_add(group.len() as u64, Ordering::Relaxed);
            let mut replies = Vec::with_capacity(group.len());
            {
                // A drop changes the catalog and the state together (the
                // catalog's lock first, as everywhere).
                let mut catalog = group
                    .iter()
                    .any(WriteRequest::is_drop)
                    .then(|| shared.catalog_mut());
                let mut state = shared.state_mut();
                for (w, seq) in group.drain(..).zip(seqs) {
                    let applied = match w.change {
                        Change::Write { writes, .. } => {
                            shared.apply(&mut state, &w.database, seq, writes, w.reserved)
                        }
                        Change::Delete(mut tombstone) => {
                            tombstone.seq = seq;
                            shared.add_tombstone(&mut state, tombstone);
                            Ok(())
                        }
                        Change::Drop(mut dropped) => {
                            dropped.seq = seq;
                            let catalog = catalog.as_mut().expect("taken for a drop");
                            shared.apply_drop(catalog, &mut state, dropped);
                            Ok(())
                        }
                    };
                    replies.push((w.reply, applied.map(|_| seq)));
                }
            }
            for (reply, r) in replies {
                let _ = reply.send(Reply::Done(r));
            }
        }
        Err(e) => {
            for w in group.drain(..) {
                shared.release_memory(w.reserved);
                let _ = w.reply.send(Reply::Done(Err(copy_of(&e, undone))));
            }
        }
    }
}
