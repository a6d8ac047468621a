//! How a flushed batch becomes a Parquet file, column by column.
//!
//! - `time`: delta-encoded, no dictionary.
//! - tags: dictionary-encoded, with bloom filters.
//! - float fields whose every value is an exact decimal (the usual case for
//!   sensor readings: 25.07 is 2507 / 100) are stored as `DECIMAL(18, s)` on
//!   INT64, which delta-encodes to about two thirds of the bytes of any float
//!   encoding; the scale is chosen per file and only where the round trip
//!   `x as f64 / 10^s` gives back every value bit for bit, which is exactly
//!   the cast DataFusion applies when it reads the column as `Float64`.
//! - every numeric field gets dictionary or delta (byte-stream-split for
//!   floats) encoding, whichever is smaller on a sample of the column.
//!
//! Rows come sorted by series, then time; with `Options::time_slice`, by
//! time slice first: every page then holds one slice's rows, and its
//! statistics let a query of a short time range over every series skip the
//! pages of other slices.
//!
//! Everything is zstd-compressed, with page statistics, and the sort order
//! recorded in the row groups where it is one of columns.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, Decimal128Array, Float64Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::file::metadata::SortingColumn;
use parquet::file::properties::{EnabledStatistics, WriterProperties, WriterPropertiesBuilder};
use parquet::schema::types::ColumnPath;

use crate::catalog::{ColumnKind, FieldType, TableSchema};
use crate::error::{Error, Result};

/// Precision of the decimals floats are stored as: the most an INT64 holds.
const DECIMAL_PRECISION: u8 = 18;
/// Largest decimal scale tried.
const MAX_SCALE: i32 = 9;
/// Rows of a column encoded both ways to choose its encoding.
const SAMPLE_ROWS: usize = 1 << 17;
const ZSTD_LEVEL: i32 = 3;

/// Encodes a batch sorted by `sort_tags` (schema positions), then time
/// (within time slices `time_slice_ns` wide, when given), as a Parquet file.
/// `scales` are the batch's [`decimal_scales`].
pub(crate) fn encode(
    batch: &RecordBatch,
    schema: &TableSchema,
    sort_tags: &[usize],
    row_group_rows: usize,
    time_slice_ns: Option<i64>,
    scales: &[Option<i8>],
) -> Result<Vec<u8>> {
    let layout = Layout::new(
        batch,
        schema,
        sort_tags,
        time_slice_ns,
        row_group_rows,
        scales,
    )?;
    let mut out = Vec::new();
    let file_batch = layout.to_file(batch)?;
    let mut writer = ArrowWriter::try_new(&mut out, layout.schema.clone(), Some(layout.props))?;
    writer.write(&file_batch)?;
    writer.close()?;
    Ok(out)
}

/// How one file stores a table's columns: its Arrow schema (float fields as
/// decimals where chosen) and the writer properties. Chosen once per file,
/// from its first rows, so that a file can be written a batch at a time.
pub(crate) struct Layout {
    pub schema: SchemaRef,
    /// The decimal scale of each column stored as a decimal.
    scales: Vec<Option<i8>>,
    pub props: WriterProperties,
}

