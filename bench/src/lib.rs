//! The plant-telemetry workload of `bench/workload/WORKLOAD.md`, generated in
//! Rust bit for bit as `gen.py` does, streamed as Arrow batches of any size
//! without materialising the data set.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, DictionaryArray, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray,
    TimestampNanosecondArray,
};
use arrow::datatypes::{DataType, Field, Int32Type, Schema, SchemaRef, TimeUnit};

/// 2026-01-01T00:00:00Z.
pub const START_S: i64 = 1_767_225_600;

/// A named size of the workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Preset {
    pub name: &'static str,
    pub devices: u64,
    pub steps: u64,
}

pub const PRESETS: [Preset; 4] = [
    Preset {
        name: "tiny",
        devices: 100,
        steps: 360,
    },
    Preset {
        name: "small",
        devices: 1_000,
        steps: 8_640,
    },
    Preset {
        name: "medium",
        devices: 4_000,
        steps: 8_640,
    },
    Preset {
        name: "billion",
        devices: 10_000,
        steps: 14_400,
    },
];

impl Preset {
    pub fn by_name(name: &str) -> Option<Preset> {
        PRESETS.iter().copied().find(|p| p.name == name)
    }

    pub fn rows(&self) -> u64 {
        self.devices * self.steps
    }

    /// Field values per row.
    pub const FIELDS: u64 = 7;
}

pub fn splitmix64(x: u64) -> u64 {
    let x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let z = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    let z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn rnd(d: u64, k: u64, f: u64) -> u64 {
    splitmix64((d << 32) ^ (k << 4) ^ f)
}

fn sym(d: u64, k: u64, f: u64, half: i64) -> i64 {
    (rnd(d, k, f) % (2 * half as u64 + 1)) as i64 - half
}

fn tri(m: i64, period: i64) -> i64 {
    if m < period / 2 { m } else { period - m }
}

/// Index of device `d`'s model tag.
pub fn model_of(d: u64) -> u64 {
    splitmix64(d ^ 0xAB_CDEF) % 6
}

/// One row of the workload.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Row {
    pub time: i64,
    pub device: u64,
    pub temperature: f64,
    pub pressure: f64,
    pub vibration: f64,
    pub power_kw: f64,
    pub voltage: f64,
    pub rpm: i64,
    pub status: i64,
}

/// The reading of device `d` at step `k`, every value as WORKLOAD.md defines it.
pub fn row(d: u64, k: u64, interval_s: i64) -> Row {
    let (di, ki) = (d as i64, k as i64);
    let idle = ((ki / 360) + di) % 12 == 0;
    let fault = !idle && rnd(d, k, 7).is_multiple_of(2000);
    let status = if idle {
        1
    } else if fault {
        2
    } else {
        0
    };
    let mut t = 4000 + (di % 50) * 20 + tri((ki + 37 * di) % 8640, 8640) / 4 + sym(d, k, 1, 20);
    if idle {
        t -= 1500;
    } else if fault {
        t += 2500;
    }
    let p = 101_300 + tri((ki + 11 * di) % 720, 720) * 5 + sym(d, k, 2, 50);
    let mut v = 800 + (di % 7) * 100 + sym(d, k, 3, 200);
    if idle {
        v /= 10;
    } else if fault {
        v *= 4;
    }
    let mut w = 150 + (di % 30) * 5 + tri((ki + di) % 360, 360) / 4 + sym(d, k, 4, 10);
    if idle {
        w = 5;
    }
    let volt = 3800 + sym(d, k, 5, 40);
    let rpm = if idle {
        0
    } else if fault {
        1450 - (rnd(d, k, 8) % 400) as i64
    } else {
        1450 + sym(d, k, 6, 10)
    };
    Row {
        time: (START_S + ki * interval_s) * 1_000_000_000,
        device: d,
        temperature: t as f64 / 100.0,
        pressure: p as f64 / 100.0,
        vibration: v as f64 / 1000.0,
        power_kw: w as f64 / 10.0,
        voltage: volt as f64 / 10.0,
        rpm,
        status,
    }
}

/// Streams a preset's rows in time-major order as Arrow batches whose tag
/// columns are dictionary arrays sharing one dictionary per tag.
pub struct Generator {
    devices: u64,
    total: u64,
    next: u64,
    interval_s: i64,
    schema: SchemaRef,
    dictionaries: [ArrayRef; 4],
    tag_keys: [Vec<i32>; 4],
}

impl Generator {
    pub fn new(preset: Preset) -> Self {
        Self::with_size(preset.devices, preset.steps)
    }

