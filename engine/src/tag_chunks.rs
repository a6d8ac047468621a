//! Column chunks of tags, written from runs of equal values.
//!
//! A flushed file's rows are sorted by series, so each tag value comes in
//! runs of thousands of rows. arrow-rs' column writer interns, compares and
//! hashes a dictionary column value by value; here the rows are walked once
//! to find their runs, and the chunk is built from the runs and the distinct
//! values: a PLAIN dictionary page, data pages of RLE-encoded indices, the
//! chunk's and each page's minimum and maximum, the offset index and the
//! bloom filter. A reader sees what arrow-rs writes for the same column and
//! properties (the same encodings, compression, statistics and page index)
//! with three differences: a page holds exactly `data_page_row_count_limit`
//! rows, the bloom filter is sized for the chunk's distinct values, and the
//! optional size statistics (unencoded bytes, level histograms) are left
//! out.
//!
//! Columns this does not cover (another Arrow type, a v2 writer, a
//! dictionary larger than the page limit, values longer than statistics
//! keep, another codec) are left to arrow-rs: [`encode`] returns `None`.

use std::collections::HashMap;

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::{DataType, Int32Type};
use bytes::Bytes;
use parquet::basic::{BoundaryOrder, Compression, Encoding, EncodingMask, PageType, Type};
use parquet::bloom_filter::Sbbf;
use parquet::column::page::{CompressedPage, Page, PageWriter};
use parquet::column::writer::ColumnCloseResult;
use parquet::data_type::ByteArray;
use parquet::file::metadata::{
    ColumnChunkMetaData, ColumnChunkMetaDataBuilder, ColumnIndexBuilder, OffsetIndexBuilder,
    PageEncodingStats,
};
use parquet::file::properties::{EnabledStatistics, WriterProperties, WriterVersion};
use parquet::file::statistics::{Statistics, ValueStatistics};
use parquet::file::writer::{SerializedPageWriter, TrackedWrite};
use parquet::schema::types::{ColumnDescPtr, ColumnPath};

use crate::error::{Error, Result};

/// The run id of null rows.
const NULL: u32 = u32::MAX;

