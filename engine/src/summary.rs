//! Per-file summaries: for every series and time window of a file, the row
//! count and each field's count, sum, minimum and maximum.
//!
//! A flush or a compaction that writes a data file also writes its summary
//! beside it (`<id>.summary` beside `<id>.parquet`), a few thousand rows
//! where the file holds millions. A query that aggregates by tags and by `date_bin` over
//! whole windows (hourly power per device, the hottest devices of an hour,
//! fault counts per line) reads the summaries of the files that need no
//! deduplication and no delete, and the raw rows of everything else
//! ([`crate::summary_rule`]). The answer is the one the full scan gives.
//!
//! Small integer and boolean fields (at most [`MAX_KEY_VALUES`] values in a
//! file's first rows, like a machine's status) are summary keys: a window
//! has one summary row per value, so that `WHERE status = 2` or
//! `sum(CASE WHEN status = 2 THEN 1 ELSE 0 END)` are answered from
//! summaries too. A file records which fields are its keys.
//!
//! Summary rows need not be unique: a window whose rows arrive in two
//! batches (a compaction writes a file a row group at a time) may have two
//! rows, and a query adds them up. Float sums are exact: where a file's
//! values are decimals (25.07 is 2507 / 100) they are summed as integers,
//! and the summary stores them as decimals, like the data file.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Decimal128Array, Int32Array, Int64Array,
    PrimitiveArray, RecordBatch, TimestampNanosecondArray, UInt32Array, UInt64Array,
    new_null_array,
};
use arrow::compute::kernels::partition::partition;
use arrow::compute::{SortColumn, concat_batches, lexsort_to_indices, take, take_record_batch};
use arrow::datatypes::{
    ArrowNativeTypeOp, ArrowPrimitiveType, DataType, Decimal128Type, Float64Type, Int32Type,
    Int64Type, UInt64Type,
};
use parquet::schema::types::ColumnPath;
use serde::{Deserialize, Serialize};

use crate::catalog::{Column, ColumnKind, FieldType, TIME_COLUMN, TableSchema};
use crate::error::{Error, Result};
use crate::parquet_file::{Layout, decimal_scale};
use crate::write::time_values;

/// A field with at most this many distinct values (null counts as one) in a
/// file's first rows is a summary key.
pub(crate) const MAX_KEY_VALUES: usize = 8;
/// At most this many fields are keys, so that a window's rows stay few.
const MAX_KEYS: usize = 2;

/// Row groups and pages of summary files: small, so that their time
/// statistics prune.
const ROW_GROUP_ROWS: usize = 1 << 15;
const PAGE_ROWS: usize = 4096;
/// Rows of a summary from which its columns' encodings are chosen (trial
/// encodings of every statistic column, beside which the summary itself is
/// small). Summary rows are ordered window first, so these are every
/// series' first windows; a column's kind of values is the same in each.
const LAYOUT_SAMPLE_ROWS: usize = 1 << 13;

/// Column of a summary row: how many rows it covers.
pub(crate) const ROWS: &str = "__rows";

/// The summary column of one statistic of field `field`.
pub(crate) fn stat_column(stat: Stat, field: &str) -> String {
    format!("__{}_{field}", stat.name())
}

/// The statistics a summary keeps of each field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stat {
    /// Non-null values.
    Count,
    Sum,
    Min,
    Max,
}

impl Stat {
    fn name(self) -> &'static str {
        match self {
            Stat::Count => "count",
            Stat::Sum => "sum",
            Stat::Min => "min",
            Stat::Max => "max",
        }
    }
}

/// What the manifest records of a file's summary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SummaryMeta {
    /// Width of the windows (ns), from the epoch.
    pub window_ns: i64,
    /// The fields that are keys of the summary rows.
    pub keys: Vec<String>,
    pub rows: u64,
    pub bytes: u64,
}

/// How the name of a summary ends: Parquet, but not named `.parquet`, so
/// that a reader of a table's folder (`*/*.parquet`) sees data files only.
pub(crate) const SUFFIX: &str = ".summary";

/// Where the summary of the data file at `path` lives.
pub(crate) fn summary_path(path: &str) -> String {
    crate::manifest::sidecar_path(path, SUFFIX)
}

/// Whether a field of this type may be a summary key.
pub(crate) fn may_be_key(kind: ColumnKind) -> bool {
    matches!(
        kind,
        ColumnKind::Field(FieldType::Integer | FieldType::UInteger | FieldType::Boolean)
    )
}

