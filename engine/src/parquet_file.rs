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
//! - every numeric field gets dictionary, delta or byte-stream-split
//!   encoding (byte-stream-split or dictionary for floats), whichever is
//!   smallest on a sample of the column.
//!
//! Rows come sorted by series, then time; with `Options::time_slice`, by
//! time slice first: every page then holds one slice's rows, and its
//! statistics let a query of a short time range over every series skip the
//! pages of other slices.
//!
//! Everything is zstd-compressed, with page statistics, and the sort order
//! recorded in the row groups where it is one of columns. The column chunks
//! of a file are encoded on as many threads as the machine has cores: a
//! flush's encoding is what holds back the ingest it follows. Ingot writes
//! the chunks of tags ([`crate::tag_chunks`]) and of 64-bit integers (time,
//! integer fields, decimals: [`crate::int_chunks`]) itself, arrow-rs the
//! rest.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, Decimal128Array, Float64Array, RecordBatch};
use arrow::compute::concat;
use arrow::datatypes::{DataType, Field, FieldRef, Schema, SchemaRef};
use bytes::Bytes;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::arrow_writer::{
    ArrowColumnChunk, ArrowColumnWriter, ArrowRowGroupWriterFactory, compute_leaves,
};
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::column::writer::ColumnCloseResult;
use parquet::errors::ParquetError;
use parquet::file::metadata::SortingColumn;
use parquet::file::properties::{EnabledStatistics, WriterProperties, WriterPropertiesBuilder};
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::{ColumnDescPtr, ColumnPath};

use crate::catalog::{ColumnKind, FieldType, TableSchema};
use crate::error::{Error, Result};

/// Precision of the decimals floats are stored as: the most an INT64 holds.
const DECIMAL_PRECISION: u8 = 18;
/// Largest decimal scale tried.
const MAX_SCALE: i32 = 9;
/// Rows of a column encoded each way to choose its encoding. A float
/// column's smallest exact decimal scale over these rows is taken as the
/// whole column's; converting every value then checks it.
const SAMPLE_ROWS: usize = 1 << 17;
const ZSTD_LEVEL: i32 = 3;

/// The layout of the file for a batch sorted by `sort_tags` (schema
/// positions), then time (within time slices `time_slice_ns` wide, when
/// given). Float fields whose values are all decimals are stored as
/// decimals at their smallest exact scale: that of the first rows, or of
/// every row when `every_row` is set. The first rows' scale holds for
/// nearly every batch; where a later value needs a finer one,
/// [`Layout::try_to_file`] says so and every row's scale is chosen.
pub(crate) fn choose_layout(
    batch: &RecordBatch,
    schema: &TableSchema,
    sort_tags: &[usize],
    row_group_rows: usize,
    time_slice_ns: Option<i64>,
    every_row: bool,
) -> Result<Layout> {
    let rows = match every_row {
        true => batch.num_rows(),
        false => batch.num_rows().min(SAMPLE_ROWS),
    };
    let scales = decimal_scales(&batch.slice(0, rows), schema);
    Layout::new(
        batch,
        schema,
        sort_tags,
        time_slice_ns,
        row_group_rows,
        &scales,
    )
}

/// [`write_parallel`] of `batch` converted to the file's types a row group
/// at a time ([`Layout::try_to_file`]), so that no more than a row group's
/// worth of decimals is held at once. `each` is given every row group as
/// written and as the file stores it, on a thread beside the encoding; `out`
/// the file's bytes, a row group's at a time and then the footer's. `false`
/// when a value is not exact at its column's decimal scale (the bytes handed
/// out so far are then not a file).
pub(crate) fn write_converted<F, O>(
    batch: &RecordBatch,
    layout: &Layout,
    row_group_rows: usize,
    mut each: F,
    mut out: O,
) -> Result<bool>
where
    F: FnMut(&RecordBatch, &RecordBatch) -> Result<()> + Send,
    O: FnMut(Vec<u8>) -> Result<()>,
{
    let mut file = FileWriter::new(layout.schema.clone(), layout.props.clone())?;
    let rows = row_group_rows.max(1);
    for start in (0..batch.num_rows()).step_by(rows) {
        let slice = batch.slice(start, rows.min(batch.num_rows() - start));
        let Some(stored) = layout.try_to_file(&slice)? else {
            return Ok(false);
        };
        let each = &mut each;
        let (slice, stored) = (&slice, &stored);
        let (written, handed) = std::thread::scope(|s| {
            let handed = s.spawn(move || each(slice, stored));
            let written = file.write_row_group(std::slice::from_ref(stored));
            let handed = handed
                .join()
                .unwrap_or_else(|_| Err(Error::Internal("a row group's reader panicked".into())));
            (written, handed)
        });
        written?;
        handed?;
        out(file.take_written()?)?;
    }
    out(file.finish()?)?;
    Ok(true)
}

