//! MQTT ingestion against a real Mosquitto broker (the Debian package,
//! installed by `tests/apt.sh`), with messages sent by `mosquitto_pub` and
//! by a Python gateway (paho-mqtt, `tests/mqtt/publish.sh`): line protocol
//! and JSON, a bad payload counted and skipped, messages sent while Ingot is
//! down delivered when it is back (persistent session, QoS 1), and none lost
//! to a SIGKILL.
//! Skipped, with the reason printed, where Mosquitto cannot be installed.

use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{TestServer, apt_installed as installed, http};

/// Kills the broker when the test ends, however it ends.
struct Broker(Child);

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts Mosquitto on `port`, keeping its sessions in `dir`. Nothing
/// limits how many unacknowledged messages it sends at once, so Ingot's own
/// bounds on what waits to be written are what holds when it floods.
fn broker(dir: &Path, port: u16) -> Broker {
    let config = dir.join("mosquitto.conf");
    std::fs::write(
        &config,
        format!(
            "listener {port} 127.0.0.1\nallow_anonymous true\npersistence true\n\
             persistence_location {}/\nuser root\nmax_queued_messages 0\n\
             max_inflight_messages 0\n",
            dir.display()
        ),
    )
    .unwrap();
    let child = Command::new("mosquitto")
        .arg("-c")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("mosquitto.log")).unwrap())
        .spawn()
        .expect("start mosquitto");
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "mosquitto did not listen in 20 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Broker(child)
}

fn publish(port: u16, topic: &str, message: &str) {
    let status = Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-q", "1"])
        .args(["-t", topic, "-m", message])
        .status()
        .expect("run mosquitto_pub");
    assert!(status.success(), "mosquitto_pub {topic} {message}");
}

async fn query(server: &TestServer, sql: &str) -> Value {
    let response = http()
        .get(server.http_url("/api/v3/query_sql"))
        .query(&[("db", "plant"), ("q", sql), ("format", "json")])
        .send()
        .await
        .unwrap();
    if response.status() != StatusCode::OK {
        return Value::Null;
    }
    response.json().await.unwrap_or(Value::Null)
}

