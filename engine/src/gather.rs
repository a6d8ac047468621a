//! Gathering a flush's rows into series order, lane by lane.
//!
//! A memtable holds rows as they arrive, time-major (every device at one
//! instant, then every device at the next); a flushed file holds them by
//! series, then time. The gather between is a transposition: a series' rows
//! sit a whole fleet apart in the input, so `take`, filling one series after
//! another, reads each value from another page of memory. Here the output
//! is cut into lanes (one per series, say) and [`LANES`] of them are filled
//! side by side, a row of each at a time: the next rows of neighbouring
//! series are neighbours in the input too, so each input page serves a lane
//! group's rows before it is left.
//!
//! The result is `take`'s for any lanes; the lanes only decide the order in
//! which output rows are filled.

use std::ops::Range;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, ArrowPrimitiveType, AsArray, DictionaryArray, PrimitiveArray, UInt32Array,
};
use arrow::compute::take;
use arrow::datatypes::{DataType, Int32Type};
use arrow::downcast_primitive_array;

use crate::error::Result;

/// Lanes filled side by side.
const LANES: usize = 32;

/// `take(array, indices)`, filled lane by lane: `lanes` cut
/// `0..indices.len()` into consecutive ranges.
pub(crate) fn gather(
    array: &ArrayRef,
    indices: &UInt32Array,
    lanes: &[Range<usize>],
) -> Result<ArrayRef> {
    let fallback = || Ok(take(array.as_ref(), indices, None)?);
    if array.null_count() > 0 {
        return fallback();
    }
    let indices = indices.values();
    if let DataType::Dictionary(key, _) = array.data_type()
        && **key == DataType::Int32
    {
        let dictionary = array.as_dictionary::<Int32Type>();
        let keys = primitive(dictionary.keys(), indices, lanes);
        // The keys are the input's, so each one is within the values.
        let gathered = DictionaryArray::try_new(keys, dictionary.values().clone())?;
        return Ok(Arc::new(gathered));
    }
    downcast_primitive_array!(
        array => Ok(Arc::new(primitive(array, indices, lanes))),
        _ => fallback()
    )
}

fn primitive<T: ArrowPrimitiveType>(
    array: &PrimitiveArray<T>,
    indices: &[u32],
    lanes: &[Range<usize>],
) -> PrimitiveArray<T> {
    let out = values(array.values(), indices, lanes);
    PrimitiveArray::<T>::new(out.into(), None).with_data_type(array.data_type().clone())
}

/// `indices` mapped to `values`, filled lane by lane.
pub(crate) fn values<T: Copy + Default>(
    values: &[T],
    indices: &[u32],
    lanes: &[Range<usize>],
) -> Vec<T> {
    fill(indices.len(), lanes, |p| values[indices[p] as usize])
}

/// Output positions `0..len` set to `value_at` of each, filled lane by
/// lane: [`LANES`] lanes side by side, a row of each at a time.
#[inline(always)]
fn fill<T: Copy + Default>(
    len: usize,
    lanes: &[Range<usize>],
    value_at: impl Fn(usize) -> T,
) -> Vec<T> {
    let mut out = vec![T::default(); len];
    for group in lanes.chunks(LANES) {
        let longest = group.iter().map(|lane| lane.len()).max().unwrap_or(0);
        for row in 0..longest {
            for lane in group {
                let p = lane.start + row;
                if p < lane.end {
                    out[p] = value_at(p);
                }
            }
        }
    }
    out
}

/// Rows left in several arrays (a memtable's chunks), each row addressed by
/// a code: its chunk in the high bits, its position in the chunk in the low
/// `shift` bits. Gathering from the chunks saves concatenating a column
/// first, a copy as large as the column, in memory that is fresh to the
/// process.
#[derive(Debug, Clone)]
pub(crate) struct Chunked {
    /// Where each chunk starts among the concatenated rows, and the total.
    starts: Vec<u32>,
    shift: u32,
}

