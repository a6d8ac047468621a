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
use serde_json::{Map, Number, Value};

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

/// Encodes a whole result.
pub fn encode(format: Format, schema: &SchemaRef, batches: &[RecordBatch]) -> Result<Vec<u8>> {
    match format {
        Format::Json => {
            let rows = rows(batches)?;
            serde_json::to_vec(&rows).map_err(|e| ApiError::Internal(e.to_string()))
        }
        Format::JsonLines => {
            let mut out = Vec::new();
            for row in rows(batches)? {
                serde_json::to_writer(&mut out, &row)
                    .map_err(|e| ApiError::Internal(e.to_string()))?;
                out.push(b'\n');
            }
            Ok(out)
        }
        Format::Csv => {
            let mut out = Vec::new();
            {
                let mut writer = arrow_csv::WriterBuilder::new()
                    .with_header(true)
                    .with_timestamp_tz_format("%Y-%m-%dT%H:%M:%S%.9f%:z".to_string())
                    .with_timestamp_format("%Y-%m-%dT%H:%M:%S%.9f".to_string())
                    .build(&mut out);
                for batch in batches {
                    writer
                        .write(&plain(batch)?)
                        .map_err(|e| ApiError::Internal(format!("CSV encoding: {e}")))?;
                }
            }
            if batches.is_empty() {
                let header: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
                out.extend_from_slice(header.join(",").as_bytes());
                out.push(b'\n');
            }
            Ok(out)
        }
        Format::Parquet => {
            let mut out = Vec::new();
            let schema = batches
                .first()
                .map(|b| b.schema())
                .unwrap_or_else(|| schema.clone());
            let mut writer = parquet::arrow::ArrowWriter::try_new(&mut out, schema, None)
                .map_err(|e| ApiError::Internal(format!("Parquet encoding: {e}")))?;
            for batch in batches {
                writer
                    .write(batch)
                    .map_err(|e| ApiError::Internal(format!("Parquet encoding: {e}")))?;
            }
            writer
                .close()
                .map_err(|e| ApiError::Internal(format!("Parquet encoding: {e}")))?;
            Ok(out)
        }
    }
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

/// Rows as JSON objects, columns in schema order.
fn rows(batches: &[RecordBatch]) -> Result<Vec<Value>> {
    let mut out = Vec::new();
    for batch in batches {
        let batch = plain(batch)?;
        let schema = batch.schema();
        let columns: Vec<Vec<Value>> = batch
            .columns()
            .iter()
            .map(json_values)
            .collect::<Result<_>>()?;
        for row in 0..batch.num_rows() {
            let mut object = Map::with_capacity(columns.len());
            for (field, values) in schema.fields().iter().zip(&columns) {
                object.insert(field.name().clone(), values[row].clone());
            }
            out.push(Value::Object(object));
        }
    }
    Ok(out)
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
        DataType::Timestamp(..) => {
            let ns = cast(array, &DataType::Timestamp(TimeUnit::Nanosecond, None))
                .map_err(|e| ApiError::Internal(e.to_string()))?;
            let a = ns.as_primitive::<arrow::datatypes::TimestampNanosecondType>();
            (0..n)
                .map(|i| Value::from(rfc3339_nanos(a.value(i))))
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

    #[test]
    fn times_have_nanoseconds() {
        assert_eq!(rfc3339_nanos(1), "1970-01-01T00:00:00.000000001Z");
        assert_eq!(
            rfc3339_nanos(1_700_000_000_123_456_789),
            "2023-11-14T22:13:20.123456789Z"
        );
    }
}