    pub fn with_size(devices: u64, steps: u64) -> Self {
        let dict = || DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8));
        let schema = Arc::new(Schema::new(vec![
            Field::new(
                "time",
                DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into())),
                false,
            ),
            Field::new("plant", dict(), false),
            Field::new("line", dict(), false),
            Field::new("device_id", dict(), false),
            Field::new("model", dict(), false),
            Field::new("temperature", DataType::Float64, false),
            Field::new("pressure", DataType::Float64, false),
            Field::new("vibration", DataType::Float64, false),
            Field::new("power_kw", DataType::Float64, false),
            Field::new("voltage", DataType::Float64, false),
            Field::new("rpm", DataType::Int64, false),
            Field::new("status", DataType::Int64, false),
        ]));
        let strings = |n: u64, f: &dyn Fn(u64) -> String| -> ArrayRef {
            Arc::new(StringArray::from_iter_values((0..n).map(f)))
        };
        let dictionaries = [
            strings(8, &|i| format!("plant-{i}")),
            strings(16, &|i| format!("line-{i}")),
            strings(devices, &|i| format!("dev-{i:06}")),
            strings(6, &|i| format!("model-{i}")),
        ];
        let ds = 0..devices;
        let tag_keys = [
            ds.clone().map(|d| (d % 8) as i32).collect(),
            ds.clone().map(|d| ((d / 8) % 16) as i32).collect(),
            ds.clone().map(|d| d as i32).collect(),
            ds.map(|d| model_of(d) as i32).collect(),
        ];
        Self {
            devices,
            total: devices * steps,
            next: 0,
            interval_s: 10,
            schema,
            dictionaries,
            tag_keys,
        }
    }

    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// Stops after the first `rows` rows (time-major, as always).
    pub fn limit(mut self, rows: u64) -> Self {
        self.total = self.total.min(rows);
        self
    }

    pub fn rows_left(&self) -> u64 {
        self.total - self.next
    }

    /// The next `rows` rows (fewer at the end), or `None` when done.
    pub fn next_batch(&mut self, rows: usize) -> Option<RecordBatch> {
        let n = (rows as u64).min(self.rows_left()) as usize;
        if n == 0 {
            return None;
        }
        let start = self.next;
        self.next += n as u64;
        let mut time = Vec::with_capacity(n);
        let mut keys: [Vec<i32>; 4] = Default::default();
        let mut f: [Vec<f64>; 5] = Default::default();
        let mut rpm = Vec::with_capacity(n);
        let mut status = Vec::with_capacity(n);
        for i in start..start + n as u64 {
            let (k, d) = (i / self.devices, i % self.devices);
            let r = row(d, k, self.interval_s);
            time.push(r.time);
            for (t, key) in keys.iter_mut().enumerate() {
                key.push(self.tag_keys[t][d as usize]);
            }
            for (col, v) in f.iter_mut().zip([
                r.temperature,
                r.pressure,
                r.vibration,
                r.power_kw,
                r.voltage,
            ]) {
                col.push(v);
            }
            rpm.push(r.rpm);
            status.push(r.status);
        }
        let mut columns: Vec<ArrayRef> = vec![Arc::new(
            TimestampNanosecondArray::from(time).with_timezone("UTC"),
        )];
        for (key, values) in keys.into_iter().zip(&self.dictionaries) {
            let dict = DictionaryArray::<Int32Type>::try_new(Int32Array::from(key), values.clone())
                .expect("keys index the dictionary");
            columns.push(Arc::new(dict));
        }
        for col in f {
            columns.push(Arc::new(Float64Array::from(col)));
        }
        columns.push(Arc::new(Int64Array::from(rpm)));
        columns.push(Arc::new(Int64Array::from(status)));
        Some(RecordBatch::try_new(self.schema.clone(), columns).expect("columns match the schema"))
    }
}

/// The first `lines` rows of a fleet of `devices` (interval 10 s,
/// time-major) as line protocol, one line each, cut into requests of
/// `per_request` lines: what the HTTP ingest sends. For the benches and
/// profiling examples of the line-protocol path.
pub fn line_protocol_requests(devices: u64, lines: u64, per_request: u64) -> Vec<String> {
    (0..lines.div_ceil(per_request))
        .map(|r| {
            (r * per_request..((r + 1) * per_request).min(lines))
                .map(|i| line_protocol(&row(i % devices, i / devices, 10)) + "\n")
                .collect()
        })
        .collect()
}

