//! Compliance watch: proves erasures and catches "zombie" records, off the hot path.
//!
//! **Erasure attestation.** After a 2xx outcome on an erasure rule with `verify_with`, the
//! sidecar asks the records system for each erased subject itself — at once, and again after each
//! `recheck_after` delay. Each probe is an ordinary consultation by the sidecar (its own intent
//! and outcome, purpose `integrity`), followed by an `erasure-check` entry answering the erasure's
//! intent: `confirmed` (an `expect` status), `still-present` (2xx) or `probe-failed`.
//!
//! **Zombie detection.** The subjects of confirmed erasures form the erased-subjects set. A later
//! outcome that returns one of them (a read, a search, an event listing them) gets an `alert`
//! entry (rule `zombie`: the subject, the erasure's seq, the sighting's seq), a metric and a
//! warning line (seqs only).
//!
//! Everything is derived from the log, not from memory: at start the task reads the erasures,
//! checks and alerts through the kind and operation indexes, re-plans the checks still due, and
//! looks up each erased subject in the subject index for sightings it has not alerted on; then it
//! follows the committed entries as checkpoints advance. Nothing here runs on a request's path: a
//! request never waits for it.
//!
//! Must not depend on the proxy's request path or the query service; it talks to the records
//! system only through [`crate::proxy::upstream::Upstream`] and to the log only through the
//! writer and the store.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, header};
use http_body_util::BodyExt;
use prometheus_client::metrics::counter::Counter;

use crate::config::ErasureProbe;
use crate::ingest::LogWriter;
use crate::log::entry::{
    Actor, Alert, AuthMethod, Entry, EntryKind, ErasureCheck, Justification, Operation, Outcome,
    Request as LoggedRequest,
};
use crate::log::index::IndexFamily;
use crate::log::store::{LogStore, Store, StoreError};
use crate::proxy::upstream::Upstream;

/// `erasure-check` results.
pub const CONFIRMED: &str = "confirmed";
pub const STILL_PRESENT: &str = "still-present";
pub const PROBE_FAILED: &str = "probe-failed";

/// The alert rule for an erased subject seen again.
pub const ZOMBIE: &str = "zombie";

/// What `/metrics` shows of the compliance watch (shared handles).
#[derive(Clone, Debug, Default)]
pub struct ComplianceMetrics {
    pub erasures_confirmed: Counter,
    pub erasures_still_present: Counter,
    pub erasure_probes_failed: Counter,
    pub zombie_alerts: Counter,
}

/// Why the watch could not read the log (it retries at the next checkpoint).
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error("reading the log: {0}")]
    Store(#[from] StoreError),
    #[error("entry {0} is missing")]
    Missing(u64),
}

/// One check still to do.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Due {
    /// When, in Unix nanoseconds.
    at_nanos: i64,
    erasure_seq: u64,
    subject: String,
    attempt: u32,
    route: String,
}

/// What the log says so far.
#[derive(Debug, Default)]
struct State {
    /// (erasure intent seq, subject, attempt) already checked.
    checked: BTreeSet<(u64, String, u32)>,
    /// Erased subject → (erasure intent seq, seq of the confirming check).
    erased: HashMap<String, (u64, u64)>,
    /// (sighting seq, subject) already alerted.
    alerted: BTreeSet<(u64, String)>,
    due: BTreeSet<Due>,
    /// Entries below this have been looked at.
    next: u64,
}

impl State {
    /// Adds the checks of `plan` that the log does not already hold.
    fn plan(&mut self, plan: Vec<Due>) {
        for d in plan {
            if !self
                .checked
                .contains(&(d.erasure_seq, d.subject.clone(), d.attempt))
            {
                self.due.insert(d);
            }
        }
    }
}

/// The erasure rules with probes, by route name.
pub type ProbeRoutes = BTreeMap<String, ErasureProbe>;

/// Runs the watch until `stop` resolves.
pub async fn run(
    routes: ProbeRoutes,
    store: Arc<dyn Store>,
    writer: LogWriter,
    upstream: Arc<Upstream>,
    metrics: ComplianceMetrics,
    stop: impl Future<Output = ()>,
) {
    let mut latest = writer.checkpoints();
    let watch = Watch {
        routes: Arc::new(routes),
        store,
        writer,
        upstream,
        metrics,
    };
    tokio::pin!(stop);
    let mut state = State::default();
    let mut loaded = false;
    loop {
        if !loaded {
            match watch.load().await {
                Ok(s) => {
                    state = s;
                    loaded = true;
                }
                Err(e) => tracing::error!(error = %e, "compliance watch could not read the log"),
            }
        }
        if loaded {
            if let Err(e) = watch.follow(&mut state).await {
                tracing::error!(error = %e, "compliance watch could not read new entries");
            }
            watch.run_due(&mut state).await;
        }
        let wait = state.due.first().map_or(Duration::from_secs(60), |d| {
            let now = jiff::Timestamp::now().as_nanosecond();
            Duration::from_nanos(u64::try_from(i128::from(d.at_nanos) - now).unwrap_or(0))
        });
        tokio::select! {
            _ = &mut stop => break,
            changed = latest.changed() => if changed.is_err() { break },
            () = tokio::time::sleep(wait.max(Duration::from_millis(10))) => {}
        }
    }
}

