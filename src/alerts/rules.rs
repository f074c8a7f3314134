//! The misuse rules as a pure function of the committed entries, in seq order: each entry goes in,
//! the alerts it raises come out. Given the same entries and the same alerts already in the log,
//! it raises the same alerts, which is what lets the watch rebuild its state from the log.
//!
//! What counts as an access: an `intent` (what was asked for) and its `outcome` (what came back;
//! the actor is the intent's). A refusal: a `denied` entry with an identified actor, or an
//! outcome the records system answered 401 or 403. The sidecar's own entries (actor `s62`,
//! local) are never looked at.
//!
//! Must not depend on the log store, the writer, files or a clock: the entries carry their time,
//! and the list rules get their lists from [`Rules::set_list`].

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::time::Duration;

use crate::config::{AlertRule, RuleKind};
use crate::log::entry::{Actor, AuthMethod, Entry, EntryKind, Operation};

/// Intents remembered for their outcomes (older ones are fetched again when needed).
const REMEMBERED_INTENTS: usize = 65_536;

/// One alert to write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hit {
    /// The rule's configured name.
    pub name: String,
    /// The rule's kind label (`alert.rule`).
    pub kind: &'static str,
    /// Whose actions raised it.
    pub actor: Actor,
    /// The subjects involved (list rules, break-glass), else empty.
    pub subject_ids: Vec<String>,
    /// The entry that raised it.
    pub sighting_seq: u64,
    /// An earlier entry it relates to (the first in a window), else the sighting itself.
    pub related_seq: u64,
    /// Why, without personal data: counts, times, the rule's own settings.
    pub detail: String,
}

/// What an intent said, kept for its outcome.
#[derive(Clone, Debug)]
struct Seen {
    actor: Actor,
    subjects: Vec<String>,
}

/// A rule and its running state.
struct Compiled {
    rule: AlertRule,
    /// Bulk: per actor, the (time, seq, subject) sightings in the window, and distinct counts.
    windows: HashMap<String, Window>,
    /// Out of hours: the resolved zone (`None` if the tz database lacks it: the rule is off).
    zone: Option<jiff::tz::TimeZone>,
    /// Watchlist: protected ids. Self-lookup: actor id → their own subject ids.
    list: HashSet<String>,
    own: HashMap<String, HashSet<String>>,
}

#[derive(Default)]
struct Window {
    events: VecDeque<(i64, u64, String)>,
    distinct: HashMap<String, usize>,
}

impl Window {
    /// Adds a sighting and drops those older than `window` before `time`.
    fn push(&mut self, time: i64, seq: u64, what: String, window: Duration) {
        *self.distinct.entry(what.clone()).or_default() += 1;
        self.events.push_back((time, seq, what));
        let since = time.saturating_sub(nanos(window));
        while let Some((t, _, _)) = self.events.front() {
            if *t >= since {
                break;
            }
            if let Some((_, _, old)) = self.events.pop_front()
                && let Some(n) = self.distinct.get_mut(&old)
            {
                *n -= 1;
                if *n == 0 {
                    self.distinct.remove(&old);
                }
            }
        }
    }
}

