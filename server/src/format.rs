//! Encodings of query results for the HTTP API: JSON (an array of row
//! objects), JSON lines, CSV and Parquet. Times are RFC 3339 strings with
//! nanoseconds in JSON.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::{
    DataType, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, SchemaRef,
    TimeUnit, UInt8Type, UInt16Type, UInt32Type, UInt64Type,
};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use serde_json::{Number, Value};

use crate::error::{ApiError, Result};

/// An output format of `query_sql`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    JsonLines,
    Csv,
    Parquet,
}

impl Format {
    pub fn parse(name: Option<&str>) -> Result<Self> {
        match name.unwrap_or("json") {
            "json" => Ok(Format::Json),
            "jsonl" => Ok(Format::JsonLines),
            "csv" => Ok(Format::Csv),
            "parquet" => Ok(Format::Parquet),
            other => Err(ApiError::invalid(format!(
                "unknown format {other:?}: expected json, jsonl, csv or parquet"
            ))),
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Json => "application/json",
            Format::JsonLines => "application/jsonl",
            Format::Csv => "text/csv",
            Format::Parquet => "application/vnd.apache.parquet",
        }
    }
}

/// Encodes a result batch by batch, so that JSON, JSON lines and CSV
/// stream out as the query produces them. Parquet is buffered until the end
/// (its footer describes the whole file).
pub struct Encoder {
    format: Format,
    rows: u64,
    parquet: Option<parquet::arrow::ArrowWriter<Vec<u8>>>,
}

/// Rows per row group of a Parquet result.
const PARQUET_ROW_GROUP_ROWS: usize = 128 * 1024;

fn internal(what: &str, e: impl std::fmt::Display) -> ApiError {
    ApiError::Internal(format!("{what} encoding: {e}"))
}

impl Encoder {
    /// Starts a result of `schema`; returns its first bytes.
    pub fn start(format: Format, schema: &SchemaRef) -> Result<(Self, Vec<u8>)> {
        let mut head = Vec::new();
        let mut parquet = None;
        match format {
            Format::Json => head.push(b'['),
            Format::JsonLines => {}
            Format::Csv => {
                let plain_schema = plain_schema(schema);
                let mut writer = arrow_csv::WriterBuilder::new()
                    .with_header(true)
                    .build(&mut head);
                writer
                    .write(&RecordBatch::new_empty(plain_schema))
                    .map_err(|e| internal("CSV", e))?;
            }
            Format::Parquet => {
                // Row groups of at most PARQUET_ROW_GROUP_ROWS rows are sent
                // as each is finished: memory holds one row group.
                let properties = parquet::file::properties::WriterProperties::builder()
                    .set_compression(parquet::basic::Compression::ZSTD(Default::default()))
                    .set_max_row_group_row_count(Some(PARQUET_ROW_GROUP_ROWS))
                    .build();
                let writer = parquet::arrow::ArrowWriter::try_new(
                    Vec::new(),
                    schema.clone(),
                    Some(properties),
                )
                .map_err(|e| internal("Parquet", e))?;
                parquet = Some(writer);
            }
        }
        Ok((
            Self {
                format,
                rows: 0,
                parquet,
            },
            head,
        ))
    }

