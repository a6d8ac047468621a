//! Deletes: `DELETE FROM t WHERE <tag and time predicates>`, `DROP TABLE`
//! and `DROP DATABASE`.
//!
//! A delete is a **tombstone**: a table, a time range, a set of values for
//! some tags, and the WAL sequence number the delete got. It is logged in the
//! WAL like a write and acknowledged only once durable; from then on it
//! removes the matching rows **written before it** (with a lower sequence
//! number), and never a row written after it, so a row re-written later
//! starts fresh.
//!
//! Which sources it still applies to: a memtable chunk written before it
//! (`chunk.seq < tombstone.seq`), and a file holding rows written before it
//! that has not had it applied (`max_seq < seq` and `deletes_applied < seq`).
//! Scans filter those sources' rows ([`crate::query`]); a flush applies every
//! tombstone it knows to the rows it writes, and compaction to its inputs,
//! each recording the newest tombstone applied in the file's
//! `deletes_applied`. Once no memtable row and no file is left that a
//! tombstone applies to, it is retired from the manifest.
//!
//! Tombstones live in the engine's state and in the manifest (the ones a
//! flush has passed; the rest are still in the WAL).
//!
//! A **drop** ([`Dropped`]) removes a whole table, or every table of a
//! database, as written before it. It is a WAL record too; the commit that
//! applies it removes the table from the catalog and its rows from the
//! memtables, and from then on every manifest change leaves out the table's
//! files written before the drop (a flush or a compaction that was already
//! under way when the drop came writes such files, and loses them at its
//! manifest change). A table of the same name written after the drop is a
//! new table, with a schema of its own. A drop is kept (in the state and
//! the manifest) until a flush has passed it: until then the WAL may still
//! hold writes before it, which replay must leave out.

use std::collections::HashSet;
use std::sync::Arc;

use arrow::array::{Array, AsArray, BooleanArray, RecordBatch};
use arrow::compute::{cast, filter_record_batch};
use arrow::datatypes::Int32Type;
use datafusion::logical_expr::{BinaryExpr, Expr, Operator};
use datafusion::prelude::{col, lit};
use serde::{Deserialize, Serialize};

use crate::catalog::{TIME_COLUMN, TableSchema, tag_type};
use crate::error::{Error, Result};
use crate::manifest::{FileMeta, Manifest};
use crate::query::{is_time, string_literal, tag_column, timestamp_literal, timestamp_ns};
use crate::write::time_values;

/// One delete: the rows of `table` with `time` in `[min_time, max_time]`
/// whose tags take the listed values, written before `seq`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tombstone {
    pub database: String,
    pub table: String,
    /// The delete's WAL sequence number; 0 until it is committed.
    pub seq: u64,
    pub min_time: i64,
    pub max_time: i64,
    /// Each tag named, with the values it must take (all tags must match).
    pub tags: Vec<(String, Vec<String>)>,
    /// In a replica's view of a cluster, the writer node that recorded it:
    /// it applies to that node's files only (`None` everywhere else).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
}

impl Tombstone {
    /// Reads a `DELETE`'s `WHERE` clause (its conjuncts): only `time`
    /// comparisons, `time BETWEEN`, and tag `=` / `IN` / `OR` of `=` on one
    /// tag are accepted; anything else is an error that names it.
    pub fn from_filters(database: &str, table: &TableSchema, filters: &[Expr]) -> Result<Self> {
        let mut t = Tombstone {
            database: database.to_string(),
            table: table.name().to_string(),
            seq: 0,
            min_time: i64::MIN,
            max_time: i64::MAX,
            tags: Vec::new(),
            node: None,
        };
        for f in filters {
            t.narrow(table, f)?;
        }
        Ok(t)
    }

