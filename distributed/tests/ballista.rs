//! A Ballista cluster on 127.0.0.1 (one scheduler and two executors, each
//! its own `ingot-ballista` process) answers q1..q8 over an Ingot table in
//! an S3 bucket (moto) exactly as one Ingot node does, with files that
//! overlap and a delete, so that Ingot's duplicate rule and deletes must run
//! inside the executors.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use ingot_ballista::{register_tables, remote_context};
use ingot_bench::{Preset, result_rows, same_rows, workload_queries};
use ingot_engine::{Engine, Options, Precision};
use ingot_tests::s3::S3Server;
use ingot_tests::{load_preset, query};

/// The processes of a cluster, killed when dropped.
struct Processes(Vec<Child>);

impl Drop for Processes {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// Waits until something listens on `addr`.
fn wait_for(addr: SocketAddr, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "{what} did not listen on {addr}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Readings of ten devices, a minute apart for an hour, `day` days after
/// the tiny preset's.
fn more_days(day: i64, status: i64) -> String {
    let start = 1_767_225_600_000_000_000 + day * 86_400_000_000_000;
    let mut lines = String::new();
    for d in 0..10 {
        for minute in 0..60 {
            let t = start + minute * 60_000_000_000;
            lines += &format!(
                "readings,plant=plant-0,line=line-{},device_id=dev-{d:06},model=model-{} \
                 temperature={}.5,pressure=1012.5,vibration=0.06,power_kw={}.25,voltage=377.5,\
                 rpm=1200i,status={status}i {t}\n",
                d % 3,
                d % 4,
                20 + minute % 9,
                d + 1,
            );
        }
    }
    lines
}

#[test]
fn a_scheduler_and_two_executors_answer_as_one_node() {
    let Some(s3) = S3Server::start() else { return };
    let store_url = "s3://ingot/ballista";

    // The writer: the tiny preset, then part of it again in a second file
    // (every row of it a duplicate), then a delete; nothing compacted.
    let disk = tempfile::tempdir().unwrap();
    let mut options = Options::default();
    options.object_store = Some(s3.store("ballista"));
    options.compaction = false;
    options.wal_sync = ingot_engine::WalSync::None;
    let writer = Engine::open(disk.path(), options).unwrap();
    let tiny = Preset::by_name("tiny").unwrap();
    load_preset(&writer, tiny, 5_000).unwrap();
    writer.flush().unwrap();
    load_preset(
        &writer,
        Preset {
            devices: tiny.devices / 2,
            ..tiny
        },
        5_000,
    )
    .unwrap();
    writer.flush().unwrap();
    // Four more days for ten devices, so that the shares hold different
    // partitions; one day written twice, the second time with faults.
    for (day, status) in [(1, 1), (2, 1), (3, 1), (4, 1), (2, 2)] {
        writer
            .write_lines("public", &more_days(day, status), Precision::Nanosecond)
            .unwrap();
        writer.flush().unwrap();
    }
    query(
        &writer,
        "DELETE FROM readings WHERE device_id = 'dev-000003'",
    );
    writer.flush().unwrap();
    // The shares of a scan hold each row once.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let total: usize = runtime.block_on(async {
        let mut total = 0;
        for share in 0..3 {
            let batches: Vec<_> = writer
                .scan_share("public", "readings", (share, 3), None, &[], None)
                .await
                .unwrap()
                .try_collect()
                .await
                .unwrap();
            total += batches.iter().map(|b| b.num_rows()).sum::<usize>();
        }
        total
    });
    let count = result_rows(&query(&writer, "SELECT count(*) FROM readings")).unwrap();
    assert_eq!(count[0][0], serde_json::json!(total));
    let want: Vec<_> = workload_queries()
        .into_iter()
        .map(|(name, sql)| (name, result_rows(&query(&writer, &sql)).unwrap()))
        .collect();
    writer.close().unwrap();

    let binary = env!("CARGO_BIN_EXE_ingot-ballista");
    let scheduler: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let work = tempfile::tempdir().unwrap();
    let mut cluster = Processes(vec![
        Command::new(binary)
            .args(["scheduler", "--bind", &scheduler.to_string()])
            .stdout(Stdio::null())
            .spawn()
            .expect("start the scheduler"),
    ]);
    wait_for(scheduler, "the scheduler");
    let mut executors = Vec::new();
    for i in 0..2 {
        let (port, grpc_port) = (free_port(), free_port());
        cluster.0.push(
            Command::new(binary)
                .args(["executor", "--scheduler", &scheduler.to_string()])
                .args([
                    "--port",
                    &port.to_string(),
                    "--grpc-port",
                    &grpc_port.to_string(),
                ])
                .args(["--concurrent-tasks", "2"])
                .arg("--work-dir")
                .arg(work.path().join(format!("executor-{i}")))
                .envs(s3.env())
                .stdout(Stdio::null())
                .spawn()
                .expect("start an executor"),
        );
        executors.push(format!("127.0.0.1:{port}").parse::<SocketAddr>().unwrap());
    }
    for addr in &executors {
        wait_for(*addr, "an executor");
    }

    // The client: the catalog from a read-only engine on the prefix, the
    // queries through the scheduler.
    let client_dir = tempfile::tempdir().unwrap();
    let mut options = Options::default();
    options.object_store = Some(s3.store("ballista"));
    options.read_only = true;
    let catalog = Engine::open(client_dir.path(), options).unwrap();
    runtime.block_on(async {
        let ctx = remote_context(&format!("df://{scheduler}")).await.unwrap();
        register_tables(&ctx, &catalog, store_url, 4).await.unwrap();
        for (name, rows) in &want {
            let sql = &workload_queries()
                .into_iter()
                .find(|(n, _)| n == name)
                .unwrap()
                .1;
            let batches = ctx
                .sql(sql)
                .await
                .unwrap_or_else(|e| panic!("{name}: {e}"))
                .collect()
                .await
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            let got = result_rows(&batches).unwrap();
            same_rows(&got, rows).unwrap_or_else(|e| panic!("{name} on Ballista: {e}"));
        }
    });
    drop(cluster);
}
