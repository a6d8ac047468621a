//! The engine keeps what it acknowledged across restarts, whatever state the
//! data was in: only in the WAL, only in Parquet, or both.

use arrow::util::pretty::pretty_format_batches;
use ingot_engine::{Engine, Error, Options, Precision};

fn open(dir: &std::path::Path) -> Engine {
    Engine::open(dir, Options::default()).expect("open")
}

fn query(engine: &Engine, sql: &str) -> String {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let batches = rt.block_on(engine.sql(sql)).expect("query");
    pretty_format_batches(&batches).unwrap().to_string()
}

fn write(engine: &Engine, lp: &str) {
    engine
        .write_lines("public", lp, Precision::Second)
        .expect("write");
}

const ALL: &str = "SELECT * FROM m ORDER BY s, time";

#[test]
fn wal_only() {
    let dir = tempfile::tempdir().unwrap();
    let e = open(dir.path());
    write(&e, "m,s=a x=1 1\nm,s=b x=2 2");
    let before = query(&e, ALL);
    drop(e); // no flush, no close: the rows live only in the WAL
    assert!(std::fs::read_dir(dir.path().join("tables/public")).is_err());
    let e = open(dir.path());
    assert_eq!(query(&e, ALL), before);
    assert!(before.contains("| a | 1.0 |"), "{before}");
}

#[test]
fn parquet_only_retires_the_wal() {
    let dir = tempfile::tempdir().unwrap();
    let e = open(dir.path());
    write(&e, "m,s=a x=1 1\nm,s=b x=2 2");
    let before = query(&e, ALL);
    e.close().unwrap();
    assert!(matches!(e.flush(), Err(Error::Closed)));
    let e = open(dir.path());
    assert_eq!(e.files().len(), 1);
    assert_eq!(e.memtable_bytes(), 0, "nothing should be replayed");
    assert_eq!(query(&e, ALL), before);
}

#[test]
fn mixed_wal_and_parquet() {
    let dir = tempfile::tempdir().unwrap();
    let e = open(dir.path());
    write(&e, "m,s=a x=1 1");
    e.flush().unwrap();
    write(&e, "m,s=a x=2 2");
    drop(e);
    let e = open(dir.path());
    let out = query(&e, "SELECT s, x FROM m ORDER BY time");
    assert_eq!(
        out,
        "+---+-----+\n| s | x   |\n+---+-----+\n| a | 1.0 |\n| a | 2.0 |\n+---+-----+"
    );
}

#[test]
fn schema_evolution_reads_nulls_for_older_rows() {
    let dir = tempfile::tempdir().unwrap();
    let e = open(dir.path());
    write(&e, "m,s=a x=1 1");
    e.flush().unwrap();
    write(&e, "m,s=a,zone=z1 x=2,y=5i,ok=true,note=\"hi\" 2");
    drop(e);
    let e = open(dir.path());
    let out = query(
        &e,
        "SELECT time, s, zone, x, y, ok, note FROM m ORDER BY time",
    );
    let expected = "\
+----------------------+---+------+-----+---+------+------+
| time                 | s | zone | x   | y | ok   | note |
+----------------------+---+------+-----+---+------+------+
| 1970-01-01T00:00:01Z | a |      | 1.0 |   |      |      |
| 1970-01-01T00:00:02Z | a | z1   | 2.0 | 5 | true | hi   |
+----------------------+---+------+-----+---+------+------+";
    assert_eq!(out, expected);
    // The type of y is now fixed.
    let err = e
        .write_lines("public", "m y=1.5 3", Precision::Second)
        .unwrap_err();
    assert!(err.is_invalid_input());
    let msg = err.to_string();
    assert!(
        msg.contains("\"m\"")
            && msg.contains("\"y\"")
            && msg.contains("integer")
            && msg.contains("float"),
        "{msg}"
    );
}

