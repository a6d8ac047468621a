//! Which row groups of a scan's files may hold matching rows, and how they
//! are spread over the scan's partitions.
//!
//! Ingot plans its file scans itself, a row group at a time, instead of
//! letting DataFusion cut files into byte ranges: a byte range knows nothing
//! of the query, so a one-device hour in one day file would be opened, and
//! its footer pruned, once per partition, and a whole-history scan could
//! leave one partition with most of the rows that survive the pruning.
//! Here each file's footer (from the runtime's metadata cache) is pruned by
//! the query's time range and tag filters first, and the row groups left
//! are dealt to partitions by row count, in runs of consecutive row groups
//! of one file, so that a partition reads in the file's order.
//! DataFusion still prunes what it is given by statistics, bloom filters
//! and page indexes, and filters the rows.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::parquet::ParquetAccessPlan;
use datafusion::datasource::physical_plan::parquet::metadata::DFParquetMetadata;
use datafusion::error::Result as DfResult;
use datafusion::execution::cache::cache_manager::FileMetadataCache;
use datafusion::logical_expr::{BinaryExpr, Expr, Operator};
use object_store::ObjectStore;
use parquet::file::metadata::{ParquetMetaData, RowGroupMetaData};
use parquet::file::page_index::column_index::ColumnIndexMetaData;
use parquet::file::statistics::Statistics;

use crate::catalog::{ColumnKind, TableSchema};
use crate::manifest::FileMeta;
use crate::query::{TimeRange, ranges_may_match, string_literal, tag_column};

/// The row groups of one file that a scan reads.
#[derive(Debug)]
pub(crate) struct FileRowGroups {
    pub file: Arc<FileMeta>,
    /// How many row groups the file has.
    pub total: usize,
    /// The ones that may match, in file order, with their row counts.
    pub kept: Vec<(usize, u64)>,
    /// How many rows of the kept row groups may match, judged page by page
    /// where the file has a page index ([`pages_may_match`]) when pages
    /// were counted, else the kept row groups' rows: what the scan is
    /// expected to decode.
    pub may_match: u64,
}

/// Prunes the row groups of `file` by `range` and the tag conjuncts of
/// `filters`, from the file's footer (read through `cache`, which keeps it
/// for the scan that follows); with `count_pages`, also counts the rows of
/// the pages that may match (an estimate only a planner needs).
pub(crate) async fn prune(
    store: Arc<dyn ObjectStore>,
    cache: Arc<FileMetadataCache>,
    file: Arc<FileMeta>,
    table: &TableSchema,
    (range, filters): (TimeRange, &[Expr]),
    count_pages: bool,
) -> DfResult<FileRowGroups> {
    let object = PartitionedFile::new(file.path.clone(), file.bytes).object_meta;
    let metadata = DFParquetMetadata::new(store.as_ref(), &object)
        .with_file_metadata_cache(Some(cache))
        .fetch_metadata()
        .await?;
    Ok(prune_metadata(
        file,
        &metadata,
        table,
        (range, filters),
        count_pages,
    ))
}

fn prune_metadata(
    file: Arc<FileMeta>,
    metadata: &ParquetMetaData,
    table: &TableSchema,
    (range, filters): (TimeRange, &[Expr]),
    count_pages: bool,
) -> FileRowGroups {
    let schema = metadata.file_metadata().schema_descr();
    let leaf = |name: &str| (0..schema.num_columns()).find(|&i| schema.column(i).name() == name);
    let time = leaf(crate::catalog::TIME_COLUMN);
    let tags: Vec<(&str, usize)> = table
        .columns()
        .iter()
        .filter(|c| c.kind == ColumnKind::Tag)
        .filter_map(|c| Some((c.name.as_str(), leaf(&c.name)?)))
        .collect();
    let equality = {
        let mut tags = Vec::new();
        for f in filters {
            equality_tags(f, table, &mut tags);
        }
        tags
    };
    let mut kept = Vec::new();
    let mut may_match = 0;
    for (i, group) in metadata.row_groups().iter().enumerate() {
        if time.is_some_and(|t| !times_may_match(group, t, range)) {
            continue;
        }
        let ranges = match filters.is_empty() {
            true => None,
            false => match group_tag_ranges(group, &tags) {
                Some(ranges) if !ranges_may_match(&ranges, table, filters) => continue,
                ranges => ranges,
            },
        };
        may_match += match count_pages {
            true => {
                let pages = PageBounds {
                    metadata,
                    group: i,
                    time,
                    range,
                    tags: &tags,
                    equality: &equality,
                };
                pages_may_match(&pages, ranges.as_ref(), table, filters)
            }
            false => group.num_rows() as u64,
        };
        kept.push((i, group.num_rows() as u64));
    }
    FileRowGroups {
        file,
        total: metadata.num_row_groups(),
        kept,
        may_match,
    }
}