impl Layout {
    /// The layout for rows like `sample` (in the table's schema), sorted by
    /// `sort_tags` then time, within time slices `time_slice_ns` wide when
    /// given; `scales` names the float columns to store as decimals, and at
    /// which scale.
    pub fn new(
        sample: &RecordBatch,
        schema: &TableSchema,
        sort_tags: &[usize],
        time_slice_ns: Option<i64>,
        row_group_rows: usize,
        scales: &[Option<i8>],
    ) -> Result<Layout> {
        // The row groups record the order when it is one of columns; the
        // slice of a row is not a column, so sliced files record none.
        let sorting: Option<Vec<SortingColumn>> = time_slice_ns.is_none().then(|| {
            sort_tags
                .iter()
                .copied()
                .chain([schema.time_index()])
                .map(|i| SortingColumn {
                    column_idx: i as i32,
                    descending: false,
                    nulls_first: false,
                })
                .collect()
        });
        let mut props = base_properties()?
            .set_statistics_enabled(EnabledStatistics::Page)
            .set_max_row_group_row_count(Some(row_group_rows.max(1)))
            .set_sorting_columns(sorting);
        let mut fields = Vec::with_capacity(sample.num_columns());
        for (i, ((col, field), array)) in schema
            .columns()
            .iter()
            .zip(sample.schema().fields())
            .zip(sample.columns())
            .enumerate()
        {
            let path = ColumnPath::from(col.name.as_str());
            let (field, array) = match scales[i] {
                Some(scale) => {
                    let decimal = to_decimal(array, scale).ok_or_else(|| inexact(&col.name))?;
                    let field = Field::new(field.name(), decimal.data_type().clone(), true)
                        .with_metadata(field.metadata().clone());
                    (field, decimal)
                }
                None => (field.as_ref().clone(), array.clone()),
            };
            props = match col.kind {
                ColumnKind::Time => props
                    .set_column_dictionary_enabled(path.clone(), false)
                    .set_column_encoding(path, Encoding::DELTA_BINARY_PACKED),
                // A row group holds at most `row_group_rows` distinct values;
                // the filter is built for that many (then folded to what the
                // values need), so encoding a small row group does not hold
                // a filter sized for a million.
                ColumnKind::Tag => props
                    .set_column_dictionary_enabled(path.clone(), true)
                    .set_column_bloom_filter_enabled(path.clone(), true)
                    .set_column_bloom_filter_max_ndv(path, row_group_rows.max(1) as u64),
                ColumnKind::Field(FieldType::Boolean | FieldType::String) => props,
                ColumnKind::Field(_) => match cheaper_than_dictionary(&field, &array)? {
                    Some(encoding) => props
                        .set_column_dictionary_enabled(path.clone(), false)
                        .set_column_encoding(path, encoding),
                    None => props.set_column_dictionary_enabled(path, true),
                },
            };
            fields.push(field);
        }
        Ok(Layout {
            schema: Arc::new(Schema::new(fields)),
            scales: scales.to_vec(),
            props: props.build(),
        })
    }

    /// `batch` (in the table's schema) as the file stores it. Fails if a
    /// float is not exact at its column's decimal scale.
    pub fn to_file(&self, batch: &RecordBatch) -> Result<RecordBatch> {
        let columns = batch
            .columns()
            .iter()
            .zip(&self.scales)
            .zip(self.schema.fields())
            .map(|((array, scale), field)| match scale {
                Some(scale) => to_decimal(array, *scale).ok_or_else(|| inexact(field.name())),
                None => Ok(array.clone()),
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(RecordBatch::try_new(self.schema.clone(), columns)?)
    }
}

fn inexact(column: &str) -> Error {
    Error::Internal(format!(
        "column {column:?} has a value that is not exact at the decimal scale chosen for its file"
    ))
}

fn base_properties() -> Result<WriterPropertiesBuilder> {
    Ok(WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(ZSTD_LEVEL)?)))
}

fn write(batch: &RecordBatch, props: WriterPropertiesBuilder) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut out, batch.schema(), Some(props.build()))?;
    writer.write(batch)?;
    writer.close()?;
    Ok(out)
}

/// The smallest decimal scale at which every value of the float column is
/// exact, or `None` if there is none up to 9.
/// Every row of a whole Parquet file held in memory, in its own schema.
pub(crate) fn read_all(bytes: bytes::Bytes) -> Result<Vec<RecordBatch>> {
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)?.build()?;
    Ok(reader.collect::<std::result::Result<Vec<_>, _>>()?)
}

/// Per column of a batch in `schema`: the float fields' [`decimal_scale`].
pub(crate) fn decimal_scales(batch: &RecordBatch, schema: &TableSchema) -> Vec<Option<i8>> {
    schema
        .columns()
        .iter()
        .zip(batch.columns())
        .map(|(col, array)| match col.kind {
            ColumnKind::Field(FieldType::Float) => decimal_scale(array),
            _ => None,
        })
        .collect()
}

pub(crate) fn decimal_scale(array: &ArrayRef) -> Option<i8> {
    let floats = array.as_any().downcast_ref::<Float64Array>()?;
    (0..=MAX_SCALE as i8).find(|&scale| {
        let p = 10_f64.powi(scale as i32);
        floats
            .values()
            .iter()
            .enumerate()
            .all(|(i, &v)| floats.is_null(i) || decimal_units(v, p).is_some())
    })
}

