//! The PostgreSQL wire protocol with the clients people use: `psql` (Debian
//! `postgresql-client`, installed by `tests/apt.sh`) and psycopg (PyPI,
//! `tests/postgres/run.sh`). The token is the password, the database name
//! picks the Ingot database, `\d` reads `pg_catalog`, errors carry
//! SQLSTATEs, and TLS works where the server has a certificate.
//! Each client is skipped, with the reason printed, where it cannot be
//! installed.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::{Value, json};

use crate::support::{TestServer, apt_installed, http};

const TOKEN: &str = "pg-token";

/// 2026-01-01T00:00:00Z in seconds.
const T0: i64 = 1_767_225_600;

async fn write(server: &TestServer, lines: &str) {
    let response = http()
        .post(server.http_url("/api/v2/write?bucket=plant&precision=s"))
        .bearer_auth(TOKEN)
        .body(lines.to_string())
        .send()
        .await
        .unwrap();
    assert!(
        response.status().is_success(),
        "{:?}",
        response.text().await
    );
}

/// Runs `psql` with `args` on the server's PostgreSQL port.
fn psql(server: &TestServer, database: &str, password: &str, args: &[&str]) -> Output {
    let (host, port) = server
        .pg_addr
        .as_deref()
        .and_then(|a| a.rsplit_once(':'))
        .expect("the server prints its pg address");
    Command::new("psql")
        .args([
            "-h",
            host,
            "-p",
            port,
            "-U",
            "plant_engineer",
            "-d",
            database,
        ])
        .args(["-X", "-v", "ON_ERROR_STOP=1", "-v", "VERBOSITY=verbose"])
        .args(args)
        .env("PGPASSWORD", password)
        .env("PGCONNECT_TIMEOUT", "20")
        .stdin(Stdio::null())
        .output()
        .expect("run psql")
}

fn stdout(output: &Output) -> String {
    assert!(
        output.status.success(),
        "psql failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    assert!(!output.status.success(), "psql should have failed");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn sample() -> String {
    [
        format!("readings,device=d1 temperature=20.5 {T0}"),
        format!("readings,device=d1 temperature=21.5 {}", T0 + 30),
        format!("readings,device=d1 temperature=22.5 {}", T0 + 90),
        format!("readings,device=d2 temperature=19.0 {T0}"),
        format!("readings,device=d2 temperature=23.0 {}", T0 + 61),
    ]
    .join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psql_and_psycopg_run_ingot_sql() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::spawn(dir.path(), &["--token", TOKEN, "--pg-addr", "127.0.0.1:0"]);
    write(&server, &sample()).await;

    let with_psql = apt_installed("psql", "postgresql-client");
    if with_psql {
        check_psql(&server);
    } else {
        println!("skipped psql: postgresql-client is not installed and cannot be installed here");
    }
    // The databases psql and psycopg created are schemas to Grafana.
    let schemas: &[&str] = if with_psql {
        &["archive", "line3", "plant", "public", "system"]
    } else {
        &["archive", "plant", "public", "system"]
    };
    check_psycopg(&server, schemas);

    let metrics = server.metrics(Some(TOKEN)).await;
    for metric in [
        "ingot_pg_connections_total{outcome=\"ok\"}",
        "ingot_pg_connections_total{outcome=\"unauthenticated\"}",
        "ingot_queries_total{protocol=\"postgres\",outcome=\"ok\"}",
        "ingot_queries_total{protocol=\"postgres\",outcome=\"error\"}",
    ] {
        assert!(metrics.contains(metric), "{metric} missing from /metrics");
    }
}

fn check_psql(server: &TestServer) {
    // Rows, unaligned: tags are text, times are timestamptz.
    let out = stdout(&psql(
        server,
        "plant",
        TOKEN,
        &[
            "-A",
            "-t",
            "-F",
            ",",
            "-c",
            "SELECT time, device, temperature FROM readings ORDER BY time, device",
        ],
    ));
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        [
            "2026-01-01 00:00:00.000000+00,d1,20.5",
            "2026-01-01 00:00:00.000000+00,d2,19.0",
            "2026-01-01 00:00:30.000000+00,d1,21.5",
            "2026-01-01 00:01:01.000000+00,d2,23.0",
            "2026-01-01 00:01:30.000000+00,d1,22.5",
        ]
    );

    // psql's \d and \dt read pg_catalog.
    let described = stdout(&psql(server, "plant", TOKEN, &["-c", "\\d readings"]));
    for expected in [
        "Table \"plant.readings\"",
        "timestamp with time zone",
        "device",
        "text",
        "double precision",
    ] {
        assert!(described.contains(expected), "{expected} in {described}");
    }
    let listed = stdout(&psql(server, "plant", TOKEN, &["-c", "\\dt"]));
    assert!(listed.contains("readings"), "{listed}");

    // Ingot's own statements, then the new database by its name.
    let created = stdout(&psql(
        server,
        "plant",
        TOKEN,
        &[
            "-c",
            "CREATE DATABASE line3 WITH (retention_period = '30d')",
        ],
    ));
    assert_eq!(created.trim(), "CREATE DATABASE");
    let one = stdout(&psql(
        server,
        "line3",
        TOKEN,
        &[
            "-A",
            "-t",
            "-c",
            "SELECT current_database(), current_setting('search_path')",
        ],
    ));
    assert_eq!(one.trim(), "line3|line3");

    // Errors with their SQLSTATE.
    let unknown = stderr(&psql(server, "plant", TOKEN, &["-c", "SELECT * FROM nope"]));
    assert!(unknown.contains("42P01"), "{unknown}");
    let syntax = stderr(&psql(server, "plant", TOKEN, &["-c", "SELEC 1"]));
    assert!(syntax.contains("42601"), "{syntax}");
    let external = stderr(&psql(
        server,
        "plant",
        TOKEN,
        &["-c", "CREATE VIEW v AS SELECT 1"],
    ));
    assert!(external.contains("0A000"), "{external}");
    let copy = stderr(&psql(
        server,
        "plant",
        TOKEN,
        &["-c", "COPY readings TO '/tmp/readings.csv'"],
    ));
    assert!(copy.contains("0A000"), "{copy}");

    // The password is the token; the database must exist.
    let refused = stderr(&psql(server, "plant", "wrong", &["-c", "SELECT 1"]));
    assert!(
        refused.contains("password authentication failed"),
        "{refused}"
    );
    let missing = stderr(&psql(server, "nope", TOKEN, &["-c", "SELECT 1"]));
    assert!(
        missing.contains("database \"nope\" does not exist"),
        "{missing}"
    );

    // DELETE answers as PostgreSQL does.
    let deleted = stdout(&psql(
        server,
        "plant",
        TOKEN,
        &[
            "-c",
            "DELETE FROM readings WHERE device = 'd2' AND time > '2026-01-01T00:01:00Z'",
        ],
    ));
    assert_eq!(deleted.trim(), "DELETE 1");
    write_back(server);
}