fn times_may_match(group: &RowGroupMetaData, leaf: usize, range: TimeRange) -> bool {
    match group.column(leaf).statistics() {
        Some(Statistics::Int64(s)) => match (s.min_opt(), s.max_opt()) {
            (Some(&min), Some(&max)) => range.overlaps(min, max),
            _ => true,
        },
        _ => true,
    }
}

/// The range of every tag of the row group that has a value in it (a tag
/// missing from the map is null in every row), from its statistics, as
/// [`crate::query::tags_may_match`] judges a file by. `None` when a tag's
/// statistics are missing or its bounds are not exact (truncated long
/// values): the row group is then kept.
fn group_tag_ranges(
    group: &RowGroupMetaData,
    tags: &[(&str, usize)],
) -> Option<BTreeMap<String, (String, String)>> {
    let mut ranges = BTreeMap::new();
    for &(name, leaf) in tags {
        let all_null = |nulls: Option<u64>| nulls == Some(group.num_rows() as u64);
        match group.column(leaf).statistics() {
            Some(Statistics::ByteArray(s))
                if s.min_is_exact() && s.max_is_exact() && s.min_opt().is_some() =>
            {
                let (min, max) = (s.min_opt()?.as_utf8().ok()?, s.max_opt()?.as_utf8().ok()?);
                ranges.insert(name.to_string(), (min.to_string(), max.to_string()));
            }
            // Null in every row: absent from `ranges`, as for a file.
            Some(s) if all_null(s.null_count_opt()) => {}
            _ => return None,
        }
    }
    Some(ranges)
}

/// Where the page index of one row group is read: its file's metadata,
/// the leaves of the time column and the tags, and what the query asks.
struct PageBounds<'a> {
    metadata: &'a ParquetMetaData,
    group: usize,
    time: Option<usize>,
    range: TimeRange,
    tags: &'a [(&'a str, usize)],
    /// The tags the filters compare with `=` or `IN`.
    equality: &'a [String],
}

/// How many rows of a row group whose tags lie in `ranges` may match, from
/// its page index: for the time column (when the query bounds time) and for
/// each tag compared with `=` or `IN` (when the tags' ranges are known),
/// the rows of the pages whose bounds may match; the fewest of those. Each
/// column has its own pages, so each is judged alone, with the row group's
/// ranges for the other tags. The row group's rows when no such column has
/// a page index.
fn pages_may_match(
    pages: &PageBounds,
    ranges: Option<&BTreeMap<String, (String, String)>>,
    table: &TableSchema,
    filters: &[Expr],
) -> u64 {
    let rows = pages.metadata.row_group(pages.group).num_rows() as u64;
    let (Some(columns), Some(offsets)) = (
        pages
            .metadata
            .column_index()
            .and_then(|c| c.get(pages.group)),
        pages
            .metadata
            .offset_index()
            .and_then(|o| o.get(pages.group)),
    ) else {
        return rows;
    };
    // Rows of each page of the column at `leaf` that `keep` keeps.
    let kept_rows = |leaf: usize, keep: &mut dyn FnMut(usize) -> bool| -> Option<u64> {
        let starts = &offsets.get(leaf)?.page_locations;
        let ends = starts
            .iter()
            .skip(1)
            .map(|p| p.first_row_index as u64)
            .chain([rows]);
        Some(
            starts
                .iter()
                .zip(ends)
                .enumerate()
                .filter(|&(page, _)| keep(page))
                .map(|(_, (start, end))| end - start.first_row_index as u64)
                .sum(),
        )
    };
    let mut fewest = rows;
    if let Some(leaf) = pages.time.filter(|_| pages.range != TimeRange::ALL)
        && let Some(ColumnIndexMetaData::INT64(index)) = columns.get(leaf)
    {
        let mut keep = |page: usize| match (index.min_value(page), index.max_value(page)) {
            (Some(&min), Some(&max)) => pages.range.overlaps(min, max),
            _ => !index.is_null_page(page),
        };
        fewest = fewest.min(kept_rows(leaf, &mut keep).unwrap_or(rows));
    }
    let Some(ranges) = ranges else {
        return fewest;
    };
    for tag in pages.equality {
        let Some(&(name, leaf)) = pages.tags.iter().find(|(name, _)| name == tag) else {
            continue;
        };
        let Some(ColumnIndexMetaData::BYTE_ARRAY(index)) = columns.get(leaf) else {
            continue;
        };
        let mut page_ranges = ranges.clone();
        let mut keep = |page: usize| {
            let text =
                |v: Option<&[u8]>| v.and_then(|v| std::str::from_utf8(v).ok().map(str::to_string));
            match (text(index.min_value(page)), text(index.max_value(page))) {
                (Some(min), Some(max)) => {
                    page_ranges.insert(name.to_string(), (min, max));
                }
                _ if index.is_null_page(page) => {
                    page_ranges.remove(name);
                }
                _ => return true,
            }
            ranges_may_match(&page_ranges, table, filters)
        };
        fewest = fewest.min(kept_rows(leaf, &mut keep).unwrap_or(rows));
    }
    fewest
}

