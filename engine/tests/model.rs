//! Model test: random sequences of writes (duplicates, out-of-order and late
//! rows, new columns, null fields), deletes, drops of the table, flushes,
//! compactions and reopens, applied both to the
//! engine and to a `BTreeMap` that implements the duplicate rule directly.
//! After every step the engine's answer must equal the model's.

use std::collections::BTreeMap;

use arrow::array::{Array, Float64Array, Int64Array, StringArray, TimestampNanosecondArray};
use arrow::compute::cast;
use arrow::datatypes::DataType;
use ingot_engine::{Engine, Options, Precision};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// (series tag, time) -> (x, y, z)
type Model = BTreeMap<(String, i64), [Option<i64>; 3]>;

const FIELDS: [&str; 3] = ["x", "y", "z"];

fn random_write(rng: &mut StdRng, step: usize, model: &mut Model) -> String {
    let hour = 3_600_000_000_000i64;
    let mut lp = String::new();
    for _ in 0..rng.random_range(1..30) {
        let series = format!("s{}", rng.random_range(0..4));
        // Mostly recent times, sometimes days late, often colliding.
        let time = if rng.random_bool(0.1) {
            rng.random_range(0..5) * 24 * hour + rng.random_range(0..3)
        } else {
            10 * 24 * hour + rng.random_range(0..(20 + step as i64))
        };
        let mut fields = Vec::new();
        let entry = model.entry((series.clone(), time)).or_default();
        for (i, name) in FIELDS.iter().enumerate() {
            // z only appears after a while: schema evolution.
            if (i == 2 && step < 5) || !rng.random_bool(0.6) {
                continue;
            }
            let v: i64 = rng.random_range(-100..100);
            fields.push(match i {
                0 => format!("{name}={v}.25"),
                _ => format!("{name}={v}i"),
            });
            entry[i] = Some(v);
        }
        if fields.is_empty() {
            fields.push("x=0.25".into());
            entry[0] = Some(0);
        }
        lp.push_str(&format!("m,s={series} {} {time}\n", fields.join(",")));
    }
    lp
}

/// A DELETE of one series (or all) over a time range around existing rows,
/// applied to the model too.
fn random_delete(rng: &mut StdRng, model: &mut Model) -> String {
    let keys: Vec<&(String, i64)> = model.keys().collect();
    let (_, a) = keys[rng.random_range(0..keys.len())];
    let (_, b) = keys[rng.random_range(0..keys.len())];
    let (lo, hi) = (*a.min(b), *a.max(b));
    let series = rng
        .random_bool(0.7)
        .then(|| format!("s{}", rng.random_range(0..4)));
    model.retain(|(s, t), _| !(series.as_ref().is_none_or(|x| x == s) && lo <= *t && *t <= hi));
    let ts = |t: i64| {
        chrono::DateTime::from_timestamp_nanos(t)
            .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
    };
    let mut sql = format!(
        "DELETE FROM m WHERE time >= '{}' AND time <= '{}'",
        ts(lo),
        ts(hi)
    );
    if let Some(series) = series {
        sql.push_str(&format!(" AND s = '{series}'"));
    }
    sql
}

fn engine_rows(engine: &Engine, rt: &tokio::runtime::Runtime) -> Model {
    let mut out = Model::new();
    if engine.tables("public").is_empty() {
        return out;
    }
    let cols = engine
        .session()
        .table_provider_sync_names()
        .into_iter()
        .filter(|c| FIELDS.contains(&c.as_str()))
        .collect::<Vec<_>>();
    let select: Vec<String> = FIELDS
        .iter()
        .map(|f| {
            if cols.iter().any(|c| c == f) {
                f.to_string()
            } else {
                format!("NULL AS {f}")
            }
        })
        .collect();
    let sql = format!("SELECT s, time, {} FROM m", select.join(", "));
    for b in rt.block_on(engine.sql(&sql)).unwrap() {
        let s = cast(b.column(0), &DataType::Utf8).unwrap();
        let s = s.as_any().downcast_ref::<StringArray>().unwrap();
        let t = b
            .column(1)
            .as_any()
            .downcast_ref::<TimestampNanosecondArray>()
            .unwrap();
        for row in 0..b.num_rows() {
            let mut values = [None; 3];
            for (i, v) in values.iter_mut().enumerate() {
                let col = b.column(2 + i);
                if col.data_type() == &DataType::Null || col.is_null(row) {
                    continue;
                }
                *v = Some(match col.data_type() {
                    DataType::Float64 => col
                        .as_any()
                        .downcast_ref::<Float64Array>()
                        .unwrap()
                        .value(row)
                        .trunc() as i64,
                    _ => col
                        .as_any()
                        .downcast_ref::<Int64Array>()
                        .unwrap()
                        .value(row),
                });
            }
            let key = (s.value(row).to_string(), t.value(row));
            assert!(
                out.insert(key.clone(), values).is_none(),
                "row {key:?} appears twice"
            );
        }
    }
    out
}

/// Lists a table's columns through the catalog (for columns that may not exist yet).
trait ColumnNames {
    fn table_provider_sync_names(&self) -> Vec<String>;
}

impl ColumnNames for datafusion::prelude::SessionContext {
    fn table_provider_sync_names(&self) -> Vec<String> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let provider = rt.block_on(self.table_provider("m")).unwrap();
        provider
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect()
    }
}

fn run(seed: u64, steps: usize) {
    let mut rng = StdRng::seed_from_u64(seed);
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut engine = Engine::open(dir.path(), Options::default()).unwrap();
    let mut model = Model::new();
    for step in 0..steps {
        match rng.random_range(0..10) {
            0 => engine.flush().unwrap(),
            1 => {
                if rng.random_bool(0.5) {
                    engine.close().unwrap();
                }
                drop(engine);
                engine = Engine::open(dir.path(), Options::default()).unwrap();
            }
            2 => {
                engine.compact().unwrap();
            }
            4 if rng.random_bool(0.25) => {
                rt.block_on(engine.sql("DROP TABLE IF EXISTS m")).unwrap();
                model.clear();
            }
            3 if !model.is_empty() => {
                let sql = random_delete(&mut rng, &mut model);
                rt.block_on(engine.sql(&sql)).unwrap();
            }
            _ => {
                let lp = random_write(&mut rng, step, &mut model);
                engine
                    .write_lines("public", &lp, Precision::Nanosecond)
                    .unwrap();
            }
        }
        let got = engine_rows(&engine, &rt);
        assert_eq!(got, model, "seed {seed}, step {step}");
    }
}

#[test]
fn engine_matches_model() {
    let seeds: u64 = std::env::var("INGOT_MODEL_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(6);
    for seed in 0..seeds {
        run(seed, 40);
    }
}
