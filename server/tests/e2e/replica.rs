//! A writer and two query replicas on one bucket of a real S3 server (moto,
//! started on 127.0.0.1): rows written to the writer reach the replicas'
//! Flight SQL and HTTP queries once persisted, and the replicas refuse
//! writes over HTTP (403) and gRPC (FAILED_PRECONDITION).

use std::time::{Duration, Instant};

use ingot_proto::v1::WriteRequest;
use ingot_proto::v1::write_request::Payload;

use crate::s3::S3Server;
use crate::support::{TestServer, count, http};

fn lines(from: usize, n: usize) -> String {
    (from..from + n)
        .map(|i| {
            format!(
                "pumps,site=s{} flow={i} {}\n",
                i % 3,
                1_700_000_000_000_000_000i64 + i as i64
            )
        })
        .collect()
}

/// Waits (at most 30 s) until a replica counts `want` rows in
/// `plant.pumps`; the table is missing there until the first file arrives.
async fn wait_for_rows(client: &mut ingot_server::client::Client, want: i64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let n = match client.query("SELECT count(*) FROM plant.pumps").await {
            Ok((_, batches)) => batches.first().map_or(0, |b| {
                b.column(0)
                    .as_any()
                    .downcast_ref::<arrow::array::Int64Array>()
                    .unwrap()
                    .value(0)
            }),
            Err(_) => 0,
        };
        if n == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "a replica saw {n} of {want} rows"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_follow_the_writer_and_refuse_writes() {
    let Some(s3) = S3Server::start() else { return };
    let env = s3.env();
    let bucket = "s3://ingot/plant-7";
    let writer_dir = tempfile::tempdir().unwrap();
    let writer = TestServer::spawn_with_env(
        writer_dir.path(),
        &[
            "--object-store",
            bucket,
            "--wal-sync",
            "none",
            "--flush-interval",
            "200ms",
        ],
        &env,
    );
    let replicas: Vec<(tempfile::TempDir, TestServer)> = (0..2)
        .map(|_| {
            let dir = tempfile::tempdir().unwrap();
            let server = TestServer::spawn_with_env(
                dir.path(),
                &[
                    "--object-store",
                    bucket,
                    "--read-only",
                    "--refresh-interval",
                    "200ms",
                ],
                &env,
            );
            (dir, server)
        })
        .collect();

    let http = http();
    let wrote = http
        .post(writer.http_url("/api/v2/write?bucket=plant"))
        .body(lines(0, 100))
        .send()
        .await
        .unwrap();
    assert_eq!(wrote.status(), 204, "{}", wrote.text().await.unwrap());

    // Both replicas answer over Flight SQL once the writer has persisted.
    for (_, replica) in &replicas {
        let mut client = replica.client().await;
        wait_for_rows(&mut client, 100).await;
        assert_eq!(
            count(
                &mut client,
                "SELECT count(*) FROM plant.pumps WHERE site = 's1'"
            )
            .await,
            33
        );
    }

    // And over HTTP.
    let (_, replica) = &replicas[0];
    let answer: serde_json::Value = http
        .get(replica.http_url(
            "/api/v3/query_sql?db=plant&q=SELECT%20sum(flow)%20AS%20s%20FROM%20pumps&format=json",
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer, serde_json::json!([{ "s": 4950.0 }]));

    // Writes to a replica are refused, and say where to send them.
    let refused = http
        .post(replica.http_url("/api/v2/write?bucket=plant"))
        .body(lines(100, 1))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    let body = refused.text().await.unwrap();
    assert!(
        body.contains("read-only") && body.contains("writer"),
        "{body}"
    );
    let mut client = replica.client().await;
    let e = client
        .write(WriteRequest {
            database: "plant".into(),
            table: String::new(),
            payload: Some(Payload::LineProtocol(lines(100, 1))),
            precision: 0,
        })
        .await
        .unwrap_err();
    assert!(e.to_string().contains("FailedPrecondition"), "{e}");
    let e = client
        .execute_update("DELETE FROM plant.pumps WHERE site = 's0'")
        .await
        .unwrap_err();
    assert!(e.to_string().contains("read-only"), "{e}");
    assert_eq!(
        count(&mut client, "SELECT count(*) FROM plant.pumps").await,
        100
    );
}

/// `ingot route` in front of `nodes`, once it prints its address.
struct Router(std::process::Child, String);

impl Router {
    fn spawn(nodes: &[(&str, &TestServer)]) -> Router {
        use std::io::{BufRead, BufReader};
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_ingot"));
        command.args(["route", "--http-addr", "127.0.0.1:0"]);
        for (id, node) in nodes {
            command
                .arg("--node")
                .arg(format!("{id}={}", node.http_url("")));
        }
        let mut child = command
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("spawn ingot route");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .trim()
            .strip_prefix("ingot routing http=")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_string();
        Router(child, addr)
    }
}

impl Drop for Router {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_router_splits_writes_among_the_nodes_and_a_replica_serves_them_all() {
    let Some(s3) = S3Server::start() else { return };
    let env = s3.env();
    let bucket = "s3://ingot/site";
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let node = |dir: &tempfile::TempDir, id: &str| {
        TestServer::spawn_with_env(
            dir.path(),
            &[
                "--object-store",
                bucket,
                "--node-id",
                id,
                "--wal-sync",
                "none",
                "--flush-interval",
                "200ms",
            ],
            &env,
        )
    };
    let (a, b) = (node(&dirs[0], "a"), node(&dirs[1], "b"));
    let replica = TestServer::spawn_with_env(
        dirs[2].path(),
        &[
            "--object-store",
            bucket,
            "--read-only",
            "--refresh-interval",
            "200ms",
        ],
        &env,
    );
    let router = Router::spawn(&[("a", &a), ("b", &b)]);

    let http = http();
    let wrote = http
        .post(format!("http://{}/api/v2/write?bucket=plant", router.1))
        .body(
            (0..300)
                .map(|i| {
                    format!(
                        "pumps,site=s{} flow={i} {}\n",
                        i % 20,
                        1_700_000_000_000_000_000i64 + i
                    )
                })
                .collect::<String>(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(wrote.status(), 204, "{}", wrote.text().await.unwrap());

    // Each node holds whole series: a site's rows are on one node.
    let mut per_node = Vec::new();
    for n in [&a, &b] {
        let mut client = n.client().await;
        let sites = count(&mut client, "SELECT count(DISTINCT site) FROM plant.pumps").await;
        per_node.push((
            sites,
            count(&mut client, "SELECT count(*) FROM plant.pumps").await,
        ));
    }
    assert_eq!(
        per_node.iter().map(|p| p.0).sum::<i64>(),
        20,
        "{per_node:?}"
    );
    assert_eq!(
        per_node.iter().map(|p| p.1).sum::<i64>(),
        300,
        "{per_node:?}"
    );
    assert!(per_node.iter().all(|p| p.1 > 0), "{per_node:?}");

    // The replica serves both nodes' rows as one table.
    let mut client = replica.client().await;
    wait_for_rows(&mut client, 300).await;
    assert_eq!(
        count(
            &mut client,
            "SELECT count(*) FROM plant.pumps WHERE site = 's2'"
        )
        .await,
        15
    );

    // A node's refusal comes back with the node named.
    let bad = http
        .post(format!("http://{}/api/v2/write?bucket=plant", router.1))
        .body("pumps,site=s1 flow=\"text\" 5\n")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let body = bad.text().await.unwrap();
    assert!(body.contains("node "), "{body}");
}
