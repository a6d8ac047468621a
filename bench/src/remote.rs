//! Ingest and queries through a running `ingot serve`. The bench starts the
//! server as a child process on free ports of 127.0.0.1, so the peak RSS it
//! reports is the server's own, and stops it with SIGTERM (which flushes).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use arrow::array::{
    Array, AsArray, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray,
    TimestampNanosecondArray, UInt64Array,
};
use arrow::compute::cast;
use arrow::datatypes::DataType;
use arrow_flight::sql::{
    CommandStatementIngest, TableDefinitionOptions, TableExistsOption, TableNotExistOption,
};
use ingot_proto::v1::{self, column, write_request};
use ingot_server::client::{Client, ipc_stream};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// How long the server gets to print its ready line, and to stop.
const START_TIMEOUT: Duration = Duration::from_secs(60);
const STOP_TIMEOUT: Duration = Duration::from_secs(600);

/// The `ingot` binary next to this one (`cargo build --release -p ingot-server`).
pub fn server_binary() -> Result<PathBuf, BoxError> {
    let me = std::env::current_exe()?;
    let path = me.with_file_name("ingot");
    if path.exists() {
        Ok(path)
    } else {
        Err(format!(
            "{} not found: build it with `cargo build --release -p ingot-server -p ingot-bench`",
            path.display()
        )
        .into())
    }
}

/// A running `ingot serve`.
pub struct ServerProcess {
    child: Child,
    pub grpc: String,
    pub http: String,
    /// `host:port` of the PostgreSQL wire protocol, when `--pg-addr` was given.
    pub pg: Option<String>,
    peak_rss: Arc<AtomicU64>,
    done: Arc<AtomicBool>,
    watcher: Option<JoinHandle<()>>,
}

impl ServerProcess {
    pub fn start(data_dir: &Path, wal_sync: &str) -> Result<Self, BoxError> {
        Self::start_with(data_dir, wal_sync, &[])
    }

