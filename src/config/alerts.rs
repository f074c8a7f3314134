//! `[alerts]`: the misuse rules the sidecar watches its own log with (DPA 2018 s62(4)(b)
//! self-monitoring) — `[[alerts.rule]]` — and where alerts are delivered. Only the policy: the
//! rules run in `crate::alerts`.
//!
//! ```toml
//! [[alerts.rule]]
//! name = "bulk-lookups"          # default: the kind
//! kind = "bulk"                  # more than `subjects` distinct subjects per actor per window
//! subjects = 50
//! window = "1h"
//!
//! [[alerts.rule]]
//! kind = "out_of_hours"
//! time_zone = "Europe/London"
//! working_hours = ["Mon-Fri 07:00-19:00", "Sat 08:00-12:00"]
//! ```
//!
//! Must not depend on the log store, the proxy or a runtime.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use http::HeaderName;
use serde::Deserialize;

use super::alert_sinks::{AlertSinks, RawSyslog, RawWebhook, check_syslog, check_webhook};
use super::check::{Checker, Section, at};
use crate::log::entry::Operation;

/// `[alerts]`.
#[derive(Clone, Debug, PartialEq)]
pub struct AlertsConfig {
    pub rules: Vec<AlertRule>,
    /// Where alert entries are delivered (`[alerts.webhook]`, `[alerts.syslog]`).
    pub sinks: AlertSinks,
}

impl AlertsConfig {
    /// The request headers that mark emergency access (from `break_glass` rules).
    pub fn break_glass_headers(&self) -> Vec<HeaderName> {
        let mut out: Vec<HeaderName> = Vec::new();
        for r in &self.rules {
            if let RuleKind::BreakGlass {
                header: Some(h), ..
            } = &r.kind
                && !out.contains(h)
            {
                out.push(h.clone());
            }
        }
        out
    }

    /// Files the rules and sinks read (watchlists, self-lookup maps, CA files), with their key
    /// paths.
    pub fn files(&self) -> Vec<(String, &PathBuf)> {
        let mut out = Vec::new();
        if let Some(ca) = self.sinks.webhook.as_ref().and_then(|w| w.ca_file.as_ref()) {
            out.push(("alerts.webhook.ca_file".to_owned(), ca));
        }
        if let Some(tls) = self.sinks.syslog.as_ref().and_then(|s| s.tls.as_ref()) {
            out.push(("alerts.syslog.ca_file".to_owned(), &tls.ca_file));
        }
        for (i, r) in self.rules.iter().enumerate() {
            if let RuleKind::Watchlist { file } | RuleKind::SelfLookup { file } = &r.kind {
                out.push((format!("alerts.rule[{i}].file"), file));
            }
        }
        out
    }
}

/// One `[[alerts.rule]]`.
#[derive(Clone, Debug, PartialEq)]
pub struct AlertRule {
    /// Unique among the rules; recorded in each alert (`alert.name`).
    pub name: String,
    pub kind: RuleKind,
    /// After an alert, the same rule does not alert again for the same actor (and, for list
    /// rules, the same subject) within this time. Zero: every hit alerts.
    pub suppress_for: Duration,
}

/// What a rule looks for.
#[derive(Clone, Debug, PartialEq)]
pub enum RuleKind {
    /// More than `subjects` distinct subjects asked about or returned to one actor in `window`.
    Bulk { subjects: usize, window: Duration },
    /// An access outside every `working_hours` span, in the named IANA time zone.
    OutOfHours {
        time_zone: String,
        working_hours: Vec<WorkingHours>,
    },
    /// An access to a subject listed in `file` (one id per line; `#` comments), re-read when
    /// the file changes.
    Watchlist { file: PathBuf },
    /// An actor accessing their own record: `file` maps actor ids to their subject ids
    /// (`actor-id subject-id [subject-id ...]` per line), re-read when it changes.
    SelfLookup { file: PathBuf },
    /// An access with one of `operations` and no case reference.
    NoCaseReference { operations: Vec<Operation> },
    /// More than `denials` refusals (sidecar denials, records-system 401/403) for one actor in
    /// `window`.
    RepeatedDenials { denials: usize, window: Duration },
    /// Emergency access: a request carrying `header`, or matching one of `routes`. Always
    /// alerts; an alert not reviewed within `review_within` raises a second one.
    BreakGlass {
        header: Option<HeaderName>,
        routes: Vec<String>,
        review_within: Duration,
    },
}

