//! How long and how many: holds the values a request names (actor, justification, ids,
//! recipients) and a response returns (ids) to the `[limits]` maxima, so that no client can make
//! the log refuse an entry (an over-long indexed value, an entry over the log's size) and turn a
//! refusal into a failed append.
//!
//! What is over a limit is removed from the exchange — an over-long value, or a whole list that
//! has too many — and described by its length or count only, so the denial that records it holds
//! no part of the value. Pure: a function of the limits and the values; it must not import the
//! log writer, the network or the clock.

use crate::classify::Classified;
use crate::config::LimitsConfig;
use crate::log::entry::{Actor, Justification};
use std::fmt;

/// One field over its limit, as recorded: the field's name and sizes, never its value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Overrun {
    /// `count` values of `field` were longer than `max` bytes, the longest `longest` bytes.
    TooLong {
        field: &'static str,
        count: usize,
        longest: usize,
        max: usize,
    },
    /// `field` held `count` values, more than `max`.
    TooMany {
        field: &'static str,
        count: usize,
        max: usize,
    },
}

impl fmt::Display for Overrun {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Overrun::TooLong {
                field,
                count: 1,
                longest,
                max,
            } => write!(f, "{field}: a value of {longest} bytes (limit {max})"),
            Overrun::TooLong {
                field,
                count,
                longest,
                max,
            } => write!(
                f,
                "{field}: {count} values over {max} bytes, the longest {longest}"
            ),
            Overrun::TooMany { field, count, max } => {
                write!(f, "{field}: {count} values (limit {max})")
            }
        }
    }
}

/// The overruns as one line for a problem detail or an outcome error.
pub fn describe(overruns: &[Overrun]) -> String {
    overruns
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// Holds a request's values to `limits`, removing what is over; returns what was removed. Run
/// again on the same values it returns nothing.
pub fn bound_request(
    limits: &LimitsConfig,
    actor: &mut Actor,
    justification: Option<&mut Justification>,
    classified: Option<&mut Classified>,
) -> Vec<Overrun> {
    let mut out = Vec::new();
    let a = limits.max_actor_bytes;
    one(&mut out, "actor.id", &mut actor.id, a);
    one(&mut out, "actor.display_name", &mut actor.display_name, a);
    list(
        &mut out,
        "actor.roles",
        &mut actor.roles,
        a,
        limits.max_roles,
    );
    if let Some(j) = justification {
        let max = limits.max_justification_bytes;
        one(&mut out, "justification.purpose", &mut j.purpose_code, max);
        one(&mut out, "justification.text", &mut j.text, max);
        let max = limits.max_case_reference_bytes;
        one(
            &mut out,
            "justification.case_reference",
            &mut j.case_reference,
            max,
        );
    }
    if let Some(c) = classified {
        let (id, n) = (limits.max_id_bytes, limits.max_values_per_field);
        list(&mut out, "subject_ids", &mut c.subject_ids, id, n);
        list(&mut out, "record_ids", &mut c.record_ids, id, n);
        let r = limits.max_recipient_bytes;
        list(&mut out, "recipients", &mut c.recipients, r, n);
    }
    out
}

/// Holds the ids a response returned to `limits`, removing what is over; returns what was
/// removed.
pub fn bound_returned(
    limits: &LimitsConfig,
    subjects: &mut Vec<String>,
    records: &mut Vec<String>,
) -> Vec<Overrun> {
    let mut out = Vec::new();
    let (id, n) = (limits.max_id_bytes, limits.max_values_per_field);
    list(&mut out, "returned_subject_ids", subjects, id, n);
    list(&mut out, "returned_record_ids", records, id, n);
    out
}

fn one(out: &mut Vec<Overrun>, field: &'static str, value: &mut String, max: usize) {
    if value.len() > max {
        out.push(Overrun::TooLong {
            field,
            count: 1,
            longest: value.len(),
            max,
        });
        value.clear();
    }
}

/// A list with too many values is emptied (which of them to keep would be a guess); otherwise
/// its over-long values are removed.
fn list(
    out: &mut Vec<Overrun>,
    field: &'static str,
    values: &mut Vec<String>,
    max_bytes: usize,
    max_count: usize,
) {
    if values.len() > max_count {
        out.push(Overrun::TooMany {
            field,
            count: values.len(),
            max: max_count,
        });
        values.clear();
        return;
    }
    let long: Vec<usize> = values
        .iter()
        .map(String::len)
        .filter(|n| *n > max_bytes)
        .collect();
    if let Some(longest) = long.iter().max() {
        out.push(Overrun::TooLong {
            field,
            count: long.len(),
            longest: *longest,
            max: max_bytes,
        });
        values.retain(|v| v.len() <= max_bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> LimitsConfig {
        LimitsConfig {
            max_id_bytes: 8,
            max_values_per_field: 3,
            max_actor_bytes: 6,
            max_roles: 2,
            ..LimitsConfig::default()
        }
    }

    #[test]
    fn an_over_long_id_is_removed_and_described_by_its_length_alone() {
        let mut subjects = vec!["P-1".to_owned(), "P-".repeat(20)];
        let mut records = vec![];
        let over = bound_returned(&limits(), &mut subjects, &mut records);
        assert_eq!(subjects, ["P-1"]);
        assert_eq!(
            describe(&over),
            "returned_subject_ids: a value of 40 bytes (limit 8)"
        );
        assert!(!describe(&over).contains("P-"), "no part of the value");
    }

    #[test]
    fn a_list_with_too_many_values_is_emptied_and_counted() {
        let mut subjects: Vec<String> = (0..5).map(|i| format!("P-{i}")).collect();
        let mut records = vec!["R-1".to_owned()];
        let over = bound_returned(&limits(), &mut subjects, &mut records);
        assert!(subjects.is_empty());
        assert_eq!(records, ["R-1"]);
        assert_eq!(
            over,
            [Overrun::TooMany {
                field: "returned_subject_ids",
                count: 5,
                max: 3
            }]
        );
    }

    #[test]
    fn actor_and_justification_fields_are_held_to_their_limits_and_a_second_pass_finds_nothing() {
        let mut actor = Actor {
            id: "pc-4021-and-more".into(),
            display_name: "Sam".into(),
            roles: vec!["a".into(), "b".into(), "c".into()],
            ..Actor::default()
        };
        let mut j = Justification {
            purpose_code: "investigation".into(),
            text: "x".repeat(5000),
            case_reference: "44260103-0112".into(),
        };
        let over = bound_request(&limits(), &mut actor, Some(&mut j), None);
        assert_eq!(
            describe(&over),
            "actor.id: a value of 16 bytes (limit 6); actor.roles: 3 values (limit 2); \
             justification.text: a value of 5000 bytes (limit 4096)"
        );
        assert_eq!(actor.id, "");
        assert_eq!(actor.display_name, "Sam");
        assert!(actor.roles.is_empty());
        assert_eq!(j.text, "");
        assert_eq!(j.purpose_code, "investigation");
        assert!(bound_request(&limits(), &mut actor, Some(&mut j), None).is_empty());
    }
}
