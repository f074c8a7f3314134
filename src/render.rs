//! Human- and machine-readable views of entries: JSON lines for `s62 entries` and the query CLI.
//! Output only; must not depend on storage or the network.

use crate::log::entry::{AuditPurpose, AuthMethod, Entry, EntryKind, Operation};
use base64::Engine;
use serde_json::{Value, json};

/// RFC 3339 UTC with nanoseconds, e.g. `2026-11-28T16:00:00.123456789Z`.
pub fn rfc3339_utc(unix_nanos: i64) -> String {
    let secs = unix_nanos.div_euclid(1_000_000_000);
    let nanos = unix_nanos.rem_euclid(1_000_000_000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
        sod / 3600,
        (sod % 3600) / 60,
        sod % 60
    )
}

/// Parses what [`rfc3339_utc`] prints (fraction optional, `Z` only) back to Unix nanoseconds.
pub fn parse_rfc3339_utc(s: &str) -> Option<i64> {
    let s = s.strip_suffix('Z')?;
    let (date, time) = s.split_once('T')?;
    let mut dp = date.split('-');
    let y: i64 = dp.next()?.parse().ok()?;
    let m: i64 = dp.next()?.parse().ok()?;
    let d: i64 = dp.next()?.parse().ok()?;
    let (hms, frac) = time.split_once('.').unwrap_or((time, ""));
    let mut tp = hms.split(':');
    let hh: i64 = tp.next()?.parse().ok()?;
    let mm: i64 = tp.next()?.parse().ok()?;
    let ss: i64 = tp.next()?.parse().ok()?;
    if !(1..=12).contains(&m)
        || !(1..=31).contains(&d)
        || hh > 23
        || mm > 59
        || ss > 60
        || frac.len() > 9
    {
        return None;
    }
    let nanos: i64 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<9}").parse().ok()?
    };
    let (y2, m2) = if m <= 2 { (y - 1, m + 9) } else { (y, m - 3) };
    let era = y2.div_euclid(400);
    let yoe = y2.rem_euclid(400);
    let doy = (153 * m2 + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some((days * 86_400 + hh * 3600 + mm * 60 + ss) * 1_000_000_000 + nanos)
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// One entry as a JSON object, with `leaf`: base64 of the exact stored bytes.
pub fn entry_json(e: &Entry, stored: &[u8]) -> Value {
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
        obj.insert(
            "prev_leaf_hash".into(),
            json!(hex::encode(&e.prev_leaf_hash)),
        );
        obj.insert("leaf".into(), json!(b64(stored)));
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_print_as_rfc3339_utc_and_parse_back() {
        assert_eq!(rfc3339_utc(0), "1970-01-01T00:00:00.000000000Z");
        let t = 1_795_881_600_123_456_789; // 2026-11-28T16:00:00.123456789Z
        assert_eq!(rfc3339_utc(t), "2026-11-28T16:00:00.123456789Z");
        assert_eq!(parse_rfc3339_utc("2026-11-28T16:00:00.123456789Z"), Some(t));
        assert_eq!(
            parse_rfc3339_utc("2024-02-29T23:59:59Z"),
            Some(1_709_251_199_000_000_000)
        );
        assert_eq!(parse_rfc3339_utc("2024-02-29 23:59:59"), None);
        for t in [
            -86_400_000_000_000i64,
            951_782_400_000_000_000,
            4_102_444_800_000_000_001,
        ] {
            assert_eq!(parse_rfc3339_utc(&rfc3339_utc(t)), Some(t));
        }
    }

    #[test]
    fn an_entry_renders_with_its_stored_bytes() {
        let e = Entry {
            seq: 3,
            subject_ids: vec!["P-1".into()],
            ..Default::default()
        };
        let v = entry_json(&e, b"abc");
        assert_eq!(v["seq"], 3);
        assert_eq!(v["subjects"][0], "P-1");
        assert_eq!(v["leaf"], "YWJj");
    }
}
