//! Conversions of wire payloads into Arrow record batches: the columnar
//! protobuf `Rows` of `ingot.v1` and Arrow IPC streams.
//!
//! Every error here is the caller's: it names the column (or the IPC
//! problem) so that a client can fix its request.

use std::collections::{HashMap, HashSet};
use std::io::Cursor;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray,
    TimestampNanosecondArray, UInt64Array,
};
use arrow::buffer::{BooleanBuffer, Buffer, NullBuffer};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use arrow::ipc::reader::StreamReader;
use ingot_engine::{KIND_METADATA_KEY, TIME_COLUMN};
use ingot_proto::v1::{self, column::Values};

/// A request payload that cannot become a record batch.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConvertError(pub String);

type Result<T, E = ConvertError> = std::result::Result<T, E>;

fn err(message: impl Into<String>) -> ConvertError {
    ConvertError(message.into())
}

/// Builds a record batch from columnar protobuf rows. Column roles are set in
/// the `ingot.kind` field metadata; a column of unspecified kind follows the
/// engine's rule (the column named `time` is the time, strings are tags, the
/// rest are fields).
pub fn rows_to_batch(rows: &v1::Rows) -> Result<RecordBatch> {
    let n = rows.row_count as usize;
    if rows.columns.is_empty() {
        return Err(err(
            "rows: no columns; a write needs at least a time column",
        ));
    }
    let mut seen = HashSet::new();
    let mut fields = Vec::with_capacity(rows.columns.len());
    let mut arrays = Vec::with_capacity(rows.columns.len());
    for column in &rows.columns {
        let name = column.name.as_str();
        if name.is_empty() {
            return Err(err("rows: a column has an empty name"));
        }
        if !seen.insert(name) {
            return Err(err(format!("rows: column {name:?} appears twice")));
        }
        let kind = v1::ColumnKind::try_from(column.kind).map_err(|_| {
            err(format!(
                "column {name:?}: unknown kind {}; expected TIME, TAG or FIELD",
                column.kind
            ))
        })?;
        let Some(values) = &column.values else {
            return Err(err(format!("column {name:?}: no values")));
        };
        let len = match values {
            Values::I64(v) => v.values.len(),
            Values::F64(v) => v.values.len(),
            Values::Str(v) => v.values.len(),
            Values::Bool(v) => v.values.len(),
            Values::U64(v) => v.values.len(),
        };
        if len != n {
            return Err(err(format!(
                "column {name:?}: {len} values but row_count is {n}; value arrays are full \
                 length, with any placeholder where validity marks a null"
            )));
        }
        let nulls = validity(name, &column.validity, n)?;
        let role = match kind {
            v1::ColumnKind::Time => "time",
            v1::ColumnKind::Tag => "tag",
            v1::ColumnKind::Field => "field",
            v1::ColumnKind::Unspecified => match values {
                Values::I64(_) if name == TIME_COLUMN => "time",
                Values::Str(_) => "tag",
                _ => "field",
            },
        };
        let array: ArrayRef = match (role, values) {
            ("time", Values::I64(v)) => Arc::new(
                TimestampNanosecondArray::new(v.values.clone().into(), nulls).with_timezone("UTC"),
            ),
            ("time", _) => {
                return Err(err(format!(
                    "column {name:?}: the time column needs i64 values (nanoseconds since the epoch)"
                )));
            }
            ("tag", Values::Str(v)) => Arc::new(strings(&v.values, nulls)),
            ("tag", _) => {
                return Err(err(format!("column {name:?}: a tag needs str values")));
            }
            (_, Values::I64(v)) => Arc::new(Int64Array::new(v.values.clone().into(), nulls)),
            (_, Values::F64(v)) => Arc::new(Float64Array::new(v.values.clone().into(), nulls)),
            (_, Values::U64(v)) => Arc::new(UInt64Array::new(v.values.clone().into(), nulls)),
            (_, Values::Bool(v)) => Arc::new(BooleanArray::new(
                BooleanBuffer::from_iter(v.values.iter().copied()),
                nulls,
            )),
            (_, Values::Str(v)) => Arc::new(strings(&v.values, nulls)),
        };
        let data_type = match role {
            "time" => DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into())),
            _ => array.data_type().clone(),
        };
        fields.push(role_field(name, data_type, role));
        arrays.push(array);
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)
        .map_err(|e| err(format!("rows: {e}")))
}

