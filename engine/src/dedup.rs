//! Sorting rows by (series, time) and applying Ingot's duplicate rule: for
//! rows with the same series and time, each field takes the value of the
//! latest write that set it (a later write's nulls keep earlier values).
//!
//! Used by the flush (so every file holds each (series, time) once) and by
//! the read path where sources overlap.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, RecordBatch, UInt32Array, UInt64Array, new_null_array};
use arrow::compute::{SortColumn, concat_batches, lexsort_to_indices, take};
use arrow::datatypes::SchemaRef;
use arrow::row::{RowConverter, SortField};

use crate::catalog::{ColumnKind, TableSchema};
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

/// Merges `inputs` (each with a rank: a higher rank is a later write; within
/// one input, a later row is a later write) into one batch sorted by
/// (tags..., time) with one row per (series, time).
pub(crate) fn sort_dedup(
    table: &TableSchema,
    inputs: &[(u64, RecordBatch)],
) -> Result<RecordBatch> {
    let schema = table.arrow_schema();
    let aligned = inputs
        .iter()
        .map(|(_, b)| align(b, schema))
        .collect::<Result<Vec<_>>>()?;
    let batch = concat_batches(schema, &aligned)?;
    let ranks = UInt64Array::from_iter_values(
        inputs
            .iter()
            .flat_map(|(rank, b)| std::iter::repeat_n(*rank, b.num_rows())),
    );
    let key: Vec<usize> = table
        .tag_indices()
        .into_iter()
        .chain([table.time_index()])
        .collect();
    let mut sort_columns: Vec<SortColumn> = key
        .iter()
        .map(|&i| SortColumn {
            values: batch.column(i).clone(),
            options: None,
        })
        .collect();
    sort_columns.push(SortColumn {
        values: Arc::new(ranks),
        options: None,
    });
    // The sort is not stable: order rows of one write (same rank) by position.
    sort_columns.push(SortColumn {
        values: Arc::new(UInt32Array::from_iter_values(0..batch.num_rows() as u32)),
        options: None,
    });
    let order = lexsort_to_indices(&sort_columns, None)?;
    let sorted = take_batch(&batch, &order)?;
    dedup_sorted(table, sorted, &key)
}

fn take_batch(batch: &RecordBatch, indices: &UInt32Array) -> Result<RecordBatch> {
    let columns = batch
        .columns()
        .iter()
        .map(|c| take(c.as_ref(), indices, None))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    Ok(RecordBatch::try_new(batch.schema(), columns)?)
}

/// Collapses runs of equal keys in a batch sorted by (key, rank).
fn dedup_sorted(table: &TableSchema, sorted: RecordBatch, key: &[usize]) -> Result<RecordBatch> {
    let n = sorted.num_rows();
    if n < 2 {
        return Ok(sorted);
    }
    let converter = RowConverter::new(
        key.iter()
            .map(|&i| SortField::new(sorted.schema().field(i).data_type().clone()))
            .collect(),
    )?;
    let key_columns: Vec<ArrayRef> = key.iter().map(|&i| sorted.column(i).clone()).collect();
    let rows = converter.convert_columns(&key_columns)?;
    // Group g covers rows [starts[g], starts[g + 1]).
    let mut starts: Vec<u32> = Vec::with_capacity(n);
    starts.push(0);
    for i in 1..n {
        if rows.row(i) != rows.row(i - 1) {
            starts.push(i as u32);
        }
    }
    if starts.len() == n {
        return Ok(sorted);
    }
    starts.push(n as u32);
    let last_of_group = UInt32Array::from_iter_values(starts.windows(2).map(|w| w[1] - 1));
    let columns = table
        .columns()
        .iter()
        .zip(sorted.columns())
        .map(|(col, array)| {
            let indices = match col.kind {
                ColumnKind::Field(_) if array.null_count() > 0 => {
                    // The latest non-null value of each group, else its last row.
                    UInt32Array::from_iter_values(starts.windows(2).map(|w| {
                        (w[0]..w[1])
                            .rev()
                            .find(|&i| array.is_valid(i as usize))
                            .unwrap_or(w[1] - 1)
                    }))
                }
                _ => last_of_group.clone(),
            };
            Ok(take(array.as_ref(), &indices, None)?)
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(RecordBatch::try_new(sorted.schema(), columns)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Catalog;
    use crate::options::Precision;
    use crate::write::parse_line_protocol;
    use arrow::util::pretty::pretty_format_batches;

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

    #[test]
    fn later_non_null_fields_win() {
        let (t, inputs) = writes(&[
            "m,s=a x=1,y=1 10\nm,s=b x=5 10",
            "m,s=a x=2 10\nm,s=a x=9 5",
            "m,s=a,extra=e y=3 10",
        ]);
        let out = sort_dedup(&t, &inputs).unwrap();
        let text = pretty_format_batches(&[out]).unwrap().to_string();
        let expected = "\
+--------------------------------+---+-----+-----+-------+
| time                           | s | x   | y   | extra |
+--------------------------------+---+-----+-----+-------+
| 1970-01-01T00:00:00.000000005Z | a | 9.0 |     |       |
| 1970-01-01T00:00:00.000000010Z | a | 2.0 | 1.0 |       |
| 1970-01-01T00:00:00.000000010Z | a |     | 3.0 | e     |
| 1970-01-01T00:00:00.000000010Z | b | 5.0 |     |       |
+--------------------------------+---+-----+-----+-------+";
        assert_eq!(text, expected);
    }
}
