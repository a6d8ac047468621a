//! `ingot import`: bulk-loads Parquet, CSV or line-protocol files into a
//! running server (gRPC `arrow_ipc` / `line_protocol`) or straight into a
//! data directory. Files are read in batches (Parquet, CSV) or in chunks of
//! whole lines (line protocol), never whole into memory.

use std::fs::File;
use std::io::{BufRead, BufReader, Seek};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::compute::cast;
use arrow::datatypes::{DataType, Schema, TimeUnit};
use indicatif::{ProgressBar, ProgressStyle};
use ingot_engine::{Engine, Precision, TIME_COLUMN};
use ingot_proto::v1::{WriteRequest, write_request::Payload};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::client::{Client, ClientError, ipc_stream};

/// Rows per batch read from Parquet and CSV files.
const BATCH_ROWS: usize = 64 * 1024;
/// Bytes of whole lines per line-protocol write.
const LP_CHUNK_BYTES: usize = 4 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FileFormat {
    Parquet,
    Csv,
    LineProtocol,
}

impl FileFormat {
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "parquet" => Some(FileFormat::Parquet),
            "csv" => Some(FileFormat::Csv),
            "lp" | "line_protocol" | "txt" => Some(FileFormat::LineProtocol),
            _ => None,
        }
    }

    /// The format named by a file's extension.
    pub fn from_path(path: &Path) -> Option<Self> {
        path.extension()
            .and_then(|e| e.to_str())
            .and_then(|e| Self::parse(&e.to_ascii_lowercase()))
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImportError {
    #[error("{path}: {reason}")]
    File { path: PathBuf, reason: String },
    #[error("{0}")]
    Client(#[from] ClientError),
    #[error("{0}")]
    Engine(#[from] ingot_engine::Error),
}

/// Where imported data goes.
#[derive(Debug)]
pub enum Target {
    Server(Box<Client>),
    Local(Engine),
}

/// What one import did.
#[derive(Debug, Default, Clone, Copy)]
pub struct ImportSummary {
    pub rows: u64,
    pub points: u64,
}

/// Options of one import.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    pub database: String,
    /// The table for Parquet and CSV; default: the file's stem.
    pub table: Option<String>,
    pub format: Option<FileFormat>,
    pub precision: Precision,
}

impl Target {
    async fn write_batch(
        &mut self,
        database: &str,
        table: &str,
        batch: RecordBatch,
    ) -> Result<ImportSummary, ImportError> {
        match self {
            Target::Server(client) => {
                let response = client
                    .write(WriteRequest {
                        database: database.to_string(),
                        table: table.to_string(),
                        payload: Some(Payload::ArrowIpc(ipc_stream(&[batch])?)),
                        precision: 0,
                    })
                    .await?;
                Ok(ImportSummary {
                    rows: response.rows,
                    points: response.points,
                })
            }
            Target::Local(engine) => {
                let (engine, database, table) =
                    (engine.clone(), database.to_string(), table.to_string());
                let s = tokio::task::spawn_blocking(move || {
                    engine.write_batch(&database, &table, &batch)
                })
                .await
                .map_err(|e| ImportError::File {
                    path: PathBuf::new(),
                    reason: e.to_string(),
                })??;
                Ok(ImportSummary {
                    rows: s.rows,
                    points: s.points,
                })
            }
        }
    }

    async fn write_lines(
        &mut self,
        database: &str,
        text: String,
        precision: Precision,
    ) -> Result<ImportSummary, ImportError> {
        match self {
            Target::Server(client) => {
                let precision = match precision {
                    Precision::Microsecond => 1,
                    Precision::Millisecond => 2,
                    Precision::Second => 3,
                    _ => 0,
                };
                let response = client
                    .write(WriteRequest {
                        database: database.to_string(),
                        table: String::new(),
                        payload: Some(Payload::LineProtocol(text)),
                        precision,
                    })
                    .await?;
                Ok(ImportSummary {
                    rows: response.rows,
                    points: response.points,
                })
            }
            Target::Local(engine) => {
                let (engine, database) = (engine.clone(), database.to_string());
                let s = tokio::task::spawn_blocking(move || {
                    engine.write_lines(&database, &text, precision)
                })
                .await
                .map_err(|e| ImportError::File {
                    path: PathBuf::new(),
                    reason: e.to_string(),
                })??;
                Ok(ImportSummary {
                    rows: s.rows,
                    points: s.points,
                })
            }
        }
    }
}

fn file_err(path: &Path, reason: impl std::fmt::Display) -> ImportError {
    ImportError::File {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

/// A time column named `time` that is not yet a timestamp (integers as
/// nanoseconds, strings as RFC 3339) becomes one.
fn fix_time(path: &Path, batch: RecordBatch) -> Result<RecordBatch, ImportError> {
    let schema = batch.schema();
    let Ok(index) = schema.index_of(TIME_COLUMN) else {
        return Ok(batch);
    };
    let target = DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into()));
    let column = batch.column(index);
    if matches!(column.data_type(), DataType::Timestamp(..)) {
        return Ok(batch);
    }
    let converted =
        cast(column, &target).map_err(|e| file_err(path, format!("column time: {e}")))?;
    let mut fields: Vec<_> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
    fields[index] = fields[index].clone().with_data_type(target);
    let mut columns = batch.columns().to_vec();
    columns[index] = converted;
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).map_err(|e| file_err(path, e))
}

/// A piece of a file, read on a blocking thread, to write as one request.
enum Chunk {
    Batch(RecordBatch),
    Lines {
        text: String,
        first_line: usize,
        last_line: usize,
    },
}

/// How far the reading is, in the progress bar's unit (rows for Parquet
/// and CSV, bytes for line protocol).
struct Piece {
    chunk: Chunk,
    progress: u64,
}

type Sender = tokio::sync::mpsc::Sender<Result<Piece, ImportError>>;

/// Reads `path` in pieces and sends them; runs on a blocking thread. Stops
/// early when the receiver is gone (a write failed).
fn read_pieces(
    path: &Path,
    format: FileFormat,
    lp_chunk_bytes: usize,
    tx: &Sender,
) -> Result<(), ImportError> {
    let file = File::open(path).map_err(|e| file_err(path, e))?;
    let send = |piece: Piece| tx.blocking_send(Ok(piece)).is_ok();
    match format {
        FileFormat::Parquet => {
            let reader = ParquetRecordBatchReaderBuilder::try_new(file)
                .map_err(|e| file_err(path, e))?
                .with_batch_size(BATCH_ROWS)
                .build()
                .map_err(|e| file_err(path, e))?;
            for batch in reader {
                let batch = fix_time(path, batch.map_err(|e| file_err(path, e))?)?;
                let progress = batch.num_rows() as u64;
                if !send(Piece {
                    chunk: Chunk::Batch(batch),
                    progress,
                }) {
                    break;
                }
            }
        }
        FileFormat::Csv => {
            let mut file = file;
            let (schema, _) = arrow_csv::reader::Format::default()
                .with_header(true)
                .infer_schema(&mut file, Some(10_000))
                .map_err(|e| file_err(path, e))?;
            file.rewind().map_err(|e| file_err(path, e))?;
            let reader = arrow_csv::ReaderBuilder::new(Arc::new(schema))
                .with_header(true)
                .with_batch_size(BATCH_ROWS)
                .build(file)
                .map_err(|e| file_err(path, e))?;
            for batch in reader {
                let batch = fix_time(path, batch.map_err(|e| file_err(path, e))?)?;
                let progress = batch.num_rows() as u64;
                if !send(Piece {
                    chunk: Chunk::Batch(batch),
                    progress,
                }) {
                    break;
                }
            }
        }
        FileFormat::LineProtocol => {
            let mut reader = BufReader::new(file);
            let mut text = String::new();
            let mut line_no = 0usize;
            let mut first_line = 1usize;
            loop {
                let n = reader.read_line(&mut text).map_err(|e| file_err(path, e))?;
                if n > 0 {
                    line_no += 1;
                }
                let full = n == 0 || text.len() >= lp_chunk_bytes;
                if full && !text.is_empty() {
                    let progress = text.len() as u64;
                    let piece = Piece {
                        chunk: Chunk::Lines {
                            text: std::mem::take(&mut text),
                            first_line,
                            last_line: line_no,
                        },
                        progress,
                    };
                    if !send(piece) {
                        break;
                    }
                    first_line = line_no + 1;
                }
                if n == 0 {
                    break;
                }
            }
        }
    }
    Ok(())
}

fn progress(len: u64, unit: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    let template = format!("{{msg}} [{{bar:30}}] {{pos}}/{{len}} {unit} ({{elapsed}})");
    if let Ok(style) = ProgressStyle::with_template(&template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

/// Imports one file.
pub async fn import_file(
    target: &mut Target,
    path: &Path,
    options: &ImportOptions,
) -> Result<ImportSummary, ImportError> {
    let format = options
        .format
        .or_else(|| FileFormat::from_path(path))
        .ok_or_else(|| file_err(path, "unknown format: pass --format parquet|csv|lp"))?;
    let table = options.table.clone().unwrap_or_else(|| {
        path.file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("import")
            .to_string()
    });
    let bar = match (format, File::open(path)) {
        (FileFormat::Parquet, Ok(file)) => {
            let rows = ParquetRecordBatchReaderBuilder::try_new(file)
                .map(|b| b.metadata().file_metadata().num_rows())
                .unwrap_or(0);
            progress(u64::try_from(rows).unwrap_or(0), "rows")
        }
        (FileFormat::LineProtocol, Ok(file)) => {
            progress(file.metadata().map(|m| m.len()).unwrap_or(0), "bytes")
        }
        _ => {
            let bar = ProgressBar::new_spinner();
            if let Ok(style) = ProgressStyle::with_template("{msg} {pos} rows ({elapsed})") {
                bar.set_style(style);
            }
            bar
        }
    };
    bar.set_message(path.display().to_string());

    // Read on a blocking thread, a couple of pieces ahead of the writes.
    let (tx, mut rx) = tokio::sync::mpsc::channel(2);
    let reader_path = path.to_path_buf();
    let reader = tokio::task::spawn_blocking(move || {
        if let Err(e) = read_pieces(&reader_path, format, LP_CHUNK_BYTES, &tx) {
            let _ = tx.blocking_send(Err(e));
        }
    });
    let mut total = ImportSummary::default();
    let mut result = Ok(());
    while let Some(piece) = rx.recv().await {
        let piece = match piece {
            Ok(p) => p,
            Err(e) => {
                result = Err(e);
                break;
            }
        };
        let written = match piece.chunk {
            Chunk::Batch(batch) => target.write_batch(&options.database, &table, batch).await,
            Chunk::Lines {
                text,
                first_line,
                last_line,
            } => target
                .write_lines(&options.database, text, options.precision)
                .await
                .map_err(|e| file_err(path, format!("lines {first_line}..={last_line}: {e}"))),
        };
        match written {
            Ok(s) => {
                total.rows += s.rows;
                total.points += s.points;
                bar.inc(piece.progress);
            }
            Err(e) => {
                result = Err(e);
                break;
            }
        }
    }
    drop(rx);
    let _ = reader.await;
    bar.finish();
    result.map(|()| total)
}

/// Imports a directory written by `ingot export`: each of its files into
/// the table it came from (or `options.table`), in `database` or else the
/// database it came from; checks that every row of the export arrived.
pub async fn import_export(
    target: &mut Target,
    dir: &Path,
    database: Option<&str>,
    options: &ImportOptions,
) -> Result<ImportSummary, ImportError> {
    let manifest = crate::export::ExportManifest::read(dir).map_err(|e| file_err(dir, e))?;
    let options = ImportOptions {
        database: database.unwrap_or(&manifest.database).to_string(),
        table: Some(options.table.clone().unwrap_or(manifest.table.clone())),
        format: Some(FileFormat::Parquet),
        precision: options.precision,
    };
    let mut total = ImportSummary::default();
    for file in &manifest.files {
        let s = import_file(target, &dir.join(&file.name), &options).await?;
        if s.rows != file.rows {
            return Err(file_err(
                &dir.join(&file.name),
                format!(
                    "the export recorded {} rows, {} were read",
                    file.rows, s.rows
                ),
            ));
        }
        total.rows += s.rows;
        total.points += s.points;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_protocol_is_cut_into_whole_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.lp");
        let text: String = (0..100).map(|i| format!("m,k=k{i} v={i} {i}\n")).collect();
        std::fs::write(&path, &text).unwrap();
        let (tx, mut rx) = tokio::sync::mpsc::channel(1000);
        read_pieces(&path, FileFormat::LineProtocol, 200, &tx).unwrap();
        drop(tx);
        let mut joined = String::new();
        let mut next_line = 1;
        while let Ok(piece) = rx.try_recv() {
            let Chunk::Lines {
                text,
                first_line,
                last_line,
            } = piece.unwrap().chunk
            else {
                panic!("not lines");
            };
            assert!(text.ends_with('\n'));
            assert_eq!(first_line, next_line);
            assert_eq!(text.lines().count(), last_line - first_line + 1);
            next_line = last_line + 1;
            joined.push_str(&text);
        }
        assert!(next_line > 10, "one chunk only");
        assert_eq!(joined, text);
    }
}
