//! Damaged WAL files, made by the engine itself and then cut or corrupted.

use ingot_engine::{Engine, Error, Options, Precision};

fn segment(dir: &std::path::Path) -> std::path::PathBuf {
    let mut segs: Vec<_> = std::fs::read_dir(dir.join("wal"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| std::fs::metadata(p).unwrap().len() > 20)
        .collect();
    segs.sort();
    assert_eq!(segs.len(), 1, "expected one segment with records: {segs:?}");
    segs.pop().unwrap()
}

fn write_three(dir: &std::path::Path) {
    let e = Engine::open(dir, Options::default()).unwrap();
    for i in 1..=3 {
        e.write_lines("public", &format!("m,s=a v={i} {i}"), Precision::Second)
            .unwrap();
    }
    drop(e); // the rows live only in the WAL
}

fn count(e: &Engine) -> String {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let b = rt.block_on(e.sql("SELECT count(*) AS n FROM m")).unwrap();
    arrow::util::pretty::pretty_format_batches(&b)
        .unwrap()
        .to_string()
}

#[test]
fn a_torn_tail_loses_only_the_unfinished_record() {
    let dir = tempfile::tempdir().unwrap();
    write_three(dir.path());
    let seg = segment(dir.path());
    let len = std::fs::metadata(&seg).unwrap().len();
    let f = std::fs::OpenOptions::new().write(true).open(&seg).unwrap();
    f.set_len(len - 7).unwrap();
    let e = Engine::open(dir.path(), Options::default()).unwrap();
    assert_eq!(count(&e), "+---+\n| n |\n+---+\n| 2 |\n+---+");
    // Writing on and reopening again is clean.
    e.write_lines("public", "m,s=a v=9 9", Precision::Second)
        .unwrap();
    drop(e);
    let e = Engine::open(dir.path(), Options::default()).unwrap();
    assert_eq!(count(&e), "+---+\n| n |\n+---+\n| 3 |\n+---+");
}

#[test]
fn a_corrupted_record_before_the_tail_stops_the_open_with_file_and_offset() {
    let dir = tempfile::tempdir().unwrap();
    write_three(dir.path());
    let seg = segment(dir.path());
    let mut bytes = std::fs::read(&seg).unwrap();
    // Header (20 bytes), then the first record's frame (8) and sequence (8).
    bytes[40] ^= 0x5a;
    std::fs::write(&seg, &bytes).unwrap();
    let err = Engine::open(dir.path(), Options::default()).unwrap_err();
    assert!(
        matches!(err, Error::WalCorrupted { offset: 20, .. }),
        "{err}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains(&seg.display().to_string()) && msg.contains("offset 20"),
        "{msg}"
    );
    // The damaged file is left as it was for a person to inspect.
    assert_eq!(std::fs::read(&seg).unwrap(), bytes);
}