/// Whether reading the bloom filters of `files` may prune a row group that
/// their statistics keep. A bloom filter answers `tag = 'v'` and `tag IN
/// (...)`; for the tag a file is sorted by first, a row group holds one
/// range of its values, which the statistics already bound, so the filter
/// would only be read to rule out a value absent inside that range. For any
/// other tag, a row group holds values from all over, and the filter is
/// what prunes.
pub(crate) fn blooms_may_prune(
    files: &[Arc<FileMeta>],
    table: &TableSchema,
    filters: &[Expr],
) -> bool {
    let mut tags = Vec::new();
    for f in filters {
        equality_tags(f, table, &mut tags);
    }
    tags.iter().any(|tag| {
        files
            .iter()
            .any(|f| f.sort_key.as_ref().and_then(|k| k.first()) != Some(tag))
    })
}

/// Tags that `expr` compares with `=` or `IN`, at any depth of AND and OR.
fn equality_tags(expr: &Expr, table: &TableSchema, out: &mut Vec<String>) {
    match expr {
        Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::And | Operator::Or,
            right,
        }) => {
            equality_tags(left, table, out);
            equality_tags(right, table, out);
        }
        Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::Eq,
            right,
        }) => {
            for (side, other) in [(left, right), (right, left)] {
                if let (Some(tag), Some(_)) = (tag_column(side, table), string_literal(other)) {
                    out.push(tag.to_string());
                }
            }
        }
        Expr::InList(list) if !list.negated => {
            out.extend(tag_column(&list.expr, table).map(str::to_string))
        }
        _ => {}
    }
}