/// The column chunk of `array` (one row group's rows of a column described
/// by `descr`), as bytes starting at offset 0 and the result a column
/// writer would close with; `None` if the column is not one this module
/// writes.
pub(crate) fn encode(
    array: &ArrayRef,
    descr: &ColumnDescPtr,
    props: &WriterProperties,
) -> Result<Option<(Bytes, ColumnCloseResult)>> {
    let path = descr.path();
    let statistics = props.statistics_enabled(path);
    if !matches!(array.data_type(), DataType::Dictionary(k, v)
            if **k == DataType::Int32 && **v == DataType::Utf8)
        || descr.physical_type() != Type::BYTE_ARRAY
        || descr.max_rep_level() != 0
        || descr.max_def_level() > 1
        || (descr.max_def_level() == 0 && array.null_count() > 0)
        || props.writer_version() != WriterVersion::PARQUET_1_0
        || !props.dictionary_enabled(path)
        || statistics == EnabledStatistics::None
    {
        return Ok(None);
    }
    let dictionary = array.as_dictionary::<Int32Type>();
    if dictionary.values().null_count() > 0 {
        return Ok(None);
    }
    let runs = Runs::of(dictionary);
    let longest = runs.values.iter().map(|v| v.len()).max().unwrap_or(0);
    let dictionary_bytes: usize = runs.values.iter().map(|v| v.len() + 4).sum();
    let truncated = [
        props.statistics_truncate_length(),
        props.column_index_truncate_length(),
    ]
    .into_iter()
    .flatten()
    .any(|limit| longest > limit);
    if truncated || dictionary_bytes > props.dictionary_page_size_limit() {
        return Ok(None);
    }
    let Some(mut codec) = Codec::for_column(props, path)? else {
        return Ok(None);
    };
    let mut pages = ChunkPages::new(Type::BYTE_ARRAY);

    // The dictionary page, PLAIN: each value's length, then its bytes.
    let mut plain = Vec::with_capacity(dictionary_bytes);
    for value in &runs.values {
        plain.extend_from_slice(&(value.len() as u32).to_le_bytes());
        plain.extend_from_slice(value);
    }
    let (buf, size) = codec.compress(plain)?;
    let page = Page::DictionaryPage {
        buf,
        num_values: runs.values.len() as u32,
        encoding: Encoding::PLAIN,
        is_sorted: false,
    };
    pages.dictionary(page, size)?;

    let bit_width = bits(runs.values.len().saturating_sub(1) as u32);
    let mut order = Order::new();
    for page in runs.pages(props.data_page_row_count_limit().max(1)) {
        let rows: u32 = page.iter().map(|&(_, len)| len).sum();
        let nulls: u32 = page
            .iter()
            .filter(|r| r.0 == NULL)
            .map(|&(_, len)| len)
            .sum();
        let mut buf = Vec::new();
        if descr.max_def_level() == 1 {
            let mut levels = Hybrid::new(1);
            for &(id, len) in &page {
                levels.push(u32::from(id != NULL), len);
            }
            let levels = levels.finish();
            buf.extend_from_slice(&(levels.len() as u32).to_le_bytes());
            buf.extend_from_slice(&levels);
        }
        buf.push(bit_width);
        let mut indices = Hybrid::new(bit_width);
        for &(id, len) in page.iter().filter(|r| r.0 != NULL) {
            indices.push(id, len);
        }
        buf.extend_from_slice(&indices.finish());
        let bounds = runs.min_max(page.iter().map(|r| r.0));
        if let Some((min, max)) = bounds {
            order.next(min, max);
        }
        let bounds = bounds.map(|(min, max)| (min.to_vec(), max.to_vec()));
        let buf = codec.compress(buf)?;
        pages.data(buf, rows, nulls, Encoding::RLE_DICTIONARY, bounds)?;
    }

    let (min, max) = match runs.min_max(0..runs.values.len() as u32) {
        Some((min, max)) => (
            Some(ByteArray::from(min.to_vec())),
            Some(ByteArray::from(max.to_vec())),
        ),
        None => (None, None),
    };
    let chunk_statistics = ValueStatistics::new(min, max, None, Some(runs.nulls), false);
    let bloom_filter = match props.bloom_filter_properties(path) {
        Some(filter) => {
            let mut sbbf = Sbbf::new_with_ndv_fpp(runs.values.len().max(1) as u64, filter.fpp())?;
            for value in &runs.values {
                sbbf.insert(*value);
            }
            Some(sbbf)
        }
        None => None,
    };
    let metadata = |metadata: ColumnChunkMetaDataBuilder, data_pages| {
        metadata
            .set_compression(props.compression(path))
            .set_encodings_mask(EncodingMask::new_from_encodings(
                [Encoding::PLAIN, Encoding::RLE, Encoding::RLE_DICTIONARY].iter(),
            ))
            .set_page_encoding_stats(vec![
                PageEncodingStats {
                    page_type: PageType::DICTIONARY_PAGE,
                    encoding: Encoding::PLAIN,
                    count: 1,
                },
                PageEncodingStats {
                    page_type: PageType::DATA_PAGE,
                    encoding: Encoding::RLE_DICTIONARY,
                    count: data_pages,
                },
            ])
            .set_num_values(array.len() as i64)
            .set_dictionary_page_offset(Some(0))
            .set_statistics(Statistics::ByteArray(chunk_statistics))
    };
    let boundary = order.boundary();
    Ok(Some(pages.close(
        descr,
        statistics,
        boundary,
        bloom_filter,
        metadata,
    )?))
}

