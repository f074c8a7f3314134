//! Why the log is being used: every call must state an s62(4) purpose (or a Commissioner request
//! under s62(5)) and a case reference, or it is refused before anything is read.
//!
//! Pure: a function of the request's context; no I/O.

use super::error::QueryError;
use super::pb::CallContext;
use crate::log::entry::AuditPurpose;

/// Longest case reference accepted, in characters.
pub const MAX_CASE_REFERENCE: usize = 200;

/// A checked purpose and case reference.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatedPurpose {
    pub purpose: AuditPurpose,
    pub case_reference: String,
}

/// Checks a call's context: a known purpose other than UNSPECIFIED, and a non-blank case reference
/// of at most [`MAX_CASE_REFERENCE`] characters without control characters.
pub fn check(ctx: Option<&CallContext>) -> Result<StatedPurpose, QueryError> {
    let Some(ctx) = ctx else {
        return Err(QueryError::InvalidArgument(
            "every call needs a context with a purpose (s62(4) or commissioner-request) and a case reference"
                .into(),
        ));
    };
    let purpose = match AuditPurpose::try_from(ctx.purpose) {
        Ok(AuditPurpose::Unspecified) | Err(_) => {
            return Err(QueryError::InvalidArgument(
                "context.purpose is required: lawfulness, self-monitoring, integrity-and-security, \
                 criminal-proceedings or commissioner-request"
                    .into(),
            ));
        }
        Ok(p) => p,
    };
    let case_reference = ctx.case_reference.trim();
    if case_reference.is_empty() {
        return Err(QueryError::InvalidArgument(
            "context.case_reference is required".into(),
        ));
    }
    if case_reference.chars().count() > MAX_CASE_REFERENCE {
        return Err(QueryError::InvalidArgument(format!(
            "context.case_reference is longer than {MAX_CASE_REFERENCE} characters"
        )));
    }
    if case_reference.chars().any(char::is_control) {
        return Err(QueryError::InvalidArgument(
            "context.case_reference contains control characters".into(),
        ));
    }
    Ok(StatedPurpose {
        purpose,
        case_reference: case_reference.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(purpose: AuditPurpose, case: &str) -> CallContext {
        CallContext {
            purpose: purpose as i32,
            case_reference: case.into(),
        }
    }

    #[test]
    fn a_lawful_purpose_and_a_case_reference_are_accepted() {
        let p = check(Some(&ctx(AuditPurpose::SelfMonitoring, " PSD-2026-17 "))).expect("ok");
        assert_eq!(p.purpose, AuditPurpose::SelfMonitoring);
        assert_eq!(p.case_reference, "PSD-2026-17");
    }

    #[test]
    fn a_missing_context_purpose_or_case_reference_is_refused() {
        for bad in [
            None,
            Some(ctx(AuditPurpose::Unspecified, "PSD-1")),
            Some(ctx(AuditPurpose::Lawfulness, "   ")),
            Some(CallContext {
                purpose: 99,
                case_reference: "PSD-1".into(),
            }),
            Some(ctx(AuditPurpose::Lawfulness, &"x".repeat(201))),
            Some(ctx(AuditPurpose::Lawfulness, "a\u{7}b")),
        ] {
            assert!(
                matches!(check(bad.as_ref()), Err(QueryError::InvalidArgument(_))),
                "{bad:?} was accepted"
            );
        }
    }
}
