//! Aggregate functions for plant telemetry, registered in every session:
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
//!   span.
//!
//! Samples are taken in time order whatever order the rows arrive in; NULL
//! values are skipped. Each group keeps its samples until it is evaluated.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, ListArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Float64Type, Int64Type};
use datafusion::common::{Result as DfResult, ScalarValue};
use datafusion::logical_expr::{Accumulator, AggregateUDF, Volatility, create_udaf};

use crate::catalog::time_type;

/// What a function computes from a group's samples, in time order.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Twa,
    Increase,
    Rate,
}

/// The functions, for a session to register.
pub(crate) fn all() -> Vec<AggregateUDF> {
    [
        ("twa", Kind::Twa),
        ("increase", Kind::Increase),
        ("rate", Kind::Rate),
    ]
    .into_iter()
    .map(|(name, kind)| {
        create_udaf(
            name,
            vec![DataType::Float64, time_type()],
            Arc::new(DataType::Float64),
            Volatility::Immutable,
            Arc::new(move |_| Ok(Box::new(Samples::new(kind)))),
            Arc::new(vec![list_of(DataType::Int64), list_of(DataType::Float64)]),
        )
    })
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
}
