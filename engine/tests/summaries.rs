//! Aggregates answered from file summaries give the answers full scans
//! give: through duplicates, late rows, re-sent fields, deletes, rows still
//! in the memtable, compaction and a reopen; with the summaries decoded in
//! memory, read from Parquet, or some of each.

use std::time::Duration;

use ingot_engine::{Engine, Options};
use rand::{Rng, SeedableRng};

mod common;
use common::{manual, query, runtime, write};

/// 2026-01-01T00:00:00Z in seconds.
const START: i64 = 1_767_225_600;

fn options(summaries: bool) -> Options {
    let mut o = manual();
    o.summary_window = summaries.then(|| Duration::from_secs(15 * 60));
    o
}

fn with_cache(bytes: usize) -> Options {
    let mut o = options(true);
    o.summary_cache_bytes = bytes;
    o
}

/// Where the summaries of a query come from.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Cache {
    /// All decoded in memory.
    All,
    /// None: every one is read from Parquet.
    None,
    /// Some of each.
    Some,
}

impl Cache {
    fn options(self) -> Options {
        match self {
            Cache::All => with_cache(256 << 20),
            Cache::None => with_cache(0),
            // About two of the six files' summaries.
            Cache::Some => with_cache(48 << 10),
        }
    }

    /// Checks where a plan read the summaries from.
    fn check(self, engine: &Engine, sql: &str) {
        let plan = query(engine, &format!("EXPLAIN {sql}"));
        let cached = engine.stats().summary_cache_bytes;
        match self {
            Cache::All => assert!(!plan.contains(".summary") && cached > 0, "{plan}"),
            Cache::None => assert!(plan.contains(".summary") && cached == 0, "{plan}"),
            Cache::Some => assert!(
                plan.contains(".summary") && cached > 0 && cached <= 48 << 10,
                "{cached} bytes cached\n{plan}"
            ),
        }
    }
}

/// Queries summaries can answer (when their files need no merge), then
/// queries they cannot.
const SUMMARIZED: &[&str] = &[
    "SELECT dev, date_bin(INTERVAL '1 hour', time) AS h, round(avg(v), 6) AS a, max(v), min(v), count(*), count(note), sum(w), round(sum(v), 6) AS s FROM m GROUP BY 1, 2 ORDER BY 1, 2",
    "SELECT dev, max(v) AS top FROM m WHERE time >= '2026-01-01T01:00:00Z' AND time < '2026-01-01T02:00:00Z' GROUP BY dev ORDER BY top DESC, dev LIMIT 5",
    "SELECT plant, date_bin(INTERVAL '30 minutes', time) AS t, round(avg(v), 6) AS a, sum(CASE WHEN status = 2 THEN 1 ELSE 0 END) AS faults FROM m GROUP BY 1, 2 ORDER BY 1, 2",
    "SELECT plant, count(*), round(avg(v), 6) AS a, min(w), max(w) FROM m WHERE status = 2 GROUP BY plant ORDER BY plant",
    "SELECT count(*), sum(w), min(status), max(status), round(avg(w), 6) AS a FROM m WHERE plant = 'p1'",
    "SELECT status, count(*), count(v) FROM m GROUP BY status ORDER BY status",
    "SELECT count(*) FROM m WHERE plant = 'nowhere'",
    "SELECT plant, dev, date_bin(INTERVAL '15 minutes', time, TIMESTAMP '2026-01-01T00:45:00Z') AS t, count(*) FROM m WHERE time >= '2026-01-01T00:30:00Z' AND time < '2026-01-01T05:00:00Z' AND dev IN ('d01', 'd07') GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
];

const NOT_SUMMARIZED: &[&str] = &[
    // A bound inside a window, a bin narrower than one, a filter on a float.
    "SELECT dev, max(v) FROM m WHERE time >= '2026-01-01T01:07:00Z' GROUP BY dev ORDER BY dev",
    "SELECT dev, date_bin(INTERVAL '5 minutes', time) AS t, count(*) FROM m GROUP BY 1, 2 ORDER BY 1, 2",
    "SELECT dev, count(*) FROM m WHERE v > 50 GROUP BY dev ORDER BY dev",
];

fn answers(engine: &Engine) -> Vec<String> {
    SUMMARIZED
        .iter()
        .chain(NOT_SUMMARIZED)
        .map(|q| query(engine, q))
        .collect()
}

fn assert_same(got: &[String], expected: &[String]) {
    for ((sql, a), b) in SUMMARIZED
        .iter()
        .chain(NOT_SUMMARIZED)
        .zip(got)
        .zip(expected)
    {
        if let Some((x, y)) = a.lines().zip(b.lines()).find(|(x, y)| x != y) {
            panic!("{sql}\n  got      {x}\n  expected {y}");
        }
        assert_eq!(a.lines().count(), b.lines().count(), "{sql}");
    }
}

/// Whether the plan of `sql` combines partial aggregates of summaries and
/// rows.
fn reads_summaries(engine: &Engine, sql: &str) -> bool {
    query(engine, &format!("EXPLAIN {sql}")).contains("__partial_")
}

