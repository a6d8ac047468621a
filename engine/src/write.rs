//! Turning what callers send into normalized per-table Arrow batches, and the
//! WAL entry that carries them.
//!
//! A normalized batch has `time` first as `Timestamp(ns, UTC)` without nulls,
//! tags as `Dictionary(Int32, Utf8)`, fields as f64/i64/u64/bool/utf8, and an
//! `ingot.kind` on every column. Everything after this module (catalog, WAL,
//! memtable, flush) sees only normalized batches.

use std::collections::HashMap;
use std::io::Cursor;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayBuilder, ArrayRef, BooleanBuilder, Float64Builder, Int64Builder, RecordBatch,
    StringBuilder, StringDictionaryBuilder, TimestampNanosecondArray, UInt64Builder,
};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Int32Type, Schema};
use arrow::ipc::reader::StreamReader;
use arrow::ipc::writer::StreamWriter;

use crate::catalog::{ColumnKind, FieldType, KIND_METADATA_KEY, TIME_COLUMN, arrow_field};
use crate::delete::{Dropped, Tombstone};
use crate::error::{Error, Result};
use crate::line_protocol::{self, FieldValue, ParsedLine};
use crate::options::Precision;

/// One table's part of a write request, normalized.
#[derive(Debug, Clone)]
pub(crate) struct TableWrite {
    pub table: String,
    pub batch: RecordBatch,
}

/// What a write stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct WriteSummary {
    /// Rows written.
    pub rows: u64,
    /// Non-null field values written.
    pub points: u64,
}

/// Checks a database or table name: non-empty, printable, at most 255 bytes.
pub(crate) fn check_name(what: &str, name: &str) -> Result<()> {
    if name.is_empty() {
        return Err(Error::InvalidWrite(format!("{what} name is empty")));
    }
    if name.len() > 255 {
        return Err(Error::InvalidWrite(format!(
            "{what} name {:?}... is longer than 255 bytes",
            &name[..name.floor_char_boundary(32)]
        )));
    }
    if name.chars().any(|c| c.is_control()) {
        return Err(Error::InvalidWrite(format!(
            "{what} name {name:?} contains a control character"
        )));
    }
    if what == "database" && name == crate::system::SYSTEM_SCHEMA {
        return Err(Error::InvalidWrite(format!(
            "database name {name:?} is reserved for the system tables; pick another name"
        )));
    }
    Ok(())
}

/// Counts the non-null field values of a normalized batch.
pub(crate) fn count_points(batch: &RecordBatch) -> u64 {
    batch
        .schema()
        .fields()
        .iter()
        .zip(batch.columns())
        .filter(|(f, _)| f.metadata().get(KIND_METADATA_KEY).map(String::as_str) == Some("field"))
        .map(|(_, c)| (c.len() - c.null_count()) as u64)
        .sum()
}

/// Normalizes a caller's record batch (see [`crate::Engine::write_batch`] for
/// the column-role rules).
pub(crate) fn normalize_batch(table: &str, batch: &RecordBatch) -> Result<TableWrite> {
    check_name("table", table)?;
    let schema = batch.schema();
    let mut seen = HashMap::new();
    let mut time: Option<ArrayRef> = None;
    let mut fields = Vec::with_capacity(schema.fields().len());
    let mut columns = Vec::with_capacity(schema.fields().len());
    for (field, array) in schema.fields().iter().zip(batch.columns()) {
        let name = field.name();
        if seen.insert(name.clone(), ()).is_some() {
            return Err(Error::InvalidWrite(format!(
                "table {table:?}: column {name:?} appears twice in the batch"
            )));
        }
        let kind = infer_kind(table, field)?;
        let target = kind.data_type();
        let converted = if array.data_type() == &target {
            array.clone()
        } else {
            cast(array, &target).map_err(|e| {
                Error::InvalidWrite(format!(
                    "table {table:?}: column {name:?} of type {} cannot be stored as {}: {e}",
                    array.data_type(),
                    kind.describe()
                ))
            })?
        };
        if kind == ColumnKind::Time {
            if converted.null_count() > 0 {
                return Err(Error::InvalidWrite(format!(
                    "table {table:?}: the time column has {} null values; every row needs a time",
                    converted.null_count()
                )));
            }
            time = Some(converted);
            continue;
        }
        if name == TIME_COLUMN {
            return Err(Error::InvalidWrite(format!(
                "table {table:?}: a tag or field may not be named \"time\""
            )));
        }
        fields.push(arrow_field(name, kind));
        columns.push(converted);
    }
    let Some(time) = time else {
        return Err(Error::InvalidWrite(format!(
            "table {table:?}: the batch has no time column (a timestamp column named \"time\", \
             or one with field metadata ingot.kind=time)"
        )));
    };
    fields.insert(0, arrow_field(TIME_COLUMN, ColumnKind::Time));
    columns.insert(0, time);
    let columns = columns.into_iter().map(compact).collect();
    let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)?;
    Ok(TableWrite {
        table: table.to_string(),
        batch,
    })
}

