//! `[retention]`: how long the log keeps personal values (DPA 2018 s39), and how often the
//! retention task runs. Only the policy: the task itself is `crate::retention`.

use std::time::Duration;

use serde::Deserialize;

use super::check::{Checker, Section};

/// Default slice: entries one redaction entry covers.
pub const DEFAULT_BATCH_ENTRIES: u64 = 10_000;

/// `[retention]`: personal values older than `personal_fields_after` are redacted.
#[derive(Clone, Debug, PartialEq)]
pub struct RetentionConfig {
    /// The period as written (`"6y"`, `"18 months"`, `"P90D"`): a calendar span, so years and
    /// months are counted on the calendar (UTC), not as fixed numbers of seconds.
    pub personal_fields_after: String,
    /// Time between runs; the first run starts with the sidecar.
    pub run_every: Duration,
    /// Entries each redaction entry covers at most (a slice the writer rewrites while appends
    /// wait, so keep it moderate).
    pub batch_entries: u64,
}

impl RetentionConfig {
    /// The newest time whose entries are past retention at `now`: values of entries written
    /// strictly before it are redacted. `None` if the period cannot be subtracted (far past).
    pub fn cutoff(&self, now: jiff::Timestamp) -> Option<jiff::Timestamp> {
        let span: jiff::Span = self.personal_fields_after.parse().ok()?;
        let zoned = now.to_zoned_datetime(jiff::tz::TimeZone::UTC);
        zoned.checked_sub(span).ok().map(|z| z.timestamp())
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRetention {
    personal_fields_after: Option<String>,
    run_every: Option<String>,
    batch_entries: Option<i64>,
}

impl Section for RetentionConfig {
    const KEY: &'static str = "retention";
    type Raw = RawRetention;

    fn check(raw: RawRetention, c: &mut Checker<'_>) -> Option<Self> {
        let after = c.required("retention.personal_fields_after", raw.personal_fields_after);
        let after = after.and_then(|text| match text.parse::<jiff::Span>() {
            Ok(span) if span.is_positive() => Some(text),
            Ok(_) => {
                c.push(
                    "retention.personal_fields_after",
                    format!("{text:?} must be a positive period"),
                );
                None
            }
            Err(e) => {
                c.push(
                    "retention.personal_fields_after",
                    format!("{text:?} is not a period (write e.g. \"6y\", \"18 months\" or \"P90D\"): {e}"),
                );
                None
            }
        });
        let every_text = raw.run_every.unwrap_or_else(|| "1h".to_owned());
        let run_every = match every_text.parse::<jiff::SignedDuration>() {
            Ok(d) if d.is_positive() => Some(d.unsigned_abs()),
            Ok(_) => {
                c.push(
                    "retention.run_every",
                    format!("{every_text:?} must be positive"),
                );
                None
            }
            Err(e) => {
                c.push(
                    "retention.run_every",
                    format!(
                        "{every_text:?} is not a duration in hours, minutes or seconds \
                         (write e.g. \"1h\" or \"15m\"): {e}"
                    ),
                );
                None
            }
        };
        let max = crate::ingest::MAX_REDACTED_ENTRIES;
        let batch_entries = match raw.batch_entries {
            None => Some(DEFAULT_BATCH_ENTRIES),
            Some(n) if n > 0 && n.unsigned_abs() <= max => Some(n.unsigned_abs()),
            Some(n) => {
                c.push(
                    "retention.batch_entries",
                    format!("must be between 1 and {max} (got {n})"),
                );
                None
            }
        };
        Some(RetentionConfig {
            personal_fields_after: after?,
            run_every: run_every?,
            batch_entries: batch_entries?,
        })
    }
}
