//! Retention: a database keeps rows for a period, judged by their `time`, or
//! forever.
//!
//! A database's period lives in the catalog, which the manifest persists;
//! [`crate::Options::default_retention`] gives one to databases as they are
//! created. With a period set, the **horizon** is now minus the period, and
//! three stages honour it:
//!
//! - queries hide rows older than the horizon at once: every scan of a table
//!   filters on it and prunes the files wholly before it
//!   ([`crate::query`]);
//! - a write holding a row older than the horizon is rejected whole with
//!   [`Error::BeyondRetention`], never dropped in silence ([`check_writes`]);
//! - files whose every row is older than the horizon leave the manifest at
//!   the compactor's next tick (each second) and at
//!   [`crate::Engine::compact`] ([`expire`]); they are deleted from storage
//!   once no running query reads them. Rows of a file that straddles the
//!   horizon stay hidden until the whole file expires; with day partitions
//!   that is at most a day later.

use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::engine::Shared;
use crate::error::{Error, Result};
use crate::write::{TableWrite, time_values};

/// Words that mean "keep forever" where a period is expected.
const FOREVER: [&str; 4] = ["none", "infinite", "forever", "inf"];

/// Reads a retention period as users write it: `30d`, `12h`, `90m`, `1w`,
/// `1d 12h` (anything `humantime` reads), or `none` / `infinite` / `forever`
/// for no limit.
pub fn parse_period(text: &str) -> Result<Option<Duration>> {
    let text = text.trim();
    if FOREVER.iter().any(|w| text.eq_ignore_ascii_case(w)) {
        return Ok(None);
    }
    let period = humantime::parse_duration(text).map_err(|e| {
        Error::InvalidInput(format!(
            "retention period {text:?} is not a duration ({e}): write it as 30d, 12h, 90m, \
             or none to keep rows forever"
        ))
    })?;
    check_period(Some(period))?;
    Ok(Some(period))
}

/// Refuses a period of zero, which would hide every row.
pub(crate) fn check_period(period: Option<Duration>) -> Result<()> {
    if period.is_some_and(|p| p.is_zero()) {
        return Err(Error::InvalidInput(
            "a retention period of zero would hide every row: give a positive period, or \
             none to keep rows forever"
                .into(),
        ));
    }
    Ok(())
}

/// A period as [`parse_period`] reads it: `30d`, `36h`, `none`.
pub fn format_period(period: Option<Duration>) -> String {
    let Some(period) = period else {
        return "none".to_string();
    };
    let secs = period.as_secs();
    if period.subsec_nanos() != 0 || secs == 0 {
        return humantime::format_duration(period).to_string();
    }
    for (unit, size) in [("d", 86_400), ("h", 3_600), ("m", 60)] {
        if secs % size == 0 {
            return format!("{}{unit}", secs / size);
        }
    }
    format!("{secs}s")
}

/// The oldest time (ns since the epoch) that `period` keeps at `now_ns`.
pub(crate) fn horizon(period: Option<Duration>, now_ns: i64) -> Option<i64> {
    let period = i64::try_from(period?.as_nanos()).unwrap_or(i64::MAX);
    Some(now_ns.saturating_sub(period))
}

/// Rejects a write to `database` that holds a row older than its horizon.
/// `line` is filled in by the caller for line protocol.
pub(crate) fn check_writes(
    database: &str,
    period: Option<Duration>,
    writes: &[TableWrite],
    now_ns: i64,
) -> Result<()> {
    let Some(horizon) = horizon(period, now_ns) else {
        return Ok(());
    };
    for w in writes {
        if let Some(&time) = time_values(&w.batch).iter().min()
            && time < horizon
        {
            return Err(Error::BeyondRetention {
                database: database.to_string(),
                table: w.table.clone(),
                period: format_period(period),
                time,
                horizon,
                line: None,
            });
        }
    }
    Ok(())
}

/// What one pass of [`expire`] removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Expired {
    pub files: u64,
    pub rows: u64,
    pub bytes: u64,
}

/// Takes every file whose rows are all older than its database's horizon
/// out of the manifest, in one change; the files themselves are deleted
/// once no running query reads them.
pub(crate) fn expire(shared: &Shared, now_ns: i64) -> Result<Expired> {
    let expired = |manifest: &crate::manifest::Manifest| {
        let catalog = shared.catalog_read();
        manifest
            .files
            .iter()
            .filter(|f| {
                horizon(catalog.retention(&f.database), now_ns).is_some_and(|h| f.max_time < h)
            })
            .map(|f| f.id)
            .collect::<std::collections::HashSet<u64>>()
    };
    if expired(&shared.state_read().manifest).is_empty() {
        return Ok(Expired::default());
    }
    let done = shared.edit_manifest(
        |m| {
            // Decided again under the manifest lock: the files may have
            // changed since the look above.
            let gone = expired(m);
            let mut done = Expired::default();
            m.files.retain(|f| {
                if gone.contains(&f.id) {
                    done.files += 1;
                    done.rows += f.rows;
                    done.bytes += f.bytes;
                    false
                } else {
                    true
                }
            });
            Ok(done)
        },
        |_| {},
    )?;
    if done.files > 0 {
        let stats = &shared.stats;
        stats.files_expired.fetch_add(done.files, Ordering::Relaxed);
        stats.rows_expired.fetch_add(done.rows, Ordering::Relaxed);
        tracing::info!(
            files = done.files,
            rows = done.rows,
            bytes = done.bytes,
            "files past their database's retention period removed"
        );
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_read_and_print_alike() {
        for (text, secs) in [
            ("30d", 30 * 86_400),
            ("12h", 12 * 3_600),
            ("90m", 90 * 60),
            ("1w", 7 * 86_400),
            ("1d 12h", 36 * 3_600),
        ] {
            let period = parse_period(text).unwrap().unwrap();
            assert_eq!(period, Duration::from_secs(secs), "{text}");
            assert_eq!(
                parse_period(&format_period(Some(period))).unwrap(),
                Some(period)
            );
        }
        assert_eq!(format_period(Some(Duration::from_secs(36 * 3_600))), "36h");
        for forever in ["none", "INFINITE", " forever "] {
            assert_eq!(parse_period(forever).unwrap(), None);
        }
        assert_eq!(format_period(None), "none");
        let err = parse_period("thirty days").unwrap_err().to_string();
        assert!(err.contains("30d"), "{err}");
        assert!(parse_period("0s").is_err());
    }

    #[test]
    fn the_horizon_is_now_minus_the_period() {
        assert_eq!(horizon(None, 100), None);
        assert_eq!(horizon(Some(Duration::from_nanos(30)), 100), Some(70));
        assert_eq!(horizon(Some(Duration::MAX), 0), Some(-i64::MAX));
    }
}
