//! Issue 9, finding 5: fail-closed must not become anyone's denial of service. Idle and silent
//! connections are closed, unauthenticated refusals past a per-peer allowance become one
//! aggregated denial entry per window, and the exchange deadline bounds streamed responses.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod proxy_support;

use proxy_support::*;
use s62::log::entry::EntryKind;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Reads until the peer closes (`Some(bytes read)`) or `wait` passes (`None`).
async fn closed_within(sock: &mut TcpStream, wait: Duration) -> Option<usize> {
    let mut total = 0;
    let mut buf = vec![0u8; 16384];
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(deadline, sock.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(total),
            Ok(Ok(n)) => total += n,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_keep_alive_and_silent_connections_are_closed() {
    let upstream = Upstream::start().await;
    let mut cfg = config();
    cfg.limits.idle_timeout = Duration::from_millis(400);
    let sidecar = Sidecar::start(settings(&cfg, upstream.addr)).await;

    // A connection that never sends a byte.
    let mut silent = TcpStream::connect(sidecar.addr).await.expect("connect");
    // A keep-alive connection after one request.
    let mut kept = TcpStream::connect(sidecar.addr).await.expect("connect");
    kept.write_all(b"GET /health HTTP/1.1\r\nHost: r\r\nx-s62-user: pc-4021\r\n\r\n")
        .await
        .expect("send");
    assert!(
        closed_within(&mut silent, Duration::from_secs(5))
            .await
            .is_some(),
        "the silent connection was closed"
    );
    let read = closed_within(&mut kept, Duration::from_secs(5)).await;
    assert!(
        read.is_some_and(|n| n > 0),
        "the response came, then the idle connection was closed"
    );
    sidecar.stop().await;

    // With the default timeout, the same connection stays open for a while.
    let sidecar = Sidecar::start(settings(&config(), upstream.addr)).await;
    let mut silent = TcpStream::connect(sidecar.addr).await.expect("connect");
    assert_eq!(
        closed_within(&mut silent, Duration::from_secs(1)).await,
        None
    );
    sidecar.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_unauthenticated_refusals_is_logged_in_aggregate_per_window() {
    let upstream = Upstream::start().await;
    let mut cfg = config();
    cfg.limits.denials_per_peer = 3;
    cfg.limits.denial_window = Duration::from_secs(2);
    cfg.limits.denial_delay = Duration::from_millis(20);
    let sidecar = Sidecar::start(settings(&cfg, upstream.addr)).await;
    let long = format!("/people/{}", "A".repeat(40_000));
    for i in 0..20 {
        // No identity: 401 each time, whatever the target.
        let target = if i == 0 {
            long.as_str()
        } else {
            "/people/P-1001"
        };
        let r = send_headers("GET", &sidecar.url(target), &[]).await;
        assert_eq!(r.status, 401);
        // Past the allowance the connection is closed after a delay: the flooder pays.
        let closes = r.headers.get("connection").is_some_and(|v| v == "close");
        assert_eq!(closes, i >= 3, "request {i}");
    }
    // An officer's refusals are always logged one by one: someone is accountable for them.
    for _ in 0..5 {
        let r = send("GET", &sidecar.url("/people/P-1001"), None, &[]).await;
        assert_eq!(r.status, 403);
    }
    eventually("the window's aggregated entry is logged", || {
        sidecar.store.of_kind(EntryKind::Denied).iter().any(|e| {
            e.denial
                .as_ref()
                .is_some_and(|d| d.reason == "denials_aggregated")
        })
    })
    .await;
    let store = sidecar.stop().await;
    let denied = store.of_kind(EntryKind::Denied);
    let reasons: Vec<&str> = denied
        .iter()
        .map(|e| e.denial.as_ref().expect("denial").reason.as_str())
        .collect();
    assert_eq!(reasons.iter().filter(|r| **r == "no_identity").count(), 3);
    assert_eq!(
        reasons.iter().filter(|r| **r == "no_justification").count(),
        5
    );
    let aggregated: Vec<_> = denied
        .iter()
        .filter(|e| e.denial.as_ref().expect("denial").reason == "denials_aggregated")
        .collect();
    assert_eq!(aggregated.len(), 1, "{reasons:?}");
    let detail = &aggregated[0].denial.as_ref().expect("denial").detail;
    assert!(detail.starts_with("17 further refusals"), "{detail}");
    assert!(detail.contains("no_identity x17"), "{detail}");
    assert_eq!(
        aggregated[0].actor.as_ref().expect("actor").source_address,
        "127.0.0.1"
    );
    let first = denied[0].request.as_ref().expect("request");
    assert!(
        first.path.len() < 1200,
        "an anonymous target is kept short: {} bytes",
        first.path.len()
    );
    assert_eq!(upstream.hits(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_exchange_deadline_bounds_streamed_and_buffered_responses() {
    let upstream = Upstream::start_tweaked(
        s62::records::Records::demo(),
        Tweaks {
            trickle: Some("/events/bulk/all"),
            ..Tweaks::default()
        },
    )
    .await;
    let slow = Upstream::start_tweaked(
        s62::records::Records::demo(),
        Tweaks {
            trickle: Some("/health"),
            ..Tweaks::default()
        },
    )
    .await;
    let mut cfg = config();
    cfg.limits.exchange_timeout = Duration::from_millis(800);
    let sidecar = Sidecar::start(settings(&cfg, upstream.addr)).await;
    let other = Sidecar::start(settings(&cfg, slow.addr)).await;

    // A streamed download that never ends: it is cut at the deadline.
    let mut sock = TcpStream::connect(sidecar.addr).await.expect("connect");
    sock.write_all(
        b"GET /events/bulk/all HTTP/1.1\r\nHost: r\r\nx-s62-user: pc-4021\r\nx-s62-purpose: audit\r\n\r\n",
    )
    .await
    .expect("send");
    let started = std::time::Instant::now();
    assert!(
        closed_within(&mut sock, Duration::from_secs(10))
            .await
            .is_some(),
        "the stream ended"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    // A buffered response that never completes: 504.
    let r = send("GET", &other.url("/health"), None, &[]).await;
    assert_eq!(r.status, 504);

    eventually("the streamed outcome is logged", || {
        !sidecar.store.of_kind(EntryKind::Outcome).is_empty()
    })
    .await;
    let store = sidecar.stop().await;
    let o = store.of_kind(EntryKind::Outcome)[0]
        .outcome
        .clone()
        .expect("outcome");
    assert!(o.streamed);
    assert_eq!(o.error, "exchange_timeout");
    let other_store = other.stop().await;
    let o = other_store.of_kind(EntryKind::Outcome)[0]
        .outcome
        .clone()
        .expect("outcome");
    assert_eq!((o.status, o.error.as_str()), (504, "exchange_timeout"));
}