/// Puts back the row the DELETE took, so psycopg sees the sample.
fn write_back(server: &TestServer) {
    let runtime = tokio::runtime::Handle::current();
    let line = format!("readings,device=d2 temperature=23.0 {}", T0 + 61);
    tokio::task::block_in_place(|| runtime.block_on(write(server, &line)));
}

fn check_psycopg(server: &TestServer, schemas: &[&str]) {
    let (host, port) = server
        .pg_addr
        .as_deref()
        .and_then(|a| a.rsplit_once(':'))
        .unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/postgres/run.sh");
    let output = Command::new("bash")
        .arg(script)
        .args([host, port, TOKEN])
        .stdin(Stdio::null())
        .output()
        .expect("run tests/postgres/run.sh");
    if output.status.code() == Some(77) {
        println!("skipped psycopg: the Python environment cannot be set up here");
        return;
    }
    assert!(
        output.status.success(),
        "psycopg client failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut seen: Value = serde_json::from_slice(&output.stdout).expect("client.py prints JSON");
    let grafana = seen["grafana"]
        .as_object_mut()
        .expect("Grafana's queries ran");
    assert_eq!(grafana.remove("schemas"), Some(json!(schemas)));
    let at = |s: u32| format!("2026-01-01T00:{:02}:{:02}+00:00", s / 60, s % 60);
    assert_eq!(
        seen,
        json!({
            // timestamptz, text, float8
            "types": [1184, 25, 701],
            "d1": [[at(0), "d1", 20.5], [at(30), "d1", 21.5], [at(90), "d1", 22.5]],
            "series": [
                [at(0), "d1", 21.0],
                [at(0), "d2", 19.0],
                [at(60), "d1", 22.5],
                [at(60), "d2", 23.0],
            ],
            "hot": 3,
            "undefined_table": "42P01",
            "undefined_column": "42703",
            "database": "plant",
            "create": "CREATE DATABASE",
            "create_table": "0A000",
            "wrong_password": true,
            "grafana": {
                "version": 1600,
                "timescaledb": [],
                // Tables on the search path (the database) unqualified.
                "tables": [
                    "readings",
                    "system.compactions",
                    "system.databases",
                    "system.files",
                    "system.rollups",
                ],
                "columns": [
                    ["time", "timestamp with time zone"],
                    ["device", "text"],
                    ["temperature", "double precision"],
                ],
            },
            "dbeaver": {
                "schema": ["plant", "postgres"],
                "array_type": [true, "b", "_aclitem", 1034],
                "search_path": "plant",
                "server_version": concat!("16.0 (Ingot ", env!("CARGO_PKG_VERSION"), ")"),
                "version": "PostgreSQL 16.0",
                "database": ["plant"],
                "standard_conforming_strings": "on",
                "tables": ["readings"],
            },
        })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psql_connects_over_tls() {
    if !apt_installed("psql", "postgresql-client") {
        println!("skipped: postgresql-client is not installed and cannot be installed here");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();
    let server = TestServer::spawn(
        &dir.path().join("data"),
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
            "--token",
            TOKEN,
            "--pg-addr",
            "127.0.0.1:0",
        ],
    );
    // psql's default (sslmode=prefer) takes TLS when the server offers it.
    let out = psql(&server, "public", TOKEN, &["-A", "-t", "-c", "SELECT 1"]);
    assert_eq!(stdout(&out).trim(), "1");
    // sslmode=verify-full checks the certificate against the one made here.
    let (host, port) = server.pg_addr.as_deref().unwrap().rsplit_once(':').unwrap();
    let connect = |sslmode: &str| {
        let conninfo = format!(
            "host={host} port={port} dbname=public user=x sslmode={sslmode} sslrootcert={}",
            cert.display()
        );
        Command::new("psql")
            .args([conninfo.as_str(), "-X", "-A", "-t", "-c", "SELECT 41 + 1"])
            .env("PGPASSWORD", TOKEN)
            .env("PGCONNECT_TIMEOUT", "20")
            .stdin(Stdio::null())
            .output()
            .expect("run psql")
    };
    assert_eq!(stdout(&connect("verify-full")).trim(), "42");
    // The token never crosses the network in the clear.
    let refused = stderr(&connect("disable"));
    assert!(refused.contains("TLS"), "{refused}");
}
