//! A server started in-process through the library (as the bench does).

use ingot_server::client::Client;
use ingot_server::{ServeConfig, Server};

use crate::support::{count, http};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn library_server_starts_serves_and_shuts_down() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = ServeConfig::new(dir.path());
    config.grpc_addr = "127.0.0.1:0".into();
    config.http_addr = "127.0.0.1:0".into();
    let server = Server::start(config.clone()).await.expect("start");
    let response = http()
        .post(format!("http://{}/write?db=lib", server.http_addr()))
        .body("inproc,k=a v=1 1\ninproc,k=b v=2 2")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), reqwest::StatusCode::NO_CONTENT);
    let mut client = Client::connect(&format!("http://{}", server.grpc_addr()), None, None)
        .await
        .unwrap();
    assert_eq!(
        count(&mut client, "SELECT count(*) FROM lib.inproc").await,
        2
    );
    drop(client);
    server.shutdown().await.expect("shutdown");

    // The directory is released and the data persisted.
    let server = Server::start(config).await.expect("restart");
    let mut client = Client::connect(&format!("http://{}", server.grpc_addr()), None, None)
        .await
        .unwrap();
    assert_eq!(
        count(&mut client, "SELECT count(*) FROM lib.inproc").await,
        2
    );
    drop(client);
    server.shutdown().await.expect("shutdown");
}
