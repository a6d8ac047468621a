//! Retention: a database's period hides older rows from every query at once
//! (memtable and files, full scans and the last-rows path), survives a
//! restart, rejects writes of older rows with the line that has one, and
//! removes the files that hold only older rows from the manifest and the disk.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ingot_engine::{Engine, Error, Options, Precision};

mod common;
use common::{count, manual, query, runtime, write};

const DAY: u64 = 86_400;

/// Seconds since the epoch, `days_ago` days back from now.
fn ago(days_ago: u64) -> u64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    now - days_ago * DAY
}

/// Device `old` has rows 40 and 35 days ago only, in files; device `new`
/// has one 40 days ago (in a file) and recent ones, in files and in the
/// memtable.
fn load(engine: &Engine) {
    write(
        engine,
        &format!(
            "m,device=old v=1i {}\nm,device=old v=2i {}\nm,device=new v=3i {}\n",
            ago(40),
            ago(35),
            ago(40)
        ),
    );
    engine.flush().unwrap();
    write(engine, &format!("m,device=new v=4i {}\n", ago(10)));
    engine.flush().unwrap();
    write(engine, &format!("m,device=new v=5i {}\n", ago(0)));
}

const LAST_ROWS: &str = "SELECT device, max(time) IS NOT NULL AS seen, \
                         last_value(v ORDER BY time) AS v FROM m GROUP BY device ORDER BY device";

#[test]
fn retention_hides_older_rows_at_once_and_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path(), manual()).unwrap();
    load(&engine);
    assert_eq!(count(&engine, "SELECT count(*) FROM m"), 5);
    assert_eq!(engine.retention("public").unwrap(), None);

    engine
        .set_retention("public", Some(Duration::from_secs(30 * DAY)))
        .unwrap();
    // Every path hides the rows: a count (which must not come from the
    // files' statistics), a projection without `time`, a filter, and the
    // last rows of each series.
    assert_eq!(count(&engine, "SELECT count(*) FROM m"), 2);
    assert_eq!(count(&engine, "SELECT sum(v) FROM m"), 9);
    assert_eq!(
        count(&engine, "SELECT count(*) FROM m WHERE device = 'old'"),
        0
    );
    assert_eq!(
        count(&engine, "SELECT count(*) FROM (SELECT v FROM m LIMIT 3)"),
        2
    );
    let last = query(&engine, LAST_ROWS);
    assert!(!last.contains("old"), "{last}");
    assert!(last.contains("| new    | true | 5 |"), "{last}");
    engine.close().unwrap();

    let engine = Engine::open(dir.path(), manual()).unwrap();
    assert_eq!(
        engine.retention("public").unwrap(),
        Some(Duration::from_secs(30 * DAY))
    );
    assert_eq!(count(&engine, "SELECT count(*) FROM m"), 2);

    // Lifting the period shows the rows again: nothing was deleted yet.
    engine.set_retention("public", None).unwrap();
    assert_eq!(count(&engine, "SELECT count(*) FROM m"), 5);
    assert_eq!(query(&engine, LAST_ROWS).matches("true").count(), 2);
}

#[test]
fn expired_files_leave_storage_at_compaction() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path(), manual()).unwrap();
    load(&engine);
    engine.flush().unwrap();
    let old: Vec<_> = engine
        .files()
        .into_iter()
        .filter(|f| f.max_time < (ago(30) * 1_000_000_000) as i64)
        .collect();
    assert_eq!(
        old.len(),
        2,
        "the first flush wrote a file per day of old rows"
    );
    assert!(old.iter().all(|f| dir.path().join(&f.path).exists()));

    engine
        .set_retention("public", Some(Duration::from_secs(30 * DAY)))
        .unwrap();
    engine.compact().unwrap();
    let live = engine.files();
    assert!(
        live.iter().all(|f| old.iter().all(|o| o.id != f.id)),
        "{live:?}"
    );
    assert!(old.iter().all(|f| !dir.path().join(&f.path).exists()));
    let stats = engine.stats();
    assert_eq!(stats.files_expired, 2);
    assert_eq!(stats.rows_expired, 3);
    assert_eq!(count(&engine, "SELECT count(*) FROM m"), 2);
    engine.close().unwrap();

    let engine = Engine::open(dir.path(), manual()).unwrap();
    assert!(
        engine
            .files()
            .iter()
            .all(|f| old.iter().all(|o| o.id != f.id))
    );
    assert_eq!(count(&engine, "SELECT sum(v) FROM m"), 9);
}