/// Whether the summary keeps sum, minimum and maximum of a field of this
/// type (every field gets a count).
pub(crate) fn has_stats(kind: ColumnKind) -> bool {
    matches!(
        kind,
        ColumnKind::Field(FieldType::Float | FieldType::Integer | FieldType::UInteger)
    )
}

/// The columns of a table's summaries: `time` (the window start), the tags,
/// every field that may be a key (null in files where it is not one), the
/// row count, then each field's statistics.
pub(crate) fn summary_schema(table: &TableSchema) -> TableSchema {
    let mut columns = vec![Column {
        name: TIME_COLUMN.to_string(),
        kind: ColumnKind::Time,
    }];
    columns.extend(
        table
            .columns()
            .iter()
            .filter(|c| c.kind == ColumnKind::Tag || may_be_key(c.kind))
            .cloned(),
    );
    let integer = ColumnKind::Field(FieldType::Integer);
    columns.push(Column {
        name: ROWS.to_string(),
        kind: integer,
    });
    for c in table.columns() {
        let ColumnKind::Field(t) = c.kind else {
            continue;
        };
        columns.push(Column {
            name: stat_column(Stat::Count, &c.name),
            kind: integer,
        });
        if has_stats(c.kind) {
            for stat in [Stat::Sum, Stat::Min, Stat::Max] {
                columns.push(Column {
                    name: stat_column(stat, &c.name),
                    kind: ColumnKind::Field(t),
                });
            }
        }
    }
    TableSchema::from_columns(table.name(), columns)
}

/// Builds the summary of one file from its rows, a batch at a time.
pub(crate) struct Builder {
    table: Arc<TableSchema>,
    summary: TableSchema,
    window_ns: i64,
    /// Positions (in the table) of the key fields, chosen from the first
    /// batch.
    keys: Option<Vec<usize>>,
    out: Vec<RecordBatch>,
}

impl Builder {
    pub fn new(table: Arc<TableSchema>, window_ns: i64) -> Self {
        let summary = summary_schema(&table);
        Self {
            table,
            summary,
            window_ns: window_ns.max(1),
            keys: None,
            out: Vec::new(),
        }
    }

    /// Adds rows (in the table's schema, deduplicated). Rows are summarized
    /// in any order; runs of one series and window make one summary row.
    #[cfg(test)]
    pub fn push(&mut self, batch: &RecordBatch) -> Result<()> {
        self.push_stored(batch, None)
    }

