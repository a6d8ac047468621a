//! TLS on both ports with a self-signed certificate made for the test.

use ingot_proto::v1::WriteRequest;
use ingot_proto::v1::write_request::Payload;
use ingot_server::client::Client;
use reqwest::StatusCode;

use crate::support::{TestServer, count};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_ports_serve_tls() {
    let dir = tempfile::tempdir().unwrap();
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let cert_pem = certified.cert.pem();
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    std::fs::write(&cert, &cert_pem).unwrap();
    std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();
    let data = dir.path().join("data");
    let server = TestServer::spawn(
        &data,
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
            "--token",
            "tls-token",
        ],
    );

    // gRPC: write and query over TLS.
    let url = format!("https://{}", server.grpc_addr);
    let mut client = Client::connect(&url, Some("tls-token"), Some(cert_pem.clone().into_bytes()))
        .await
        .expect("TLS connect");
    client
        .write(WriteRequest {
            payload: Some(Payload::LineProtocol("sec,k=a v=1 1\n".into())),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(count(&mut client, "SELECT count(*) FROM sec").await, 1);

    // Plain text to the TLS port fails.
    let plain = Client::connect(&server.grpc_url(), Some("tls-token"), None).await;
    if let Ok(mut plain) = plain {
        assert!(plain.query("SELECT 1").await.is_err());
    }

    // HTTPS.
    let web = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert_pem.as_bytes()).unwrap())
        .timeout(std::time::Duration::from_secs(60))
        .build()
        .unwrap();
    let base = format!("https://{}", server.http_addr);
    let r = web.get(format!("{base}/health")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = web
        .post(format!("{base}/api/v2/write?bucket=public"))
        .header("Authorization", "Token tls-token")
        .body("sec,k=b v=2 2")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = web
        .get(format!("{base}/api/v3/query_sql"))
        .header("Authorization", "Bearer tls-token")
        .query(&[("q", "SELECT count(*) AS n FROM sec")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap(), r#"[{"n":2}]"#);
    assert!(
        reqwest::get(server.http_url("/health")).await.is_err(),
        "plain HTTP to the TLS port must fail"
    );
}