/// A column's field with its role (`time`, `tag` or `field`) in the
/// metadata the engine reads; only the time column is non-nullable.
pub fn role_field(name: &str, data_type: DataType, role: &str) -> Field {
    Field::new(name, data_type, role != "time").with_metadata(HashMap::from([(
        KIND_METADATA_KEY.to_string(),
        role.to_string(),
    )]))
}

/// The time column of a batch: nanoseconds since the epoch, UTC.
pub fn time_column(nanos: Vec<i64>) -> (Field, ArrayRef) {
    (
        role_field(
            TIME_COLUMN,
            DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into())),
            "time",
        ),
        Arc::new(TimestampNanosecondArray::from(nanos).with_timezone("UTC")),
    )
}

fn strings(values: &[String], nulls: Option<NullBuffer>) -> StringArray {
    let all = StringArray::from_iter_values(values);
    StringArray::new(all.offsets().clone(), all.values().clone(), nulls)
}

/// The validity bitmap of a column: empty means no nulls; otherwise at least
/// one bit per row, least significant bit first.
fn validity(name: &str, bitmap: &[u8], rows: usize) -> Result<Option<NullBuffer>> {
    if bitmap.is_empty() {
        return Ok(None);
    }
    let needed = rows.div_ceil(8);
    if bitmap.len() < needed {
        return Err(err(format!(
            "column {name:?}: validity has {} bytes, {rows} rows need {needed} \
             (one bit per row, least significant bit first)",
            bitmap.len()
        )));
    }
    let bits = BooleanBuffer::new(Buffer::from(&bitmap[..needed]), 0, rows);
    Ok(Some(NullBuffer::new(bits)).filter(|n| n.null_count() > 0))
}

/// Decodes an Arrow IPC stream and concatenates its batches into one, so
/// that the write is atomic. An empty stream (a schema, no batches) gives `None`.
pub fn ipc_to_batch(bytes: &[u8]) -> Result<Option<RecordBatch>> {
    check_ipc_framing(bytes)?;
    let reader = StreamReader::try_new(Cursor::new(bytes), None)
        .map_err(|e| err(format!("arrow_ipc is not an Arrow IPC stream: {e}")))?;
    let schema = reader.schema();
    let mut batches = Vec::new();
    for batch in reader {
        batches.push(batch.map_err(|e| err(format!("arrow_ipc: bad record batch: {e}")))?);
    }
    if batches.is_empty() {
        return Ok(None);
    }
    concat(&schema, &batches).map(Some)
}

/// Walks the message frames of an IPC stream and checks that every declared
/// length fits in the payload, before Arrow's reader allocates buffers of
/// those lengths (garbage bytes would otherwise read as a 2 GB message).
fn check_ipc_framing(bytes: &[u8]) -> Result<()> {
    let bad = |what: &str, at: usize| {
        err(format!(
            "arrow_ipc is not an Arrow IPC stream: {what} at byte {at} of {}",
            bytes.len()
        ))
    };
    let read_i32 = |at: usize| -> Option<i32> {
        bytes
            .get(at..at + 4)
            .and_then(|b| b.try_into().ok())
            .map(i32::from_le_bytes)
    };
    let mut pos = 0usize;
    while pos < bytes.len() {
        let Some(mut len) = read_i32(pos) else {
            return Err(bad("a truncated message length", pos));
        };
        pos += 4;
        if len == -1 {
            len = read_i32(pos).ok_or_else(|| bad("a truncated message length", pos))?;
            pos += 4;
        }
        if len == 0 {
            break;
        }
        let len = usize::try_from(len).map_err(|_| bad("a negative message length", pos))?;
        let Some(metadata) = bytes.get(pos..pos.saturating_add(len)) else {
            return Err(bad("a message longer than the payload", pos));
        };
        let message = arrow::ipc::root_as_message(metadata)
            .map_err(|e| bad(&format!("an unreadable message header ({e})"), pos))?;
        pos += len;
        let body = usize::try_from(message.bodyLength())
            .map_err(|_| bad("a negative body length", pos))?;
        if body > bytes.len() - pos {
            return Err(bad("a message body longer than the payload", pos));
        }
        pos += body;
    }
    Ok(())
}

