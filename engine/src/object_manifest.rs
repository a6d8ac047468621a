//! The manifest in a bucket, where there is no atomic rename: a numbered
//! object per version.
//!
//! ```text
//! manifest/{v:020}.edit        the change that made version v (one manifest edit record)
//! manifest/{v:020}.checkpoint  the whole manifest as of version v
//! ```
//!
//! Version 0 is the empty manifest. A commit creates the next version's edit
//! with a conditional put that succeeds only if no object of that name
//! exists yet, so of two writers racing for one version exactly one wins; the
//! other's change fails with [`Error::ManifestConflict`] and it records
//! nothing more. Every [`CHECKPOINT_EVERY`] versions the writer puts a
//! checkpoint and then deletes the edits and the checkpoint before it, which
//! keeps the listing short.
//!
//! Reading lists `manifest/`, loads the newest checkpoint and applies the
//! edits after it in order. A reader that already holds version `v` (a query
//! replica) lists only the names after `v`'s edit. Should the writer delete
//! edits between that listing and their reading, the read fails and the next
//! one finds the checkpoint that replaced them.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures::TryStreamExt;
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use tracing::{debug, warn};

use crate::bucket::block_on;
use crate::error::{Error, Result};
use crate::manifest::{Edit, Manifest, ManifestLog};

/// The folder of the manifest objects.
pub(crate) const PREFIX: &str = "manifest";
/// Versions after which the writer puts a checkpoint.
pub(crate) const CHECKPOINT_EVERY: u64 = 100;

/// The manifest's objects in a store, and the version last read or written.
pub(crate) struct ObjectManifest {
    store: Arc<dyn ObjectStore>,
    version: u64,
    /// Version of the newest checkpoint (0: none).
    checkpoint: u64,
    /// `version`, for others to read (engine statistics).
    shown: Arc<AtomicU64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Checkpoint,
    Edit,
}

fn object_path(version: u64, kind: Kind) -> StorePath {
    let suffix = match kind {
        Kind::Checkpoint => "checkpoint",
        Kind::Edit => "edit",
    };
    StorePath::from(format!("{PREFIX}/{version:020}.{suffix}"))
}

fn parse(location: &StorePath) -> Option<(u64, Kind)> {
    let name = location.filename()?;
    let (version, suffix) = name.split_once('.')?;
    let kind = match suffix {
        "edit" => Kind::Edit,
        "checkpoint" => Kind::Checkpoint,
        _ => return None,
    };
    Some((version.parse().ok()?, kind))
}

/// A manifest object's path, for errors.
fn error_path(store: &dyn ObjectStore, location: &StorePath) -> PathBuf {
    PathBuf::from(format!("{store}/{location}"))
}

/// What is newer than version `version` (whose manifest is `base`): the
/// newest version, its checkpoint's version, and its manifest; `None` when
/// nothing is newer.
async fn catch_up(
    store: Arc<dyn ObjectStore>,
    version: u64,
    checkpoint: u64,
    base: Manifest,
) -> Result<Option<(u64, u64, Manifest)>> {
    let prefix = StorePath::from(PREFIX);
    let offset = object_path(version, Kind::Edit);
    let mut objects: Vec<(u64, Kind)> = store
        .list_with_offset(Some(&prefix), &offset)
        .try_collect::<Vec<_>>()
        .await?
        .iter()
        .filter_map(|o| parse(&o.location))
        .filter(|&(v, _)| v > version)
        .collect();
    objects.sort_unstable();
    let newest_checkpoint = objects
        .iter()
        .filter(|(_, k)| *k == Kind::Checkpoint)
        .map(|&(v, _)| v)
        .max();
    let (mut at, checkpoint, mut manifest) = match newest_checkpoint {
        Some(c) => {
            let location = object_path(c, Kind::Checkpoint);
            let bytes = store.get(&location).await?.bytes().await?;
            let manifest = Manifest::decode(&bytes, &error_path(&*store, &location))?;
            (c, c, manifest)
        }
        None => (version, checkpoint, base),
    };
    for &(v, kind) in &objects {
        if kind != Kind::Edit || v <= at {
            continue;
        }
        let location = object_path(v, Kind::Edit);
        if v != at + 1 {
            return Err(Error::ManifestCorrupted {
                path: error_path(&*store, &location),
                reason: format!(
                    "version {v} follows version {at}; the versions between are missing \
                     (deleted by a checkpoint while this read ran: retry)"
                ),
            });
        }
        let bytes = store.get(&location).await?.bytes().await?;
        Edit::from_record(&bytes, &error_path(&*store, &location))?.apply(&mut manifest);
        at = v;
    }
    Ok((at > version).then_some((at, checkpoint, manifest)))
}

impl ObjectManifest {
    /// Reads the newest manifest in `store` (an empty one in a new bucket).
    pub fn open(store: Arc<dyn ObjectStore>) -> Result<(ObjectManifest, Manifest)> {
        let mut this = ObjectManifest {
            store,
            version: 0,
            checkpoint: 0,
            shown: Arc::default(),
        };
        let manifest = this
            .refresh(&Manifest::empty())?
            .unwrap_or_else(Manifest::empty);
        Ok((this, manifest))
    }

    /// The version last read or written.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The version last read or written, kept up to date as it changes.
    pub fn shown_version(&self) -> Arc<AtomicU64> {
        self.shown.clone()
    }