struct Watch {
    routes: Arc<ProbeRoutes>,
    store: Arc<dyn Store>,
    writer: LogWriter,
    upstream: Arc<Upstream>,
    metrics: ComplianceMetrics,
}

impl Watch {
    /// Reads the checks, alerts and erasures already in the log.
    async fn load(&self) -> Result<State, WatchError> {
        let store = self.store.clone();
        let routes = self.routes.clone();
        tokio::task::spawn_blocking(move || load(&*store, &routes))
            .await
            .unwrap_or_else(|e| Err(WatchError::Store(StoreError::Backend(e.to_string()))))
    }

    /// Looks at the entries committed since the last call.
    async fn follow(&self, state: &mut State) -> Result<(), WatchError> {
        loop {
            let (store, from) = (self.store.clone(), state.next);
            let batch = tokio::task::spawn_blocking(move || store.opened_entries(from, 256))
                .await
                .unwrap_or_else(|e| Err(StoreError::Backend(e.to_string())))?;
            let Some(last) = batch.last().map(|o| o.seq) else {
                return Ok(());
            };
            for opened in batch {
                self.look_at(state, &opened.entry).await?;
            }
            state.next = last + 1;
        }
    }

    /// One committed entry: an erasure to plan checks for, or a sighting of an erased subject.
    async fn look_at(&self, state: &mut State, e: &Entry) -> Result<(), WatchError> {
        if let Some(plan) = erasure_plan(&*self.store, &self.routes, e)? {
            state.plan(plan);
        }
        for (subject, erasure_seq) in sightings(state, e) {
            self.alert_zombie(state, e.seq, &subject, erasure_seq).await;
        }
        Ok(())
    }

    /// Runs every check that is due.
    async fn run_due(&self, state: &mut State) {
        let now = jiff::Timestamp::now().as_nanosecond();
        while let Some(d) = state.due.first().cloned() {
            if i128::from(d.at_nanos) > now {
                break;
            }
            state.due.remove(&d);
            let Some(probe) = self.routes.get(&d.route) else {
                continue;
            };
            match self.check(&d, probe).await {
                Ok((check_seq, result)) => {
                    state
                        .checked
                        .insert((d.erasure_seq, d.subject.clone(), d.attempt));
                    if result == CONFIRMED {
                        state
                            .erased
                            .entry(d.subject.clone())
                            .or_insert((d.erasure_seq, check_seq));
                    }
                }
                Err(e) => {
                    // Not checked: it stays due and is tried again at the next wake-up.
                    tracing::error!(erasure_seq = d.erasure_seq, error = %e, "erasure check not logged; retrying");
                    state.due.insert(Due {
                        at_nanos: now.saturating_add(10_000_000_000) as i64,
                        ..d
                    });
                    break;
                }
            }
        }
    }

