//! Misuse alerts for s62(4)(b) self-monitoring: the `[[alerts.rule]]`s run over the committed
//! log, off the hot path, and each hit becomes a durable `alert` entry in the same log.
//!
//! The task follows the writer's checkpoints (like the compliance watch): a request never waits
//! for a rule. Its state is rebuilt from the log at start: the alerts already written are read
//! through the kind index, and the rules replay the entries of the longest rule window (and
//! `suppress_for`) before the log's end, so a restart neither repeats an alert nor forgets a
//! window. Entries older than that window which the task had not yet looked at when the process
//! stopped are not looked at again; the task is normally a batch behind the writer, so that is a
//! crash at the instant after a commit, and it is documented in docs/compliance.md.
//!
//! A `break_glass` alert with no `alert-review` entry for it within the rule's `review_within`
//! (by the writer's clock) raises a second alert, `break_glass_unreviewed`, once; pending reviews
//! are rebuilt from every alert and review in the log at start.
//!
//! Watchlists and self-lookup maps are files, re-read when their modification time or size
//! changes (checked at every wake-up); a file that cannot be read keeps the previous list and
//! is reported (metric and an error line naming the file, never its contents).
//!
//! Delivery of every alert entry (these and the compliance watch's zombies) to a webhook and to
//! syslog is [`deliver`], which reads alerts from the store and never writes the log.
//!
//! Must not depend on the proxy or the query service; it reads the log through the store and
//! writes through the writer. Rule logic lives in [`rules`], which has no I/O.

pub mod deliver;
pub mod rules;

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

use crate::config::{AlertsConfig, RuleKind};
use crate::ingest::{Clock, LogWriter};
use crate::log::entry::{Alert, Entry, EntryKind};
use crate::log::index::IndexFamily;
use crate::log::store::{LogStore, Store, StoreError};
use rules::{Hit, Rules};

/// `s62_alerts_total`'s label: the rule kind.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RuleLabel {
    pub rule: &'static str,
}

/// Every `alert.rule` this task writes (each has a series from the start, at 0).
pub const RULE_KINDS: [&str; 8] = [
    "bulk",
    "out_of_hours",
    "watchlist",
    "self_lookup",
    "no_case_reference",
    "repeated_denials",
    "break_glass",
    UNREVIEWED,
];

/// What `/metrics` shows of the misuse rules (shared handles).
#[derive(Clone, Debug)]
pub struct AlertMetrics {
    /// Alerts written, by rule kind.
    pub raised: Family<RuleLabel, Counter>,
    /// Watchlist or self-lookup files that could not be read (the previous list is kept).
    pub list_failures: Counter,
}

impl Default for AlertMetrics {
    fn default() -> Self {
        let raised = Family::<RuleLabel, Counter>::default();
        for rule in RULE_KINDS {
            drop(raised.get_or_create(&RuleLabel { rule }));
        }
        AlertMetrics {
            raised,
            list_failures: Counter::default(),
        }
    }
}

/// A rule's list file and what was last read from it.
struct ListFile {
    rule: String,
    path: PathBuf,
    self_lookup: bool,
    seen: Option<(SystemTime, u64)>,
}

/// Runs the rules until `stop` resolves.
pub async fn run(
    cfg: AlertsConfig,
    store: Arc<dyn Store>,
    writer: LogWriter,
    clock: Clock,
    metrics: AlertMetrics,
    stop: impl Future<Output = ()>,
) {
    let mut latest = writer.checkpoints();
    let mut files: Vec<ListFile> = cfg
        .rules
        .iter()
        .filter_map(|r| match &r.kind {
            RuleKind::Watchlist { file } | RuleKind::SelfLookup { file } => Some(ListFile {
                rule: r.name.clone(),
                path: file.clone(),
                self_lookup: matches!(r.kind, RuleKind::SelfLookup { .. }),
                seen: None,
            }),
            _ => None,
        })
        .collect();
    let mut rules = Rules::new(&cfg.rules);
    let reach = cfg
        .rules
        .iter()
        .map(|r| r.kind.window().max(r.suppress_for))
        .max()
        .unwrap_or_default();
    let review_within: HashMap<String, Duration> = cfg
        .rules
        .iter()
        .filter_map(|r| match &r.kind {
            RuleKind::BreakGlass { review_within, .. } => Some((r.name.clone(), *review_within)),
            _ => None,
        })
        .collect();
    let mut reviews = Reviews::default();
    let mut next: Option<u64> = None;
    tokio::pin!(stop);
    loop {
        reload_lists(&mut files, &mut rules, &metrics);
        if next.is_none() {
            match start(&store, &mut rules, reach, &review_within).await {
                Ok((from, r)) => {
                    next = Some(from);
                    reviews = r;
                }
                Err(e) => tracing::error!(error = %e, "alert rules could not read the log"),
            }
        }
        if let Some(from) = next.as_mut() {
            let mut ctx = Follow {
                store: &store,
                writer: &writer,
                rules: &mut rules,
                reviews: &mut reviews,
                review_within: &review_within,
                metrics: &metrics,
            };
            if let Err(e) = ctx.follow(from).await {
                tracing::error!(error = %e, "alert rules could not read new entries");
            }
            for hit in reviews.overdue(clock.now_nanos()) {
                write(&writer, hit, &metrics).await;
            }
        }
        tokio::select! {
            _ = &mut stop => break,
            changed = latest.changed() => if changed.is_err() { break },
            () = tokio::time::sleep(Duration::from_secs(5)) => {}
        }
    }
}

