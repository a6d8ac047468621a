//! Binning in a plant's local time.
//!
//! DataFusion's `date_bin` counts windows from the UTC epoch whatever the
//! time zone of its argument, so `date_bin(INTERVAL '1 day', time AT TIME
//! ZONE 'Asia/Shanghai')` would start each day at 08:00 in Shanghai. Ingot
//! registers its own `date_bin` in every session: on a timestamp in a zone
//! other than UTC it bins the zone's wall-clock time, so that
//!
//! ```sql
//! SELECT date_bin(INTERVAL '1 day', time AT TIME ZONE 'Europe/Berlin') AS day, max(power)
//! FROM meters GROUP BY day
//! ```
//!
//! gives one row per Berlin calendar day, each starting at local midnight,
//! 23 hours long on the day clocks go forward and 25 hours on the day they
//! go back. An origin without a zone (or in UTC) is read as a wall-clock
//! time, its date and time of day as written; the default is local midnight
//! of 1970-01-01. So `INTERVAL '8 hours'` with origin `'1970-01-01T06:00:00'`
//! gives shifts at 06:00, 14:00 and 22:00 local time all year. An origin in
//! another zone is read as that zone's wall-clock time. In the hour that repeats when clocks go
//! back, both passes of the hour fall into the bucket that starts at the
//! first pass. On UTC timestamps (Ingot's `time`) the built-in is used
//! unchanged.

use std::str::FromStr;
use std::sync::Arc;

use arrow::array::timezone::Tz;
use arrow::array::{Array, ArrayRef, AsArray, Int64Array, TimestampNanosecondArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Int64Type, TimeUnit};
use chrono::{DateTime, LocalResult, NaiveDateTime, Offset, TimeZone};
use datafusion::common::{Result as DfResult, ScalarValue, exec_err};
use datafusion::logical_expr::sort_properties::{ExprProperties, SortProperties};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
};

/// A time zone's wall clock, for binning in local time.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LocalClock {
    tz: Tz,
}

impl LocalClock {
    /// The clock of a timestamp type's zone; `None` for UTC and for
    /// timestamps without a zone, which bin as they are.
    pub fn of(data_type: &DataType) -> DfResult<Option<LocalClock>> {
        match data_type {
            DataType::Timestamp(_, Some(tz)) if !is_utc(tz) => Ok(Some(LocalClock {
                tz: Tz::from_str(tz)?,
            })),
            _ => Ok(None),
        }
    }

    /// The wall-clock time of an instant, as nanoseconds since local
    /// 1970-01-01 00:00.
    pub fn to_wall(self, instant: i64) -> i64 {
        let utc = DateTime::from_timestamp_nanos(instant).naive_utc();
        let offset = self
            .tz
            .offset_from_utc_datetime(&utc)
            .fix()
            .local_minus_utc();
        instant.saturating_add(offset as i64 * 1_000_000_000)
    }

    /// The instant a wall-clock time names: the first one when the time
    /// repeats (clocks going back), and the moment clocks jump when it is
    /// skipped (clocks going forward).
    pub fn to_instant(self, wall: i64) -> i64 {
        let naive = DateTime::from_timestamp_nanos(wall).naive_utc();
        let offset = match self.tz.offset_from_local_datetime(&naive) {
            LocalResult::Single(o) | LocalResult::Ambiguous(o, _) => o.fix(),
            // In a skipped stretch: the offset before the jump, which maps
            // the stretch onto the jump's instant and after.
            LocalResult::None => self.offset_a_day_before(&naive),
        };
        wall.saturating_sub(offset.local_minus_utc() as i64 * 1_000_000_000)
    }

    fn offset_a_day_before(self, naive: &NaiveDateTime) -> chrono::FixedOffset {
        let earlier = *naive - chrono::Duration::days(1);
        self.tz.offset_from_utc_datetime(&earlier).fix()
    }
}

fn is_utc(tz: &str) -> bool {
    matches!(
        tz.to_ascii_uppercase().as_str(),
        "UTC" | "Z" | "+00:00" | "+0000" | "+00" | "ETC/UTC" | "GMT" | "ETC/GMT"
    )
}

/// `date_bin` that bins zoned timestamps in their zone's wall-clock time.
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct LocalDateBin {
    inner: Arc<ScalarUDF>,
}

/// The `date_bin` Ingot's sessions use in place of DataFusion's.
pub(crate) fn date_bin() -> ScalarUDF {
    ScalarUDF::new_from_impl(LocalDateBin {
        inner: datafusion::functions::datetime::date_bin(),
    })
}

impl ScalarUDFImpl for LocalDateBin {
    fn name(&self) -> &str {
        "date_bin"
    }

    fn signature(&self) -> &Signature {
        self.inner.signature()
    }

    fn return_type(&self, arg_types: &[DataType]) -> DfResult<DataType> {
        self.inner.return_type(arg_types)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let source_type = args.args.get(1).map(|a| a.data_type());
        let clock = match &source_type {
            Some(t) => LocalClock::of(t)?,
            None => None,
        };
        let (Some(clock), Some(source_type)) = (clock, source_type) else {
            return self.inner.invoke_with_args(args);
        };
        local_date_bin(&self.inner, clock, &source_type, args)
    }

    fn output_ordering(&self, input: &[ExprProperties]) -> DfResult<SortProperties> {
        // Wall-clock bins rise with the instants they hold.
        self.inner.output_ordering(input)
    }

    fn documentation(&self) -> Option<&datafusion::logical_expr::Documentation> {
        self.inner.documentation()
    }
}

