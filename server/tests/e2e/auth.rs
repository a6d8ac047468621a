//! Token authentication on both ports.

use ingot_proto::v1::WriteRequest;
use ingot_proto::v1::write_request::Payload;
use reqwest::StatusCode;

use crate::support::{TestServer, count, http};

fn lp(text: &str) -> WriteRequest {
    WriteRequest {
        payload: Some(Payload::LineProtocol(text.into())),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_is_required_on_grpc_and_http_but_not_for_health() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::spawn(dir.path(), &["--token", "s3cret"]);

    // gRPC: none, wrong, right.
    let mut anonymous = server.client().await;
    let e = anonymous
        .write(lp("a v=1 1"))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("Unauthenticated") || e.contains("unauthenticated"),
        "{e}"
    );
    let e = anonymous.query("SELECT 1").await.unwrap_err().to_string();
    assert!(
        e.to_lowercase().contains("unauthenticated") || e.contains("authorization"),
        "{e}"
    );
    let mut wrong = server.client_with_token("nope").await;
    assert!(wrong.write(lp("a v=1 1")).await.is_err());
    assert!(wrong.query("SELECT 1").await.is_err());
    // The Token scheme works on gRPC too.
    let mut token_scheme = server.client().await;
    token_scheme.set_flight_header("authorization", "Token s3cret");
    assert_eq!(count(&mut token_scheme, "SELECT 7").await, 7);
    let mut good = server.client_with_token("s3cret").await;
    good.write(lp("a v=1 1")).await.unwrap();
    assert_eq!(count(&mut good, "SELECT count(*) FROM a").await, 1);

    // Flight handshake with the token as password gives a bearer token.
    let channel = tonic::transport::Channel::from_shared(server.grpc_url())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut flight = arrow_flight::sql::client::FlightSqlServiceClient::new(channel);
    let _ = flight.handshake("any", "s3cret").await.expect("handshake");
    assert_eq!(flight.token().map(String::as_str), Some("s3cret"));
    flight.clear_token();
    assert!(flight.handshake("any", "wrong").await.is_err());

    // HTTP: none, wrong, Bearer, Token.
    let client = http();
    let write = |auth: Option<&'static str>| {
        let mut r = client
            .post(server.http_url("/api/v2/write?bucket=public"))
            .body("a v=2 2");
        if let Some(a) = auth {
            r = r.header("Authorization", a);
        }
        r.send()
    };
    assert_eq!(
        write(None).await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        write(Some("Bearer wrong")).await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        write(Some("Bearer s3cret")).await.unwrap().status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        write(Some("Token s3cret")).await.unwrap().status(),
        StatusCode::NO_CONTENT
    );
    let q = client
        .get(server.http_url("/api/v3/query_sql?q=SELECT%201"))
        .send()
        .await
        .unwrap();
    assert_eq!(q.status(), StatusCode::UNAUTHORIZED);
    let m = client
        .get(server.http_url("/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(m.status(), StatusCode::UNAUTHORIZED);
    let h = client.get(server.http_url("/health")).send().await.unwrap();
    assert_eq!(h.status(), StatusCode::OK);
}
