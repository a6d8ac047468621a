//! MQTT ingestion: `ingot serve --mqtt-url mqtt://broker:1883 --mqtt-topic
//! 'plant/#'` subscribes with QoS 1 and writes each message it receives.
//!
//! - **Payloads**: line protocol (nanosecond times), or JSON when the payload
//!   starts with `{` or `[`: an object, or an array of objects, each one
//!   row. In an object, `time` is the row's time (nanoseconds as an integer,
//!   or an RFC 3339 string; the time of arrival when absent), `tags` an
//!   object of tag values, and every other key a field: numbers as floats,
//!   booleans, strings. The table, and more tags, come from the topic
//!   through `--mqtt-json-topic`, a pattern of the topic's levels in which
//!   `{table}` names the table level and `{name}` a tag level, as in
//!   `plant/{line}/{device}/{table}`; without one the table is the topic's
//!   last level.
//! - **Atomic and durable**: a message is one write request; it is
//!   acknowledged to the broker (QoS 1 PUBACK) only once the write is
//!   durable, so a crash loses no message: the broker sends it again.
//! - **Persistent session**: a stable client id (`--mqtt-client-id`,
//!   default `ingot`) and a session the broker keeps, so messages published
//!   while Ingot is down arrive when it is back.
//! - **Bad payloads** are counted (`ingot_mqtt_messages_total{outcome=
//!   "invalid"}`), logged with their topic, and acknowledged, so that the
//!   next message is read; a write that fails on Ingot's side (a full disk)
//!   is not acknowledged, and the broker sends it again after a reconnect.
//! - **Reconnects** with backoff, from 100 ms doubling to 30 s.
//! - **Size**: a message may be as large as an HTTP request body
//!   (`--max-body-bytes`); a larger one breaks the connection each time the
//!   broker sends it, so set the broker's limit (Mosquitto's
//!   `message_size_limit`) no higher.

use std::collections::BTreeMap;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{ArrayRef, BooleanArray, Float64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use ingot_engine::{Engine, Precision, TIME_COLUMN, WriteSummary};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, Publish, QoS};
use serde_json::Value;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tracing::{info, warn};

use crate::convert::{role_field, time_column};
use crate::error::ApiError;
use crate::metrics::Metrics;

/// What `ingot serve` subscribes to.
#[derive(Debug, Clone)]
pub struct MqttConfig {
    /// `mqtt://host:port` (or `tcp://`; port 1883 when left out).
    pub url: String,
    /// Topic filters, each subscribed with QoS 1.
    pub topics: Vec<String>,
    pub client_id: String,
    /// The database messages are written to.
    pub database: String,
    /// Where JSON messages' table and tags are in their topic.
    pub json_topic: Option<String>,
    /// Largest message accepted (the server's largest request body).
    pub max_message_bytes: usize,
}

const BACKOFF_START: Duration = Duration::from_millis(100);
/// Received messages that may wait for the writer, by count and by bytes.
const QUEUE_MESSAGES: usize = 64;
const QUEUE_BYTES: usize = 256 << 20;
/// How soon the writer tries again to hand over acknowledgements that did
/// not fit in the client's request queue.
const ACK_RETRY: Duration = Duration::from_millis(2);
const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// What acknowledging `message` needs (its packet id), without its payload.
fn acknowledgement(message: &Publish) -> Publish {
    let mut ack = Publish::new("", message.qos, Vec::<u8>::new());
    ack.pkid = message.pkid;
    ack
}

/// Host and port of an `mqtt://` URL.
fn broker(url: &str) -> Result<(String, u16), String> {
    let rest = url
        .strip_prefix("mqtt://")
        .or_else(|| url.strip_prefix("tcp://"))
        .ok_or_else(|| format!("--mqtt-url {url:?}: expected mqtt://host:port"))?;
    let rest = rest.trim_end_matches('/');
    match rest.rsplit_once(':') {
        Some((host, port)) => Ok((
            host.to_string(),
            port.parse()
                .map_err(|_| format!("--mqtt-url {url:?}: {port:?} is not a port"))?,
        )),
        None => Ok((rest.to_string(), 1883)),
    }
}

/// Checks the configuration before the server starts.
pub fn check(config: &MqttConfig) -> Result<(), String> {
    broker(&config.url)?;
    if config.topics.is_empty() {
        return Err("--mqtt-url needs at least one --mqtt-topic".into());
    }
    if let Some(pattern) = &config.json_topic
        && !pattern.split('/').any(|l| l == "{table}")
    {
        return Err(format!(
            "--mqtt-json-topic {pattern:?} has no {{table}} level to name the table"
        ));
    }
    Ok(())
}