/// Deals the kept row groups of `files` to at most `target` partitions of
/// about equal rows. A partition holds runs of consecutive row groups, each
/// run one [`PartitionedFile`] with its access plan; with `one_file_each`,
/// a partition never holds more than one run, so every partition is in its
/// file's order. Files with nothing kept are left out; an empty list comes
/// back as one empty partition, so the scan still reports its pruning.
pub(crate) fn spread(
    files: &[FileRowGroups],
    target: usize,
    one_file_each: bool,
) -> Vec<Vec<PartitionedFile>> {
    let files: Vec<&FileRowGroups> = files.iter().filter(|f| !f.kept.is_empty()).collect();
    let total: u64 = files
        .iter()
        .flat_map(|f| &f.kept)
        .map(|&(_, rows)| rows)
        .sum();
    let units: usize = files.iter().map(|f| f.kept.len()).sum();
    let parts = target.clamp(1, units.max(1));
    let per_part = total.div_ceil(parts as u64).max(1);
    // In file order, every file starts a partition of its own.
    let most = if one_file_each {
        parts.max(files.len())
    } else {
        parts
    };
    let mut partitions: Vec<Vec<PartitionedFile>> = vec![Vec::new()];
    let mut filled = 0u64;
    for (i, f) in files.iter().enumerate() {
        if one_file_each && i > 0 {
            partitions.push(Vec::new());
            filled = 0;
        }
        let run_of = |plan: ParquetAccessPlan| {
            PartitionedFile::new(f.file.path.clone(), f.file.bytes).with_extension(plan)
        };
        let mut run: Option<ParquetAccessPlan> = None;
        for &(group, rows) in &f.kept {
            if filled >= per_part && partitions.len() < most {
                let partition = partitions.last_mut().expect("a partition");
                partition.extend(run.take().map(run_of));
                partitions.push(Vec::new());
                filled = 0;
            }
            run.get_or_insert_with(|| ParquetAccessPlan::new_none(f.total))
                .scan(group);
            filled += rows;
        }
        let partition = partitions.last_mut().expect("a partition");
        partition.extend(run.take().map(run_of));
    }
    partitions
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(id: u64, groups: &[(usize, u64)], total: usize) -> FileRowGroups {
        FileRowGroups {
            file: Arc::new(FileMeta {
                path: format!("f{id}.parquet"),
                ..crate::manifest::tests::file(id)
            }),
            total,
            kept: groups.to_vec(),
            may_match: groups.iter().map(|&(_, rows)| rows).sum(),
        }
    }

    /// Each partition as (path, row groups) per run.
    fn runs(partitions: &[Vec<PartitionedFile>]) -> Vec<Vec<(String, Vec<usize>)>> {
        partitions
            .iter()
            .map(|p| {
                p.iter()
                    .map(|f| {
                        let plan = f
                            .extensions
                            .get::<ParquetAccessPlan>()
                            .expect("an access plan");
                        (f.path().to_string(), plan.row_group_indexes())
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn one_kept_row_group_is_one_partition() {
        let files = [file(1, &[(3, 500)], 16)];
        assert_eq!(
            runs(&spread(&files, 2, false)),
            vec![vec![("f1.parquet".to_string(), vec![3])]]
        );
    }

    #[test]
    fn row_groups_are_dealt_by_rows_in_runs() {
        let files = [
            file(1, &[(0, 100), (1, 100), (2, 100)], 3),
            file(2, &[(0, 100)], 1),
        ];
        assert_eq!(
            runs(&spread(&files, 2, false)),
            vec![
                vec![("f1.parquet".to_string(), vec![0, 1])],
                vec![
                    ("f1.parquet".to_string(), vec![2]),
                    ("f2.parquet".to_string(), vec![0])
                ],
            ]
        );
    }

    #[test]
    fn in_order_every_partition_holds_one_run() {
        let files = [
            file(1, &[(0, 100), (1, 100), (2, 100), (3, 100)], 4),
            file(2, &[(0, 100)], 1),
        ];
        assert_eq!(
            runs(&spread(&files, 2, true)),
            vec![
                vec![("f1.parquet".to_string(), vec![0, 1, 2])],
                vec![("f1.parquet".to_string(), vec![3])],
                vec![("f2.parquet".to_string(), vec![0])],
            ]
        );
    }

    #[test]
    fn nothing_kept_is_one_empty_partition() {
        let files = [file(1, &[], 4)];
        assert_eq!(spread(&files, 2, false).len(), 1);
        assert!(spread(&files, 2, false)[0].is_empty());
    }

    /// A `readings` table of `time`, the tags `tags` and a float field `v`.
    fn table_with_tags(tags: &[&str]) -> TableSchema {
        use crate::catalog::{Column, FieldType};
        let column = |name: &str, kind| Column {
            name: name.into(),
            kind,
        };
        let columns = std::iter::once(column("time", ColumnKind::Time))
            .chain(tags.iter().map(|t| column(t, ColumnKind::Tag)))
            .chain([column("v", ColumnKind::Field(FieldType::Float))])
            .collect();
        TableSchema::from_columns("readings", columns)
    }

    /// Four devices of 100 rows each, sorted by device and time, in one row
    /// group of pages of 25 rows; the footer read back with its page index.
    fn four_devices() -> (TableSchema, Arc<ParquetMetaData>) {
        use arrow::array::{
            ArrayRef, Float64Array, RecordBatch, StringArray, TimestampNanosecondArray,
        };
        use parquet::arrow::ArrowWriter;
        use parquet::file::metadata::{PageIndexPolicy, ParquetMetaDataReader};
        use parquet::file::properties::{EnabledStatistics, WriterProperties};

        let table = table_with_tags(&["device"]);
        let devices: Vec<String> = (0..400).map(|i| format!("d{}", i / 100)).collect();
        let times: Vec<i64> = (0..400).map(|i| i % 100).collect();
        let columns: Vec<ArrayRef> = vec![
            Arc::new(TimestampNanosecondArray::from(times).with_timezone("UTC")),
            arrow::compute::cast(
                &StringArray::from(devices),
                table.arrow_schema().field(1).data_type(),
            )
            .unwrap(),
            Arc::new(Float64Array::from(vec![1.0; 400])),
        ];
        let batch = RecordBatch::try_new(table.arrow_schema().clone(), columns).unwrap();
        let props = WriterProperties::builder()
            .set_statistics_enabled(EnabledStatistics::Page)
            .set_data_page_row_count_limit(25)
            .set_write_batch_size(25)
            .build();
        let mut bytes = Vec::new();
        let mut writer = ArrowWriter::try_new(&mut bytes, batch.schema(), Some(props)).unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
        let metadata = ParquetMetaDataReader::new()
            .with_page_index_policy(PageIndexPolicy::Required)
            .parse_and_finish(&bytes::Bytes::from(bytes))
            .unwrap();
        (table, Arc::new(metadata))
    }

    #[test]
    fn the_rows_that_may_match_are_counted_by_page() {
        use datafusion::prelude::{col, lit};

        let (table, metadata) = four_devices();
        assert_eq!(
            metadata.offset_index().unwrap()[0][1].page_locations.len(),
            16
        );
        let file = Arc::new(crate::manifest::tests::file(1));
        let may_match = |range: TimeRange, filters: &[Expr]| {
            let groups = prune_metadata(file.clone(), &metadata, &table, (range, filters), true);
            assert_eq!(groups.kept, [(0, 400)], "the row group is kept");
            groups.may_match
        };
        let first_half = TimeRange { min: 0, max: 49 };
        let device = |d: &str| col("device").eq(lit(d));
        // Nothing to judge pages by: the row group.
        assert_eq!(may_match(TimeRange::ALL, &[]), 400);
        // One device: its four pages.
        assert_eq!(may_match(TimeRange::ALL, &[device("d2")]), 100);
        // Times 0..49: two pages of each device.
        assert_eq!(may_match(first_half, &[]), 200);
        // Both: each column judged alone, the fewer kept.
        assert_eq!(may_match(first_half, &[device("d2")]), 100);
        // Either of two devices; a device between two pages' bounds.
        let either = col("device").in_list(vec![lit("d1"), lit("d3")], false);
        assert_eq!(may_match(TimeRange::ALL, &[either]), 200);
        assert_eq!(may_match(TimeRange::ALL, &[device("d1x")]), 0);
    }

    #[test]
    fn bloom_filters_are_read_for_tags_a_file_is_not_sorted_by_first() {
        use datafusion::prelude::{col, lit};

        let table = table_with_tags(&["plant", "device"]);
        let by = |key: &[&str]| {
            Arc::new(FileMeta {
                sort_key: Some(key.iter().map(|k| k.to_string()).collect()),
                ..crate::manifest::tests::file(1)
            })
        };
        let device = [col("device").eq(lit("d1"))];
        assert!(!blooms_may_prune(&[by(&["device"])], &table, &device));
        assert!(blooms_may_prune(
            &[by(&["plant", "device"])],
            &table,
            &device
        ));
        assert!(blooms_may_prune(
            &[by(&["device"]), by(&["plant", "device"])],
            &table,
            &device
        ));
        let either = [col("plant")
            .eq(lit("p1"))
            .or(col("device").in_list(vec![lit("d1")], false))];
        assert!(blooms_may_prune(
            &[by(&["plant", "device"])],
            &table,
            &either
        ));
        // Nothing a bloom filter answers.
        let range = [col("device").gt(lit("d1")), col("v").eq(lit(1.0))];
        assert!(!blooms_may_prune(
            &[by(&["plant", "device"])],
            &table,
            &range
        ));
    }
}