    /// [`ServerProcess::start`] with more `serve` flags.
    pub fn start_with(data_dir: &Path, wal_sync: &str, extra: &[String]) -> Result<Self, BoxError> {
        let mut child = Command::new(server_binary()?)
            .args([
                "serve",
                "--grpc-addr",
                "127.0.0.1:0",
                "--http-addr",
                "127.0.0.1:0",
            ])
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--wal-sync", wal_sync])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = match rx.recv_timeout(START_TIMEOUT) {
            Ok(line) => line,
            Err(_) => {
                let _ = child.kill();
                return Err("ingot serve printed no ready line within a minute".into());
            }
        };
        let addr = |key: &str| {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(key))
                .map(str::to_string)
                .ok_or_else(|| format!("unexpected ready line {line:?}"))
        };
        let (grpc, http, pg) = (addr("grpc=")?, addr("http=")?, addr("pg=").ok());
        let peak_rss = Arc::new(AtomicU64::new(0));
        let done = Arc::new(AtomicBool::new(false));
        let watcher = {
            let (pid, peak_rss, done) = (child.id(), peak_rss.clone(), done.clone());
            std::thread::spawn(move || {
                while !done.load(Ordering::Acquire) {
                    if let Some(rss) = peak_rss_of(pid) {
                        peak_rss.fetch_max(rss, Ordering::Relaxed);
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            })
        };
        Ok(Self {
            child,
            grpc: format!("http://{grpc}"),
            http: format!("http://{http}"),
            pg,
            peak_rss,
            done,
            watcher: Some(watcher),
        })
    }

    /// Stops the server with SIGTERM (it flushes and exits); returns its
    /// peak RSS and how long the stop took.
    pub fn stop(mut self) -> Result<(u64, Duration), BoxError> {
        let started = Instant::now();
        // SAFETY: kill(2) with the pid of our own child process.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        loop {
            if let Some(status) = self.child.try_wait()? {
                if !status.success() {
                    return Err(format!("ingot serve exited with {status}").into());
                }
                break;
            }
            if started.elapsed() > STOP_TIMEOUT {
                let _ = self.child.kill();
                return Err("ingot serve did not stop within ten minutes".into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let took = started.elapsed();
        self.done.store(true, Ordering::Release);
        if let Some(w) = self.watcher.take() {
            let _ = w.join();
        }
        Ok((self.peak_rss.load(Ordering::Relaxed), took))
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.done.store(true, Ordering::Release);
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// VmHWM of a process, in bytes.
fn peak_rss_of(pid: u32) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse::<u64>()
        .ok()
        .map(|kb| kb * 1024)
}

/// How the bench sends each batch to the server.
#[derive(Clone, Copy, Debug)]
pub enum Protocol {
    GrpcRows,
    GrpcArrow,
    Flight,
    HttpLp,
    /// Prometheus remote write: a metric per field, a series per device.
    PrometheusRemoteWrite,
}

/// One client connection (gRPC and HTTP).
pub struct Sender {
    client: Client,
    http: reqwest::Client,
    write_url: String,
    remote_write_url: String,
}

impl Sender {
    pub async fn connect(server: &ServerProcess) -> Result<Self, BoxError> {
        Ok(Self {
            client: Client::connect(&server.grpc, None, None).await?,
            http: reqwest::Client::new(),
            write_url: format!("{}/api/v3/write_lp?db=public&precision=ns", server.http),
            remote_write_url: format!("{}/api/v1/write?db=public", server.http),
        })
    }

    /// Sends one request and waits for the acknowledgement.
    pub async fn send(&mut self, request: Request) -> Result<(), BoxError> {
        match request {
            Request::Write(payload) => {
                self.client
                    .write(v1::WriteRequest {
                        database: "public".into(),
                        table: "readings".into(),
                        payload: Some(payload),
                        precision: v1::Precision::Nanosecond as i32,
                    })
                    .await?;
            }
            Request::Ingest(batch) => {
                let command = CommandStatementIngest {
                    table_definition_options: Some(TableDefinitionOptions {
                        if_not_exist: TableNotExistOption::Create as i32,
                        if_exists: TableExistsOption::Append as i32,
                    }),
                    table: "readings".into(),
                    ..Default::default()
                };
                self.client
                    .flight()
                    .execute_ingest(command, futures::stream::iter([Ok(batch)]))
                    .await?;
            }
            Request::RemoteWrite(body) => {
                let response = self
                    .http
                    .post(&self.remote_write_url)
                    .header("Content-Encoding", "snappy")
                    .header("Content-Type", "application/x-protobuf")
                    .header("X-Prometheus-Remote-Write-Version", "0.1.0")
                    .body(body)
                    .send()
                    .await?;
                if !response.status().is_success() {
                    let status = response.status();
                    let text = response.text().await.unwrap_or_default();
                    return Err(format!("remote write failed: {status}: {text}").into());
                }
            }
            Request::Lines(body) => {
                let response = self.http.post(&self.write_url).body(body).send().await?;
                if !response.status().is_success() {
                    let status = response.status();
                    let text = response.text().await.unwrap_or_default();
                    return Err(format!("HTTP write failed: {status}: {text}").into());
                }
            }
        }
        Ok(())
    }
}

/// One write request, encoded for its protocol.
pub enum Request {
    Write(write_request::Payload),
    Ingest(RecordBatch),
    Lines(String),
    /// A snappy-compressed Prometheus `WriteRequest`.
    RemoteWrite(Vec<u8>),
}

impl Request {
    /// Encodes a batch of `public.readings` for `protocol`.
    pub fn encode(protocol: Protocol, batch: RecordBatch) -> Result<Self, BoxError> {
        Ok(match protocol {
            Protocol::GrpcRows => Request::Write(write_request::Payload::Rows(to_rows(&batch)?)),
            Protocol::GrpcArrow => {
                Request::Write(write_request::Payload::ArrowIpc(ipc_stream(&[batch])?))
            }
            Protocol::Flight => Request::Ingest(batch),
            Protocol::HttpLp => Request::Lines(line_protocol(&batch)?),
            Protocol::PrometheusRemoteWrite => Request::RemoteWrite(remote_write(&batch)?),
        })
    }
}

/// A batch as Prometheus sends it: for each field a metric
/// `readings_{field}`, for each device (its tags as labels) a series with
/// the device's samples (milliseconds; the workload's times are whole
/// seconds). Null values are left out.
pub fn remote_write(batch: &RecordBatch) -> Result<Vec<u8>, BoxError> {
    use ingot_server::prometheus::{Label, Sample, TimeSeries, WriteRequest};
    use prost::Message;
    let schema = batch.schema();
    let time = cast(
        batch.column(schema.index_of("time")?),
        &DataType::Timestamp(arrow::datatypes::TimeUnit::Millisecond, None),
    )?;
    let time = cast(&time, &DataType::Int64)?;
    let time = time
        .as_any()
        .downcast_ref::<arrow::array::Int64Array>()
        .ok_or("time")?;
    let is_tag = |t: &DataType| matches!(t, DataType::Utf8 | DataType::Dictionary(..));
    let tags: Vec<(String, arrow::array::StringArray)> = schema
        .fields()
        .iter()
        .zip(batch.columns())
        .filter(|(f, _)| is_tag(f.data_type()))
        .map(|(f, a)| {
            let strings = cast(a, &DataType::Utf8)?;
            let strings = strings
                .as_any()
                .downcast_ref::<arrow::array::StringArray>()
                .ok_or("tag")?
                .clone();
            Ok::<_, BoxError>((f.name().clone(), strings))
        })
        .collect::<Result<_, _>>()?;
    // Rows by series (the tags' values), in row order.
    let mut series: std::collections::BTreeMap<Vec<&str>, Vec<usize>> = Default::default();
    for row in 0..batch.num_rows() {
        let key = tags.iter().map(|(_, a)| a.value(row)).collect();
        series.entry(key).or_default().push(row);
    }
    let mut timeseries = Vec::new();
    for (field, array) in schema.fields().iter().zip(batch.columns()) {
        if field.name() == "time" || is_tag(field.data_type()) {
            continue;
        }
        let values = cast(array, &DataType::Float64)?;
        let values = values
            .as_any()
            .downcast_ref::<arrow::array::Float64Array>()
            .ok_or("field")?;
        for (key, rows) in &series {
            let mut labels = vec![Label {
                name: "__name__".into(),
                value: format!("readings_{}", field.name()),
            }];
            labels.extend(tags.iter().zip(key).map(|((name, _), value)| Label {
                name: name.clone(),
                value: value.to_string(),
            }));
            let samples: Vec<Sample> = rows
                .iter()
                .filter(|&&r| values.is_valid(r))
                .map(|&r| Sample {
                    value: values.value(r),
                    timestamp: time.value(r),
                })
                .collect();
            if !samples.is_empty() {
                timeseries.push(TimeSeries { labels, samples });
            }
        }
    }
    let body = WriteRequest { timeseries }.encode_to_vec();
    Ok(snap::raw::Encoder::new().compress_vec(&body)?)
}

/// A batch as the `Rows` payload: the time column, tags (strings) and fields
/// by their Arrow type, with validity bitmaps where there are nulls.
pub fn to_rows(batch: &RecordBatch) -> Result<v1::Rows, BoxError> {
    let mut columns = Vec::with_capacity(batch.num_columns());
    for (field, array) in batch.schema().fields().iter().zip(batch.columns()) {
        let validity = match array.logical_nulls() {
            Some(nulls) if nulls.null_count() > 0 => nulls.inner().sliced().to_vec(),
            _ => Vec::new(),
        };
        let (kind, values) = match array.data_type() {
            DataType::Timestamp(_, _) => {
                let ns = cast(
                    array,
                    &DataType::Timestamp(arrow::datatypes::TimeUnit::Nanosecond, None),
                )?;
                let ns = ns
                    .as_any()
                    .downcast_ref::<TimestampNanosecondArray>()
                    .ok_or("time")?;
                let values = ns.values().to_vec();
                (
                    v1::ColumnKind::Time,
                    column::Values::I64(v1::Int64Values { values }),
                )
            }
            DataType::Dictionary(_, _) | DataType::Utf8 => {
                let strings = cast(array, &DataType::Utf8)?;
                let strings = strings.as_string::<i32>();
                let values = (0..strings.len())
                    .map(|i| strings.value(i).to_string())
                    .collect();
                (
                    v1::ColumnKind::Tag,
                    column::Values::Str(v1::StringValues { values }),
                )
            }
            DataType::Float64 => {
                let values = array.as_any().downcast_ref::<Float64Array>().ok_or("f64")?;
                let values = values.values().to_vec();
                (
                    v1::ColumnKind::Field,
                    column::Values::F64(v1::DoubleValues { values }),
                )
            }
            DataType::Int64 => {
                let values = array.as_any().downcast_ref::<Int64Array>().ok_or("i64")?;
                let values = values.values().to_vec();
                (
                    v1::ColumnKind::Field,
                    column::Values::I64(v1::Int64Values { values }),
                )
            }
            DataType::UInt64 => {
                let values = array.as_any().downcast_ref::<UInt64Array>().ok_or("u64")?;
                let values = values.values().to_vec();
                (
                    v1::ColumnKind::Field,
                    column::Values::U64(v1::UInt64Values { values }),
                )
            }
            DataType::Boolean => {
                let values = array
                    .as_any()
                    .downcast_ref::<BooleanArray>()
                    .ok_or("bool")?;
                let values = values.iter().map(|v| v.unwrap_or(false)).collect();
                (
                    v1::ColumnKind::Field,
                    column::Values::Bool(v1::BoolValues { values }),
                )
            }
            other => {
                return Err(
                    format!("column {}: no Rows encoding for {other}", field.name()).into(),
                );
            }
        };
        columns.push(v1::Column {
            name: field.name().clone(),
            kind: kind as i32,
            values: Some(values),
            validity,
        });
    }
    Ok(v1::Rows {
        row_count: batch.num_rows() as u32,
        columns,
    })
}

/// A `readings` batch as line protocol, formatted as `gen.py --format lp`
/// does: tags in schema order, floats in their shortest exact form.
pub fn line_protocol(batch: &RecordBatch) -> Result<String, BoxError> {
    let schema = batch.schema();
    let time = cast(
        batch.column_by_name("time").ok_or("no time column")?,
        &DataType::Timestamp(arrow::datatypes::TimeUnit::Nanosecond, None),
    )?;
    let time = time
        .as_any()
        .downcast_ref::<TimestampNanosecondArray>()
        .ok_or("time")?;
    enum Col {
        Tag(String, StringArray),
        F64(String, Float64Array),
        I64(String, Int64Array),
    }
    let mut cols = Vec::new();
    for (field, array) in schema.fields().iter().zip(batch.columns()) {
        let name = field.name().clone();
        match array.data_type() {
            DataType::Dictionary(_, _) | DataType::Utf8 => {
                let s = cast(array, &DataType::Utf8)?;
                cols.push(Col::Tag(name, s.as_string::<i32>().clone()));
            }
            DataType::Float64 => cols.push(Col::F64(
                name,
                array
                    .as_any()
                    .downcast_ref::<Float64Array>()
                    .ok_or("f64")?
                    .clone(),
            )),
            DataType::Int64 => cols.push(Col::I64(
                name,
                array
                    .as_any()
                    .downcast_ref::<Int64Array>()
                    .ok_or("i64")?
                    .clone(),
            )),
            _ => {}
        }
    }
    let mut out = String::with_capacity(batch.num_rows() * 200);
    use std::fmt::Write;
    for row in 0..batch.num_rows() {
        out.push_str("readings");
        for c in &cols {
            if let Col::Tag(name, values) = c
                && values.is_valid(row)
            {
                write!(out, ",{name}={}", values.value(row))?;
            }
        }
        let mut first = true;
        for c in &cols {
            let sep = if first { ' ' } else { ',' };
            match c {
                Col::F64(name, values) if values.is_valid(row) => {
                    write!(out, "{sep}{name}={:?}", values.value(row))?;
                }
                Col::I64(name, values) if values.is_valid(row) => {
                    write!(out, "{sep}{name}={}i", values.value(row))?;
                }
                _ => continue,
            }
            first = false;
        }
        writeln!(out, " {}", time.value(row))?;
    }
    Ok(out)
}