/// `v` in units of `1 / p` (`p` a power of ten), when that is exact: the
/// units cast back to `v` bit for bit, as arrow's decimal-to-float cast
/// computes them.
fn decimal_units(v: f64, p: f64) -> Option<i64> {
    let x = (v * p).round();
    // Below 2^53 an integer converts to f64 exactly, as the cast does
    // (NaN and infinities fail this test too).
    if x.is_nan() || x.abs() >= 9_007_199_254_740_992.0 {
        return None;
    }
    let x = x as i64;
    ((x as f64 / p).to_bits() == v.to_bits()).then_some(x)
}

/// The float column as `DECIMAL(18, scale)`, or `None` if a value is not
/// exact at that scale.
pub(crate) fn to_decimal(array: &ArrayRef, scale: i8) -> Option<ArrayRef> {
    let floats = array.as_any().downcast_ref::<Float64Array>()?;
    // The same power of ten arrow's decimal-to-float cast divides by.
    let p = 10_f64.powi(scale as i32);
    let mut ints = Vec::with_capacity(floats.len());
    for (i, &v) in floats.values().iter().enumerate() {
        if floats.is_null(i) {
            ints.push(0i128);
            continue;
        }
        ints.push(decimal_units(v, p)? as i128);
    }
    let decimal = Decimal128Array::new(ints.into(), floats.nulls().cloned())
        .with_precision_and_scale(DECIMAL_PRECISION, scale)
        .ok()?;
    Some(Arc::new(decimal))
}

/// Encodes a sample of the column with a dictionary and with the column
/// type's best plain encoding; returns that encoding if it is smaller.
fn cheaper_than_dictionary(field: &Field, array: &ArrayRef) -> Result<Option<Encoding>> {
    let alternative = match field.data_type() {
        DataType::Float64 => Encoding::BYTE_STREAM_SPLIT,
        DataType::Int64 | DataType::UInt64 | DataType::Decimal128(_, _) => {
            Encoding::DELTA_BINARY_PACKED
        }
        _ => return Ok(None),
    };
    let sample = array.slice(0, array.len().min(SAMPLE_ROWS));
    let batch = RecordBatch::try_new(
        Arc::new(Schema::new(vec![Field::new(
            "v",
            field.data_type().clone(),
            true,
        )])),
        vec![sample],
    )?;
    let with_dictionary = write(&batch, base_properties()?.set_dictionary_enabled(true))?.len();
    let without = write(
        &batch,
        base_properties()?
            .set_dictionary_enabled(false)
            .set_encoding(alternative),
    )?
    .len();
    Ok((without < with_dictionary).then_some(alternative))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scale_of(values: &[Option<f64>]) -> Option<i8> {
        let array: ArrayRef = Arc::new(Float64Array::from(values.to_vec()));
        decimal_scale(&array)
    }

    #[test]
    fn finds_the_smallest_exact_scale() {
        assert_eq!(scale_of(&[Some(1.0), Some(-3.0)]), Some(0));
        assert_eq!(scale_of(&[Some(25.07), None, Some(1012.93)]), Some(2));
        assert_eq!(scale_of(&[Some(0.063), Some(377.7)]), Some(3));
        // Not decimals at any scale up to 9: stays a float.
        assert_eq!(scale_of(&[Some(0.1 + 0.2)]), None);
        assert_eq!(scale_of(&[Some(f64::NAN)]), None);
        assert_eq!(scale_of(&[Some(f64::INFINITY)]), None);
        assert_eq!(scale_of(&[Some(1e300)]), None);
        // -0.0 would come back as +0.0.
        assert_eq!(scale_of(&[Some(-0.0)]), None);
    }

    #[test]
    fn decimals_cast_back_to_the_same_bits() {
        let values: Vec<f64> = (0..10_000).map(|i| (i as f64 - 5000.0) / 100.0).collect();
        let array: ArrayRef = Arc::new(Float64Array::from(values.clone()));
        let decimal = to_decimal(&array, decimal_scale(&array).unwrap()).unwrap();
        let back = arrow::compute::cast(&decimal, &DataType::Float64).unwrap();
        let back = back.as_any().downcast_ref::<Float64Array>().unwrap();
        for (a, b) in values.iter().zip(back.values()) {
            assert_eq!(a.to_bits(), b.to_bits());
        }
    }
}
