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
//!
//! **A cluster** of writer nodes ([`crate::Options::node_id`]) keeps one
//! manifest per node, under `nodes/{id}/` of the bucket prefix. A replica
//! of the prefix finds the nodes (and new ones as they appear) and serves
//! the union of their manifests ([`union`]): every file under its node's
//! folder, with an id no other node's file has, marked with its node, as are
//! its node's deletes, which apply to that node's files only. Each series is
//! written to one node (see `ingot_proto::route`), so files of different
//! nodes never need deduplicating against each other.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError};
use object_store::ObjectStore;
use object_store::path::Path as StorePath;
use object_store::prefix::PrefixStore;
use tracing::{debug, info, warn};

use crate::bucket::block_on;
use crate::catalog::{Catalog, CatalogSnapshot};
use crate::engine::Shared;
use crate::error::{Error, Result};
use crate::manifest::{Manifest, ManifestLog};
use crate::object_manifest::ObjectManifest;

/// The folder of a cluster's writer nodes, each under `nodes/{id}/`.
pub(crate) const NODES: &str = "nodes";

/// The store of node `id` of a cluster at `store`.
pub(crate) fn node_store(store: Arc<dyn ObjectStore>, id: &str) -> Arc<dyn ObjectStore> {
    Arc::new(PrefixStore::new(store, format!("{NODES}/{id}")))
}

/// Checks a node id: letters, digits, `-` and `_`.
pub(crate) fn check_node_id(id: &str) -> Result<()> {
    if id.is_empty()
        || id.len() > 64
        || !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(Error::InvalidInput(format!(
            "node id {id:?} must be 1 to 64 letters, digits, '-' or '_'"
        )));
    }
    Ok(())
}

/// What a replica follows: one writer's manifest, or a cluster's nodes'.
pub(crate) struct Follow {
    store: Arc<dyn ObjectStore>,
    /// The manifest at the prefix itself (a single writer's).
    root: ObjectManifest,
    /// The nodes found so far, by id.
    nodes: BTreeMap<String, Node>,
    /// The sum of the versions followed, for statistics.
    shown: Arc<AtomicU64>,
}

struct Node {
    /// Numbers the node's files apart from other nodes': its order of
    /// discovery, never reused while the replica runs.
    index: u64,
    log: ObjectManifest,
    manifest: Manifest,
}

impl Follow {
    /// Reads what `store` holds: a writer's manifest, or its nodes'.
    pub fn open(store: Arc<dyn ObjectStore>) -> Result<(Follow, Manifest)> {
        let (root, manifest) = ObjectManifest::open(store.clone())?;
        let mut follow = Follow {
            store,
            root,
            nodes: BTreeMap::new(),
            shown: Arc::default(),
        };
        let manifest = follow.refresh(&manifest)?.unwrap_or(manifest);
        Ok((follow, manifest))
    }

    /// The sum of the manifest versions followed, kept up to date.
    pub fn shown_version(&self) -> Arc<AtomicU64> {
        self.shown.clone()
    }

    /// The manifest after `current`, when a writer recorded a change since.
    pub fn refresh(&mut self, current: &Manifest) -> Result<Option<Manifest>> {
        let single = self.root.refresh(current)?;
        if self.root.version() > 0 {
            self.shown.store(self.root.version(), Ordering::Relaxed);
            return Ok(single);
        }
        let mut changed = self.discover()?;
        for (id, node) in self.nodes.iter_mut() {
            if let Some(next) = node.log.refresh(&node.manifest)? {
                debug!(node = %id, version = node.log.version(), "node manifest read");
                node.manifest = next;
                changed = true;
            }
        }
        self.shown.store(
            self.nodes.values().map(|n| n.log.version()).sum(),
            Ordering::Relaxed,
        );
        Ok(changed.then(|| union(&self.nodes)))
    }

    /// Adds the nodes that appeared under `nodes/`; whether any did.
    fn discover(&mut self) -> Result<bool> {
        let store = self.store.clone();
        let listed = block_on(async move {
            store
                .list_with_delimiter(Some(&StorePath::from(NODES)))
                .await
        })??;
        let mut found = false;
        for prefix in listed.common_prefixes {
            let Some(id) = prefix.filename().map(str::to_string) else {
                continue;
            };
            if self.nodes.contains_key(&id) || check_node_id(&id).is_err() {
                continue;
            }
            let (log, manifest) = ObjectManifest::open(node_store(self.store.clone(), &id))?;
            info!(node = %id, version = log.version(), "replica follows a new writer node");
            let index = self.nodes.len() as u64 + 1;
            self.nodes.insert(
                id,
                Node {
                    index,
                    log,
                    manifest,
                },
            );
            found = true;
        }
        Ok(found)
    }
}

/// Bits of a file id that its node's own id keeps in a cluster's union.
const NODE_FILE_ID_BITS: u32 = 40;

/// One manifest over every node's: their files (renamed into the nodes'
/// folders and numbered apart), their deletes (each for its node's files),
/// and their catalogs merged.
fn union(nodes: &BTreeMap<String, Node>) -> Manifest {
    let mut out = Manifest::empty();
    let mut catalogs = Vec::new();
    for (id, node) in nodes {
        let m = &node.manifest;
        out.files.extend(m.files.iter().map(|f| {
            let mut f = (**f).clone();
            f.path = format!("{NODES}/{id}/{}", f.path);
            f.id |= node.index << NODE_FILE_ID_BITS;
            f.node = Some(id.clone());
            Arc::new(f)
        }));
        out.tombstones.extend(m.tombstones.iter().map(|t| {
            let mut t = t.clone();
            t.node = Some(id.clone());
            t
        }));
        catalogs.push((id.as_str(), &m.catalog));
    }
    out.catalog = merge_catalogs(&catalogs);
    out
}

/// The catalogs of several nodes as one: each table with every column any
/// node has (a column two nodes type differently keeps the first node's
/// type, and its other files read it as null).
fn merge_catalogs(catalogs: &[(&str, &CatalogSnapshot)]) -> CatalogSnapshot {
    let mut out = CatalogSnapshot::default();
    for (node, catalog) in catalogs {
        for (db, tables) in &catalog.databases {
            let merged = out.databases.entry(db.clone()).or_default();
            for (table, columns) in tables {
                let have = merged.entry(table.clone()).or_default();
                for column in columns {
                    match have.iter().find(|c| c.name == column.name) {
                        None => have.push(column.clone()),
                        Some(c) if c.kind != column.kind => warn!(
                            node,
                            database = %db,
                            table = %table,
                            column = %column.name,
                            "writer nodes disagree on a column's type; the first node's is kept"
                        ),
                        Some(_) => {}
                    }
                }
            }
        }
        for (db, ns) in &catalog.retention_ns {
            out.retention_ns.entry(db.clone()).or_insert(*ns);
        }
    }
    out
}

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
    mut log: Follow,
    interval: Duration,
    stop: Receiver<()>,
) {
    // A message or a dropped sender stops it.
    while let Err(RecvTimeoutError::Timeout) = stop.recv_timeout(interval) {
        let current = shared.state_read().manifest.clone();
        match log.refresh(&current) {
            Ok(Some(next)) => {
                debug!(files = next.files.len(), "replica caught up");
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