/// Formats a row as the line `gen.py --format lp` writes.
pub fn line_protocol(r: &Row) -> String {
    let d = r.device;
    format!(
        "readings,plant=plant-{},line=line-{},device_id=dev-{d:06},model=model-{} \
         temperature={:?},pressure={:?},vibration={:?},power_kw={:?},voltage={:?},rpm={}i,status={}i {}",
        d % 8,
        (d / 8) % 16,
        model_of(d),
        r.temperature,
        r.pressure,
        r.vibration,
        r.power_kw,
        r.voltage,
        r.rpm,
        r.status,
        r.time
    )
}

/// The workload's eight queries, q1..q8, as `bench/workload/queries.sql` holds them.
pub const WORKLOAD_QUERIES: &str = include_str!("../workload/queries.sql");

/// The workload's named queries, `(name, sql)` for q1..q8.
pub fn workload_queries() -> Vec<(String, String)> {
    parse_queries(WORKLOAD_QUERIES)
}

/// The named queries of a query file in the form of `bench/workload/queries.sql`:
/// a `-- qN ...` comment line names the query on the next non-comment line.
pub fn parse_queries(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut name = None;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("-- q") {
            name = rest.split_whitespace().next().map(|n| format!("q{n}"));
        } else if !line.trim().is_empty()
            && !line.starts_with("--")
            && let Some(n) = name.take()
        {
            out.push((n, line.trim().to_string()));
        }
    }
    out
}

/// Compares a query's result with the reference rows written by
/// `bench/expected.py` (one JSON array per line; timestamps as nanoseconds).
/// Floats agree to 1e-9 relative; everything else exactly, in order.
pub fn check_result(batches: &[RecordBatch], expected_jsonl: &str) -> Result<(), String> {
    check_rows(&result_rows(batches)?, expected_jsonl)
}

/// [`check_result`] for rows already in [`result_rows`] form.
pub fn check_rows(got: &[Vec<serde_json::Value>], expected_jsonl: &str) -> Result<(), String> {
    let expected: Vec<Vec<serde_json::Value>> = expected_jsonl
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).map_err(|e| format!("bad expected line {l:?}: {e}")))
        .collect::<Result<_, _>>()?;
    same_rows(got, &expected)
}

/// A query's result as rows of JSON values, in the form `check_result`
/// compares: timestamps as nanoseconds, integers as i64, tags as strings.
pub fn result_rows(batches: &[RecordBatch]) -> Result<Vec<Vec<serde_json::Value>>, String> {
    use arrow::array::{Array, AsArray};
    use arrow::compute::cast;
    use arrow::datatypes::{Float64Type, Int64Type, TimestampNanosecondType};
    use serde_json::Value;

    let mut got: Vec<Vec<Value>> = Vec::new();
    for b in batches {
        let mut columns: Vec<Vec<Value>> = Vec::new();
        for c in b.columns() {
            let as_type = |t: DataType| cast(c, &t).map_err(|e| e.to_string());
            let values: Vec<Value> = match c.data_type() {
                DataType::Timestamp(_, _) => {
                    let c = as_type(DataType::Timestamp(TimeUnit::Nanosecond, None))?;
                    json_values(c.as_primitive::<TimestampNanosecondType>())
                }
                DataType::Float64 | DataType::Float32 => {
                    json_values(as_type(DataType::Float64)?.as_primitive::<Float64Type>())
                }
                t if t.is_integer() => {
                    json_values(as_type(DataType::Int64)?.as_primitive::<Int64Type>())
                }
                _ => {
                    let c = as_type(DataType::Utf8)?;
                    let a = c.as_string::<i32>();
                    (0..a.len())
                        .map(|i| {
                            if a.is_null(i) {
                                Value::Null
                            } else {
                                a.value(i).into()
                            }
                        })
                        .collect()
                }
            };
            columns.push(values);
        }
        for r in 0..b.num_rows() {
            got.push(columns.iter().map(|c| c[r].clone()).collect());
        }
    }
    Ok(got)
}

/// Whether two results agree: floats to 1e-9 relative (sums taken in
/// another order differ in the last bits), everything else exactly, in order.
pub fn same_rows(
    got: &[Vec<serde_json::Value>],
    expected: &[Vec<serde_json::Value>],
) -> Result<(), String> {
    if got.len() != expected.len() {
        return Err(format!("{} rows, expected {}", got.len(), expected.len()));
    }
    for (r, (g, e)) in got.iter().zip(expected).enumerate() {
        let same = g.len() == e.len()
            && g.iter()
                .zip(e)
                .all(|(g, e)| match (g.as_f64(), e.as_f64()) {
                    (Some(x), Some(y)) if g.is_f64() || e.is_f64() => {
                        x == y || (x - y).abs() <= 1e-9 * x.abs().max(y.abs())
                    }
                    _ => g == e,
                });
        if !same {
            return Err(format!("row {r}: got {g:?}, expected {e:?}"));
        }
    }
    Ok(())
}

