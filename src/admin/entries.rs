//! Purpose-bound local reads: a local operator reads the log with its personal values only for an
//! s62(4) purpose and a case reference, and the read is itself logged, as an `audit-query` entry
//! (call `entries`) that is durable before anything is returned and a closing one after it.
//!
//! One [`read`] serves both ways in: `s62 entries --purpose` with a writer of its own when no
//! sidecar holds the log folder, and `POST /entries` on the running sidecar's admin listener
//! ([`handle`]), which answers loopback peers only ([`is_loopback`]), whatever address the
//! listener is bound to. If an entry cannot be written, nothing is read or returned.
//!
//! Must not import RocksDB (the log is read through the [`Store`] trait), the proxy or the query
//! service's transport.

use super::{AdminState, text};
use crate::ingest::{AppendError, LogWriter};
use crate::log::entry::{Actor, AuditPurpose, AuditQuery, AuthMethod, Entry, EntryKind, Outcome};
use crate::log::store::{LogStore, Store, StoreError};
use crate::query::purpose::MAX_CASE_REFERENCE;
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

/// The `call` recorded on the audit-query entries of a local read.
pub const CALL: &str = "entries";
/// Most entries one logged read returns; a larger read is refused, a read without a limit gets
/// this many and says where to continue.
pub const MAX_ENTRIES: u64 = 10_000;
/// Longest `actor` accepted, in characters.
pub const MAX_ACTOR: usize = 200;
/// Largest request body `POST /entries` reads.
const MAX_BODY_BYTES: usize = 8 * 1024;
/// Response header: the seq of the opening audit-query entry.
pub const AUDIT_SEQ_HEADER: &str = "s62-audit-seq";
/// Response header, when more entries were in the log before the read began: where to continue.
pub const NEXT_FROM_HEADER: &str = "s62-next-from";

/// A local read as asked: the JSON body of `POST /entries`, and what `s62 entries` builds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntriesRequest {
    /// The first seq to return.
    #[serde(default)]
    pub from: u64,
    /// How many entries at most ([`MAX_ENTRIES`] when absent).
    #[serde(default)]
    pub limit: Option<u64>,
    /// An s62(4) purpose as the query CLI spells it, e.g. `integrity-and-security`.
    pub purpose: String,
    pub case_reference: String,
    /// Who reads: recorded as the actor id of the audit-query entries (stated, not authenticated).
    pub actor: String,
}

/// A checked local read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckedRead {
    pub from: u64,
    pub limit: u64,
    pub purpose: AuditPurpose,
    pub case_reference: String,
    pub actor: String,
}

/// Why a local read was refused before anything was written or read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReadRefused {
    /// Not one of the four s62(4) purposes.
    #[error(
        "the purpose must be one of lawfulness, self-monitoring, integrity-and-security or \
         criminal-proceedings (DPA 2018 s62(4)); a Commissioner request goes through the query \
         service's commissioner role"
    )]
    Purpose,
    /// A required value is blank.
    #[error("{0} is required")]
    Missing(&'static str),
    /// A value is longer than allowed.
    #[error("{what} is longer than {max} characters")]
    TooLong { what: &'static str, max: usize },
    /// A value holds control characters.
    #[error("{0} contains control characters")]
    Control(&'static str),
    /// The limit is 0 or above [`MAX_ENTRIES`].
    #[error(
        "the limit must be between 1 and {MAX_ENTRIES} (one logged read each; continue with --from)"
    )]
    Limit,
}

fn checked_text(what: &'static str, value: &str, max: usize) -> Result<String, ReadRefused> {
    let v = value.trim();
    if v.is_empty() {
        return Err(ReadRefused::Missing(what));
    }
    if v.chars().count() > max {
        return Err(ReadRefused::TooLong { what, max });
    }
    if v.chars().any(char::is_control) {
        return Err(ReadRefused::Control(what));
    }
    Ok(v.to_owned())
}