/// The array with buffers of its own when it holds on to much more memory
/// than it uses: arrays decoded from one Arrow IPC message are slices of one
/// buffer, and each would otherwise keep (and be charged against the
/// memtable budget for) the whole message.
fn compact(array: ArrayRef) -> ArrayRef {
    let data = array.to_data();
    let used = data.get_slice_memory_size().unwrap_or(usize::MAX);
    if array.get_array_memory_size() <= used.saturating_mul(2).saturating_add(64 << 10) {
        return array;
    }
    let mut copy = arrow::array::MutableArrayData::new(vec![&data], false, data.len());
    match copy.try_extend(0, 0, data.len()) {
        Ok(()) => arrow::array::make_array(copy.freeze()),
        Err(_) => array,
    }
}

fn infer_kind(table: &str, field: &Field) -> Result<ColumnKind> {
    let dt = field.data_type();
    let explicit = field.metadata().get(KIND_METADATA_KEY).map(String::as_str);
    let bad_type = |role: &str| {
        Error::InvalidWrite(format!(
            "table {table:?}: column {:?} has Arrow type {dt}, which cannot be {role}",
            field.name()
        ))
    };
    let is_string = matches!(
        dt,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
    ) || matches!(dt, DataType::Dictionary(_, v) if matches!(**v, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View));
    let field_type = || -> Result<FieldType> {
        Ok(match dt {
            DataType::Float64 | DataType::Float32 | DataType::Float16 => FieldType::Float,
            DataType::Int64 | DataType::Int32 | DataType::Int16 | DataType::Int8 => {
                FieldType::Integer
            }
            DataType::UInt64 | DataType::UInt32 | DataType::UInt16 | DataType::UInt8 => {
                FieldType::UInteger
            }
            DataType::Boolean => FieldType::Boolean,
            _ if is_string => FieldType::String,
            _ => return Err(bad_type("a field")),
        })
    };
    match explicit {
        Some("time") => match dt {
            DataType::Timestamp(_, _) | DataType::Int64 => Ok(ColumnKind::Time),
            _ => Err(bad_type("the time column")),
        },
        Some("tag") if is_string => Ok(ColumnKind::Tag),
        Some("tag") => Err(bad_type("a tag")),
        Some("field") => Ok(ColumnKind::Field(field_type()?)),
        Some(other) => Err(Error::InvalidWrite(format!(
            "table {table:?}: column {:?} has ingot.kind={other:?}; expected time, tag or field",
            field.name()
        ))),
        None if field.name() == TIME_COLUMN && matches!(dt, DataType::Timestamp(_, _)) => {
            Ok(ColumnKind::Time)
        }
        None if is_string => Ok(ColumnKind::Tag),
        None => Ok(ColumnKind::Field(field_type()?)),
    }
}

