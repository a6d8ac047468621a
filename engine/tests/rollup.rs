//! Continuous rollups (`CREATE MATERIALIZED VIEW`): the rollup always equals
//! its query over the raw rows, through streaming writes, flushes, late
//! rows, deletes and a restart, whether its windows are stored yet or not;
//! it keeps its history when the raw rows expire.

use std::time::Duration;

use ingot_engine::{Engine, Options};

mod common;
use common::{count, query, write};

const VIEW: &str = "SELECT date_bin(INTERVAL '1 minute', time) AS time, dev, \
                    avg(v) AS avg_v, max(v) AS max_v, count(*) AS n, sum(k) AS k \
                    FROM m GROUP BY 1, dev";

const RAW: &str = "SELECT * FROM (SELECT date_bin(INTERVAL '1 minute', time) AS time, dev, \
                   avg(v) AS avg_v, max(v) AS max_v, count(*) AS n, sum(k) AS k \
                   FROM m GROUP BY 1, dev) ORDER BY time, dev";

const ROLLUP: &str = "SELECT time, dev, avg_v, max_v, n, k FROM m_1m ORDER BY time, dev";

fn options() -> Options {
    let mut o = Options::default();
    o.compaction = false;
    // The test decides when the maintainer runs.
    o.rollup_interval = Duration::from_secs(3600);
    o
}

/// Rows for minutes `from..to`: three devices, two samples a minute.
fn lines(from: i64, to: i64) -> String {
    let mut lp = String::new();
    for minute in from..to {
        for dev in 0..3 {
            for second in [5, 35] {
                let v = (minute * 7 + dev * 3 + second) % 40;
                lp.push_str(&format!(
                    "m,dev=d{dev} v={v}.5,k={}i {}\n",
                    minute + dev,
                    minute * 60 + second
                ));
            }
        }
    }
    lp
}

fn assert_equal(engine: &Engine, when: &str) {
    let raw = query(engine, RAW);
    let rollup = query(engine, ROLLUP);
    assert_eq!(rollup, raw, "{when}");
}

fn caught_up(engine: &Engine) -> (i64, i64) {
    (
        count(
            engine,
            "SELECT CAST(caught_up_seq AS BIGINT) FROM system.rollups",
        ),
        count(
            engine,
            "SELECT CAST(pending_windows AS BIGINT) FROM system.rollups",
        ),
    )
}

#[test]
fn a_rollup_equals_its_query_over_the_raw_rows() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path(), options()).unwrap();
    write(&engine, &lines(0, 30));
    engine.flush().unwrap();
    query(&engine, &format!("CREATE MATERIALIZED VIEW m_1m AS {VIEW}"));
    // Creating it asks the maintainer to fill it; until it has, windows
    // come from the raw rows.
    assert_equal(&engine, "right after creation");

    engine.refresh_rollups().unwrap();
    let (mark, pending) = caught_up(&engine);
    assert!(mark > 0);
    assert_eq!(pending, 0);
    assert_equal(&engine, "after the first refresh");

    // Streaming writes: the memtable's windows are pending, the rest stored.
    write(&engine, &lines(30, 40));
    assert_eq!(caught_up(&engine).1, 10);
    assert_equal(&engine, "with rows in the memtable");
    engine.flush().unwrap();
    engine.refresh_rollups().unwrap();
    assert_eq!(caught_up(&engine).1, 0);
    assert_equal(&engine, "after a flush");

    // Late rows into old windows, one of them new to a device.
    write(
        &engine,
        "m,dev=d1 v=99.5,k=1i 65\nm,dev=d4 v=1.5,k=2i 610\nm,dev=d0 v=0.5,k=3i 1235\n",
    );
    assert_equal(&engine, "late rows in the memtable");
    engine.flush().unwrap();
    assert_equal(&engine, "late rows flushed, not yet rolled up");
    engine.refresh_rollups().unwrap();
    assert_equal(&engine, "late rows rolled up");

    // Deletes: one device's rows in a range, and a whole window.
    query(
        &engine,
        "DELETE FROM m WHERE dev = 'd2' AND time >= '1970-01-01T00:05:00Z' AND time < '1970-01-01T00:12:00Z'",
    );
    query(
        &engine,
        "DELETE FROM m WHERE time >= '1970-01-01T00:20:00Z' AND time < '1970-01-01T00:21:00Z'",
    );
    assert_equal(&engine, "deletes not yet rolled up");
    engine.flush().unwrap();
    engine.refresh_rollups().unwrap();
    assert_eq!(caught_up(&engine).1, 0);
    assert_equal(&engine, "deletes rolled up");
    assert_eq!(
        count(
            &engine,
            "SELECT count(*) FROM m_1m WHERE time = '1970-01-01T00:20:00Z'"
        ),
        0
    );

    // A restart: the definition and the mark survive.
    write(&engine, &lines(40, 45));
    engine.close().unwrap();
    let engine = Engine::open(dir.path(), options()).unwrap();
    assert_equal(&engine, "after a restart");
    engine.refresh_rollups().unwrap();
    assert_equal(&engine, "after a restart and a refresh");
    assert_eq!(caught_up(&engine).1, 0);

    // The rollup is Ingot's to write and drop.
    let refused = engine
        .write_lines(
            "public",
            "m_1m,dev=d0 n=1i 0",
            ingot_engine::Precision::Second,
        )
        .unwrap_err()
        .to_string();
    assert!(refused.contains("is a materialized view"), "{refused}");
    let refused = common::runtime()
        .block_on(engine.sql("DROP TABLE m_1m"))
        .unwrap_err()
        .to_string();
    assert!(refused.contains("DROP MATERIALIZED VIEW"), "{refused}");
    query(&engine, "DROP MATERIALIZED VIEW m_1m");
    assert_eq!(count(&engine, "SELECT count(*) FROM system.rollups"), 0);
    engine.close().unwrap();
}