/// Receives messages until `stopped` turns true.
pub async fn run(
    config: MqttConfig,
    engine: Engine,
    metrics: Arc<Metrics>,
    mut stopped: watch::Receiver<bool>,
) {
    let Ok((host, port)) = broker(&config.url) else {
        return;
    };
    let mut options = MqttOptions::new(config.client_id.clone(), host, port);
    options
        .set_keep_alive(Duration::from_secs(30))
        .set_clean_session(false)
        .set_manual_acks(true)
        // rumqttc's default is 10 KiB: a gateway's batch of readings is more.
        .set_max_packet_size(config.max_message_bytes, config.max_message_bytes);
    // Messages are written, and acknowledged in the order they came, by a
    // task of their own. Between the event loop and the writer wait at most
    // QUEUE_MESSAGES messages and QUEUE_BYTES bytes: when they are full the
    // event loop stops reading, and the broker holds the rest. An
    // acknowledgement goes out through the event loop, so the writer never
    // waits for room in the client's request queue (the event loop may be
    // waiting for the writer): it keeps the acknowledgements that do not fit
    // yet, a few bytes each, and tries again.
    let (client, mut events) = AsyncClient::new(options, 4 * QUEUE_MESSAGES);
    let (received, mut to_write) =
        tokio::sync::mpsc::channel::<(Publish, OwnedSemaphorePermit)>(QUEUE_MESSAGES);
    let budget = Arc::new(Semaphore::new(QUEUE_BYTES));
    let writer = tokio::spawn({
        let (client, config, engine, metrics) = (
            client.clone(),
            config.clone(),
            engine.clone(),
            metrics.clone(),
        );
        async move {
            let mut unacked: VecDeque<Publish> = VecDeque::new();
            loop {
                while let Some(ack) = unacked.front() {
                    if client.try_ack(ack).is_err() {
                        break;
                    }
                    unacked.pop_front();
                }
                tokio::select! {
                    next = to_write.recv() => {
                        // Closed: the event loop has stopped, and what is
                        // not acknowledged comes again at the next start.
                        let Some((message, permit)) = next else { break };
                        let written = handle(&config, &engine, &metrics, &message).await;
                        drop(permit);
                        if written {
                            unacked.push_back(acknowledgement(&message));
                        }
                    }
                    _ = tokio::time::sleep(ACK_RETRY), if !unacked.is_empty() => {}
                }
            }
        }
    });
    let mut backoff = BACKOFF_START;
    loop {
        let event = tokio::select! {
            event = events.poll() => event,
            _ = stopped.changed() => break,
        };
        match event {
            Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                backoff = BACKOFF_START;
                info!(url = %config.url, session_present = ack.session_present, "MQTT connected");
                if !ack.session_present {
                    // From a task: the request queue may be full of
                    // acknowledgements that only this loop sends.
                    let (client, topics) = (client.clone(), config.topics.clone());
                    tokio::spawn(async move {
                        for topic in topics {
                            if let Err(e) = client.subscribe(topic.clone(), QoS::AtLeastOnce).await
                            {
                                warn!(topic, error = %e, "MQTT subscribe failed");
                            }
                        }
                    });
                }
            }
            Ok(Event::Incoming(Packet::Publish(message))) => {
                let bytes = message.payload.len().clamp(1, QUEUE_BYTES) as u32;
                let Ok(permit) = budget.clone().acquire_many_owned(bytes).await else {
                    break;
                };
                if received.send((message, permit)).await.is_err() {
                    break;
                }
            }
            Ok(_) => {}
            Err(e) => {
                metrics.mqtt("disconnected");
                warn!(url = %config.url, error = %e, retry_in = ?backoff, "MQTT connection lost");
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = stopped.changed() => break,
                }
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
        }
    }
    // The messages already received are written; those not yet acknowledged
    // come again at the next start.
    drop(received);
    let _ = writer.await;
    let _ = client.disconnect().await;
}