/// The codec of a chunk written by Ingot: zstd or none.
pub(crate) struct Codec(Option<zstd::bulk::Compressor<'static>>);

impl Codec {
    /// The codec `props` give the column at `path`, or `None` if it is one
    /// Ingot's chunk writers leave to arrow-rs.
    pub(crate) fn for_column(props: &WriterProperties, path: &ColumnPath) -> Result<Option<Codec>> {
        Ok(match props.compression(path) {
            Compression::ZSTD(level) => Some(Codec(Some(
                zstd::bulk::Compressor::new(level.compression_level())
                    .map_err(compression_failed)?,
            ))),
            Compression::UNCOMPRESSED => Some(Codec(None)),
            _ => None,
        })
    }

    pub(crate) fn compresses(&self) -> bool {
        self.0.is_some()
    }

    /// A page's bytes as stored, and their size before compression.
    pub(crate) fn compress(&mut self, buf: Vec<u8>) -> Result<(Bytes, usize)> {
        let size = buf.len();
        Ok(match self.0.as_mut() {
            Some(c) => (c.compress(&buf).map_err(compression_failed)?.into(), size),
            None => (buf.into(), size),
        })
    }

    /// As [`Codec::compress`], with a zstd block ending at each of `ends`
    /// (ascending offsets into `buf`). Each block gets its own literal
    /// statistics: byte streams of a `BYTE_STREAM_SPLIT` page (a value's
    /// low bytes near uniform, its high bytes a few distinct values) then
    /// each get an entropy code of their own, where one block's code fits
    /// none of them. Any zstd decoder reads the frame.
    pub(crate) fn compress_blocks(
        &mut self,
        buf: Vec<u8>,
        ends: &[usize],
    ) -> Result<(Bytes, usize)> {
        use zstd::zstd_safe::{
            self, InBuffer, OutBuffer, ResetDirective, zstd_sys::ZSTD_EndDirective,
        };
        let size = buf.len();
        let Some(c) = self.0.as_mut() else {
            return Ok((buf.into(), size));
        };
        let zstd_failed = |code: usize| {
            Error::Internal(format!(
                "zstd failed on a column page: {}",
                zstd_safe::get_error_name(code)
            ))
        };
        let cctx = c.context_mut();
        cctx.reset(ResetDirective::SessionOnly)
            .map_err(zstd_failed)?;
        cctx.set_pledged_src_size(Some(size as u64))
            .map_err(zstd_failed)?;
        // Room for every byte stored raw, a block header per block, and
        // the frame's header.
        let mut out: Vec<u8> =
            Vec::with_capacity(zstd_safe::compress_bound(size) + 8 * ends.len() + 32);
        let mut from = 0;
        for (to, last) in ends
            .iter()
            .copied()
            .filter(|&end| end > 0 && end < size)
            .map(|end| (end, false))
            .chain([(size, true)])
        {
            let directive = if last {
                ZSTD_EndDirective::ZSTD_e_end
            } else {
                ZSTD_EndDirective::ZSTD_e_flush
            };
            let mut input = InBuffer::around(&buf[from..to]);
            loop {
                let written = out.len();
                out.reserve(64);
                let mut output = OutBuffer::around_pos(&mut out, written);
                let left = cctx
                    .compress_stream2(&mut output, &mut input, directive)
                    .map_err(zstd_failed)?;
                if left == 0 && input.pos == input.src.len() {
                    break;
                }
            }
            from = to;
        }
        Ok((out.into(), size))
    }
}

/// The pages of a column chunk Ingot writes, and what the chunk's metadata,
/// offset index and column index record of them.
pub(crate) struct ChunkPages {
    out: TrackedWrite<Vec<u8>>,
    compressed_size: u64,
    uncompressed_size: u64,
    first_data_page: Option<i64>,
    data_pages: i32,
    rows: u64,
    offset_index: OffsetIndexBuilder,
    column_index: ColumnIndexBuilder,
}

impl ChunkPages {
    /// Pages of a column of this physical type.
    pub(crate) fn new(physical: Type) -> Self {
        ChunkPages {
            out: TrackedWrite::new(Vec::new()),
            compressed_size: 0,
            uncompressed_size: 0,
            first_data_page: None,
            data_pages: 0,
            rows: 0,
            offset_index: OffsetIndexBuilder::new(),
            column_index: ColumnIndexBuilder::new(physical),
        }
    }

    /// Writes the chunk's dictionary page, which comes first.
    pub(crate) fn dictionary(&mut self, page: Page, size: usize) -> Result<()> {
        self.write(page, size)?;
        Ok(())
    }

    /// Writes a version 1 data page of `rows` rows, `nulls` of them null:
    /// its bytes as stored and their size before compression, and the
    /// least and greatest of its values as plain-encoded bytes (`None` if
    /// every row is null).
    pub(crate) fn data(
        &mut self,
        (buf, size): (Bytes, usize),
        rows: u32,
        nulls: u32,
        encoding: Encoding,
        bounds: Option<(Vec<u8>, Vec<u8>)>,
    ) -> Result<()> {
        let page = Page::DataPage {
            buf,
            num_values: rows,
            encoding,
            def_level_encoding: Encoding::RLE,
            rep_level_encoding: Encoding::RLE,
            statistics: None,
        };
        let (offset, compressed_size) = self.write(page, size)?;
        self.first_data_page.get_or_insert(offset);
        self.data_pages += 1;
        self.rows += u64::from(rows);
        self.offset_index.append_row_count(i64::from(rows));
        self.offset_index
            .append_offset_and_size(offset, compressed_size);
        let (null_page, (min, max)) = match bounds {
            Some(bounds) => (false, bounds),
            None => (true, (Vec::new(), Vec::new())),
        };
        self.column_index
            .append(null_page, min, max, i64::from(nulls));
        Ok(())
    }

    fn write(&mut self, page: Page, size: usize) -> Result<(i64, i32)> {
        let spec =
            SerializedPageWriter::new(&mut self.out).write_page(CompressedPage::new(page, size))?;
        self.compressed_size += spec.compressed_size as u64;
        self.uncompressed_size += spec.uncompressed_size as u64;
        Ok((spec.offset as i64, spec.compressed_size as i32))
    }

    /// The chunk's bytes and what a column writer would close with. The
    /// metadata gets the pages' sizes and offsets here, and the rest from
    /// `metadata`, given the number of data pages; the column index is
    /// kept with `boundary` as its order if `statistics` are per page.
    pub(crate) fn close(
        self,
        descr: &ColumnDescPtr,
        statistics: EnabledStatistics,
        boundary: BoundaryOrder,
        bloom_filter: Option<Sbbf>,
        metadata: impl FnOnce(ColumnChunkMetaDataBuilder, i32) -> ColumnChunkMetaDataBuilder,
    ) -> Result<(Bytes, ColumnCloseResult)> {
        let builder = ColumnChunkMetaData::builder(descr.clone())
            .set_total_compressed_size(self.compressed_size as i64)
            .set_total_uncompressed_size(self.uncompressed_size as i64)
            .set_data_page_offset(self.first_data_page.unwrap_or(0));
        let metadata = metadata(builder, self.data_pages).build()?;
        let column_index = match statistics {
            EnabledStatistics::Page => {
                let mut column_index = self.column_index;
                column_index.set_boundary_order(boundary);
                Some(column_index.build()?)
            }
            _ => None,
        };
        let bytes = Bytes::from(self.out.into_inner()?);
        let close = ColumnCloseResult {
            bytes_written: bytes.len() as u64,
            rows_written: self.rows,
            metadata,
            bloom_filter,
            column_index,
            offset_index: Some(self.offset_index.build()),
        };
        Ok((bytes, close))
    }
}

fn compression_failed(e: std::io::Error) -> Error {
    Error::Internal(format!("zstd failed on a column page: {e}"))
}

/// A column's rows as runs of one dictionary index (or [`NULL`]), with
/// the chunk's own dictionary: each distinct value once, in order of first
/// appearance.
struct Runs<'a> {
    values: Vec<&'a [u8]>,
    runs: Vec<(u32, u32)>,
    nulls: u64,
}

