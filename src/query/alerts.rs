//! Alert review: `alert` entries listed with their `alert-review` entries (`ListAlerts`), what a
//! review may say, and which seqs may be reviewed (`ReviewAlert`).
//!
//! Alerts and reviews are both found through the kind index (`alert`, `alert-review`), never by
//! scanning the log: a listing costs the alerts it walks plus the reviews written since its first
//! alert. A review names its alert in `alert_review.alert_seq` (and `answers_seq`); an alert may
//! be reviewed more than once and the latest review is the one in force. Synchronous over the
//! [`Store`] trait, testable without a runtime; must not import tonic or RocksDB.

use super::error::QueryError;
use super::pb::{AlertItem, ListAlertsResponse, PageEnd, list_alerts_response};
use super::plan::{EntryFilter, Matches, PageToken, PlanError};
use super::service::logged;
use super::sink::{Sink, Stop};
use crate::log::entry::{self, EntryKind};
use crate::log::store::{LogStore, OpenedEntry, Store};
use std::collections::BTreeMap;

/// What a review may conclude, a closed list: the alert was `justified` (the officer had a reason),
/// showed `misuse`, was a `false-positive` (the rule misfired), or was `referred` elsewhere
/// (professional standards, a court).
pub const REVIEW_OUTCOMES: [&str; 4] = ["justified", "misuse", "false-positive", "referred"];

/// The outcome a review finding misuse records.
pub const MISUSE: &str = "misuse";

/// Which alerts a listing returns, and how many per page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AlertQuery {
    /// Only alerts of this rule.
    pub rule: Option<String>,
    /// Only alerts without any review.
    pub unreviewed_only: bool,
    /// Alerts at or after this seq.
    pub from_seq: u64,
    pub page_size: u32,
}

/// The reviews written in `[from, end)` of alerts at or after `from`, by alert seq, oldest first.
/// A review always follows its alert, so no review of such an alert is before `from`.
pub fn reviews_by_alert(
    store: &dyn Store,
    from: u64,
    end: u64,
) -> Result<BTreeMap<u64, Vec<OpenedEntry>>, PlanError> {
    let filter = EntryFilter {
        kind: Some(EntryKind::AlertReview),
        ..Default::default()
    };
    let mut out: BTreeMap<u64, Vec<OpenedEntry>> = BTreeMap::new();
    for m in Matches::new(store, filter, from, end)? {
        let opened = m?;
        let Some(alert_seq) = opened.entry.alert_review.as_ref().map(|r| r.alert_seq) else {
            continue;
        };
        if alert_seq >= from {
            out.entry(alert_seq).or_default().push(opened);
        }
    }
    Ok(out)
}

/// The outcome in force (the latest review's) for each alert at or after `from` reviewed before
/// `end`.
pub fn latest_outcomes(
    store: &dyn Store,
    from: u64,
    end: u64,
) -> Result<BTreeMap<u64, String>, PlanError> {
    Ok(reviews_by_alert(store, from, end)?
        .into_iter()
        .filter_map(|(seq, reviews)| {
            let outcome = reviews.last()?.entry.alert_review.as_ref()?.outcome.clone();
            Some((seq, outcome))
        })
        .collect())
}

/// One page of alerts in `[from, end)` (`from` is where this page starts: the query's `from_seq`
/// or the page token's), each with its reviews written before `end`, then the page end. Entries
/// carry `origin` (empty from a service that serves one log).
pub fn list_alerts(
    store: &dyn Store,
    origin: &str,
    query: &AlertQuery,
    from: u64,
    end: u64,
    sink: &mut dyn Sink<ListAlertsResponse>,
) -> Result<(), Stop> {
    let mut reviews = reviews_by_alert(store, from, end)?;
    let filter = EntryFilter {
        kind: Some(EntryKind::Alert),
        ..Default::default()
    };
    let mut returned = 0u64;
    let mut next_page_token = String::new();
    for m in Matches::new(store, filter, from, end)? {
        let opened = m?;
        if let Some(rule) = &query.rule
            && opened.entry.alert.as_ref().is_none_or(|a| &a.rule != rule)
        {
            continue;
        }
        let its_reviews = reviews.remove(&opened.seq).unwrap_or_default();
        if query.unreviewed_only && !its_reviews.is_empty() {
            continue;
        }
        if returned == u64::from(query.page_size) {
            next_page_token = PageToken {
                next: opened.seq,
                end,
            }
            .encode();
            break;
        }
        sink.result(ListAlertsResponse {
            item: Some(list_alerts_response::Item::Alert(AlertItem {
                alert: Some(logged(opened, origin)),
                reviews: its_reviews.into_iter().map(|r| logged(r, origin)).collect(),
            })),
        })?;
        returned += 1;
    }
    sink.frame(ListAlertsResponse {
        item: Some(list_alerts_response::Item::PageEnd(PageEnd {
            next_page_token,
            returned,
        })),
    })
}

/// Whether `seq` may be reviewed: it must be an entry of the log (else NOT_FOUND) and an alert
/// (else INVALID_ARGUMENT). Reads the stored leaf only: the kind is not a personal field.
pub fn check_reviewable(store: &dyn Store, seq: u64) -> Result<(), QueryError> {
    let Some(bytes) = store.entry(seq)? else {
        return Err(QueryError::NotFound(format!(
            "there is no entry {seq} in the log"
        )));
    };
    let e =
        entry::decode(&bytes).map_err(|e| QueryError::Inconsistent(format!("entry {seq}: {e}")))?;
    if e.kind != EntryKind::Alert as i32 {
        return Err(QueryError::InvalidArgument(format!(
            "entry {seq} is not an alert"
        )));
    }
    Ok(())
}