#[test]
fn duplicates_and_late_data_across_files_and_memtable() {
    let dir = tempfile::tempdir().unwrap();
    let e = open(dir.path());
    let day = 86_400;
    write(
        &e,
        &format!("m,s=a x=1,y=1i {}\nm,s=a x=1 {}", 10 * day, 10 * day + 1),
    );
    e.flush().unwrap();
    // Same (series, time) again: x replaced, y kept (the later write leaves it null).
    write(&e, &format!("m,s=a x=2 {}", 10 * day));
    // Days-late data for a partition that already has a file, and an older one.
    write(
        &e,
        &format!("m,s=a x=7 {}\nm,s=b x=8 {}", 10 * day + 1, 3 * day),
    );
    let expect = "\
+----------------------+---+-----+---+
| time                 | s | x   | y |
+----------------------+---+-----+---+
| 1970-01-11T00:00:00Z | a | 2.0 | 1 |
| 1970-01-11T00:00:01Z | a | 7.0 |   |
| 1970-01-04T00:00:00Z | b | 8.0 |   |
+----------------------+---+-----+---+";
    let sql = "SELECT time, s, x, y FROM m ORDER BY s, time";
    assert_eq!(query(&e, sql), expect);
    drop(e);
    let e = open(dir.path());
    assert_eq!(query(&e, sql), expect);
    e.flush().unwrap();
    assert_eq!(query(&e, sql), expect);
    assert_eq!(
        query(&e, "SELECT count(*) AS n FROM m"),
        "+---+\n| n |\n+---+\n| 3 |\n+---+"
    );
}

#[test]
fn a_locked_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let e = open(dir.path());
    let err = Engine::open(dir.path(), Options::default()).unwrap_err();
    assert!(matches!(err, Error::Locked { .. }), "{err}");
    assert!(
        err.to_string()
            .contains(&format!("pid {}", std::process::id())),
        "{err}"
    );
    e.close().unwrap();
    open(dir.path()).close().unwrap();
}

#[test]
fn a_rejected_request_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let e = open(dir.path());
    write(&e, "m,s=a x=1 1");
    let err = e
        .write_lines(
            "public",
            "m,s=a x=2 2\nm,s=a x=3 3\nm,s=a x= 4\n",
            Precision::Second,
        )
        .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("line 3"), "{msg}");
    // A type conflict against the stored schema, after a line that adds a new table.
    let err = e
        .write_lines("public", "other v=1 1\nm x=1i 5", Precision::Second)
        .unwrap_err();
    assert!(err.is_invalid_input(), "{err}");
    assert_eq!(e.tables("public"), ["m"]);
    assert_eq!(
        query(&e, "SELECT count(*) AS n FROM m"),
        "+---+\n| n |\n+---+\n| 1 |\n+---+"
    );
}

#[test]
fn orphan_files_from_an_interrupted_flush_are_removed() {
    let dir = tempfile::tempdir().unwrap();
    let e = open(dir.path());
    write(&e, "m,s=a x=1 1");
    e.close().unwrap();
    let part = dir.path().join("tables/public/m/day=1970-01-01");
    let orphan = part.join("00000000000000000099.parquet");
    std::fs::write(&orphan, b"half a file").unwrap();
    let e = open(dir.path());
    assert!(!orphan.exists());
    assert_eq!(
        query(&e, "SELECT count(*) AS n FROM m"),
        "+---+\n| n |\n+---+\n| 1 |\n+---+"
    );
}