    /// [`Builder::push`], given the same rows as their data file stores them
    /// ([`crate::parquet_file::Layout::to_file`]): the float fields stored as
    /// decimals are then summed from the file's integers rather than
    /// converted a second time.
    pub fn push_stored(&mut self, batch: &RecordBatch, stored: Option<&RecordBatch>) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let keys = match &self.keys {
            Some(k) => k.clone(),
            None => {
                let k = choose_keys(&self.table, batch);
                self.keys = Some(k.clone());
                k
            }
        };
        let summarized = self.summarize(batch, &keys, stored)?;
        self.out.push(summarized);
        Ok(())
    }

    /// The summary rows, and the names of the key fields; `None` when no
    /// rows were added.
    pub fn finish(self) -> Result<Option<(RecordBatch, Vec<String>)>> {
        let Some(keys) = self.keys else {
            return Ok(None);
        };
        let batch = concat_batches(self.summary.arrow_schema(), &self.out)?;
        // Window-major: a query of a short time range over every series
        // then reads a few pages.
        let order: Vec<SortColumn> = std::iter::once(self.summary.time_index())
            .chain(self.summary.tag_indices())
            .map(|i| SortColumn {
                values: batch.column(i).clone(),
                options: None,
            })
            .collect();
        let indices = lexsort_to_indices(&order, None)?;
        let batch = take_record_batch(&batch, &indices)?;
        let names = keys
            .iter()
            .map(|&i| self.table.columns()[i].name.clone())
            .collect();
        Ok(Some((batch, names)))
    }

    pub fn window_ns(&self) -> i64 {
        self.window_ns
    }

    /// The summary schema, for writing.
    pub fn schema(&self) -> &TableSchema {
        &self.summary
    }

    fn summarize(
        &self,
        batch: &RecordBatch,
        keys: &[usize],
        stored: Option<&RecordBatch>,
    ) -> Result<RecordBatch> {
        let n = batch.num_rows();
        // Runs of a series: dictionary keys compare much faster than the
        // strings, once keys of equal values are made equal.
        let tags: Vec<ArrayRef> = self
            .table
            .tag_indices()
            .into_iter()
            .map(|i| canonical_keys(batch.column(i)))
            .collect();
        let series: Vec<std::ops::Range<usize>> = if tags.is_empty() {
            std::iter::once(0..n).collect()
        } else {
            partition(&tags)?.ranges()
        };
        let times = time_values(batch);
        let key_columns: Vec<KeyColumn> = keys
            .iter()
            .map(|&i| KeyColumn::new(batch.column(i)))
            .collect::<Result<_>>()?;
        let w = self.window_ns;

        // Each row's group: a run of one series and window, split by the
        // key fields' values.
        let mut group_of: Vec<u32> = Vec::with_capacity(n);
        let mut first_row: Vec<u32> = Vec::new();
        let mut windows: Vec<i64> = Vec::new();
        let mut run: Vec<([Option<i64>; MAX_KEYS], u32)> = Vec::new();
        for range in series {
            // The window of the run: [window, window_end). Rows of a series
            // come in time order, so a division is needed only where a
            // window starts.
            let (mut window, mut window_end) = (i64::MAX, i64::MIN);
            for i in range {
                let t = times[i];
                if t < window || t >= window_end {
                    window = t.div_euclid(w) * w;
                    window_end = window.saturating_add(w);
                    run.clear();
                }
                let mut values = [None; MAX_KEYS];
                for (v, k) in values.iter_mut().zip(&key_columns) {
                    *v = k.value(i);
                }
                let group = match run.iter().find(|(v, _)| *v == values) {
                    Some(&(_, g)) => g,
                    None => {
                        let g = first_row.len() as u32;
                        first_row.push(i as u32);
                        windows.push(window);
                        run.push((values, g));
                        g
                    }
                };
                group_of.push(group);
            }
        }
        let groups = first_row.len();
        let first = UInt32Array::from(first_row);
        let runs = Runs::of(&group_of, groups);
        let rows = runs.rows.clone();

        let mut columns: Vec<ArrayRef> = Vec::with_capacity(self.summary.columns().len());
        for c in self.summary.columns() {
            let name = c.name.as_str();
            let array: ArrayRef = if name == TIME_COLUMN {
                Arc::new(
                    TimestampNanosecondArray::from(windows.clone())
                        .with_timezone("UTC".to_string()),
                )
            } else if name == ROWS {
                Arc::new(Int64Array::from(rows.clone()))
            } else if let Some(i) = self.table.column(name).map(|_| self.index(name)) {
                // A tag, or a field that may be a key: a group's value is
                // its first row's (every row of the group has it).
                if c.kind == ColumnKind::Tag || keys.contains(&i) {
                    take(batch.column(i).as_ref(), &first, None)?
                } else {
                    new_null_array(&c.kind.data_type(), groups)
                }
            } else {
                // A statistic: filled below, field by field.
                continue;
            };
            columns.push(array);
        }
        for (i, c) in self.table.columns().iter().enumerate() {
            if !matches!(c.kind, ColumnKind::Field(_)) {
                continue;
            }
            let decimal = stored
                .map(|b| b.column(i))
                .filter(|a| matches!(a.data_type(), DataType::Decimal128(_, _)));
            let values = match (c.kind, decimal) {
                (ColumnKind::Field(FieldType::Float), Some(units)) => {
                    FieldValues::Decimal(units.as_primitive::<Decimal128Type>())
                }
                (ColumnKind::Field(FieldType::Float), None) => {
                    let array = batch.column(i);
                    FieldValues::Float(array, decimal_scale(array))
                }
                _ => FieldValues::Other(batch.column(i)),
            };
            columns.extend(field_stats(values, c.kind, &runs)?);
        }
        Ok(RecordBatch::try_new(
            self.summary.arrow_schema().clone(),
            columns,
        )?)
    }

    fn index(&self, name: &str) -> usize {
        self.table
            .columns()
            .iter()
            .position(|c| c.name == name)
            .unwrap_or(usize::MAX)
    }
}

