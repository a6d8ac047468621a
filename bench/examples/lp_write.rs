//! Times `Engine::write_lines` on workload line protocol, requests of
//! 10 000 lines as the HTTP ingest sends them: parse only, then parse and
//! write with the WAL off. For profiling the line-protocol write path.
//!
//! `cargo run --release -p ingot-bench --example lp_write -- [steps]`

use std::time::Instant;

use ingot_bench::line_protocol_requests;
use ingot_engine::line_protocol::{ParsedLine, lines, parse_line};
use ingot_engine::{Engine, Options, Precision, WalSync};

fn main() {
    let steps: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1080);
    let devices = 1000;
    let lines_total = devices * steps;
    let requests = line_protocol_requests(devices, lines_total, 10_000);
    let started = Instant::now();
    let mut line = ParsedLine::default();
    for text in &requests {
        for (n, l) in lines(text) {
            parse_line(l, n, &mut line).expect("valid");
        }
    }
    let parse = started.elapsed();
    let dir = tempfile::tempdir().expect("temp dir");
    let mut options = Options::default();
    options.wal_sync = WalSync::None;
    options.memtable_budget_bytes = 8 << 30;
    let engine = Engine::open(dir.path(), options).expect("open");
    let started = Instant::now();
    for text in &requests {
        engine
            .write_lines("public", text, Precision::Nanosecond)
            .expect("write");
    }
    let write = started.elapsed();
    println!(
        "{lines_total} lines: parse {:.3} s ({:.0} ns a line), write_lines {:.3} s ({:.0} ns a line)",
        parse.as_secs_f64(),
        parse.as_nanos() as f64 / lines_total as f64,
        write.as_secs_f64(),
        write.as_nanos() as f64 / lines_total as f64
    );
}
