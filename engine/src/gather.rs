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
    let mut out = vec![T::default(); indices.len()];
    for group in lanes.chunks(LANES) {
        let longest = group.iter().map(|lane| lane.len()).max().unwrap_or(0);
        for row in 0..longest {
            for lane in group {
                let p = lane.start + row;
                if p < lane.end {
                    out[p] = values[indices[p] as usize];
                }
            }
        }
    }
    out
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
            let mut ends: Vec<usize> = cuts
                .iter()
                .filter(|_| !indices.is_empty())
                .map(|c| c.index(indices.len()))
                .collect();
            ends.sort_unstable();
            ends.dedup();
            let lanes = lanes_ending_at(ends, indices.len());
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
    }
}
