//! Measures how many bytes each column of the workload takes in Parquet under
//! different encodings, to choose the ones Ingot's flush uses.
//!
//! `cargo run --release -p ingot-bench --example encodings -- [devices] [steps]`
//! (default: 1000 devices x 8640 steps, the `small` preset), rows sorted by
//! (device, time) as a flushed file is.

use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array, Int64Array, RecordBatch, UInt32Array};
use arrow::compute::take;
use arrow::datatypes::{DataType, Field, Schema};
use ingot_bench::Generator;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::file::properties::WriterProperties;
use parquet::file::reader::{FileReader, SerializedFileReader};

fn main() {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let devices = args.first().copied().unwrap_or(1000);
    let steps = args.get(1).copied().unwrap_or(8640);
    let mut g = Generator::with_size(devices, steps);
    let batch = g.next_batch((devices * steps) as usize).expect("rows");
    // Sort by device, then time (rows are time-major).
    let order = UInt32Array::from_iter_values(
        (0..devices).flat_map(|d| (0..steps).map(move |k| (k * devices + d) as u32)),
    );
    let columns: Vec<ArrayRef> = batch
        .columns()
        .iter()
        .map(|c| take(c, &order, None).unwrap())
        .collect();
    let batch = RecordBatch::try_new(batch.schema(), columns).unwrap();
    let rows = batch.num_rows() as f64;
    println!("{devices} devices x {steps} steps = {rows} rows; bytes per value:");
    println!(
        "{:<12} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8}",
        "column", "plain", "dict", "bss", "delta", "dec-dlt", "dict-z9"
    );
    let schema = batch.schema();
    for (i, field) in schema.fields().iter().enumerate().skip(1) {
        let col = batch.column(i).clone();
        let one = |array: ArrayRef, encoding: Option<Encoding>, dict: bool, level: i32| -> f64 {
            let f = Field::new(field.name(), array.data_type().clone(), false);
            let b = RecordBatch::try_new(Arc::new(Schema::new(vec![f])), vec![array]).unwrap();
            let mut props = WriterProperties::builder()
                .set_compression(Compression::ZSTD(ZstdLevel::try_new(level).unwrap()))
                .set_dictionary_enabled(dict)
                .set_max_row_group_row_count(Some(1 << 20));
            if let Some(e) = encoding {
                props = props.set_encoding(e);
            }
            let mut out = Vec::new();
            let mut w = ArrowWriter::try_new(&mut out, b.schema(), Some(props.build())).unwrap();
            w.write(&b).unwrap();
            w.close().unwrap();
            let reader = SerializedFileReader::new(bytes::Bytes::from(out)).unwrap();
            let size: i64 = reader
                .metadata()
                .row_groups()
                .iter()
                .map(|rg| rg.column(0).compressed_size())
                .sum();
            size as f64 / rows
        };
        let na = f64::NAN;
        let (bss, delta, decimal) = match col.data_type() {
            DataType::Float64 => {
                let f = col.as_any().downcast_ref::<Float64Array>().unwrap();
                // The smallest power of ten that makes every value an integer.
                let scale = (0..=6)
                    .map(|e| 10f64.powi(e))
                    .find(|s| f.values().iter().all(|v| ((v * s).round() / s) == *v))
                    .unwrap_or(f64::NAN);
                let ints: ArrayRef = Arc::new(Int64Array::from_iter_values(
                    f.values().iter().map(|v| (v * scale).round() as i64),
                ));
                (
                    one(col.clone(), Some(Encoding::BYTE_STREAM_SPLIT), false, 3),
                    na,
                    one(ints, Some(Encoding::DELTA_BINARY_PACKED), false, 3),
                )
            }
            DataType::Int64 => (
                na,
                one(col.clone(), Some(Encoding::DELTA_BINARY_PACKED), false, 3),
                na,
            ),
            _ => (na, na, na),
        };
        println!(
            "{:<12} {:>8.3} {:>8.3} {:>8.3} {:>8.3} {:>8.3} {:>8.3}",
            field.name(),
            one(col.clone(), Some(Encoding::PLAIN), false, 3),
            one(col.clone(), None, true, 3),
            bss,
            delta,
            decimal,
            one(col.clone(), None, true, 9),
        );
    }
}