/// Parses a whole line-protocol request into one normalized batch per table.
/// Any error rejects the whole request.
pub(crate) fn parse_line_protocol(
    text: &str,
    precision: Precision,
    now_ns: i64,
) -> Result<(Vec<TableWrite>, WriteSummary)> {
    let mut tables: Vec<LpTable> = Vec::new();
    let mut by_name: HashMap<String, usize> = HashMap::new();
    let mut last_table: Option<usize> = None;
    let mut line = ParsedLine::default();
    let mut summary = WriteSummary::default();
    let mult = precision.multiplier();
    for (line_no, text) in line_protocol::lines(text) {
        line_protocol::parse_line(text, line_no, &mut line)?;
        // Most requests write one table: its lines find it without a lookup.
        let last = last_table.filter(|&i| tables[i].name == line.measurement);
        let idx = match last.or_else(|| by_name.get(line.measurement.as_ref()).copied()) {
            Some(i) => i,
            None => {
                check_name("table", &line.measurement)
                    .map_err(|e| Error::InvalidWrite(format!("line {line_no}: {e}")))?;
                tables.push(LpTable::new(&line.measurement));
                by_name.insert(line.measurement.to_string(), tables.len() - 1);
                tables.len() - 1
            }
        };
        let time = match line.timestamp {
            None => now_ns,
            Some(ts) => ts.checked_mul(mult).ok_or_else(|| {
                Error::InvalidWrite(format!(
                    "line {line_no}: timestamp {ts} with precision {precision:?} is out of range"
                ))
            })?,
        };
        last_table = Some(idx);
        summary.points += tables[idx].push(&line, line_no, time)?;
        summary.rows += 1;
    }
    let writes = tables
        .into_iter()
        .map(LpTable::finish)
        .collect::<Result<Vec<_>>>()?;
    Ok((writes, summary))
}

/// The number of the first line of `text` that writes `column` of `table`: where
/// a type conflict with the catalog, found only once the whole request is
/// parsed, is reported. Every line of a request that parsed writes a column
/// with one type, so the first line naming it is the first that conflicts.
pub(crate) fn first_line_writing(text: &str, table: &str, column: &str) -> Option<usize> {
    let mut line = ParsedLine::default();
    line_protocol::lines(text).find_map(|(line_no, text)| {
        line_protocol::parse_line(text, line_no, &mut line).ok()?;
        let writes = line.measurement == table
            && (line.tags.iter().any(|(k, _)| k == column)
                || line.fields.iter().any(|(k, _)| k == column));
        writes.then_some(line_no)
    })
}

/// The number of the first line of `text` that writes a row of `table` older
/// than `horizon` (ns): where a write past its database's retention is
/// reported. Lines without a timestamp are "now", never older.
pub(crate) fn first_line_before(
    text: &str,
    precision: Precision,
    table: &str,
    horizon: i64,
) -> Option<usize> {
    let mut line = ParsedLine::default();
    let mult = precision.multiplier();
    line_protocol::lines(text).find_map(|(line_no, text)| {
        line_protocol::parse_line(text, line_no, &mut line).ok()?;
        let old = line.measurement == table
            && line
                .timestamp
                .is_some_and(|t| t.checked_mul(mult).is_some_and(|t| t < horizon));
        old.then_some(line_no)
    })
}

/// Column builders for one table of a line-protocol request.
struct LpTable {
    name: String,
    rows: usize,
    time: Vec<i64>,
    columns: Vec<(String, LpColumn)>,
    index: HashMap<String, usize>,
    /// The column of each tag and each field of the line added last, in the
    /// line's order. Lines of one table nearly always name the same keys in
    /// the same order, so a key is checked against the column of its place
    /// in the line before and looked up by name only when that differs.
    line_tags: Vec<usize>,
    line_columns: Vec<usize>,
}

enum LpColumn {
    Tag(StringDictionaryBuilder<Int32Type>),
    Float(Float64Builder),
    Integer(Int64Builder),
    UInteger(UInt64Builder),
    Boolean(BooleanBuilder),
    String(StringBuilder),
}

