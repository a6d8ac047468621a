//! A query whose scans read few rows is planned on one partition, without
//! the repartitions that spread a larger one over the cores; the rows
//! counted are those left after pruning files, row groups and pages, plus
//! the memtable's. No answer depends on it.

use datafusion::physical_plan::displayable;
use datafusion::prelude::SessionContext;
use ingot_engine::{Engine, Options};

mod common;
use common::{manual, physical_plan, query, runtime, write};

fn options(one_partition_rows: u64) -> Options {
    let mut o = manual();
    o.summary_window = None;
    o.row_group_rows = 500;
    o.one_partition_rows = one_partition_rows;
    o
}

/// 20 devices, a reading every second for 10 minutes: 12 000 rows, in two
/// files when `flush`, else in the memtable.
fn load(engine: &Engine, flush: bool) {
    for half in 0..2 {
        let mut lp = String::new();
        for d in 0..20 {
            for s in half * 300..(half + 1) * 300 {
                let t = 1_767_225_600 + s;
                lp.push_str(&format!(
                    "readings,dev=d{d:02} v={}.5 {t}\n",
                    (s * 7 + d) % 100
                ));
            }
        }
        write(engine, &lp);
        if flush {
            engine.flush().unwrap();
        }
    }
}

/// The plan of `sql` in a session of four partitions, whatever the cores.
fn plan(engine: &Engine, sql: &str) -> String {
    let mut state = engine.session().state();
    state.config_mut().options_mut().execution.target_partitions = 4;
    let ctx = SessionContext::new_with_state(state);
    let plan = runtime().block_on(physical_plan(&ctx, sql));
    displayable(plan.as_ref()).indent(false).to_string()
}

const ONE_DEVICE: &str = "SELECT date_bin(INTERVAL '1 minute', time) AS m, avg(v), max(v) \
                          FROM readings WHERE dev = 'd07' GROUP BY 1 ORDER BY 1";
const EVERY_DEVICE: &str = "SELECT dev, avg(v), max(v) FROM readings GROUP BY dev ORDER BY dev";

#[test]
fn a_query_of_few_rows_is_planned_on_one_partition() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path(), options(2000)).unwrap();
    load(&engine, true);
    // One device: 600 rows in row groups of 500.
    let one = plan(&engine, ONE_DEVICE);
    assert!(!one.contains("RepartitionExec"), "{one}");
    // Every device: 12 000 rows.
    let every = plan(&engine, EVERY_DEVICE);
    assert!(every.contains("RepartitionExec"), "{every}");

    let answers = (query(&engine, ONE_DEVICE), query(&engine, EVERY_DEVICE));
    drop(engine);
    // The same answers from an engine that spreads every query.
    let engine = Engine::open(dir.path(), options(0)).unwrap();
    let one = plan(&engine, ONE_DEVICE);
    assert!(one.contains("RepartitionExec"), "{one}");
    assert_eq!(
        (query(&engine, ONE_DEVICE), query(&engine, EVERY_DEVICE)),
        answers
    );
}

#[test]
fn the_memtable_s_rows_count_whatever_the_filter() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path(), options(2000)).unwrap();
    load(&engine, false);
    // The memtable's chunks are not pruned by tag: all 12 000 rows count.
    let one = plan(&engine, ONE_DEVICE);
    assert!(one.contains("RepartitionExec"), "{one}");
    let in_memory = query(&engine, ONE_DEVICE);
    engine.flush().unwrap();
    let one = plan(&engine, ONE_DEVICE);
    assert!(!one.contains("RepartitionExec"), "{one}");
    assert_eq!(query(&engine, ONE_DEVICE), in_memory);
}