    /// One probe: its intent, the request, its outcome, then the `erasure-check` entry.
    async fn check(
        &self,
        d: &Due,
        probe: &ErasureProbe,
    ) -> Result<(u64, &'static str), crate::ingest::AppendError> {
        let target = probe.path.fill(&d.subject);
        let request_id = crate::proxy::headers::fresh_request_id();
        let intent = Entry {
            kind: EntryKind::Intent as i32,
            operation: Operation::Consultation as i32,
            actor: Some(sidecar()),
            justification: Some(Justification {
                purpose_code: "integrity".into(),
                text: format!(
                    "erasure check {} of entry {} (route {})",
                    d.attempt, d.erasure_seq, d.route
                ),
                case_reference: String::new(),
            }),
            subject_ids: vec![d.subject.clone()],
            request: Some(LoggedRequest {
                method: probe.method.as_str().to_owned(),
                path: target.clone().unwrap_or_default(),
                route: format!("{}:verify_with", d.route),
                request_id,
                ..Default::default()
            }),
            ..Default::default()
        };
        let probe_seq = self.writer.append(intent).await?.seq;
        let status = match &target {
            Some(path) => self.send(&probe.method, path).await,
            None => Err("the subject id cannot be put in a path unchanged".to_owned()),
        };
        let (code, error) = match &status {
            Ok(s) => (*s, String::new()),
            Err(why) => (0, why.clone()),
        };
        self.writer
            .append(Entry {
                kind: EntryKind::Outcome as i32,
                operation: Operation::Consultation as i32,
                actor: Some(sidecar()),
                answers_seq: Some(probe_seq),
                outcome: Some(Outcome {
                    status: u32::from(code),
                    error,
                    ..Default::default()
                }),
                ..Default::default()
            })
            .await?;
        let result = match status {
            Ok(s) if probe.expect.contains(&s) => CONFIRMED,
            Ok(s) if (200..300).contains(&s) => STILL_PRESENT,
            _ => PROBE_FAILED,
        };
        let check = Entry {
            kind: EntryKind::ErasureCheck as i32,
            actor: Some(sidecar()),
            subject_ids: vec![d.subject.clone()],
            answers_seq: Some(d.erasure_seq),
            erasure_check: Some(ErasureCheck {
                erasure_seq: d.erasure_seq,
                result: result.into(),
                probe_status: u32::from(code),
                attempt: d.attempt,
                probe_seq,
            }),
            ..Default::default()
        };
        let seq = self.writer.append(check).await?.seq;
        match result {
            CONFIRMED => {
                self.metrics.erasures_confirmed.inc();
            }
            STILL_PRESENT => {
                self.metrics.erasures_still_present.inc();
                tracing::warn!(
                    erasure_seq = d.erasure_seq,
                    check_seq = seq,
                    "an erased subject is still served by the records system"
                );
            }
            _ => {
                self.metrics.erasure_probes_failed.inc();
            }
        }
        Ok((seq, result))
    }

    /// Sends the probe and returns the status; the body is read and dropped.
    async fn send(&self, method: &Method, path: &str) -> Result<u16, String> {
        let uri = self.upstream.uri_for(path).map_err(|e| e.to_string())?;
        let mut req = Request::builder()
            .method(method.clone())
            .uri(uri)
            .body(
                http_body_util::Empty::<Bytes>::new()
                    .map_err(|never| match never {})
                    .boxed_unsync(),
            )
            .map_err(|e| e.to_string())?;
        if let Ok(host) = HeaderValue::from_str(self.upstream.authority().as_str()) {
            req.headers_mut().insert(header::HOST, host);
        }
        let resp = self.upstream.send(req).await.map_err(|e| e.to_string())?;
        let status = resp.status().as_u16();
        let wait = self.upstream.response_timeout();
        let _ = tokio::time::timeout(wait, resp.into_body().collect()).await;
        Ok(status)
    }

    async fn alert_zombie(&self, state: &mut State, sighting: u64, subject: &str, erasure: u64) {
        let entry = Entry {
            kind: EntryKind::Alert as i32,
            actor: Some(sidecar()),
            subject_ids: vec![subject.to_owned()],
            answers_seq: Some(sighting),
            alert: Some(Alert {
                rule: ZOMBIE.into(),
                name: ZOMBIE.into(),
                sighting_seq: sighting,
                related_seq: erasure,
                detail: "a subject whose erasure was confirmed was returned again".into(),
            }),
            ..Default::default()
        };
        match self.writer.append(entry).await {
            Ok(r) => {
                state.alerted.insert((sighting, subject.to_owned()));
                self.metrics.zombie_alerts.inc();
                tracing::warn!(
                    alert_seq = r.seq,
                    sighting_seq = sighting,
                    erasure_seq = erasure,
                    "zombie alert: an erased subject was returned again"
                );
            }
            Err(e) => {
                tracing::error!(sighting_seq = sighting, error = %e, "zombie alert not logged")
            }
        }
    }
}

/// The sidecar itself as an actor.
fn sidecar() -> Actor {
    Actor {
        id: "s62".into(),
        display_name: "s62 compliance watch".into(),
        auth_method: AuthMethod::Local as i32,
        ..Default::default()
    }
}

/// The erased subjects `e` returns that have not been alerted on: (subject, erasure seq).
fn sightings(state: &State, e: &Entry) -> Vec<(String, u64)> {
    if e.kind != EntryKind::Outcome as i32 || state.erased.is_empty() {
        return Vec::new();
    }
    let Some(o) = &e.outcome else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for s in &o.returned_subject_ids {
        if let Some(&(erasure, confirmed_at)) = state.erased.get(s)
            && e.seq > confirmed_at
            && !state.alerted.contains(&(e.seq, s.clone()))
            && !out.iter().any(|(x, _)| x == s)
        {
            out.push((s.clone(), erasure));
        }
    }
    out
}

