//! How many partitions a query runs on, from how many rows its scans read.
//!
//! DataFusion spreads a plan over `target_partitions` (the machine's cores)
//! whenever the scan's statistics do not show a single batch: round-robin
//! and hash repartitions, two-phase aggregates, a merge at the top. For a
//! query that reads one device's day, an hour of summaries or the last row
//! of each series, that machinery costs more than the work it shares
//! (about half a millisecond on two cores, where the reads take one or
//! two). DataFusion judges by the rows a scan reports, and a file scan
//! cannot report what its page index will leave before it runs.
//!
//! Ingot estimates instead, before physical planning: for each scan of one
//! of its tables, the rows its pruning leaves, down to the pages of files
//! whose page index may match ([`crate::row_groups`]), the memtable rows in
//! the time range, the summary rows of the range, or the last rows. When
//! every scan is Ingot's and together they read at most
//! [`crate::Options::one_partition_rows`] (64 Ki by default: one core
//! filters and aggregates that many in well under a millisecond), the
//! query is planned on one partition. A scan of
//! any other table (system tables, rollups, catalogs) leaves the session's
//! setting as it is.

use datafusion::catalog::Session;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::datasource::source_as_provider;
use datafusion::error::Result as DfResult;
use datafusion::execution::SessionState;
use datafusion::logical_expr::{LogicalPlan, TableScan};

use crate::last_rows::LastRowsTable;
use crate::query::IngotTable;
use crate::summary_rule::SummaryTable;

/// `session` set to plan on one partition, when `plan` reads at most
/// `most_rows`; `None` to plan with `session` as it is.
pub(crate) async fn one_partition(
    plan: &LogicalPlan,
    session: &dyn Session,
    most_rows: u64,
) -> DfResult<Option<SessionState>> {
    if most_rows == 0 || session.config().target_partitions() <= 1 {
        return Ok(None);
    }
    let Some(state) = session.as_any().downcast_ref::<SessionState>() else {
        return Ok(None);
    };
    match rows_read(plan, most_rows).await? {
        // A plan that scans nothing has nothing to spread.
        Some(0) => Ok(None),
        Some(rows) if rows <= most_rows => {
            let mut state = state.clone();
            state.config_mut().options_mut().execution.target_partitions = 1;
            Ok(Some(state))
        }
        _ => Ok(None),
    }
}

/// About how many rows the scans of `plan` (and of its subqueries) read,
/// counted until past `enough`; `None` when one of them is not of a table
/// Ingot can estimate.
pub(crate) async fn rows_read(plan: &LogicalPlan, enough: u64) -> DfResult<Option<u64>> {
    let mut scans: Vec<TableScan> = Vec::new();
    plan.apply_with_subqueries(|node| {
        if let LogicalPlan::TableScan(scan) = node {
            scans.push(scan.clone());
        }
        Ok(TreeNodeRecursion::Continue)
    })?;
    let mut total = 0;
    for scan in &scans {
        let provider = source_as_provider(&scan.source)?;
        let any: &dyn std::any::Any = provider.as_ref();
        let rows = if let Some(table) = any.downcast_ref::<IngotTable>() {
            table.rows_read(&scan.filters, enough - total).await?
        } else if let Some(summaries) = any.downcast_ref::<SummaryTable>() {
            summaries.rows_read(&scan.filters)
        } else if let Some(last) = any.downcast_ref::<LastRowsTable>() {
            match last.rows_read() {
                Some(rows) => rows,
                None => return Ok(None),
            }
        } else {
            return Ok(None);
        };
        total += rows;
        if total > enough {
            break;
        }
    }
    Ok(Some(total))
}