/// Break-glass alerts waiting for a review: alert seq → (when a second alert is due, the hit
/// it would be). An alert leaves when a review of it, or its second alert, is in the log.
#[derive(Default)]
struct Reviews {
    waiting: HashMap<u64, (i64, Hit)>,
    /// Alerts already reviewed or already re-raised (they may be seen again on replay).
    settled: HashSet<u64>,
}

impl Reviews {
    /// Looks at an entry for break-glass alerts, reviews and second alerts.
    fn observe(&mut self, e: &Entry, review_within: &HashMap<String, Duration>) {
        if let Some(r) = &e.alert_review
            && e.kind == EntryKind::AlertReview as i32
        {
            self.settle(r.alert_seq);
        }
        let Some(a) = e
            .alert
            .as_ref()
            .filter(|_| e.kind == EntryKind::Alert as i32)
        else {
            return;
        };
        if a.rule == UNREVIEWED {
            self.settle(a.sighting_seq);
        } else if a.rule == "break_glass"
            && !self.settled.contains(&e.seq)
            && let Some(within) = review_within.get(&a.name)
        {
            let due = e
                .time_unix_nanos
                .saturating_add(i64::try_from(within.as_nanos()).unwrap_or(i64::MAX));
            let hit = Hit {
                name: a.name.clone(),
                kind: UNREVIEWED,
                actor: e.actor.clone().unwrap_or_default(),
                subject_ids: e.subject_ids.clone(),
                sighting_seq: e.seq,
                related_seq: a.sighting_seq,
                detail: format!(
                    "break-glass alert #{} not reviewed within {}",
                    e.seq,
                    rules::span_text(*within)
                ),
            };
            self.waiting.insert(e.seq, (due, hit));
        }
    }

    fn settle(&mut self, alert_seq: u64) {
        self.settled.insert(alert_seq);
        self.waiting.remove(&alert_seq);
    }

    /// The second alerts due at `now` (removed from the waiting list).
    fn overdue(&mut self, now: i64) -> Vec<Hit> {
        let mut due: Vec<u64> = self
            .waiting
            .iter()
            .filter(|(_, (at, _))| *at <= now)
            .map(|(seq, _)| *seq)
            .collect();
        due.sort_unstable();
        due.into_iter()
            .filter_map(|seq| {
                self.settled.insert(seq);
                self.waiting.remove(&seq).map(|(_, hit)| hit)
            })
            .collect()
    }
}

/// The rule of the second alert for a break-glass access nobody reviewed in time.
pub const UNREVIEWED: &str = "break_glass_unreviewed";

/// Reads the alerts and reviews already in the log; returns where replay starts and the
/// break-glass alerts still waiting for a review.
async fn start(
    store: &Arc<dyn Store>,
    rules: &mut Rules,
    reach: Duration,
    review_within: &HashMap<String, Duration>,
) -> Result<(u64, Reviews), StoreError> {
    let store = store.clone();
    let within = review_within.clone();
    let (from, fired, reviews) = tokio::task::spawn_blocking(move || -> Result<_, StoreError> {
        let from = replay_start(&*store, reach)?;
        let mut fired = Vec::new();
        let mut found = Vec::new();
        // Every alert and review: a break-glass alert may wait for its review longer than any
        // window, so this reads them all (through the kind index, not the log).
        for kind in [EntryKind::Alert, EntryKind::AlertReview] {
            let mut at = 0;
            loop {
                let page = store.index_seqs(IndexFamily::Kind, kind.label(), at, 1024)?;
                for seq in &page {
                    if let Some(o) = store.opened(*seq)? {
                        found.push(o.entry);
                    }
                }
                match page.last() {
                    Some(last) if page.len() == 1024 => at = last + 1,
                    _ => break,
                }
            }
        }
        found.sort_by_key(|e| e.seq);
        let mut reviews = Reviews::default();
        for e in &found {
            reviews.observe(e, &within);
            if let Some(a) = &e.alert
                && a.sighting_seq >= from
            {
                let subject = e.subject_ids.first().cloned().unwrap_or_default();
                fired.push((a.name.clone(), a.sighting_seq, subject));
            }
        }
        Ok((from, fired, reviews))
    })
    .await
    .map_err(|e| StoreError::Backend(e.to_string()))??;
    for (name, seq, subject) in fired {
        rules.already_fired(&name, seq, &subject);
    }
    Ok((from, reviews))
}

