//! Crash safety: a child process writes numbered batches with WAL sync
//! `always` and reports each acknowledgement; the parent SIGKILLs it at a
//! random moment (often mid-flush, since the child's memtable budget is tiny),
//! reopens the directory and checks that every acknowledged batch is fully
//! present and that no batch is partially present.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use arrow::array::{Array, Int64Array};
use ingot_engine::{Engine, Options, Precision};
use rand::{Rng, SeedableRng};

const ROWS_PER_BATCH: i64 = 40;

fn child_options() -> Options {
    let mut o = Options::default();
    o.memtable_budget_bytes = 512 << 10;
    o.wal_segment_bytes = 64 << 10;
    o
}

/// The writer, run as a child process by `crash_recovery`.
#[test]
#[ignore = "run as a child process by crash_recovery"]
fn crash_child() {
    let Ok(dir) = std::env::var("INGOT_CRASH_DIR") else {
        return;
    };
    let first: i64 = std::env::var("INGOT_CRASH_FIRST").unwrap().parse().unwrap();
    let engine = Engine::open(&dir, child_options()).unwrap();
    let mut out = std::io::stdout().lock();
    for n in first.. {
        let lp: String = (0..ROWS_PER_BATCH)
            .map(|i| {
                format!(
                    "crash,writer=w{} batch={n}i,i={i}i,v={}.5 {}\n",
                    i % 3,
                    n * 10 + i,
                    n * 1000 + i
                )
            })
            .collect();
        engine
            .write_lines("public", &lp, Precision::Millisecond)
            .unwrap();
        writeln!(out, "ack {n}").unwrap();
        out.flush().unwrap();
        if n % 11 == 0 {
            engine.flush().unwrap();
        }
    }
}

fn batch_counts(dir: &std::path::Path) -> BTreeMap<i64, i64> {
    let engine = Engine::open(dir, Options::default()).expect("reopen after crash");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut counts = BTreeMap::new();
    if !engine.tables("public").is_empty() {
        let batches = rt
            .block_on(engine.sql("SELECT batch, count(*) AS n FROM crash GROUP BY batch"))
            .unwrap();
        for b in batches {
            let batch = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
            let n = b.column(1).as_any().downcast_ref::<Int64Array>().unwrap();
            for i in 0..b.num_rows() {
                assert!(batch.is_valid(i));
                counts.insert(batch.value(i), n.value(i));
            }
        }
    }
    engine.close().unwrap();
    counts
}

#[test]
fn crash_recovery() {
    let rounds: usize = std::env::var("INGOT_CRASH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(20);
    let seed: u64 = std::env::var("INGOT_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    eprintln!("crash_recovery: seed {seed} (set INGOT_CRASH_SEED to repeat)");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut acked_total: BTreeSet<i64> = BTreeSet::new();
    // Inodes of retired segments kept for reuse, and of live segments, as
    // each crash left them: one in both was written over after a crash.
    let (mut kept, mut live) = (BTreeSet::new(), BTreeSet::new());
    for round in 0..rounds {
        let first = round as i64 * 1_000_000;
        let mut child = Command::new(&exe)
            .args([
                "crash_child",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("INGOT_CRASH_DIR", dir.path())
            .env("INGOT_CRASH_FIRST", first.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(
                std::fs::File::create(dir.path().join(format!("child-{round}.log"))).unwrap(),
            ))
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(n) = line.strip_prefix("ack ") {
                    let _ = tx.send(n.parse::<i64>().unwrap());
                }
            }
        });
        // Let it get some acknowledged writes in, then kill at a random moment.
        let deadline = Instant::now() + Duration::from_secs(30);
        while rx.recv_timeout(Duration::from_millis(10)).is_err() {
            assert!(Instant::now() < deadline, "child made no progress in 30 s");
            if let Ok(Some(status)) = child.try_wait() {
                let log = std::fs::read_to_string(dir.path().join(format!("child-{round}.log")));
                panic!("child exited early: {status}\n{}", log.unwrap_or_default());
            }
        }
        std::thread::sleep(Duration::from_millis(rng.random_range(0..400)));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        reader.join().unwrap();
        let acked: Vec<i64> = rx.try_iter().collect();
        acked_total.extend(first..=acked.last().copied().unwrap_or(first));
        for entry in std::fs::read_dir(dir.path().join("wal")).unwrap() {
            let path = entry.unwrap().path();
            let inode = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&path).unwrap());
            match path.extension().and_then(|e| e.to_str()) {
                Some("free") => kept.insert(inode),
                Some("wal") => live.insert(inode),
                _ => false,
            };
        }

        let counts = batch_counts(dir.path());
        for (batch, n) in &counts {
            assert_eq!(
                *n, ROWS_PER_BATCH,
                "round {round}: batch {batch} is partially present"
            );
        }
        for batch in &acked_total {
            assert!(
                counts.contains_key(batch),
                "round {round}: acknowledged batch {batch} is missing (seed {seed})"
            );
        }
        eprintln!(
            "round {round}: {} batches acknowledged so far, {} present",
            acked_total.len(),
            counts.len()
        );
    }
    if rounds >= 10 {
        assert!(
            kept.intersection(&live).next().is_some(),
            "no retired segment was reused across {rounds} crashes: {} kept, {} live",
            kept.len(),
            live.len()
        );
    }
}