impl<'a> Runs<'a> {
    fn of(dictionary: &'a arrow::array::DictionaryArray<Int32Type>) -> Runs<'a> {
        let strings = dictionary.values().as_string::<i32>();
        let keys = dictionary.keys().values();
        let valid = |i: usize| dictionary.keys().is_valid(i);
        let has_nulls = dictionary.keys().null_count() > 0;
        // Indices are given per key, so a value held under several keys
        // is one entry of the chunk's dictionary.
        let mut index_of_key = vec![NULL; strings.len()];
        let mut index_of_value: HashMap<&[u8], u32> = HashMap::new();
        let mut values = Vec::new();
        let mut runs: Vec<(u32, u32)> = Vec::new();
        let mut nulls = 0u64;
        let mut i = 0;
        while i < keys.len() {
            let mut end = i + 1;
            let id = if has_nulls && !valid(i) {
                while end < keys.len() && !valid(end) {
                    end += 1;
                }
                nulls += (end - i) as u64;
                NULL
            } else {
                let key = keys[i];
                while end < keys.len() && keys[end] == key && (!has_nulls || valid(end)) {
                    end += 1;
                }
                let slot = &mut index_of_key[key as usize];
                if *slot == NULL {
                    let value = strings.value(key as usize).as_bytes();
                    *slot = *index_of_value.entry(value).or_insert_with(|| {
                        values.push(value);
                        values.len() as u32 - 1
                    });
                }
                *slot
            };
            let len = (end - i) as u32;
            match runs.last_mut() {
                Some(last) if last.0 == id => last.1 += len,
                _ => runs.push((id, len)),
            }
            i = end;
        }
        Runs {
            values,
            runs,
            nulls,
        }
    }

    /// The runs cut into pages of `rows` rows (the last may hold fewer).
    fn pages(&self, rows: usize) -> Vec<Vec<(u32, u32)>> {
        let rows = rows.min(u32::MAX as usize) as u32;
        let mut pages = Vec::new();
        let mut page = Vec::new();
        let mut room = rows;
        for &(id, mut len) in &self.runs {
            while len > 0 {
                let take = len.min(room);
                page.push((id, take));
                len -= take;
                room -= take;
                if room == 0 {
                    pages.push(std::mem::take(&mut page));
                    room = rows;
                }
            }
        }
        if !page.is_empty() {
            pages.push(page);
        }
        pages
    }

    /// The least and greatest of the values `ids` name, nulls skipped.
    fn min_max(&self, ids: impl Iterator<Item = u32>) -> Option<(&'a [u8], &'a [u8])> {
        ids.filter(|&id| id != NULL)
            .map(|id| self.values[id as usize])
            .fold(None, |acc, v| match acc {
                None => Some((v, v)),
                Some((min, max)) => Some((min.min(v), max.max(v))),
            })
    }
}

/// Whether the pages' minima and maxima only rise or only fall, as the
/// column index records it.
pub(crate) struct Order<T> {
    last: Option<(T, T)>,
    ascending: bool,
    descending: bool,
}

impl<T: PartialOrd + Copy> Order<T> {
    pub(crate) fn new() -> Self {
        Order {
            last: None,
            ascending: true,
            descending: true,
        }
    }

