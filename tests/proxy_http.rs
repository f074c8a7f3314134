//! HTTP correctness of the proxy, byte by byte where it matters: malformed requests, header and
//! body limits, invalid JSON, chunked bodies, HEAD, 100-continue, hop-by-hop headers, forwarding
//! headers, request ids, HTTP/2, and headers from untrusted peers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod proxy_support;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use proxy_support::*;
use s62::log::entry::EntryKind;
use serde_json::json;
use sha2::{Digest, Sha256};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Sends raw bytes and reads the reply until the server closes or `wait` passes.
async fn raw(addr: std::net::SocketAddr, bytes: &[u8], wait: Duration) -> String {
    let mut sock = TcpStream::connect(addr).await.expect("connect");
    sock.write_all(bytes).await.expect("send");
    let mut got = Vec::new();
    let mut buf = [0u8; 16384];
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(deadline, sock.read(&mut buf)).await {
            Err(_) | Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

const OFFICER: &str = "x-s62-user: pc-4021\r\nx-s62-purpose: investigation\r\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_are_answered_400_and_the_proxy_keeps_serving() {
    let upstream = Upstream::start().await;
    let sidecar = Sidecar::start(settings(&config(), upstream.addr)).await;
    for junk in [
        &b"GARBAGE\r\n\r\n"[..],
        b"GET /people HTTP/9.9\r\n\r\n",
        b"GET /people HTTP/1.1\r\nHost: a\r\nContent-Length: nope\r\n\r\n",
        b"GET /people HTTP/1.1\r\nBad Header\r\n\r\n",
        b"\x00\x01\x02\x03\r\n\r\n",
    ] {
        let reply = raw(sidecar.addr, junk, Duration::from_secs(2)).await;
        assert!(
            reply.starts_with("HTTP/1.1 400"),
            "{:?} got {reply:?}",
            String::from_utf8_lossy(junk)
        );
    }
    // Ambiguous paths are refused before routing (the upstream could normalise them differently).
    let reply = raw(
        sidecar.addr,
        format!(
            "GET /people/../../internal HTTP/1.1\r\nHost: a\r\n{OFFICER}Connection: close\r\n\r\n"
        )
        .as_bytes(),
        Duration::from_secs(2),
    )
    .await;
    assert!(reply.starts_with("HTTP/1.1 400"), "{reply}");
    assert!(reply.contains("urn:s62:problem:ambiguous_path"));

    let ok = send("GET", &sidecar.url("/people/P-1002"), None, JUSTIFIED).await;
    assert_eq!(ok.status, 200, "still serving");
    assert_eq!(upstream.hits(), 1);
    sidecar.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_headers_are_refused_with_431() {
    let upstream = Upstream::start().await;
    let mut cfg = config();
    cfg.limits.max_header_bytes = 2048;
    let sidecar = Sidecar::start(settings(&cfg, upstream.addr)).await;
    // Over the configured limit but inside hyper's buffer: a problem document, logged as denied.
    let padding = "a".repeat(3000);
    let reply = raw(
        sidecar.addr,
        format!("GET /people/P-1001 HTTP/1.1\r\nHost: a\r\n{OFFICER}x-pad: {padding}\r\nConnection: close\r\n\r\n")
            .as_bytes(),
        Duration::from_secs(2),
    )
    .await;
    assert!(reply.starts_with("HTTP/1.1 431"), "{reply}");
    assert!(reply.contains("application/problem+json"));
    // Far over: hyper refuses while reading the head.
    let padding = "a".repeat(64 * 1024);
    let reply = raw(
        sidecar.addr,
        format!("GET /people/P-1001 HTTP/1.1\r\nHost: a\r\n{OFFICER}x-pad: {padding}\r\n\r\n")
            .as_bytes(),
        Duration::from_secs(2),
    )
    .await;
    assert!(reply.starts_with("HTTP/1.1 431"), "{reply:.80}");
    assert_eq!(upstream.hits(), 0);
    let store = sidecar.stop().await;
    let denied = store.of_kind(EntryKind::Denied);
    assert_eq!(denied.len(), 1);
    assert_eq!(
        denied[0].denial.as_ref().expect("denial").reason,
        "headers_too_large"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_bodies_are_refused_with_413_declared_or_chunked() {
    let upstream = Upstream::start().await;
    let mut cfg = config();
    cfg.limits.max_request_body_bytes = 1024;
    let sidecar = Sidecar::start(settings(&cfg, upstream.addr)).await;
    let big = json!({"given_name": "x".repeat(2000)});
    let r = send("POST", &sidecar.url("/people"), Some(big), &[]).await;
    assert_eq!(r.status, 413);
    assert_eq!(r.json()["type"], "urn:s62:problem:body_too_large");

    // Chunked, no length declared: refused once the limit is passed.
    let chunk = "y".repeat(600);
    let req = format!(
        "POST /people HTTP/1.1\r\nHost: a\r\n{OFFICER}Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n\
         {:x}\r\n{chunk}\r\n{:x}\r\n{chunk}\r\n0\r\n\r\n",
        chunk.len(),
        chunk.len()
    );
    let reply = raw(sidecar.addr, req.as_bytes(), Duration::from_secs(2)).await;
    assert!(reply.starts_with("HTTP/1.1 413"), "{reply}");
    assert_eq!(upstream.hits(), 0);
    let store = sidecar.stop().await;
    let denied = store.of_kind(EntryKind::Denied);
    assert_eq!(denied.len(), 2);
    assert!(
        denied
            .iter()
            .all(|d| d.denial.as_ref().expect("denial").reason == "body_too_large")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_json_body_is_refused_because_its_ids_cannot_be_logged() {
    let upstream = Upstream::start().await;
    let sidecar = Sidecar::start(settings(&config(), upstream.addr)).await;
    let truncated = r#"{"recipient": "CPS", "people": [{"id": "P-1001"}"#;
    let reply = raw(
        sidecar.addr,
        format!(
            "POST /exports HTTP/1.1\r\nHost: a\r\n{OFFICER}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{truncated}",
            truncated.len()
        )
        .as_bytes(),
        Duration::from_secs(2),
    )
    .await;
    assert!(reply.starts_with("HTTP/1.1 400"), "{reply}");
    assert!(reply.contains("urn:s62:problem:invalid_json_body"));
    assert_eq!(upstream.hits(), 0);
    let store = sidecar.stop().await;
    assert_eq!(
        store.of_kind(EntryKind::Denied)[0]
            .denial
            .as_ref()
            .expect("denial")
            .reason,
        "invalid_json_body"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunked_body_is_buffered_digested_and_forwarded_with_a_length() {
    let upstream = Upstream::start().await;
    let sidecar = Sidecar::start(settings(&config(), upstream.addr)).await;
    let body = r#"{"given_name":"Ruth","family_name":"Okafor"}"#;
    let (a, b) = body.split_at(10);
    let req = format!(
        "POST /people HTTP/1.1\r\nHost: a\r\n{OFFICER}Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n\
         {:x}\r\n{a}\r\n{:x}\r\n{b}\r\n0\r\n\r\n",
        a.len(),
        b.len()
    );
    let reply = raw(sidecar.addr, req.as_bytes(), Duration::from_secs(2)).await;
    assert!(reply.starts_with("HTTP/1.1 201"), "{reply}");
    let seen = upstream
        .last_headers
        .lock()
        .expect("lock")
        .clone()
        .expect("headers");
    assert_eq!(seen["content-length"], body.len().to_string().as_str());
    assert!(!seen.contains_key("transfer-encoding"));
    assert_eq!(
        upstream
            .bodies
            .lock()
            .expect("lock")
            .last()
            .expect("body")
            .as_ref(),
        body.as_bytes()
    );
    let store = sidecar.stop().await;
    let intent = &store.of_kind(EntryKind::Intent)[0];
    let req = intent.request.as_ref().expect("request");
    assert_eq!(req.body_sha256, Sha256::digest(body.as_bytes()).to_vec());
    assert_eq!(req.body_bytes, body.len() as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expect_100_continue_is_honoured_and_head_has_no_body() {
    let upstream = Upstream::start().await;
    let sidecar = Sidecar::start(settings(&config(), upstream.addr)).await;
    let body = r#"{"given_name":"Ada"}"#;
    let mut sock = TcpStream::connect(sidecar.addr).await.expect("connect");
    sock.write_all(
        format!(
            "POST /people HTTP/1.1\r\nHost: a\r\n{OFFICER}Content-Type: application/json\r\nContent-Length: {}\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    )
    .await
    .expect("head");
    let mut buf = vec![0u8; 1024];
    let n = tokio::time::timeout(Duration::from_secs(2), sock.read(&mut buf))
        .await
        .expect("interim")
        .expect("read");
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 100 Continue"));
    sock.write_all(body.as_bytes()).await.expect("body");
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(2), sock.read_to_end(&mut rest)).await;
    assert!(String::from_utf8_lossy(&rest).starts_with("HTTP/1.1 201"));

    let head = raw(
        sidecar.addr,
        format!("HEAD /people/P-1001 HTTP/1.1\r\nHost: a\r\n{OFFICER}Connection: close\r\n\r\n")
            .as_bytes(),
        Duration::from_secs(2),
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.ends_with("\r\n\r\n"), "no body after the head: {head}");
    let store = sidecar.stop().await;
    assert_eq!(store.of_kind(EntryKind::Outcome).len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hop_by_hop_headers_are_dropped_and_this_hop_is_recorded() {
    let upstream = Upstream::start().await;
    let sidecar = Sidecar::start(settings(&config(), upstream.addr)).await;
    let r = send(
        "GET",
        &sidecar.url("/people/P-1001"),
        None,
        &[
            ("x-s62-purpose", "investigation"),
            ("connection", "x-private-hop"),
            ("x-private-hop", "secret"),
            ("proxy-authorization", "Basic c2VjcmV0"),
            ("te", "trailers"),
            ("x-forwarded-for", "198.51.100.7"),
            ("x-request-id", "case-44260103-req-1"),
            ("accept", "application/json"),
        ],
    )
    .await;
    assert_eq!(r.status, 200);
    let id = r.headers["x-request-id"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert_ne!(
        id, "case-44260103-req-1",
        "the logged request id is always generated"
    );
    let seen = upstream
        .last_headers
        .lock()
        .expect("lock")
        .clone()
        .expect("headers");
    for gone in ["x-private-hop", "proxy-authorization", "te"] {
        assert!(!seen.contains_key(gone), "{gone} was forwarded");
    }
    assert_eq!(seen["accept"], "application/json");
    assert_eq!(seen["x-forwarded-for"], "198.51.100.7, 127.0.0.1");
    assert!(
        seen["forwarded"]
            .to_str()
            .expect("ascii")
            .starts_with("for=\"127.0.0.1:")
    );
    assert_eq!(seen["x-request-id"], id.as_str());
    assert_eq!(
        seen["x-s62-user"], "pc-4021",
        "a trusted gateway's identity header passes"
    );
    let store = sidecar.stop().await;
    let intent = &store.of_kind(EntryKind::Intent)[0];
    let logged = intent.request.as_ref().expect("request");
    assert_eq!(logged.request_id, id);
    assert_eq!(
        logged.client_request_id, "case-44260103-req-1",
        "the client's own id is kept beside it"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_headers_from_an_untrusted_peer_are_ignored_and_not_forwarded() {
    let upstream = Upstream::start().await;
    // Loopback is not a trusted gateway here.
    let mut cfg = config();
    cfg.identity.trusted_peers = vec!["10.20.0.0/16".parse().expect("cidr")];
    let sidecar = Sidecar::start(settings(&cfg, upstream.addr)).await;
    let r = send("GET", &sidecar.url("/people/P-1001"), None, JUSTIFIED).await;
    assert_eq!(r.status, 401);
    let detail = r.json()["detail"].as_str().expect("detail").to_owned();
    assert!(detail.contains("x-s62-user header was ignored"), "{detail}");
    assert!(
        !detail.contains("pc-4021"),
        "the claimed identity is not echoed"
    );
    assert_eq!(upstream.hits(), 0);
    let store = sidecar.stop().await;
    let d = &store.of_kind(EntryKind::Denied)[0];
    assert_eq!(
        d.actor.as_ref().expect("actor").id,
        "",
        "the claimed identity was not believed"
    );
    assert!(
        d.denial
            .as_ref()
            .expect("denial")
            .detail
            .contains("ignored")
    );

    // With identity optional, the request goes through anonymously and the claim is stripped.
    cfg.identity.required = false;
    let sidecar = Sidecar::start(settings(&cfg, upstream.addr)).await;
    let r = send("GET", &sidecar.url("/people/P-1001"), None, JUSTIFIED).await;
    assert_eq!(r.status, 200);
    let seen = upstream
        .last_headers
        .lock()
        .expect("lock")
        .clone()
        .expect("headers");
    for gone in ["x-s62-user", "x-s62-user-name", "x-s62-roles"] {
        assert!(
            !seen.contains_key(gone),
            "{gone} reached the upstream from an untrusted peer"
        );
    }
    sidecar.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_requests_are_proxied_and_logged() {
    let upstream = Upstream::start().await;
    let sidecar = Sidecar::start(settings(&config(), upstream.addr)).await;
    let tcp = TcpStream::connect(sidecar.addr).await.expect("connect");
    let (mut send_req, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .expect("h2 handshake");
    tokio::spawn(conn);
    let mut ids = Vec::new();
    for id in ["P-1001", "P-1002", "P-1003"] {
        let req = http::Request::get(format!("http://{}/people/{id}", sidecar.addr))
            .header("x-s62-user", "pc-4021")
            .header("x-s62-purpose", "investigation")
            .body(Full::new(Bytes::new()))
            .expect("request");
        let resp = send_req.send_request(req).await.expect("response");
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.version(), http::Version::HTTP_2);
        let body = resp.into_body().collect().await.expect("body").to_bytes();
        let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
        ids.push(v["id"].as_str().expect("id").to_owned());
    }
    assert_eq!(ids, ["P-1001", "P-1002", "P-1003"]);
    let store = sidecar.stop().await;
    assert_eq!(store.of_kind(EntryKind::Outcome).len(), 3);
}