impl RuleKind {
    /// The kind as written in config and recorded in `alert.rule`.
    pub fn label(&self) -> &'static str {
        match self {
            RuleKind::Bulk { .. } => "bulk",
            RuleKind::OutOfHours { .. } => "out_of_hours",
            RuleKind::Watchlist { .. } => "watchlist",
            RuleKind::SelfLookup { .. } => "self_lookup",
            RuleKind::NoCaseReference { .. } => "no_case_reference",
            RuleKind::RepeatedDenials { .. } => "repeated_denials",
            RuleKind::BreakGlass { .. } => "break_glass",
        }
    }

    /// How far back a rule's state reaches (windows), for rebuilding it from the log.
    pub fn window(&self) -> Duration {
        match self {
            RuleKind::Bulk { window, .. } | RuleKind::RepeatedDenials { window, .. } => *window,
            _ => Duration::ZERO,
        }
    }
}

/// One span of working time: on `days` (Monday = 0), from `start` to `end` minutes after
/// midnight; an `end` at or before `start` runs past midnight into the next day.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkingHours {
    pub days: [bool; 7],
    pub start: u16,
    pub end: u16,
}

impl WorkingHours {
    /// Whether `weekday` (Monday = 0) at `minute` after midnight falls in this span.
    pub fn contains(&self, weekday: usize, minute: u16) -> bool {
        if self.start < self.end {
            self.days[weekday % 7] && (self.start..self.end).contains(&minute)
        } else {
            // Past midnight: the evening part on a listed day, the morning part on the day after.
            (self.days[weekday % 7] && minute >= self.start)
                || (self.days[(weekday + 6) % 7] && minute < self.end)
        }
    }
}

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// `"Mon-Fri 07:00-19:00"`, `"Sat,Sun 10:00-14:00"`, `"daily 22:00-06:00"`.
fn working_hours(text: &str) -> Result<WorkingHours, String> {
    let usage = || {
        format!(
            "{text:?} is not a working-hours span (write e.g. \"Mon-Fri 07:00-19:00\", \
             \"Sat,Sun 10:00-14:00\" or \"daily 08:00-18:00\")"
        )
    };
    let (days_text, times) = text.trim().split_once(' ').ok_or_else(usage)?;
    let day = |d: &str| DAYS.iter().position(|x| d.eq_ignore_ascii_case(x));
    let mut days = [false; 7];
    if days_text.eq_ignore_ascii_case("daily") {
        days = [true; 7];
    } else {
        for part in days_text.split(',') {
            match part.split_once('-') {
                Some((a, b)) => {
                    let (a, b) = (day(a).ok_or_else(usage)?, day(b).ok_or_else(usage)?);
                    let mut d = a;
                    loop {
                        days[d] = true;
                        if d == b {
                            break;
                        }
                        d = (d + 1) % 7;
                    }
                }
                None => days[day(part).ok_or_else(usage)?] = true,
            }
        }
    }
    let (start, end) = times.trim().split_once('-').ok_or_else(usage)?;
    let minute = |t: &str| -> Option<u16> {
        let (h, m) = t.split_once(':')?;
        let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
        (m < 60 && (h < 24 || (h == 24 && m == 0))).then_some(h * 60 + m)
    };
    let (start, end) = (
        minute(start).ok_or_else(usage)?,
        minute(end).ok_or_else(usage)?,
    );
    if start == end {
        return Err(format!("{text:?} is empty (start and end are the same)"));
    }
    Ok(WorkingHours {
        days,
        start,
        end: end % (24 * 60),
    })
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAlerts {
    rule: Option<Vec<toml::Value>>,
    webhook: Option<RawWebhook>,
    syslog: Option<RawSyslog>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawRule {
    name: Option<String>,
    kind: Option<String>,
    suppress_for: Option<String>,
    subjects: Option<i64>,
    denials: Option<i64>,
    window: Option<String>,
    time_zone: Option<String>,
    working_hours: Option<Vec<String>>,
    file: Option<String>,
    operations: Option<Vec<String>>,
    header: Option<String>,
    routes: Option<Vec<String>>,
    review_within: Option<String>,
}

impl Section for AlertsConfig {
    const KEY: &'static str = "alerts";
    type Raw = RawAlerts;

    fn check(raw: RawAlerts, c: &mut Checker<'_>) -> Option<Self> {
        let mut rules = Vec::new();
        let mut ok = true;
        let mut names = BTreeSet::new();
        for (i, value) in raw.rule.unwrap_or_default().into_iter().enumerate() {
            let path = format!("alerts.rule[{i}]");
            let rule = c
                .table::<RawRule>(&path, value)
                .and_then(|r| rule(&path, r, c));
            match rule {
                Some(r) => {
                    if !names.insert(r.name.clone()) {
                        c.push(
                            &at(&path, "name"),
                            format!("{:?} is the name of an earlier rule", r.name),
                        );
                        ok = false;
                    }
                    rules.push(r);
                }
                None => ok = false,
            }
        }
        let webhook = match raw.webhook {
            Some(w) => match check_webhook(w, "alerts.webhook", c) {
                Some(w) => Some(w),
                None => {
                    ok = false;
                    None
                }
            },
            None => None,
        };
        let syslog = match raw.syslog {
            Some(s) => match check_syslog(s, "alerts.syslog", c) {
                Some(s) => Some(s),
                None => {
                    ok = false;
                    None
                }
            },
            None => None,
        };
        ok.then_some(AlertsConfig {
            rules,
            sinks: AlertSinks { webhook, syslog },
        })
    }
}

/// Keys each kind takes (besides name, kind and suppress_for).
fn keys_of(kind: &str) -> &'static [&'static str] {
    match kind {
        "bulk" => &["subjects", "window"],
        "out_of_hours" => &["time_zone", "working_hours"],
        "watchlist" | "self_lookup" => &["file"],
        "no_case_reference" => &["operations"],
        "repeated_denials" => &["denials", "window"],
        "break_glass" => &["header", "routes", "review_within"],
        _ => &[],
    }
}

fn rule(path: &str, raw: RawRule, c: &mut Checker<'_>) -> Option<AlertRule> {
    let kind_text = c.required(&at(path, "kind"), raw.kind.clone())?;
    let given: [(&str, bool); 10] = [
        ("subjects", raw.subjects.is_some()),
        ("denials", raw.denials.is_some()),
        ("window", raw.window.is_some()),
        ("time_zone", raw.time_zone.is_some()),
        ("working_hours", raw.working_hours.is_some()),
        ("file", raw.file.is_some()),
        ("operations", raw.operations.is_some()),
        ("header", raw.header.is_some()),
        ("routes", raw.routes.is_some()),
        ("review_within", raw.review_within.is_some()),
    ];
    let allowed = keys_of(&kind_text);
    if allowed.is_empty() {
        c.push(
            &at(path, "kind"),
            format!(
                "unknown kind {kind_text:?} (expected bulk, out_of_hours, watchlist, \
                 self_lookup, no_case_reference, repeated_denials or break_glass)"
            ),
        );
        return None;
    }
    let mut ok = true;
    for (key, present) in given {
        if present && !allowed.contains(&key) {
            c.push(
                &at(path, key),
                format!("a {kind_text} rule does not take {key} (it takes {allowed:?})"),
            );
            ok = false;
        }
    }
    let window = |c: &mut Checker<'_>| {
        let text = c.required(&at(path, "window"), raw.window.clone())?;
        c.span(&at(path, "window"), &text)
    };
    let count = |c: &mut Checker<'_>, key: &str, value: Option<i64>| match value {
        None => {
            c.required::<()>(&at(path, key), None);
            None
        }
        Some(n) if n > 0 => Some(usize::try_from(n).unwrap_or(usize::MAX)),
        Some(n) => {
            c.push(&at(path, key), format!("must be greater than 0 (got {n})"));
            None
        }
    };
    let kind = match kind_text.as_str() {
        "bulk" => {
            let (subjects, window) = (count(c, "subjects", raw.subjects), window(c));
            RuleKind::Bulk {
                subjects: subjects?,
                window: window?,
            }
        }
        "repeated_denials" => {
            let (denials, window) = (count(c, "denials", raw.denials), window(c));
            RuleKind::RepeatedDenials {
                denials: denials?,
                window: window?,
            }
        }
        "out_of_hours" => {
            let zone = c.required(&at(path, "time_zone"), raw.time_zone.clone());
            let zone = zone.and_then(|z| match jiff::tz::TimeZone::get(&z) {
                Ok(_) => Some(z),
                Err(e) => {
                    c.push(
                        &at(path, "time_zone"),
                        format!("{z:?} is not a time zone of the tz database: {e}"),
                    );
                    None
                }
            });
            let mut hours = Vec::new();
            let texts = c.required(&at(path, "working_hours"), raw.working_hours.clone());
            for (i, text) in texts.iter().flatten().enumerate() {
                match working_hours(text) {
                    Ok(h) => hours.push(h),
                    Err(why) => {
                        c.push(&format!("{}[{i}]", at(path, "working_hours")), why);
                        ok = false;
                    }
                }
            }
            if texts.as_ref().is_some_and(Vec::is_empty) {
                c.push(&at(path, "working_hours"), "must name at least one span");
                ok = false;
            }
            RuleKind::OutOfHours {
                time_zone: zone?,
                working_hours: hours,
            }
        }
        "watchlist" | "self_lookup" => {
            let key = at(path, "file");
            let file = c.required(&key, raw.file.clone());
            let file = c.file(&key, file)?;
            if kind_text == "watchlist" {
                RuleKind::Watchlist { file }
            } else {
                RuleKind::SelfLookup { file }
            }
        }
        "no_case_reference" => {
            let operations = match &raw.operations {
                None => Operation::ALL.to_vec(),
                Some(list) => {
                    let mut ops = Vec::new();
                    for (i, op) in list.iter().enumerate() {
                        let key = format!("{}[{i}]", at(path, "operations"));
                        match c.operation(&key, op) {
                            Some(o) => ops.push(o),
                            None => ok = false,
                        }
                    }
                    if list.is_empty() {
                        c.push(&at(path, "operations"), "must name at least one operation");
                        ok = false;
                    }
                    ops
                }
            };
            RuleKind::NoCaseReference { operations }
        }
        _ => {
            let header = match &raw.header {
                Some(h) => Some(c.header(&at(path, "header"), h)?),
                None => None,
            };
            let routes = raw.routes.clone().unwrap_or_default();
            if header.is_none() && routes.is_empty() {
                c.push(
                    path,
                    "a break_glass rule needs a header, routes, or both, to know emergency access",
                );
                return None;
            }
            let within = raw.review_within.clone().unwrap_or_else(|| "24h".into());
            RuleKind::BreakGlass {
                header,
                routes,
                review_within: c.span(&at(path, "review_within"), &within)?,
            }
        }
    };
    let suppress_for = match (&raw.suppress_for, &kind) {
        (Some(_), RuleKind::BreakGlass { .. }) => {
            c.push(
                &at(path, "suppress_for"),
                "break-glass access always alerts; it cannot be suppressed",
            );
            return None;
        }
        (Some(text), _) if text.trim() == "0" || text.trim() == "0s" => Duration::ZERO,
        (Some(text), _) => c.span(&at(path, "suppress_for"), text)?,
        (None, RuleKind::Bulk { window, .. } | RuleKind::RepeatedDenials { window, .. }) => *window,
        (None, RuleKind::OutOfHours { .. } | RuleKind::NoCaseReference { .. }) => {
            Duration::from_secs(3600)
        }
        (None, _) => Duration::ZERO,
    };
    let name = raw.name.unwrap_or_else(|| kind.label().to_owned());
    if name.trim().is_empty() || name.len() > 64 {
        c.push(&at(path, "name"), "must be 1 to 64 characters");
        return None;
    }
    ok.then_some(AlertRule {
        name,
        kind,
        suppress_for,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn parse(text: &str) -> Result<AlertsConfig, Vec<String>> {
        let mut c = Checker::new(None);
        let value: toml::Value = toml::from_str(text).map_err(|e| vec![e.to_string()])?;
        let section = c.optional_section::<AlertsConfig>(Some(value));
        match section {
            Some(Some(a)) if c.problems.is_empty() => Ok(a),
            _ => Err(c.problems.iter().map(|p| p.to_string()).collect()),
        }
    }

    #[test]
    fn every_kind_parses_with_its_defaults() {
        let a = parse(
            r#"
            [[rule]]
            kind = "bulk"
            subjects = 50
            window = "1h"
            [[rule]]
            kind = "out_of_hours"
            time_zone = "Europe/London"
            working_hours = ["Mon-Fri 07:00-19:00", "Sat 08:00-12:00"]
            [[rule]]
            kind = "watchlist"
            file = "watch.txt"
            [[rule]]
            kind = "self_lookup"
            file = "self.txt"
            [[rule]]
            kind = "no_case_reference"
            operations = ["consultation"]
            [[rule]]
            name = "denied-often"
            kind = "repeated_denials"
            denials = 5
            window = "10m"
            suppress_for = "0"
            [[rule]]
            kind = "break_glass"
            header = "x-break-glass"
            "#,
        )
        .unwrap();
        let names: Vec<&str> = a.rules.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "bulk",
                "out_of_hours",
                "watchlist",
                "self_lookup",
                "no_case_reference",
                "denied-often",
                "break_glass"
            ]
        );
        assert_eq!(a.rules[0].suppress_for, Duration::from_secs(3600));
        assert_eq!(a.rules[5].suppress_for, Duration::ZERO);
        assert_eq!(a.break_glass_headers(), ["x-break-glass"]);
        assert!(matches!(
            &a.rules[6].kind,
            RuleKind::BreakGlass { review_within, .. } if *review_within == Duration::from_secs(86_400)
        ));
    }

    #[test]
    fn mistakes_are_named_with_their_key_path() {
        let errors = parse(
            r#"
            [[rule]]
            kind = "bulk"
            subjects = 0
            window = "soon"
            file = "x"
            [[rule]]
            kind = "out_of_hours"
            time_zone = "Mars/Olympus"
            working_hours = ["weekdays 9-5"]
            [[rule]]
            kind = "break_glass"
            suppress_for = "1h"
            header = "x-break-glass"
            [[rule]]
            kind = "telepathy"
            [[rule]]
            kind = "break_glass"
            "#,
        )
        .unwrap_err()
        .join("\n");
        for expected in [
            "alerts.rule[0].subjects: must be greater than 0",
            "alerts.rule[0].window: \"soon\" is not a positive duration",
            "alerts.rule[0].file: a bulk rule does not take file",
            "alerts.rule[1].time_zone: \"Mars/Olympus\" is not a time zone",
            "alerts.rule[1].working_hours[0]: \"weekdays 9-5\" is not a working-hours span",
            "alerts.rule[2].suppress_for: break-glass access always alerts",
            "alerts.rule[3].kind: unknown kind \"telepathy\"",
            "alerts.rule[4]: a break_glass rule needs a header, routes, or both",
        ] {
            assert!(errors.contains(expected), "{expected:?} not in:\n{errors}");
        }
    }

    #[test]
    fn two_rules_cannot_share_a_name() {
        let errors = parse(
            r#"
            [[rule]]
            kind = "no_case_reference"
            [[rule]]
            kind = "no_case_reference"
            "#,
        )
        .unwrap_err()
        .join("\n");
        assert!(
            errors.contains(
                "alerts.rule[1].name: \"no_case_reference\" is the name of an earlier rule"
            ),
            "{errors}"
        );
    }

    #[test]
    fn working_hours_cover_ranges_lists_and_spans_past_midnight() {
        let h = working_hours("Mon-Fri 07:00-19:00").unwrap();
        assert!(h.contains(0, 7 * 60));
        assert!(h.contains(4, 18 * 60 + 59));
        assert!(!h.contains(4, 19 * 60));
        assert!(!h.contains(5, 12 * 60));
        let night = working_hours("Fri 22:00-06:00").unwrap();
        assert!(night.contains(4, 23 * 60));
        assert!(
            night.contains(5, 5 * 60),
            "Saturday early morning belongs to Friday's shift"
        );
        assert!(
            !night.contains(4, 5 * 60),
            "Friday early morning is Thursday's, not listed"
        );
        let wrap = working_hours("Sat-Mon 10:00-24:00").unwrap();
        assert!(
            wrap.contains(6, 23 * 60) && wrap.contains(0, 10 * 60) && !wrap.contains(1, 11 * 60)
        );
        assert!(working_hours("Mon 09:00-09:00").is_err());
        assert!(working_hours("Mon 25:00-26:00").is_err());
    }
}