/// Writes `batch` as a Parquet file of row groups of `row_group_rows`
/// rows, encoding its column chunks in parallel; the bytes are those of
/// [`ArrowWriter`] with the same properties, except that tag columns are
/// written from their runs ([`crate::tag_chunks`]) and 64-bit integer
/// columns by [`crate::int_chunks`].
pub(crate) fn write_parallel(
    batch: &RecordBatch,
    props: WriterProperties,
    row_group_rows: usize,
) -> Result<Vec<u8>> {
    let mut file = FileWriter::new(batch.schema(), props)?;
    let rows = row_group_rows.max(1);
    for start in (0..batch.num_rows()).step_by(rows) {
        let slice = batch.slice(start, rows.min(batch.num_rows() - start));
        file.write_row_group(std::slice::from_ref(&slice))?;
    }
    file.finish()
}

/// A Parquet file written a row group at a time, as [`write_parallel`]
/// writes one, whose bytes can be taken out as they are written: a
/// compaction streams its output to the store this way.
pub(crate) struct FileWriter {
    file: SerializedFileWriter<Vec<u8>>,
    factory: ArrowRowGroupWriterFactory,
    props: WriterProperties,
    groups: usize,
}

impl FileWriter {
    pub fn new(schema: SchemaRef, props: WriterProperties) -> Result<Self> {
        let writer = ArrowWriter::try_new(Vec::new(), schema, Some(props.clone()))?;
        let (file, factory) = writer.into_serialized_writer()?;
        Ok(FileWriter {
            file,
            factory,
            props,
            groups: 0,
        })
    }

    /// Writes `batches` (in the file's schema) as one row group. Each
    /// column is joined from the batches on the thread that encodes it, so
    /// the row group is held once, plus a column per thread.
    pub fn write_row_group(&mut self, batches: &[RecordBatch]) -> Result<()> {
        let schema = self.file.schema_descr();
        let writers = self.factory.create_column_writers(self.groups)?;
        let Some(first) = batches.first() else {
            return Ok(());
        };
        if writers.len() != first.num_columns() {
            return Err(Error::Internal(
                "a file's columns are each written as one Parquet column".into(),
            ));
        }
        let jobs: Vec<ChunkJob> = writers
            .into_iter()
            .zip(first.schema().fields().iter())
            .enumerate()
            .map(|(i, (writer, field))| ChunkJob {
                writer,
                field: field.clone(),
                parts: batches.iter().map(|b| b.column(i).clone()).collect(),
                descr: schema.column(i),
            })
            .collect();
        let chunks = encode_chunks(jobs, &self.props)?;
        let mut row_group = self.file.next_row_group()?;
        for chunk in chunks {
            match chunk {
                Chunk::Arrow(chunk) => chunk.append_to_row_group(&mut row_group)?,
                Chunk::Ingot(bytes, close) => row_group.append_column(&bytes, close)?,
            }
        }
        row_group.close()?;
        self.groups += 1;
        Ok(())
    }

    /// The bytes written since they were last taken.
    pub fn take_written(&mut self) -> Result<Vec<u8>> {
        self.file.flush().map_err(ParquetError::from)?;
        Ok(std::mem::take(self.file.inner_mut()))
    }

    /// Writes the footer; returns the bytes not yet taken.
    pub fn finish(self) -> Result<Vec<u8>> {
        Ok(self.file.into_inner()?)
    }
}

/// One column chunk of a row group to encode, with arrow-rs' writer for it.
struct ChunkJob {
    writer: ArrowColumnWriter,
    field: FieldRef,
    /// The chunk's rows, in parts to join.
    parts: Vec<ArrayRef>,
    descr: ColumnDescPtr,
}

enum Chunk {
    Arrow(ArrowColumnChunk),
    /// Bytes from offset 0, written by [`crate::tag_chunks`] or
    /// [`crate::int_chunks`].
    Ingot(Bytes, ColumnCloseResult),
}