/// Writes one message; returns whether to acknowledge it.
async fn handle(
    config: &MqttConfig,
    engine: &Engine,
    metrics: &Metrics,
    message: &Publish,
) -> bool {
    let bytes = message.payload.len() as u64;
    let decoded = decode(config, &message.topic, &message.payload);
    let result: Result<WriteSummary, ApiError> = match decoded {
        Ok(write) => {
            let engine = engine.clone();
            let database = config.database.clone();
            crate::grpc::blocking(move || match write {
                Decoded::Lines(text) => engine.write_lines(&database, &text, Precision::Nanosecond),
                Decoded::Batch(table, batch) => engine.write_batch(&database, &table, &batch),
            })
            .await
        }
        Err(e) => Err(e),
    };
    metrics.write("mqtt", &result, bytes);
    match result {
        Ok(_) => {
            metrics.mqtt("ok");
            true
        }
        Err(e) if e.is_client_error() => {
            metrics.mqtt("invalid");
            warn!(topic = %message.topic, error = %e, "MQTT message refused; acknowledged and dropped");
            true
        }
        Err(e) => {
            metrics.mqtt("error");
            warn!(topic = %message.topic, error = %e, "MQTT message not written; the broker will send it again");
            false
        }
    }
}

/// A message as a write.
enum Decoded {
    Lines(String),
    Batch(String, RecordBatch),
}

fn decode(config: &MqttConfig, topic: &str, payload: &[u8]) -> Result<Decoded, ApiError> {
    let text = std::str::from_utf8(payload)
        .map_err(|e| ApiError::invalid(format!("the payload is not UTF-8: {e}")))?;
    let trimmed = text.trim_start();
    if trimmed.starts_with('{') || trimmed.starts_with('[') {
        let (table, topic_tags) = from_topic(config.json_topic.as_deref(), topic)?;
        let value: Value = serde_json::from_str(text)
            .map_err(|e| ApiError::invalid(format!("the payload is not JSON: {e}")))?;
        let rows = match value {
            Value::Array(rows) => rows,
            row => vec![row],
        };
        Ok(Decoded::Batch(table, json_rows(&rows, &topic_tags)?))
    } else {
        Ok(Decoded::Lines(text.to_string()))
    }
}

/// The table and the tags a topic names, by `pattern`.
fn from_topic(
    pattern: Option<&str>,
    topic: &str,
) -> Result<(String, Vec<(String, String)>), ApiError> {
    let levels: Vec<&str> = topic.split('/').collect();
    let Some(pattern) = pattern else {
        let table = levels.last().copied().unwrap_or_default();
        return Ok((table.to_string(), Vec::new()));
    };
    let parts: Vec<&str> = pattern.split('/').collect();
    if parts.len() != levels.len() {
        return Err(ApiError::invalid(format!(
            "topic {topic:?} does not have the levels of --mqtt-json-topic {pattern:?}"
        )));
    }
    let mut table = None;
    let mut tags = Vec::new();
    for (part, level) in parts.iter().zip(&levels) {
        match part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
            Some("table") => table = Some(level.to_string()),
            Some(tag) => tags.push((tag.to_string(), level.to_string())),
            None if part == level || *part == "+" => {}
            None => {
                return Err(ApiError::invalid(format!(
                    "topic {topic:?} does not match --mqtt-json-topic {pattern:?}"
                )));
            }
        }
    }
    Ok((table.unwrap_or_default(), tags))
}

/// A column being built from JSON rows.
enum Column {
    Tag(Vec<Option<String>>),
    Float(Vec<Option<f64>>),
    Bool(Vec<Option<bool>>),
    Text(Vec<Option<String>>),
}

impl Column {
    fn len(&self) -> usize {
        match self {
            Column::Tag(v) | Column::Text(v) => v.len(),
            Column::Float(v) => v.len(),
            Column::Bool(v) => v.len(),
        }
    }

    fn pad(&mut self, to: usize) {
        match self {
            Column::Tag(v) | Column::Text(v) => v.resize(to, None),
            Column::Float(v) => v.resize(to, None),
            Column::Bool(v) => v.resize(to, None),
        }
    }
}

