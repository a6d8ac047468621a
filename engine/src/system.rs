//! The `system` schema: what the engine holds and has done, as tables that
//! SQL can read.
//!
//! - `system.databases`: each database with its retention period;
//! - `system.files`: one row per live Parquet file;
//! - `system.compactions`: the most recent compactions (at most 100);
//! - `system.rollups`: each materialized view, its source and query, and how
//!   far it has caught up: the sequence number below which every change of
//!   its source is in its stored rows, against the source's flushed one, and
//!   the windows still computed from raw rows at query time.
//!
//! Each table is built from the engine's state when a query names it, so a
//! query sees one consistent moment. The name `system` is reserved: no
//! database may take it.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, RecordBatch, StringArray, TimestampNanosecondArray, UInt8Array, UInt64Array,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use async_trait::async_trait;
use datafusion::catalog::{MemTable, SchemaProvider, Session, TableProvider};
use datafusion::datasource::TableType;
use datafusion::error::Result as DfResult;
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;

use crate::engine::Shared;
use crate::retention::format_period;

/// The schema's name, reserved.
pub const SYSTEM_SCHEMA: &str = "system";

const TABLES: [&str; 4] = ["compactions", "databases", "files", "rollups"];

#[derive(Debug)]
pub(crate) struct SystemSchema {
    pub shared: Arc<Shared>,
}

#[async_trait]
impl SchemaProvider for SystemSchema {
    fn table_names(&self) -> Vec<String> {
        TABLES.iter().map(|t| t.to_string()).collect()
    }

    async fn table(&self, name: &str) -> DfResult<Option<Arc<dyn TableProvider>>> {
        let batch = match name {
            "databases" => databases(&self.shared)?,
            "files" => files(&self.shared)?,
            "compactions" => compactions(&self.shared)?,
            "rollups" => rollups(&self.shared)?,
            _ => return Ok(None),
        };
        let table = MemTable::try_new(batch.schema(), vec![vec![batch]])?;
        Ok(Some(Arc::new(SystemTable(table))))
    }

    fn table_exist(&self, name: &str) -> bool {
        TABLES.contains(&name)
    }
}

/// A system table: its rows as of the query, listed as a view (like
/// `information_schema`'s tables), since it holds no data of its own.
#[derive(Debug)]
struct SystemTable(MemTable);

#[async_trait]
impl TableProvider for SystemTable {
    fn schema(&self) -> SchemaRef {
        self.0.schema()
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        self.0.scan(state, projection, filters, limit).await
    }
}

fn time_field(name: &str) -> Field {
    Field::new(
        name,
        DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into())),
        false,
    )
}

fn time_array(values: Vec<i64>) -> ArrayRef {
    Arc::new(TimestampNanosecondArray::from(values).with_timezone("UTC"))
}

fn batch(fields: Vec<Field>, columns: Vec<ArrayRef>) -> DfResult<RecordBatch> {
    let schema: SchemaRef = Arc::new(Schema::new(fields));
    Ok(RecordBatch::try_new(schema, columns)?)
}

fn databases(shared: &Shared) -> DfResult<RecordBatch> {
    let catalog = shared.catalog_read();
    let names = catalog.database_names();
    let periods: Vec<Option<std::time::Duration>> =
        names.iter().map(|d| catalog.retention(d)).collect();
    let tables: Vec<u64> = names
        .iter()
        .map(|d| catalog.table_names(d).len() as u64)
        .collect();
    batch(
        vec![
            Field::new("database", DataType::Utf8, false),
            Field::new("retention_period", DataType::Utf8, false),
            Field::new("retention_seconds", DataType::UInt64, true),
            Field::new("tables", DataType::UInt64, false),
        ],
        vec![
            Arc::new(StringArray::from_iter_values(&names)),
            Arc::new(StringArray::from_iter_values(
                periods.iter().map(|p| format_period(*p)),
            )),
            Arc::new(UInt64Array::from_iter(
                periods.iter().map(|p| p.map(|d| d.as_secs())),
            )),
            Arc::new(UInt64Array::from(tables)),
        ],
    )
}

