//! Query replicas: an engine opened [`crate::Options::read_only`] on a
//! writer's bucket. It reads the files and the manifest there, looks for the
//! writer's new manifest versions every [`crate::Options::refresh_interval`]
//! and swaps each in whole, as a flush swaps in its files; it refuses every
//! write and never changes the bucket (no flush, compaction, retention or
//! orphan sweep runs).
//!
//! A file the writer removes stays in the bucket for
//! [`crate::Options::replica_grace`], so that a replica's query planned on
//! an older manifest can still read it.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError};
use tracing::{debug, warn};

use crate::catalog::Catalog;
use crate::engine::Shared;
use crate::error::{Error, Result};
use crate::manifest::{Manifest, ManifestLog};
use crate::object_manifest::ObjectManifest;

/// The manifest log of a replica: it records nothing.
pub(crate) struct NoLog {
    pub store: String,
}

impl ManifestLog for NoLog {
    fn commit(&mut self, _current: &Manifest, _next: &mut Manifest) -> Result<()> {
        Err(Error::ReadOnly {
            store: self.store.clone(),
        })
    }
}

/// Follows the writer's manifest until `stop` is dropped or signalled.
pub(crate) fn run_refresher(
    shared: Arc<Shared>,
    mut log: ObjectManifest,
    interval: Duration,
    stop: Receiver<()>,
) {
    // A message or a dropped sender stops it.
    while let Err(RecvTimeoutError::Timeout) = stop.recv_timeout(interval) {
        let current = shared.state_read().manifest.clone();
        match log.refresh(&current) {
            Ok(Some(next)) => {
                debug!(
                    version = log.version(),
                    files = next.files.len(),
                    "replica caught up"
                );
                adopt(&shared, next);
            }
            Ok(None) => {}
            Err(e) => {
                warn!(error = %e, "reading the writer's manifest failed; tried again at the next refresh")
            }
        }
    }
}

/// Makes `next` the manifest queries see: its files, catalog, deletes and
/// drops.
pub(crate) fn adopt(shared: &Shared, next: Manifest) {
    let live: HashSet<u64> = next.files.iter().map(|f| f.id).collect();
    let current = shared.state_read().manifest.clone();
    shared.summaries.forget(
        current
            .files
            .iter()
            .filter(|f| !live.contains(&f.id))
            .map(|f| f.id),
    );
    {
        let mut catalog = shared.catalog_mut();
        let mut adopted = Catalog::from_snapshot(&next.catalog);
        adopted.set_default_retention(shared.options.default_retention);
        *catalog = adopted;
    }
    let mut state = shared.state_mut();
    state.tombstones = next.tombstones.iter().cloned().map(Arc::new).collect();
    state.drops = next.drops.clone();
    state.manifest = Arc::new(next);
    state.version += 1;
}