impl EntriesRequest {
    /// Checks the purpose (an s62(4) one: not `commissioner-request`, which is the Commissioner's
    /// own route), the case reference and actor (non-blank, bounded, no control characters) and
    /// the limit.
    pub fn check(&self) -> Result<CheckedRead, ReadRefused> {
        let purpose = match AuditPurpose::from_label(self.purpose.trim()) {
            Some(
                p @ (AuditPurpose::Lawfulness
                | AuditPurpose::SelfMonitoring
                | AuditPurpose::IntegrityAndSecurity
                | AuditPurpose::CriminalProceedings),
            ) => p,
            _ => return Err(ReadRefused::Purpose),
        };
        let case_reference = checked_text(
            "the case reference",
            &self.case_reference,
            MAX_CASE_REFERENCE,
        )?;
        let actor = checked_text("the actor", &self.actor, MAX_ACTOR)?;
        let limit = match self.limit {
            None => MAX_ENTRIES,
            Some(n) if (1..=MAX_ENTRIES).contains(&n) => n,
            Some(_) => return Err(ReadRefused::Limit),
        };
        Ok(CheckedRead {
            from: self.from,
            limit,
            purpose,
            case_reference,
            actor,
        })
    }
}

/// What a logged read returns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadPage {
    /// Seq of the opening audit-query entry; the read covers entries before it.
    pub audit_seq: u64,
    /// One JSON object per line ([`crate::render::entry_json`], values put back, redacted values
    /// listed in `redacted`).
    pub body: Vec<u8>,
    pub returned: u64,
    /// Set when the log held more entries before the read began: the first seq not returned.
    pub next_from: Option<u64>,
}