/// The values of a primitive array as JSON, nulls as `null`.
fn json_values<T>(a: &arrow::array::PrimitiveArray<T>) -> Vec<serde_json::Value>
where
    T: arrow::datatypes::ArrowPrimitiveType,
    T::Native: Into<serde_json::Value>,
{
    use arrow::array::Array;
    (0..a.len())
        .map(|i| {
            if a.is_null(i) {
                serde_json::Value::Null
            } else {
                a.value(i).into()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_check_values_of_workload_md() {
        let expected = [
            "readings,plant=plant-0,line=line-0,device_id=dev-000000,model=model-5 temperature=25.07,pressure=1012.93,vibration=0.063,power_kw=0.5,voltage=377.7,rpm=0i,status=1i 1767225600000000000",
            "readings,plant=plant-1,line=line-0,device_id=dev-000001,model=model-3 temperature=40.33,pressure=1013.7,vibration=0.811,power_kw=15.8,voltage=382.8,rpm=1452i,status=0i 1767225600000000000",
            "readings,plant=plant-2,line=line-0,device_id=dev-000002,model=model-1 temperature=40.41,pressure=1014.03,vibration=0.857,power_kw=15.6,voltage=377.0,rpm=1442i,status=0i 1767225600000000000",
        ];
        for (d, line) in expected.iter().enumerate() {
            assert_eq!(line_protocol(&row(d as u64, 0, 10)), *line);
        }
    }

    #[test]
    fn batches_cover_the_preset_in_time_major_order() {
        let mut g = Generator::new(Preset::by_name("tiny").unwrap());
        let mut rows = 0;
        let mut last_time = i64::MIN;
        while let Some(b) = g.next_batch(7_000) {
            let t = b
                .column(0)
                .as_any()
                .downcast_ref::<TimestampNanosecondArray>()
                .unwrap();
            assert!(t.values().windows(2).all(|w| w[0] <= w[1]));
            assert!(t.value(0) >= last_time);
            last_time = t.value(t.len() - 1);
            rows += b.num_rows();
        }
        assert_eq!(rows, 36_000);
    }

    #[test]
    fn check_result_tolerates_only_float_rounding() {
        let mut g = Generator::with_size(2, 1);
        let b = g.next_batch(2).unwrap();
        let b = b.project(&[0, 3, 5, 10]).unwrap(); // time, device_id, temperature, rpm
        let good = "[1767225600000000000, \"dev-000000\", 25.07, 0]\n[1767225600000000000, \"dev-000001\", 40.33000000000001, 1452]\n";
        check_result(std::slice::from_ref(&b), good).unwrap();
        let bad_float = good.replace("25.07", "25.08");
        assert!(check_result(std::slice::from_ref(&b), &bad_float).is_err());
        let bad_int = good.replace("1452", "1453");
        assert!(check_result(std::slice::from_ref(&b), &bad_int).is_err());
        let missing_row = good.lines().next().unwrap();
        assert!(check_result(std::slice::from_ref(&b), missing_row).is_err());
    }

    /// The FNV-1a checksum `bench/gen_checksum.py` computes over gen.py's data.
    fn checksum(preset: Preset) -> u64 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for k in 0..preset.steps {
            for d in 0..preset.devices {
                let r = row(d, k, 10);
                let values = [
                    r.time,
                    r.temperature.to_bits() as i64,
                    r.pressure.to_bits() as i64,
                    r.vibration.to_bits() as i64,
                    r.power_kw.to_bits() as i64,
                    r.voltage.to_bits() as i64,
                    r.rpm,
                    r.status,
                    model_of(d) as i64,
                ];
                for v in values {
                    for byte in v.to_le_bytes() {
                        h = (h ^ byte as u64).wrapping_mul(0x0000_0100_0000_01b3);
                    }
                }
            }
        }
        h
    }

    #[test]
    fn bit_identical_to_gen_py_on_tiny() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/expected/tiny/generator.fnv");
        let expected = std::fs::read_to_string(path).unwrap();
        let expected = u64::from_str_radix(expected.trim(), 16).unwrap();
        assert_eq!(checksum(Preset::by_name("tiny").unwrap()), expected);
    }
}
