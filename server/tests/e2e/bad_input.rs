//! Bad input of every kind gets a 4xx / INVALID_ARGUMENT with a useful
//! message, and the server keeps serving with its data intact.

use ingot_proto::v1::column::Values;
use ingot_proto::v1::write_request::Payload;
use ingot_proto::v1::{self, Column, ColumnKind, Rows, WriteRequest};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tonic::Code;

use crate::support::{TestServer, count, http};

fn request(table: &str, payload: Payload) -> WriteRequest {
    WriteRequest {
        table: table.into(),
        payload: Some(payload),
        ..Default::default()
    }
}

fn code(e: &ingot_server::client::ClientError) -> Code {
    match e {
        ingot_server::client::ClientError::Status(s) => s.code(),
        ingot_server::client::ClientError::Flight(arrow_flight::error::FlightError::Tonic(s)) => {
            s.code()
        }
        other => panic!("not a status: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_and_the_server_stays_healthy() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::spawn(dir.path(), &["--max-grpc-message-bytes", "200000"]);
    let mut client = server.client().await;
    let web = http();
    client
        .write(request(
            "",
            Payload::LineProtocol("m,k=a v=1 1\nm,k=b v=2 2\n".into()),
        ))
        .await
        .unwrap();

    // Malformed line protocol, over gRPC and HTTP.
    let e = client
        .write(request(
            "",
            Payload::LineProtocol("m,k=c v=3 3\nm,k=d v=\n".into()),
        ))
        .await
        .unwrap_err();
    assert_eq!(code(&e), Code::InvalidArgument);
    assert!(e.to_string().contains("line 2"), "{e}");
    let r = web
        .post(server.http_url("/write?db=public"))
        .body("m k=1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);

    // Type conflict names the column and both types.
    let e = client
        .write(request(
            "",
            Payload::LineProtocol("m,k=e v=\"text\" 5\n".into()),
        ))
        .await
        .unwrap_err();
    assert_eq!(code(&e), Code::InvalidArgument);
    assert!(e.to_string().contains("\"v\""), "{e}");
    let r = web
        .post(server.http_url("/api/v3/write_lp?db=public"))
        .body("m,k=e v=true 5")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);

    // Garbage Arrow IPC, a missing table, bad rows.
    let e = client
        .write(request(
            "t",
            Payload::ArrowIpc(b"\xff\xff\xff\xffgarbage".to_vec()),
        ))
        .await
        .unwrap_err();
    assert_eq!(code(&e), Code::InvalidArgument, "{e}");
    let e = client
        .write(request("", Payload::ArrowIpc(Vec::new())))
        .await
        .unwrap_err();
    assert_eq!(code(&e), Code::InvalidArgument, "{e}");
    let rows = Rows {
        row_count: 2,
        columns: vec![Column {
            name: "time".into(),
            kind: ColumnKind::Time as i32,
            values: Some(Values::I64(v1::Int64Values { values: vec![1] })),
            validity: vec![],
        }],
    };
    let e = client
        .write(request("t", Payload::Rows(rows)))
        .await
        .unwrap_err();
    assert_eq!(code(&e), Code::InvalidArgument);
    assert!(e.to_string().contains("\"time\""), "{e}");
    let e = client.write(WriteRequest::default()).await.unwrap_err();
    assert_eq!(code(&e), Code::InvalidArgument);

    // Flight SQL ingest with a conflicting type, and with no time column.
    for (name, column) in [("time", "v"), ("when", "v")] {
        let schema = std::sync::Arc::new(arrow::datatypes::Schema::new(vec![
            arrow::datatypes::Field::new(
                name,
                arrow::datatypes::DataType::Timestamp(
                    arrow::datatypes::TimeUnit::Nanosecond,
                    Some("UTC".into()),
                ),
                false,
            ),
            arrow::datatypes::Field::new(column, arrow::datatypes::DataType::Boolean, true),
        ]));
        let batch = arrow::array::RecordBatch::try_new(
            schema,
            vec![
                std::sync::Arc::new(
                    arrow::array::TimestampNanosecondArray::from(vec![9]).with_timezone("UTC"),
                ),
                std::sync::Arc::new(arrow::array::BooleanArray::from(vec![true])),
            ],
        )
        .unwrap();
        let command = arrow_flight::sql::CommandStatementIngest {
            table: "m".into(),
            ..Default::default()
        };
        let e = client
            .flight()
            .execute_ingest(command, futures::stream::iter(vec![Ok(batch)]))
            .await
            .unwrap_err();
        let arrow_flight::error::FlightError::Tonic(status) = &e else {
            panic!("{e:?}");
        };
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    }

    // A message over the gRPC limit.
    let big = "m,k=z v=1 1\n".repeat(30_000);
    let e = client
        .write(request("", Payload::LineProtocol(big)))
        .await
        .unwrap_err();
    assert_eq!(code(&e), Code::OutOfRange, "{e}");

    // Invalid SQL, unknown table, DDL, a 20 000-term expression, an unknown database.
    for sql in [
        "SELEC 1",
        "SELECT * FROM no_such_table",
        "SELECT nope FROM m",
        "CREATE EXTERNAL TABLE x STORED AS CSV LOCATION '/etc/passwd'",
    ] {
        let e = client.query(sql).await.unwrap_err();
        assert_eq!(code(&e), Code::InvalidArgument, "{sql}: {e}");
        let r = web
            .get(server.http_url("/api/v3/query_sql"))
            .query(&[("q", sql)])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{sql}");
        let body: Value = r.json().await.unwrap();
        assert!(
            body["error"].as_str().is_some_and(|m| !m.is_empty()),
            "{body}"
        );
    }
    let deep = format!("SELECT {}", vec!["1"; 20_000].join("+"));
    let e = client.query(&deep).await.unwrap_err();
    assert_eq!(code(&e), Code::InvalidArgument, "{e}");
    let r = web
        .post(server.http_url("/api/v3/query_sql"))
        .json(&json!({ "q": deep }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    // Just under the limits, a deep query runs (the server's threads have
    // stacks large enough for DataFusion's recursion).
    let under = format!("SELECT {}", vec!["1"; 250].join("+"));
    assert_eq!(count(&mut client, &under).await, 250);
    let unions = vec!["SELECT 1"; 5_000].join(" UNION ALL ");
    let joins: String = (1..500).map(|i| format!(" JOIN m a{i} ON true")).collect();
    let casts = format!("SELECT 1{}", "::int".repeat(5_000));
    for sql in [unions, format!("SELECT * FROM m{joins}"), casts] {
        let e = client.query(&sql).await.unwrap_err();
        assert_eq!(code(&e), Code::InvalidArgument, "{e}");
    }
    let parens = format!("SELECT {}1{}", "(".repeat(20_000), ")".repeat(20_000));
    let e = client.query(&parens).await.unwrap_err();
    assert_eq!(code(&e), Code::InvalidArgument, "{e}");
    let r = web
        .get(server.http_url("/api/v3/query_sql"))
        .query(&[("db", "nope"), ("q", "SELECT 1")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = web
        .get(server.http_url("/api/v3/query_sql"))
        .query(&[("q", "SELECT 1"), ("format", "xml")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);

    // Still healthy, and nothing of the rejected writes landed.
    let r = web.get(server.http_url("/health")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(count(&mut client, "SELECT count(*) FROM m").await, 2);
    assert_eq!(count(&mut client, "SELECT sum(v) FROM m").await, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_the_memory_budget_is_resource_exhausted() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::spawn(dir.path(), &["--memtable-budget-bytes", "65536"]);
    let mut client = server.client().await;
    let big: String = (0..5_000)
        .map(|i| format!("mem,k=k{i} v={i} {i}\n"))
        .collect();
    let e = client
        .write(request("", Payload::LineProtocol(big.clone())))
        .await
        .unwrap_err();
    assert_eq!(code(&e), Code::ResourceExhausted, "{e}");
    let r = http()
        .post(server.http_url("/api/v2/write?bucket=public"))
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    // Small writes still go through.
    client
        .write(request("", Payload::LineProtocol("mem,k=a v=1 1\n".into())))
        .await
        .unwrap();
    assert_eq!(count(&mut client, "SELECT count(*) FROM mem").await, 1);
}
