//! Prometheus remote write: `POST /api/v1/write`, the snappy-compressed
//! protobuf `WriteRequest` that Prometheus (and Grafana Agent, VictoriaMetrics
//! agents, OpenTelemetry's exporter) send.
//!
//! Each metric becomes a table named after it (the `__name__` label), with
//! `time` (the sample's milliseconds), one tag per other label, and the
//! float field `value`. A label named `time` or `value` is stored as the tag
//! `time_label` or `value_label`. Stale markers (the NaN Prometheus writes
//! when a series disappears) are skipped; exemplars, metadata and native
//! histograms are ignored. A request is written atomically, all tables
//! together, into the database `?db=` names (default `public`).
//!
//! Remote read and PromQL are not offered: samples are queried with SQL,
//! `SELECT time, instance, value FROM up WHERE job = 'ingot'`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Schema};
use ingot_engine::TIME_COLUMN;
use prost::Message;

use crate::convert::{role_field, time_column};
use crate::error::ApiError;

/// `prometheus.WriteRequest` (remote write 1.0): only the fields Ingot reads.
#[derive(Clone, PartialEq, Message)]
pub struct WriteRequest {
    #[prost(message, repeated, tag = "1")]
    pub timeseries: Vec<TimeSeries>,
}

#[derive(Clone, PartialEq, Message)]
pub struct TimeSeries {
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
    #[prost(message, repeated, tag = "2")]
    pub samples: Vec<Sample>,
}

#[derive(Clone, PartialEq, Message)]
pub struct Label {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub value: String,
}

#[derive(Clone, PartialEq, Message)]
pub struct Sample {
    #[prost(double, tag = "1")]
    pub value: f64,
    /// Milliseconds since the epoch.
    #[prost(int64, tag = "2")]
    pub timestamp: i64,
}

/// The bit pattern of Prometheus's stale marker.
const STALE_NAN: u64 = 0x7ff0_0000_0000_0002;

const VALUE: &str = "value";

/// Decodes a request body: snappy (block format), then protobuf. The
/// decompressed size is checked against `max_bytes` before decompressing.
pub fn decode(body: &[u8], max_bytes: usize) -> Result<WriteRequest, ApiError> {
    let len = snap::raw::decompress_len(body).map_err(|e| {
        ApiError::invalid(format!(
            "the body is not snappy-compressed (remote write sends Content-Encoding: snappy): {e}"
        ))
    })?;
    if len > max_bytes {
        return Err(ApiError::PayloadTooLarge(format!(
            "the request decompresses to {len} bytes, over the limit of {max_bytes}"
        )));
    }
    let raw = snap::raw::Decoder::new()
        .decompress_vec(body)
        .map_err(|e| ApiError::invalid(format!("bad snappy data: {e}")))?;
    WriteRequest::decode(raw.as_slice())
        .map_err(|e| ApiError::invalid(format!("not a Prometheus WriteRequest: {e}")))
}

/// The column a label is stored in.
fn tag_name(label: &str) -> String {
    match label {
        TIME_COLUMN | VALUE => format!("{label}_label"),
        other => other.to_string(),
    }
}

/// One series: its labels (by column name) and its samples.
type LabeledSamples<'a> = (BTreeMap<String, &'a str>, &'a [Sample]);

/// One batch per metric: `(table, batch)`, and the samples in them.
pub fn to_batches(request: &WriteRequest) -> Result<(Vec<(String, RecordBatch)>, u64), ApiError> {
    // Series by metric, each with its labels other than the name.
    let mut metrics: BTreeMap<&str, Vec<LabeledSamples>> = BTreeMap::new();
    for series in &request.timeseries {
        let name = series
            .labels
            .iter()
            .find(|l| l.name == "__name__")
            .map(|l| l.value.as_str())
            .ok_or_else(|| ApiError::invalid("a time series has no __name__ label"))?;
        let labels = series
            .labels
            .iter()
            .filter(|l| l.name != "__name__")
            .map(|l| (tag_name(&l.name), l.value.as_str()))
            .collect();
        metrics
            .entry(name)
            .or_default()
            .push((labels, &series.samples));
    }
    let mut batches = Vec::with_capacity(metrics.len());
    let mut samples = 0;
    for (metric, series) in metrics {
        let tags: BTreeSet<&String> = series.iter().flat_map(|(l, _)| l.keys()).collect();
        let mut times = Vec::new();
        let mut values = Vec::new();
        let mut columns: Vec<Vec<Option<&str>>> = vec![Vec::new(); tags.len()];
        for (labels, points) in &series {
            for point in points.iter().filter(|p| p.value.to_bits() != STALE_NAN) {
                times.push(point.timestamp.saturating_mul(1_000_000));
                values.push(point.value);
                for (column, tag) in columns.iter_mut().zip(&tags) {
                    column.push(labels.get(*tag).copied());
                }
            }
        }
        if times.is_empty() {
            continue;
        }
        samples += times.len() as u64;
        let (time_field, time_array) = time_column(times);
        let mut fields = vec![time_field];
        let mut arrays: Vec<ArrayRef> = vec![time_array];
        for (tag, column) in tags.iter().zip(columns) {
            fields.push(role_field(tag.as_str(), DataType::Utf8, "tag"));
            arrays.push(Arc::new(StringArray::from(column)));
        }
        fields.push(role_field(VALUE, DataType::Float64, "field"));
        arrays.push(Arc::new(Float64Array::from(values)));
        let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)
            .map_err(|e| ApiError::Internal(e.to_string()))?;
        batches.push((metric.to_string(), batch));
    }
    Ok((batches, samples))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(labels: &[(&str, &str)], samples: &[(f64, i64)]) -> TimeSeries {
        TimeSeries {
            labels: labels
                .iter()
                .map(|(n, v)| Label {
                    name: n.to_string(),
                    value: v.to_string(),
                })
                .collect(),
            samples: samples
                .iter()
                .map(|(value, timestamp)| Sample {
                    value: *value,
                    timestamp: *timestamp,
                })
                .collect(),
        }
    }

    #[test]
    fn a_table_per_metric_and_a_tag_per_label() {
        let request = WriteRequest {
            timeseries: vec![
                series(
                    &[("__name__", "up"), ("job", "ingot")],
                    &[(1.0, 1000), (0.0, 2000)],
                ),
                series(
                    &[("__name__", "up"), ("job", "node"), ("instance", "a")],
                    &[(1.0, 1000), (f64::from_bits(STALE_NAN), 3000)],
                ),
                series(&[("__name__", "temp_c"), ("value", "x")], &[(21.5, 5)]),
            ],
        };
        let body = snap::raw::Encoder::new()
            .compress_vec(&request.encode_to_vec())
            .unwrap();
        let decoded = decode(&body, 1 << 20).unwrap();
        let (batches, samples) = to_batches(&decoded).unwrap();
        assert_eq!(samples, 4);
        let names: Vec<&str> = batches.iter().map(|(t, _)| t.as_str()).collect();
        assert_eq!(names, ["temp_c", "up"]);
        let up = &batches[1].1;
        let columns: Vec<String> = up
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        assert_eq!(columns, ["time", "instance", "job", "value"]);
        assert_eq!(up.num_rows(), 3);
        let temp = &batches[0].1;
        assert!(temp.schema().field_with_name("value_label").is_ok());
        assert!(decode(b"not snappy at all", 1 << 20).is_err());
        assert!(matches!(
            decode(&body, 8),
            Err(ApiError::PayloadTooLarge(_))
        ));
    }
}