/// When `e` is the 2xx outcome of an erasure on a probed route: every check it calls for.
fn erasure_plan(
    store: &dyn Store,
    routes: &ProbeRoutes,
    e: &Entry,
) -> Result<Option<Vec<Due>>, WatchError> {
    if e.kind != EntryKind::Outcome as i32 || e.operation != Operation::Erasure as i32 {
        return Ok(None);
    }
    let ok = e
        .outcome
        .as_ref()
        .is_some_and(|o| (200..300).contains(&o.status));
    let route = e.request.as_ref().map_or("", |r| r.route.as_str());
    let (Some(probe), true, Some(intent_seq)) = (routes.get(route), ok, e.answers_seq) else {
        return Ok(None);
    };
    let intent = store
        .opened(intent_seq)?
        .ok_or(WatchError::Missing(intent_seq))?
        .entry;
    let mut plan = Vec::new();
    for subject in intent.subject_ids.iter().filter(|s| !s.is_empty()) {
        let delays = std::iter::once(Duration::ZERO).chain(probe.recheck_after.iter().copied());
        for (attempt, delay) in delays.enumerate() {
            let nanos = i64::try_from(delay.as_nanos()).unwrap_or(i64::MAX);
            plan.push(Due {
                at_nanos: e.time_unix_nanos.saturating_add(nanos),
                erasure_seq: intent_seq,
                subject: subject.clone(),
                attempt: u32::try_from(attempt).unwrap_or(u32::MAX),
                route: route.to_owned(),
            });
        }
    }
    Ok(Some(plan))
}

/// Every seq indexed under (family, value), ascending.
fn all_seqs(store: &dyn Store, family: IndexFamily, value: &str) -> Result<Vec<u64>, StoreError> {
    let mut out = Vec::new();
    loop {
        let from = out.last().map_or(0, |s| s + 1);
        let page = store.index_seqs(family, value, from, 1024)?;
        let done = page.len() < 1024;
        out.extend(page);
        if done {
            return Ok(out);
        }
    }
}

/// The state the log already holds: checks, confirmed erasures, alerts, the checks still due,
/// and zombie sightings not yet alerted on (planned as alerts by the first `follow`, which
/// starts at the log's end: they are handled here instead).
fn load(store: &dyn Store, routes: &ProbeRoutes) -> Result<State, WatchError> {
    let mut state = State {
        next: store.entry_count()?,
        ..State::default()
    };
    let open = |seq: u64| -> Result<Entry, WatchError> {
        Ok(store.opened(seq)?.ok_or(WatchError::Missing(seq))?.entry)
    };
    for seq in all_seqs(store, IndexFamily::Kind, EntryKind::ErasureCheck.label())? {
        let e = open(seq)?;
        let (Some(c), Some(subject)) = (&e.erasure_check, e.subject_ids.first()) else {
            continue;
        };
        state
            .checked
            .insert((c.erasure_seq, subject.clone(), c.attempt));
        if c.result == CONFIRMED {
            state
                .erased
                .entry(subject.clone())
                .or_insert((c.erasure_seq, seq));
        }
    }
    for seq in all_seqs(store, IndexFamily::Kind, EntryKind::Alert.label())? {
        let e = open(seq)?;
        if let (Some(a), Some(subject)) = (&e.alert, e.subject_ids.first()) {
            state.alerted.insert((a.sighting_seq, subject.clone()));
        }
    }
    for seq in all_seqs(store, IndexFamily::Operation, Operation::Erasure.label())? {
        if let Some(plan) = erasure_plan(store, routes, &open(seq)?)? {
            state.plan(plan);
        }
    }
    // Sightings before the start: the subject index lists every entry that returned the subject.
    let erased: Vec<(String, (u64, u64))> =
        state.erased.iter().map(|(s, v)| (s.clone(), *v)).collect();
    let mut missed = Vec::new();
    for (subject, (_, confirmed_at)) in erased {
        for seq in store.index_seqs(IndexFamily::Subject, &subject, confirmed_at + 1, 100_000)? {
            if seq < state.next {
                missed.push(seq);
            }
        }
    }
    missed.sort_unstable();
    missed.dedup();
    // `follow` starts at the first missed sighting; entries it has seen before are harmless
    // (their checks are `checked`, their alerts `alerted`).
    if let Some(first) = missed.first() {
        state.next = *first;
    }
    Ok(state)
}