    pub(crate) fn next(&mut self, min: T, max: T) {
        if let Some((last_min, last_max)) = self.last {
            self.ascending &= last_min <= min && last_max <= max;
            self.descending &= last_min >= min && last_max >= max;
        }
        self.last = Some((min, max));
    }

    pub(crate) fn boundary(&self) -> BoundaryOrder {
        match (self.ascending, self.descending) {
            (true, _) => BoundaryOrder::ASCENDING,
            (false, true) => BoundaryOrder::DESCENDING,
            (false, false) => BoundaryOrder::UNORDERED,
        }
    }
}

/// Bits needed to hold `max`.
pub(crate) fn bits(max: u32) -> u8 {
    (32 - max.leading_zeros()) as u8
}

/// Parquet's RLE / bit-packing hybrid, fed runs: a run of 8 or more values
/// is one RLE run; shorter runs are gathered into bit-packed groups of 8.
pub(crate) struct Hybrid {
    bit_width: u8,
    out: Vec<u8>,
    /// Values waiting to be bit-packed.
    literals: Vec<u32>,
}

/// Groups of 8 values in one bit-packed run: at most 63, so that the run's
/// header is one byte.
const MAX_GROUPS: usize = 63;

impl Hybrid {
    pub(crate) fn new(bit_width: u8) -> Self {
        Hybrid {
            bit_width,
            out: Vec::new(),
            literals: Vec::new(),
        }
    }