impl LpColumn {
    fn new(kind: ColumnKind, nulls: usize) -> Self {
        let mut c = match kind {
            ColumnKind::Field(FieldType::Float) => LpColumn::Float(Float64Builder::new()),
            ColumnKind::Field(FieldType::Integer) => LpColumn::Integer(Int64Builder::new()),
            ColumnKind::Field(FieldType::UInteger) => LpColumn::UInteger(UInt64Builder::new()),
            ColumnKind::Field(FieldType::Boolean) => LpColumn::Boolean(BooleanBuilder::new()),
            ColumnKind::Field(FieldType::String) => LpColumn::String(StringBuilder::new()),
            _ => LpColumn::Tag(StringDictionaryBuilder::new()),
        };
        for _ in 0..nulls {
            c.append_null();
        }
        c
    }

    fn kind(&self) -> ColumnKind {
        match self {
            LpColumn::Tag(_) => ColumnKind::Tag,
            LpColumn::Float(_) => ColumnKind::Field(FieldType::Float),
            LpColumn::Integer(_) => ColumnKind::Field(FieldType::Integer),
            LpColumn::UInteger(_) => ColumnKind::Field(FieldType::UInteger),
            LpColumn::Boolean(_) => ColumnKind::Field(FieldType::Boolean),
            LpColumn::String(_) => ColumnKind::Field(FieldType::String),
        }
    }

    fn len(&self) -> usize {
        match self {
            LpColumn::Tag(b) => b.len(),
            LpColumn::Float(b) => b.len(),
            LpColumn::Integer(b) => b.len(),
            LpColumn::UInteger(b) => b.len(),
            LpColumn::Boolean(b) => b.len(),
            LpColumn::String(b) => b.len(),
        }
    }

    fn append_null(&mut self) {
        match self {
            LpColumn::Tag(b) => b.append_null(),
            LpColumn::Float(b) => b.append_null(),
            LpColumn::Integer(b) => b.append_null(),
            LpColumn::UInteger(b) => b.append_null(),
            LpColumn::Boolean(b) => b.append_null(),
            LpColumn::String(b) => b.append_null(),
        }
    }

    fn finish(self) -> ArrayRef {
        match self {
            LpColumn::Tag(mut b) => Arc::new(b.finish()),
            LpColumn::Float(mut b) => Arc::new(b.finish()),
            LpColumn::Integer(mut b) => Arc::new(b.finish()),
            LpColumn::UInteger(mut b) => Arc::new(b.finish()),
            LpColumn::Boolean(mut b) => Arc::new(b.finish()),
            LpColumn::String(mut b) => Arc::new(b.finish()),
        }
    }
}

fn field_kind(v: &FieldValue<'_>) -> ColumnKind {
    ColumnKind::Field(match v {
        FieldValue::F64(_) => FieldType::Float,
        FieldValue::I64(_) => FieldType::Integer,
        FieldValue::U64(_) => FieldType::UInteger,
        FieldValue::Bool(_) => FieldType::Boolean,
        FieldValue::Str(_) => FieldType::String,
    })
}

impl LpTable {
    fn new(name: &str) -> Self {
        Self {
            name: name.to_string(),
            rows: 0,
            time: Vec::new(),
            columns: Vec::new(),
            index: HashMap::new(),
            line_tags: Vec::new(),
            line_columns: Vec::new(),
        }
    }

    /// The position of column `name` when the line before had it at
    /// `previous` (see `line_tags`), else as [`LpTable::column_index`] finds it.
    fn column_at(
        &mut self,
        previous: Option<usize>,
        name: &str,
        kind: ColumnKind,
        line_no: usize,
    ) -> Result<usize> {
        if let Some(i) = previous
            && let Some((column, builder)) = self.columns.get(i)
            && column == name
            && builder.kind() == kind
        {
            return Ok(i);
        }
        self.column_index(name, kind, line_no)
    }

