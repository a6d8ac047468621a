//! Line protocol over HTTP, server and clients in one process: starts an
//! Ingot server on a temporary directory (WAL `always`), posts workload
//! lines from three clients in requests of 10 000, as
//! `ingot-bench ingest --target http-lp --clients 3` does, and stops the
//! server (its final flush included). For profiling the HTTP write path
//! with `perf record`, which a stripped `ingot` binary does not allow.
//!
//! `cargo rustc --release -p ingot-bench --example lp_serve -- -C strip=none`,
//! then `lp_serve [steps]` (1 000 devices a step; 8 640 is `small`).

use std::sync::{Arc, Mutex};
use std::time::Instant;

use ingot_bench::line_protocol_requests;
use ingot_server::{ServeConfig, Server};

const DEVICES: u64 = 1000;
const CLIENTS: usize = 3;
const LINES_PER_REQUEST: u64 = 10_000;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let steps: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1080);
    let lines = DEVICES * steps;
    let requests = line_protocol_requests(DEVICES, lines, LINES_PER_REQUEST);
    let requests = Arc::new(Mutex::new(requests.into_iter()));
    let dir = tempfile::tempdir()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(64 << 20)
        .build()?;
    runtime.block_on(async {
        let mut config = ServeConfig::new(dir.path());
        config.grpc_addr = "127.0.0.1:0".into();
        config.http_addr = "127.0.0.1:0".into();
        let server = Server::start(config).await?;
        let url = format!(
            "http://{}/api/v3/write_lp?db=public&precision=ns",
            server.http_addr()
        );
        let started = Instant::now();
        let mut clients = Vec::new();
        for _ in 0..CLIENTS {
            let (requests, url) = (requests.clone(), url.clone());
            clients.push(tokio::spawn(async move {
                let http = reqwest::Client::new();
                loop {
                    let Some(body) = requests.lock().map_err(|e| e.to_string())?.next() else {
                        return Ok::<_, Box<dyn std::error::Error + Send + Sync>>(());
                    };
                    let response = http.post(&url).body(body).send().await?;
                    if !response.status().is_success() {
                        return Err(format!("write failed: {}", response.status()).into());
                    }
                }
            }));
        }
        for client in clients {
            client.await??;
        }
        let write = started.elapsed();
        server.shutdown().await?;
        let total = started.elapsed();
        println!(
            "{lines} lines, {} points: written in {:.3} s ({:.2} M points/s), in Parquet after {:.3} s",
            lines * 7,
            write.as_secs_f64(),
            (lines * 7) as f64 / write.as_secs_f64() / 1e6,
            total.as_secs_f64()
        );
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
    })
    .map_err(|e| e.to_string())?;
    Ok(())
}
