//! The HTTP API: InfluxDB writes (v1, v2, v3, gzip), errors, query formats,
//! health and metrics.

use std::io::Write;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{TestServer, http};

fn gzip(text: &str) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(text.as_bytes()).unwrap();
    encoder.finish().unwrap()
}

async fn query_json(server: &TestServer, db: &str, sql: &str) -> Value {
    let response = http()
        .get(server.http_url("/api/v3/query_sql"))
        .query(&[("db", db), ("q", sql), ("format", "json")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

/// Writes line protocol with second timestamps to `db` over
/// `/api/v3/write_lp`; asserts the 204.
async fn write_seconds(server: &TestServer, db: &str, lines: &str) {
    let response = http()
        .post(server.http_url(&format!("/api/v3/write_lp?db={db}&precision=second")))
        .body(lines.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn influx_writes_and_sql_queries() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::spawn(dir.path(), &["--max-body-bytes", "100000"]);
    let client = http();

    // v2 with bucket, ns; v1 with u precision; v3 with ms; v2 gzip with s.
    let writes = [
        (
            "/api/v2/write?bucket=site&org=x&precision=ns",
            "hvac,unit=a temp=20.5 1700000000000000001".to_string(),
            false,
        ),
        (
            "/write?db=site&precision=u",
            "hvac,unit=b temp=21.5 1700000000000001".to_string(),
            false,
        ),
        (
            "/api/v3/write_lp?db=site&precision=ms",
            "hvac,unit=c temp=22.5,on=true 1700000000002".to_string(),
            false,
        ),
        (
            "/api/v2/write?bucket=site&precision=s",
            "hvac,unit=d temp=23.5,label=\"x y\" 1700000003".to_string(),
            true,
        ),
    ];
    for (path, body, gz) in writes {
        let mut request = client.post(server.http_url(path));
        request = if gz {
            request.header("Content-Encoding", "gzip").body(gzip(&body))
        } else {
            request.body(body)
        };
        let response = request.send().await.unwrap();
        assert_eq!(
            response.status(),
            StatusCode::NO_CONTENT,
            "{path}: {:?}",
            response.text().await
        );
    }

    let rows = query_json(
        &server,
        "site",
        "SELECT unit, temp, time FROM hvac ORDER BY unit",
    )
    .await;
    assert_eq!(
        rows,
        json!([
            {"unit": "a", "temp": 20.5, "time": "2023-11-14T22:13:20.000000001Z"},
            {"unit": "b", "temp": 21.5, "time": "2023-11-14T22:13:20.000001000Z"},
            {"unit": "c", "temp": 22.5, "time": "2023-11-14T22:13:20.002000000Z"},
            {"unit": "d", "temp": 23.5, "time": "2023-11-14T22:13:23.000000000Z"},
        ])
    );

    // Bad line protocol: 400 with the line number, and nothing of it written.
    let response = client
        .post(server.http_url("/api/v2/write?bucket=site"))
        .body("hvac,unit=e temp=1 1\nhvac,unit=f temp= 2\n")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["line"], 2, "{body}");
    assert!(body["error"].as_str().unwrap().contains("line 2"), "{body}");
    let n = query_json(&server, "site", "SELECT count(*) AS n FROM hvac").await;
    assert_eq!(n, json!([{"n": 4}]));

    // A type conflict is a line-protocol error on every write endpoint: 400
    // with the line that conflicts, with the table (`temp` is a float) or with
    // an earlier line of the same body, and nothing of the body written.
    let conflicts = [
        "hvac,unit=e temp=1 1\nhvac,unit=f temp=2i 2\n",
        "hvac,unit=e temp=1 1\nhvac,unit=f x=1 2\nhvac,unit=g x=\"on\" 3\n",
    ];
    let expected_lines = [2, 3];
    for path in [
        "/write?db=site",
        "/api/v2/write?bucket=site",
        "/api/v3/write_lp?db=site",
    ] {
        for (body, line) in conflicts.iter().zip(expected_lines) {
            let response = client
                .post(server.http_url(path))
                .body(*body)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{path}");
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["line"], line, "{path}: {body}");
            let error = body["error"].as_str().unwrap();
            assert!(error.contains("type conflict"), "{path}: {body}");
            assert!(error.contains(&format!("line {line}")), "{path}: {body}");
        }
    }
    let response = client
        .post(server.http_url("/api/v2/write?bucket=site"))
        .body("hvac,unit=f temp=true 2\n")
        .send()
        .await
        .unwrap();
    let body: Value = response.json().await.unwrap();
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("on line 1: column \"temp\" is a float field, the write has a boolean field"),
        "{body}"
    );
    let n = query_json(&server, "site", "SELECT count(*) AS n FROM hvac").await;
    assert_eq!(n, json!([{"n": 4}]));

    // Over the body limit: 413, plain or gzip-compressed. (The server closes
    // a connection whose body it did not read, so each gets its own client.)
    let big = format!("hvac,unit=z temp=1 {}\n", 1).repeat(10_000);
    let response = http()
        .post(server.http_url("/api/v2/write?bucket=site"))
        .body(big.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let response = http()
        .post(server.http_url("/api/v2/write?bucket=site"))
        .header("Content-Encoding", "gzip")
        .body(gzip(&big))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);

    // Query formats.
    let sql = "SELECT unit, temp FROM hvac WHERE unit IN ('a', 'b') ORDER BY unit";
    let get = |format: &'static str| {
        client
            .get(server.http_url("/api/v3/query_sql"))
            .query(&[("db", "site"), ("q", sql), ("format", format)])
            .send()
    };
    let jsonl = get("jsonl").await.unwrap().text().await.unwrap();
    assert_eq!(
        jsonl,
        "{\"unit\":\"a\",\"temp\":20.5}\n{\"unit\":\"b\",\"temp\":21.5}\n"
    );
    let csv = get("csv").await.unwrap().text().await.unwrap();
    assert_eq!(csv, "unit,temp\na,20.5\nb,21.5\n");
    let parquet = get("parquet").await.unwrap().bytes().await.unwrap();
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(parquet)
        .unwrap()
        .build()
        .unwrap();
    let rows: usize = reader.map(|b| b.unwrap().num_rows()).sum();
    assert_eq!(rows, 2);

    // Empty results are well-formed.
    let empty = |format: &'static str| {
        client
            .get(server.http_url("/api/v3/query_sql"))
            .query(&[
                ("db", "site"),
                ("q", "SELECT unit FROM hvac WHERE temp > 100"),
                ("format", format),
            ])
            .send()
    };
    assert_eq!(empty("json").await.unwrap().text().await.unwrap(), "[]");
    assert_eq!(empty("csv").await.unwrap().text().await.unwrap(), "unit\n");

    // POST with a JSON body.
    let response = client
        .post(server.http_url("/api/v3/query_sql"))
        .json(&json!({"db": "site", "q": "SELECT count(*) AS n FROM hvac", "format": "json"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.json::<Value>().await.unwrap(), json!([{"n": 4}]));

    // Health and metrics.
    let response = client.get(server.http_url("/health")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let health: Value = response.json().await.unwrap();
    assert_eq!(health["status"], "pass");
    let response = client.get(server.http_url("/ping")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let metrics = server.metrics(None).await;
    for name in [
        "ingot_rows_written_total{protocol=\"http_v2\"} 2",
        "ingot_bytes_written_total",
        "ingot_wal_fsyncs_total",
        "ingot_wal_fsync_seconds_total",
        "ingot_memtable_bytes",
        "ingot_flushes_total",
        "ingot_files",
        "ingot_queries_total",
        "ingot_query_duration_seconds_bucket",
    ] {
        assert!(metrics.contains(name), "{name} missing from\n{metrics}");
    }
}

/// Retention through the server: the `--retention-period` default for new
/// databases, InfluxDB 3's `/api/v3/configure/database`, `ALTER DATABASE` over
/// `/api/v3/query_sql`, a write past the horizon answered 400 with its line,
/// and the period kept across a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_is_set_and_enforced_over_http() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = TestServer::spawn(dir.path(), &["--retention-period", "30d"]);
    let client = http();
    let configure = server.http_url("/api/v3/configure/database");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let day = 86_400;

    let response = client
        .post(&configure)
        .json(&json!({"db": "plant", "retention_period": "90d"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let created: Value = response.json().await.unwrap();
    assert_eq!(created, json!({"db": "plant", "retention_period": "90d"}));
    let again = client
        .post(&configure)
        .json(&json!({"db": "plant"}))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::CONFLICT);
    let listed: Value = client
        .get(&configure)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        listed
            .as_array()
            .unwrap()
            .contains(&json!({"db": "public", "retention_period": "30d"})),
        "the flag's period: {listed}"
    );

    let write = |db: &'static str, body: String| {
        let url = server.http_url(&format!("/api/v3/write_lp?db={db}&precision=second"));
        let client = client.clone();
        async move { client.post(url).body(body).send().await.unwrap() }
    };
    let body = format!(
        "m,device=a v=1 {}\nm,device=a v=2 {}\n",
        now - 10 * day,
        now - 60 * day
    );
    let response = write("plant", body.clone()).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let response = write("public", body).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["line"], 2, "{error}");
    assert!(
        error["error"]
            .as_str()
            .unwrap()
            .contains("retention period of 30d"),
        "{error}"
    );

    // ALTER DATABASE over the SQL endpoint hides the 60-day-old row at once.
    assert_eq!(
        query_json(&server, "plant", "SELECT count(*) AS n FROM m").await,
        json!([{"n": 2}])
    );
    query_json(
        &server,
        "plant",
        "ALTER DATABASE plant SET retention_period = '30d'",
    )
    .await;
    assert_eq!(
        query_json(&server, "plant", "SELECT count(*) AS n FROM m").await,
        json!([{"n": 1}])
    );
    let response = client
        .put(&configure)
        .json(&json!({"db": "nowhere", "retention_period": "1d"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let response = client
        .put(&configure)
        .json(&json!({"db": "plant", "retention_period": "soon"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);

    server.terminate();
    let server = TestServer::spawn(dir.path(), &[]);
    let listed: Value = client
        .get(server.http_url("/api/v3/configure/database"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        listed
            .as_array()
            .unwrap()
            .contains(&json!({"db": "plant", "retention_period": "30d"})),
        "{listed}"
    );
    assert_eq!(
        query_json(&server, "plant", "SELECT count(*) AS n FROM m").await,
        json!([{"n": 1}])
    );
    let metrics = server.metrics(None).await;
    assert!(metrics.contains("ingot_expired_rows_total"), "{metrics}");
    // One file per day partition; the expired one may already be gone.
    assert!(
        metrics.contains(r#"ingot_table_files{database="plant",table="m"} "#),
        "{metrics}"
    );
}

/// `DELETE` over `/api/v3/query_sql` and Flight SQL's `ExecuteUpdate`: each
/// answers the rows it removed, and a delete on a field is a 400 that
/// deletes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletes_over_http_and_flight_sql() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::spawn(dir.path(), &[]);
    let client = http();
    write_seconds(
        &server,
        "plant",
        "m,device=a v=1 10\nm,device=a v=2 20\nm,device=b v=3 10\nm,device=c v=4 10\n",
    )
    .await;

    assert_eq!(
        query_json(
            &server,
            "plant",
            "DELETE FROM m WHERE device = 'a' AND time > '1970-01-01T00:00:15Z'"
        )
        .await,
        json!([{"count": 1}])
    );
    let response = client
        .get(server.http_url("/api/v3/query_sql"))
        .query(&[("db", "plant"), ("q", "DELETE FROM m WHERE v > 1")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let error: Value = response.json().await.unwrap();
    assert!(
        error["error"]
            .as_str()
            .unwrap()
            .contains("DELETE takes only tag and time predicates"),
        "{error}"
    );

    let mut flight = server.client().await;
    flight.set_flight_header(ingot_server::DATABASE_HEADER, "plant");
    assert_eq!(
        flight
            .execute_update("DELETE FROM m WHERE device IN ('b', 'c')")
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        query_json(&server, "plant", "SELECT device, v FROM m").await,
        json!([{"device": "a", "v": 1.0}])
    );

    // What was deleted, and the files each table has, are in /metrics.
    assert_eq!(
        query_json(&server, "plant", "SELECT count(*) AS n FROM system.files").await,
        json!([{"n": 0}])
    );
    write_seconds(&server, "plant", "m,device=a v=5 30\n").await;
    let metrics = server.metrics(None).await;
    assert!(metrics.contains("ingot_deleted_rows_total 3"), "{metrics}");
    assert!(
        metrics.contains("# TYPE ingot_table_files gauge"),
        "{metrics}"
    );
}

/// `DROP TABLE` over Flight SQL (in the session's database) and over
/// `/api/v3/query_sql`, and InfluxDB 3's `DELETE /api/v3/configure/table`
/// and `/database`: each drop is gone from queries at once, a missing name is
/// a 404, and the default database is not dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drops_over_http_and_flight_sql() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::spawn(dir.path(), &[]);
    let client = http();
    write_seconds(
        &server,
        "plant",
        "m,device=a v=1 10\nk,device=a v=2 20\nj,device=a v=3 10\nh,device=a v=4 10\n",
    )
    .await;
    let tables = "SELECT table_name FROM information_schema.tables \
                  WHERE table_schema = 'plant' ORDER BY table_name";

    let mut flight = server.client().await;
    flight.set_flight_header(ingot_server::DATABASE_HEADER, "plant");
    assert_eq!(flight.execute_update("DROP TABLE m").await.unwrap(), 0);
    assert_eq!(
        query_json(&server, "plant", "DROP TABLE IF EXISTS plant.k").await,
        json!([])
    );
    let response = client
        .delete(server.http_url("/api/v3/configure/table?db=plant&table=j"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        query_json(&server, "plant", tables).await,
        json!([{"table_name": "h"}])
    );
    let response = client
        .delete(server.http_url("/api/v3/configure/table?db=plant&table=j"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);

    let response = client
        .delete(server.http_url("/api/v3/configure/database?db=plant"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let databases: Value = client
        .get(server.http_url("/api/v3/configure/database"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        databases,
        json!([{"db": "public", "retention_period": "none"}])
    );
    for (url, status) in [
        ("/api/v3/configure/database?db=plant", StatusCode::NOT_FOUND),
        (
            "/api/v3/configure/database?db=public",
            StatusCode::BAD_REQUEST,
        ),
        ("/api/v3/configure/database", StatusCode::BAD_REQUEST),
    ] {
        let response = client.delete(server.http_url(url)).send().await.unwrap();
        assert_eq!(response.status(), status, "{url}");
    }
}