/// A tag column as integers that are equal exactly where its values are: a
/// dictionary's keys, each replaced by the first key of its value. Batches
/// concatenated with dictionaries of their own (a server's requests) give a
/// dictionary holding one value many times. Other columns are returned as
/// they are.
fn canonical_keys(column: &ArrayRef) -> ArrayRef {
    let Some(dict) = column.as_dictionary_opt::<Int32Type>() else {
        return column.clone();
    };
    let Some(values) = dict.values().as_string_opt::<i32>() else {
        return column.clone();
    };
    let mut first: HashMap<Option<&str>, i32> = HashMap::with_capacity(values.len());
    let canon: Vec<i32> = (0..values.len())
        .map(|i| {
            let value = values.is_valid(i).then(|| values.value(i));
            *first.entry(value).or_insert(i as i32)
        })
        .collect();
    let keys = dict.keys();
    let mapped: Vec<i32> = keys
        .values()
        .iter()
        .map(|&k| canon.get(k as usize).copied().unwrap_or(k))
        .collect();
    Arc::new(Int32Array::new(mapped.into(), keys.nulls().cloned()))
}

/// The fields that will be keys: the first [`MAX_KEYS`] integer or boolean
/// fields with at most [`MAX_KEY_VALUES`] values in `batch`.
fn choose_keys(table: &TableSchema, batch: &RecordBatch) -> Vec<usize> {
    let mut keys = Vec::new();
    for (i, c) in table.columns().iter().enumerate() {
        if keys.len() == MAX_KEYS {
            break;
        }
        if !may_be_key(c.kind) {
            continue;
        }
        let Ok(column) = KeyColumn::new(batch.column(i)) else {
            continue;
        };
        let mut seen: Vec<Option<i64>> = Vec::with_capacity(MAX_KEY_VALUES + 1);
        for r in 0..batch.num_rows() {
            let v = column.value(r);
            if !seen.contains(&v) {
                seen.push(v);
                if seen.len() > MAX_KEY_VALUES {
                    break;
                }
            }
        }
        if seen.len() <= MAX_KEY_VALUES {
            keys.push(i);
        }
    }
    keys
}