/// Why a logged read returned nothing.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// An audit-query entry could not be written: nothing is returned.
    #[error("the audit-query entry could not be written, so nothing is returned: {0}")]
    Log(#[source] AppendError),
    /// The log could not be read.
    #[error("reading the log failed: {0}")]
    Store(#[source] StoreError),
    /// The blocking read task failed.
    #[error("the read task failed: {0}")]
    Task(String),
}

/// The opening audit-query entry of a local read by `actor`, from `source` (`cli`, or the
/// admin listener's loopback peer address).
fn opening_entry(read: &CheckedRead, actor: &Actor) -> Entry {
    let filter = serde_json::json!({"from": read.from, "limit": read.limit}).to_string();
    Entry {
        kind: EntryKind::AuditQuery as i32,
        actor: Some(actor.clone()),
        justification: Some(crate::log::entry::Justification {
            purpose_code: read.purpose.label().to_owned(),
            text: String::new(),
            case_reference: read.case_reference.clone(),
        }),
        audit_query: Some(AuditQuery {
            purpose: read.purpose as i32,
            case_reference: read.case_reference.clone(),
            call: CALL.to_owned(),
            filter_json: filter,
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The closing entry: how many entries were returned and how the read ended.
fn closing_entry(
    read: &CheckedRead,
    actor: &Actor,
    open_seq: u64,
    returned: u64,
    status: u16,
) -> Entry {
    Entry {
        kind: EntryKind::AuditQuery as i32,
        actor: Some(actor.clone()),
        answers_seq: Some(open_seq),
        audit_query: Some(AuditQuery {
            purpose: read.purpose as i32,
            case_reference: read.case_reference.clone(),
            call: CALL.to_owned(),
            results_returned: returned,
            completed: true,
            ..Default::default()
        }),
        outcome: Some(Outcome {
            status: u32::from(status),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Reads `read.from..` (at most `read.limit` entries, and only entries before the opening entry)
/// with their personal values, in five steps: the opening audit-query entry is durable; the
/// entries are read and rendered; the closing entry is durable; then the page is returned. If
/// either entry cannot be written, nothing is returned.
pub async fn read(
    writer: &LogWriter,
    store: Arc<dyn Store>,
    read: &CheckedRead,
    source: &str,
) -> Result<ReadPage, ReadError> {
    // 1. Who reads: the stated local operator, with where the request came from.
    let actor = Actor {
        id: read.actor.clone(),
        source_address: source.to_owned(),
        auth_method: AuthMethod::Local as i32,
        ..Default::default()
    };
    // 2. The opening entry, durable before anything is read.
    let open_seq = writer
        .append(opening_entry(read, &actor))
        .await
        .map_err(ReadError::Log)?
        .seq;
    // 3. The entries before it, values put back.
    let end = read.from.saturating_add(read.limit).min(open_seq);
    let (from, wanted) = (read.from, end.saturating_sub(read.from));
    let loaded = tokio::task::spawn_blocking(move || -> Result<Vec<u8>, StoreError> {
        let mut body = Vec::new();
        let mut next = from;
        while next < end {
            let chunk = store.opened_entries(next, (end - next).min(1024) as usize)?;
            let Some(last) = chunk.last() else { break };
            next = last.seq + 1;
            for o in &chunk {
                let redacted: Vec<String> = o.redacted.iter().map(ToString::to_string).collect();
                let line = crate::render::entry_json(&o.entry, &o.leaf, &redacted);
                body.extend_from_slice(line.to_string().as_bytes());
                body.push(b'\n');
            }
        }
        Ok(body)
    })
    .await;
    let body = match loaded {
        Ok(Ok(body)) => body,
        failed => {
            // Close the call as failed; the read's error is what the caller hears.
            let _ = writer
                .append(closing_entry(read, &actor, open_seq, 0, 500))
                .await;
            return Err(match failed {
                Ok(Err(e)) => ReadError::Store(e),
                Err(e) => ReadError::Task(e.to_string()),
                Ok(Ok(_)) => ReadError::Task("unreachable".into()),
            });
        }
    };
    let returned = body.iter().filter(|b| **b == b'\n').count() as u64;
    // 4. The closing entry, durable before the page leaves.
    writer
        .append(closing_entry(read, &actor, open_seq, returned, 200))
        .await
        .map_err(ReadError::Log)?;
    // 5. The page, and where to continue if the log held more when the read began.
    let next_from = (returned == wanted && from.saturating_add(returned) < open_seq)
        .then(|| from.saturating_add(returned));
    Ok(ReadPage {
        audit_seq: open_seq,
        body,
        returned,
        next_from,
    })
}

/// True for a loopback peer: 127.0.0.0/8, ::1, or ::ffff:127.x.y.z (an IPv4 loopback peer on a
/// dual-stack socket).
pub fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => a.is_loopback(),
        IpAddr::V6(a) => a.is_loopback() || a.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()),
    }
}

const PLAIN: &str = "text/plain; charset=utf-8";

/// Answers `POST /entries` from `peer`: 403 unless the peer is on loopback; 405 for another
/// method; 413 for a body over 8 KiB; 400 for a body that is not an [`EntriesRequest`] or is
/// refused by [`EntriesRequest::check`]; 503 when the log cannot be written (nothing returned);
/// else 200 with JSON lines and the [`AUDIT_SEQ_HEADER`] (and [`NEXT_FROM_HEADER`]).
pub async fn handle<B>(
    state: &AdminState,
    peer: SocketAddr,
    req: Request<B>,
) -> Response<Full<Bytes>>
where
    B: http_body::Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    // The peer check comes first, before the method or the body is looked at.
    if !is_loopback(peer.ip()) {
        tracing::warn!(
            route = "/entries",
            status = 403,
            "refused a non-loopback peer"
        );
        return text(
            StatusCode::FORBIDDEN,
            PLAIN,
            "POST /entries answers only the sidecar's own machine (a loopback peer)\n",
        );
    }
    if req.method() != Method::POST {
        let mut resp = text(StatusCode::METHOD_NOT_ALLOWED, PLAIN, "only POST\n");
        resp.headers_mut()
            .insert(header::ALLOW, header::HeaderValue::from_static("POST"));
        return resp;
    }
    let body = match Limited::new(req.into_body(), MAX_BODY_BYTES)
        .collect()
        .await
    {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            return text(
                StatusCode::PAYLOAD_TOO_LARGE,
                PLAIN,
                "the request body is unreadable or larger than 8 KiB\n",
            );
        }
    };
    let asked: EntriesRequest = match serde_json::from_slice(&body) {
        Ok(a) => a,
        Err(e) => {
            return text(
                StatusCode::BAD_REQUEST,
                PLAIN,
                format!(
                    "the body must be JSON: {{\"from\", \"limit\", \"purpose\", \
                     \"case_reference\", \"actor\"}} ({e})\n"
                ),
            );
        }
    };
    let checked = match asked.check() {
        Ok(c) => c,
        Err(e) => return text(StatusCode::BAD_REQUEST, PLAIN, format!("{e}\n")),
    };
    match read(
        &state.writer,
        state.store.clone(),
        &checked,
        &peer.to_string(),
    )
    .await
    {
        Ok(page) => {
            tracing::info!(
                route = "/entries",
                audit_seq = page.audit_seq,
                returned = page.returned,
                "local read logged and answered"
            );
            let mut resp = text(StatusCode::OK, "application/x-ndjson", page.body);
            let headers = resp.headers_mut();
            headers.insert(AUDIT_SEQ_HEADER, page.audit_seq.into());
            if let Some(n) = page.next_from {
                headers.insert(NEXT_FROM_HEADER, n.into());
            }
            resp
        }
        Err(e @ ReadError::Log(_)) => {
            tracing::error!(route = "/entries", status = 503, error = %e, "local read refused");
            text(StatusCode::SERVICE_UNAVAILABLE, PLAIN, format!("{e}\n"))
        }
        Err(e) => {
            tracing::error!(route = "/entries", status = 500, error = %e, "local read failed");
            text(StatusCode::INTERNAL_SERVER_ERROR, PLAIN, format!("{e}\n"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::Metrics;
    use crate::ingest::WriterConfig;
    use crate::log::note::SignerKey;
    use crate::log::store::memory::MemoryStore;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn asked(purpose: &str) -> EntriesRequest {
        EntriesRequest {
            from: 0,
            limit: None,
            purpose: purpose.into(),
            case_reference: "INT-2026-9".into(),
            actor: "ops-jo".into(),
        }
    }

    #[test]
    fn only_loopback_peers_count_as_local() {
        for ip in [
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V4(Ipv4Addr::new(127, 8, 9, 10)),
            IpAddr::V6(Ipv6Addr::LOCALHOST),
            IpAddr::V6(Ipv4Addr::LOCALHOST.to_ipv6_mapped()),
        ] {
            assert!(is_loopback(ip), "{ip}");
        }
        for ip in [
            IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            IpAddr::V4(Ipv4Addr::new(10, 0, 0, 7)),
            IpAddr::V4(Ipv4Addr::new(192, 168, 1, 1)),
            IpAddr::V6(Ipv6Addr::UNSPECIFIED),
            IpAddr::V6(Ipv4Addr::new(10, 0, 0, 7).to_ipv6_mapped()),
            IpAddr::V6("fe80::1".parse().expect("ip")),
            // ::127.0.0.1 (IPv4-compatible, deprecated) is not loopback.
            IpAddr::V6(Ipv4Addr::LOCALHOST.to_ipv6_compatible()),
        ] {
            assert!(!is_loopback(ip), "{ip}");
        }
    }

    #[test]
    fn a_read_needs_an_s62_4_purpose_a_case_and_an_actor() {
        let ok = asked(" integrity-and-security ").check().expect("accepted");
        assert_eq!(ok.purpose, AuditPurpose::IntegrityAndSecurity);
        assert_eq!(ok.limit, MAX_ENTRIES);
        for p in [
            "",
            "curiosity",
            "commissioner-request",
            "unspecified",
            "Lawfulness",
        ] {
            assert_eq!(asked(p).check(), Err(ReadRefused::Purpose), "{p:?}");
        }
        let mut a = asked("lawfulness");
        a.case_reference = "  ".into();
        assert_eq!(a.check(), Err(ReadRefused::Missing("the case reference")));
        let mut a = asked("lawfulness");
        a.actor = "jo\u{7}".into();
        assert_eq!(a.check(), Err(ReadRefused::Control("the actor")));
        for bad in [0, MAX_ENTRIES + 1] {
            let mut a = asked("lawfulness");
            a.limit = Some(bad);
            assert_eq!(a.check(), Err(ReadRefused::Limit));
        }
    }

    fn state_over(store: Arc<MemoryStore>) -> (AdminState, crate::ingest::WriterTask) {
        let key = SignerKey::from_seed("local.test/log", [7u8; 32]).expect("key");
        let (writer, task) =
            LogWriter::start(store.clone(), key, WriterConfig::new("local.test/log"))
                .expect("writer");
        (
            AdminState::new(writer, store, Arc::new(Metrics::new())),
            task,
        )
    }

    fn post(body: &str) -> Request<Full<Bytes>> {
        Request::post("/entries")
            .body(Full::new(Bytes::from(body.to_owned())))
            .expect("request")
    }

    async fn body_text(resp: Response<Full<Bytes>>) -> String {
        let bytes = resp.into_body().collect().await.expect("body").to_bytes();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    const ASK: &str =
        r#"{"from":0,"purpose":"lawfulness","case_reference":"INT-1","actor":"ops-jo"}"#;

    #[tokio::test]
    async fn a_non_loopback_peer_gets_403_and_nothing_is_logged_or_read() {
        let store = Arc::new(MemoryStore::new());
        let (state, task) = state_over(store.clone());
        state
            .writer
            .append(Entry {
                kind: EntryKind::Intent as i32,
                subject_ids: vec!["P-SECRET".into()],
                ..Default::default()
            })
            .await
            .expect("append");
        let before = store.entry_count().expect("count");
        for peer in ["10.0.0.7:5000", "[::ffff:10.0.0.7]:5000", "[fe80::1]:5000"] {
            let resp = handle(&state, peer.parse().expect("peer"), post(ASK)).await;
            assert_eq!(resp.status(), StatusCode::FORBIDDEN, "{peer}");
            assert!(!body_text(resp).await.contains("P-SECRET"));
        }
        assert_eq!(
            store.entry_count().expect("count"),
            before,
            "nothing logged"
        );
        let resp = handle(&state, "127.0.0.1:5000".parse().expect("peer"), post(ASK)).await;
        assert_eq!(resp.status(), StatusCode::OK);
        assert!(body_text(resp).await.contains("P-SECRET"));
        drop(state);
        task.shutdown_async().await;
    }

    #[tokio::test]
    async fn when_the_log_cannot_be_written_nothing_is_returned() {
        let store = Arc::new(MemoryStore::new());
        let (state, task) = state_over(store.clone());
        state
            .writer
            .append(Entry {
                kind: EntryKind::Intent as i32,
                subject_ids: vec!["P-SECRET".into()],
                ..Default::default()
            })
            .await
            .expect("append");
        store.set_failing(true);
        let resp = handle(&state, "127.0.0.1:5000".parse().expect("peer"), post(ASK)).await;
        assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
        let body = body_text(resp).await;
        assert!(!body.contains("P-SECRET"), "{body}");
        assert!(body.contains("could not be written"), "{body}");
        drop(state);
        task.shutdown_async().await;
    }

    #[tokio::test]
    async fn a_read_covers_the_log_up_to_its_own_entry_and_says_where_to_continue() {
        let store = Arc::new(MemoryStore::new());
        let (state, task) = state_over(store.clone());
        for _ in 0..5 {
            state
                .writer
                .append(Entry {
                    kind: EntryKind::Intent as i32,
                    ..Default::default()
                })
                .await
                .expect("append");
        }
        let mut asked = asked("lawfulness").check().expect("checked");
        asked.limit = 2;
        let page = read(&state.writer, state.store.clone(), &asked, "cli")
            .await
            .expect("read");
        assert_eq!(
            (page.audit_seq, page.returned, page.next_from),
            (5, 2, Some(2))
        );
        // The next read sees the first read's own two entries too, and nothing after its own.
        asked.from = 3;
        asked.limit = 10;
        let page = read(&state.writer, state.store.clone(), &asked, "cli")
            .await
            .expect("read");
        assert_eq!(
            (page.audit_seq, page.returned, page.next_from),
            (7, 4, None)
        );
        let seqs: Vec<u64> = String::from_utf8_lossy(&page.body)
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).expect("json")["seq"]
                    .as_u64()
                    .expect("seq")
            })
            .collect();
        assert_eq!(seqs, [3, 4, 5, 6]);
        drop(state);
        task.shutdown_async().await;
    }

    #[tokio::test]
    async fn a_bad_body_or_purpose_is_400_and_a_get_is_405() {
        let store = Arc::new(MemoryStore::new());
        let (state, task) = state_over(store.clone());
        let local: SocketAddr = "127.0.0.1:5000".parse().expect("peer");
        for body in [
            "not json",
            r#"{"purpose":"lawfulness","case_reference":"x","actor":"a","extra":1}"#,
            r#"{"purpose":"nosiness","case_reference":"x","actor":"a"}"#,
        ] {
            let resp = handle(&state, local, post(body)).await;
            assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{body}");
        }
        let get = Request::get("/entries")
            .body(Full::new(Bytes::new()))
            .expect("request");
        assert_eq!(
            handle(&state, local, get).await.status(),
            StatusCode::METHOD_NOT_ALLOWED
        );
        assert_eq!(store.entry_count().expect("count"), 0, "nothing logged");
        drop(state);
        task.shutdown_async().await;
    }
}