impl Chunked {
    /// The coding for chunks of `rows` rows each, or `None` when codes would
    /// not fit in 32 bits.
    pub fn new(rows: impl IntoIterator<Item = usize>) -> Option<Self> {
        let mut starts = vec![0u32];
        let mut longest = 0;
        for r in rows {
            longest = longest.max(r);
            let end = (*starts.last()? as usize).checked_add(r)?;
            starts.push(u32::try_from(end).ok()?);
        }
        let shift = usize::BITS - longest.leading_zeros();
        // The last chunk's number, in as many bits as it takes.
        let chunk_bits = usize::BITS - starts.len().saturating_sub(2).leading_zeros();
        (shift + chunk_bits <= 32 && shift < 32).then_some(Self { starts, shift })
    }

    /// The code of each of `positions` (rows of the chunks concatenated).
    pub fn codes(&self, positions: &[u32]) -> Vec<u32> {
        let mut code_of = Vec::with_capacity(*self.starts.last().unwrap_or(&0) as usize);
        for (c, w) in self.starts.windows(2).enumerate() {
            code_of.extend((0..w[1] - w[0]).map(|offset| (c as u32) << self.shift | offset));
        }
        positions.iter().map(|&p| code_of[p as usize]).collect()
    }

    /// `take` of the chunks concatenated at the rows `codes` name, filled
    /// lane by lane; `None` unless every chunk is a primitive array of one
    /// type without nulls.
    pub fn gather(
        &self,
        chunks: &[ArrayRef],
        codes: &[u32],
        lanes: &[Range<usize>],
    ) -> Option<ArrayRef> {
        let first = chunks.first()?;
        if chunks
            .iter()
            .any(|c| c.null_count() > 0 || c.data_type() != first.data_type())
        {
            return None;
        }
        downcast_primitive_array!(
            first => Some(Arc::new(self.primitive(first, chunks, codes, lanes))),
            _ => None
        )
    }

    fn primitive<T: ArrowPrimitiveType>(
        &self,
        first: &PrimitiveArray<T>,
        chunks: &[ArrayRef],
        codes: &[u32],
        lanes: &[Range<usize>],
    ) -> PrimitiveArray<T> {
        let slices: Vec<&[T::Native]> = chunks
            .iter()
            .map(|c| c.as_primitive::<T>().values().as_ref())
            .collect();
        let out = chunked_values(&slices, codes, self.shift, lanes);
        PrimitiveArray::<T>::new(out.into(), None).with_data_type(first.data_type().clone())
    }
}

/// [`values`] over `chunks`, `codes` in the coding of [`Chunked`].
fn chunked_values<T: Copy + Default>(
    chunks: &[&[T]],
    codes: &[u32],
    shift: u32,
    lanes: &[Range<usize>],
) -> Vec<T> {
    let mask = (1u32 << shift) - 1;
    fill(codes.len(), lanes, |p| {
        let code = codes[p];
        chunks[(code >> shift) as usize][(code & mask) as usize]
    })
}

/// Lanes ending after each of `ends` (ascending positions, the last at
/// `rows - 1`), and one more to `rows` if needed.
pub(crate) fn lanes_ending_at(
    ends: impl IntoIterator<Item = usize>,
    rows: usize,
) -> Vec<Range<usize>> {
    let mut lanes = Vec::new();
    let mut start = 0;
    for end in ends {
        if end + 1 > start && end < rows {
            lanes.push(start..end + 1);
            start = end + 1;
        }
    }
    if start < rows {
        lanes.push(start..rows);
    }
    lanes
}

#[cfg(test)]
mod tests {
    use arrow::array::{Float64Array, Int64Array, StringArray};
    use proptest::prelude::*;

    use super::*;

    fn taken(array: &ArrayRef, indices: &UInt32Array) -> ArrayRef {
        take(array.as_ref(), indices, None).unwrap()
    }

    /// `0..len` cut into lanes after each of `cuts`, taken as positions.
    fn lanes_cut_at(cuts: &[prop::sample::Index], len: usize) -> Vec<Range<usize>> {
        if len == 0 {
            return lanes_ending_at([], 0);
        }
        let mut ends: Vec<usize> = cuts.iter().map(|c| c.index(len)).collect();
        ends.sort_unstable();
        ends.dedup();
        lanes_ending_at(ends, len)
    }