    /// Encodes one batch.
    pub fn batch(&mut self, batch: &RecordBatch) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        match self.format {
            Format::Json | Format::JsonLines => {
                let batch = plain(batch)?;
                let names: Vec<String> = batch
                    .schema()
                    .fields()
                    .iter()
                    .map(|f| serde_json::to_string(f.name()).unwrap_or_else(|_| "\"\"".into()))
                    .collect();
                let columns: Vec<Vec<Value>> = batch
                    .columns()
                    .iter()
                    .map(json_values)
                    .collect::<Result<_>>()?;
                for row in 0..batch.num_rows() {
                    if self.format == Format::Json && self.rows > 0 {
                        out.push(b',');
                    }
                    // Keys in column order (a serde_json map would sort them).
                    out.push(b'{');
                    for (i, (name, values)) in names.iter().zip(&columns).enumerate() {
                        if i > 0 {
                            out.push(b',');
                        }
                        out.extend_from_slice(name.as_bytes());
                        out.push(b':');
                        serde_json::to_writer(&mut out, &values[row])
                            .map_err(|e| internal("JSON", e))?;
                    }
                    out.push(b'}');
                    if self.format == Format::JsonLines {
                        out.push(b'\n');
                    }
                    self.rows += 1;
                }
            }
            Format::Csv => {
                let mut writer = arrow_csv::WriterBuilder::new()
                    .with_header(false)
                    .with_timestamp_tz_format("%Y-%m-%dT%H:%M:%S%.9f%:z".to_string())
                    .with_timestamp_format("%Y-%m-%dT%H:%M:%S%.9f".to_string())
                    .build(&mut out);
                writer
                    .write(&plain(batch)?)
                    .map_err(|e| internal("CSV", e))?;
            }
            Format::Parquet => {
                if let Some(writer) = &mut self.parquet {
                    writer.write(batch).map_err(|e| internal("Parquet", e))?;
                    // The bytes of finished row groups; the writer counts
                    // offsets itself, so its buffer can be emptied.
                    out = std::mem::take(writer.inner_mut());
                }
            }
        }
        Ok(out)
    }

    /// Ends the result; returns its last bytes.
    pub fn finish(self) -> Result<Vec<u8>> {
        match self.format {
            Format::Json => Ok(b"]".to_vec()),
            Format::JsonLines | Format::Csv => Ok(Vec::new()),
            Format::Parquet => match self.parquet {
                Some(writer) => writer.into_inner().map_err(|e| internal("Parquet", e)),
                None => Ok(Vec::new()),
            },
        }
    }
}

/// The schema with dictionary columns as their value type.
fn plain_schema(schema: &SchemaRef) -> SchemaRef {
    Arc::new(arrow::datatypes::Schema::new(
        schema
            .fields()
            .iter()
            .map(|f| match f.data_type() {
                DataType::Dictionary(_, value) => {
                    f.as_ref().clone().with_data_type(value.as_ref().clone())
                }
                _ => f.as_ref().clone(),
            })
            .collect::<Vec<_>>(),
    ))
}

/// Dictionary columns (tags) as plain strings, for writers that want them so.
fn plain(batch: &RecordBatch) -> Result<RecordBatch> {
    if !batch
        .columns()
        .iter()
        .any(|c| matches!(c.data_type(), DataType::Dictionary(..)))
    {
        return Ok(batch.clone());
    }
    let mut fields = Vec::new();
    let mut columns = Vec::new();
    for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
        if let DataType::Dictionary(_, value) = column.data_type() {
            let c = cast(column, value).map_err(|e| ApiError::Internal(e.to_string()))?;
            fields.push(
                field
                    .as_ref()
                    .clone()
                    .with_data_type(value.as_ref().clone()),
            );
            columns.push(c);
        } else {
            fields.push(field.as_ref().clone());
            columns.push(column.clone());
        }
    }
    RecordBatch::try_new(Arc::new(arrow::datatypes::Schema::new(fields)), columns)
        .map_err(|e| ApiError::Internal(e.to_string()))
}

fn float(v: f64) -> Value {
    Number::from_f64(v)
        .map(Value::Number)
        .unwrap_or(Value::Null)
}