    fn narrow(&mut self, table: &TableSchema, expr: &Expr) -> Result<()> {
        let unsupported = || {
            Error::InvalidInput(format!(
                "DELETE takes only tag and time predicates (tag = 'v', tag IN (...), time \
                 comparisons, joined by AND); `{expr}` is not one: nothing was deleted"
            ))
        };
        match expr {
            Expr::BinaryExpr(BinaryExpr {
                left,
                op: Operator::And,
                right,
            }) => {
                self.narrow(table, left)?;
                self.narrow(table, right)
            }
            Expr::Between(b) if !b.negated && is_time(&b.expr) => {
                let (Some(lo), Some(hi)) = (timestamp_ns(&b.low), timestamp_ns(&b.high)) else {
                    return Err(unsupported());
                };
                self.min_time = self.min_time.max(lo);
                self.max_time = self.max_time.min(hi);
                Ok(())
            }
            Expr::InList(list) if !list.negated => {
                let tag = tag_column(&list.expr, table).ok_or_else(unsupported)?;
                let values = list
                    .list
                    .iter()
                    .map(|v| string_literal(v).map(str::to_string))
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(unsupported)?;
                self.constrain(tag, values);
                Ok(())
            }
            Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
                if let Some((op, v)) = time_comparison(left, *op, right) {
                    match op {
                        Operator::Eq => {
                            self.min_time = self.min_time.max(v);
                            self.max_time = self.max_time.min(v);
                        }
                        Operator::Gt => self.min_time = self.min_time.max(v.saturating_add(1)),
                        Operator::GtEq => self.min_time = self.min_time.max(v),
                        Operator::Lt => self.max_time = self.max_time.min(v.saturating_sub(1)),
                        Operator::LtEq => self.max_time = self.max_time.min(v),
                        _ => return Err(unsupported()),
                    }
                    return Ok(());
                }
                // `tag = 'v'`, or `tag = 'a' OR tag = 'b'` (DataFusion's form
                // of a short IN list).
                let mut tag = None;
                let mut values = Vec::new();
                equalities(expr, table, &mut tag, &mut values).ok_or_else(unsupported)?;
                let tag = tag.ok_or_else(unsupported)?;
                self.constrain(&tag, values);
                Ok(())
            }
            _ => Err(unsupported()),
        }
    }

    /// Requires `tag` to take one of `values` (intersecting an earlier
    /// requirement on the same tag).
    fn constrain(&mut self, tag: &str, values: Vec<String>) {
        match self.tags.iter_mut().find(|(t, _)| t == tag) {
            Some((_, existing)) => existing.retain(|v| values.contains(v)),
            None => self.tags.push((tag.to_string(), values)),
        }
    }

    /// Whether the delete can match no row at all.
    pub fn is_empty(&self) -> bool {
        self.min_time > self.max_time || self.tags.iter().any(|(_, v)| v.is_empty())
    }

    /// The rows it matches, as a predicate over the table.
    pub fn to_expr(&self) -> Expr {
        let mut expr = col(TIME_COLUMN)
            .gt_eq(timestamp_literal(self.min_time))
            .and(col(TIME_COLUMN).lt_eq(timestamp_literal(self.max_time)));
        for (tag, values) in &self.tags {
            expr = expr.and(col(tag.as_str()).in_list(values.iter().map(lit).collect(), false));
        }
        expr
    }

    /// Whether it removes rows of a file of its table.
    pub fn applies_to_file(&self, f: &FileMeta) -> bool {
        f.database == self.database
            && f.table == self.table
            && f.node == self.node
            && f.max_seq < self.seq
            && f.deletes_applied < self.seq
            && f.min_time <= self.max_time
            && f.max_time >= self.min_time
    }

    /// Whether it removes rows of a memtable chunk of its table written
    /// with `seq`.
    pub fn applies_to_chunk(&self, database: &str, table: &str, seq: u64) -> bool {
        self.database == database && self.table == table && seq < self.seq
    }

    /// Which rows of `batch` it matches (a batch of its table, any subset of
    /// the columns; a tag the batch lacks is null there and matches nothing).
    pub fn matches(&self, batch: &RecordBatch) -> Result<BooleanArray> {
        let times = time_values(batch);
        let mut hit: Vec<bool> = times
            .iter()
            .map(|&t| t >= self.min_time && t <= self.max_time)
            .collect();
        for (tag, values) in &self.tags {
            let Some(column) = batch.column_by_name(tag) else {
                hit.iter_mut().for_each(|h| *h = false);
                break;
            };
            let wanted: HashSet<&str> = values.iter().map(String::as_str).collect();
            let column = if *column.data_type() == tag_type() {
                column.clone()
            } else {
                cast(column, &tag_type())?
            };
            let dict = column.as_dictionary::<Int32Type>();
            let dict_values = dict.values().as_string::<i32>();
            let in_set: Vec<bool> = (0..dict_values.len())
                .map(|i| dict_values.is_valid(i) && wanted.contains(dict_values.value(i)))
                .collect();
            for (i, h) in hit.iter_mut().enumerate() {
                *h = *h && dict.is_valid(i) && in_set[dict.keys().value(i) as usize];
            }
        }
        Ok(BooleanArray::from(hit))
    }
}