#[test]
fn the_background_task_removes_expired_files() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path(), Options::default()).unwrap();
    write(&engine, &format!("m,device=a v=1i {}\n", ago(3)));
    engine.flush().unwrap();
    write(&engine, &format!("m,device=a v=2i {}\n", ago(0)));
    engine.flush().unwrap();
    engine
        .set_retention("public", Some(Duration::from_secs(DAY)))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while engine.stats().files_expired == 0 {
        assert!(Instant::now() < deadline, "no file expired within 20 s");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(engine.files().len(), 1);
    assert_eq!(count(&engine, "SELECT sum(v) FROM m"), 2);
}

#[test]
fn a_write_older_than_the_horizon_is_refused_whole() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path(), manual()).unwrap();
    engine
        .set_retention("public", Some(Duration::from_secs(7 * DAY)))
        .unwrap();
    let lp = format!(
        "m,device=a v=1i {}\nm,device=a v=2i {}\nm,device=b v=3i {}\n",
        ago(1),
        ago(8),
        ago(9)
    );
    let err = engine
        .write_lines("public", &lp, Precision::Second)
        .unwrap_err();
    assert!(
        matches!(err, Error::BeyondRetention { line: Some(2), .. }),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(message.contains("on line 2"), "{message}");
    assert!(message.contains("retention period of 7d"), "{message}");
    assert!(
        message.contains("nothing of the write was stored"),
        "{message}"
    );
    assert!(err.is_invalid_input());
    // Atomic: the good line 1 was not stored either; not even the table
    // was created.
    assert!(engine.tables("public").is_empty());
    write(&engine, &format!("m,device=a v=1i {}\n", ago(1)));
    assert_eq!(count(&engine, "SELECT count(*) FROM m"), 1);
}

#[test]
fn databases_are_managed_with_sql() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path(), manual()).unwrap();
    let rt = runtime();
    let sql = |s: &str| rt.block_on(engine.sql(s));
    sql("CREATE DATABASE plant WITH (retention_period = '90d')").unwrap();
    assert_eq!(
        engine.retention("plant").unwrap(),
        Some(Duration::from_secs(90 * DAY))
    );
    let err = sql("CREATE DATABASE plant").unwrap_err();
    assert!(matches!(err, Error::AlreadyExists(_)), "{err:?}");
    sql("CREATE DATABASE IF NOT EXISTS plant").unwrap();
    sql("ALTER DATABASE plant SET 'ttl' = '1d'").unwrap();
    assert_eq!(
        engine.retention("plant").unwrap(),
        Some(Duration::from_secs(DAY))
    );
    sql("ALTER DATABASE plant UNSET retention_period").unwrap();
    assert_eq!(engine.retention("plant").unwrap(), None);
    let err = sql("ALTER DATABASE nowhere SET retention_period = '1d'").unwrap_err();
    assert!(matches!(err, Error::NotFound(_)), "{err:?}");
    let err = sql("ALTER DATABASE plant SET retention_period = 'a while'").unwrap_err();
    assert!(err.to_string().contains("30d"), "{err}");

    // An empty database is persisted at once, with its period.
    sql("CREATE DATABASE lab WITH (ttl = '12h')").unwrap();
    drop(engine);
    let engine = Engine::open(dir.path(), manual()).unwrap();
    assert!(engine.databases().contains(&"lab".to_string()));
    assert_eq!(
        engine.retention("lab").unwrap(),
        Some(Duration::from_secs(12 * 3600))
    );
}

#[test]
fn new_databases_get_the_default_period() {
    let dir = tempfile::tempdir().unwrap();
    let mut options = manual();
    options.default_retention = Some(Duration::from_secs(2 * DAY));
    let engine = Engine::open(dir.path(), options).unwrap();
    assert_eq!(
        engine.retention("public").unwrap(),
        Some(Duration::from_secs(2 * DAY))
    );
    let err = engine
        .write_lines("fresh", &format!("m v=1i {}\n", ago(3)), Precision::Second)
        .unwrap_err();
    assert!(matches!(err, Error::BeyondRetention { .. }), "{err:?}");
    engine
        .write_lines("fresh", &format!("m v=1i {}\n", ago(1)), Precision::Second)
        .unwrap();
    assert_eq!(
        engine.retention("fresh").unwrap(),
        Some(Duration::from_secs(2 * DAY))
    );
    let rt = runtime();
    rt.block_on(engine.sql("CREATE DATABASE keep WITH (retention_period = 'none')"))
        .unwrap();
    assert_eq!(engine.retention("keep").unwrap(), None);
}