    /// The position of column `name`, created (back-filled with nulls) if new.
    fn column_index(&mut self, name: &str, kind: ColumnKind, line_no: usize) -> Result<usize> {
        let i = match self.index.get(name) {
            Some(&i) => i,
            None => {
                if name == TIME_COLUMN {
                    return Err(Error::InvalidWrite(format!(
                        "line {line_no}: a tag or field may not be named \"time\""
                    )));
                }
                self.columns
                    .push((name.to_string(), LpColumn::new(kind, self.rows)));
                self.index.insert(name.to_string(), self.columns.len() - 1);
                self.columns.len() - 1
            }
        };
        let col = &self.columns[i].1;
        if col.kind() != kind {
            return Err(Error::TypeConflict {
                table: self.name.clone(),
                column: name.to_string(),
                existing: format!("{} in earlier lines", col.kind().describe()),
                incoming: kind.describe(),
                line: Some(line_no),
            });
        }
        Ok(i)
    }

    /// Appends one line; returns its number of field values.
    fn push(&mut self, line: &ParsedLine<'_>, line_no: usize, time: i64) -> Result<u64> {
        let row = self.rows;
        for (k, (key, value)) in line.tags.iter().enumerate() {
            let previous = self.line_tags.get(k).copied();
            let i = self.column_at(previous, key, ColumnKind::Tag, line_no)?;
            match self.line_tags.get_mut(k) {
                Some(slot) => *slot = i,
                None => self.line_tags.push(i),
            }
            match &mut self.columns[i].1 {
                LpColumn::Tag(b) => b.append_value(value.as_ref()),
                _ => unreachable!("column_index() checked the kind"),
            }
        }
        self.line_tags.truncate(line.tags.len());
        // Columns are created in line order; values go in last-first so that
        // the last of a key repeated in one line wins and the others are skipped.
        for (k, (key, value)) in line.fields.iter().enumerate() {
            let previous = self.line_columns.get(k).copied();
            let i = self.column_at(previous, key, field_kind(value), line_no)?;
            match self.line_columns.get_mut(k) {
                Some(slot) => *slot = i,
                None => self.line_columns.push(i),
            }
        }
        self.line_columns.truncate(line.fields.len());
        let mut points = 0;
        for (k, (_, value)) in line.fields.iter().enumerate().rev() {
            let col = &mut self.columns[self.line_columns[k]].1;
            if col.len() > row {
                continue;
            }
            points += 1;
            match (col, value) {
                (LpColumn::Float(b), FieldValue::F64(v)) => b.append_value(*v),
                (LpColumn::Integer(b), FieldValue::I64(v)) => b.append_value(*v),
                (LpColumn::UInteger(b), FieldValue::U64(v)) => b.append_value(*v),
                (LpColumn::Boolean(b), FieldValue::Bool(v)) => b.append_value(*v),
                (LpColumn::String(b), FieldValue::Str(v)) => b.append_value(v.as_ref()),
                _ => unreachable!("column_index() checked the kind"),
            }
        }
        self.rows += 1;
        self.time.push(time);
        for (_, col) in &mut self.columns {
            if col.len() < self.rows {
                col.append_null();
            }
        }
        Ok(points)
    }

    fn finish(self) -> Result<TableWrite> {
        let mut fields = vec![arrow_field(TIME_COLUMN, ColumnKind::Time)];
        let mut arrays: Vec<ArrayRef> = vec![Arc::new(
            TimestampNanosecondArray::from(self.time).with_timezone("UTC"),
        )];
        for (name, col) in self.columns {
            fields.push(arrow_field(&name, col.kind()));
            // Builders over-allocate; a small write must not hold (and be
            // charged against the memtable budget for) their spare capacity.
            let mut array = col.finish();
            array.shrink_to_fit();
            arrays.push(array);
        }
        let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)?;
        Ok(TableWrite {
            table: self.name,
            batch,
        })
    }
}

/// Version byte of the WAL entry payload.
const ENTRY_VERSION: u8 = 1;

