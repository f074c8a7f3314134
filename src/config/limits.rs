//! `[limits]`: sizes, timeouts and connection caps of the client-facing listener.

use std::time::Duration;

use serde::Deserialize;

use super::check::{Checker, Section};

/// `[limits]`.
#[derive(Clone, Debug, PartialEq)]
pub struct LimitsConfig {
    pub max_request_body_bytes: usize,
    /// Responses up to this size are held until their outcome entry is durable; larger ones stream.
    pub max_buffered_response_bytes: usize,
    pub max_header_bytes: usize,
    /// Reading the request body.
    pub request_timeout: Duration,
    pub max_connections: usize,
    /// On SIGTERM, how long requests in flight may take to finish (and log their outcomes).
    pub shutdown_grace: Duration,
    /// From a connection's first byte (or the end of its previous request) to the end of the
    /// next request head (HTTP/1.1).
    pub header_read_timeout: Duration,
    /// A connection with no request in flight and no byte moving for this long is closed:
    /// idle keep-alive and half-open connections do not hold slots.
    pub idle_timeout: Duration,
    /// HTTP/2 PING interval, and how long to wait for the answer before closing.
    pub http2_keepalive_interval: Duration,
    pub http2_keepalive_timeout: Duration,
    /// Streams one HTTP/2 connection may have open at once.
    pub max_concurrent_streams: u32,
    /// The whole exchange, first byte in to last byte out, streamed responses included; past
    /// it the response ends in error and its outcome says `exchange_timeout`.
    pub exchange_timeout: Duration,
    /// Refusals of unauthenticated requests logged one by one per peer address per window;
    /// past that, one aggregated denial entry per peer per window.
    pub denials_per_peer: usize,
    /// The window of `denials_per_peer`, and of the aggregated TLS handshake failure entries.
    pub denial_window: Duration,
    /// Past the allowance, how long a refusal waits before it is answered (on a connection
    /// that is then closed): a flood costs its sender time, not everyone else CPU.
    pub denial_delay: Duration,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_request_body_bytes: 1 << 20,
            max_buffered_response_bytes: 8 << 20,
            max_header_bytes: 64 << 10,
            request_timeout: Duration::from_secs(30),
            max_connections: 4096,
            shutdown_grace: Duration::from_secs(30),
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            http2_keepalive_interval: Duration::from_secs(20),
            http2_keepalive_timeout: Duration::from_secs(10),
            max_concurrent_streams: 32,
            exchange_timeout: Duration::from_secs(300),
            denials_per_peer: 10,
            denial_window: Duration::from_secs(10),
            denial_delay: Duration::from_millis(250),
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLimits {
    max_request_body_bytes: Option<i64>,
    max_buffered_response_bytes: Option<i64>,
    max_header_bytes: Option<i64>,
    request_timeout_ms: Option<i64>,
    max_connections: Option<i64>,
    shutdown_grace_ms: Option<i64>,
    header_read_timeout_ms: Option<i64>,
    idle_timeout_ms: Option<i64>,
    http2_keepalive_interval_ms: Option<i64>,
    http2_keepalive_timeout_ms: Option<i64>,
    max_concurrent_streams: Option<i64>,
    exchange_timeout_ms: Option<i64>,
    denials_per_peer: Option<i64>,
    denial_window_ms: Option<i64>,
    denial_delay_ms: Option<i64>,
}

fn millis_of(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl Section for LimitsConfig {
    const KEY: &'static str = "limits";
    type Raw = RawLimits;

    fn check(raw: RawLimits, c: &mut Checker<'_>) -> Option<Self> {
        let d = LimitsConfig::default();
        Some(LimitsConfig {
            max_request_body_bytes: c.positive(
                "limits.max_request_body_bytes",
                raw.max_request_body_bytes,
                d.max_request_body_bytes,
            ),
            max_buffered_response_bytes: c.positive(
                "limits.max_buffered_response_bytes",
                raw.max_buffered_response_bytes,
                d.max_buffered_response_bytes,
            ),
            max_header_bytes: c.positive(
                "limits.max_header_bytes",
                raw.max_header_bytes,
                d.max_header_bytes,
            ),
            request_timeout: c.millis(
                "limits.request_timeout_ms",
                raw.request_timeout_ms,
                millis_of(d.request_timeout),
            ),
            max_connections: c.positive(
                "limits.max_connections",
                raw.max_connections,
                d.max_connections,
            ),
            shutdown_grace: c.millis(
                "limits.shutdown_grace_ms",
                raw.shutdown_grace_ms,
                millis_of(d.shutdown_grace),
            ),
            header_read_timeout: c.millis(
                "limits.header_read_timeout_ms",
                raw.header_read_timeout_ms,
                millis_of(d.header_read_timeout),
            ),
            idle_timeout: c.millis(
                "limits.idle_timeout_ms",
                raw.idle_timeout_ms,
                millis_of(d.idle_timeout),
            ),
            http2_keepalive_interval: c.millis(
                "limits.http2_keepalive_interval_ms",
                raw.http2_keepalive_interval_ms,
                millis_of(d.http2_keepalive_interval),
            ),
            http2_keepalive_timeout: c.millis(
                "limits.http2_keepalive_timeout_ms",
                raw.http2_keepalive_timeout_ms,
                millis_of(d.http2_keepalive_timeout),
            ),
            max_concurrent_streams: u32::try_from(c.positive(
                "limits.max_concurrent_streams",
                raw.max_concurrent_streams,
                d.max_concurrent_streams as usize,
            ))
            .unwrap_or(u32::MAX),
            exchange_timeout: c.millis(
                "limits.exchange_timeout_ms",
                raw.exchange_timeout_ms,
                millis_of(d.exchange_timeout),
            ),
            denials_per_peer: c.positive(
                "limits.denials_per_peer",
                raw.denials_per_peer,
                d.denials_per_peer,
            ),
            denial_window: c.millis(
                "limits.denial_window_ms",
                raw.denial_window_ms,
                millis_of(d.denial_window),
            ),
            denial_delay: c.millis(
                "limits.denial_delay_ms",
                raw.denial_delay_ms,
                millis_of(d.denial_delay),
            ),
        })
    }
}