/// A key field's values as integers (booleans as 0 and 1).
enum KeyColumn<'a> {
    Int(&'a Int64Array),
    UInt(&'a UInt64Array),
    Bool(&'a BooleanArray),
}

impl<'a> KeyColumn<'a> {
    fn new(array: &'a ArrayRef) -> Result<Self> {
        match array.data_type() {
            DataType::Int64 => Ok(KeyColumn::Int(array.as_primitive::<Int64Type>())),
            DataType::UInt64 => Ok(KeyColumn::UInt(array.as_primitive::<UInt64Type>())),
            DataType::Boolean => Ok(KeyColumn::Bool(array.as_boolean())),
            other => Err(Error::Internal(format!(
                "a summary key must be an integer or a boolean, not {other}"
            ))),
        }
    }

    fn value(&self, i: usize) -> Option<i64> {
        match self {
            KeyColumn::Int(a) => a.is_valid(i).then(|| a.value(i)),
            KeyColumn::UInt(a) => a.is_valid(i).then(|| a.value(i) as i64),
            KeyColumn::Bool(a) => a.is_valid(i).then(|| a.value(i) as i64),
        }
    }
}

/// A field's values, as [`field_stats`] reads them.
#[derive(Clone, Copy)]
enum FieldValues<'a> {
    /// A float field as its data file stores it: integers in units of
    /// `10^-scale`, each the exact value.
    Decimal(&'a Decimal128Array),
    /// A float field, and the decimal scale at which every value is exact.
    Float(&'a ArrayRef, Option<i8>),
    Other(&'a ArrayRef),
}

/// Each row's group, and the same as runs: the rows of a flushed file come
/// sorted by series and time, so a group's rows mostly follow one another,
/// and a run's statistics are taken over a slice.
struct Runs<'a> {
    group_of: &'a [u32],
    /// (group, rows) in row order; neighbours differ in group.
    runs: Vec<(u32, Range<usize>)>,
    /// Each group's row count.
    rows: Vec<i64>,
}

impl<'a> Runs<'a> {
    fn of(group_of: &'a [u32], groups: usize) -> Self {
        let mut runs: Vec<(u32, Range<usize>)> = Vec::new();
        let mut rows = vec![0i64; groups];
        for (i, &g) in group_of.iter().enumerate() {
            rows[g as usize] += 1;
            match runs.last_mut() {
                Some((last, range)) if *last == g => range.end = i + 1,
                _ => runs.push((g, i..i + 1)),
            }
        }
        Self {
            group_of,
            runs,
            rows,
        }
    }

    /// Adds each run's statistics (`stats` of its slice of `values`) to its
    /// group's with `add`.
    fn fold<V, S>(&self, values: &[V], stats: impl Fn(&[V]) -> S, mut add: impl FnMut(usize, S)) {
        for (g, rows) in &self.runs {
            add(*g as usize, stats(&values[rows.clone()]));
        }
    }
}

/// The wrapping sum, minimum and maximum of a slice of integers.
fn int_stats<T: ArrowNativeTypeOp + Ord>(values: &[T]) -> (T, T, T) {
    let (mut sum, mut lo, mut hi) = (T::ZERO, values[0], values[0]);
    for &v in values {
        sum = sum.add_wrapping(v);
        lo = lo.min(v);
        hi = hi.max(v);
    }
    (sum, lo, hi)
}

/// The exact sum, minimum and maximum of a slice of a decimal column's
/// units, each of at most 18 digits (an `i64`).
fn decimal_stats(units: &[i128]) -> (i128, i128, i128) {
    let (mut sum, mut lo, mut hi) = (0i64, i64::MAX, i64::MIN);
    for &u in units {
        let u = u as i64;
        sum = sum.wrapping_add(u);
        lo = lo.min(u);
        hi = hi.max(u);
    }
    // No partial sum can pass the largest magnitude times the count; when
    // that fits an i64, the wrapping sum never wrapped.
    let bound = lo.unsigned_abs().max(hi.unsigned_abs()) as u128 * units.len() as u128;
    if bound <= i64::MAX as u128 {
        (sum.into(), lo.into(), hi.into())
    } else {
        (units.iter().sum(), lo.into(), hi.into())
    }
}

/// A field's count, and for numbers its sum, minimum and maximum, per group;
/// a float field whose values are decimals is summed exactly, in its units.
fn field_stats(values: FieldValues<'_>, kind: ColumnKind, runs: &Runs) -> Result<Vec<ArrayRef>> {
    let (group_of, rows) = (runs.group_of, &runs.rows);
    let groups = rows.len();
    let array: &dyn Array = match &values {
        FieldValues::Decimal(a) => *a,
        FieldValues::Float(a, _) | FieldValues::Other(a) => a.as_ref(),
    };
    let nulls = array.null_count() > 0;
    let valid = |i: usize| !nulls || array.is_valid(i);
    let count = if nulls {
        let mut count = vec![0i64; groups];
        for (i, &g) in group_of.iter().enumerate() {
            if valid(i) {
                count[g as usize] += 1;
            }
        }
        count
    } else {
        rows.to_vec()
    };
    let mut out: Vec<ArrayRef> = Vec::with_capacity(4);
    out.push(Arc::new(Int64Array::from(count.clone())));
    match (kind, values) {
        (ColumnKind::Field(FieldType::Float), FieldValues::Decimal(decimals)) => {
            // Every value is an integer of at most 18 digits; the statistics
            // cast back as the file's values do.
            let p = 10f64.powi(decimals.scale() as i32);
            let units = decimals.values();
            let (mut sum, mut min, mut max) = (
                vec![0i128; groups],
                vec![i128::MAX; groups],
                vec![i128::MIN; groups],
            );
            let mut add = |g: usize, (s, lo, hi): (i128, i128, i128)| {
                sum[g] += s;
                min[g] = min[g].min(lo);
                max[g] = max[g].max(hi);
            };
            if nulls || decimals.precision() > 18 {
                for (i, &g) in group_of.iter().enumerate() {
                    if valid(i) {
                        add(g as usize, (units[i], units[i], units[i]));
                    }
                }
            } else {
                runs.fold(units, decimal_stats, add);
            }
            let floats = |units: Vec<i128>| units.into_iter().map(|u| u as f64 / p).collect();
            out.extend([sum, min, max].map(|v| where_counted::<Float64Type>(floats(v), &count)));
        }
        (ColumnKind::Field(FieldType::Float), FieldValues::Float(array, scale)) => {
            let values = array.as_primitive::<Float64Type>().values();
            let (mut sum, mut min, mut max) = (
                vec![0f64; groups],
                vec![f64::NAN; groups],
                vec![f64::NAN; groups],
            );
            // Decimal values are summed as integers, which is exact; the
            // sum then casts back like any decimal.
            let p = scale.map(|s| 10f64.powi(s as i32));
            let mut units = vec![0i128; if p.is_some() { groups } else { 0 }];
            let mut seen = vec![false; groups];
            for (i, &g) in group_of.iter().enumerate() {
                if !valid(i) {
                    continue;
                }
                let (g, v) = (g as usize, values[i]);
                if seen[g] {
                    if v.total_cmp(&min[g]).is_lt() {
                        min[g] = v;
                    }
                    if v.total_cmp(&max[g]).is_gt() {
                        max[g] = v;
                    }
                } else {
                    seen[g] = true;
                    min[g] = v;
                    max[g] = v;
                }
                match p {
                    Some(p) => units[g] += (v * p).round() as i128,
                    None => sum[g] += v,
                }
            }
            if let Some(p) = p {
                for (s, u) in sum.iter_mut().zip(units) {
                    *s = u as f64 / p;
                }
            }
            out.extend([sum, min, max].map(|v| where_counted::<Float64Type>(v, &count)));
        }
        (ColumnKind::Field(FieldType::Integer), FieldValues::Other(array)) => {
            out.extend(integer_stats::<Int64Type>(array, runs, &count));
        }
        (ColumnKind::Field(FieldType::UInteger), FieldValues::Other(array)) => {
            out.extend(integer_stats::<UInt64Type>(array, runs, &count));
        }
        (ColumnKind::Field(FieldType::Float | FieldType::Integer | FieldType::UInteger), _) => {
            return Err(Error::Internal(format!(
                "a summary's numeric field has values of type {}",
                array.data_type()
            )));
        }
        _ => {}
    }
    Ok(out)
}

/// An integer field's wrapping sum, minimum and maximum per group, of its
/// non-null values (`count` of them in each group).
fn integer_stats<T>(array: &ArrayRef, runs: &Runs, count: &[i64]) -> [ArrayRef; 3]
where
    T: ArrowPrimitiveType,
    T::Native: Ord,
{
    let a = array.as_primitive::<T>().values();
    let groups = runs.rows.len();
    let (mut sum, mut min, mut max) = (
        vec![T::Native::ZERO; groups],
        vec![T::Native::MAX_TOTAL_ORDER; groups],
        vec![T::Native::MIN_TOTAL_ORDER; groups],
    );
    let mut add = |g: usize, (s, lo, hi): (T::Native, T::Native, T::Native)| {
        sum[g] = sum[g].add_wrapping(s);
        min[g] = min[g].min(lo);
        max[g] = max[g].max(hi);
    };
    if array.null_count() > 0 {
        for (i, &g) in runs.group_of.iter().enumerate() {
            if array.is_valid(i) {
                add(g as usize, (a[i], a[i], a[i]));
            }
        }
    } else {
        runs.fold(a, int_stats, add);
    }
    [sum, min, max].map(|v| where_counted::<T>(v, count))
}

/// A statistic per group, null where the group has no value (`count`).
fn where_counted<T: ArrowPrimitiveType>(values: Vec<T::Native>, count: &[i64]) -> ArrayRef {
    Arc::new(PrimitiveArray::<T>::from_iter(
        values
            .into_iter()
            .zip(count)
            .map(|(x, &c)| (c > 0).then_some(x)),
    ))
}

/// Encodes summary rows as Parquet: float statistics that are exact
/// decimals are stored as decimals, as in data files.
pub(crate) fn encode(summary: &TableSchema, batch: &RecordBatch) -> Result<Vec<u8>> {
    let columns: Vec<_> = summary.columns().iter().zip(batch.columns()).collect();
    let scales: Vec<Option<i8>> = crate::parallel::map(columns, |(c, a)| match c.kind {
        ColumnKind::Field(FieldType::Float) => decimal_scale(a),
        _ => None,
    });
    let sample = batch.slice(0, batch.num_rows().min(LAYOUT_SAMPLE_ROWS));
    let layout = Layout::new(&sample, summary, &[], None, ROW_GROUP_ROWS, &scales)?;
    let mut props = layout
        .props
        .clone()
        .into_builder()
        .set_data_page_row_count_limit(PAGE_ROWS);
    // Every window holds every series, so a row group holds every tag value:
    // bloom filters would prune nothing.
    for i in summary.tag_indices() {
        let path = ColumnPath::from(summary.columns()[i].name.as_str());
        props = props.set_column_bloom_filter_enabled(path, false);
    }
    crate::parquet_file::write_parallel(&layout.to_file(batch)?, props.build(), ROW_GROUP_ROWS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::arrow_field;
    use arrow::array::{DictionaryArray, Float64Array, StringArray};
    use arrow::datatypes::{Int32Type, Schema};

    fn table() -> Arc<TableSchema> {
        let columns = vec![
            Column {
                name: TIME_COLUMN.into(),
                kind: ColumnKind::Time,
            },
            Column {
                name: "dev".into(),
                kind: ColumnKind::Tag,
            },
            Column {
                name: "temp".into(),
                kind: ColumnKind::Field(FieldType::Float),
            },
            Column {
                name: "status".into(),
                kind: ColumnKind::Field(FieldType::Integer),
            },
        ];
        Arc::new(TableSchema::from_columns("t", columns))
    }

    fn batch(table: &TableSchema, rows: &[(i64, &str, Option<f64>, i64)]) -> RecordBatch {
        let schema = Arc::new(Schema::new(
            table
                .columns()
                .iter()
                .map(|c| arrow_field(&c.name, c.kind))
                .collect::<Vec<_>>(),
        ));
        let dev: DictionaryArray<Int32Type> = rows.iter().map(|r| r.1).collect();
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(
                    TimestampNanosecondArray::from(rows.iter().map(|r| r.0).collect::<Vec<_>>())
                        .with_timezone("UTC"),
                ),
                Arc::new(dev),
                Arc::new(Float64Array::from(
                    rows.iter().map(|r| r.2).collect::<Vec<_>>(),
                )),
                Arc::new(Int64Array::from(
                    rows.iter().map(|r| r.3).collect::<Vec<_>>(),
                )),
            ],
        )
        .unwrap()
    }

    #[test]
    fn one_row_per_series_window_and_key_value() {
        let t = table();
        let mut b = Builder::new(t.clone(), 10);
        b.push(&batch(
            &t,
            &[
                (0, "a", Some(1.25), 0),
                (5, "a", Some(2.5), 2),
                (9, "a", None, 0),
                (10, "a", Some(0.1), 0),
                (3, "b", Some(-4.0), 0),
            ],
        ))
        .unwrap();
        let (out, keys) = b.finish().unwrap().unwrap();
        assert_eq!(keys, ["status"]);
        let col = |name: &str| out.column_by_name(name).unwrap().clone();
        let times = col("time");
        let times = times.as_primitive::<arrow::datatypes::TimestampNanosecondType>();
        let dev = arrow::compute::cast(&col("dev"), &DataType::Utf8).unwrap();
        let dev = dev.as_any().downcast_ref::<StringArray>().unwrap();
        let int = |name: &str| col(name).as_primitive::<Int64Type>().clone();
        let (status, rows, count) = (int("status"), int(ROWS), int("__count_temp"));
        let sum = col("__sum_temp");
        let sum = sum.as_primitive::<Float64Type>();
        // (window, series, status): rows, values counted, sum.
        let got: Vec<_> = (0..out.num_rows())
            .map(|i| {
                (
                    times.value(i),
                    dev.value(i).to_string(),
                    status.value(i),
                    rows.value(i),
                    count.value(i),
                    sum.value(i),
                )
            })
            .collect();
        let expected = vec![
            (0, "a".to_string(), 0, 2, 1, 1.25),
            (0, "a".to_string(), 2, 1, 1, 2.5),
            (0, "b".to_string(), 0, 1, 1, -4.0),
            (10, "a".to_string(), 0, 1, 1, 0.1),
        ];
        let mut got = got;
        got.sort_by(|a, b| a.partial_cmp(b).unwrap());
        assert_eq!(got, expected);
    }

    #[test]
    fn decimal_sums_are_exact() {
        let t = table();
        let mut b = Builder::new(t.clone(), 1_000);
        // 0.1 added ten times in floats is not 1.0.
        let rows: Vec<(i64, &str, Option<f64>, i64)> =
            (0..10).map(|i| (i, "a", Some(0.1), 0)).collect();
        b.push(&batch(&t, &rows)).unwrap();
        let (out, _) = b.finish().unwrap().unwrap();
        let sum = out.column_by_name("__sum_temp").unwrap();
        assert_eq!(sum.as_primitive::<Float64Type>().value(0), 1.0);
        let bytes = encode(&summary_schema(&t), &out).unwrap();
        assert!(!bytes.is_empty());
    }

    #[test]
    fn run_statistics_are_exact_at_any_magnitude() {
        // Eighteen-digit units: their sum passes an i64.
        let big = vec![999_999_999_999_999_999i128; 20];
        assert_eq!(
            decimal_stats(&big),
            (19_999_999_999_999_999_980, big[0], big[0])
        );
        let mixed = [-5i128, 7, 0, -2];
        assert_eq!(decimal_stats(&mixed), (0, -5, 7));
        // Integer sums wrap, as the row-by-row sums did.
        assert_eq!(int_stats(&[i64::MAX, 1, -3]), (i64::MAX - 2, -3, i64::MAX));
        let groups = [0u32, 0, 1, 1, 0, 2];
        let runs = Runs::of(&groups, 3);
        assert_eq!(runs.rows, [3, 2, 1]);
        assert_eq!(runs.runs, [(0, 0..2), (1, 2..4), (0, 4..5), (2, 5..6)]);
    }

    #[test]
    fn many_valued_integers_are_not_keys() {
        let t = table();
        let mut b = Builder::new(t.clone(), 100);
        let rows: Vec<(i64, &str, Option<f64>, i64)> =
            (0..20).map(|i| (i, "a", Some(1.0), i)).collect();
        b.push(&batch(&t, &rows)).unwrap();
        let (out, keys) = b.finish().unwrap().unwrap();
        assert!(keys.is_empty());
        assert_eq!(out.num_rows(), 1);
        let min = out.column_by_name("__min_status").unwrap();
        assert_eq!(min.as_primitive::<Int64Type>().value(0), 0);
        let max = out.column_by_name("__max_status").unwrap();
        assert_eq!(max.as_primitive::<Int64Type>().value(0), 19);
        assert!(out.column_by_name("status").unwrap().is_null(0));
    }

    #[test]
    fn a_dictionary_holding_a_value_twice_splits_no_run() {
        let t = table();
        // Two batches concatenated with dictionaries of their own: "a" is
        // keys 0 and 2 of the one dictionary.
        let rows: Vec<(i64, &str, Option<f64>, i64)> =
            (0..6).map(|i| (i, "a", Some(1.0), 0)).collect();
        let plain = batch(&t, &rows);
        let dev = DictionaryArray::<Int32Type>::try_new(
            arrow::array::Int32Array::from(vec![0, 2, 0, 2, 0, 2]),
            Arc::new(StringArray::from(vec!["a", "b", "a"])),
        )
        .unwrap();
        let mut columns = plain.columns().to_vec();
        columns[1] = Arc::new(dev);
        let twice = RecordBatch::try_new(plain.schema(), columns).unwrap();
        let mut b = Builder::new(t.clone(), 100);
        b.push(&twice).unwrap();
        let (out, _) = b.finish().unwrap().unwrap();
        assert_eq!(out.num_rows(), 1);
        let rows = out.column_by_name(ROWS).unwrap();
        assert_eq!(rows.as_primitive::<Int64Type>().value(0), 6);
    }

    #[test]
    fn a_file_s_decimals_give_the_summary_its_floats_give() {
        let t = table();
        let mut rows = Vec::new();
        for i in 0..2_000i64 {
            let dev = ["a", "b", "c"][(i % 3) as usize];
            // Negative, positive and missing readings, two decimals.
            let temp = (i % 7 != 3).then(|| ((i * 37) % 4001 - 2000) as f64 / 100.0);
            rows.push((i * 1_000_000_000, dev, temp, i % 2));
        }
        rows.sort_by_key(|r| (r.1, r.0));
        let b = batch(&t, &rows);
        let scales = crate::parquet_file::decimal_scales(&b, &t);
        assert_eq!(scales[2], Some(2));
        let layout = Layout::new(&b, &t, &[1], None, 1 << 20, &scales).unwrap();
        let stored = layout.to_file(&b).unwrap();
        assert!(matches!(
            stored.column(2).data_type(),
            DataType::Decimal128(_, 2)
        ));

        let mut from_floats = Builder::new(t.clone(), 60_000_000_000);
        from_floats.push(&b).unwrap();
        let mut from_decimals = Builder::new(t.clone(), 60_000_000_000);
        from_decimals.push_stored(&b, Some(&stored)).unwrap();
        let (a, _) = from_floats.finish().unwrap().unwrap();
        let (d, _) = from_decimals.finish().unwrap().unwrap();
        assert_eq!(a, d);
        assert!(a.num_rows() > 3 * 33, "{} summary rows", a.num_rows());
    }
}
