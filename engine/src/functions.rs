//! Functions for plant telemetry, registered in every session.
//!
//! Aggregates over a group's samples:
//!
//! - `twa(value, time)`: the time-weighted average of irregular samples, the
//!   area under the line through them (trapezoids) over the time they span,
//!   as TDengine's `TWA` and TimescaleDB's linear `time_weight`; one sample
//!   is its own average;
//! - `increase(counter, time)`: how much a counter that counts up and resets
//!   to zero grew: the sum of its rises between consecutive samples, a drop
//!   counting as a reset from zero (Prometheus `increase`, without its
//!   extrapolation to the window's edges); NULL below two samples;
//! - `rate(counter, time)`: `increase` per second over the time the samples
//!   span;
//! - `state_duration(condition, time)`: the seconds during which `condition`
//!   held, each sample's state lasting until the next sample (TDengine
//!   `STATEDURATION`, TimescaleDB `state_agg`), as in
//!   `state_duration(status = 'fault', time)`; the last sample of the group
//!   ends it, so a state that runs past the group counts up to its last
//!   sample only;
//! - `first(value, time)` and `last(value, time)`: the value with the
//!   earliest and the latest time (InfluxQL's `FIRST` and `LAST`).
//!
//! Samples are taken in time order whatever order the rows arrive in; NULL
//! values are skipped. `twa`, `increase`, `rate` and `state_duration` keep
//! a group's samples until it is evaluated.
//!
//! Window functions, over the rows of a window in the order of its
//! `ORDER BY`, which should be time, as in
//! `difference(power) OVER (PARTITION BY device_id ORDER BY time)` (the
//! InfluxQL transformations of the same names):
//!
//! - `difference(value)`: the change from the previous non-NULL value;
//! - `non_negative_difference(value)`: the same, NULL where it is negative
//!   (a counter reset);
//! - `derivative(value, time [, unit])`: the change per `unit` of time
//!   (an interval, one second by default);
//! - `non_negative_derivative(value, time [, unit])`: the same, NULL where
//!   it is negative.
//!
//! Each is NULL on a window's first value and where the value is NULL.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Float64Array, Int64Array, ListArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, FieldRef, Float64Type, Int64Type};
use datafusion::common::{Result as DfResult, ScalarValue, exec_err, plan_err};
use datafusion::logical_expr::function::{
    AccumulatorArgs, PartitionEvaluatorArgs, StateFieldsArgs, WindowUDFFieldArgs,
};
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, PartitionEvaluator, Signature, Volatility,
    WindowUDF, WindowUDFImpl, create_udaf,
};

use crate::catalog::time_type;
use crate::local_time::instant_ns;

/// What a function computes from a group's samples, in time order.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Twa,
    Increase,
    Rate,
    StateDuration,
}

/// The aggregate functions, for a session to register.
pub(crate) fn aggregates() -> Vec<AggregateUDF> {
    let mut functions: Vec<AggregateUDF> = [
        ("twa", Kind::Twa, DataType::Float64),
        ("increase", Kind::Increase, DataType::Float64),
        ("rate", Kind::Rate, DataType::Float64),
        ("state_duration", Kind::StateDuration, DataType::Boolean),
    ]
    .into_iter()
    .map(|(name, kind, input)| {
        create_udaf(
            name,
            vec![input, time_type()],
            Arc::new(DataType::Float64),
            Volatility::Immutable,
            Arc::new(move |_| Ok(Box::new(Samples::new(kind)))),
            Arc::new(vec![list_of(DataType::Int64), list_of(DataType::Float64)]),
        )
    })
    .collect();
    for end in [End::First, End::Last] {
        functions.push(AggregateUDF::new_from_impl(Selector::new(end)));
    }
    functions
}

/// The window functions, for a session to register.
pub(crate) fn windows() -> Vec<WindowUDF> {
    [
        Change::Difference,
        Change::NonNegativeDifference,
        Change::Derivative,
        Change::NonNegativeDerivative,
    ]
    .into_iter()
    .map(|change| WindowUDF::new_from_impl(ChangeFunction::new(change)))
    .collect()
}

fn list_of(item: DataType) -> DataType {
    DataType::List(Arc::new(Field::new_list_field(item, true)))
}

/// One group's samples: (time in ns, value).
#[derive(Debug)]
struct Samples {
    kind: Kind,
    points: Vec<(i64, f64)>,
}