/// The first entry within `reach` of the log's last entry (entries are sequenced in time order,
/// so a binary search over their times finds it).
fn replay_start(store: &dyn Store, reach: Duration) -> Result<u64, StoreError> {
    let count = store.entry_count()?;
    let Some(last) = count.checked_sub(1) else {
        return Ok(0);
    };
    let time = |seq: u64| -> Result<i64, StoreError> {
        Ok(store
            .opened(seq)?
            .map_or(i64::MAX, |o| o.entry.time_unix_nanos))
    };
    let since = time(last)?.saturating_sub(i64::try_from(reach.as_nanos()).unwrap_or(i64::MAX));
    let (mut lo, mut hi) = (0, last);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if time(mid)? < since {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    Ok(lo)
}

/// What following the log touches.
struct Follow<'a> {
    store: &'a Arc<dyn Store>,
    writer: &'a LogWriter,
    rules: &'a mut Rules,
    reviews: &'a mut Reviews,
    review_within: &'a HashMap<String, Duration>,
    metrics: &'a AlertMetrics,
}

impl Follow<'_> {
    /// Feeds the entries committed since `from` to the rules, writes their hits, and keeps the
    /// break-glass review list current.
    async fn follow(&mut self, from: &mut u64) -> Result<(), StoreError> {
        loop {
            let (s, at) = (self.store.clone(), *from);
            let batch = tokio::task::spawn_blocking(move || s.opened_entries(at, 256))
                .await
                .map_err(|e| StoreError::Backend(e.to_string()))??;
            let Some(last) = batch.last().map(|o| o.seq) else {
                return Ok(());
            };
            let mut hits = Vec::new();
            for opened in &batch {
                let s = self.store.clone();
                let mut intent_of = |seq: u64| s.opened(seq).ok().flatten().map(|o| o.entry);
                hits.extend(self.rules.observe(&opened.entry, &mut intent_of));
                self.reviews.observe(&opened.entry, self.review_within);
            }
            for hit in hits {
                write(self.writer, hit, self.metrics).await;
            }
            *from = last + 1;
        }
    }
}

/// Appends one alert entry. A failure is reported and the alert is lost only to this run: the
/// next start replays the window and raises it again (it is not in the log).
async fn write(writer: &LogWriter, hit: Hit, metrics: &AlertMetrics) {
    let entry = alert_entry(&hit);
    match writer.append(entry).await {
        Ok(r) => {
            metrics
                .raised
                .get_or_create(&RuleLabel { rule: hit.kind })
                .inc();
            tracing::warn!(
                alert_seq = r.seq,
                sighting_seq = hit.sighting_seq,
                rule = hit.kind,
                name = %hit.name,
                "misuse alert raised"
            );
        }
        Err(e) => tracing::error!(
            sighting_seq = hit.sighting_seq,
            rule = hit.kind,
            error = %e,
            "misuse alert not logged"
        ),
    }
}

/// The `alert` entry for a hit: the actor concerned, the subjects, the triggering entry.
pub fn alert_entry(hit: &Hit) -> Entry {
    Entry {
        kind: EntryKind::Alert as i32,
        actor: Some(hit.actor.clone()),
        subject_ids: hit.subject_ids.clone(),
        answers_seq: Some(hit.sighting_seq),
        alert: Some(Alert {
            rule: hit.kind.into(),
            name: hit.name.clone(),
            sighting_seq: hit.sighting_seq,
            related_seq: hit.related_seq,
            detail: hit.detail.clone(),
        }),
        ..Default::default()
    }
}

/// Re-reads every list file whose modification time or size changed.
fn reload_lists(files: &mut [ListFile], rules: &mut Rules, metrics: &AlertMetrics) {
    for f in files {
        let stamp = std::fs::metadata(&f.path).and_then(|m| Ok((m.modified()?, m.len())));
        let stamp = match stamp {
            Ok(s) => s,
            Err(e) => {
                metrics.list_failures.inc();
                tracing::error!(rule = %f.rule, file = %f.path.display(), error = %e, "alert list file unreadable; keeping the previous list");
                continue;
            }
        };
        if f.seen == Some(stamp) {
            continue;
        }
        match std::fs::read_to_string(&f.path) {
            Ok(text) => {
                let (ids, own) = parse_list(&text, f.self_lookup);
                tracing::info!(rule = %f.rule, file = %f.path.display(), entries = ids.len() + own.len(), "alert list loaded");
                rules.set_list(&f.rule, ids, own);
                f.seen = Some(stamp);
            }
            Err(e) => {
                metrics.list_failures.inc();
                tracing::error!(rule = %f.rule, file = %f.path.display(), error = %e, "alert list file unreadable; keeping the previous list");
            }
        }
    }
}

/// A watchlist (one id per line) or a self-lookup map (`actor-id subject-id...` per line); `#`
/// starts a comment, blank lines are skipped.
pub fn parse_list(
    text: &str,
    self_lookup: bool,
) -> (HashSet<String>, HashMap<String, HashSet<String>>) {
    let mut ids = HashSet::new();
    let mut own: HashMap<String, HashSet<String>> = HashMap::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        if self_lookup {
            let mut words = line.split_whitespace();
            if let Some(actor) = words.next() {
                own.entry(actor.to_owned())
                    .or_default()
                    .extend(words.map(str::to_owned));
            }
        } else {
            ids.insert(line.to_owned());
        }
    }
    (ids, own)
}