/// Encodes each chunk, on up to one thread per core; the chunks come back
/// in the order of `jobs`. Levels are computed on the chunk's thread, and
/// only for the chunks arrow-rs writes.
fn encode_chunks(jobs: Vec<ChunkJob>, props: &WriterProperties) -> Result<Vec<Chunk>> {
    crate::parallel::map(jobs, |job| {
        let column = match &job.parts[..] {
            [one] => one.clone(),
            parts => concat(&parts.iter().map(|p| p.as_ref()).collect::<Vec<_>>())?,
        };
        if let Some((bytes, close)) = crate::tag_chunks::encode(&column, &job.descr, props)? {
            return Ok(Chunk::Ingot(bytes, close));
        }
        if let Some((bytes, close)) = crate::int_chunks::encode(&column, &job.descr, props)? {
            return Ok(Chunk::Ingot(bytes, close));
        }
        let mut writer = job.writer;
        for leaf in compute_leaves(&job.field, &column)? {
            writer.write(&leaf)?;
        }
        Ok(Chunk::Arrow(writer.close()?))
    })
    .into_iter()
    .collect()
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
        // Each column's stored type, and for a number field whether a plain
        // encoding beats the dictionary: a few trial encodings per column,
        // independent of each other.
        let sample_schema = sample.schema();
        let jobs: Vec<_> = schema
            .columns()
            .iter()
            .zip(sample_schema.fields())
            .zip(sample.columns())
            .zip(scales)
            .collect();
        let chosen = crate::parallel::map(jobs, |(((col, field), array), scale)| {
            // Only a sample is encoded to choose the encoding; `to_file`
            // converts (and checks) every value.
            let array = &array.slice(0, array.len().min(SAMPLE_ROWS));
            let (field, array) = match scale {
                Some(scale) => {
                    let decimal = to_decimal(array, *scale).ok_or_else(|| inexact(&col.name))?;
                    let field = Field::new(field.name(), decimal.data_type().clone(), true)
                        .with_metadata(field.metadata().clone());
                    (field, decimal)
                }
                None => (field.as_ref().clone(), array.clone()),
            };
            let plain = match col.kind {
                ColumnKind::Field(FieldType::Float | FieldType::Integer | FieldType::UInteger) => {
                    cheaper_than_dictionary(&field, &array)?
                }
                _ => None,
            };
            Ok::<_, Error>((field, plain))
        });
        let mut fields = Vec::with_capacity(sample.num_columns());
        for (col, chosen) in schema.columns().iter().zip(chosen) {
            let (field, plain) = chosen?;
            let path = ColumnPath::from(col.name.as_str());
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
                ColumnKind::Field(_) => match plain {
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
        self.try_to_file(batch)?.ok_or_else(|| {
            let column = self
                .scales
                .iter()
                .zip(self.schema.fields())
                .zip(batch.columns())
                .find(|((scale, _), array)| {
                    scale.is_some_and(|scale| to_decimal(array, scale).is_none())
                })
                .map_or("?", |((_, field), _)| field.name().as_str());
            inexact(column)
        })
    }

    /// [`Layout::to_file`], or `None` if a float is not exact at its
    /// column's decimal scale.
    pub(crate) fn try_to_file(&self, batch: &RecordBatch) -> Result<Option<RecordBatch>> {
        let jobs: Vec<_> = batch.columns().iter().zip(&self.scales).collect();
        let columns =
            crate::parallel::map_columns(batch.num_rows(), jobs, |(array, scale)| match scale {
                Some(scale) => to_decimal(array, *scale),
                None => Some(array.clone()),
            });
        let Some(columns) = columns.into_iter().collect::<Option<Vec<_>>>() else {
            return Ok(None);
        };
        Ok(Some(RecordBatch::try_new(self.schema.clone(), columns)?))
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

/// `batch` as a file of one row group, written as a flush writes it.
fn write(batch: &RecordBatch, props: WriterPropertiesBuilder) -> Result<Vec<u8>> {
    write_parallel(batch, props.build(), batch.num_rows())
}

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

/// The smallest decimal scale at which every value of the float column is
/// exact, or `None` if there is none up to 9.
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
#[inline]
fn decimal_units(v: f64, p: f64) -> Option<i64> {
    // Rounded half away from zero by truncating: `f64::round` is a library
    // call on x86-64's baseline, and this runs for every float a flush
    // writes. Where the value is exact at this scale, `v * p` lies within
    // a few ulps of the integer, so both ways give it; where it is not, the
    // check below fails either way.
    let x = v * p;
    let x = (x + 0.5f64.copysign(x)) as i64;
    // Below 2^53 an integer converts to f64 exactly, as the cast does (NaN
    // converts to 0 and infinities to the ends of i64, which fail below).
    if x.unsigned_abs() >= 1 << 53 {
        return None;
    }
    ((x as f64 / p).to_bits() == v.to_bits()).then_some(x)
}

/// The float column as `DECIMAL(18, scale)`, or `None` if a value is not
/// exact at that scale.
pub(crate) fn to_decimal(array: &ArrayRef, scale: i8) -> Option<ArrayRef> {
    let floats = array.as_any().downcast_ref::<Float64Array>()?;
    // The same power of ten arrow's decimal-to-float cast divides by.
    let p = 10_f64.powi(scale as i32);
    // Filled in place: a collected `Option<Vec<_>>` cannot know its length
    // and grows by copying, which for a flush's columns is most of the cost.
    let mut ints: Vec<i128> = Vec::with_capacity(floats.len());
    if floats.null_count() == 0 {
        for &v in floats.values() {
            ints.push(decimal_units(v, p)?.into());
        }
    } else {
        for (i, &v) in floats.values().iter().enumerate() {
            ints.push(match floats.is_null(i) {
                true => 0,
                false => decimal_units(v, p)?.into(),
            });
        }
    }
    let decimal = Decimal128Array::new(ints.into(), floats.nulls().cloned())
        .with_precision_and_scale(DECIMAL_PRECISION, scale)
        .ok()?;
    Some(Arc::new(decimal))
}

/// Encodes a sample of a column (`array`, at most [`SAMPLE_ROWS`] rows)
/// with a dictionary and with each of the column type's plain encodings, as
/// a flush writes them; returns the plain encoding that is smallest, if one
/// is smaller than the dictionary.
///
/// Which one wins depends on the data: delta encoding suits values that
/// move in small steps (a counter, a slow temperature), byte stream split
/// values whose noise is as large as their steps (vibration), a dictionary
/// few distinct values.
fn cheaper_than_dictionary(field: &Field, array: &ArrayRef) -> Result<Option<Encoding>> {
    let alternatives: &[Encoding] = match field.data_type() {
        DataType::Float64 => &[Encoding::BYTE_STREAM_SPLIT],
        DataType::Int64 | DataType::UInt64 | DataType::Decimal128(_, _) => {
            &[Encoding::DELTA_BINARY_PACKED, Encoding::BYTE_STREAM_SPLIT]
        }
        _ => return Ok(None),
    };
    let batch = RecordBatch::try_new(
        Arc::new(Schema::new(vec![Field::new(
            "v",
            field.data_type().clone(),
            true,
        )])),
        vec![array.clone()],
    )?;
    let mut best = None;
    let mut smallest = write(&batch, base_properties()?.set_dictionary_enabled(true))?.len();
    for &encoding in alternatives {
        let props = base_properties()?
            .set_dictionary_enabled(false)
            .set_encoding(encoding);
        let size = write(&batch, props)?.len();
        if size < smallest {
            (best, smallest) = (Some(encoding), size);
        }
    }
    Ok(best)
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

    #[test]
    fn a_value_past_the_sample_that_needs_a_finer_scale_gets_it() {
        use crate::catalog::Column;
        let table = TableSchema::from_columns(
            "t",
            vec![
                Column {
                    name: "time".into(),
                    kind: ColumnKind::Time,
                },
                Column {
                    name: "temp".into(),
                    kind: ColumnKind::Field(FieldType::Float),
                },
            ],
        );
        // Tenths in the sampled rows, one hundredth after them.
        let n = SAMPLE_ROWS + 10;
        let mut temps: Vec<f64> = (0..n).map(|i| (i % 1000) as f64 / 10.0).collect();
        temps[n - 3] = 21.37;
        let batch = RecordBatch::try_new(
            table.arrow_schema().clone(),
            vec![
                Arc::new(
                    arrow::array::TimestampNanosecondArray::from_iter_values(0..n as i64)
                        .with_timezone("UTC"),
                ),
                Arc::new(Float64Array::from(temps.clone())),
            ],
        )
        .unwrap();
        // Written a row group at a time: the sampled scale (tenths) fails in
        // the last row group, after the first was handed out.
        let rows = SAMPLE_ROWS;
        let sampled = choose_layout(&batch, &table, &[], rows, None, false).unwrap();
        let mut handed = 0;
        let written = write_converted(
            &batch,
            &sampled,
            rows,
            |_, _| {
                handed += 1;
                Ok(())
            },
            |_| Ok(()),
        );
        assert!(!written.unwrap());
        assert_eq!(handed, 1);
        let layout = choose_layout(&batch, &table, &[], rows, None, true).unwrap();
        assert_eq!(
            layout.schema.field(1).data_type(),
            &DataType::Decimal128(DECIMAL_PRECISION, 2)
        );
        let mut stored_rows = Vec::new();
        let mut bytes = Vec::new();
        let written = write_converted(
            &batch,
            &layout,
            rows,
            |_, stored| {
                stored_rows.push(stored.clone());
                Ok(())
            },
            |part| {
                bytes.extend(part);
                Ok(())
            },
        );
        assert!(written.unwrap(), "every value is exact in hundredths");
        let read = read_all(bytes::Bytes::from(bytes)).unwrap();
        for file_batches in [read, stored_rows] {
            let back: Vec<f64> = file_batches
                .iter()
                .flat_map(|b| {
                    let back = arrow::compute::cast(b.column(1), &DataType::Float64).unwrap();
                    back.as_any()
                        .downcast_ref::<Float64Array>()
                        .unwrap()
                        .values()
                        .to_vec()
                })
                .collect();
            assert_eq!(back.len(), n);
            assert!(
                temps
                    .iter()
                    .zip(&back)
                    .all(|(a, b)| a.to_bits() == b.to_bits())
            );
        }
    }

    /// Deterministic noise in [-half, half].
    fn noise(i: u64, half: i64) -> i64 {
        let mut z = i.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        (z % (2 * half as u64 + 1)) as i64 - half
    }

    fn encoding_of(values: Vec<i64>) -> Option<Encoding> {
        let field = Field::new("v", DataType::Int64, true);
        let array: ArrayRef = Arc::new(arrow::array::Int64Array::from(values));
        cheaper_than_dictionary(&field, &array).unwrap()
    }

    #[test]
    fn each_numeric_column_gets_the_encoding_that_is_smallest_for_it() {
        let n = 50_000;
        // A slow ramp: small steps, many distinct values.
        let ramp = (0..n).map(|i| 1_000_000 + i as i64 * 3).collect();
        assert_eq!(encoding_of(ramp), Some(Encoding::DELTA_BINARY_PACKED));
        // Noise as wide as the steps around a level per series (vibration):
        // delta encoding pays for every step, a dictionary for every value.
        let noisy = (0..n)
            .map(|i| 800 + (i as i64 / 5_000) * 100 + noise(i, 200))
            .collect();
        assert_eq!(encoding_of(noisy), Some(Encoding::BYTE_STREAM_SPLIT));
        // A handful of values (a status code): the dictionary.
        let status = (0..n).map(|i| noise(i, 1).abs()).collect();
        assert_eq!(encoding_of(status), None);
    }

    #[test]
    fn row_groups_encoded_in_parallel_read_back_as_written() {
        let n = 10_000usize;
        let schema = Arc::new(Schema::new(vec![
            Field::new("a", DataType::Int64, false),
            Field::new("b", DataType::Utf8, true),
            Field::new("c", DataType::Float64, true),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(arrow::array::Int64Array::from_iter_values(0..n as i64)),
                Arc::new(arrow::array::StringArray::from_iter(
                    (0..n).map(|i| (i % 7 != 0).then(|| format!("s{}", i % 13))),
                )),
                Arc::new(Float64Array::from_iter(
                    (0..n).map(|i| (i % 5 != 0).then_some(i as f64 / 4.0)),
                )),
            ],
        )
        .unwrap();
        let props = base_properties()
            .unwrap()
            .set_statistics_enabled(EnabledStatistics::Page)
            .build();
        let bytes = write_parallel(&batch, props, 3_000).unwrap();
        let file = ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(bytes)).unwrap();
        let groups: Vec<i64> = file
            .metadata()
            .row_groups()
            .iter()
            .map(|g| g.num_rows())
            .collect();
        assert_eq!(groups, [3_000, 3_000, 3_000, 1_000]);
        let read = file
            .build()
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let read = arrow::compute::concat_batches(&batch.schema(), &read).unwrap();
        assert_eq!(read, batch);
    }
}
