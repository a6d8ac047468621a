//! A smoke run of `ingot-bench` on the tiny preset: every ingest target and
//! both query targets finish, and every query result is checked against
//! DuckDB's answers (the bench exits non-zero on a mismatch). Timings are
//! not asserted.

use std::path::Path;
use std::process::Command;

/// Runs `ingot-bench` from a directory outside the repository: it needs no
/// file relative to where it is started.
fn bench(args: &[&str]) -> String {
    let cwd = tempfile::tempdir().expect("temporary directory");
    let out = Command::new(env!("CARGO_BIN_EXE_ingot-bench"))
        .args(args)
        .current_dir(cwd.path())
        .output()
        .expect("run ingot-bench");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "ingot-bench {args:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// `ingot serve` is built next to `ingot-bench` by `cargo test --workspace`.
fn server_built() -> bool {
    let exe = Path::new(env!("CARGO_BIN_EXE_ingot-bench"));
    let present = exe.with_file_name("ingot").exists();
    if !present {
        eprintln!(
            "skipping server targets: no `ingot` binary beside ingot-bench (run cargo test --workspace)"
        );
    }
    present
}

#[test]
fn ingest_targets_write_every_point() {
    let mut targets = vec!["embedded"];
    if server_built() {
        targets.extend(["grpc-rows", "grpc-arrow", "flight", "http-lp"]);
    }
    for target in targets {
        let out = bench(&[
            "ingest",
            "--preset",
            "tiny",
            "--target",
            target,
            "--clients",
            "2",
            "--batch-rows",
            "5000",
        ]);
        assert!(
            out.contains("points                  252000"),
            "{target}:\n{out}"
        );
    }
}

#[test]
fn queries_are_checked_embedded_and_over_flight() {
    let mut targets = vec!["embedded"];
    if server_built() {
        targets.push("flight");
    }
    for target in targets {
        let out = bench(&[
            "query", "--preset", "tiny", "--runs", "1", "--target", target,
        ]);
        assert_eq!(out.matches(" checked ").count(), 8, "{target}:\n{out}");
        assert!(!out.contains("UNCHECKED"), "{target}:\n{out}");
    }
}