/// Rows of JSON objects as one batch.
fn json_rows(rows: &[Value], topic_tags: &[(String, String)]) -> Result<RecordBatch, ApiError> {
    let now = chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0);
    let mut times = Vec::with_capacity(rows.len());
    let mut columns: BTreeMap<String, Column> = BTreeMap::new();
    for (i, row) in rows.iter().enumerate() {
        let Value::Object(object) = row else {
            return Err(ApiError::invalid(format!(
                "row {i} of the payload is not a JSON object"
            )));
        };
        let mut set = |name: &str, value: Column| -> Result<(), ApiError> {
            let column = columns
                .entry(name.to_string())
                .or_insert_with(|| match value {
                    Column::Tag(_) => Column::Tag(Vec::new()),
                    Column::Float(_) => Column::Float(Vec::new()),
                    Column::Bool(_) => Column::Bool(Vec::new()),
                    Column::Text(_) => Column::Text(Vec::new()),
                });
            column.pad(i);
            match (column, value) {
                (Column::Tag(c), Column::Tag(v)) | (Column::Text(c), Column::Text(v)) => {
                    c.extend(v)
                }
                (Column::Float(c), Column::Float(v)) => c.extend(v),
                (Column::Bool(c), Column::Bool(v)) => c.extend(v),
                _ => {
                    return Err(ApiError::invalid(format!(
                        "{name:?} changes type between the rows of one payload"
                    )));
                }
            }
            Ok(())
        };
        for (tag, value) in topic_tags {
            set(tag, Column::Tag(vec![Some(value.clone())]))?;
        }
        let mut time = now;
        for (key, value) in object {
            match (key.as_str(), value) {
                (TIME_COLUMN, Value::Number(n)) => {
                    time = n.as_i64().ok_or_else(|| {
                        ApiError::invalid(format!("row {i}: time {n} is not integer nanoseconds"))
                    })?;
                }
                (TIME_COLUMN, Value::String(s)) => {
                    time = chrono::DateTime::parse_from_rfc3339(s)
                        .ok()
                        .and_then(|t| t.timestamp_nanos_opt())
                        .ok_or_else(|| {
                            ApiError::invalid(format!("row {i}: time {s:?} is not RFC 3339"))
                        })?;
                }
                ("tags", Value::Object(tags)) => {
                    for (tag, value) in tags {
                        let value = match value {
                            Value::String(s) => s.clone(),
                            Value::Null => continue,
                            other => other.to_string(),
                        };
                        set(tag, Column::Tag(vec![Some(value)]))?;
                    }
                }
                (_, Value::Number(n)) => set(key, Column::Float(vec![n.as_f64()]))?,
                (_, Value::Bool(b)) => set(key, Column::Bool(vec![Some(*b)]))?,
                (_, Value::String(s)) => set(key, Column::Text(vec![Some(s.clone())]))?,
                (_, Value::Null) => {}
                (_, other) => {
                    return Err(ApiError::invalid(format!(
                        "row {i}: {key:?} is {other}; a field is a number, a boolean or a string"
                    )));
                }
            }
        }
        times.push(time);
    }
    let (time_field, time_array) = time_column(times);
    let mut fields = vec![time_field];
    let mut arrays: Vec<ArrayRef> = vec![time_array];
    for (name, mut column) in columns {
        column.pad(rows.len());
        debug_assert_eq!(column.len(), rows.len());
        let (field, array): (Field, ArrayRef) = match column {
            Column::Tag(v) => (
                role_field(&name, DataType::Utf8, "tag"),
                Arc::new(StringArray::from(v)),
            ),
            Column::Text(v) => (
                role_field(&name, DataType::Utf8, "field"),
                Arc::new(StringArray::from(v)),
            ),
            Column::Float(v) => (
                role_field(&name, DataType::Float64, "field"),
                Arc::new(Float64Array::from(v)),
            ),
            Column::Bool(v) => (
                role_field(&name, DataType::Boolean, "field"),
                Arc::new(BooleanArray::from(v)),
            ),
        };
        fields.push(field);
        arrays.push(array);
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)
        .map_err(|e| ApiError::invalid(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_name_tables_and_tags() {
        assert_eq!(
            from_topic(Some("plant/{line}/{device}/{table}"), "plant/l3/p7/press").unwrap(),
            (
                "press".to_string(),
                vec![
                    ("line".to_string(), "l3".to_string()),
                    ("device".to_string(), "p7".to_string())
                ]
            )
        );
        assert_eq!(from_topic(None, "a/b/readings").unwrap().0, "readings");
        assert!(from_topic(Some("plant/{table}"), "plant/x/y").is_err());
        assert!(from_topic(Some("plant/{table}"), "site/x").is_err());
    }

    #[test]
    fn json_rows_become_a_batch() {
        let rows: Vec<Value> = serde_json::from_str(
            r#"[{"time": 5, "tags": {"device": "p1"}, "pressure": 12, "state": "fault", "on": true},
                {"time": "1970-01-01T00:00:00.000000010Z", "pressure": 13.5}]"#,
        )
        .unwrap();
        let batch = json_rows(&rows, &[("line".into(), "l3".into())]).unwrap();
        assert_eq!(batch.num_rows(), 2);
        let names: Vec<String> = batch
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        assert_eq!(names, ["time", "device", "line", "on", "pressure", "state"]);
        let err = json_rows(&[Value::from(3)], &[]).unwrap_err().to_string();
        assert!(err.contains("not a JSON object"), "{err}");
        assert!(broker("mqtt://127.0.0.1:1884").unwrap().1 == 1884);
        assert!(broker("http://x").is_err());
    }
}
