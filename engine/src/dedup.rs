//! Sorting rows by (series, time) and applying Ingot's duplicate rule: for
//! rows with the same series and time, each field takes the value of the
//! latest write that set it (a later write's nulls keep earlier values).
//!
//! Used by the flush (so every file holds each (series, time) once) and by
//! the read path where sources overlap.

use std::collections::{HashMap, HashSet};
use std::ops::Range;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, DictionaryArray, Int32Array, RecordBatch, StringArray,
    TimestampNanosecondArray, UInt32Array, new_null_array,
};
use arrow::compute::{cast, concat, take};
use arrow::datatypes::{Int32Type, SchemaRef};

use crate::catalog::{ColumnKind, TableSchema, tag_type};
use crate::error::{Error, Result};

/// Reshapes a batch written under an older (or the same) schema to `schema`:
/// columns it lacks read as null. Columns are matched by name.
pub(crate) fn align(batch: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch> {
    if batch.schema().fields() == schema.fields() {
        return Ok(RecordBatch::try_new(
            schema.clone(),
            batch.columns().to_vec(),
        )?);
    }
    let src = batch.schema();
    let columns = schema
        .fields()
        .iter()
        .map(|f| match src.index_of(f.name()) {
            // Files may store a float field as a decimal (see `parquet_file`).
            Ok(i) if batch.column(i).data_type() != f.data_type() => {
                Ok(cast(batch.column(i), f.data_type())?)
            }
            Ok(i) => Ok(batch.column(i).clone()),
            Err(_) if f.is_nullable() => Ok(new_null_array(f.data_type(), batch.num_rows())),
            Err(_) => Err(Error::Internal(format!(
                "column {} is missing from a stored batch and cannot be null",
                f.name()
            ))),
        })
        .collect::<Result<Vec<ArrayRef>>>()?;
    Ok(RecordBatch::try_new(schema.clone(), columns)?)
}

/// A batch sorted by series and time (within time slices, when sliced), one
/// row per (series, time).
pub(crate) struct Sorted {
    pub batch: RecordBatch,
    /// The tag columns (schema positions) in the order the series are sorted
    /// by; `time` follows them.
    pub key_order: Vec<usize>,
    /// Position in `batch` of the last row of each series.
    pub series_ends: Vec<u32>,
}

impl Sorted {
    /// The last row of each series.
    pub fn last_rows(&self) -> Result<RecordBatch> {
        take_batch(&self.batch, &UInt32Array::from(self.series_ends.clone()))
    }
}

/// Merges `inputs` (each with a rank: a higher rank is a later write; within
/// one input, a later row is a later write) into one batch sorted by series,
/// then time, with one row per (series, time). Series are ordered by their
/// tag values, taking the tags from most to fewest distinct values.
pub(crate) fn sort_dedup(table: &TableSchema, inputs: &[(u64, RecordBatch)]) -> Result<Sorted> {
    sort_dedup_sliced(table, inputs, None)
}

/// [`sort_dedup`], with the rows ordered by (time slice, series, time) when
/// `slice_ns` is given: slice `k` holds the times in
/// `[k * slice_ns, (k + 1) * slice_ns)`. The layout of files
/// ([`crate::Options::time_slice`]).
pub(crate) fn sort_dedup_sliced(
    table: &TableSchema,
    inputs: &[(u64, RecordBatch)],
    slice_ns: Option<i64>,
) -> Result<Sorted> {
    let schema = table.arrow_schema();
    // Concatenate in write order, so that a row's position orders the writes.
    let mut by_rank: Vec<&(u64, RecordBatch)> = inputs.iter().collect();
    by_rank.sort_by_key(|(rank, _)| *rank);
    let aligned = by_rank
        .iter()
        .map(|(_, b)| align(b, schema))
        .collect::<Result<Vec<_>>>()?;
    let started = std::time::Instant::now();
    let (mut columns, chunked) = input_columns(table, &aligned)?;
    let concat_ms = started.elapsed().as_millis() as u64;
    let n: usize = aligned.iter().map(|b| b.num_rows()).sum();
    drop(aligned);
    if n == 0 {
        return Ok(Sorted {
            batch: RecordBatch::new_empty(schema.clone()),
            key_order: table.tag_indices(),
            series_ends: Vec::new(),
        });
    }
    let tags = table.tag_indices();
    let tag_columns = tags
        .iter()
        .map(|&t| columns[t].whole())
        .collect::<Result<Vec<_>>>()?;
    let mut series = SeriesIds::new(n, &tags, &tag_columns)?;
    for (&t, compact) in tags.iter().zip(series.compact_tags.drain(..)) {
        columns[t] = Column::Whole(compact);
    }
    let series_ms = started.elapsed().as_millis() as u64 - concat_ms;
    let key_order = series.key_order.clone();
    let time_index = table.time_index();
    let time_column = columns[time_index].whole()?;
    let times: &[i64] = time_column
        .as_any()
        .downcast_ref::<TimestampNanosecondArray>()
        .map(|a| a.values().as_ref())
        .ok_or_else(|| Error::Internal("the time column is not in nanoseconds".into()))?;
    let (mut order, bounds) = series.by_series();
    // Each series' rows, in arrival order, are a lane of the gathers below.
    let series_lanes: Vec<Range<usize>> = bounds
        .windows(2)
        .filter(|w| w[1] > w[0])
        .map(|w| w[0]..w[1])
        .collect();
    let mut sorted_times = crate::gather::values(times, &order, &series_lanes);
    // Only a series whose rows arrived out of time order is sorted.
    for lane in &series_lanes {
        if !sorted_times[lane.clone()].is_sorted() {
            let rows = &mut order[lane.clone()];
            rows.sort_unstable_by_key(|&i| (times[i as usize], i));
            for (t, &i) in sorted_times[lane.clone()].iter_mut().zip(rows.iter()) {
                *t = times[i as usize];
            }
        }
    }
    let order_ms = started.elapsed().as_millis() as u64 - concat_ms - series_ms;
    // Group g covers sorted positions [starts[g], starts[g + 1]): the rows
    // of one series with one time. `series_ends` holds each series' last
    // group.
    let mut starts: Vec<u32> = Vec::with_capacity(n + 1);
    let mut series_ends: Vec<u32> = Vec::with_capacity(series_lanes.len());
    for lane in &series_lanes {
        starts.push(lane.start as u32);
        for p in lane.start + 1..lane.end {
            if sorted_times[p] != sorted_times[p - 1] {
                starts.push(p as u32);
            }
        }
        series_ends.push(starts.len() as u32 - 1);
    }
    let groups = starts.len();
    starts.push(n as u32);
    // Output row r is group `by_slice[r]`; the groups stay in (series, time)
    // order within each slice.
    let by_slice = slice_ns.and_then(|width| {
        let slice_of = |g: usize| sorted_times[starts[g] as usize].div_euclid(width);
        slice_order(groups, slice_of)
    });
    if let Some(by_slice) = &by_slice {
        let mut position = vec![0u32; groups];
        for (r, &g) in by_slice.iter().enumerate() {
            position[g as usize] = r as u32;
        }
        for end in &mut series_ends {
            *end = position[*end as usize];
        }
    }
    let group_at = |r: usize| by_slice.as_ref().map_or(r, |o| o[r] as usize);
    let groups_ms = started.elapsed().as_millis() as u64;
    let last_of_group = UInt32Array::from_iter_values(
        (0..groups).map(|r| order[starts[group_at(r) + 1] as usize - 1]),
    );
    // The same rows as codes into the chunks, for the columns left there.
    let chunk_codes = chunked.as_ref().and_then(|chunked| {
        columns
            .iter()
            .any(|c| matches!(c, Column::Chunks(_)))
            .then(|| chunked.codes(last_of_group.values()))
    });
    // Output rows are filled a series at a time, in lanes side by side
    // (`gather`); the series' last rows are where lanes end.
    let mut ends: Vec<usize> = series_ends.iter().map(|&e| e as usize).collect();
    ends.sort_unstable();
    let lanes = crate::gather::lanes_ending_at(ends, groups);
    // The latest non-null value of each group, else its last row: where a
    // column with nulls takes each output row from.
    let latest_valid = |array: &ArrayRef| {
        UInt32Array::from_iter_values((0..groups).map(|r| {
            let g = group_at(r);
            let (first, end) = (starts[g], starts[g + 1]);
            (first..end)
                .rev()
                .map(|p| order[p as usize])
                .find(|&i| array.is_valid(i as usize))
                .unwrap_or(order[end as usize - 1])
        }))
    };
    // No duplicates: the times are already in output order, unless the rows
    // are then ordered by slice.
    let mut sorted_times = (groups == n && by_slice.is_none()).then_some(sorted_times);
    let jobs: Vec<_> = columns
        .iter()
        .enumerate()
        .map(|(i, column)| {
            let times = (i == time_index).then(|| sorted_times.take()).flatten();
            (&table.columns()[i].kind, column, times)
        })
        .collect();
    let gathered =
        crate::parallel::map_columns(n, jobs, |(kind, column, times)| match (column, times) {
            (Column::Whole(c), Some(times)) => Ok(Arc::new(
                TimestampNanosecondArray::new(times.into(), None)
                    .with_data_type(c.data_type().clone()),
            ) as ArrayRef),
            (Column::Whole(array), None) => match kind {
                ColumnKind::Field(_) if groups < n && array.null_count() > 0 => {
                    crate::gather::gather(array, &latest_valid(array), &lanes)
                }
                _ => crate::gather::gather(array, &last_of_group, &lanes),
            },
            (Column::Chunks(chunks), _) => {
                let gathered = chunked
                    .as_ref()
                    .zip(chunk_codes.as_ref())
                    .and_then(|(chunked, codes)| chunked.gather(chunks, codes, &lanes));
                gathered.ok_or_else(|| {
                    Error::Internal("a column left in chunks could not be gathered".into())
                })
            }
        })
        .into_iter()
        .collect::<Result<Vec<_>>>()?;
    let take_ms = started.elapsed().as_millis() as u64 - groups_ms;
    tracing::debug!(
        rows = n,
        concat_ms,
        series_ms,
        order_ms,
        groups_ms = groups_ms - concat_ms - series_ms - order_ms,
        take_ms,
        "sorted"
    );
    Ok(Sorted {
        batch: RecordBatch::try_new(schema.clone(), gathered)?,
        key_order,
        series_ends,
    })
}

/// A column of a flush's input: its chunks concatenated, or left as they
/// are and gathered from ([`crate::gather::Chunked`]).
enum Column {
    Whole(ArrayRef),
    Chunks(Vec<ArrayRef>),
}

impl Column {
    fn whole(&self) -> Result<ArrayRef> {
        match self {
            Column::Whole(array) => Ok(array.clone()),
            Column::Chunks(_) => Err(Error::Internal(
                "a column read row by row was left in chunks".into(),
            )),
        }
    }
}

/// Chunks averaging fewer rows than this are concatenated: codes into many
/// small chunks save little and spread each gather over more memory.
const MIN_CHUNK_ROWS: usize = 1024;

/// The columns of `batches` (one after another, in the table's schema):
/// each field without nulls and of a fixed width is left in its chunks when
/// they are large enough, with the coding that addresses them; the rest
/// (time and tags, which the sort reads row by row, fields with nulls,
/// strings) is concatenated, a column on a thread of its own.
fn input_columns(
    table: &TableSchema,
    batches: &[RecordBatch],
) -> Result<(Vec<Column>, Option<crate::gather::Chunked>)> {
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    let chunked = (batches.len() > 1 && rows / batches.len() >= MIN_CHUNK_ROWS)
        .then(|| crate::gather::Chunked::new(batches.iter().map(|b| b.num_rows())))
        .flatten();
    let kinds: Vec<&ColumnKind> = table.columns().iter().map(|c| &c.kind).collect();
    let stays_in_chunks = |i: usize| {
        chunked.is_some()
            && matches!(kinds[i], ColumnKind::Field(_))
            && batches.iter().all(|b| {
                let c = b.column(i);
                c.null_count() == 0 && c.data_type().is_primitive()
            })
    };
    let count = batches.first().map_or(0, |b| b.num_columns());
    let columns = crate::parallel::map_columns(rows, (0..count).collect(), |i| {
        let arrays: Vec<ArrayRef> = batches.iter().map(|b| b.column(i).clone()).collect();
        if stays_in_chunks(i) {
            return Ok(Column::Chunks(arrays));
        }
        let arrays: Vec<&dyn Array> = arrays.iter().map(|a| a.as_ref()).collect();
        Ok(Column::Whole(concat(&arrays)?))
    })
    .into_iter()
    .collect::<Result<Vec<_>>>()?;
    Ok((columns, chunked))
}

/// `0..groups` stably ordered by `slice_of`, or `None` when every group is in
/// one slice (the order is then already right).
fn slice_order(groups: usize, slice_of: impl Fn(usize) -> i64) -> Option<Vec<u32>> {
    let slices: Vec<i64> = (0..groups).map(&slice_of).collect();
    let lo = *slices.iter().min()?;
    let hi = *slices.iter().max()?;
    if lo == hi {
        return None;
    }
    let mut by_slice: Vec<u32> = (0..groups as u32).collect();
    let span = hi.abs_diff(lo) as usize + 1;
    if span > groups {
        // Slices spread wider than the rows: a comparison sort.
        by_slice.sort_by_key(|&g| slices[g as usize]);
        return Some(by_slice);
    }
    // A counting sort, which keeps the groups' order within each slice.
    let mut next = vec![0usize; span + 1];
    for &s in &slices {
        next[(s - lo) as usize + 1] += 1;
    }
    for i in 1..next.len() {
        next[i] += next[i - 1];
    }
    for (g, &s) in slices.iter().enumerate() {
        let k = (s - lo) as usize;
        by_slice[next[k]] = g as u32;
        next[k] += 1;
    }
    Some(by_slice)
}

fn take_batch(batch: &RecordBatch, indices: &UInt32Array) -> Result<RecordBatch> {
    let columns =
        crate::parallel::map_columns(indices.len(), batch.columns().iter().collect(), |c| {
            take(c.as_ref(), indices, None)
        })
        .into_iter()
        .collect::<std::result::Result<Vec<_>, _>>()?;
    Ok(RecordBatch::try_new(batch.schema(), columns)?)
}

/// Every row's series as a dense number whose order is the order of the tag
/// values (nulls last, as SQL's ascending order puts them), computed from
/// dictionary keys without comparing
/// strings per row.
struct SeriesIds {
    /// Series id of each row.
    row_series: Vec<u32>,
    /// Sort rank of each series id.
    rank: Vec<u32>,
    /// The tag columns (schema positions) in the order series are sorted by.
    key_order: Vec<usize>,
    /// Each tag column as a dictionary holding each of its values once.
    /// Memtable chunks each bring a dictionary of their own, and their
    /// concatenation keeps every copy: a device's name once per chunk, which
    /// every later step (encoding, summaries) would otherwise carry.
    compact_tags: Vec<ArrayRef>,
}

impl SeriesIds {
    /// The ids of `n` rows whose tag columns (schema positions `tags`) are
    /// `tag_columns`.
    fn new(n: usize, tags: &[usize], tag_columns: &[ArrayRef]) -> Result<Self> {
        if tags.is_empty() {
            return Ok(Self {
                row_series: vec![0; n],
                rank: vec![0],
                key_order: Vec::new(),
                compact_tags: Vec::new(),
            });
        }
        // Per tag column: each row's value as an id (0 = null, then the
        // column's distinct strings in first-seen order). Columns are
        // independent, and each is a pass over every row.
        let (value_ids, strings): (Vec<Vec<u32>>, Vec<Vec<String>>) =
            crate::parallel::map_columns(n, tag_columns.iter().collect(), |c| tag_value_ids(n, c))
                .into_iter()
                .collect::<Result<Vec<_>>>()?
                .into_iter()
                .unzip();
        let width = tags.len();
        // The tag with the most values (a device id) usually determines the
        // others: a row whose value of it was last seen with the same other
        // tags takes that row's series without hashing.
        let lead = (0..width)
            .max_by_key(|&c| (strings[c].len(), std::cmp::Reverse(c)))
            .unwrap_or(0);
        let mut last_of_lead = vec![u32::MAX; strings[lead].len() + 1];
        // Series s's tuple of value ids is tuples[s * width..(s + 1) * width].
        let mut tuples: Vec<u32> = Vec::new();
        let mut series: HashMap<Vec<u32>, u32> = HashMap::new();
        // The compact tag columns do not depend on the series: they are
        // built on another thread while the rows are assigned theirs.
        let (row_series, compact_tags) = std::thread::scope(|s| {
            let compacting = s.spawn(|| compact_tag_columns(&value_ids, &strings));
            let mut row_series = Vec::with_capacity(n);
            let mut key = vec![0u32; width];
            for i in 0..n {
                for (k, ids) in key.iter_mut().zip(&value_ids) {
                    *k = ids[i];
                }
                let cached = last_of_lead[key[lead] as usize];
                let id = if cached != u32::MAX
                    && tuples[cached as usize * width..(cached as usize + 1) * width] == key[..]
                {
                    cached
                } else {
                    let next = (tuples.len() / width) as u32;
                    let id = *series.entry(key.clone()).or_insert(next);
                    if id == next {
                        tuples.extend_from_slice(&key);
                    }
                    last_of_lead[key[lead] as usize] = id;
                    id
                };
                row_series.push(id);
            }
            let compact_tags = compacting
                .join()
                .unwrap_or_else(|_| Err(Error::Internal("compacting tags panicked".into())));
            (row_series, compact_tags)
        });
        let compact_tags = compact_tags?;
        let tuples: Vec<&[u32]> = tuples.chunks_exact(width).collect();
        let name = |col: usize, id: u32| -> Option<&str> {
            (id > 0).then(|| strings[col][id as usize - 1].as_str())
        };
        // Most distinct values first (ties in schema order): the rows of each
        // device-like tag value end up contiguous, which keeps page statistics
        // on that tag tight; tags derived from it (plant, line) cost nothing.
        let mut order: Vec<usize> = (0..width).collect();
        order.sort_by_key(|&c| std::cmp::Reverse(strings[c].len()));
        let mut by_value: Vec<u32> = (0..tuples.len() as u32).collect();
        by_value.sort_unstable_by(|&a, &b| {
            order
                .iter()
                .copied()
                .map(|c| {
                    // Nulls last: `None` compares after every value.
                    let (x, y) = (
                        name(c, tuples[a as usize][c]),
                        name(c, tuples[b as usize][c]),
                    );
                    x.is_none().cmp(&y.is_none()).then(x.cmp(&y))
                })
                .find(|o| o.is_ne())
                .unwrap_or(std::cmp::Ordering::Equal)
        });
        let mut rank = vec![0u32; tuples.len()];
        for (r, &id) in by_value.iter().enumerate() {
            rank[id as usize] = r as u32;
        }
        // Tags that the ones before them determine (the plant of a device)
        // change no comparison; leaving them out of the recorded key tells
        // readers the rows are sorted by (device_id, time).
        let key_len = (0..=width)
            .find(|&k| {
                let prefixes: HashSet<Vec<u32>> = tuples
                    .iter()
                    .map(|t| order[..k].iter().map(|&c| t[c]).collect())
                    .collect();
                prefixes.len() == tuples.len()
            })
            .unwrap_or(width);
        let key_order = order[..key_len].iter().map(|&c| tags[c]).collect();
        Ok(Self {
            row_series,
            rank,
            key_order,
            compact_tags,
        })
    }

    fn rank_of_row(&self, row: usize) -> u32 {
        self.rank[self.row_series[row] as usize]
    }

    /// Row positions ordered by series, in arrival order within each
    /// (a counting sort by series rank), and where each rank's rows start:
    /// rank `r` holds positions `bounds[r]..bounds[r + 1]`.
    fn by_series(&self) -> (Vec<u32>, Vec<usize>) {
        let n = self.row_series.len();
        let mut next = vec![0usize; self.rank.len() + 1];
        for row in 0..n {
            next[self.rank_of_row(row) as usize + 1] += 1;
        }
        for r in 1..next.len() {
            next[r] += next[r - 1];
        }
        let bounds = next.clone();
        let mut order = vec![0u32; n];
        for row in 0..n {
            let r = self.rank_of_row(row) as usize;
            order[next[r]] = row as u32;
            next[r] += 1;
        }
        (order, bounds)
    }
}

/// Each of `n` rows' value of a tag column as an id (0 = null, then the
/// column's distinct strings in first-seen order), and those strings.
fn tag_value_ids(n: usize, column: &ArrayRef) -> Result<(Vec<u32>, Vec<String>)> {
    let casted;
    let dict = match column.as_any().downcast_ref::<DictionaryArray<Int32Type>>() {
        Some(d) => d,
        None => {
            casted = cast(column, &tag_type())?;
            casted
                .as_any()
                .downcast_ref::<DictionaryArray<Int32Type>>()
                .ok_or_else(|| Error::Internal("tag column is not a dictionary".into()))?
        }
    };
    let values = dict
        .values()
        .as_any()
        .downcast_ref::<StringArray>()
        .ok_or_else(|| Error::Internal("tag dictionary values are not strings".into()))?;
    let mut distinct: HashMap<&str, u32> = HashMap::new();
    let mut names: Vec<String> = Vec::new();
    let dict_ids: Vec<u32> = (0..values.len())
        .map(|v| {
            if values.is_null(v) {
                return 0;
            }
            let s = values.value(v);
            *distinct.entry(s).or_insert_with(|| {
                names.push(s.to_string());
                names.len() as u32
            })
        })
        .collect();
    let keys = dict.keys();
    let id_of = |k: i32| dict_ids.get(k as usize).copied().unwrap_or(0);
    let ids = match keys.null_count() {
        0 => keys.values().iter().map(|&k| id_of(k)).collect(),
        _ => (0..n)
            .map(|i| {
                if keys.is_null(i) {
                    0
                } else {
                    id_of(keys.value(i))
                }
            })
            .collect(),
    };
    Ok((ids, names))
}

/// Each tag column as a dictionary holding each of its values once, from
/// its rows' value ids and strings ([`tag_value_ids`]).
fn compact_tag_columns(value_ids: &[Vec<u32>], strings: &[Vec<String>]) -> Result<Vec<ArrayRef>> {
    value_ids
        .iter()
        .zip(strings)
        .map(|(ids, names)| {
            let keys = if ids.contains(&0) {
                Int32Array::from_iter(ids.iter().map(|&id| (id > 0).then(|| id as i32 - 1)))
            } else {
                Int32Array::from_iter_values(ids.iter().map(|&id| id as i32 - 1))
            };
            let values = StringArray::from_iter_values(names);
            let dict = DictionaryArray::<Int32Type>::try_new(keys, Arc::new(values))?;
            Ok(Arc::new(dict) as ArrayRef)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Catalog;
    use crate::options::Precision;
    use crate::write::parse_line_protocol;
    use arrow::util::pretty::pretty_format_batches;
    use std::sync::Arc;

    fn writes(lps: &[&str]) -> (Arc<TableSchema>, Vec<(u64, RecordBatch)>) {
        let mut catalog = Catalog::default();
        let mut out = Vec::new();
        for (i, lp) in lps.iter().enumerate() {
            let (w, _) = parse_line_protocol(lp, Precision::Nanosecond, 0).unwrap();
            catalog
                .resolve("db", &[("m", w[0].batch.schema().as_ref())])
                .unwrap();
            out.push((i as u64 + 1, w[0].batch.clone()));
        }
        (catalog.table("db", "m").unwrap(), out)
    }

    /// Writes large enough that a flush gathers their fields from the
    /// chunks (`MIN_CHUNK_ROWS`), with duplicates within and across writes,
    /// rows out of time order, and a field with nulls in one write.
    fn large_writes() -> (Arc<TableSchema>, Vec<(u64, RecordBatch)>) {
        let mut state = 7u64;
        let mut next = |below: u64| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 33) % below
        };
        let lps: Vec<String> = (0..3)
            .map(|w| {
                (0..1500)
                    .map(|_| {
                        let (device, time) = (next(12), next(900));
                        let y = match w == 1 && next(3) == 0 {
                            true => String::new(),
                            false => format!(",y={}", next(1000)),
                        };
                        format!(
                            "m,d=dev{device} x={}.5,i={}i{y} {time}\n",
                            next(100),
                            next(50)
                        )
                    })
                    .collect()
            })
            .collect();
        writes(&lps.iter().map(String::as_str).collect::<Vec<_>>())
    }

    #[test]
    fn fields_gathered_from_chunks_are_those_of_the_chunks_concatenated() {
        let (t, inputs) = large_writes();
        let schema = t.arrow_schema();
        let aligned: Vec<RecordBatch> = inputs
            .iter()
            .map(|(_, b)| align(b, schema).unwrap())
            .collect();
        let (columns, chunked) = input_columns(&t, &aligned).unwrap();
        assert!(chunked.is_some());
        let left_in_chunks: Vec<&str> = columns
            .iter()
            .zip(t.columns())
            .filter(|(c, _)| matches!(c, Column::Chunks(_)))
            .map(|(_, col)| col.name.as_str())
            .collect();
        assert_eq!(left_in_chunks, ["x", "i"]);
        let one = vec![(1, arrow::compute::concat_batches(schema, &aligned).unwrap())];
        for slice in [None, Some(100)] {
            let chunks = sort_dedup_sliced(&t, &inputs, slice).unwrap();
            let whole = sort_dedup_sliced(&t, &one, slice).unwrap();
            assert_eq!(chunks.batch, whole.batch);
            assert_eq!(chunks.series_ends, whole.series_ends);
            assert!(chunks.batch.num_rows() < 4500, "the writes hold duplicates");
        }
    }

    #[test]
    fn later_non_null_fields_win() {
        let (t, inputs) = writes(&[
            "m,s=a x=1,y=1 10\nm,s=b x=5 10",
            "m,s=a x=2 10\nm,s=a x=9 5",
            "m,s=a,extra=e y=3 10",
        ]);
        let out = sort_dedup(&t, &inputs).unwrap().batch;
        let text = pretty_format_batches(&[out]).unwrap().to_string();
        let expected = "\
+--------------------------------+---+-----+-----+-------+
| time                           | s | x   | y   | extra |
+--------------------------------+---+-----+-----+-------+
| 1970-01-01T00:00:00.000000010Z | a |     | 3.0 | e     |
| 1970-01-01T00:00:00.000000005Z | a | 9.0 |     |       |
| 1970-01-01T00:00:00.000000010Z | a | 2.0 | 1.0 |       |
| 1970-01-01T00:00:00.000000010Z | b | 5.0 |     |       |
+--------------------------------+---+-----+-----+-------+";
        assert_eq!(text, expected);
    }

    #[test]
    fn sliced_rows_sort_by_slice_then_series_then_time() {
        // Slices 10 ns wide; a duplicate of (b, 12) across two writes, one
        // with a null field; rows out of order within and across writes.
        let (t, inputs) = writes(&[
            "m,s=b x=1,y=1 12\nm,s=a x=2 25\nm,s=b x=3 3\nm,s=a x=4 11",
            "m,s=a x=5 1\nm,s=b x=6 12\nm,s=b x=7 27",
        ]);
        let sorted = sort_dedup_sliced(&t, &inputs, Some(10)).unwrap();
        let text = pretty_format_batches(std::slice::from_ref(&sorted.batch))
            .unwrap()
            .to_string();
        let rows: Vec<&str> = text
            .lines()
            .skip(3)
            .filter(|l| l.starts_with("| 1970"))
            .collect();
        let expected = [
            "| 1970-01-01T00:00:00.000000001Z | a | 5.0 |     |",
            "| 1970-01-01T00:00:00.000000003Z | b | 3.0 |     |",
            "| 1970-01-01T00:00:00.000000011Z | a | 4.0 |     |",
            "| 1970-01-01T00:00:00.000000012Z | b | 6.0 | 1.0 |",
            "| 1970-01-01T00:00:00.000000025Z | a | 2.0 |     |",
            "| 1970-01-01T00:00:00.000000027Z | b | 7.0 |     |",
        ];
        assert_eq!(rows, expected, "{text}");
        // The last row of each series, wherever its slice put it.
        let last = pretty_format_batches(&[sorted.last_rows().unwrap()])
            .unwrap()
            .to_string();
        assert!(last.contains("000000025Z | a"), "{last}");
        assert!(last.contains("000000027Z | b"), "{last}");
        assert_eq!(sorted.series_ends.len(), 2);
    }

    #[test]
    fn within_one_write_the_later_row_wins() {
        let (t, inputs) = writes(&["m,s=a x=1,y=1 10\nm,s=a x=2 10\nm,s=a x=3 10"]);
        let out = sort_dedup(&t, &inputs).unwrap().batch;
        assert_eq!(out.num_rows(), 1);
        let text = pretty_format_batches(&[out]).unwrap().to_string();
        assert!(text.contains("| a | 3.0 | 1.0 |"), "{text}");
    }

    #[test]
    fn series_sort_by_the_tag_with_most_values_first() {
        let (t, inputs) = writes(&[
            "m,plant=p1,dev=d3 x=1 1\nm,plant=p0,dev=d2 x=1 1\nm,plant=p1,dev=d1 x=1 1\nm,plant=p0,dev=d0 x=1 1",
        ]);
        let sorted = sort_dedup(&t, &inputs).unwrap();
        let dev = t.columns().iter().position(|c| c.name == "dev").unwrap();
        assert_eq!(sorted.key_order, [dev], "plant is determined by dev");
        let (t2, inputs) = writes(&[
            "m,plant=p1,dev=d0 x=1 1\nm,plant=p0,dev=d0 x=1 1\nm,plant=p0,dev=d1 x=1 1\nm,plant=p0,dev=d2 x=1 1",
        ]);
        let both = sort_dedup(&t2, &inputs).unwrap().key_order;
        let dev2 = t2.columns().iter().position(|c| c.name == "dev").unwrap();
        let plant2 = t2.columns().iter().position(|c| c.name == "plant").unwrap();
        assert_eq!(both, [dev2, plant2], "d0 is in two plants");
        let text = pretty_format_batches(&[sorted.batch]).unwrap().to_string();
        let devs: Vec<&str> = text
            .lines()
            .filter_map(|l| l.split('|').nth(3))
            .map(str::trim)
            .collect();
        assert_eq!(devs, ["dev", "d0", "d1", "d2", "d3"]);
    }

    #[test]
    fn tags_come_back_with_each_value_once() {
        // Every write brings a dictionary of its own, as memtable chunks do,
        // with fewer values than rows (so concatenating them keeps copies).
        let (t, inputs) = writes(&[
            "m,dev=a,plant=p1 x=1 10\nm,dev=b,plant=p1 x=2 10\nm,dev=a,plant=p1 x=3 11\nm,dev=b,plant=p1 x=4 11",
            "m,dev=b,plant=p1 x=5 20\nm,dev=a,plant=p1 x=6 20\nm,dev=b,plant=p1 x=7 21\nm,dev=a,plant=p1 x=8 21",
            "m,dev=a,plant=p1 x=9 30\nm,dev=c x=10 30\nm,dev=a,plant=p1 x=11 31\nm,dev=c x=12 31",
        ]);
        let sorted = sort_dedup(&t, &inputs).unwrap().batch;
        for (name, values) in [("dev", vec!["a", "b", "c"]), ("plant", vec!["p1"])] {
            let column = sorted.column_by_name(name).unwrap();
            let dict = column
                .as_any()
                .downcast_ref::<DictionaryArray<Int32Type>>()
                .unwrap();
            let mut held: Vec<&str> = dict
                .values()
                .as_any()
                .downcast_ref::<StringArray>()
                .unwrap()
                .iter()
                .map(|v| v.unwrap())
                .collect();
            held.sort();
            assert_eq!(held, values, "{name}");
        }
        let text = pretty_format_batches(&[sorted]).unwrap().to_string();
        let x: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("| 1970"))
            .map(|l| l.split('|').nth(4).unwrap().trim())
            .collect();
        assert_eq!(
            x,
            [
                "1.0", "3.0", "6.0", "8.0", "9.0", "11.0", "2.0", "4.0", "5.0", "7.0", "10.0",
                "12.0"
            ],
            "{text}"
        );
    }

    #[test]
    fn a_device_seen_with_another_plant_is_another_series() {
        // The device id alone would take the series of the row before it.
        let (t, inputs) =
            writes(&["m,dev=a,plant=p1 x=1 10\nm,dev=a,plant=p2 x=2 10\nm,dev=a,plant=p1 x=3 20"]);
        let sorted = sort_dedup(&t, &inputs).unwrap();
        let text = pretty_format_batches(std::slice::from_ref(&sorted.batch))
            .unwrap()
            .to_string();
        let rows: Vec<&str> = text.lines().filter(|l| l.starts_with("| 1970")).collect();
        let expected = [
            "| 1970-01-01T00:00:00.000000010Z | a   | p1    | 1.0 |",
            "| 1970-01-01T00:00:00.000000020Z | a   | p1    | 3.0 |",
            "| 1970-01-01T00:00:00.000000010Z | a   | p2    | 2.0 |",
        ];
        assert_eq!(rows, expected, "{text}");
        assert_eq!(sorted.series_ends.len(), 2);
    }
}