fn nanos(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

/// Every rule's state.
pub struct Rules {
    rules: Vec<Compiled>,
    intents: BTreeMap<u64, Seen>,
    /// (rule name, actor id, subject) → time of the last alert, for `suppress_for`.
    last: HashMap<(String, String, String), i64>,
    /// (rule name, sighting seq, subject) of alerts already in the log.
    fired: HashSet<(String, u64, String)>,
}

impl Rules {
    pub fn new(rules: &[AlertRule]) -> Rules {
        let rules = rules
            .iter()
            .map(|r| Compiled {
                zone: match &r.kind {
                    RuleKind::OutOfHours { time_zone, .. } => {
                        jiff::tz::TimeZone::get(time_zone).ok()
                    }
                    _ => None,
                },
                rule: r.clone(),
                windows: HashMap::new(),
                list: HashSet::new(),
                own: HashMap::new(),
            })
            .collect();
        Rules {
            rules,
            intents: BTreeMap::new(),
            last: HashMap::new(),
            fired: HashSet::new(),
        }
    }

    /// Replaces a watchlist (ids) or a self-lookup map (`actor subject...` lines, parsed by the
    /// caller into pairs) for the rule named `name`.
    pub fn set_list(
        &mut self,
        name: &str,
        ids: HashSet<String>,
        own: HashMap<String, HashSet<String>>,
    ) {
        if let Some(c) = self.rules.iter_mut().find(|c| c.rule.name == name) {
            c.list = ids;
            c.own = own;
        }
    }

    /// Records an alert already in the log: the same hit is not raised again.
    pub fn already_fired(&mut self, name: &str, sighting_seq: u64, subject: &str) {
        self.fired
            .insert((name.to_owned(), sighting_seq, subject.to_owned()));
    }

    /// Looks at one committed entry. `intent_of` fetches an intent this state no longer holds.
    pub fn observe(
        &mut self,
        e: &Entry,
        intent_of: &mut dyn FnMut(u64) -> Option<Entry>,
    ) -> Vec<Hit> {
        let mut hits = Vec::new();
        match EntryKind::try_from(e.kind) {
            Ok(EntryKind::Intent) => {
                let Some(actor) = person(e.actor.as_ref()) else {
                    return hits;
                };
                self.remember(e.seq, actor.clone(), e.subject_ids.clone());
                self.access(e, &actor, &e.subject_ids, true, &mut hits);
            }
            Ok(EntryKind::Outcome) => {
                let Some(intent_seq) = e.answers_seq else {
                    return hits;
                };
                let seen = match self.intents.remove(&intent_seq) {
                    Some(s) => Some(s),
                    None => intent_of(intent_seq).and_then(|i| {
                        Some(Seen {
                            actor: person(i.actor.as_ref())?,
                            subjects: i.subject_ids,
                        })
                    }),
                };
                let Some(seen) = seen else {
                    return hits;
                };
                let status = e.outcome.as_ref().map_or(0, |o| o.status);
                if status == 401 || status == 403 {
                    self.denial(e, &seen.actor, &mut hits);
                }
                let returned: Vec<String> = e
                    .outcome
                    .iter()
                    .flat_map(|o| o.returned_subject_ids.iter())
                    .filter(|s| !seen.subjects.contains(s))
                    .cloned()
                    .collect();
                if !returned.is_empty() {
                    self.access(e, &seen.actor, &returned, false, &mut hits);
                }
            }
            Ok(EntryKind::Denied) => {
                if let Some(actor) = person(e.actor.as_ref()) {
                    self.denial(e, &actor, &mut hits);
                }
            }
            _ => {}
        }
        hits
    }

    fn remember(&mut self, seq: u64, actor: Actor, subjects: Vec<String>) {
        self.intents.insert(seq, Seen { actor, subjects });
        while self.intents.len() > REMEMBERED_INTENTS {
            self.intents.pop_first();
        }
    }

    /// An access to `subjects` by `actor`: from an intent (`asked`) or an outcome's extra ids.
    fn access(
        &mut self,
        e: &Entry,
        actor: &Actor,
        subjects: &[String],
        asked: bool,
        hits: &mut Vec<Hit>,
    ) {
        let mut raised = Vec::new();
        for c in &mut self.rules {
            let rule = &c.rule;
            match &rule.kind {
                RuleKind::Bulk {
                    subjects: max,
                    window,
                } => {
                    let w = c.windows.entry(actor.id.clone()).or_default();
                    for s in subjects.iter().filter(|s| !s.is_empty()) {
                        w.push(e.time_unix_nanos, e.seq, s.clone(), *window);
                    }
                    if w.distinct.len() > *max {
                        let first = w.events.front().map_or(e.seq, |x| x.1);
                        raised.push((
                            rule.clone(),
                            Vec::new(),
                            first,
                            format!(
                                "{} distinct subjects within {} (more than {max})",
                                w.distinct.len(),
                                span_text(*window)
                            ),
                        ));
                    }
                }
                RuleKind::OutOfHours {
                    time_zone,
                    working_hours,
                } if asked => {
                    let Some(zone) = &c.zone else { continue };
                    let Ok(t) = jiff::Timestamp::from_nanosecond(i128::from(e.time_unix_nanos))
                    else {
                        continue;
                    };
                    let local = t.to_zoned_datetime(zone.clone());
                    let day = usize::try_from(local.weekday().to_monday_zero_offset()).unwrap_or(0);
                    let minute = u16::try_from(local.hour()).unwrap_or(0) * 60
                        + u16::try_from(local.minute()).unwrap_or(0);
                    if !working_hours.iter().any(|h| h.contains(day, minute)) {
                        raised.push((
                            rule.clone(),
                            Vec::new(),
                            e.seq,
                            format!(
                                "access at {} {} {time_zone}, outside working hours",
                                local.strftime("%a"),
                                local.strftime("%H:%M")
                            ),
                        ));
                    }
                }
                RuleKind::Watchlist { .. } => {
                    for s in subjects.iter().filter(|s| c.list.contains(*s)) {
                        raised.push((
                            rule.clone(),
                            vec![s.clone()],
                            e.seq,
                            "access to a subject on the watchlist".to_owned(),
                        ));
                    }
                }
                RuleKind::SelfLookup { .. } => {
                    if let Some(own) = c.own.get(&actor.id) {
                        for s in subjects.iter().filter(|s| own.contains(*s)) {
                            raised.push((
                                rule.clone(),
                                vec![s.clone()],
                                e.seq,
                                "an actor accessed their own record".to_owned(),
                            ));
                        }
                    }
                }
                // An access that names no subject and no record (a health check) asks for no
                // personal data, so it needs no case.
                RuleKind::NoCaseReference { operations }
                    if asked && !(e.subject_ids.is_empty() && e.record_ids.is_empty()) =>
                {
                    let op = Operation::try_from(e.operation).unwrap_or(Operation::Unspecified);
                    let case = e
                        .justification
                        .as_ref()
                        .is_some_and(|j| !j.case_reference.trim().is_empty());
                    if operations.contains(&op) && !case {
                        raised.push((
                            rule.clone(),
                            Vec::new(),
                            e.seq,
                            format!("{} without a case reference", op.label()),
                        ));
                    }
                }
                RuleKind::BreakGlass {
                    routes,
                    review_within,
                    ..
                } if asked => {
                    let r = e.request.as_ref();
                    let marked = r.is_some_and(|r| r.break_glass);
                    let routed = r.is_some_and(|r| routes.contains(&r.route));
                    if marked || routed {
                        raised.push((
                            rule.clone(),
                            subjects.to_vec(),
                            e.seq,
                            format!(
                                "emergency access (by {}); review within {}",
                                if marked { "header" } else { "route" },
                                span_text(*review_within)
                            ),
                        ));
                    }
                }
                _ => {}
            }
        }
        for (rule, subjects, related, detail) in raised {
            self.raise(e, actor, &rule, subjects, related, detail, hits);
        }
    }

    fn denial(&mut self, e: &Entry, actor: &Actor, hits: &mut Vec<Hit>) {
        let mut raised = Vec::new();
        for c in &mut self.rules {
            if let RuleKind::RepeatedDenials { denials, window } = &c.rule.kind {
                let w = c.windows.entry(actor.id.clone()).or_default();
                // Each denial is distinct: keyed by its seq.
                w.push(e.time_unix_nanos, e.seq, e.seq.to_string(), *window);
                if w.distinct.len() > *denials {
                    let first = w.events.front().map_or(e.seq, |x| x.1);
                    let detail = format!(
                        "{} refusals within {} (more than {denials})",
                        w.distinct.len(),
                        span_text(*window)
                    );
                    raised.push((c.rule.clone(), first, detail));
                }
            }
        }
        for (rule, related, detail) in raised {
            self.raise(e, actor, &rule, Vec::new(), related, detail, hits);
        }
    }

    /// Applies the log's record and `suppress_for`, then adds the hit.
    #[allow(clippy::too_many_arguments)]
    fn raise(
        &mut self,
        e: &Entry,
        actor: &Actor,
        rule: &AlertRule,
        subjects: Vec<String>,
        related: u64,
        detail: String,
        hits: &mut Vec<Hit>,
    ) {
        let subject = subjects.first().cloned().unwrap_or_default();
        let key = (rule.name.clone(), actor.id.clone(), subject.clone());
        let fired = self
            .fired
            .contains(&(rule.name.clone(), e.seq, subject.clone()));
        let suppressed = !matches!(rule.kind, RuleKind::BreakGlass { .. })
            && self
                .last
                .get(&key)
                .is_some_and(|t| e.time_unix_nanos < t.saturating_add(nanos(rule.suppress_for)));
        if fired || !suppressed {
            self.last.insert(key, e.time_unix_nanos);
        }
        if fired || suppressed {
            return;
        }
        self.fired.insert((rule.name.clone(), e.seq, subject));
        hits.push(Hit {
            name: rule.name.clone(),
            kind: rule.kind.label(),
            actor: actor.clone(),
            subject_ids: subjects,
            sighting_seq: e.seq,
            related_seq: related,
            detail,
        });
    }
}

/// The actor of a person's access: identified, and not the sidecar itself.
fn person(actor: Option<&Actor>) -> Option<Actor> {
    let a = actor?;
    (!a.id.is_empty() && a.auth_method != AuthMethod::Local as i32).then(|| a.clone())
}

/// `1h`, `10m`, `90s`, for details.
pub(crate) fn span_text(d: Duration) -> String {
    let s = d.as_secs();
    if s.is_multiple_of(86_400) && s >= 3 * 86_400 {
        format!("{}d", s / 86_400)
    } else if s.is_multiple_of(3600) && s > 0 {
        format!("{}h", s / 3600)
    } else if s.is_multiple_of(60) && s > 0 {
        format!("{}m", s / 60)
    } else {
        format!("{}s", s)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::log::entry::{Justification, Outcome, Request};

    fn rule(kind: RuleKind, suppress_secs: u64) -> AlertRule {
        AlertRule {
            name: kind.label().to_owned(),
            kind,
            suppress_for: Duration::from_secs(suppress_secs),
        }
    }

    fn officer(id: &str) -> Actor {
        Actor {
            id: id.into(),
            auth_method: AuthMethod::TrustedHeader as i32,
            ..Default::default()
        }
    }

    fn intent(seq: u64, secs: i64, who: &str, subjects: &[&str]) -> Entry {
        Entry {
            seq,
            time_unix_nanos: secs * 1_000_000_000,
            kind: EntryKind::Intent as i32,
            operation: Operation::Consultation as i32,
            actor: Some(officer(who)),
            justification: Some(Justification {
                case_reference: "C-1".into(),
                ..Default::default()
            }),
            subject_ids: subjects.iter().map(|s| s.to_string()).collect(),
            request: Some(Request::default()),
            ..Default::default()
        }
    }

    fn outcome(seq: u64, secs: i64, answers: u64, status: u32, returned: &[&str]) -> Entry {
        Entry {
            seq,
            time_unix_nanos: secs * 1_000_000_000,
            kind: EntryKind::Outcome as i32,
            answers_seq: Some(answers),
            outcome: Some(Outcome {
                status,
                returned_subject_ids: returned.iter().map(|s| s.to_string()).collect(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn feed(rules: &mut Rules, entries: &[Entry]) -> Vec<Hit> {
        let all = entries.to_vec();
        let mut fetch = |seq: u64| all.iter().find(|e| e.seq == seq).cloned();
        entries
            .iter()
            .flat_map(|e| rules.observe(e, &mut fetch))
            .collect()
    }

    #[test]
    fn a_search_that_returns_many_people_counts_each_of_them_for_bulk() {
        let mut r = Rules::new(&[rule(
            RuleKind::Bulk {
                subjects: 3,
                window: Duration::from_secs(3600),
            },
            3600,
        )]);
        let hits = feed(
            &mut r,
            &[
                intent(0, 100, "pc-1", &[]),
                outcome(1, 101, 0, 200, &["P-1", "P-2", "P-3", "P-4"]),
            ],
        );
        assert_eq!(hits.len(), 1);
        assert_eq!(
            hits[0].actor.id, "pc-1",
            "the outcome is the intent's actor's"
        );
        assert_eq!(hits[0].sighting_seq, 1);
    }

    #[test]
    fn records_system_refusals_count_as_denials_and_the_window_slides() {
        let mut r = Rules::new(&[rule(
            RuleKind::RepeatedDenials {
                denials: 2,
                window: Duration::from_secs(60),
            },
            0,
        )]);
        // Three 403s, but spread over more than a minute: never more than two in the window.
        let spread = feed(
            &mut r,
            &[
                intent(0, 0, "pc-1", &["P-1"]),
                outcome(1, 0, 0, 403, &[]),
                intent(2, 50, "pc-1", &["P-1"]),
                outcome(3, 50, 2, 403, &[]),
                intent(4, 100, "pc-1", &["P-1"]),
                outcome(5, 100, 4, 401, &[]),
            ],
        );
        assert!(spread.is_empty(), "{spread:?}");
        let close = feed(
            &mut r,
            &[
                intent(6, 101, "pc-1", &["P-1"]),
                outcome(7, 101, 6, 403, &[]),
            ],
        );
        assert_eq!(close.len(), 1, "three within a minute");
    }

    #[test]
    fn the_sidecars_own_probes_are_never_looked_at() {
        let mut r = Rules::new(&[rule(
            RuleKind::NoCaseReference {
                operations: Operation::ALL.to_vec(),
            },
            0,
        )]);
        let mut probe = intent(0, 0, "s62", &["P-1"]);
        probe.actor = Some(Actor {
            id: "s62".into(),
            auth_method: AuthMethod::Local as i32,
            ..Default::default()
        });
        probe.justification = None;
        assert!(feed(&mut r, &[probe]).is_empty());
    }

    #[test]
    fn an_alert_already_in_the_log_is_not_raised_again_but_still_suppresses() {
        let nocase = rule(
            RuleKind::NoCaseReference {
                operations: Operation::ALL.to_vec(),
            },
            3600,
        );
        let mut bare = intent(5, 0, "pc-1", &["P-1"]);
        bare.justification = None;
        let mut later = intent(6, 60, "pc-1", &["P-2"]);
        later.justification = None;
        let mut fresh = Rules::new(std::slice::from_ref(&nocase));
        assert_eq!(feed(&mut fresh, &[bare.clone(), later.clone()]).len(), 1);
        let mut replayed = Rules::new(&[nocase]);
        replayed.already_fired("no_case_reference", 5, "");
        assert!(
            feed(&mut replayed, &[bare, later]).is_empty(),
            "the first is in the log, and it suppresses the second as it did the first time"
        );
    }

    #[test]
    fn break_glass_always_alerts_even_within_suppress_for() {
        let bg = rule(
            RuleKind::BreakGlass {
                header: None,
                routes: vec!["person-emergency".into()],
                review_within: Duration::from_secs(86_400),
            },
            3600,
        );
        let mut r = Rules::new(&[bg]);
        let mut a = intent(0, 0, "pc-1", &["P-1"]);
        a.request = Some(Request {
            route: "person-emergency".into(),
            ..Default::default()
        });
        let mut b = a.clone();
        b.seq = 1;
        let mut marked = intent(2, 2, "pc-1", &["P-2"]);
        marked.request = Some(Request {
            break_glass: true,
            ..Default::default()
        });
        let hits = feed(&mut r, &[a, b, marked]);
        assert_eq!(hits.len(), 3);
        assert!(hits[2].detail.contains("by header"), "{}", hits[2].detail);
    }
}