#[test]
fn a_rollup_in_a_database_of_its_own_keeps_history_the_raw_rows_lose() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path(), options()).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let start = now / 600 * 600 - 3600;
    let lp: String = (0..30)
        .map(|i| format!("m,dev=d{} v={i}.5 {}\n", i % 2, start + i * 60))
        .collect();
    write(&engine, &lp);
    engine.flush().unwrap();
    query(
        &engine,
        "CREATE DATABASE archive WITH (retention_period = '730d')",
    );
    query(
        &engine,
        "CREATE MATERIALIZED VIEW archive.m_10m AS \
         SELECT date_bin(INTERVAL '10 minutes', time) AS time, dev, count(*) AS n, max(v) AS max_v \
         FROM public.m GROUP BY 1, dev",
    );
    engine.refresh_rollups().unwrap();
    let before = query(&engine, "SELECT * FROM archive.m_10m ORDER BY time, dev");
    assert_eq!(count(&engine, "SELECT count(*) FROM archive.m_10m"), 6);
    // The raw rows expire; the rollup keeps its windows.
    query(
        &engine,
        "ALTER DATABASE public SET retention_period = '10m'",
    );
    assert_eq!(count(&engine, "SELECT count(*) FROM m"), 0);
    assert_eq!(
        query(&engine, "SELECT * FROM archive.m_10m ORDER BY time, dev"),
        before
    );
    engine.refresh_rollups().unwrap();
    assert_eq!(
        query(&engine, "SELECT * FROM archive.m_10m ORDER BY time, dev"),
        before
    );
    engine.close().unwrap();
}

#[test]
fn a_rollup_query_is_checked_when_it_is_created() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path(), options()).unwrap();
    write(&engine, "m,dev=d0 v=1.5,note=\"x\" 0\n");
    let rt = common::runtime();
    for (view, says) in [
        (
            "SELECT dev, avg(v) AS v FROM m GROUP BY dev",
            "GROUP BY date_bin",
        ),
        (
            "SELECT date_bin(INTERVAL '1 minute', time) AS t, dev, avg(v) AS v FROM m GROUP BY 1, dev",
            "AS time",
        ),
        (
            "SELECT date_bin(INTERVAL '1 minute', time) AS time, avg(v) FROM m GROUP BY 1",
            "name each of a rollup's values",
        ),
        (
            "SELECT date_bin(INTERVAL '1 minute', time) AS time, note, count(*) AS n FROM m GROUP BY 1, note",
            "neither the date_bin nor a tag",
        ),
        (
            "SELECT date_bin(INTERVAL '1 month', time) AS time, count(*) AS n FROM m GROUP BY 1",
            "fixed interval",
        ),
        (
            "SELECT date_bin(INTERVAL '1 minute', time) AS time, count(*) AS n FROM m GROUP BY 1 ORDER BY 1",
            "no ORDER BY",
        ),
        (
            "SELECT date_bin(INTERVAL '1 minute', time) AS time, count(*) AS n FROM nope GROUP BY 1",
            "nope",
        ),
    ] {
        let e = rt
            .block_on(engine.sql(&format!("CREATE MATERIALIZED VIEW v AS {view}")))
            .unwrap_err()
            .to_string();
        assert!(e.contains(says), "{view}: {e}");
    }
    engine.close().unwrap();
}