impl Samples {
    fn new(kind: Kind) -> Samples {
        Samples {
            kind,
            points: Vec::new(),
        }
    }

    fn add(&mut self, values: &ArrayRef, times: &ArrayRef) -> DfResult<()> {
        let values = cast(values, &DataType::Float64)?;
        let values = values.as_primitive::<Float64Type>();
        let times = cast(times, &DataType::Int64)?;
        let times = times.as_primitive::<Int64Type>();
        for i in 0..values.len() {
            if values.is_valid(i) && times.is_valid(i) {
                self.points.push((times.value(i), values.value(i)));
            }
        }
        Ok(())
    }
}

impl Accumulator for Samples {
    fn update_batch(&mut self, values: &[ArrayRef]) -> DfResult<()> {
        self.add(&values[0], &values[1])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> DfResult<()> {
        let times = states[0].as_list::<i32>();
        let values = states[1].as_list::<i32>();
        for i in 0..times.len() {
            if times.is_valid(i) && values.is_valid(i) {
                self.add(&values.value(i), &times.value(i))?;
            }
        }
        Ok(())
    }

    fn state(&mut self) -> DfResult<Vec<ScalarValue>> {
        let times = ListArray::from_iter_primitive::<Int64Type, _, _>([Some(
            self.points.iter().map(|p| Some(p.0)),
        )]);
        let values = ListArray::from_iter_primitive::<Float64Type, _, _>([Some(
            self.points.iter().map(|p| Some(p.1)),
        )]);
        Ok(vec![
            ScalarValue::List(Arc::new(times)),
            ScalarValue::List(Arc::new(values)),
        ])
    }

    fn evaluate(&mut self) -> DfResult<ScalarValue> {
        self.points.sort_by_key(|p| p.0);
        let answer = match self.kind {
            Kind::Twa => twa(&self.points),
            Kind::Increase => increase(&self.points),
            Kind::Rate => rate(&self.points),
            Kind::StateDuration => Some(state_duration(&self.points)),
        };
        Ok(ScalarValue::Float64(answer))
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self) + self.points.capacity() * std::mem::size_of::<(i64, f64)>()
    }
}

/// The area under the line through `points` over the time they span.
fn twa(points: &[(i64, f64)]) -> Option<f64> {
    let (first, last) = (points.first()?, points.last()?);
    let span = (last.0 - first.0) as f64;
    if span == 0.0 {
        return Some(points.iter().map(|p| p.1).sum::<f64>() / points.len() as f64);
    }
    let area: f64 = points
        .windows(2)
        .map(|w| (w[0].1 + w[1].1) / 2.0 * (w[1].0 - w[0].0) as f64)
        .sum();
    Some(area / span)
}

/// The sum of a counter's rises, a drop counting as a reset from zero.
fn increase(points: &[(i64, f64)]) -> Option<f64> {
    if points.len() < 2 {
        return None;
    }
    Some(
        points
            .windows(2)
            .map(|w| {
                if w[1].1 >= w[0].1 {
                    w[1].1 - w[0].1
                } else {
                    w[1].1
                }
            })
            .sum(),
    )
}

/// [`increase`] per second of the time the samples span.
fn rate(points: &[(i64, f64)]) -> Option<f64> {
    let seconds = (points.last()?.0 - points.first()?.0) as f64 / 1e9;
    if seconds <= 0.0 {
        return None;
    }
    Some(increase(points)? / seconds)
}

/// Seconds during which the state (1 for true, 0 for false) was true, each
/// sample's lasting until the next.
fn state_duration(points: &[(i64, f64)]) -> f64 {
    let nanos: i64 = points
        .windows(2)
        .filter(|w| w[0].1 != 0.0)
        .map(|w| w[1].0 - w[0].0)
        .sum();
    nanos as f64 / 1e9
}

/// Which end of a group's time [`Selector`] picks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum End {
    First,
    Last,
}

/// `first(value, time)` and `last(value, time)`.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Selector {
    end: End,
    signature: Signature,
}

impl Selector {
    fn new(end: End) -> Selector {
        Selector {
            end,
            signature: Signature::any(2, Volatility::Immutable),
        }
    }
}