/// Bins `args` in `clock`'s wall-clock time with DataFusion's `date_bin`.
fn local_date_bin(
    inner: &ScalarUDF,
    clock: LocalClock,
    source_type: &DataType,
    args: ScalarFunctionArgs,
) -> DfResult<ColumnarValue> {
    let number_rows = args.number_rows;
    let mut values = args.args.into_iter();
    let (Some(stride), Some(source)) = (values.next(), values.next()) else {
        return exec_err!("date_bin takes an interval and a timestamp");
    };
    let origin = match values.next() {
        Some(ColumnarValue::Scalar(s)) => origin_wall(&s)?,
        Some(ColumnarValue::Array(_)) => return exec_err!("date_bin takes a constant origin"),
        None => Some(0),
    };
    let Some(origin) = origin else {
        return Ok(ColumnarValue::Scalar(ScalarValue::try_from(source_type)?));
    };
    let is_scalar = matches!(source, ColumnarValue::Scalar(_));
    let instants = instant_ns(&source.into_array(1)?)?;
    let walls: TimestampNanosecondArray = instants.unary(|t| clock.to_wall(t));
    let naive = DataType::Timestamp(TimeUnit::Nanosecond, None);
    let binned = inner.invoke_with_args(ScalarFunctionArgs {
        args: vec![
            stride,
            ColumnarValue::Array(Arc::new(walls)),
            ColumnarValue::Scalar(ScalarValue::TimestampNanosecond(Some(origin), None)),
        ],
        arg_fields: vec![
            args.arg_fields[0].clone(),
            Arc::new(arrow::datatypes::Field::new("source", naive.clone(), true)),
            Arc::new(arrow::datatypes::Field::new("origin", naive.clone(), true)),
        ],
        number_rows,
        return_field: Arc::new(arrow::datatypes::Field::new("bin", naive, true)),
        config_options: args.config_options,
    })?;
    let binned = binned.into_array(instants.len())?;
    let binned = cast(&binned, &DataType::Int64)?;
    let tz = match source_type {
        DataType::Timestamp(_, tz) => tz.clone(),
        _ => None,
    };
    let back: TimestampNanosecondArray = binned
        .as_primitive::<Int64Type>()
        .unary(|w| clock.to_instant(w));
    let out = cast(&back.with_timezone_opt(tz), source_type)?;
    if is_scalar {
        Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(&out, 0)?))
    } else {
        Ok(ColumnarValue::Array(out))
    }
}

/// The wall-clock time an origin names: its own zone's, or its date and
/// time as written when it has no zone or is in UTC. `None` for NULL.
pub(crate) fn origin_wall(origin: &ScalarValue) -> DfResult<Option<i64>> {
    let instants = instant_ns(&origin.to_array()?)?;
    if instants.is_null(0) {
        return Ok(None);
    }
    let instant = instants.value(0);
    Ok(Some(match LocalClock::of(&origin.data_type())? {
        Some(clock) => clock.to_wall(instant),
        None => instant,
    }))
}

/// A timestamp array as nanoseconds since the UTC epoch, whatever its zone.
/// (A cast to a timestamp without zone would shift to local time.)
pub(crate) fn instant_ns(array: &ArrayRef) -> DfResult<Int64Array> {
    let tz = match array.data_type() {
        DataType::Timestamp(_, tz) => tz.clone(),
        other => return exec_err!("expected a timestamp, found {other}"),
    };
    let ns = cast(array, &DataType::Timestamp(TimeUnit::Nanosecond, tz))?;
    Ok(cast(&ns, &DataType::Int64)?
        .as_primitive::<Int64Type>()
        .clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clock(tz: &str) -> LocalClock {
        LocalClock::of(&DataType::Timestamp(TimeUnit::Nanosecond, Some(tz.into())))
            .unwrap()
            .unwrap()
    }

    fn ns(rfc3339: &str) -> i64 {
        DateTime::parse_from_rfc3339(rfc3339)
            .unwrap()
            .timestamp_nanos_opt()
            .unwrap()
    }

    #[test]
    fn utc_needs_no_clock() {
        let utc = DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into()));
        assert!(LocalClock::of(&utc).unwrap().is_none());
        let naive = DataType::Timestamp(TimeUnit::Nanosecond, None);
        assert!(LocalClock::of(&naive).unwrap().is_none());
    }

    #[test]
    fn wall_clock_round_trips_outside_transitions() {
        let berlin = clock("Europe/Berlin");
        let t = ns("2024-07-01T10:00:00Z");
        assert_eq!(berlin.to_wall(t), ns("2024-07-01T12:00:00Z"));
        assert_eq!(berlin.to_instant(berlin.to_wall(t)), t);
    }

    #[test]
    fn repeated_and_skipped_wall_times() {
        let berlin = clock("Europe/Berlin");
        // 2024-10-27: 02:00-03:00 local happens twice; the first is 00:00Z.
        let repeated = ns("2024-10-27T02:30:00Z");
        assert_eq!(berlin.to_instant(repeated), ns("2024-10-27T00:30:00Z"));
        // 2024-03-31: 02:00-03:00 local is skipped; clocks jump at 01:00Z.
        let skipped = ns("2024-03-31T02:00:00Z");
        assert_eq!(berlin.to_instant(skipped), ns("2024-03-31T01:00:00Z"));
        assert_eq!(
            berlin.to_instant(ns("2024-03-31T03:00:00Z")),
            ns("2024-03-31T01:00:00Z")
        );
    }
}
