//! Flight SQL: statements, prepared statements, catalog commands, ingest.

use std::sync::Arc;

use arrow::array::{
    Array, AsArray, Float64Array, Int64Array, RecordBatch, StringArray, TimestampNanosecondArray,
};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use arrow_flight::sql::{
    CommandGetDbSchemas, CommandGetPrimaryKeys, CommandGetTables, CommandStatementIngest, SqlInfo,
    TableDefinitionOptions, TableExistsOption, TableNotExistOption,
};
use futures::TryStreamExt;
use ingot_server::client::Client;

use crate::support::{TestServer, count, dedent, table};

async fn fetch(client: &mut Client, info: arrow_flight::FlightInfo) -> Vec<RecordBatch> {
    let mut out = Vec::new();
    for endpoint in info.endpoint {
        let ticket = endpoint.ticket.expect("ticket");
        let stream = client.flight().do_get(ticket).await.expect("do_get");
        out.extend(stream.try_collect::<Vec<_>>().await.expect("batches"));
    }
    out
}

fn readings(rows: usize) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new(
            "time",
            DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into())),
            false,
        ),
        Field::new("machine", DataType::Utf8, true),
        Field::new("power", DataType::Float64, true),
        Field::new("cycles", DataType::Int64, true),
    ]));
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(
                TimestampNanosecondArray::from_iter_values((0..rows as i64).map(|i| i * 1_000))
                    .with_timezone("UTC"),
            ),
            Arc::new(StringArray::from_iter_values(
                (0..rows).map(|i| format!("m{}", i % 3)),
            )),
            Arc::new(Float64Array::from_iter_values(
                (0..rows).map(|i| i as f64 / 2.0),
            )),
            Arc::new(Int64Array::from_iter_values((0..rows).map(|i| i as i64))),
        ],
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_statement_prepared_and_catalog_commands() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::spawn(dir.path(), &[]);
    let mut client = server.client().await;

    // Bulk ingest (what ADBC's adbc_ingest sends), in two batches.
    let command = CommandStatementIngest {
        table: "machines".into(),
        schema: Some("factory".into()),
        ..Default::default()
    };
    let batches = vec![Ok(readings(5000)), Ok(readings(10).slice(0, 0))];
    let rows = client
        .flight()
        .execute_ingest(command, futures::stream::iter(batches))
        .await
        .expect("ingest");
    assert_eq!(rows, 5000);

    // ADBC's modes: "create" on an existing table and "append" on a missing
    // one fail.
    for (table, if_not_exist, if_exists, code) in [
        (
            "machines",
            TableNotExistOption::Create,
            TableExistsOption::Fail,
            tonic::Code::AlreadyExists,
        ),
        (
            "nowhere",
            TableNotExistOption::Fail,
            TableExistsOption::Append,
            tonic::Code::NotFound,
        ),
    ] {
        let command = CommandStatementIngest {
            table: table.into(),
            schema: Some("factory".into()),
            table_definition_options: Some(TableDefinitionOptions {
                if_not_exist: if_not_exist as i32,
                if_exists: if_exists as i32,
            }),
            ..Default::default()
        };
        let e = client
            .flight()
            .execute_ingest(command, futures::stream::iter(vec![Ok(readings(3))]))
            .await
            .unwrap_err();
        let arrow_flight::error::FlightError::Tonic(status) = e else {
            panic!("{e:?}");
        };
        assert_eq!(status.code(), code, "{status:?}");
    }

    // Statement query, streamed in batches.
    assert_eq!(
        count(&mut client, "SELECT count(*) FROM factory.machines").await,
        5000
    );
    assert_eq!(
        table(
            &mut client,
            "SELECT machine, sum(cycles) AS c FROM factory.machines GROUP BY machine ORDER BY machine"
        )
        .await,
        dedent(
            "
            +---------+---------+
            | machine | c       |
            +---------+---------+
            | m0      | 4165833 |
            | m1      | 4167500 |
            | m2      | 4164167 |
            +---------+---------+
            "
        )
    );

    // The database header picks the default schema.
    client.set_flight_header("database", "factory");
    assert_eq!(
        count(&mut client, "SELECT count(*) FROM machines").await,
        5000
    );

    // Prepared statement with a $1 parameter.
    let mut prepared = client
        .flight()
        .prepare(
            "SELECT count(*) AS n FROM machines WHERE cycles >= $1".into(),
            None,
        )
        .await
        .expect("prepare");
    let params = RecordBatch::try_new(
        Arc::new(Schema::new(vec![Field::new("$1", DataType::Int64, false)])),
        vec![Arc::new(Int64Array::from(vec![4990]))],
    )
    .unwrap();
    prepared.set_parameters(params).unwrap();
    let info = prepared.execute().await.expect("execute prepared");
    let result = fetch(&mut client, info).await;
    let n = result
        .iter()
        .find(|b| b.num_rows() > 0)
        .expect("row")
        .column(0)
        .as_primitive::<arrow::datatypes::Int64Type>()
        .value(0);
    assert_eq!(n, 10);
    prepared.close().await.expect("close");

    // Catalog commands.
    let info = client.flight().get_catalogs().await.expect("catalogs");
    let catalogs = fetch(&mut client, info).await;
    assert_eq!(catalogs[0].column(0).as_string::<i32>().value(0), "ingot");
    let info = client
        .flight()
        .get_db_schemas(CommandGetDbSchemas::default())
        .await
        .expect("schemas");
    let schemas = fetch(&mut client, info).await;
    let names: Vec<String> = schemas
        .iter()
        .flat_map(|b| {
            let a = b.column(1).as_string::<i32>();
            (0..a.len())
                .map(|i| a.value(i).to_string())
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(names.contains(&"factory".to_string()), "{names:?}");
    assert!(names.contains(&"public".to_string()), "{names:?}");

    let info = client
        .flight()
        .get_tables(CommandGetTables {
            db_schema_filter_pattern: Some("factory".into()),
            include_schema: true,
            ..Default::default()
        })
        .await
        .expect("tables");
    let tables = fetch(&mut client, info).await;
    let batch = tables.iter().find(|b| b.num_rows() > 0).expect("a table");
    assert_eq!(batch.num_rows(), 1);
    assert_eq!(batch.column(2).as_string::<i32>().value(0), "machines");
    let schema_bytes = batch.column(4).as_binary::<i32>().value(0);
    let schema =
        arrow::ipc::convert::try_schema_from_ipc_buffer(schema_bytes).expect("table schema");
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    for expected in ["time", "machine", "power", "cycles"] {
        assert!(names.contains(&expected), "{names:?}");
    }

    // The key of a table: its tags and time.
    let info = client
        .flight()
        .get_primary_keys(CommandGetPrimaryKeys {
            catalog: None,
            db_schema: Some("factory".into()),
            table: "machines".into(),
        })
        .await
        .expect("primary keys");
    let keys = fetch(&mut client, info).await;
    let mut key_columns: Vec<String> = keys
        .iter()
        .flat_map(|b| {
            let a = b.column(3).as_string::<i32>();
            (0..a.len())
                .map(|i| a.value(i).to_string())
                .collect::<Vec<_>>()
        })
        .collect();
    key_columns.sort();
    assert_eq!(key_columns, ["machine", "time"]);

    let info = client
        .flight()
        .get_sql_info(vec![SqlInfo::FlightSqlServerName])
        .await
        .expect("sql info");
    let info = fetch(&mut client, info).await;
    assert_eq!(info.iter().map(|b| b.num_rows()).sum::<usize>(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_results_stream_in_many_batches() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::spawn(dir.path(), &[]);
    let mut client = server.client().await;
    let command = CommandStatementIngest {
        table: "big".into(),
        ..Default::default()
    };
    let batches: Vec<_> = (0..4).map(|_| Ok(readings(50_000))).collect();
    client
        .flight()
        .execute_ingest(command, futures::stream::iter(batches))
        .await
        .expect("ingest");
    // 50 000 distinct (series, time) rows survive deduplication.
    let (_, batches) = client.query("SELECT * FROM big").await.expect("query");
    assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 50_000);
    assert!(batches.len() > 1, "one batch for 50 000 rows");
}
