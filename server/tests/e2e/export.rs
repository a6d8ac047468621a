//! Export and backup: `ingot export` / `ingot import DIR` round trips, and
//! `COPY ... TO` over HTTP streaming the file back instead of writing it on
//! the server.

use std::path::Path;

use arrow::array::RecordBatch;
use bytes::Bytes;
use ingot_engine::{Engine, Options};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use reqwest::StatusCode;

use crate::cli::ingot;
use crate::support::{TestServer, http, query};

const DAY: i64 = 86_400;

async fn write(server: &TestServer, lines: &str) {
    let response = http()
        .post(server.http_url("/api/v3/write_lp?db=plant&precision=second"))
        .body(lines.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT, "{lines}");
}

/// The answer of `sql` over a data directory, and its schema's types.
async fn local_answer(dir: &Path, sql: &str) -> (String, Vec<String>) {
    let engine = Engine::open(dir, Options::default()).unwrap();
    let batches = engine.sql(sql).await.unwrap();
    let answer = render(&batches);
    let types = types(&batches);
    tokio::task::spawn_blocking(move || engine.close().unwrap())
        .await
        .unwrap();
    (answer, types)
}

fn render(batches: &[RecordBatch]) -> String {
    arrow::util::pretty::pretty_format_batches(batches)
        .unwrap()
        .to_string()
}

fn types(batches: &[RecordBatch]) -> Vec<String> {
    batches[0]
        .schema()
        .fields()
        .iter()
        .map(|f| format!("{}: {}", f.name(), f.data_type()))
        .collect()
}

const ALL: &str = "SELECT * FROM plant.m ORDER BY device, time";

