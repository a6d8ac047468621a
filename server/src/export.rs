//! `ingot export`: a consistent backup of one table (or of a time range of
//! it) as Parquet files that `ingot import DIR` restores.
//!
//! The export is one query, `SELECT *` over the table and range, so it reads
//! one snapshot: rows written during the export are in it entirely or not at
//! all. What it holds is the table's answer: duplicates collapsed, deletes
//! and retention applied. The Parquet files keep Arrow's schema, and with it
//! each column's role (tag, field, time), so an import recreates the same
//! table.
//!
//! The directory holds `{table}-00000.parquet`, `...-00001.parquet` (a new
//! file every `rows_per_file` rows) and, written last, [`MANIFEST`]: the
//! database, table, range, and the rows of each file. An export that did
//! not finish has no manifest, and `ingot import` refuses it.

use std::fs::File;
use std::path::{Path, PathBuf};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use futures::{Stream, StreamExt};
use indicatif::{ProgressBar, ProgressStyle};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use serde::{Deserialize, Serialize};

use crate::client::ClientError;
use crate::import::Target;

/// The file that describes a finished export.
pub const MANIFEST: &str = "ingot-export.json";

/// Rows per Parquet file, unless told otherwise.
pub const DEFAULT_ROWS_PER_FILE: u64 = 10_000_000;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExportError {
    #[error("{0}")]
    Invalid(String),
    #[error("{path}: {reason}")]
    File { path: PathBuf, reason: String },
    #[error("{0}")]
    Client(#[from] ClientError),
    #[error("{0}")]
    Query(#[from] datafusion::error::DataFusionError),
}

fn file_err(path: &Path, reason: impl std::fmt::Display) -> ExportError {
    ExportError::File {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

/// What an export holds; written as [`MANIFEST`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportManifest {
    /// The manifest's format, 1.
    pub version: u32,
    pub database: String,
    pub table: String,
    /// The range exported: rows at or after `from` and before `to`.
    pub from: Option<String>,
    pub to: Option<String>,
    pub rows: u64,
    pub files: Vec<ExportFile>,
    /// When the export's query ran, RFC 3339.
    pub exported_at: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportFile {
    /// The file's name in the export directory.
    pub name: String,
    pub rows: u64,
}

impl ExportManifest {
    /// Reads the manifest of the export in `dir`.
    pub fn read(dir: &Path) -> Result<ExportManifest, ExportError> {
        let path = dir.join(MANIFEST);
        let text = std::fs::read_to_string(&path).map_err(|e| {
            file_err(
                &path,
                format!(
                    "{e}; a directory from `ingot export` has this file once the export finished"
                ),
            )
        })?;
        let manifest: ExportManifest =
            serde_json::from_str(&text).map_err(|e| file_err(&path, e))?;
        if manifest.version != 1 {
            return Err(file_err(
                &path,
                format!(
                    "export format {} is newer than this ingot reads (1)",
                    manifest.version
                ),
            ));
        }
        Ok(manifest)
    }
}

/// What to export.
#[derive(Debug, Clone)]
pub struct ExportOptions {
    pub database: String,
    pub table: String,
    /// RFC 3339 bounds: rows at or after `from`, before `to`.
    pub from: Option<String>,
    pub to: Option<String>,
    pub rows_per_file: u64,
}

fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn bound(name: &str, value: &str) -> Result<String, ExportError> {
    chrono::DateTime::parse_from_rfc3339(value).map_err(|e| {
        ExportError::Invalid(format!(
            "--{name} {value:?} is not an RFC 3339 time such as 2026-01-01T00:00:00Z: {e}"
        ))
    })?;
    Ok(format!("'{value}'"))
}

/// The query an export runs.
fn export_sql(options: &ExportOptions) -> Result<String, ExportError> {
    let mut sql = format!(
        "SELECT * FROM {}.{}",
        quote(&options.database),
        quote(&options.table)
    );
    let mut conditions = Vec::new();
    if let Some(from) = &options.from {
        conditions.push(format!("time >= {}", bound("from", from)?));
    }
    if let Some(to) = &options.to {
        conditions.push(format!("time < {}", bound("to", to)?));
    }
    if !conditions.is_empty() {
        sql.push_str(" WHERE ");
        sql.push_str(&conditions.join(" AND "));
    }
    Ok(sql)
}

type BatchStream = std::pin::Pin<Box<dyn Stream<Item = Result<RecordBatch, ExportError>> + Send>>;

/// The export's rows, streamed from the server or the data directory.
async fn rows(target: &mut Target, sql: &str) -> Result<(SchemaRef, BatchStream), ExportError> {
    match target {
        Target::Server(client) => {
            let (schema, stream) = client.query_stream(sql).await?;
            Ok((
                schema,
                Box::pin(stream.map(|b| b.map_err(ExportError::from))),
            ))
        }
        Target::Local(engine) => {
            let stream = engine.session().sql(sql).await?.execute_stream().await?;
            let schema = stream.schema();
            Ok((
                schema,
                Box::pin(stream.map(|b| b.map_err(ExportError::from))),
            ))
        }
    }
}

/// One Parquet file being written, under a temporary name until closed.
struct OpenFile {
    name: String,
    partial: PathBuf,
    writer: ArrowWriter<File>,
    rows: u64,
}

fn open_file(dir: &Path, name: String, schema: &SchemaRef) -> Result<OpenFile, ExportError> {
    let partial = dir.join(format!("{name}.partial"));
    let file = File::create(&partial).map_err(|e| file_err(&partial, e))?;
    let properties = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .build();
    let writer = ArrowWriter::try_new(file, schema.clone(), Some(properties))
        .map_err(|e| file_err(&partial, e))?;
    Ok(OpenFile {
        name,
        partial,
        writer,
        rows: 0,
    })
}

fn close_file(dir: &Path, file: OpenFile) -> Result<ExportFile, ExportError> {
    let finished = file
        .writer
        .into_inner()
        .map_err(|e| file_err(&file.partial, e))?;
    finished
        .sync_all()
        .map_err(|e| file_err(&file.partial, e))?;
    let path = dir.join(&file.name);
    std::fs::rename(&file.partial, &path).map_err(|e| file_err(&path, e))?;
    Ok(ExportFile {
        name: file.name,
        rows: file.rows,
    })
}

/// Exports a table into `dir` (created if missing; it must not hold an
/// export already).
pub async fn export(
    target: &mut Target,
    options: &ExportOptions,
    dir: &Path,
) -> Result<ExportManifest, ExportError> {
    if options.rows_per_file == 0 {
        return Err(ExportError::Invalid(
            "rows per file must be at least 1".into(),
        ));
    }
    std::fs::create_dir_all(dir).map_err(|e| file_err(dir, e))?;
    let taken = std::fs::read_dir(dir)
        .map_err(|e| file_err(dir, e))?
        .filter_map(|e| e.ok())
        .any(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name == MANIFEST || name.ends_with(".parquet")
        });
    if taken {
        return Err(file_err(
            dir,
            "already holds an export or Parquet files; export into an empty directory",
        ));
    }
    let sql = export_sql(options)?;
    let exported_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let (schema, mut batches) = rows(target, &sql).await?;

    let bar = ProgressBar::new_spinner();
    if let Ok(style) = ProgressStyle::with_template("{msg} {pos} rows ({elapsed})") {
        bar.set_style(style);
    }
    bar.set_message(format!("{}.{}", options.database, options.table));
    let file_name = |i: usize| format!("{}-{i:05}.parquet", options.table);
    let mut files = Vec::new();
    let mut open: Option<OpenFile> = None;
    while let Some(batch) = batches.next().await {
        let mut batch = batch?;
        while batch.num_rows() > 0 {
            let file = match &mut open {
                Some(f) => f,
                None => open.insert(open_file(dir, file_name(files.len()), &schema)?),
            };
            let room = (options.rows_per_file - file.rows) as usize;
            let take = room.min(batch.num_rows());
            file.writer
                .write(&batch.slice(0, take))
                .map_err(|e| file_err(&file.partial, e))?;
            file.rows += take as u64;
            bar.inc(take as u64);
            batch = batch.slice(take, batch.num_rows() - take);
            if file.rows == options.rows_per_file
                && let Some(full) = open.take()
            {
                files.push(close_file(dir, full)?);
            }
        }
    }
    if let Some(last) = open.take() {
        files.push(close_file(dir, last)?);
    }
    if files.is_empty() {
        // An empty table still records its schema.
        files.push(close_file(dir, open_file(dir, file_name(0), &schema)?)?);
    }
    bar.finish();
    let manifest = ExportManifest {
        version: 1,
        database: options.database.clone(),
        table: options.table.clone(),
        from: options.from.clone(),
        to: options.to.clone(),
        rows: files.iter().map(|f| f.rows).sum(),
        files,
        exported_at,
    };
    let partial = dir.join(format!("{MANIFEST}.partial"));
    let text = serde_json::to_string_pretty(&manifest).map_err(|e| file_err(&partial, e))?;
    std::fs::write(&partial, text).map_err(|e| file_err(&partial, e))?;
    std::fs::rename(&partial, dir.join(MANIFEST)).map_err(|e| file_err(dir, e))?;
    Ok(manifest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_query_quotes_names_and_checks_bounds() {
        let options = ExportOptions {
            database: "plant".into(),
            table: "odd\"name".into(),
            from: Some("2026-01-01T00:00:00Z".into()),
            to: None,
            rows_per_file: 10,
        };
        assert_eq!(
            export_sql(&options).unwrap(),
            "SELECT * FROM \"plant\".\"odd\"\"name\" WHERE time >= '2026-01-01T00:00:00Z'"
        );
        let bad = ExportOptions {
            to: Some("yesterday".into()),
            ..options
        };
        let e = export_sql(&bad).unwrap_err().to_string();
        assert!(
            e.contains("--to \"yesterday\" is not an RFC 3339 time"),
            "{e}"
        );
    }
}