    pub(crate) fn push(&mut self, value: u32, mut len: u32) {
        if !self.literals.is_empty() {
            // A bit-packed run holds whole groups: fill the last one first.
            let fill = ((8 - self.literals.len() % 8) % 8) as u32;
            let take = fill.min(len);
            self.literals
                .extend(std::iter::repeat_n(value, take as usize));
            len -= take;
            if len == 0 {
                return;
            }
            if len < 8 {
                self.literals
                    .extend(std::iter::repeat_n(value, len as usize));
                return;
            }
            self.flush_literals();
        }
        if len >= 8 {
            self.varint((len as u64) << 1);
            let bytes = self.bit_width.div_ceil(8) as usize;
            self.out.extend_from_slice(&value.to_le_bytes()[..bytes]);
        } else {
            self.literals
                .extend(std::iter::repeat_n(value, len as usize));
        }
    }

    fn flush_literals(&mut self) {
        let literals = std::mem::take(&mut self.literals);
        for run in literals.chunks(MAX_GROUPS * 8) {
            let groups = run.len().div_ceil(8);
            self.varint(((groups as u64) << 1) | 1);
            let mut acc = 0u64;
            let mut filled = 0u32;
            let padding = std::iter::repeat_n(0, groups * 8 - run.len());
            for v in run.iter().copied().chain(padding) {
                acc |= u64::from(v) << filled;
                filled += u32::from(self.bit_width);
                while filled >= 8 {
                    self.out.push(acc as u8);
                    acc >>= 8;
                    filled -= 8;
                }
            }
        }
    }

    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.out.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.out.push(v as u8);
    }

