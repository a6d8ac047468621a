//! Runs the `.slt` files in `tests/slt/` against a fresh engine each.
//!
//! Besides SQL, a record may use three engine commands:
//!
//! ```text
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

use std::path::{Path, PathBuf};

use arrow::datatypes::DataType;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use async_trait::async_trait;
use ingot_engine::{Engine, Options, Precision};
use sqllogictest::{DBOutput, DefaultColumnType};

struct IngotSlt {
    dir: tempfile::TempDir,
    engine: Option<Engine>,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct SltError(String);

impl IngotSlt {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let engine = Engine::open(dir.path(), Options::default()).expect("open");
        Self {
            dir,
            engine: Some(engine),
        }
    }

    fn engine(&self) -> &Engine {
        self.engine.as_ref().expect("engine is open")
    }
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
            ["FLUSH"] => {
                self.engine().flush().map_err(err)?;
                return Ok(DBOutput::StatementComplete(0));
            }
            ["REOPEN"] => {
                drop(self.engine.take());
                self.engine = Some(Engine::open(self.dir.path(), Options::default()).map_err(err)?);
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

fn slt_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/slt");
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
    let mut failures = Vec::new();
    for file in &files {
        let mut runner = sqllogictest::Runner::new(|| async { Ok(IngotSlt::new()) });
        runner.with_column_validator(|_, _| true);
        if let Err(e) = runner.run_file_async(file).await {
            failures.push(format!("{}:\n{e}", file.display()));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
