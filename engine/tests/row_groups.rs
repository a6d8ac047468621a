//! A scan reads only the row groups whose statistics allow its time range
//! and tag filters, dealt to partitions by rows: a one-device query reads
//! one partition, and no answer changes. The reference for each answer is
//! the same query with its filters written so that no planning can prune
//! by them (`concat(tag, '')`, `time + 0 s`), which reads every row group.

use arrow::util::pretty::pretty_format_batches;
use datafusion::physical_plan::ExecutionPlanProperties;
use ingot_engine::{Engine, Options};
use rand::{Rng, SeedableRng};

mod common;
use common::{manual, metric, physical_plan, query, run_with_scan_metrics, runtime, write};

fn options() -> Options {
    let mut o = manual();
    // Raw rows are under test, not the summaries that answer aggregates.
    o.summary_window = None;
    o.row_group_rows = 500;
    // How a scan is spread over partitions is under test: no query is
    // planned on one partition for being small.
    o.one_partition_rows = 0;
    o
}

/// 20 devices in 4 plants, a reading every second for 10 minutes, in two
/// flushes of 5 minutes each: two files of 6000 rows, 12 row groups each.
fn load(engine: &Engine) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    for half in 0..2 {
        let mut lp = String::new();
        for d in 0..20 {
            for s in half * 300..(half + 1) * 300 {
                let t = 1_767_225_600 + s;
                let v: f64 = rng.random_range(0.0..100.0);
                lp.push_str(&format!(
                    "readings,plant=p{},dev=d{d:02} v={v:.2},n={s}i {t}\n",
                    d % 4
                ));
            }
        }
        write(engine, &lp);
        engine.flush().unwrap();
    }
}

fn partitions(engine: &Engine, sql: &str) -> usize {
    runtime().block_on(async {
        let mut stack = vec![physical_plan(&engine.session(), sql).await];
        while let Some(node) = stack.pop() {
            if node.name() == "DataSourceExec" {
                return node.output_partitioning().partition_count();
            }
            stack.extend(node.children().into_iter().cloned());
        }
        panic!("no scan in {sql}")
    })
}

#[test]
fn pruned_row_groups_change_no_answer() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path(), options()).unwrap();
    load(&engine);
    assert_eq!(engine.files().len(), 2);

    let t = |s: &str| format!("'2026-01-01T00:{s}Z'");
    let shifted = "time + INTERVAL '0 seconds'";
    let cases = [
        // (filter Ingot prunes by, the same filter it cannot prune by)
        (
            "dev = 'd07'".to_string(),
            "concat(dev, '') = 'd07'".to_string(),
        ),
        (
            format!(
                "dev = 'd07' AND time >= {} AND time < {}",
                t("02:00"),
                t("03:30")
            ),
            format!(
                "concat(dev, '') = 'd07' AND {shifted} >= {} AND {shifted} < {}",
                t("02:00"),
                t("03:30")
            ),
        ),
        (
            "dev IN ('d03', 'd17')".to_string(),
            "concat(dev, '') IN ('d03', 'd17')".to_string(),
        ),
        (
            // Across both files.
            format!(
                "dev = 'd12' AND time >= {} AND time <= {}",
                t("04:59"),
                t("05:01")
            ),
            format!(
                "concat(dev, '') = 'd12' AND {shifted} >= {} AND {shifted} <= {}",
                t("04:59"),
                t("05:01")
            ),
        ),
        (
            "plant = 'p2' AND dev > 'd10'".to_string(),
            "concat(plant, '') = 'p2' AND concat(dev, '') > 'd10'".to_string(),
        ),
        // No such device, though the files' ranges hold its name.
        (
            "dev = 'd055'".to_string(),
            "concat(dev, '') = 'd055'".to_string(),
        ),
    ];
    let rt = runtime();
    for (pruned, full) in &cases {
        let sql = |filter: &str| {
            format!("SELECT dev, time, v, n FROM readings WHERE {filter} ORDER BY dev, time")
        };
        let (rows, metrics) = run_with_scan_metrics(&engine, &rt, &sql(pruned));
        let (expected, full_metrics) = run_with_scan_metrics(&engine, &rt, &sql(full));
        assert_eq!(
            pretty_format_batches(&rows).unwrap().to_string(),
            pretty_format_batches(&expected).unwrap().to_string(),
            "{pruned}"
        );
        assert!(
            metric(&metrics, "row_groups_pruned_by_ingot") > 0,
            "{pruned}: {metrics}"
        );
        assert_eq!(metric(&full_metrics, "row_groups_pruned_by_ingot"), 0);
    }

    // The same, for an aggregate over what is left.
    let agg = |filter: &str| {
        query(
            &engine,
            &format!(
                "SELECT plant, count(*), sum(n), max(v) FROM readings WHERE {filter} GROUP BY plant ORDER BY plant"
            ),
        )
    };
    assert_eq!(agg("dev < 'd05'"), agg("concat(dev, '') < 'd05'"));
}

#[test]
fn one_device_is_one_partition_and_a_whole_scan_uses_every_one() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path(), options()).unwrap();
    load(&engine);
    let one_device = "SELECT * FROM readings WHERE dev = 'd07' \
                      AND time >= '2026-01-01T00:01:00Z' AND time < '2026-01-01T00:02:00Z'";
    assert_eq!(partitions(&engine, one_device), 1);
    let target = engine.session().state().config().target_partitions();
    let everything = "SELECT v FROM readings";
    assert_eq!(partitions(&engine, everything), target.min(24));
}

#[test]
fn a_file_a_delete_applies_to_is_read_on_every_partition() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path(), options()).unwrap();
    load(&engine);
    let before = query(
        &engine,
        "SELECT count(*), sum(n) FROM readings WHERE dev <> 'd03'",
    );
    query(&engine, "DELETE FROM readings WHERE dev = 'd03'");
    let target = engine.session().state().config().target_partitions();
    assert_eq!(
        partitions(&engine, "SELECT v FROM readings"),
        target.min(12)
    );
    assert_eq!(
        query(&engine, "SELECT count(*), sum(n) FROM readings"),
        before
    );
}