    proptest! {
        /// Any indices, cut into any lanes: what `take` gives, for
        /// integers, floats, tags and columns with nulls.
        #[test]
        fn gathers_what_take_gives(
            n in 1usize..400,
            picks in prop::collection::vec(any::<prop::sample::Index>(), 0..400),
            cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..40),
        ) {
            let indices: Vec<u32> = picks.iter().map(|p| p.index(n) as u32).collect();
            let lanes = lanes_cut_at(&cuts, indices.len());
            let indices = UInt32Array::from(indices);
            prop_assert_eq!(lanes.iter().map(|l| l.len()).sum::<usize>(), indices.len());
            let names: Vec<String> = (0..n).map(|i| format!("dev-{}", i % 13)).collect();
            let columns: Vec<ArrayRef> = vec![
                Arc::new(Int64Array::from_iter_values((0..n as i64).map(|i| i * 7 - 3))),
                Arc::new(Float64Array::from_iter_values((0..n).map(|i| i as f64 / 4.0))),
                Arc::new(names.iter().map(String::as_str).collect::<DictionaryArray<Int32Type>>()),
                Arc::new(Int64Array::from_iter((0..n as i64).map(|i| (i % 5 != 0).then_some(i)))),
                Arc::new(StringArray::from_iter_values((0..n).map(|i| format!("s{i}")))),
            ];
            for column in &columns {
                let gathered = gather(column, &indices, &lanes).unwrap();
                let expected = taken(column, &indices);
                prop_assert_eq!(gathered.as_ref(), expected.as_ref());
            }
        }

        /// Chunks of any sizes, any rows of them: what `take` gives on the
        /// chunks concatenated.
        #[test]
        fn gathers_from_chunks_what_take_gives_on_them_concatenated(
            sizes in prop::collection::vec(0usize..300, 1..12),
            picks in prop::collection::vec(any::<prop::sample::Index>(), 0..400),
            cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..40),
        ) {
            let n: usize = sizes.iter().sum();
            prop_assume!(n > 0);
            let positions: Vec<u32> = picks.iter().map(|p| p.index(n) as u32).collect();
            let lanes = lanes_cut_at(&cuts, positions.len());
            let mut start = 0i64;
            let chunks: Vec<ArrayRef> = sizes
                .iter()
                .map(|&size| {
                    let values = (start..start + size as i64).map(|i| i * 7 - 3);
                    start += size as i64;
                    Arc::new(Int64Array::from_iter_values(values)) as ArrayRef
                })
                .collect();
            let chunked = Chunked::new(sizes.iter().copied()).unwrap();
            let codes = chunked.codes(&positions);
            let gathered = chunked.gather(&chunks, &codes, &lanes).unwrap();
            let refs: Vec<&dyn Array> = chunks.iter().map(|c| c.as_ref()).collect();
            let whole = arrow::compute::concat(&refs).unwrap();
            let expected = taken(&whole, &UInt32Array::from(positions));
            prop_assert_eq!(gathered.as_ref(), expected.as_ref());
        }
    }

    #[test]
    fn chunks_with_nulls_or_of_mixed_types_are_not_gathered() {
        let chunked = Chunked::new([2, 2]).unwrap();
        let codes = chunked.codes(&[3, 0]);
        let lanes = lanes_ending_at([1], 2);
        let with_null: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from(vec![1, 2])),
            Arc::new(Int64Array::from(vec![Some(3), None])),
        ];
        assert!(chunked.gather(&with_null, &codes, &lanes).is_none());
        let mixed: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from(vec![1, 2])),
            Arc::new(Float64Array::from(vec![3.0, 4.0])),
        ];
        assert!(chunked.gather(&mixed, &codes, &lanes).is_none());
    }

    #[test]
    fn codes_that_would_not_fit_in_32_bits_are_refused() {
        // A chunk of 2^20 rows takes 21 bits of a code; chunk 4096 takes 13
        // more, chunk 2047 11.
        let one_long = || std::iter::once(1 << 20);
        assert!(Chunked::new(one_long().chain(std::iter::repeat_n(1, 4096))).is_none());
        assert!(Chunked::new(one_long().chain(std::iter::repeat_n(1, 2047))).is_some());
    }
}