/// Encodes a write request as a WAL payload:
/// `version u8 | db_len u16 | db | n_tables u16 | (name_len u16 | name | ipc_len u32 | Arrow IPC stream)*`,
/// integers little-endian.
pub(crate) fn encode_entry(database: &str, writes: &[TableWrite]) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(
        64 + writes
            .iter()
            .map(|w| w.batch.get_array_memory_size())
            .sum::<usize>(),
    );
    out.push(ENTRY_VERSION);
    put_str(&mut out, database)?;
    let n = u16::try_from(writes.len())
        .map_err(|_| Error::InvalidWrite("a write may touch at most 65535 tables".into()))?;
    out.extend_from_slice(&n.to_le_bytes());
    for w in writes {
        put_str(&mut out, &w.table)?;
        let len_at = out.len();
        out.extend_from_slice(&[0; 4]);
        {
            let mut writer = StreamWriter::try_new(&mut out, &w.batch.schema())?;
            writer.write(&w.batch)?;
            writer.finish()?;
        }
        let ipc_len = u32::try_from(out.len() - len_at - 4)
            .map_err(|_| Error::InvalidWrite("one table's part of a write is over 4 GiB".into()))?;
        out[len_at..len_at + 4].copy_from_slice(&ipc_len.to_le_bytes());
    }
    Ok(out)
}

fn put_str(out: &mut Vec<u8>, s: &str) -> Result<()> {
    let n = u16::try_from(s.len()).map_err(|_| {
        Error::InvalidWrite(format!(
            "name {:?}... is too long",
            &s[..s.floor_char_boundary(32)]
        ))
    })?;
    out.extend_from_slice(&n.to_le_bytes());
    out.extend_from_slice(s.as_bytes());
    Ok(())
}

/// Version byte of a WAL payload that holds a delete.
const DELETE_VERSION: u8 = 2;

/// Encodes a delete as a WAL payload: `2 u8 | the tombstone as JSON`.
pub(crate) fn encode_delete(tombstone: &Tombstone) -> Result<Vec<u8>> {
    let mut out = vec![DELETE_VERSION];
    serde_json::to_writer(&mut out, tombstone)
        .map_err(|e| Error::Internal(format!("a delete does not serialize: {e}")))?;
    Ok(out)
}

/// Version byte of a WAL payload that holds a drop.
const DROP_VERSION: u8 = 3;

/// Encodes `DROP TABLE` / `DROP DATABASE` as a WAL payload: `3 u8 | JSON`.
pub(crate) fn encode_drop(dropped: &Dropped) -> Result<Vec<u8>> {
    let mut out = vec![DROP_VERSION];
    serde_json::to_writer(&mut out, dropped)
        .map_err(|e| Error::Internal(format!("a drop does not serialize: {e}")))?;
    Ok(out)
}

/// One WAL record.
pub(crate) enum Entry {
    /// A write request: its database and one batch per table.
    Write(String, Vec<TableWrite>),
    /// A delete (its `seq` is the record's).
    Delete(Tombstone),
    /// A drop (its `seq` is the record's).
    Drop(Dropped),
}

/// Decodes a WAL payload: a write ([`encode_entry`]), a delete
/// ([`encode_delete`]) or a drop ([`encode_drop`]).
pub(crate) fn decode_record(payload: &[u8]) -> std::result::Result<Entry, String> {
    match payload.first() {
        Some(&DELETE_VERSION) => serde_json::from_slice(&payload[1..])
            .map(Entry::Delete)
            .map_err(|e| format!("delete record does not decode: {e}")),
        Some(&DROP_VERSION) => serde_json::from_slice(&payload[1..])
            .map(Entry::Drop)
            .map_err(|e| format!("drop record does not decode: {e}")),
        _ => decode_entry(payload).map(|(database, writes)| Entry::Write(database, writes)),
    }
}

