//! What the benchmarks append: a realistic consultation intent of about 300 bytes encoded.

use s62::log::entry::{Actor, Entry, EntryKind, Justification, Operation, Request};

/// Entry `i` of a synthetic log: subject `P-(i % subjects)`, so each of `subjects` subjects has
/// the same number of entries, spread evenly over the log.
pub fn consultation(i: u64, subjects: u64) -> Entry {
    let subject = format!("P-{}", i % subjects.max(1));
    Entry {
        kind: EntryKind::Intent as i32,
        operation: Operation::Consultation as i32,
        actor: Some(Actor {
            id: format!("pc-{}", i % 500),
            display_name: format!("PC {} Example", i % 500),
            roles: vec!["investigator".into()],
            source_address: "10.20.30.40:51234".into(),
            auth_method: 2,
        }),
        justification: Some(Justification {
            purpose_code: "investigation".into(),
            text: "Cross-check witness statement against custody record".into(),
            case_reference: format!("OP-2026-{:04}", i % 9000),
        }),
        subject_ids: vec![subject.clone()],
        record_ids: vec![format!("R-{i}")],
        request: Some(Request {
            method: "GET".into(),
            path: format!("/people/{subject}"),
            route: "people.view".into(),
            request_id: format!("0b5e2f7c-{i:012}"),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Entry `i` of a proxy-shaped log: what the sidecar writes for each request, an intent (even
/// `i`, as [`consultation`]) and then its outcome (odd `i`: status, the subject returned, the
/// response's digest and size), each pair about one subject.
#[allow(dead_code)] // The query benchmark shares this module and uses only `consultation`.
pub fn proxy_shaped(i: u64, subjects: u64) -> Entry {
    use s62::log::entry::Outcome;
    let intent = consultation(i / 2, subjects);
    if i.is_multiple_of(2) {
        return intent;
    }
    Entry {
        kind: EntryKind::Outcome as i32,
        operation: Operation::Consultation as i32,
        actor: intent.actor,
        answers_seq: Some(i - 1),
        outcome: Some(Outcome {
            status: 200,
            returned_subject_ids: intent.subject_ids,
            response_sha256: vec![0x5a; 32],
            response_bytes: 260,
            ..Default::default()
        }),
        request: intent.request.map(|r| Request {
            route: r.route,
            request_id: r.request_id,
            ..Default::default()
        }),
        ..Default::default()
    }
}