fn rollups(shared: &Shared) -> DfResult<RecordBatch> {
    let defs = shared.catalog_read().rollups();
    let flushed = shared.state_read().manifest.persisted_seq;
    let pending: Vec<Vec<(i64, i64)>> = defs
        .iter()
        .map(|d| crate::rollup::pending(shared, d))
        .collect();
    let text = |f: &dyn Fn(&crate::rollup::RollupDef) -> String| -> ArrayRef {
        Arc::new(StringArray::from_iter_values(defs.iter().map(f)))
    };
    let nullable_time = |name: &str| {
        Field::new(
            name,
            DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into())),
            true,
        )
    };
    batch(
        vec![
            Field::new("database", DataType::Utf8, false),
            Field::new("name", DataType::Utf8, false),
            Field::new("source", DataType::Utf8, false),
            Field::new("window_seconds", DataType::UInt64, false),
            Field::new("query", DataType::Utf8, false),
            Field::new("caught_up_seq", DataType::UInt64, false),
            Field::new("source_flushed_seq", DataType::UInt64, false),
            Field::new("pending_windows", DataType::UInt64, false),
            nullable_time("oldest_pending"),
        ],
        vec![
            text(&|d| d.database.clone()),
            text(&|d| d.name.clone()),
            text(&|d| format!("{}.{}", d.source_database, d.source_table)),
            Arc::new(UInt64Array::from_iter_values(
                defs.iter().map(|d| (d.stride_ns / 1_000_000_000) as u64),
            )),
            text(&|d| d.query.clone()),
            Arc::new(UInt64Array::from_iter_values(
                defs.iter().map(|d| d.caught_up_seq),
            )),
            Arc::new(UInt64Array::from_iter_values(defs.iter().map(|_| flushed))),
            Arc::new(UInt64Array::from_iter_values(
                defs.iter().zip(&pending).map(|(d, p)| {
                    p.iter()
                        .map(|(lo, hi)| ((hi - lo) / d.stride_ns) as u64)
                        .sum()
                }),
            )),
            Arc::new(
                TimestampNanosecondArray::from(
                    pending
                        .iter()
                        .map(|p| p.first().map(|r| r.0))
                        .collect::<Vec<_>>(),
                )
                .with_timezone("UTC"),
            ),
        ],
    )
}

fn files(shared: &Shared) -> DfResult<RecordBatch> {
    let manifest = shared.state_read().manifest.clone();
    let files = &manifest.files;
    let text = |f: fn(&crate::manifest::FileMeta) -> &str| -> ArrayRef {
        Arc::new(StringArray::from_iter_values(files.iter().map(|m| f(m))))
    };
    let number = |f: fn(&crate::manifest::FileMeta) -> u64| -> ArrayRef {
        Arc::new(UInt64Array::from_iter_values(files.iter().map(|m| f(m))))
    };
    let time =
        |f: fn(&crate::manifest::FileMeta) -> i64| time_array(files.iter().map(|m| f(m)).collect());
    batch(
        vec![
            Field::new("database", DataType::Utf8, false),
            Field::new("table_name", DataType::Utf8, false),
            time_field("partition"),
            Field::new("path", DataType::Utf8, false),
            Field::new("rows", DataType::UInt64, false),
            Field::new("size_bytes", DataType::UInt64, false),
            time_field("min_time"),
            time_field("max_time"),
            Field::new("level", DataType::UInt8, false),
            Field::new("file_id", DataType::UInt64, false),
            Field::new("max_seq", DataType::UInt64, false),
        ],
        vec![
            text(|f| &f.database),
            text(|f| &f.table),
            time(|f| f.partition),
            text(|f| &f.path),
            number(|f| f.rows),
            number(|f| f.bytes),
            time(|f| f.min_time),
            time(|f| f.max_time),
            Arc::new(UInt8Array::from_iter_values(files.iter().map(|f| f.level))),
            number(|f| f.id),
            number(|f| f.max_seq),
        ],
    )
}

fn compactions(shared: &Shared) -> DfResult<RecordBatch> {
    let recent: Vec<crate::CompactionRecord> = shared
        .compactions
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .cloned()
        .collect();
    let number = |f: fn(&crate::CompactionRecord) -> u64| -> ArrayRef {
        Arc::new(UInt64Array::from_iter_values(recent.iter().map(f)))
    };
    batch(
        vec![
            Field::new("database", DataType::Utf8, false),
            Field::new("table_name", DataType::Utf8, false),
            time_field("partition"),
            Field::new("level", DataType::UInt8, false),
            Field::new("files_in", DataType::UInt64, false),
            Field::new("files_out", DataType::UInt64, false),
            Field::new("rows_in", DataType::UInt64, false),
            Field::new("rows_out", DataType::UInt64, false),
            Field::new("bytes_read", DataType::UInt64, false),
            Field::new("bytes_written", DataType::UInt64, false),
            Field::new("peak_memory_bytes", DataType::UInt64, false),
            time_field("finished_at"),
            Field::new("duration_ms", DataType::UInt64, false),
        ],
        vec![
            Arc::new(StringArray::from_iter_values(
                recent.iter().map(|r| r.database.as_str()),
            )),
            Arc::new(StringArray::from_iter_values(
                recent.iter().map(|r| r.table.as_str()),
            )),
            time_array(recent.iter().map(|r| r.partition).collect()),
            Arc::new(UInt8Array::from_iter_values(recent.iter().map(|r| r.level))),
            number(|r| r.files_in as u64),
            number(|r| r.files_out as u64),
            number(|r| r.rows_in),
            number(|r| r.rows_out),
            number(|r| r.bytes_read),
            number(|r| r.bytes_written),
            number(|r| r.peak_memory_bytes as u64),
            time_array(recent.iter().map(|r| r.finished_at).collect()),
            number(|r| r.duration_ms),
        ],
    )
}
