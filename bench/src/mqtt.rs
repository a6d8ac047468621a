//! `ingot-bench mqtt`: points/s through an MQTT broker. A Mosquitto broker
//! (on the PATH; `bash tests/apt.sh mosquitto mosquitto` installs it) and an
//! `ingot serve --mqtt-url` child are started on free ports of 127.0.0.1;
//! publishers send the preset as line protocol, a message of `--batch-rows`
//! rows each, QoS 1, one message in flight each. The clock runs from the
//! first message until Ingot has written every row (its
//! `ingot_rows_written_total{protocol="mqtt"}`), which it does only once the
//! rows are durable; then the server is stopped (a final flush).

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ingot_bench::{Generator, Preset};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};

use crate::remote::{BoxError, Protocol, Request, ServerProcess};

#[derive(clap::Args)]
pub struct MqttArgs {
    /// Workload preset: tiny, small, medium or billion.
    #[arg(long, default_value = "small")]
    preset: String,
    /// Concurrent publishers.
    #[arg(long, default_value_t = 3)]
    publishers: usize,
    /// Rows per message.
    #[arg(long, default_value_t = 10_000)]
    batch_rows: usize,
    /// The server's WAL sync policy.
    #[arg(long, default_value = "always")]
    wal_sync: String,
}

/// Stops the broker when the bench ends.
struct Broker(Child);

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> Result<u16, BoxError> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn start_broker(dir: &std::path::Path, port: u16) -> Result<Broker, BoxError> {
    let config = dir.join("mosquitto.conf");
    std::fs::write(
        &config,
        format!(
            "listener {port} 127.0.0.1\nallow_anonymous true\nmax_queued_messages 0\n\
             max_inflight_messages 0\nuser {}\n",
            std::env::var("USER").unwrap_or_else(|_| "root".into())
        ),
    )?;
    let child = Command::new("mosquitto")
        .arg("-c")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| {
            format!(
                "cannot start mosquitto ({e}): `bash tests/apt.sh mosquitto mosquitto` installs it"
            )
        })?;
    let broker = Broker(child);
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            return Err("mosquitto did not listen within 20 s".into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(broker)
}

/// Rows Ingot has written from MQTT, from its metrics.
async fn mqtt_rows(http: &reqwest::Client, server: &ServerProcess) -> Result<u64, BoxError> {
    let text = http
        .get(format!("{}/metrics", server.http))
        .send()
        .await?
        .text()
        .await?;
    Ok(text
        .lines()
        .find_map(|l| l.strip_prefix("ingot_rows_written_total{protocol=\"mqtt\"} "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0))
}

/// Publishes `messages` with QoS 1, one in flight, waiting for each PUBACK.
async fn publish(port: u16, id: String, messages: Vec<String>) -> Result<(), BoxError> {
    let mut options = MqttOptions::new(id, "127.0.0.1", port);
    options.set_max_packet_size(256 << 20, 256 << 20);
    let (client, mut events) = AsyncClient::new(options, 16);
    for message in messages {
        client
            .publish("bench/readings", QoS::AtLeastOnce, false, message)
            .await?;
        while !matches!(events.poll().await?, Event::Incoming(Packet::PubAck(_))) {}
    }
    client.disconnect().await?;
    // Let the disconnect go out.
    let _ = tokio::time::timeout(Duration::from_millis(200), events.poll()).await;
    Ok(())
}

pub fn run(args: MqttArgs) -> Result<(), BoxError> {
    let preset =
        Preset::by_name(&args.preset).ok_or_else(|| format!("unknown preset {:?}", args.preset))?;
    let temp = tempfile::tempdir()?;
    let port = free_port()?;
    let _broker = start_broker(temp.path(), port)?;
    let server = ServerProcess::start_with(
        &temp.path().join("data"),
        &args.wal_sync,
        &[
            "--mqtt-url".into(),
            format!("mqtt://127.0.0.1:{port}"),
            "--mqtt-topic".into(),
            "bench/#".into(),
        ],
    )?;
    // Every message encoded before the clock starts, as the other targets do.
    let mut generator = Generator::new(preset);
    let mut messages = Vec::new();
    let mut rows = 0u64;
    while let Some(batch) = generator.next_batch(args.batch_rows) {
        rows += batch.num_rows() as u64;
        match Request::encode(Protocol::HttpLp, batch)? {
            Request::Lines(text) => messages.push(text),
            _ => unreachable!("line protocol"),
        }
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let http = reqwest::Client::new();
    let seconds = runtime.block_on(async {
        // Until Ingot has subscribed, messages go nowhere: probe first.
        let deadline = Instant::now() + Duration::from_secs(60);
        while mqtt_rows(&http, &server).await? == 0 {
            publish(port, "bench-probe".into(), vec!["probe n=1i 0".into()]).await?;
            tokio::time::sleep(Duration::from_millis(200)).await;
            if Instant::now() > deadline {
                return Err::<f64, BoxError>("Ingot did not subscribe within 60 s".into());
            }
        }
        let base = mqtt_rows(&http, &server).await?;
        let publishers = args.publishers.max(1);
        let mut shares: Vec<Vec<String>> = vec![Vec::new(); publishers];
        for (i, m) in messages.into_iter().enumerate() {
            shares[i % publishers].push(m);
        }
        let started = Instant::now();
        let tasks: Vec<_> = shares
            .into_iter()
            .enumerate()
            .map(|(i, share)| tokio::spawn(publish(port, format!("bench-{i}"), share)))
            .collect();
        for t in tasks {
            t.await??;
        }
        let published = started.elapsed().as_secs_f64();
        while mqtt_rows(&http, &server).await? < base + rows {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let written = started.elapsed().as_secs_f64();
        eprintln!("published in {published:.2} s, written in {written:.2} s");
        Ok(written)
    })?;
    let (peak_rss, stop) = server.stop()?;
    let points = rows * 7;
    println!(
        "mqtt  preset={} publishers={} batch_rows={} wal_sync={}",
        preset.name, args.publishers, args.batch_rows, args.wal_sync
    );
    println!("  rows            {rows:>14}");
    println!("  written in      {seconds:>14.3} s");
    println!("  points/s        {:>14.0}", points as f64 / seconds);
    println!("  final flush     {:>14.3} s", stop.as_secs_f64());
    println!(
        "  peak RSS        {:>14.1} MiB",
        peak_rss as f64 / (1 << 20) as f64
    );
    Ok(())
}