/// Concatenates batches of one schema into one batch.
pub fn concat(
    schema: &arrow::datatypes::SchemaRef,
    batches: &[RecordBatch],
) -> Result<RecordBatch> {
    if batches.len() == 1 {
        return Ok(batches[0].clone());
    }
    arrow::compute::concat_batches(schema, batches)
        .map_err(|e| err(format!("cannot combine the batches into one write: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, AsArray};
    use v1::{Column, ColumnKind, Rows};

    fn column(name: &str, kind: ColumnKind, values: Values, validity: Vec<u8>) -> Column {
        Column {
            name: name.into(),
            kind: kind as i32,
            values: Some(values),
            validity,
        }
    }

    #[test]
    fn rows_with_nulls_become_a_batch() {
        let rows = Rows {
            row_count: 3,
            columns: vec![
                column(
                    "time",
                    ColumnKind::Time,
                    Values::I64(v1::Int64Values {
                        values: vec![1, 2, 3],
                    }),
                    vec![],
                ),
                column(
                    "host",
                    ColumnKind::Tag,
                    Values::Str(v1::StringValues {
                        values: vec!["a".into(), "".into(), "c".into()],
                    }),
                    vec![0b101],
                ),
                column(
                    "v",
                    ColumnKind::Field,
                    Values::F64(v1::DoubleValues {
                        values: vec![1.5, 0.0, 2.5],
                    }),
                    vec![0b011],
                ),
            ],
        };
        let batch = rows_to_batch(&rows).unwrap();
        assert_eq!(batch.num_rows(), 3);
        let host = batch.column(1).as_string::<i32>();
        assert_eq!(host.value(0), "a");
        assert!(host.is_null(1));
        assert_eq!(host.value(2), "c");
        assert!(batch.column(2).is_null(2));
        assert_eq!(batch.column(2).null_count(), 1);
    }

    #[test]
    fn short_value_array_names_the_column() {
        let rows = Rows {
            row_count: 2,
            columns: vec![column(
                "speed",
                ColumnKind::Field,
                Values::I64(v1::Int64Values { values: vec![1] }),
                vec![],
            )],
        };
        let e = rows_to_batch(&rows).unwrap_err().to_string();
        assert!(
            e.contains("\"speed\"") && e.contains("row_count is 2"),
            "{e}"
        );
    }

    #[test]
    fn garbage_ipc_is_an_error() {
        assert!(ipc_to_batch(b"definitely not arrow").is_err());
        assert!(ipc_to_batch(b"\xff\xff\xff\xff\x00\x00\x00\x7f").is_err());
    }

    #[test]
    fn ipc_stream_round_trips() {
        let batch = rows_to_batch(&Rows {
            row_count: 2,
            columns: vec![column(
                "time",
                ColumnKind::Time,
                Values::I64(v1::Int64Values { values: vec![1, 2] }),
                vec![],
            )],
        })
        .unwrap();
        let mut bytes = Vec::new();
        {
            let mut w =
                arrow::ipc::writer::StreamWriter::try_new(&mut bytes, &batch.schema()).unwrap();
            w.write(&batch).unwrap();
            w.write(&batch).unwrap();
            w.finish().unwrap();
        }
        assert_eq!(ipc_to_batch(&bytes).unwrap().unwrap().num_rows(), 4);
        assert!(ipc_to_batch(&bytes[..bytes.len() - 20]).is_err());
    }
}
