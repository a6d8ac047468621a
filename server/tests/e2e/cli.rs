//! `ingot import` and `ingot sql`, against a server and against a data directory.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{Float64Array, RecordBatch, StringArray, TimestampNanosecondArray};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};

use crate::support::{TestServer, count};

/// Runs `ingot ARGS` with `stdin`, bounded in time; returns (success, stdout, stderr).
pub fn ingot(args: &[&str], stdin: &str) -> (bool, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ingot"))
        .args(args)
        .env("RUST_LOG", "warn")
        .env_remove("INGOT_TOKEN")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ingot");
    let mut input = child.stdin.take().expect("stdin");
    input.write_all(stdin.as_bytes()).expect("write stdin");
    drop(input);
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("ingot {args:?} did not finish in time");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut out = String::new();
    let mut err = String::new();
    child
        .stdout
        .take()
        .expect("stdout")
        .read_to_string(&mut out)
        .expect("stdout");
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut err)
        .expect("stderr");
    (status.success(), out, err)
}

fn write_files(dir: &Path) {
    let mut csv = String::from("time,plant,temp\n");
    for i in 0..300 {
        csv.push_str(&format!("{},p{},{}.5\n", 1_000 + i, i % 2, i));
    }
    std::fs::write(dir.join("temps.csv"), csv).unwrap();
    let mut lp = String::new();
    for i in 0..2500 {
        lp.push_str(&format!("lines,dev=d{} v={i}i {}\n", i % 5, i + 1));
    }
    std::fs::write(dir.join("lines.lp"), lp).unwrap();
    let schema = Arc::new(Schema::new(vec![
        Field::new(
            "time",
            DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into())),
            false,
        ),
        Field::new("site", DataType::Utf8, true),
        Field::new("kw", DataType::Float64, true),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(TimestampNanosecondArray::from_iter_values(0..1000).with_timezone("UTC")),
            Arc::new(StringArray::from_iter_values(
                (0..1000).map(|i| format!("s{}", i % 4)),
            )),
            Arc::new(Float64Array::from_iter_values((0..1000).map(f64::from))),
        ],
    )
    .unwrap();
    let file = std::fs::File::create(dir.join("power.parquet")).unwrap();
    let mut writer = parquet::arrow::ArrowWriter::try_new(file, schema, None).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_and_sql_against_a_server_and_a_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    write_files(dir.path());
    let server = TestServer::spawn(&dir.path().join("data"), &[]);
    let addr = server.grpc_url();
    let file = |name: &str| dir.path().join(name).to_string_lossy().into_owned();

    let (ok, _, err) = ingot(&["import", "--addr", &addr, &file("temps.csv")], "");
    assert!(ok, "{err}");
    let (ok, _, err) = ingot(
        &[
            "import",
            "--addr",
            &addr,
            "--database",
            "lp",
            &file("lines.lp"),
        ],
        "",
    );
    assert!(ok, "{err}");
    let (ok, _, err) = ingot(
        &[
            "import",
            "--addr",
            &addr,
            "--table",
            "pw",
            &file("power.parquet"),
        ],
        "",
    );
    assert!(ok, "{err}");
    let mut client = server.client().await;
    assert_eq!(count(&mut client, "SELECT count(*) FROM temps").await, 300);
    assert_eq!(
        count(&mut client, "SELECT count(*) FROM lp.lines").await,
        2500
    );
    assert_eq!(count(&mut client, "SELECT count(*) FROM pw").await, 1000);
    assert_eq!(
        count(&mut client, "SELECT count(DISTINCT plant) FROM temps").await,
        2
    );

    // A second server on the same data directory refuses to start.
    let data = dir.path().join("data").to_string_lossy().into_owned();
    let (ok, out, err) = ingot(
        &[
            "serve",
            "--data-dir",
            &data,
            "--grpc-addr",
            "127.0.0.1:0",
            "--http-addr",
            "127.0.0.1:0",
        ],
        "",
    );
    assert!(!ok && out.is_empty(), "{out}");
    assert!(err.contains("in use by another process"), "{err}");

    // A bad file fails with a message naming it.
    std::fs::write(dir.path().join("bad.lp"), "lines,dev=x v=\n").unwrap();
    let (ok, _, err) = ingot(&["import", "--addr", &addr, &file("bad.lp")], "");
    assert!(!ok);
    assert!(err.contains("bad.lp"), "{err}");

    // ingot sql: one query, then statements from stdin.
    let (ok, out, err) = ingot(
        &["sql", "--addr", &addr, "SELECT count(*) AS n FROM pw"],
        "",
    );
    assert!(ok, "{err}");
    assert!(out.contains("| 1000 |"), "{out}");
    let (ok, out, err) = ingot(
        &["sql", "--addr", &addr, "--database", "lp"],
        "SELECT 40 + 2 AS answer;\nSELECT count(*) AS n\n  FROM lines;\nSELEC oops;\nSELECT 'last' AS l",
    );
    assert!(ok, "{err}");
    assert!(out.contains("| 42     |"), "{out}");
    assert!(out.contains("| 2500 |"), "{out}");
    assert!(out.contains("| last |"), "{out}");
    assert!(err.contains("error:"), "{err}");

    // The same against a data directory, in-process.
    let local = dir.path().join("local");
    let local = local.to_string_lossy().into_owned();
    let (ok, _, err) = ingot(&["import", "--data-dir", &local, &file("lines.lp")], "");
    assert!(ok, "{err}");
    let (ok, out, err) = ingot(
        &[
            "sql",
            "--data-dir",
            &local,
            "SELECT count(*) AS n FROM lines",
        ],
        "",
    );
    assert!(ok, "{err}");
    assert!(out.contains("| 2500 |"), "{out}");
}

/// Parquet data files under a data directory's tables (not the summaries
/// beside them).
fn parquet_files(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| {
            let path = e.path();
            if path.is_dir() {
                parquet_files(&path)
            } else {
                let name = path.to_string_lossy();
                usize::from(name.ends_with(".parquet"))
            }
        })
        .sum()
}

#[test]
fn compact_merges_a_data_directory_offline() {
    let dir = tempfile::tempdir().unwrap();
    write_files(dir.path());
    let data = dir.path().join("data");
    let data_arg = data.to_string_lossy().into_owned();
    let lines = dir.path().join("lines.lp").to_string_lossy().into_owned();
    // Three imports of the same rows: three files of one partition, each
    // row three times.
    for _ in 0..3 {
        let (ok, _, err) = ingot(&["import", "--data-dir", &data_arg, &lines], "");
        assert!(ok, "{err}");
    }
    assert_eq!(parquet_files(&data.join("tables")), 3);
    let (ok, out, err) = ingot(&["compact", "--data-dir", &data_arg], "");
    assert!(ok, "{err}");
    assert!(out.contains("compacted 1 partitions: 3 files"), "{out}");
    assert_eq!(parquet_files(&data.join("tables")), 1);
    let (ok, out, err) = ingot(
        &[
            "sql",
            "--data-dir",
            &data_arg,
            "SELECT count(*) AS n, sum(v) AS s FROM lines",
        ],
        "",
    );
    assert!(ok, "{err}");
    assert!(out.contains("| 2500 | 3123750 |"), "{out}");
    // Nothing left to do: a second run merges nothing.
    let (ok, out, err) = ingot(&["compact", "--data-dir", &data_arg], "");
    assert!(ok, "{err}");
    assert!(out.contains("compacted 0 partitions"), "{out}");
}
