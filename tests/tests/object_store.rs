//! Ingot on S3-compatible object storage, against a real S3 server (moto)
//! that each test starts on 127.0.0.1: files and manifest in the bucket, a
//! node whose disk is lost reopening from the bucket alone, two writers
//! racing on one prefix, the local cache, and query replicas.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use ingot_bench::{Preset, result_rows, same_rows, workload_queries};
use ingot_engine::{Engine, Error, Options};
use ingot_tests::s3::S3Server;
use ingot_tests::{load_preset, query};
use object_store::ObjectStore;

fn bucket_options(store: Arc<dyn ObjectStore>) -> Options {
    let mut options = Options::default();
    options.object_store = Some(store);
    options.wal_sync = ingot_engine::WalSync::None;
    options
}

/// Every object under the store's root.
fn objects(store: &Arc<dyn ObjectStore>) -> Vec<String> {
    let store = store.clone();
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(async move {
            store
                .list(None)
                .map_ok(|o| o.location.to_string())
                .try_collect::<Vec<_>>()
                .await
        })
        .unwrap()
}

/// q1..q8's answers, as rows of JSON values.
fn answers(engine: &Engine) -> Vec<(String, Vec<Vec<serde_json::Value>>)> {
    workload_queries()
        .into_iter()
        .map(|(name, sql)| {
            let rows = result_rows(&query(engine, &sql)).unwrap();
            (name, rows)
        })
        .collect()
}