impl AggregateUDFImpl for Selector {
    fn name(&self) -> &str {
        match self.end {
            End::First => "first",
            End::Last => "last",
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> DfResult<DataType> {
        if !matches!(arg_types[1], DataType::Timestamp(..)) {
            return plan_err!(
                "{}(value, time) takes a timestamp second, not {}",
                self.name(),
                arg_types[1]
            );
        }
        Ok(arg_types[0].clone())
    }

    fn accumulator(&self, args: AccumulatorArgs) -> DfResult<Box<dyn Accumulator>> {
        Ok(Box::new(Selected {
            end: self.end,
            data_type: args.return_type().clone(),
            best: None,
        }))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> DfResult<Vec<FieldRef>> {
        let value = args.return_field.data_type().clone();
        Ok(vec![
            Arc::new(Field::new(format!("{}[value]", args.name), value, true)),
            Arc::new(Field::new(
                format!("{}[time]", args.name),
                DataType::Int64,
                true,
            )),
        ])
    }
}

/// A group's value so far at its chosen end of time.
#[derive(Debug)]
struct Selected {
    end: End,
    data_type: DataType,
    best: Option<(i64, ScalarValue)>,
}

impl Selected {
    fn offer(&mut self, values: &ArrayRef, times: &Int64Array) -> DfResult<()> {
        let mut pick: Option<(i64, usize)> = None;
        for i in 0..values.len() {
            if values.is_null(i) || times.is_null(i) {
                continue;
            }
            let t = times.value(i);
            if pick.is_none_or(|(p, _)| self.beats(t, p)) {
                pick = Some((t, i));
            }
        }
        if let Some((t, i)) = pick
            && self.best.as_ref().is_none_or(|(b, _)| self.beats(t, *b))
        {
            self.best = Some((t, ScalarValue::try_from_array(values, i)?));
        }
        Ok(())
    }

    /// Whether time `t` is further toward the chosen end than `than`; ties
    /// keep what came first.
    fn beats(&self, t: i64, than: i64) -> bool {
        match self.end {
            End::First => t < than,
            End::Last => t > than,
        }
    }
}

impl Accumulator for Selected {
    fn update_batch(&mut self, values: &[ArrayRef]) -> DfResult<()> {
        let times = instant_ns(&values[1])?;
        self.offer(&values[0], &times)
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> DfResult<()> {
        let times = states[1].as_primitive::<Int64Type>().clone();
        self.offer(&states[0], &times)
    }

    fn state(&mut self) -> DfResult<Vec<ScalarValue>> {
        Ok(match &self.best {
            Some((t, v)) => vec![v.clone(), ScalarValue::Int64(Some(*t))],
            None => vec![
                ScalarValue::try_from(&self.data_type)?,
                ScalarValue::Int64(None),
            ],
        })
    }

    fn evaluate(&mut self) -> DfResult<ScalarValue> {
        match &self.best {
            Some((_, v)) => Ok(v.clone()),
            None => ScalarValue::try_from(&self.data_type),
        }
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self) + self.best.as_ref().map_or(0, |(_, v)| v.size())
    }
}

/// What a window function computes between consecutive values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Change {
    Difference,
    NonNegativeDifference,
    Derivative,
    NonNegativeDerivative,
}

impl Change {
    fn per_time(self) -> bool {
        matches!(self, Change::Derivative | Change::NonNegativeDerivative)
    }

    fn non_negative(self) -> bool {
        matches!(
            self,
            Change::NonNegativeDifference | Change::NonNegativeDerivative
        )
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct ChangeFunction {
    change: Change,
    signature: Signature,
}

impl ChangeFunction {
    fn new(change: Change) -> ChangeFunction {
        ChangeFunction {
            change,
            signature: Signature::variadic_any(Volatility::Immutable),
        }
    }
}

impl WindowUDFImpl for ChangeFunction {
    fn name(&self) -> &str {
        match self.change {
            Change::Difference => "difference",
            Change::NonNegativeDifference => "non_negative_difference",
            Change::Derivative => "derivative",
            Change::NonNegativeDerivative => "non_negative_derivative",
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn partition_evaluator(
        &self,
        _args: PartitionEvaluatorArgs,
    ) -> DfResult<Box<dyn PartitionEvaluator>> {
        Ok(Box::new(ChangeEvaluator {
            change: self.change,
        }))
    }

    fn field(&self, args: WindowUDFFieldArgs) -> DfResult<FieldRef> {
        let types: Vec<&DataType> = args.input_fields().iter().map(|f| f.data_type()).collect();
        let ok = if self.change.per_time() {
            matches!(
                types.as_slice(),
                [v, DataType::Timestamp(..)] | [v, DataType::Timestamp(..), DataType::Interval(_)]
                    if v.is_numeric()
            )
        } else {
            matches!(types.as_slice(), [v] if v.is_numeric())
        };
        if !ok {
            let usage = if self.change.per_time() {
                "(value, time [, unit interval])"
            } else {
                "(value)"
            };
            return plan_err!(
                "{}{usage} takes a number{}; found ({})",
                self.name(),
                if self.change.per_time() {
                    ", a timestamp and an optional interval"
                } else {
                    ""
                },
                types
                    .iter()
                    .map(|t| t.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        Ok(Arc::new(Field::new(args.name(), DataType::Float64, true)))
    }
}

#[derive(Debug)]
struct ChangeEvaluator {
    change: Change,
}

impl PartitionEvaluator for ChangeEvaluator {
    fn evaluate_all(&mut self, values: &[ArrayRef], num_rows: usize) -> DfResult<ArrayRef> {
        let numbers = cast(&values[0], &DataType::Float64)?;
        let numbers = numbers.as_primitive::<Float64Type>();
        let times = match values.get(1) {
            Some(t) => Some(instant_ns(t)?),
            None => None,
        };
        let unit = match values.get(2) {
            Some(u) => unit_ns(u)?,
            None => 1_000_000_000,
        };
        let mut previous: Option<(i64, f64)> = None;
        let mut out = Vec::with_capacity(num_rows);
        for i in 0..num_rows {
            let time = times.as_ref().map(|t| (t.is_valid(i), t.value(i)));
            if numbers.is_null(i) || time.is_some_and(|(valid, _)| !valid) {
                out.push(None);
                continue;
            }
            let (v, t) = (numbers.value(i), time.map_or(0, |(_, t)| t));
            out.push(previous.and_then(|(pt, pv)| {
                let change = if self.change.per_time() {
                    let elapsed = t - pt;
                    (elapsed != 0).then(|| (v - pv) * unit as f64 / elapsed as f64)?
                } else {
                    v - pv
                };
                (!self.change.non_negative() || change >= 0.0).then_some(change)
            }));
            previous = Some((t, v));
        }
        Ok(Arc::new(Float64Array::from(out)))
    }
}

/// A derivative's unit: an interval of fixed length, in nanoseconds.
fn unit_ns(units: &ArrayRef) -> DfResult<i64> {
    let unit = if units.is_empty() {
        None
    } else {
        match ScalarValue::try_from_array(units, 0)? {
            ScalarValue::IntervalMonthDayNano(Some(i)) if i.months == 0 => {
                (i.days as i64 * 86_400_000_000_000).checked_add(i.nanoseconds)
            }
            ScalarValue::IntervalDayTime(Some(i)) => {
                Some(i.days as i64 * 86_400_000_000_000 + i.milliseconds as i64 * 1_000_000)
            }
            _ => None,
        }
    };
    match unit {
        Some(u) if u > 0 => Ok(u),
        _ => exec_err!(
            "a derivative's unit is a positive interval of days or less, such as INTERVAL '1 hour'"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000_000;

    #[test]
    fn twa_weighs_each_stretch_by_its_length() {
        // Trapezoids: (0 + 10) / 2 * 10 + (10 + 10) / 2 * 20 = 250 over 30 s.
        assert_eq!(
            twa(&[(0, 0.0), (10 * S, 10.0), (30 * S, 10.0)]),
            Some(250.0 / 30.0)
        );
        assert_eq!(twa(&[(5 * S, 7.5)]), Some(7.5));
        assert_eq!(twa(&[]), None);
    }

    #[test]
    fn a_counter_reset_counts_from_zero() {
        let points = [
            (0, 100.0),
            (60 * S, 150.0),
            (120 * S, 20.0),
            (180 * S, 70.0),
        ];
        assert_eq!(increase(&points), Some(50.0 + 20.0 + 50.0));
        assert_eq!(rate(&points), Some(120.0 / 180.0));
        assert_eq!(increase(&points[..1]), None);
        assert_eq!(rate(&points[..1]), None);
    }

    #[test]
    fn a_state_lasts_until_the_next_sample() {
        // In fault from 10 s to 25 s, and again from 40 s to the end (40 s).
        let points = [
            (0, 0.0),
            (10 * S, 1.0),
            (20 * S, 1.0),
            (25 * S, 0.0),
            (40 * S, 1.0),
        ];
        assert_eq!(state_duration(&points), 15.0);
        assert_eq!(state_duration(&points[..1]), 0.0);
    }
}
