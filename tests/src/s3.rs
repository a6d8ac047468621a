//! An S3-compatible server for tests: moto on 127.0.0.1, started through
//! `tests/s3/serve.sh` (which installs it in a cached virtual environment)
//! and stopped when the [`S3Server`] is dropped.
//!
//! The server's end-to-end tests include this file as a module of their own
//! (they cannot depend on this crate), so it uses only what both have.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use ingot_engine::object_store_from_url_with;

/// How long the first start may take: it installs moto with pip.
const START_TIMEOUT: Duration = Duration::from_secs(300);

/// A running S3-compatible server with one bucket, `ingot`.
pub struct S3Server {
    child: Child,
    /// Held open: the server stops when it closes.
    _stdin: ChildStdin,
    pub endpoint: String,
}

/// The bucket every test server has.
pub const BUCKET: &str = "ingot";

impl S3Server {
    /// Starts a server, or returns `None` (with the reason printed) when the
    /// Python environment for it cannot be set up on this machine.
    pub fn start() -> Option<S3Server> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        // From this crate (`tests/`) and from the server's (`server/`) alike.
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/s3/serve.sh");
        let mut child = Command::new("bash")
            .arg(&script)
            .arg(port.to_string())
            .arg(BUCKET)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("run tests/s3/serve.sh");
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if line.trim() == "ready" {
                    let _ = tx.send(());
                    break;
                }
            }
        });
        match rx.recv_timeout(START_TIMEOUT) {
            Ok(()) => Some(S3Server {
                child,
                _stdin: stdin,
                endpoint: format!("http://127.0.0.1:{port}"),
            }),
            Err(_) => {
                let _ = child.kill();
                let status = child.wait().ok().and_then(|s| s.code());
                if status == Some(77) {
                    eprintln!(
                        "skipped: no Python environment for the S3 server (tests/s3/serve.sh)"
                    );
                    return None;
                }
                panic!("the S3 server did not start within {START_TIMEOUT:?} (exit {status:?})");
            }
        }
    }

    /// The settings that reach this server (see
    /// [`ingot_engine::object_store_from_url_with`]).
    #[allow(dead_code)] // the server's tests use `env`
    pub fn settings(&self) -> Vec<(&'static str, String)> {
        vec![
            ("aws_endpoint", self.endpoint.clone()),
            ("aws_region", "us-east-1".into()),
            ("aws_access_key_id", "ingot".into()),
            ("aws_secret_access_key", "ingot-secret".into()),
        ]
    }

    /// The same settings as environment variables, for a child process.
    #[allow(dead_code)] // this crate's tests use `settings`
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT", self.endpoint.clone()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_ACCESS_KEY_ID", "ingot".into()),
            ("AWS_SECRET_ACCESS_KEY", "ingot-secret".into()),
        ]
    }

    /// The store at `s3://ingot/{prefix}`.
    #[allow(dead_code)]
    pub fn store(&self, prefix: &str) -> Arc<dyn object_store::ObjectStore> {
        object_store_from_url_with(&format!("s3://{BUCKET}/{prefix}"), self.settings())
            .expect("open the test bucket")
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