/// `DROP TABLE` (`table` is named) or `DROP DATABASE` (`table` is `None`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Dropped {
    pub database: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<String>,
    /// The drop's WAL sequence number; 0 until it is committed.
    #[serde(default)]
    pub seq: u64,
}

impl Dropped {
    /// Whether it removes the rows of `table` written with `seq` (or, for a
    /// file, written at or below `seq`).
    pub fn covers(&self, database: &str, table: &str, seq: u64) -> bool {
        seq < self.seq
            && self.database == database
            && self.table.as_deref().is_none_or(|t| t == table)
    }

    pub fn covers_file(&self, f: &FileMeta) -> bool {
        self.covers(&f.database, &f.table, f.max_seq)
    }
}

/// `time <op> literal` with time on either side, as (op with time on the
/// left, ns).
fn time_comparison(left: &Expr, op: Operator, right: &Expr) -> Option<(Operator, i64)> {
    if is_time(left) {
        return Some((op, timestamp_ns(right)?));
    }
    if is_time(right) {
        return Some((op.swap()?, timestamp_ns(left)?));
    }
    None
}

/// Collects `tag = 'v'` terms joined by OR, all on one tag.
fn equalities(
    expr: &Expr,
    table: &TableSchema,
    tag: &mut Option<String>,
    values: &mut Vec<String>,
) -> Option<()> {
    match expr {
        Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::Or,
            right,
        }) => {
            equalities(left, table, tag, values)?;
            equalities(right, table, tag, values)
        }
        Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::Eq,
            right,
        }) => {
            let (name, value) = match (tag_column(left, table), string_literal(right)) {
                (Some(n), Some(v)) => (n, v),
                _ => (tag_column(right, table)?, string_literal(left)?),
            };
            if tag.as_deref().is_some_and(|t| t != name) {
                return None;
            }
            *tag = Some(name.to_string());
            values.push(value.to_string());
            Some(())
        }
        _ => None,
    }
}

/// `batch` without the rows any of `tombstones` matches.
pub(crate) fn remove_deleted(
    batch: &RecordBatch,
    tombstones: &[&Tombstone],
) -> Result<RecordBatch> {
    if tombstones.is_empty() || batch.num_rows() == 0 {
        return Ok(batch.clone());
    }
    let mut keep = vec![true; batch.num_rows()];
    for t in tombstones {
        let hit = t.matches(batch)?;
        for (k, h) in keep.iter_mut().zip(hit.values().iter()) {
            *k = *k && !h;
        }
    }
    if keep.iter().all(|k| *k) {
        return Ok(batch.clone());
    }
    Ok(filter_record_batch(batch, &BooleanArray::from(keep))?)
}

/// The tombstones still needed once `manifest` is in place: those a flush
/// has not yet passed, those that still apply to one of its files, and
/// those a rollup of their table has not yet passed (it recomputes the
/// windows they touch).
pub(crate) fn still_needed(
    tombstones: &[Arc<Tombstone>],
    manifest: &Manifest,
) -> Vec<Arc<Tombstone>> {
    tombstones
        .iter()
        .filter(|t| {
            t.seq > manifest.persisted_seq
                || manifest.files.iter().any(|f| t.applies_to_file(f))
                || manifest.catalog.rollups.iter().any(|r| {
                    r.source_database == t.database
                        && r.source_table == t.table
                        && r.caught_up_seq < t.seq
                })
        })
        .cloned()
        .collect()
}
