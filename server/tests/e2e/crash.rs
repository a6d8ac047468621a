//! Durability through the server: SIGKILL in the middle of writes loses no
//! acknowledged write; SIGTERM exits 0 with everything persisted.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arrow::array::AsArray;
use arrow::datatypes::Int64Type;
use ingot_proto::v1::WriteRequest;
use ingot_proto::v1::write_request::Payload;
use ingot_server::client::Client;

use crate::support::{TestServer, count, http, query};

fn lp(text: String) -> WriteRequest {
    WriteRequest {
        payload: Some(Payload::LineProtocol(text)),
        ..Default::default()
    }
}

async fn ids(client: &mut Client) -> BTreeSet<i64> {
    let batches = query(client, "SELECT id FROM crash").await;
    batches
        .iter()
        .flat_map(|b| b.column(0).as_primitive::<Int64Type>().values().to_vec())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_loses_no_acknowledged_write() {
    let dir = tempfile::tempdir().unwrap();
    let acked: Arc<Mutex<BTreeSet<i64>>> = Arc::default();
    for round in 0..3i64 {
        let mut server = TestServer::spawn(dir.path(), &["--wal-sync", "always"]);
        if round > 0 {
            // Everything acknowledged in earlier rounds survived the kill.
            let mut client = server.client().await;
            let present = ids(&mut client).await;
            let expected = acked.lock().unwrap().clone();
            let missing: Vec<_> = expected.difference(&present).collect();
            assert!(
                missing.is_empty(),
                "round {round}: lost acknowledged writes {missing:?}"
            );
        }
        let base = (round + 1) * 1_000_000;
        let grpc = {
            let acked = acked.clone();
            let mut client = server.client().await;
            tokio::spawn(async move {
                for n in 0..100_000i64 {
                    let id = base + 2 * n;
                    let request = lp(format!("crash,src=grpc id={id}i {id}\n"));
                    if client.write(request).await.is_err() {
                        break;
                    }
                    acked.lock().unwrap().insert(id);
                }
            })
        };
        let web = {
            let acked = acked.clone();
            let url = server.http_url("/api/v2/write?bucket=public");
            let client = http();
            tokio::spawn(async move {
                for n in 0..100_000i64 {
                    let id = base + 2 * n + 1;
                    let sent = client
                        .post(&url)
                        .body(format!("crash,src=http id={id}i {id}\n"))
                        .send()
                        .await;
                    match sent {
                        Ok(r) if r.status().is_success() => {
                            acked.lock().unwrap().insert(id);
                        }
                        _ => break,
                    }
                }
            })
        };
        tokio::time::sleep(Duration::from_millis(400 + 150 * round as u64)).await;
        server.kill();
        tokio::time::timeout(Duration::from_secs(30), async {
            let _ = grpc.await;
            let _ = web.await;
        })
        .await
        .expect("writers stop once the server is gone");
    }
    let server = TestServer::spawn(dir.path(), &[]);
    let mut client = server.client().await;
    let present = ids(&mut client).await;
    let expected = acked.lock().unwrap().clone();
    assert!(
        expected.len() > 10,
        "too few writes acknowledged: {}",
        expected.len()
    );
    let missing: Vec<_> = expected.difference(&present).collect();
    assert!(missing.is_empty(), "lost acknowledged writes {missing:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_exits_cleanly_and_keeps_the_data() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = TestServer::spawn(dir.path(), &["--wal-sync", "interval:50ms"]);
    let mut client = server.client().await;
    client
        .write(lp("shut,k=a v=1 1\nshut,k=b v=2 2\n".into()))
        .await
        .unwrap();
    let r = http()
        .post(server.http_url("/write?db=public"))
        .body("shut,k=c v=3 3")
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    drop(client);
    let status = server.terminate();
    assert!(status.success(), "exit status {status:?}");
    // The shutdown flushed the memtable to Parquet.
    let parquet_files = walk(&server.dir.join("tables"));
    assert!(parquet_files > 0, "no Parquet file after a clean shutdown");

    let server = TestServer::spawn(dir.path(), &[]);
    let mut client = server.client().await;
    assert_eq!(count(&mut client, "SELECT count(*) FROM shut").await, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_an_open_write_stream_finish() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = TestServer::spawn(dir.path(), &[]);
    let mut client = server.client().await;
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tx.send(lp("inflight,k=a v=1 1\n".into())).await.unwrap();
    let call = tokio::spawn(async move {
        client
            .ingest()
            .write_stream(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
    });
    // The first message is written before the signal.
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.signal_term();
    tokio::time::sleep(Duration::from_millis(300)).await;
    tx.send(lp("inflight,k=b v=2 2\n".into())).await.unwrap();
    drop(tx);
    let response = tokio::time::timeout(Duration::from_secs(30), call)
        .await
        .expect("the stream ends")
        .unwrap()
        .expect("the in-flight stream is acknowledged")
        .into_inner();
    assert_eq!(response.rows, 2);
    let status = server.wait_exit();
    assert!(status.success(), "exit status {status:?}");

    let server = TestServer::spawn(dir.path(), &[]);
    let mut client = server.client().await;
    assert_eq!(count(&mut client, "SELECT count(*) FROM inflight").await, 2);
}

fn walk(dir: &std::path::Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| {
            let path = e.path();
            if path.is_dir() {
                walk(&path)
            } else {
                usize::from(path.extension().is_some_and(|x| x == "parquet"))
            }
        })
        .sum()
}
