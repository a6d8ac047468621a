//! `COPY (query) TO 'file'` writes a query's answer as Parquet or CSV when
//! the engine is embedded.

use arrow::array::RecordBatch;
use ingot_engine::{Engine, Options, Precision};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

mod common;
use common::{query, runtime};

#[test]
fn copy_to_writes_parquet_and_csv() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path().join("data"), Options::default()).unwrap();
    engine
        .write_lines(
            "public",
            "m,device=a v=1 10\nm,device=b v=2 20\nm,device=a v=3 30\n",
            Precision::Second,
        )
        .unwrap();
    engine.flush().unwrap();
    // A duplicate of (a, 10 s) in the memtable: the export has its answer.
    engine
        .write_lines("public", "m,device=a v=9 10\n", Precision::Second)
        .unwrap();
    let out = dir.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let parquet_path = out.join("m.parquet");
    let csv_path = out.join("m.csv");
    let rt = runtime();
    rt.block_on(async {
        let copied = engine
            .sql(&format!(
                "COPY (SELECT device, v, time FROM m WHERE device = 'a' ORDER BY time) TO '{}' STORED AS PARQUET",
                parquet_path.display()
            ))
            .await
            .unwrap();
        assert_eq!(count_of(&copied), 2);
        engine
            .sql(&format!(
                "COPY (SELECT device, v FROM m ORDER BY time) TO '{}' STORED AS CSV",
                csv_path.display()
            ))
            .await
            .unwrap();
    });

    let file = std::fs::File::open(&parquet_path).unwrap();
    let batches: Vec<RecordBatch> = ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .build()
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let read = arrow::util::pretty::pretty_format_batches(&batches)
        .unwrap()
        .to_string();
    assert_eq!(
        read.trim(),
        "\
+--------+-----+----------------------+
| device | v   | time                 |
+--------+-----+----------------------+
| a      | 9.0 | 1970-01-01T00:00:10Z |
| a      | 3.0 | 1970-01-01T00:00:30Z |
+--------+-----+----------------------+"
    );
    let csv = std::fs::read_to_string(&csv_path).unwrap();
    assert_eq!(csv, "device,v\na,9.0\nb,2.0\na,3.0\n");
    // The engine's own answer agrees.
    assert!(
        query(
            &engine,
            "SELECT v FROM m WHERE device = 'a' AND time = '1970-01-01T00:00:10Z'"
        )
        .contains("9.0")
    );
}

/// The row count a COPY answers with.
fn count_of(batches: &[RecordBatch]) -> u64 {
    let column = batches[0].column(0);
    let column = arrow::compute::cast(column, &arrow::datatypes::DataType::UInt64).unwrap();
    column
        .as_any()
        .downcast_ref::<arrow::array::UInt64Array>()
        .unwrap()
        .value(0)
}
