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
    pub request_timeout: Duration,
    pub max_connections: usize,
    /// On SIGTERM, how long requests in flight may take to finish (and log their outcomes).
    pub shutdown_grace: Duration,
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
        })
    }
}