/// Decodes [`encode_entry`]'s payload. An error here means the WAL holds a
/// record this version cannot read.
pub(crate) fn decode_entry(
    payload: &[u8],
) -> std::result::Result<(String, Vec<TableWrite>), String> {
    let mut r = Reader {
        buf: payload,
        pos: 0,
    };
    let version = r.u8()?;
    if version != ENTRY_VERSION {
        return Err(format!("unknown entry version {version}"));
    }
    let database = r.str()?;
    let n = r.u16()?;
    let mut writes = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let table = r.str()?;
        let len = r.u32()? as usize;
        let bytes = r.take(len)?;
        let mut reader =
            StreamReader::try_new(Cursor::new(bytes), None).map_err(|e| e.to_string())?;
        let batch = reader
            .next()
            .ok_or("table part holds no batch")?
            .map_err(|e| e.to_string())?;
        writes.push(TableWrite { table, batch });
    }
    Ok((database, writes))
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> std::result::Result<&'a [u8], String> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len());
        let end = end.ok_or_else(|| format!("entry truncated at byte {}", self.pos))?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u8(&mut self) -> std::result::Result<u8, String> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> std::result::Result<u16, String> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> std::result::Result<u32, String> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn str(&mut self) -> std::result::Result<String, String> {
        let n = self.u16()? as usize;
        let b = self.take(n)?;
        String::from_utf8(b.to_vec()).map_err(|_| "name is not UTF-8".to_string())
    }
}

