//! Human- and machine-readable views of entries: JSON lines for `s62 entries` and the query CLI,
//! and the RFC 3339 times they print (formatted and parsed by `jiff`). Output only; must not depend
//! on storage or the network.

use crate::log::entry::{AuditPurpose, AuthMethod, Entry, EntryKind, Operation};
use base64::Engine;
use serde_json::{Value, json};

/// RFC 3339 UTC with nanoseconds, e.g. `2026-11-28T16:00:00.123456789Z` (always nine digits, so
/// the text sorts like the time).
pub fn rfc3339_utc(unix_nanos: i64) -> String {
    match jiff::Timestamp::from_nanosecond(i128::from(unix_nanos)) {
        Ok(t) => format!("{t:.9}"),
        // Unreachable: jiff's range (years -9999..=9999) holds every i64 of nanoseconds
        // (years 1677..=2262); a number is still better than a panic.
        Err(_) => format!("@{unix_nanos}ns"),
    }
}

/// Parses an RFC 3339 time (any offset, e.g. `2026-11-01T00:00:00Z` or `...T01:00:00+01:00`;
/// fraction optional) to Unix nanoseconds. `None` for anything else, or a time outside the
/// range of an i64 of nanoseconds (1677..2262).
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let t: jiff::Timestamp = s.parse().ok()?;
    i64::try_from(t.as_nanosecond()).ok()
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// One entry as a JSON object, with `leaf`: base64 of the exact stored bytes, and `redacted`:
/// the values a redaction entry removed (shown as empty strings in their fields).
pub fn entry_json(e: &Entry, stored: &[u8], redacted: &[String]) -> Value {
    let kind = EntryKind::try_from(e.kind).unwrap_or(EntryKind::Unspecified);
    let op = Operation::try_from(e.operation).unwrap_or(Operation::Unspecified);
    let mut v = json!({
        "seq": e.seq,
        "time": rfc3339_utc(e.time_unix_nanos),
        "kind": kind.label(),
        "operation": op.label(),
        "actor": e.actor.as_ref().map(|a| json!({
            "id": a.id,
            "display_name": a.display_name,
            "roles": a.roles,
            "source_address": a.source_address,
            "auth": AuthMethod::try_from(a.auth_method).unwrap_or(AuthMethod::Unspecified).label(),
        })),
        "justification": e.justification.as_ref().map(|j| json!({
            "purpose": j.purpose_code, "text": j.text, "case_reference": j.case_reference,
        })),
        "subjects": e.subject_ids,
        "records": e.record_ids,
        "recipients": e.recipients,
    });
    let obj = v.as_object_mut();
    if let Some(obj) = obj {
        if let Some(r) = &e.request {
            obj.insert(
                "request".into(),
                json!({
                    "method": r.method, "path": r.path, "route": r.route, "request_id": r.request_id,
                    "client_request_id": r.client_request_id,
                    "body_sha256": hex::encode(&r.body_sha256), "body_bytes": r.body_bytes,
                }),
            );
        }
        if let Some(o) = &e.outcome {
            obj.insert(
                "outcome".into(),
                json!({
                    "status": o.status,
                    "returned_subjects": o.returned_subject_ids,
                    "returned_records": o.returned_record_ids,
                    "response_sha256": hex::encode(&o.response_sha256),
                    "response_bytes": o.response_bytes,
                    "streamed": o.streamed,
                    "error": o.error,
                }),
            );
        }
        if let Some(a) = e.answers_seq {
            obj.insert("answers_seq".into(), json!(a));
        }
        if let Some(d) = &e.denial {
            obj.insert(
                "denial".into(),
                json!({"reason": d.reason, "detail": d.detail}),
            );
        }
        if let Some(q) = &e.audit_query {
            obj.insert(
                "audit_query".into(),
                json!({
                    "purpose": AuditPurpose::try_from(q.purpose).unwrap_or(AuditPurpose::Unspecified).label(),
                    "case_reference": q.case_reference,
                    "call": q.call,
                    "filter": q.filter_json,
                    "results_returned": q.results_returned,
                    "completed": q.completed,
                }),
            );
        }
        if let Some(a) = &e.admin {
            obj.insert(
                "admin".into(),
                json!({"action": a.action, "detail": a.detail}),
            );
        }
        if let Some(c) = &e.erasure_check {
            obj.insert(
                "erasure_check".into(),
                json!({
                    "erasure_seq": c.erasure_seq, "result": c.result,
                    "probe_status": c.probe_status, "attempt": c.attempt, "probe_seq": c.probe_seq,
                }),
            );
        }
        if let Some(a) = &e.alert {
            obj.insert(
                "alert".into(),
                json!({
                    "rule": a.rule, "sighting_seq": a.sighting_seq,
                    "related_seq": a.related_seq, "detail": a.detail,
                }),
            );
        }
        if let Some(r) = &e.alert_review {
            obj.insert(
                "alert_review".into(),
                json!({"alert_seq": r.alert_seq, "outcome": r.outcome}),
            );
        }
        obj.insert(
            "prev_leaf_hash".into(),
            json!(hex::encode(&e.prev_leaf_hash)),
        );
        obj.insert("leaf".into(), json!(b64(stored)));
        obj.insert("format_version".into(), json!(e.format_version));
        if !redacted.is_empty() {
            obj.insert("redacted".into(), json!(redacted));
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_print_as_rfc3339_utc_with_nine_digits_and_parse_back() {
        assert_eq!(rfc3339_utc(0), "1970-01-01T00:00:00.000000000Z");
        let t = 1_795_881_600_123_456_789; // 2026-11-28T16:00:00.123456789Z
        assert_eq!(rfc3339_utc(t), "2026-11-28T16:00:00.123456789Z");
        assert_eq!(rfc3339_utc(-1), "1969-12-31T23:59:59.999999999Z");
        assert_eq!(parse_rfc3339("2026-11-28T16:00:00.123456789Z"), Some(t));
        assert_eq!(
            parse_rfc3339("2024-02-29T23:59:59Z"),
            Some(1_709_251_199_000_000_000)
        );
        // An offset is honoured: 17:00 in UTC+1 is 16:00Z.
        assert_eq!(
            parse_rfc3339("2026-11-28T17:00:00.123456789+01:00"),
            Some(t)
        );
        for bad in [
            "2024-02-29 23:59:59",  // no offset: which zone?
            "2023-02-29T00:00:00Z", // not a leap year
            "2026-13-01T00:00:00Z",
            "2026-11-28T24:00:01Z",
            "yesterday",
            "2263-01-01T00:00:00Z", // beyond an i64 of nanoseconds
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
        for t in [
            i64::MIN,
            -86_400_000_000_000i64,
            951_782_400_000_000_000,
            4_102_444_800_000_000_001,
            i64::MAX,
        ] {
            assert_eq!(parse_rfc3339(&rfc3339_utc(t)), Some(t));
        }
    }

    #[test]
    fn an_entry_renders_with_its_stored_bytes() {
        let e = Entry {
            seq: 3,
            subject_ids: vec!["P-1".into()],
            ..Default::default()
        };
        let v = entry_json(&e, b"abc", &[]);
        assert_eq!(v["seq"], 3);
        assert_eq!(v["subjects"][0], "P-1");
        assert_eq!(v["leaf"], "YWJj");
        assert!(v.get("redacted").is_none());
        let v = entry_json(&e, b"abc", &["subject_id[0]".into()]);
        assert_eq!(v["redacted"][0], "subject_id[0]");
    }
}
