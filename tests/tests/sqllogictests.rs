//! Runs the `.slt` files in `tests/slt/` against a fresh engine each.
//!
//! Besides SQL, a record may use these engine commands:
//!
//! ```text
//! statement ok
//! LOAD tiny                         -- the workload preset, as public.readings
//!
//! statement ok
//! WRITE [database] [precision]      -- the following lines are line protocol
//! m,s=a x=1 1
//!
//! statement ok
//! FLUSH                             -- persist the memtable to Parquet
//!
//! statement ok
//! REOPEN                            -- drop the engine and open the directory again
//! ```
//!
//! `INGOT_SLT_COMPLETE=1 cargo test -p ingot-tests --test sqllogictests`
//! rewrites the expected results of every file from what Ingot returns; check
//! the diff before committing it.

use std::path::{Path, PathBuf};

use arrow::datatypes::DataType;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use async_trait::async_trait;
use ingot_bench::Preset;
use ingot_engine::{Engine, Options, Precision};
use sqllogictest::{DBOutput, DefaultColumnType};

struct IngotSlt {
    dir: tempfile::TempDir,
    engine: Option<Engine>,
    declare_file_order: bool,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct SltError(String);

impl IngotSlt {
    fn new(declare_file_order: bool) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let engine = Engine::open(dir.path(), options(declare_file_order)).expect("open");
        Self {
            dir,
            engine: Some(engine),
            declare_file_order,
        }
    }

    fn engine(&self) -> &Engine {
        self.engine.as_ref().expect("engine is open")
    }
}

fn options(declare_file_order: bool) -> Options {
    let mut options = Options::default();
    options.declare_file_order = declare_file_order;
    options
}

fn err(e: impl std::fmt::Display) -> SltError {
    SltError(e.to_string())
}

#[async_trait]
impl sqllogictest::AsyncDB for IngotSlt {
    type Error = SltError;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, SltError> {
        let (first, rest) = sql.split_once('\n').unwrap_or((sql, ""));
        let words: Vec<&str> = first.split_whitespace().collect();
        match words.as_slice() {
            ["WRITE", args @ ..] => {
                let database = args.first().copied().unwrap_or("public");
                let precision = match args.get(1).copied().unwrap_or("ns") {
                    "s" => Precision::Second,
                    "ms" => Precision::Millisecond,
                    "us" => Precision::Microsecond,
                    _ => Precision::Nanosecond,
                };
                let s = self
                    .engine()
                    .write_lines(database, rest, precision)
                    .map_err(err)?;
                return Ok(DBOutput::StatementComplete(s.rows));
            }
            ["LOAD", preset] => {
                let preset = Preset::by_name(preset)
                    .ok_or_else(|| SltError(format!("unknown preset {preset:?}")))?;
                let rows = ingot_tests::load_preset(self.engine(), preset, 10_000).map_err(err)?;
                return Ok(DBOutput::StatementComplete(rows));
            }
            ["FLUSH"] => {
                self.engine().flush().map_err(err)?;
                return Ok(DBOutput::StatementComplete(0));
            }
            ["REOPEN"] => {
                drop(self.engine.take());
                let options = options(self.declare_file_order);
                self.engine = Some(Engine::open(self.dir.path(), options).map_err(err)?);
                return Ok(DBOutput::StatementComplete(0));
            }
            _ => {}
        }
        let batches = self.engine().sql(sql).await.map_err(err)?;
        let Some(first) = batches.first() else {
            return Ok(DBOutput::Rows {
                types: vec![],
                rows: vec![],
            });
        };
        let types = first
            .schema()
            .fields()
            .iter()
            .map(|f| match f.data_type() {
                DataType::Int8
                | DataType::Int16
                | DataType::Int32
                | DataType::Int64
                | DataType::UInt64 => DefaultColumnType::Integer,
                DataType::Float64 | DataType::Float32 => DefaultColumnType::FloatingPoint,
                _ => DefaultColumnType::Text,
            })
            .collect();
        let options = FormatOptions::default().with_null("NULL");
        let mut rows = Vec::new();
        for b in &batches {
            let formatters = b
                .columns()
                .iter()
                .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
                .collect::<Result<Vec<_>, _>>()
                .map_err(err)?;
            for r in 0..b.num_rows() {
                rows.push(formatters.iter().map(|f| f.value(r).to_string()).collect());
            }
        }
        Ok(DBOutput::Rows { types, rows })
    }

    async fn shutdown(&mut self) {}
}

/// Results match when every value matches, numbers with a fraction to 1e-9
/// relative: sums of floats may differ in their last bits with the order
/// partitions finish in.
fn floats_within_1e9(
    normalizer: sqllogictest::Normalizer,
    actual: &[Vec<String>],
    expected: &[String],
) -> bool {
    let actual: Vec<String> = actual.iter().map(|row| row.join(" ")).collect();
    if actual.len() != expected.len() {
        return false;
    }
    actual.iter().zip(expected).all(|(a, e)| {
        let (a, e) = (normalizer(a), normalizer(e));
        let (a, e): (Vec<&str>, Vec<&str>) = (a.split(' ').collect(), e.split(' ').collect());
        a.len() == e.len()
            && a.iter().zip(&e).all(|(a, e)| {
                a == e
                    || match (a.parse::<f64>(), e.parse::<f64>()) {
                        (Ok(x), Ok(y)) if a.contains('.') && e.contains('.') => {
                            (x - y).abs() <= 1e-9 * x.abs().max(y.abs())
                        }
                        _ => false,
                    }
            })
    })
}

fn slt_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("slt");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "slt"))
        .collect();
    files.sort();
    files
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqllogictests() {
    let files = slt_files();
    assert!(!files.is_empty());
    let complete = std::env::var_os("INGOT_SLT_COMPLETE").is_some();
    let mut failures = Vec::new();
    // Every file runs with files read as they come and again with their
    // (series, time) order declared to DataFusion, which then plans
    // differently (no sorts, sorted-mode aggregation); answers must agree.
    let runs = files
        .iter()
        .flat_map(|f| [(f, false), (f, true)])
        .filter(|(_, ordered)| !(complete && *ordered));
    for (file, ordered) in runs {
        let mut runner =
            sqllogictest::Runner::new(move || async move { Ok(IngotSlt::new(ordered)) });
        runner.with_column_validator(|_, _| true);
        runner.with_validator(floats_within_1e9);
        if complete {
            runner
                .update_test_file(
                    file,
                    " ",
                    sqllogictest::default_validator,
                    sqllogictest::default_normalizer,
                    sqllogictest::default_column_validator,
                )
                .await
                .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        } else if let Err(e) = runner.run_file_async(file).await {
            failures.push(format!(
                "{} (declared order: {ordered}):\n{e}",
                file.display()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
