//! `[justification]`: where the person's reason (s62(2)/(3)) comes from and when it is required.

use http::HeaderName;
use serde::Deserialize;

use super::check::{Checker, Section};
use crate::log::entry::Operation;

/// `[justification]`: where the person's reason comes from and when it is required.
#[derive(Clone, Debug, PartialEq)]
pub struct JustificationConfig {
    pub purpose_header: HeaderName,
    pub text_header: HeaderName,
    pub case_header: HeaderName,
    /// Operations that need a justification unless a rule overrides it.
    pub required_for: Vec<Operation>,
}

impl JustificationConfig {
    /// Whether `operation` needs a justification by default.
    pub fn is_required_for(&self, operation: Operation) -> bool {
        self.required_for.contains(&operation)
    }
}

impl Default for JustificationConfig {
    /// s62(2) and (3): consultation and disclosure are logged with a justification.
    fn default() -> Self {
        JustificationConfig {
            purpose_header: HeaderName::from_static("x-s62-purpose"),
            text_header: HeaderName::from_static("x-s62-justification"),
            case_header: HeaderName::from_static("x-s62-case-ref"),
            required_for: vec![Operation::Consultation, Operation::Disclosure],
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawJustification {
    purpose_header: Option<String>,
    text_header: Option<String>,
    case_header: Option<String>,
    required_for: Option<Vec<String>>,
}

impl Section for JustificationConfig {
    const KEY: &'static str = "justification";
    type Raw = RawJustification;

    fn check(raw: RawJustification, c: &mut Checker<'_>) -> Option<Self> {
        let d = JustificationConfig::default();
        let mut header = |key: &str, v: Option<String>, default: HeaderName| match v {
            Some(h) => c.header(&format!("justification.{key}"), &h),
            None => Some(default),
        };
        let purpose_header = header("purpose_header", raw.purpose_header, d.purpose_header);
        let text_header = header("text_header", raw.text_header, d.text_header);
        let case_header = header("case_header", raw.case_header, d.case_header);
        let required_for = match raw.required_for {
            None => Some(d.required_for),
            Some(list) => {
                let mut out = Vec::new();
                let mut ok = true;
                for (i, label) in list.iter().enumerate() {
                    match c.operation(&format!("justification.required_for[{i}]"), label) {
                        Some(op) if !out.contains(&op) => out.push(op),
                        Some(_) => {}
                        None => ok = false,
                    }
                }
                ok.then_some(out)
            }
        };
        Some(JustificationConfig {
            purpose_header: purpose_header?,
            text_header: text_header?,
            case_header: case_header?,
            required_for: required_for?,
        })
    }
}