/// One column as JSON values: numbers, strings, booleans, RFC 3339 times.
fn json_values(array: &ArrayRef) -> Result<Vec<Value>> {
    let n = array.len();
    let values: Vec<Value> = match array.data_type() {
        DataType::Null => vec![Value::Null; n],
        DataType::Boolean => {
            let a = array.as_boolean();
            (0..n).map(|i| Value::Bool(a.value(i))).collect()
        }
        DataType::Int8 => prim::<Int8Type>(array, Value::from),
        DataType::Int16 => prim::<Int16Type>(array, Value::from),
        DataType::Int32 => prim::<Int32Type>(array, Value::from),
        DataType::Int64 => prim::<Int64Type>(array, Value::from),
        DataType::UInt8 => prim::<UInt8Type>(array, Value::from),
        DataType::UInt16 => prim::<UInt16Type>(array, Value::from),
        DataType::UInt32 => prim::<UInt32Type>(array, Value::from),
        DataType::UInt64 => prim::<UInt64Type>(array, Value::from),
        DataType::Float32 => prim::<Float32Type>(array, |v| float(f64::from(v))),
        DataType::Float64 => prim::<Float64Type>(array, float),
        DataType::Utf8 => {
            let a = array.as_string::<i32>();
            (0..n).map(|i| Value::from(a.value(i))).collect()
        }
        DataType::LargeUtf8 => {
            let a = array.as_string::<i64>();
            (0..n).map(|i| Value::from(a.value(i))).collect()
        }
        DataType::Utf8View => {
            let a = array.as_string_view();
            (0..n).map(|i| Value::from(a.value(i))).collect()
        }
        DataType::Timestamp(_, tz) => {
            let ns = cast(array, &DataType::Timestamp(TimeUnit::Nanosecond, None))
                .map_err(|e| ApiError::Internal(e.to_string()))?;
            let a = ns.as_primitive::<arrow::datatypes::TimestampNanosecondType>();
            // A column in a zone other than UTC (`time AT TIME ZONE ...`)
            // shows its local time and offset; others show UTC.
            let zone = match tz.as_deref() {
                Some(tz) if !matches!(tz, "UTC" | "+00:00" | "Z") => Some(
                    tz.parse::<arrow::array::timezone::Tz>()
                        .map_err(|e| ApiError::Internal(e.to_string()))?,
                ),
                _ => None,
            };
            (0..n)
                .map(|i| {
                    Value::from(match &zone {
                        Some(zone) => chrono::DateTime::from_timestamp_nanos(a.value(i))
                            .with_timezone(zone)
                            .format("%Y-%m-%dT%H:%M:%S%.9f%:z")
                            .to_string(),
                        None => rfc3339_nanos(a.value(i)),
                    })
                })
                .collect()
        }
        _ => {
            let options = FormatOptions::default();
            let formatter = ArrayFormatter::try_new(array.as_ref(), &options)
                .map_err(|e| ApiError::Internal(e.to_string()))?;
            (0..n)
                .map(|i| Value::from(formatter.value(i).to_string()))
                .collect()
        }
    };
    Ok(values
        .into_iter()
        .enumerate()
        .map(|(i, v)| if array.is_null(i) { Value::Null } else { v })
        .collect())
}

fn prim<T: arrow::datatypes::ArrowPrimitiveType>(
    array: &ArrayRef,
    f: impl Fn(T::Native) -> Value,
) -> Vec<Value> {
    let a = array.as_primitive::<T>();
    a.values().iter().map(|v| f(*v)).collect()
}

/// `2024-01-01T00:00:00.000000001Z`.
pub fn rfc3339_nanos(ns: i64) -> String {
    chrono::DateTime::from_timestamp_nanos(ns)
        .format("%Y-%m-%dT%H:%M:%S%.9fZ")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(format: Format, batch: &RecordBatch) -> String {
        let (mut encoder, mut out) = Encoder::start(format, &batch.schema()).unwrap();
        out.extend(encoder.batch(batch).unwrap());
        out.extend(encoder.batch(batch).unwrap());
        out.extend(encoder.finish().unwrap());
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn formats_keep_column_order() {
        use arrow::array::{Float64Array, StringArray, TimestampNanosecondArray};
        let batch = RecordBatch::try_from_iter(vec![
            (
                "zone",
                Arc::new(StringArray::from(vec![Some("b"), None])) as ArrayRef,
            ),
            (
                "a",
                Arc::new(Float64Array::from(vec![1.5, f64::NAN])) as ArrayRef,
            ),
            (
                "time",
                Arc::new(TimestampNanosecondArray::from(vec![1, 2]).with_timezone("UTC"))
                    as ArrayRef,
            ),
        ])
        .unwrap();
        assert_eq!(
            encode(Format::Json, &batch.slice(0, 1)),
            r#"[{"zone":"b","a":1.5,"time":"1970-01-01T00:00:00.000000001Z"},{"zone":"b","a":1.5,"time":"1970-01-01T00:00:00.000000001Z"}]"#
        );
        assert_eq!(
            encode(Format::JsonLines, &batch.slice(1, 1)),
            "{\"zone\":null,\"a\":null,\"time\":\"1970-01-01T00:00:00.000000002Z\"}\n".repeat(2)
        );
        assert_eq!(
            encode(Format::Csv, &batch.slice(0, 1)),
            "zone,a,time\nb,1.5,1970-01-01T00:00:00.000000001+00:00\nb,1.5,1970-01-01T00:00:00.000000001+00:00\n"
        );
    }

    #[test]
    fn times_have_nanoseconds() {
        assert_eq!(rfc3339_nanos(1), "1970-01-01T00:00:00.000000001Z");
        assert_eq!(
            rfc3339_nanos(1_700_000_000_123_456_789),
            "2023-11-14T22:13:20.123456789Z"
        );
    }
}
