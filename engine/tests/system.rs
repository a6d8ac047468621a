//! The `system` tables show the live files, the recent compactions and the
//! databases with their retention, as of the query.

use std::time::Duration;

use ingot_engine::{Engine, Options, Precision};

mod common;
use common::{query, runtime};

#[test]
fn system_tables_show_files_compactions_and_databases() {
    let dir = tempfile::tempdir().unwrap();
    let mut options = Options::default();
    options.compaction = false;
    let engine = Engine::open(dir.path(), options).unwrap();
    let day = 86_400;
    for (i, t) in [(1, 10 * day), (2, 10 * day + 5), (3, 12 * day)] {
        engine
            .write_lines(
                "public",
                &format!("m,device=d{i} v={i}i {t}\n"),
                Precision::Second,
            )
            .unwrap();
        engine.flush().unwrap();
    }
    let files = query(
        &engine,
        "SELECT database, table_name, partition, rows, level, min_time \
         FROM system.files ORDER BY min_time",
    );
    assert_eq!(
        files.trim(),
        "\
+----------+------------+----------------------+------+-------+----------------------+
| database | table_name | partition            | rows | level | min_time             |
+----------+------------+----------------------+------+-------+----------------------+
| public   | m          | 1970-01-11T00:00:00Z | 1    | 0     | 1970-01-11T00:00:00Z |
| public   | m          | 1970-01-11T00:00:00Z | 1    | 0     | 1970-01-11T00:00:05Z |
| public   | m          | 1970-01-13T00:00:00Z | 1    | 0     | 1970-01-13T00:00:00Z |
+----------+------------+----------------------+------+-------+----------------------+"
    );
    let sizes = query(
        &engine,
        "SELECT count(*) AS n FROM system.files WHERE size_bytes > 0 AND path LIKE 'tables/public/m/%'",
    );
    assert!(sizes.contains("| 3 |"), "{sizes}");

    engine.compact().unwrap();
    let compactions = query(
        &engine,
        "SELECT table_name, partition, level, files_in, files_out, rows_in, rows_out \
         FROM system.compactions",
    );
    assert_eq!(
        compactions.trim(),
        "\
+------------+----------------------+-------+----------+-----------+---------+----------+
| table_name | partition            | level | files_in | files_out | rows_in | rows_out |
+------------+----------------------+-------+----------+-----------+---------+----------+
| m          | 1970-01-11T00:00:00Z | 2     | 2        | 1         | 2       | 2        |
+------------+----------------------+-------+----------+-----------+---------+----------+"
    );
    assert!(query(&engine, "SELECT count(*) AS n FROM system.files").contains("| 2 |"));

    engine
        .set_retention("public", Some(Duration::from_secs(30 * day)))
        .unwrap();
    query(&engine, "CREATE DATABASE plant");
    let databases = query(
        &engine,
        "SELECT database, retention_period, retention_seconds, tables FROM system.databases \
         ORDER BY database",
    );
    assert_eq!(
        databases.trim(),
        "\
+----------+------------------+-------------------+--------+
| database | retention_period | retention_seconds | tables |
+----------+------------------+-------------------+--------+
| plant    | none             |                   | 0      |
| public   | 30d              | 2592000           | 1      |
+----------+------------------+-------------------+--------+"
    );

    let err = runtime()
        .block_on(engine.sql("CREATE DATABASE system"))
        .unwrap_err();
    assert!(err.to_string().contains("reserved"), "{err}");
    let err = engine
        .write_lines("system", "m v=1", Precision::Second)
        .unwrap_err();
    assert!(err.to_string().contains("reserved"), "{err}");
}