    /// The manifest after `current` (this version's), when another process
    /// recorded newer versions; `None` when there are none.
    pub fn refresh(&mut self, current: &Manifest) -> Result<Option<Manifest>> {
        let store = self.store.clone();
        let found = block_on(catch_up(
            store,
            self.version,
            self.checkpoint,
            current.clone(),
        ))??;
        Ok(found.map(|(version, checkpoint, manifest)| {
            debug!(version, checkpoint, "manifest read");
            self.version = version;
            self.checkpoint = checkpoint;
            self.shown.store(version, Ordering::Relaxed);
            manifest
        }))
    }

    /// Puts a checkpoint of `manifest` (this version's), then deletes what
    /// it replaces. Failures to delete leave objects the next checkpoint
    /// deletes.
    fn checkpoint(&mut self, manifest: &Manifest) -> Result<()> {
        let (store, version, previous) = (self.store.clone(), self.version, self.checkpoint);
        let bytes = manifest.encode()?;
        block_on(async move {
            store
                .put(
                    &object_path(version, Kind::Checkpoint),
                    PutPayload::from(bytes),
                )
                .await?;
            let mut stale: Vec<StorePath> = (previous + 1..=version)
                .map(|v| object_path(v, Kind::Edit))
                .collect();
            if previous > 0 {
                stale.push(object_path(previous, Kind::Checkpoint));
            }
            for location in stale {
                if let Err(e) = store.delete(&location).await {
                    warn!(%location, error = %e, "a replaced manifest object was not deleted");
                }
            }
            Ok::<_, Error>(())
        })??;
        self.checkpoint = version;
        Ok(())
    }
}

impl ManifestLog for ObjectManifest {
    fn commit(&mut self, current: &Manifest, next: &mut Manifest) -> Result<()> {
        let version = self.version + 1;
        let record = Edit::between(current, next).record()?;
        let store = self.store.clone();
        let location = object_path(version, Kind::Edit);
        let put = block_on(async move {
            let options = PutOptions {
                mode: PutMode::Create,
                ..Default::default()
            };
            store
                .put_opts(&location, PutPayload::from(record), options)
                .await
        })?;
        match put {
            Ok(_) => {}
            Err(object_store::Error::AlreadyExists { .. })
            | Err(object_store::Error::Precondition { .. }) => {
                return Err(Error::ManifestConflict {
                    store: self.store.to_string(),
                    version,
                });
            }
            Err(e) => return Err(e.into()),
        }
        self.version = version;
        self.shown.store(version, Ordering::Relaxed);
        // On failure the edits alone still hold every version.
        if version - self.checkpoint >= CHECKPOINT_EVERY
            && let Err(e) = self.checkpoint(next)
        {
            warn!(version, error = %e, "manifest checkpoint failed; the next commit retries");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::memory::InMemory;

    fn with_file(m: &Manifest, id: u64) -> Manifest {
        let mut next = m.clone();
        next.next_file_id = id + 1;
        next.persisted_seq = id * 10;
        next.files.push(Arc::new(crate::manifest::tests::file(id)));
        next
    }

    fn names(store: &Arc<dyn ObjectStore>) -> Vec<String> {
        block_on({
            let store = store.clone();
            async move {
                store
                    .list(Some(&StorePath::from(PREFIX)))
                    .map_ok(|o| o.location.filename().unwrap().to_string())
                    .try_collect::<Vec<_>>()
                    .await
            }
        })
        .unwrap()
        .unwrap()
    }

    #[test]
    fn versions_reopen_through_checkpoints() {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let (mut log, mut m) = ObjectManifest::open(store.clone()).unwrap();
        assert!(m.files.is_empty());
        let total = CHECKPOINT_EVERY + 5;
        for id in 1..=total {
            let mut next = with_file(&m, id);
            log.commit(&m, &mut next).unwrap();
            m = next;
        }
        // One checkpoint and the edits after it remain.
        let mut left = names(&store);
        left.sort();
        assert_eq!(left.len(), 6, "{left:?}");
        assert!(left[0].ends_with(".checkpoint"));
        let (reopened, again) = ObjectManifest::open(store.clone()).unwrap();
        assert_eq!(reopened.version(), total);
        assert_eq!(again.files.len() as u64, total);
        assert_eq!(again.persisted_seq, total * 10);
    }

    #[test]
    fn of_two_writers_on_one_version_only_one_wins() {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let (mut a, base) = ObjectManifest::open(store.clone()).unwrap();
        let (mut b, _) = ObjectManifest::open(store.clone()).unwrap();
        a.commit(&base, &mut with_file(&base, 1)).unwrap();
        let e = b.commit(&base, &mut with_file(&base, 2)).unwrap_err();
        assert!(
            matches!(e, Error::ManifestConflict { version: 1, .. }),
            "{e}"
        );
        let (_, m) = ObjectManifest::open(store).unwrap();
        assert_eq!(m.files.iter().map(|f| f.id).collect::<Vec<_>>(), vec![1]);
    }

    #[test]
    fn a_reader_follows_the_writer() {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let (mut writer, mut m) = ObjectManifest::open(store.clone()).unwrap();
        let (mut reader, mut seen) = ObjectManifest::open(store.clone()).unwrap();
        for id in 1..=(2 * CHECKPOINT_EVERY + 3) {
            let mut next = with_file(&m, id);
            writer.commit(&m, &mut next).unwrap();
            m = next;
            // Catch up every few versions, across checkpoints.
            if id % 37 == 0 {
                seen = reader.refresh(&seen).unwrap().expect("newer versions");
                assert_eq!(seen.files.len() as u64, id);
            }
        }
        seen = reader.refresh(&seen).unwrap().expect("newer versions");
        assert_eq!(seen.files.len(), m.files.len());
        assert!(reader.refresh(&seen).unwrap().is_none());
    }
}