#[test]
fn unknown_tables_and_columns_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let e = open(dir.path());
    write(&e, "m,s=a x=1 1");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let err = rt
        .block_on(e.sql("SELECT * FROM nope"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("nope"), "{err}");
    let err = rt
        .block_on(e.sql("SELECT bogus FROM m"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("bogus"), "{err}");
}

#[test]
fn floats_come_back_bit_for_bit_from_files() {
    use arrow::array::{Array, Float64Array};
    let dir = tempfile::tempdir().unwrap();
    let e = open(dir.path());
    // Decimal-looking readings (stored as decimals) and values that are not
    // exact decimals (stored as floats), with nulls.
    let decimals: [f64; 6] = [25.07, 1012.93, 0.063, -377.7, 1e-9, 123456.789];
    let floats = [0.1 + 0.2, std::f64::consts::PI, -0.0, 1e300, 5e-324, 2.5];
    let lp: String = decimals
        .iter()
        .zip(floats)
        .enumerate()
        .map(|(i, (d, f))| {
            let n = if i == 2 {
                String::new()
            } else {
                format!(",n={d:?}")
            };
            format!("m,s=a d={d:?},f={f:?}{n} {i}\n")
        })
        .collect();
    write(&e, &lp);
    e.flush().unwrap();
    drop(e);
    let e = open(dir.path());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let batches = rt
        .block_on(e.sql("SELECT d, f, n FROM m ORDER BY time"))
        .unwrap();
    let b = arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap();
    let col = |i: usize| {
        b.column(i)
            .as_any()
            .downcast_ref::<Float64Array>()
            .unwrap()
            .clone()
    };
    let (d, f, n) = (col(0), col(1), col(2));
    for i in 0..decimals.len() {
        assert_eq!(d.value(i).to_bits(), decimals[i].to_bits(), "d row {i}");
        assert_eq!(f.value(i).to_bits(), floats[i].to_bits(), "f row {i}");
        if i == 2 {
            assert!(n.is_null(i));
        } else {
            assert_eq!(n.value(i).to_bits(), decimals[i].to_bits(), "n row {i}");
        }
    }
    // The decimal form really is what the file holds.
    let file = dir.path().join(&e.files()[0].path);
    let reader =
        parquet::file::reader::SerializedFileReader::new(std::fs::File::open(file).unwrap())
            .unwrap();
    use parquet::file::reader::FileReader;
    let schema = reader.metadata().file_metadata().schema_descr_ptr();
    let d_col = schema
        .columns()
        .iter()
        .find(|c| c.name() == "d")
        .unwrap()
        .clone();
    assert_eq!(d_col.physical_type(), parquet::basic::Type::INT64);
    let f_col = schema
        .columns()
        .iter()
        .find(|c| c.name() == "f")
        .unwrap()
        .clone();
    assert_eq!(f_col.physical_type(), parquet::basic::Type::DOUBLE);
}

#[test]
fn replaying_the_wal_charges_the_memtable_what_writing_did() {
    // Four requests of 10 000 rows, 8 fields each: about 3 MiB in memory,
    // under half of an 8 MiB budget, so nothing is flushed.
    let mut options = Options::default();
    options.memtable_budget_bytes = 8 << 20;
    options.compaction = false;
    let dir = tempfile::tempdir().unwrap();
    let e = Engine::open(dir.path(), options.clone()).unwrap();
    for r in 0..4 {
        let lp: String = (0..10_000)
            .map(|i| {
                let t = r * 10_000 + i;
                format!(
                    "m,s=s{},zone=z{} a={t}.5,b={t}.25,c=1.5,d=2.5,e=3.5,f=4.5,g=5.5,h={t}i {t}\n",
                    t % 50,
                    t % 3
                )
            })
            .collect();
        write(&e, &lp);
    }
    let written = e.stats().memtable_bytes;
    assert_eq!(e.stats().flushes, 0);
    let before = query(&e, "SELECT count(*), sum(h) FROM m");
    drop(e); // a crash: the rows live only in the WAL
    let e = Engine::open(dir.path(), options).unwrap();
    // The replayed records are held as decoded, slices of one buffer per
    // record; charged once, they fit as they did, and nothing is flushed.
    assert_eq!(e.stats().flushes, 0, "replay flushed");
    assert!(e.files().is_empty());
    let replayed = e.stats().memtable_bytes;
    assert!(
        replayed <= written * 2,
        "written {written} bytes, replayed {replayed}"
    );
    assert_eq!(query(&e, "SELECT count(*), sum(h) FROM m"), before);
}