    pub(crate) fn finish(mut self) -> Vec<u8> {
        if !self.literals.is_empty() {
            self.flush_literals();
        }
        self.out
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::Arc;

    use arrow::array::{DictionaryArray, Int32Array, RecordBatch, StringArray};
    use arrow::datatypes::{Field, Schema};
    use parquet::arrow::ArrowWriter;
    use parquet::arrow::arrow_reader::{ArrowReaderOptions, ParquetRecordBatchReaderBuilder};
    use parquet::basic::ZstdLevel;
    use parquet::file::metadata::{PageIndexPolicy, ParquetMetaData};
    use parquet::file::page_index::column_index::ColumnIndexMetaData;
    use parquet::file::reader::{FileReader, SerializedFileReader};
    use parquet::schema::types::ColumnPath;
    use proptest::prelude::*;

    use super::*;

    /// A tag column of `runs`: (value, rows) where `None` is null rows.
    /// Each run takes a key of its own, so one value sits under several
    /// keys, as in a batch concatenated from the memtable's chunks.
    fn column(runs: &[(Option<&str>, usize)]) -> ArrayRef {
        let mut keys = Vec::new();
        let mut values = Vec::new();
        for (value, len) in runs {
            let key = value.map(|v| {
                values.push(v.to_string());
                values.len() as i32 - 1
            });
            keys.extend(std::iter::repeat_n(key, *len));
        }
        let dictionary = DictionaryArray::<Int32Type>::try_new(
            Int32Array::from(keys),
            Arc::new(StringArray::from(values)),
        )
        .unwrap();
        Arc::new(dictionary)
    }

    fn props(page_rows: usize) -> WriterProperties {
        let tag = ColumnPath::from("device_id");
        WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::try_new(3).unwrap()))
            .set_statistics_enabled(EnabledStatistics::Page)
            .set_data_page_row_count_limit(page_rows)
            .set_column_dictionary_enabled(tag.clone(), true)
            .set_column_bloom_filter_enabled(tag, true)
            .build()
    }

    /// The file of one row group holding `array`, its chunk written from
    /// runs.
    fn write(array: &ArrayRef, props: &WriterProperties) -> Bytes {
        let schema = Arc::new(Schema::new(vec![Field::new(
            "device_id",
            array.data_type().clone(),
            true,
        )]));
        let batch = RecordBatch::try_new(schema, vec![array.clone()]).unwrap();
        Bytes::from(
            crate::parquet_file::write_parallel(&batch, props.clone(), array.len().max(1)).unwrap(),
        )
    }

    /// The first column of every row of a file.
    pub(crate) fn read(bytes: &Bytes) -> ArrayRef {
        let reader = ParquetRecordBatchReaderBuilder::try_new(bytes.clone())
            .unwrap()
            .build()
            .unwrap();
        let batches: Vec<RecordBatch> = reader.collect::<Result<_, _>>().unwrap();
        let columns: Vec<ArrayRef> = batches.iter().map(|b| b.column(0).clone()).collect();
        let refs: Vec<&dyn Array> = columns.iter().map(|c| c.as_ref()).collect();
        arrow::compute::concat(&refs).unwrap()
    }

    /// A file's metadata, with its page index.
    pub(crate) fn metadata(bytes: &Bytes) -> Arc<ParquetMetaData> {
        let options = ArrowReaderOptions::new().with_page_index_policy(PageIndexPolicy::Required);
        ParquetRecordBatchReaderBuilder::try_new_with_options(bytes.clone(), options)
            .unwrap()
            .metadata()
            .clone()
    }

    /// Asserts that the first column chunk of `ours` records what arrow-rs'
    /// own writer records in `theirs`: statistics, encodings, values and
    /// compression.
    pub(crate) fn assert_chunk_metadata_matches(ours: &ParquetMetaData, theirs: &ParquetMetaData) {
        let (a, b) = (ours.row_group(0).column(0), theirs.row_group(0).column(0));
        assert_eq!(a.statistics(), b.statistics());
        assert_eq!(a.encodings_mask(), b.encodings_mask());
        assert_eq!(a.num_values(), b.num_values());
        assert_eq!(a.compression(), b.compression());
    }

    fn strings(array: &ArrayRef) -> Vec<Option<String>> {
        let plain = arrow::compute::cast(array, &DataType::Utf8).unwrap();
        plain
            .as_string::<i32>()
            .iter()
            .map(|v| v.map(str::to_string))
            .collect()
    }

    #[test]
    fn a_tag_chunk_reads_back_with_the_statistics_arrow_rs_writes() {
        let array = column(&[
            (Some("dev-b"), 25),
            (Some("dev-b"), 10),
            (None, 3),
            (Some("dev-a"), 2),
            (Some("dev-c"), 1),
            (Some("dev-a"), 40),
            (Some("dev-d"), 5),
        ]);
        let ours = write(&array, &props(16));
        assert_eq!(strings(&read(&ours)), strings(&array));

        // The same column through arrow-rs' own writer.
        let mut theirs = Vec::new();
        let schema = Arc::new(Schema::new(vec![Field::new(
            "device_id",
            array.data_type().clone(),
            true,
        )]));
        let batch = RecordBatch::try_new(schema.clone(), vec![array.clone()]).unwrap();
        let mut writer = ArrowWriter::try_new(&mut theirs, schema, Some(props(16))).unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
        let theirs = Bytes::from(theirs);

        let (ours, theirs) = (metadata(&ours), metadata(&theirs));
        assert_chunk_metadata_matches(&ours, &theirs);

        // Pages of exactly 16 rows, each with its own minimum and maximum:
        // these pages are not arrow-rs' (it cuts after 1 024-row batches).
        let pages = &ours.offset_index().unwrap()[0][0].page_locations;
        let firsts: Vec<i64> = pages.iter().map(|p| p.first_row_index).collect();
        assert_eq!(firsts, [0, 16, 32, 48, 64, 80]);
        let column_index = &ours.column_index().unwrap()[0][0];
        assert_eq!(
            column_index.get_boundary_order(),
            Some(BoundaryOrder::UNORDERED)
        );
        let ColumnIndexMetaData::BYTE_ARRAY(index) = column_index else {
            panic!("a byte array column has a byte array index");
        };
        let text = |v: Option<&[u8]>| String::from_utf8(v.unwrap_or_default().to_vec()).unwrap();
        let bounds: Vec<(String, String, i64)> = (0..firsts.len())
            .map(|p| {
                let nulls = index.null_count(p).unwrap();
                (text(index.min_value(p)), text(index.max_value(p)), nulls)
            })
            .collect();
        let bound = |min: &str, max: &str, nulls| (min.to_string(), max.to_string(), nulls);
        assert_eq!(
            bounds,
            [
                bound("dev-b", "dev-b", 0),
                bound("dev-b", "dev-b", 0),
                bound("dev-a", "dev-c", 3),
                bound("dev-a", "dev-a", 0),
                bound("dev-a", "dev-a", 0),
                bound("dev-a", "dev-d", 0),
            ]
        );

        // The bloom filter holds every value.
        let options = parquet::file::serialized_reader::ReadOptionsBuilder::new()
            .with_reader_properties(
                parquet::file::properties::ReaderProperties::builder()
                    .set_read_bloom_filter(true)
                    .build(),
            )
            .build();
        let reader =
            SerializedFileReader::new_with_options(write(&array, &props(16)), options).unwrap();
        let group = reader.get_row_group(0).unwrap();
        let filter = group.get_column_bloom_filter(0).expect("a bloom filter");
        for value in ["dev-a", "dev-b", "dev-c", "dev-d"] {
            assert!(filter.check(value), "{value} is in the filter");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Any runs, short or long, with nulls, of one value or of
        /// thousands (indices of 0 to 12 bits), over pages of any size:
        /// what is read back is what was written, in pages of exactly
        /// `page_rows` rows.
        #[test]
        fn any_runs_read_back_as_written(
            runs in prop::collection::vec((prop::option::weighted(0.9, 0u16..3000), 1usize..30), 1..300),
            distinct in prop_oneof![Just(1u16), Just(40), Just(3000)],
            page_rows in 1usize..50,
        ) {
            let names: Vec<(Option<String>, usize)> = runs
                .iter()
                .map(|(v, len)| (v.map(|v| format!("value-{}", v % distinct)), *len))
                .collect();
            let runs: Vec<(Option<&str>, usize)> =
                names.iter().map(|(v, len)| (v.as_deref(), *len)).collect();
            let array = column(&runs);
            let bytes = write(&array, &props(page_rows));
            prop_assert_eq!(strings(&read(&bytes)), strings(&array));
            let pages = metadata(&bytes).offset_index().unwrap()[0][0].page_locations.len();
            prop_assert_eq!(pages, array.len().div_ceil(page_rows));
        }
    }
}
