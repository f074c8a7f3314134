//! `[limits]`: sizes, timeouts and connection caps of the client-facing listener.

use std::time::Duration;

use serde::Deserialize;

use super::check::{Checker, Section};
use crate::log::entry::MAX_ENTRY_BYTES;
use crate::log::index::MAX_INDEXED_VALUE_BYTES;
use crate::log::seal::COMMITMENT_OVERHEAD_BYTES;

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
    /// The longest subject or record id a request names or a response returns, in bytes.
    pub max_id_bytes: usize,
    /// The longest recipient, in bytes.
    pub max_recipient_bytes: usize,
    /// The longest actor id, display name or role, in bytes.
    pub max_actor_bytes: usize,
    /// The longest justification purpose code or free text, in bytes.
    pub max_justification_bytes: usize,
    /// The longest case reference, in bytes.
    pub max_case_reference_bytes: usize,
    /// The most values one list of an entry may hold: subject ids, record ids, recipients,
    /// returned subject ids, returned record ids (each list on its own).
    pub max_values_per_field: usize,
    /// The most roles an actor may carry.
    pub max_roles: usize,
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
            max_id_bytes: 256,
            max_recipient_bytes: 256,
            max_actor_bytes: 256,
            max_justification_bytes: 4096,
            max_case_reference_bytes: 256,
            max_values_per_field: 500,
            max_roles: 32,
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
    max_id_bytes: Option<i64>,
    max_recipient_bytes: Option<i64>,
    max_actor_bytes: Option<i64>,
    max_justification_bytes: Option<i64>,
    max_case_reference_bytes: Option<i64>,
    max_values_per_field: Option<i64>,
    max_roles: Option<i64>,
}

fn millis_of(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl Section for LimitsConfig {
    const KEY: &'static str = "limits";
    type Raw = RawLimits;

    fn check(raw: RawLimits, c: &mut Checker<'_>) -> Option<Self> {
        let d = LimitsConfig::default();
        let limits = LimitsConfig {
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
            max_id_bytes: c.positive("limits.max_id_bytes", raw.max_id_bytes, d.max_id_bytes),
            max_recipient_bytes: c.positive(
                "limits.max_recipient_bytes",
                raw.max_recipient_bytes,
                d.max_recipient_bytes,
            ),
            max_actor_bytes: c.positive(
                "limits.max_actor_bytes",
                raw.max_actor_bytes,
                d.max_actor_bytes,
            ),
            max_justification_bytes: c.positive(
                "limits.max_justification_bytes",
                raw.max_justification_bytes,
                d.max_justification_bytes,
            ),
            max_case_reference_bytes: c.positive(
                "limits.max_case_reference_bytes",
                raw.max_case_reference_bytes,
                d.max_case_reference_bytes,
            ),
            max_values_per_field: c.positive(
                "limits.max_values_per_field",
                raw.max_values_per_field,
                d.max_values_per_field,
            ),
            max_roles: c.positive("limits.max_roles", raw.max_roles, d.max_roles),
        };
        limits.check_entry_bounds(c);
        Some(limits)
    }
}

impl LimitsConfig {
    /// The log stores an indexed value (an id, a recipient, an actor field, a case reference)
    /// only whole, up to [`MAX_INDEXED_VALUE_BYTES`], and an entry up to [`MAX_ENTRY_BYTES`]:
    /// limits that let a client reach either would turn a long value into a failed append (503)
    /// instead of a logged refusal (400).
    fn check_entry_bounds(&self, c: &mut Checker<'_>) {
        for (key, value) in [
            ("limits.max_id_bytes", self.max_id_bytes),
            ("limits.max_recipient_bytes", self.max_recipient_bytes),
            ("limits.max_actor_bytes", self.max_actor_bytes),
            (
                "limits.max_case_reference_bytes",
                self.max_case_reference_bytes,
            ),
        ] {
            if value > MAX_INDEXED_VALUE_BYTES {
                c.push(
                    key,
                    format!("must be at most {MAX_INDEXED_VALUE_BYTES}, the longest value the log indexes"),
                );
            }
        }
        let largest = self.largest_entry_bytes();
        if largest > MAX_ENTRY_BYTES {
            c.push(
                "limits",
                format!(
                    "these limits allow an entry of {largest} bytes, more than the log's \
                     {MAX_ENTRY_BYTES}: lower max_values_per_field, max_id_bytes, \
                     max_recipient_bytes, max_roles, max_actor_bytes, max_justification_bytes \
                     or max_header_bytes"
                ),
            );
        }
    }

    /// An upper bound on the encoded size of any entry the proxy can write under these limits:
    /// every list full of values at their longest, each with its format-2 commitment, the request
    /// target as long as the head allows, and 4 KiB for the fixed fields.
    pub fn largest_entry_bytes(&self) -> usize {
        let per = |bytes: usize| bytes.saturating_add(COMMITMENT_OVERHEAD_BYTES + 8);
        let n = self.max_values_per_field;
        let ids = n.saturating_mul(per(self.max_id_bytes));
        let intent = ids
            .saturating_mul(2)
            .saturating_add(n.saturating_mul(per(self.max_recipient_bytes)));
        let outcome = ids.saturating_mul(2);
        let actor = (self.max_roles.saturating_add(2)).saturating_mul(per(self.max_actor_bytes));
        let justification = per(self.max_justification_bytes)
            .saturating_mul(2)
            .saturating_add(per(self.max_case_reference_bytes));
        intent
            .max(outcome)
            .saturating_add(actor)
            .saturating_add(justification)
            .saturating_add(per(self.max_header_bytes))
            .saturating_add(4096)
    }
}