/// Waits (bounded) until `sql` answers `want`.
async fn until(server: &TestServer, sql: &str, want: Value) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got = query(server, sql).await;
        if got == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{sql}: still {got} after 60 s, want {want}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_messages_are_written_and_none_is_lost_while_down() {
    if !installed("mosquitto", "mosquitto") || !installed("mosquitto_pub", "mosquitto-clients") {
        println!("skipped: Mosquitto is not installed and cannot be installed here");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _broker = broker(dir.path(), port);
    let url = format!("mqtt://127.0.0.1:{port}");
    let args = [
        "--mqtt-url",
        url.as_str(),
        "--mqtt-topic",
        "plant/#",
        "--mqtt-database",
        "plant",
        "--mqtt-json-topic",
        "plant/{line}/{table}",
    ];
    let data = dir.path().join("data");
    let mut server = TestServer::spawn(&data, &args);

    // Until Ingot has subscribed, messages go nowhere: probe until one lands.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut i = 0;
    loop {
        publish(port, "plant/probe/lp", &format!("probe n={i}i"));
        i += 1;
        tokio::time::sleep(Duration::from_millis(300)).await;
        if query(&server, "SELECT count(*) AS n FROM probe")
            .await
            .is_array()
        {
            break;
        }
        assert!(Instant::now() < deadline, "Ingot never subscribed");
    }

    // Line protocol, JSON with tags from the topic and the payload, a bad
    // payload (counted, skipped), and the next message still read.
    publish(
        port,
        "plant/l3/lp",
        "readings,device=d1 temp=21.5 1767225600000000000\nreadings,device=d2 temp=22.5 1767225600000000000",
    );
    publish(
        port,
        "plant/l3/press",
        r#"{"time": "2026-01-01T00:00:00Z", "tags": {"device": "p1"}, "pressure": 12.5, "state": "fault"}"#,
    );
    publish(port, "plant/l3/press", "{not json");
    publish(
        port,
        "plant/l4/press",
        r#"[{"time": 1767225601000000000, "tags": {"device": "p2"}, "pressure": 3}]"#,
    );
    // A gateway's batch: 20 000 lines (about 600 KB) in one message.
    let batch: String = (0..20_000)
        .map(|i| format!("batch,device=d{} v={i}i {i}\n", i % 100))
        .collect();
    let batch_file = dir.path().join("batch.lp");
    std::fs::write(&batch_file, batch).unwrap();
    let status = Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-q", "1"])
        .args(["-t", "plant/l3/lp", "-f"])
        .arg(&batch_file)
        .status()
        .expect("run mosquitto_pub -f");
    assert!(status.success());
    until(
        &server,
        "SELECT count(*) AS n FROM batch",
        json!([{"n": 20000}]),
    )
    .await;
    until(
        &server,
        "SELECT device, temp FROM readings ORDER BY device",
        json!([{"device": "d1", "temp": 21.5}, {"device": "d2", "temp": 22.5}]),
    )
    .await;
    until(
        &server,
        "SELECT line, device, pressure, state FROM press ORDER BY device",
        json!([
            {"line": "l3", "device": "p1", "pressure": 12.5, "state": "fault"},
            {"line": "l4", "device": "p2", "pressure": 3.0, "state": null},
        ]),
    )
    .await;
    let metrics = server.metrics(None).await;
    assert!(
        metrics.contains("ingot_mqtt_messages_total{outcome=\"invalid\"} 1"),
        "{metrics}"
    );

    // A gateway in Python (paho-mqtt), where the packages can be installed.
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/mqtt/publish.sh");
    let status = Command::new("bash")
        .arg(script)
        .args([&port.to_string(), "plant/py/pyrows", "200"])
        .status()
        .expect("run tests/mqtt/publish.sh");
    if status.code() == Some(77) {
        println!("skipped the Python publisher: paho-mqtt cannot be installed here");
    } else {
        assert!(status.success(), "tests/mqtt/publish.sh failed");
        until(
            &server,
            "SELECT line, count(*) AS n, sum(v) AS v, count(DISTINCT device) AS devices \
             FROM pyrows GROUP BY line",
            json!([{"line": "py", "n": 200, "v": 19900.0, "devices": 5}]),
        )
        .await;
    }

    // Down: the broker keeps Ingot's session and holds QoS 1 messages.
    server.terminate();
    for i in 0..3 {
        publish(port, "plant/l5/lp", &format!("late,device=d{i} v={i}i {i}"));
    }
    let mut server = TestServer::spawn(&data, &args);
    until(&server, "SELECT count(*) AS n FROM late", json!([{"n": 3}])).await;

    // A crash while messages stream in: a message is acknowledged only once
    // durable, so the broker sends again whatever Ingot had not written.
    let lines: String = (0..2000)
        .map(|i| format!("burst,device=d{} v={i}i {i}\n", i % 10))
        .collect();
    let mut sender = Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-q", "1"])
        .args(["-t", "plant/l6/lp", "-l"])
        .stdin(Stdio::piped())
        .spawn()
        .expect("run mosquitto_pub -l");
    std::io::Write::write_all(&mut sender.stdin.take().unwrap(), lines.as_bytes()).unwrap();
    assert!(sender.wait().unwrap().success());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let written_before_the_crash = query(&server, "SELECT count(*) AS n FROM burst").await;
    println!("before the crash: {written_before_the_crash}");
    server.kill();
    let server = TestServer::spawn(&data, &args);
    until(
        &server,
        "SELECT count(*) AS n FROM burst",
        json!([{"n": 2000}]),
    )
    .await;
    println!("before the crash: {written_before_the_crash}");
}