/// `ingot export` of plant.m from `server` into `dir`, with `extra` flags;
/// returns (success, stderr).
fn export(server: &TestServer, dir: &Path, extra: &[&str]) -> (bool, String) {
    let addr = server.grpc_url();
    let mut args = vec![
        "export",
        "--addr",
        &addr,
        "--database",
        "plant",
        "--table",
        "m",
    ];
    args.extend(extra);
    args.push(dir.to_str().unwrap());
    let (ok, _, err) = ingot(&args, "");
    (ok, err)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_and_import_round_trip_duplicates_late_rows_and_deletes() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::spawn(&dir.path().join("data"), &["--flush-interval", "100ms"]);
    // Two days of three devices; then re-sent rows (one with a new value,
    // one with only one of its fields), late rows for the first day, and a
    // delete.
    let mut lines = String::new();
    for i in 0..40i64 {
        let t = DAY * (i % 2) + 60 * i;
        lines.push_str(&format!(
            "m,device=d{},line=l{} temp={}.5,power={}i {t}\n",
            i % 3,
            i % 2,
            i,
            i * 10
        ));
    }
    write(&server, &lines).await;
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    write(
        &server,
        "m,device=d0,line=l0 temp=99.5 0\nm,device=d1,line=l1 power=7i 60\n",
    )
    .await;
    write(
        &server,
        "m,device=d2,line=l0 temp=1.25,power=3i 30\nm,device=d0,line=l0 temp=2.25 90\n",
    )
    .await;
    let mut flight = server.client().await;
    flight
        .execute_update("DELETE FROM plant.m WHERE device = 'd1' AND time > '1970-01-02T00:00:00Z'")
        .await
        .unwrap();
    let expected = render(&query(&mut flight, ALL).await);
    assert!(expected.contains("99.5"), "{expected}");

    // The whole table, from the server, into a fresh data directory.
    let backup = dir.path().join("backup");
    let (ok, err) = export(&server, &backup, &[]);
    assert!(ok, "{err}");
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(backup.join("ingot-export.json")).unwrap())
            .unwrap();
    assert_eq!(manifest["database"], "plant");
    assert_eq!(manifest["table"], "m");
    let restored = dir.path().join("restored");
    let (ok, _, err) = ingot(
        &[
            "import",
            "--data-dir",
            restored.to_str().unwrap(),
            backup.to_str().unwrap(),
        ],
        "",
    );
    assert!(ok, "{err}");
    let (answer, answer_types) = local_answer(&restored, ALL).await;
    assert_eq!(answer, expected);
    // Tags stay tags (dictionaries in Ingot), fields keep their types.
    assert_eq!(
        answer_types,
        [
            "time: Timestamp(ns, \"UTC\")",
            "device: Dictionary(Int32, Utf8)",
            "line: Dictionary(Int32, Utf8)",
            "temp: Float64",
            "power: Int64"
        ]
    );

    // A time range, in files of 7 rows, into another database.
    let day_one = dir.path().join("day-one");
    let (ok, err) = export(
        &server,
        &day_one,
        &[
            "--from",
            "1970-01-01T00:00:00Z",
            "--to",
            "1970-01-02T00:00:00Z",
            "--rows-per-file",
            "7",
        ],
    );
    assert!(ok, "{err}");
    let parquet_files = std::fs::read_dir(&day_one)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "parquet")
        })
        .count();
    assert!(parquet_files > 1, "{parquet_files} files");
    let (ok, _, err) = ingot(
        &[
            "import",
            "--data-dir",
            restored.to_str().unwrap(),
            "--database",
            "archive",
            day_one.to_str().unwrap(),
        ],
        "",
    );
    assert!(ok, "{err}");
    let range = "SELECT * FROM plant.m WHERE time < '1970-01-02T00:00:00Z' ORDER BY device, time";
    let expected_range = render(&query(&mut flight, range).await);
    let (answer, _) =
        local_answer(&restored, "SELECT * FROM archive.m ORDER BY device, time").await;
    assert_eq!(answer, expected_range);

    // An export never overwrites one, and a half-written one is refused.
    let (ok, err) = export(&server, &backup, &[]);
    assert!(!ok && err.contains("already holds an export"), "{err}");
    std::fs::remove_file(day_one.join("ingot-export.json")).unwrap();
    let (ok, _, err) = ingot(
        &[
            "import",
            "--data-dir",
            restored.to_str().unwrap(),
            day_one.to_str().unwrap(),
        ],
        "",
    );
    assert!(!ok && err.contains("ingot-export.json"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_to_over_http_streams_the_file_back() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::spawn(&dir.path().join("data"), &[]);
    let rows = 300_000i64;
    for chunk in 0..3 {
        let lines: String = (chunk * rows / 3..(chunk + 1) * rows / 3)
            .map(|i| format!("big,dev=d{} v={i}i {i}\n", i % 7))
            .collect();
        write(&server, &lines).await;
    }
    let target = dir.path().join("on-the-server.parquet");
    let sql = format!(
        "COPY (SELECT dev, v, time FROM big ORDER BY time) TO '{}' STORED AS PARQUET",
        target.display()
    );
    let response = http()
        .get(server.http_url("/api/v3/query_sql"))
        .query(&[("db", "plant"), ("q", sql.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["content-disposition"],
        "attachment; filename=\"on-the-server.parquet\""
    );
    let body: Bytes = response.bytes().await.unwrap();
    assert!(!target.exists(), "the server wrote the file");
    let reader = ParquetRecordBatchReaderBuilder::try_new(body).unwrap();
    // Sent a row group at a time, not as one buffered file.
    assert!(reader.metadata().num_row_groups() >= 3);
    let batches: Vec<RecordBatch> = reader.build().unwrap().collect::<Result<_, _>>().unwrap();
    let read: usize = batches.iter().map(|b| b.num_rows()).sum();
    assert_eq!(read as i64, rows);

    // CSV by extension.
    let response = http()
        .get(server.http_url("/api/v3/query_sql"))
        .query(&[
            ("db", "plant"),
            (
                "q",
                "COPY (SELECT dev, v FROM big WHERE v < 3 ORDER BY v) TO 'small.csv'",
            ),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.text().await.unwrap(), "dev,v\nd0,0\nd1,1\nd2,2\n");

    // Flight SQL has no file to send: a clear refusal.
    let mut flight = server.client().await;
    let e = flight.query(&sql).await.unwrap_err().to_string();
    assert!(
        e.contains("would write the file where the server runs"),
        "{e}"
    );
}
