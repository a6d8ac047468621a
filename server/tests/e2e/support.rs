//! Spawning `ingot serve` and talking to it.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use ingot_server::client::Client;

/// How long a server gets to print its ready line.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// A running `ingot serve` child, killed when dropped.
pub struct TestServer {
    child: Child,
    pub grpc_addr: String,
    pub http_addr: String,
    /// The PostgreSQL wire protocol's address, when `--pg-addr` was given.
    pub pg_addr: Option<String>,
    pub dir: PathBuf,
}

impl TestServer {
    /// Starts a server on `dir` with extra `serve` flags and waits for its
    /// ready line.
    pub fn spawn(dir: &Path, extra: &[&str]) -> TestServer {
        Self::spawn_with_env(dir, extra, &[])
    }

    /// [`TestServer::spawn`] with extra environment variables.
    pub fn spawn_with_env(dir: &Path, extra: &[&str], env: &[(&str, String)]) -> TestServer {
        let mut child = Command::new(env!("CARGO_BIN_EXE_ingot"))
            .arg("serve")
            .arg("--data-dir")
            .arg(dir)
            .args(["--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"])
            .args(extra)
            .env("RUST_LOG", "warn")
            .env_remove("INGOT_TOKEN")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn ingot");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let line = match rx.recv_timeout(READY_TIMEOUT) {
            Ok(line) => line,
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("ingot did not print its ready line within {READY_TIMEOUT:?}: {e}");
            }
        };
        let rest = line
            .strip_prefix("ingot listening ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
        let mut grpc_addr = String::new();
        let mut http_addr = String::new();
        let mut pg_addr = None;
        for part in rest.split(' ') {
            if let Some(a) = part.strip_prefix("pg=") {
                pg_addr = Some(a.to_string());
            }
            if let Some(a) = part.strip_prefix("grpc=") {
                grpc_addr = a.to_string();
            } else if let Some(a) = part.strip_prefix("http=") {
                http_addr = a.to_string();
            }
        }
        assert!(grpc_addr.starts_with("127.0.0.1:"), "{line}");
        assert!(http_addr.starts_with("127.0.0.1:"), "{line}");
        TestServer {
            child,
            grpc_addr,
            http_addr,
            pg_addr,
            dir: dir.to_path_buf(),
        }
    }

    /// The Prometheus text of `/metrics`, sent with `token` when given.
    pub async fn metrics(&self, token: Option<&str>) -> String {
        let mut request = http().get(self.http_url("/metrics"));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("GET /metrics");
        assert!(response.status().is_success(), "{}", response.status());
        response.text().await.expect("the text of /metrics")
    }

    pub fn grpc_url(&self) -> String {
        format!("http://{}", self.grpc_addr)
    }

    pub fn http_url(&self, path: &str) -> String {
        format!("http://{}{}", self.http_addr, path)
    }

    pub async fn client(&self) -> Client {
        Client::connect(&self.grpc_url(), None, None)
            .await
            .expect("connect")
    }

    pub async fn client_with_token(&self, token: &str) -> Client {
        Client::connect(&self.grpc_url(), Some(token), None)
            .await
            .expect("connect")
    }

    /// Sends SIGTERM and waits (bounded) for the exit.
    pub fn terminate(&mut self) -> ExitStatus {
        self.signal_term();
        self.wait_exit()
    }

    /// Sends SIGTERM without waiting.
    pub fn signal_term(&mut self) {
        let pid = self.child.id() as libc::pid_t;
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
    }

    /// Waits (bounded) for the child to exit.
    pub fn wait_exit(&mut self) -> ExitStatus {
        self.wait(Duration::from_secs(60))
    }

    /// SIGKILL, as a crash.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn wait(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("ingot did not exit within {timeout:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs a query over Flight SQL and returns its batches.
pub async fn query(client: &mut Client, sql: &str) -> Vec<RecordBatch> {
    client
        .query(sql)
        .await
        .unwrap_or_else(|e| panic!("query {sql:?} failed: {e}"))
        .1
}

/// Runs a query and renders it as arrow's pretty table (for exact comparisons).
pub async fn table(client: &mut Client, sql: &str) -> String {
    let batches = query(client, sql).await;
    arrow::util::pretty::pretty_format_batches(&batches)
        .expect("format")
        .to_string()
}

/// The single integer value of a one-row, one-column result.
pub async fn count(client: &mut Client, sql: &str) -> i64 {
    let batches = query(client, sql).await;
    let batch = batches.iter().find(|b| b.num_rows() > 0).expect("a row");
    let column =
        arrow::compute::cast(batch.column(0), &arrow::datatypes::DataType::Int64).expect("cast");
    column
        .as_any()
        .downcast_ref::<arrow::array::Int64Array>()
        .expect("i64")
        .value(0)
}

/// An HTTP client with a bounded timeout.
/// Installs `package` with `tests/apt.sh` when `command` is missing; false
/// when it cannot be (no root, no package index): the caller skips.
pub fn apt_installed(command: &str, package: &str) -> bool {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/apt.sh");
    Command::new("bash")
        .arg(script)
        .args([command, package])
        .status()
        .expect("run tests/apt.sh")
        .success()
}

pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("reqwest")
}

/// Trims each line of an expected table.
pub fn dedent(s: &str) -> String {
    s.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("\n")
}