/// Six hours of twelve devices in two plants every 30 s, one flushed file
/// per hour; then late rows, a re-sent field, a delete, and rows left in
/// the memtable, each touching one hour.
fn load(engine: &Engine) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    for hour in 0..6i64 {
        let mut lp = String::new();
        for step in (hour * 120)..((hour + 1) * 120) {
            for d in 0..12 {
                let v: f64 = rng.random_range(0.0..100.0);
                let status = if rng.random_range(0..20) == 0 {
                    2
                } else {
                    d % 2
                };
                let note = if step % 50 == 0 { ",note=\"x\"" } else { "" };
                lp += &format!(
                    "m,plant=p{},dev=d{d:02} v={v:.2},w={}i,status={status}i{note} {}\n",
                    d % 2,
                    rng.random_range(0..1000),
                    START + step * 30
                );
            }
        }
        write(engine, &lp);
        engine.flush().unwrap();
    }
    // Late rows and a re-sent field in hour 2; a duplicate within a request.
    let mut lp = String::new();
    lp += &format!("m,plant=p0,dev=d00 v=-5 {}\n", START + 2 * 3600 + 15);
    lp += &format!("m,plant=p1,dev=d01 v=500.5 {}\n", START + 2 * 3600 + 60);
    lp += &format!("m,plant=p1,dev=d03 status=2i {}\n", START + 2 * 3600 + 90);
    lp += &format!(
        "m,plant=p0,dev=d02 v=1 {}\nm,plant=p0,dev=d02 v=2 {}\n",
        START + 2 * 3600 + 120,
        START + 2 * 3600 + 120
    );
    write(engine, &lp);
    engine.flush().unwrap();
    // A delete in hour 4.
    runtime()
        .block_on(engine.sql(
            "DELETE FROM m WHERE dev = 'd04' AND time >= '2026-01-01T04:10:00Z' AND time < '2026-01-01T04:20:00Z'",
        ))
        .unwrap();
    // Rows in the memtable, in hour 5.
    write(
        engine,
        &format!(
            "m,plant=p1,dev=d09 v=77,status=2i {}\nm,plant=p1,dev=d11 v=1.5 {}\n",
            START + 5 * 3600 + 5,
            START + 5 * 3600 + 10
        ),
    );
}

#[test]
fn summaries_in_memory_answer_as_full_scans_do() {
    summaries_answer_as_full_scans_do(Cache::All);
}

#[test]
fn summaries_read_from_parquet_answer_as_full_scans_do() {
    summaries_answer_as_full_scans_do(Cache::None);
}

#[test]
fn summaries_partly_in_memory_answer_as_full_scans_do() {
    summaries_answer_as_full_scans_do(Cache::Some);
}

fn summaries_answer_as_full_scans_do(cache: Cache) {
    let (with_dir, without_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let with = Engine::open(with_dir.path(), cache.options()).unwrap();
    let without = Engine::open(without_dir.path(), options(false)).unwrap();
    load(&with);
    load(&without);
    assert!(with.files().iter().all(|f| f.summary.is_some()));
    assert!(without.files().iter().all(|f| f.summary.is_none()));
    let expected = answers(&without);
    assert_same(&answers(&with), &expected);
    for sql in SUMMARIZED {
        assert!(reads_summaries(&with, sql), "summaries unused: {sql}");
        assert!(!reads_summaries(&without, sql));
    }
    for sql in NOT_SUMMARIZED {
        assert!(!reads_summaries(&with, sql), "summaries used: {sql}");
    }
    cache.check(&with, SUMMARIZED[0]);

    // Compaction merges the files (and applies the delete); the output has
    // a summary, and the answers stay.
    with.compact().unwrap();
    without.compact().unwrap();
    assert!(with.files().iter().all(|f| f.summary.is_some()));
    assert_same(&answers(&with), &expected);
    assert_same(&answers(&without), &expected);

    // And through a reopen: the memtable rows come back from the WAL.
    with.close().unwrap();
    let with = Engine::open(with_dir.path(), cache.options()).unwrap();
    assert_same(&answers(&with), &expected);
    with.flush().unwrap();
    assert_same(&answers(&with), &expected);
    with.compact().unwrap();
    assert_eq!(with.files().len(), 1);
    assert!(reads_summaries(&with, SUMMARIZED[0]));
    assert_same(&answers(&with), &expected);
}

#[test]
fn summaries_go_with_their_files() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path(), options(true)).unwrap();
    load(&engine);
    let summaries = |dir: &std::path::Path| {
        walk(dir)
            .into_iter()
            .filter(|p| p.ends_with(".summary"))
            .count()
    };
    let files = engine.files();
    assert_eq!(summaries(dir.path()), files.len());
    engine.compact().unwrap();
    assert_eq!(engine.files().len(), 1);
    assert_eq!(summaries(dir.path()), 1);
    runtime().block_on(engine.sql("DROP TABLE m")).unwrap();
    engine.compact().unwrap();
    assert_eq!(summaries(dir.path()), 0);
}

fn walk(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path.to_string_lossy().into_owned());
        }
    }
    out
}
