//! `ingot-bench query --target postgres`: the workload's queries over the
//! PostgreSQL wire protocol, as a driver sends them (tokio-postgres: the
//! extended protocol, binary results), with each row decoded into the form
//! the expected answers are checked in.

use serde_json::Value;
use tokio_postgres::types::Type;
use tokio_postgres::{Client, NoTls, Row};

pub type BoxError = Box<dyn std::error::Error>;

/// Connects to `host:port`, database `public`; the connection is driven by
/// a task of its own.
pub async fn connect(addr: &str) -> Result<Client, BoxError> {
    let (host, port) = addr
        .rsplit_once(':')
        .ok_or_else(|| format!("bad PostgreSQL address {addr:?}"))?;
    let config = format!("host={host} port={port} dbname=public user=bench");
    let (client, connection) = tokio_postgres::connect(&config, NoTls).await?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            eprintln!("PostgreSQL connection ended: {e}");
        }
    });
    Ok(client)
}

/// Runs `sql` and decodes every row: timestamps as nanoseconds, integers
/// as i64, floats as f64, the rest as text (as `result_rows` does).
pub async fn query(client: &Client, sql: &str) -> Result<Vec<Vec<Value>>, BoxError> {
    let rows = client.query(sql, &[]).await?;
    rows.iter().map(decode).collect()
}

fn decode(row: &Row) -> Result<Vec<Value>, BoxError> {
    use chrono::{DateTime, NaiveDateTime, Utc};
    let nanos = |t: Option<i64>| t.map_or(Value::Null, Value::from);
    (0..row.len())
        .map(|i| {
            let ty = row.columns()[i].type_();
            let value = match *ty {
                Type::TIMESTAMPTZ => nanos(
                    row.try_get::<_, Option<DateTime<Utc>>>(i)?
                        .and_then(|t| t.timestamp_nanos_opt()),
                ),
                Type::TIMESTAMP => nanos(
                    row.try_get::<_, Option<NaiveDateTime>>(i)?
                        .and_then(|t| t.and_utc().timestamp_nanos_opt()),
                ),
                Type::INT8 => row.try_get::<_, Option<i64>>(i)?.into(),
                Type::INT4 => row.try_get::<_, Option<i32>>(i)?.map(i64::from).into(),
                Type::INT2 => row.try_get::<_, Option<i16>>(i)?.map(i64::from).into(),
                Type::FLOAT8 => row.try_get::<_, Option<f64>>(i)?.into(),
                Type::FLOAT4 => row.try_get::<_, Option<f32>>(i)?.map(f64::from).into(),
                Type::BOOL => row
                    .try_get::<_, Option<bool>>(i)?
                    .map(|b| b.to_string())
                    .into(),
                Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME => {
                    row.try_get::<_, Option<String>>(i)?.into()
                }
                ref other => return Err(format!("column {i}: type {other} not decoded").into()),
            };
            Ok(value)
        })
        .collect()
}