fn assert_same_answers(
    got: &[(String, Vec<Vec<serde_json::Value>>)],
    want: &[(String, Vec<Vec<serde_json::Value>>)],
) {
    assert_eq!(got.len(), want.len());
    for ((name, g), (_, w)) in got.iter().zip(want) {
        same_rows(g, w).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

fn count(engine: &Engine) -> i64 {
    let b = &query(engine, "SELECT count(*) FROM readings")[0];
    b.column(0)
        .as_any()
        .downcast_ref::<arrow::array::Int64Array>()
        .unwrap()
        .value(0)
}

#[test]
fn a_node_keeps_everything_in_the_bucket_and_a_new_disk_reopens_it() {
    let Some(s3) = S3Server::start() else { return };
    let store = s3.store("plant-a");
    let tiny = Preset::by_name("tiny").unwrap();

    let reference_dir = tempfile::tempdir().unwrap();
    let reference = Engine::open(reference_dir.path(), Options::default()).unwrap();
    load_preset(&reference, tiny, 5_000).unwrap();
    reference.flush().unwrap();
    let want = answers(&reference);

    let disk = tempfile::tempdir().unwrap();
    let mut options = bucket_options(store.clone());
    options.memtable_budget_bytes = 2 << 20; // several flushes
    let engine = Engine::open(disk.path(), options.clone()).unwrap();
    load_preset(&engine, tiny, 5_000).unwrap();
    engine.flush().unwrap();
    assert_same_answers(&answers(&engine), &want);
    assert!(engine.stats().manifest_version >= 2);
    engine.close().unwrap();
    drop(engine);

    // Everything is under the prefix: the manifest objects and the files.
    let names = objects(&s3.store(""));
    assert!(names.iter().all(|n| n.starts_with("plant-a/")), "{names:?}");
    assert!(names.iter().any(|n| n.starts_with("plant-a/manifest/")));
    assert!(names.iter().any(|n| n.ends_with(".parquet")));
    // The disk holds the WAL and the cache, nothing else.
    let mut local: Vec<String> = std::fs::read_dir(disk.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    local.sort();
    assert_eq!(local, ["LOCK", "cache", "wal"]);

    // A new machine: an empty data directory and the same bucket.
    let fresh = tempfile::tempdir().unwrap();
    let reopened = Engine::open(fresh.path(), options).unwrap();
    assert_same_answers(&answers(&reopened), &want);
    // Those reads fetched the files once; asking again reads the cache.
    let fetched = reopened.stats().cache_fetched_bytes;
    let misses = reopened.stats().cache_misses;
    assert!(fetched > 0);
    assert_same_answers(&answers(&reopened), &want);
    let stats = reopened.stats();
    assert_eq!(
        stats.cache_fetched_bytes, fetched,
        "warm queries went to the network"
    );
    assert_eq!(stats.cache_misses, misses);
    assert!(stats.cache_hits > 0);
}

#[test]
fn a_writer_that_another_took_over_from_records_nothing() {
    let Some(s3) = S3Server::start() else { return };
    let store = s3.store("shared");
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = Engine::open(a_dir.path(), bucket_options(store.clone())).unwrap();
    // A second writer on the same prefix (a misconfiguration, or a
    // restarted node whose old process still runs) takes it over.
    let b = Engine::open(b_dir.path(), bucket_options(store.clone())).unwrap();
    a.write_lines("public", "m,k=a v=1 1", Default::default())
        .unwrap();
    b.write_lines("public", "m,k=b v=2 2", Default::default())
        .unwrap();
    let e = a.flush().unwrap_err();
    assert!(matches!(e, Error::ManifestConflict { .. }), "{e}");
    assert!(e.to_string().contains("its own prefix"), "{e}");
    b.flush().unwrap();
    // The first writer's file, written before its change was refused,
    // did not replace the second's.
    let e = a.flush().unwrap_err();
    assert!(matches!(e, Error::ManifestConflict { .. }), "{e}");
    drop((a, b));

    let dir = tempfile::tempdir().unwrap();
    let reader = Engine::open(dir.path(), bucket_options(store)).unwrap();
    let rows = result_rows(&query(&reader, "SELECT k, v FROM m ORDER BY k")).unwrap();
    assert_eq!(
        rows,
        vec![vec![serde_json::json!("b"), serde_json::json!(2.0)]]
    );
}

#[test]
fn a_replica_follows_the_writer_and_refuses_writes() {
    let Some(s3) = S3Server::start() else { return };
    let store = s3.store("plant-b");
    let tiny = Preset::by_name("tiny").unwrap();
    let writer_dir = tempfile::tempdir().unwrap();
    let mut writer_options = bucket_options(store.clone());
    writer_options.compaction = false;
    let writer = Engine::open(writer_dir.path(), writer_options).unwrap();
    writer
        .write_lines(
            "public",
            "readings,device_id=d0 temperature=1 1",
            Default::default(),
        )
        .unwrap();
    writer.flush().unwrap();

    let replica_dir = tempfile::tempdir().unwrap();
    let mut replica_options = bucket_options(store.clone());
    replica_options.read_only = true;
    replica_options.refresh_interval = Duration::from_millis(100);
    let replica = Engine::open(replica_dir.path(), replica_options).unwrap();
    assert_eq!(count(&replica), 1);

    // Writes of every kind are refused, and the bucket is untouched.
    let before = objects(&store);
    let refused = [
        replica
            .write_lines(
                "public",
                "readings,device_id=d1 temperature=2 2",
                Default::default(),
            )
            .unwrap_err(),
        replica.create_database("other", None).unwrap_err(),
        replica.drop_table("public", "readings").unwrap_err(),
        replica.compact().unwrap_err(),
    ];
    for e in refused {
        assert!(matches!(e, Error::ReadOnly { .. }), "{e}");
        assert!(e.to_string().contains("send them to the writer"), "{e}");
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    let e = rt
        .block_on(replica.sql("DELETE FROM readings WHERE device_id = 'd0'"))
        .unwrap_err();
    assert!(e.to_string().contains("read-only"), "{e}");
    assert_eq!(objects(&store), before);

    // The writer's new files show up within a few refreshes.
    load_preset(&writer, tiny, 5_000).unwrap();
    writer.flush().unwrap();
    let want = count(&writer);
    let deadline = Instant::now() + Duration::from_secs(20);
    while count(&replica) != want {
        assert!(Instant::now() < deadline, "the replica did not catch up");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_same_answers(&answers(&replica), &answers(&writer));

    // A compaction on the writer: the replica keeps answering the same.
    writer.compact().unwrap();
    let version = writer.stats().manifest_version;
    let deadline = Instant::now() + Duration::from_secs(20);
    while replica.stats().manifest_version < version {
        assert!(Instant::now() < deadline, "the replica did not catch up");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(count(&replica), want);
    assert_eq!(replica.files().len(), writer.files().len());
}

/// Splits a workload batch by the node that owns each row's series.
fn route(batch: &arrow::array::RecordBatch, nodes: &[&str]) -> Vec<arrow::array::RecordBatch> {
    use arrow::array::{AsArray, BooleanArray};
    use arrow::datatypes::Int32Type;
    let tags = ["plant", "line", "device_id", "model"];
    let columns: Vec<_> = tags
        .iter()
        .map(|t| {
            batch
                .column_by_name(t)
                .unwrap()
                .as_dictionary::<Int32Type>()
        })
        .collect();
    let owners: Vec<usize> = (0..batch.num_rows())
        .map(|row| {
            let values: Vec<(&str, &str)> = tags
                .iter()
                .zip(&columns)
                .map(|(t, c)| {
                    let key = c.keys().value(row) as usize;
                    (*t, c.values().as_string::<i32>().value(key))
                })
                .collect();
            let key = ingot_proto::route::series_key("readings", values);
            ingot_proto::route::node_for(&key, nodes).unwrap()
        })
        .collect();
    (0..nodes.len())
        .map(|n| {
            let mask = BooleanArray::from_iter(owners.iter().map(|&o| Some(o == n)));
            arrow::compute::filter_record_batch(batch, &mask).unwrap()
        })
        .collect()
}

#[test]
fn three_writer_nodes_and_a_replica_answer_as_one_node_does() {
    let Some(s3) = S3Server::start() else { return };
    let tiny = Preset::by_name("tiny").unwrap();
    let delete = "DELETE FROM readings WHERE device_id = 'dev-000007'";
    let rt = tokio::runtime::Runtime::new().unwrap();

    // One node: the reference.
    let reference_dir = tempfile::tempdir().unwrap();
    let reference = Engine::open(reference_dir.path(), Options::default()).unwrap();
    load_preset(&reference, tiny, 5_000).unwrap();
    reference.flush().unwrap();
    rt.block_on(reference.sql(delete)).unwrap();
    let want = answers(&reference);

    // Three writer nodes on one prefix, each taking the series it owns.
    let nodes = ["a", "b", "c"];
    let dirs: Vec<_> = nodes.iter().map(|_| tempfile::tempdir().unwrap()).collect();
    let writers: Vec<Engine> = nodes
        .iter()
        .zip(&dirs)
        .map(|(id, dir)| {
            let mut options = bucket_options(s3.store("cluster"));
            options.node_id = Some(id.to_string());
            options.compaction = false;
            options.memtable_budget_bytes = 2 << 20;
            Engine::open(dir.path(), options).unwrap()
        })
        .collect();
    let mut generator = ingot_bench::Generator::new(tiny);
    while let Some(batch) = generator.next_batch(5_000) {
        for (writer, part) in writers.iter().zip(route(&batch, &nodes)) {
            if part.num_rows() > 0 {
                writer.write_batch("public", "readings", &part).unwrap();
            }
        }
    }
    for writer in &writers {
        writer.flush().unwrap();
        assert!(count(writer) > 0, "a node took no series");
    }
    // A delete goes to every node; each applies it to its own rows.
    for writer in &writers {
        rt.block_on(writer.sql(delete)).unwrap();
    }
    let names = objects(&s3.store("cluster"));
    for id in nodes {
        assert!(
            names
                .iter()
                .any(|n| n.starts_with(&format!("nodes/{id}/manifest/"))),
            "{names:?}"
        );
    }

    // A replica of the prefix serves the union, with the pending delete.
    let replica_dir = tempfile::tempdir().unwrap();
    let mut options = bucket_options(s3.store("cluster"));
    options.read_only = true;
    let replica = Engine::open(replica_dir.path(), options).unwrap();
    assert_eq!(
        replica.files().len(),
        writers.iter().map(|w| w.files().len()).sum::<usize>()
    );
    assert_same_answers(&answers(&replica), &want);
    assert_eq!(count(&replica), count(&reference));
}