/// A `time` array of a normalized batch.
pub(crate) fn time_values(batch: &RecordBatch) -> &[i64] {
    batch
        .column(0)
        .as_any()
        .downcast_ref::<TimestampNanosecondArray>()
        .map(|a| a.values().as_ref())
        .unwrap_or(&[])
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Float64Array, StringArray};
    use arrow::datatypes::TimeUnit;

    #[test]
    fn batches_decoded_from_ipc_are_charged_for_what_they_hold() {
        let n = 10_000;
        let time = TimestampNanosecondArray::from_iter_values(0..n as i64).with_timezone("UTC");
        let columns: Vec<ArrayRef> = std::iter::once(Arc::new(time) as ArrayRef)
            .chain((0..8).map(|i| {
                Arc::new(Float64Array::from_iter_values(
                    (0..n).map(|v| (v * i) as f64),
                )) as ArrayRef
            }))
            .collect();
        let fields: Vec<Field> = std::iter::once(Field::new(
            "time",
            DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into())),
            false,
        ))
        .chain((0..8).map(|i| Field::new(format!("f{i}"), DataType::Float64, false)))
        .collect();
        let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap();
        let mut bytes = Vec::new();
        let mut writer =
            arrow::ipc::writer::StreamWriter::try_new(&mut bytes, &batch.schema()).unwrap();
        writer.write(&batch).unwrap();
        writer.finish().unwrap();
        drop(writer);
        let decoded = arrow::ipc::reader::StreamReader::try_new(std::io::Cursor::new(bytes), None)
            .unwrap()
            .next()
            .unwrap()
            .unwrap();
        let held = normalize_batch("m", &decoded)
            .unwrap()
            .batch
            .get_array_memory_size();
        let data = 9 * n * 8;
        assert!(
            held < 2 * data,
            "{held} bytes held for {data} bytes of data"
        );
    }

    #[test]
    fn line_protocol_to_batches() {
        let lp = "m,host=a v=1.5,n=2i 10\nm,host=b v=2.5 20\nother x=true 30\nm,dc=x s=\"hi\" 40\n";
        let (writes, summary) = parse_line_protocol(lp, Precision::Nanosecond, 0).unwrap();
        assert_eq!(summary, WriteSummary { rows: 4, points: 5 });
        assert_eq!(writes.len(), 2);
        let m = &writes[0].batch;
        assert_eq!(m.num_rows(), 3);
        let names: Vec<_> = m
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        assert_eq!(names, ["time", "host", "v", "n", "dc", "s"]);
        assert_eq!(time_values(m), &[10, 20, 40]);
        assert_eq!(m.column(4).null_count(), 2);
    }

    #[test]
    fn keys_in_another_order_than_the_line_before_land_in_their_own_columns() {
        // Each line names keys at places where the line before had others.
        let lp = "m,a=1,b=2 x=1,y=2 1\nm,b=3,a=4 y=3,x=4 2\nm,b=5 y=5 3\nn,a=6 x=6 4\nm,c=7,a=8 z=7,x=8 5\n";
        let (writes, _) = parse_line_protocol(lp, Precision::Nanosecond, 0).unwrap();
        let m = &writes[0].batch;
        let column = |name: &str| {
            let array = m.column_by_name(name).unwrap();
            let text = arrow::compute::cast(array, &arrow::datatypes::DataType::Utf8).unwrap();
            text.as_any()
                .downcast_ref::<arrow::array::StringArray>()
                .unwrap()
                .iter()
                .map(|v| v.unwrap_or("-").to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(column("a"), ["1", "4", "-", "8"]);
        assert_eq!(column("b"), ["2", "3", "5", "-"]);
        assert_eq!(column("c"), ["-", "-", "-", "7"]);
        assert_eq!(column("x"), ["1.0", "4.0", "-", "8.0"]);
        assert_eq!(column("y"), ["2.0", "3.0", "5.0", "-"]);
        assert_eq!(column("z"), ["-", "-", "-", "7.0"]);
        assert_eq!(writes[1].batch.num_rows(), 1);
        // A key at the place of one of another type is a conflict.
        let err = parse_line_protocol("m x=1,y=2 1\nm x=1i 2\n", Precision::Nanosecond, 0);
        assert!(
            matches!(err, Err(Error::TypeConflict { line: Some(2), .. })),
            "{err:?}"
        );
    }

    #[test]
    fn type_conflict_inside_one_request_names_lines() {
        let err = parse_line_protocol("m v=1 1\nm v=2i 2\n", Precision::Nanosecond, 0).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("line 2") && msg.contains("float") && msg.contains("integer"),
            "{msg}"
        );
    }

    #[test]
    fn precision_scales_and_overflow_is_rejected() {
        let (w, _) = parse_line_protocol("m v=1 5", Precision::Second, 0).unwrap();
        assert_eq!(time_values(&w[0].batch), &[5_000_000_000]);
        assert!(parse_line_protocol("m v=1 9223372036854775807", Precision::Second, 0).is_err());
    }

    #[test]
    fn normalize_infers_roles_and_entry_round_trips() {
        let schema = Arc::new(Schema::new(vec![
            Field::new(
                "time",
                DataType::Timestamp(TimeUnit::Millisecond, None),
                false,
            ),
            Field::new("host", DataType::Utf8, true),
            Field::new("v", DataType::Float64, true),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(arrow::array::TimestampMillisecondArray::from(vec![1, 2])),
                Arc::new(StringArray::from(vec!["a", "b"])),
                Arc::new(Float64Array::from(vec![Some(1.0), None])),
            ],
        )
        .unwrap();
        let w = normalize_batch("t", &batch).unwrap();
        assert_eq!(time_values(&w.batch), &[1_000_000, 2_000_000]);
        assert_eq!(w.batch.column(1).data_type(), &crate::catalog::tag_type());
        assert_eq!(count_points(&w.batch), 1);
        let payload = encode_entry("db", std::slice::from_ref(&w)).unwrap();
        let (db, back) = decode_entry(&payload).unwrap();
        assert_eq!(db, "db");
        assert_eq!(back[0].batch, w.batch);
    }

    #[test]
    fn missing_time_is_a_clear_error() {
        let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Float64, true)]));
        let batch =
            RecordBatch::try_new(schema, vec![Arc::new(Float64Array::from(vec![1.0]))]).unwrap();
        let msg = normalize_batch("t", &batch).unwrap_err().to_string();
        assert!(msg.contains("no time column"), "{msg}");
    }
}
