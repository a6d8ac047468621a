//! Time-series SQL over the wire: local-time binning and gap filling give
//! the same answers over HTTP and Flight SQL as embedded, zoned timestamps
//! included.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{TestServer, dedent, http, table};

/// Energy on line 3 around Europe/Berlin's spring clock change.
const ENERGY: &str = "energy,line=l3 kwh=1i 1711837800
energy,line=l3 kwh=2i 1711841400
energy,line=l3 kwh=4i 1711920600
energy,line=l3 kwh=8i 1711924200
";

const LOCAL_DAYS: &str = "SELECT date_bin(INTERVAL '1 day', time AT TIME ZONE 'Europe/Berlin') AS day, \
     sum(kwh) AS kwh FROM energy GROUP BY day ORDER BY day";

const FILLED_DAYS: &str = "SELECT date_bin_gapfill(INTERVAL '1 day', time AT TIME ZONE 'Europe/Berlin') AS day, \
     locf(sum(kwh)) AS kwh FROM energy \
     WHERE time >= '2024-03-29T23:00:00Z' AND time < '2024-04-02T22:00:00Z' \
     GROUP BY day ORDER BY day";

async fn get(server: &TestServer, sql: &str, format: &str) -> reqwest::Response {
    let response = http()
        .get(server.http_url("/api/v3/query_sql"))
        .query(&[("db", "plant"), ("q", sql), ("format", format)])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK, "{sql}");
    response
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_days_and_gap_fill_over_http_and_flight_sql() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::spawn(dir.path(), &[]);
    let response = http()
        .post(server.http_url("/api/v3/write_lp?db=plant&precision=second"))
        .body(ENERGY)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);

    // Berlin days start at local midnight, the 31st is 23 hours long.
    let days: Value = get(&server, LOCAL_DAYS, "json").await.json().await.unwrap();
    assert_eq!(
        days,
        json!([
            {"day": "2024-03-30T00:00:00.000000000+01:00", "kwh": 1},
            {"day": "2024-03-31T00:00:00.000000000+01:00", "kwh": 6},
            {"day": "2024-04-01T00:00:00.000000000+02:00", "kwh": 8},
        ])
    );
    let csv = get(&server, FILLED_DAYS, "csv").await.text().await.unwrap();
    assert_eq!(
        csv.trim(),
        "day,kwh\n\
         2024-03-30T00:00:00.000000000+01:00,1\n\
         2024-03-31T00:00:00.000000000+01:00,6\n\
         2024-04-01T00:00:00.000000000+02:00,8\n\
         2024-04-02T00:00:00.000000000+02:00,8"
    );

    let mut flight = server.client().await;
    flight.set_flight_header(ingot_server::DATABASE_HEADER, "plant");
    let expected = dedent(
        "+---------------------------+-----+
         | day                       | kwh |
         +---------------------------+-----+
         | 2024-03-30T00:00:00+01:00 | 1   |
         | 2024-03-31T00:00:00+01:00 | 6   |
         | 2024-04-01T00:00:00+02:00 | 8   |
         | 2024-04-02T00:00:00+02:00 | 8   |
         +---------------------------+-----+",
    );
    assert_eq!(dedent(&table(&mut flight, FILLED_DAYS).await), expected);
    // The zone travels with the column's type.
    let batches = crate::support::query(&mut flight, LOCAL_DAYS).await;
    assert_eq!(
        batches[0].schema().field(0).data_type(),
        &arrow::datatypes::DataType::Timestamp(
            arrow::datatypes::TimeUnit::Nanosecond,
            Some("Europe/Berlin".into())
        )
    );
}

/// A rollup made and read over the wire: created with `/api/v3/query_sql`,
/// listed in `system.rollups`, read over Flight SQL, refused as a write
/// target, dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollups_over_http_and_flight_sql() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::spawn(dir.path(), &[]);
    let post = |body: &'static str, path: &'static str| {
        let url = server.http_url(path);
        async move { http().post(url).body(body).send().await.unwrap() }
    };
    let response = post(ENERGY, "/api/v3/write_lp?db=plant&precision=second").await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let create = "CREATE MATERIALIZED VIEW energy_1d AS \
                  SELECT date_bin(INTERVAL '1 day', time AT TIME ZONE 'Europe/Berlin') AS time, line, \
                  sum(kwh) AS kwh FROM energy GROUP BY 1, line";
    let response = http()
        .get(server.http_url("/api/v3/query_sql"))
        .query(&[("db", "plant"), ("q", create)])
        .send()
        .await
        .unwrap();
    // A rollup bins the time column itself: the zone goes in the query of it.
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let create = "CREATE MATERIALIZED VIEW energy_1h AS \
                  SELECT date_bin(INTERVAL '1 hour', time) AS time, line, sum(kwh) AS kwh \
                  FROM energy GROUP BY 1, line";
    get(&server, create, "json").await;
    let listed: Value = get(&server, "SELECT name, source FROM system.rollups", "json")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        listed,
        json!([{"name": "energy_1h", "source": "plant.energy"}])
    );

    let mut flight = server.client().await;
    flight.set_flight_header(ingot_server::DATABASE_HEADER, "plant");
    let expected = dedent(
        "+----------------------+------+-----+
         | time                 | line | kwh |
         +----------------------+------+-----+
         | 2024-03-30T22:00:00Z | l3   | 1   |
         | 2024-03-30T23:00:00Z | l3   | 2   |
         | 2024-03-31T21:00:00Z | l3   | 4   |
         | 2024-03-31T22:00:00Z | l3   | 8   |
         +----------------------+------+-----+",
    );
    assert_eq!(
        dedent(
            &table(
                &mut flight,
                "SELECT time, line, kwh FROM energy_1h ORDER BY time"
            )
            .await
        ),
        expected
    );
    let response = post(
        "energy_1h,line=l3 kwh=1i 0",
        "/api/v3/write_lp?db=plant&precision=second",
    )
    .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(response.text().await.unwrap().contains("materialized view"));
    get(&server, "DROP MATERIALIZED VIEW energy_1h", "json").await;
    let listed: Value = get(&server, "SELECT count(*) AS n FROM system.rollups", "json")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed, json!([{"n": 0}]));
}
