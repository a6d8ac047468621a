//! Prometheus remote write against a real Prometheus server (the Debian
//! package, installed by `tests/apt.sh`): Prometheus scrapes Ingot's own
//! `/metrics` and remote-writes the samples back to `/api/v1/write`, with
//! the token; SQL then finds them, a table per metric. Skipped, with the
//! reason printed, where Prometheus cannot be installed.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use prost::Message;
use reqwest::StatusCode;
use serde_json::Value;

use crate::support::{TestServer, apt_installed as installed, http};

const TOKEN: &str = "prom-token";

/// Kills Prometheus when the test ends, however it ends.
struct Prometheus(Child);

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn query(server: &TestServer, sql: &str) -> Option<Value> {
    let response = http()
        .get(server.http_url("/api/v3/query_sql"))
        .bearer_auth(TOKEN)
        .query(&[("db", "prom"), ("q", sql), ("format", "json")])
        .send()
        .await
        .ok()?;
    if response.status() != StatusCode::OK {
        return None;
    }
    response.json().await.ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_remote_writes_its_scrapes_of_ingot() {
    if !installed("prometheus", "prometheus") {
        println!("skipped: Prometheus is not installed and cannot be installed here");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::spawn(&dir.path().join("data"), &["--token", TOKEN]);

    // Without the token: 401; with it, a hand-made request is stored.
    let request = ingot_server_prometheus_request();
    let body = snap::raw::Encoder::new().compress_vec(&request).unwrap();
    let post = |token: Option<&'static str>| {
        let mut r = http()
            .post(server.http_url("/api/v1/write?db=prom"))
            .header("Content-Encoding", "snappy")
            .header("Content-Type", "application/x-protobuf")
            .header("X-Prometheus-Remote-Write-Version", "0.1.0")
            .body(body.clone());
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send()
    };
    assert_eq!(post(None).await.unwrap().status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        post(Some(TOKEN)).await.unwrap().status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        query(&server, "SELECT site, value FROM plant_temperature_celsius").await,
        Some(serde_json::json!([{"site": "north", "value": 21.5}]))
    );

    // A real Prometheus scraping Ingot and writing back.
    let config = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
         scrape_configs:\n  - job_name: ingot\n    authorization:\n      credentials: {TOKEN}\n    \
         static_configs:\n      - targets: ['{addr}']\n\
         remote_write:\n  - url: http://{addr}/api/v1/write?db=prom\n    authorization:\n      \
         credentials: {TOKEN}\n    queue_config:\n      batch_send_deadline: 1s\n",
        addr = server.http_addr
    );
    let config_path = dir.path().join("prometheus.yml");
    std::fs::write(&config_path, config).unwrap();
    let _prometheus = Prometheus(
        Command::new("prometheus")
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("tsdb").display()
            ))
            .arg("--web.listen-address=127.0.0.1:0")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("prometheus.log")).unwrap())
            .spawn()
            .expect("start prometheus"),
    );
    let deadline = Instant::now() + Duration::from_secs(120);
    let up = loop {
        let rows = query(
            &server,
            "SELECT job, instance, value FROM up ORDER BY time DESC LIMIT 1",
        )
        .await;
        if let Some(rows) = rows.filter(|r| r.as_array().is_some_and(|a| !a.is_empty())) {
            break rows;
        }
        assert!(
            Instant::now() < deadline,
            "no `up` sample arrived in 120 s; Prometheus said:\n{}",
            std::fs::read_to_string(dir.path().join("prometheus.log")).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(
        up,
        serde_json::json!([{"job": "ingot", "instance": server.http_addr, "value": 1.0}])
    );
    // Ingot's own counters come back as tables, labels as tags: its count
    // of remote-write requests, among them.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let rows = query(
            &server,
            "SELECT max(value) AS n FROM ingot_write_requests_total \
             WHERE protocol = 'prometheus_remote_write' AND outcome = 'ok'",
        )
        .await;
        let n = rows
            .as_ref()
            .and_then(|r| r[0]["n"].as_f64())
            .unwrap_or(0.0);
        if n >= 2.0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "remote writes never counted: {rows:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// A remote-write request made by hand: one sample of one series.
fn ingot_server_prometheus_request() -> Vec<u8> {
    #[derive(Clone, PartialEq, Message)]
    struct WriteRequest {
        #[prost(message, repeated, tag = "1")]
        timeseries: Vec<TimeSeries>,
    }
    #[derive(Clone, PartialEq, Message)]
    struct TimeSeries {
        #[prost(message, repeated, tag = "1")]
        labels: Vec<Label>,
        #[prost(message, repeated, tag = "2")]
        samples: Vec<Sample>,
    }
    #[derive(Clone, PartialEq, Message)]
    struct Label {
        #[prost(string, tag = "1")]
        name: String,
        #[prost(string, tag = "2")]
        value: String,
    }
    #[derive(Clone, PartialEq, Message)]
    struct Sample {
        #[prost(double, tag = "1")]
        value: f64,
        #[prost(int64, tag = "2")]
        timestamp: i64,
    }
    WriteRequest {
        timeseries: vec![TimeSeries {
            labels: vec![
                Label {
                    name: "__name__".into(),
                    value: "plant_temperature_celsius".into(),
                },
                Label {
                    name: "site".into(),
                    value: "north".into(),
                },
            ],
            samples: vec![Sample {
                value: 21.5,
                timestamp: 1_767_225_600_000,
            }],
        }],
    }
    .encode_to_vec()
}
