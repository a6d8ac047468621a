//! The Ingest service: rows of every type, Arrow IPC, line protocol, streams.

use std::sync::Arc;

use arrow::array::{Float64Array, RecordBatch, StringArray, TimestampNanosecondArray};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use ingot_proto::v1::column::Values;
use ingot_proto::v1::write_request::Payload;
use ingot_proto::v1::{self, Column, ColumnKind, Rows, WriteRequest};
use ingot_server::client::ipc_stream;

use crate::support::{TestServer, count, dedent, table};

fn column(name: &str, kind: ColumnKind, values: Values, validity: Vec<u8>) -> Column {
    Column {
        name: name.into(),
        kind: kind as i32,
        values: Some(values),
        validity,
    }
}

fn request(database: &str, table: &str, payload: Payload) -> WriteRequest {
    WriteRequest {
        database: database.into(),
        table: table.into(),
        payload: Some(payload),
        precision: 0,
    }
}

/// Rows of every column type, with nulls marked in validity bitmaps.
pub fn all_types_rows() -> Rows {
    Rows {
        row_count: 3,
        columns: vec![
            column(
                "time",
                ColumnKind::Time,
                Values::I64(v1::Int64Values {
                    values: vec![1_000, 2_000, 3_000],
                }),
                vec![],
            ),
            column(
                "device",
                ColumnKind::Tag,
                Values::Str(v1::StringValues {
                    values: vec!["d1".into(), "d2".into(), "d3".into()],
                }),
                vec![],
            ),
            column(
                "temp",
                ColumnKind::Field,
                Values::F64(v1::DoubleValues {
                    values: vec![20.5, -1.0, 22.25],
                }),
                vec![0b101],
            ),
            column(
                "count",
                ColumnKind::Field,
                Values::I64(v1::Int64Values {
                    values: vec![-7, 0, 9],
                }),
                vec![0b011],
            ),
            column(
                "bytes",
                ColumnKind::Field,
                Values::U64(v1::UInt64Values {
                    values: vec![u64::MAX, 5, 0],
                }),
                vec![0b111],
            ),
            column(
                "on",
                ColumnKind::Field,
                Values::Bool(v1::BoolValues {
                    values: vec![true, false, true],
                }),
                vec![0b110],
            ),
            column(
                "note",
                ColumnKind::Field,
                Values::Str(v1::StringValues {
                    values: vec!["hi".into(), "".into(), "ünï".into()],
                }),
                vec![0b101],
            ),
        ],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_of_every_type_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::spawn(dir.path(), &[]);
    let mut client = server.client().await;
    let response = client
        .write(request("", "dev", Payload::Rows(all_types_rows())))
        .await
        .unwrap();
    assert_eq!(response.rows, 3);
    // Non-null field values: temp 2, count 2, bytes 3, on 2, note 2.
    assert_eq!(response.points, 11);
    let got = table(
        &mut client,
        "SELECT time, device, temp, count, bytes, on, note FROM dev ORDER BY time",
    )
    .await;
    let lines: Vec<&str> = got.lines().collect();
    assert_eq!(lines.len(), 7, "{got}");
    let cells = |i: usize| {
        let r: Vec<String> = lines[3 + i]
            .trim_matches('|')
            .split('|')
            .map(|c| c.trim().to_string())
            .collect();
        r
    };
    assert_eq!(
        cells(0),
        [
            "1970-01-01T00:00:00.000001Z",
            "d1",
            "20.5",
            "-7",
            "18446744073709551615",
            "",
            "hi"
        ]
    );
    assert_eq!(
        cells(1),
        [
            "1970-01-01T00:00:00.000002Z",
            "d2",
            "",
            "0",
            "5",
            "false",
            ""
        ]
    );
    assert_eq!(
        cells(2),
        [
            "1970-01-01T00:00:00.000003Z",
            "d3",
            "22.25",
            "",
            "0",
            "true",
            "ünï"
        ]
    );
    // Nulls are nulls, not placeholders.
    assert_eq!(count(&mut client, "SELECT count(temp) FROM dev").await, 2);
    assert_eq!(count(&mut client, "SELECT count(note) FROM dev").await, 2);
    assert_eq!(
        count(&mut client, "SELECT count(*) FROM dev WHERE on IS NULL").await,
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn arrow_ipc_and_line_protocol_writes() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::spawn(dir.path(), &[]);
    let mut client = server.client().await;

    // Two batches in one IPC stream are one write.
    let schema = Arc::new(Schema::new(vec![
        Field::new(
            "time",
            DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into())),
            false,
        ),
        Field::new("pump", DataType::Utf8, true),
        Field::new("flow", DataType::Float64, true),
    ]));
    let batch = |t: Vec<i64>, p: Vec<&str>, f: Vec<f64>| {
        RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(TimestampNanosecondArray::from(t).with_timezone("UTC")),
                Arc::new(StringArray::from(p)),
                Arc::new(Float64Array::from(f)),
            ],
        )
        .unwrap()
    };
    let ipc = ipc_stream(&[
        batch(vec![10, 20], vec!["p1", "p1"], vec![1.0, 2.0]),
        batch(vec![30], vec!["p2"], vec![3.5]),
    ])
    .unwrap();
    let r = client
        .write(request("plant", "pumps", Payload::ArrowIpc(ipc)))
        .await
        .unwrap();
    assert_eq!((r.rows, r.points), (3, 3));

    // Line protocol with millisecond precision, into the same database.
    let mut lp = request(
        "plant",
        "",
        Payload::LineProtocol("valves,id=v1 open=true 1500\nvalves,id=v2 open=false 1600\n".into()),
    );
    lp.precision = v1::Precision::Millisecond as i32;
    let r = client.write(lp).await.unwrap();
    assert_eq!((r.rows, r.points), (2, 2));

    assert_eq!(
        table(
            &mut client,
            "SELECT pump, flow, time FROM plant.pumps ORDER BY time"
        )
        .await,
        dedent(
            "
            +------+------+--------------------------------+
            | pump | flow | time                           |
            +------+------+--------------------------------+
            | p1   | 1.0  | 1970-01-01T00:00:00.000000010Z |
            | p1   | 2.0  | 1970-01-01T00:00:00.000000020Z |
            | p2   | 3.5  | 1970-01-01T00:00:00.000000030Z |
            +------+------+--------------------------------+
            "
        )
    );
    assert_eq!(
        table(
            &mut client,
            "SELECT id, open, time FROM plant.valves ORDER BY time"
        )
        .await,
        dedent(
            "
            +----+-------+--------------------------+
            | id | open  | time                     |
            +----+-------+--------------------------+
            | v1 | true  | 1970-01-01T00:00:01.500Z |
            | v2 | false | 1970-01-01T00:00:01.600Z |
            +----+-------+--------------------------+
            "
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_stream_stops_at_a_bad_message_and_keeps_the_earlier_ones() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::spawn(dir.path(), &[]);
    let mut client = server.client().await;
    let messages = vec![
        request("", "", Payload::LineProtocol("m,k=a v=1 1\n".into())),
        request("", "", Payload::LineProtocol("m,k=b v=2 2\n".into())),
        request("", "", Payload::LineProtocol("m,k=c v=\n".into())),
        request("", "", Payload::LineProtocol("m,k=d v=4 4\n".into())),
    ];
    let status = client
        .ingest()
        .write_stream(futures::stream::iter(messages))
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    assert!(
        status.message().contains("message 2"),
        "{}",
        status.message()
    );
    assert!(status.message().contains("line 1"), "{}", status.message());
    assert_eq!(count(&mut client, "SELECT count(*) FROM m").await, 2);

    let ok = vec![
        request("", "", Payload::LineProtocol("m,k=e v=5 5\n".into())),
        request("", "n", Payload::Rows(all_types_rows())),
    ];
    let r = client
        .ingest()
        .write_stream(futures::stream::iter(ok))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((r.rows, r.points), (4, 12));
}
