//! The logs one query service serves, each named by its checkpoint origin: a sidecar's one log,
//! or an audit hub's verified copies of the logs it follows plus the hub's own log.
//!
//! Job: resolve a call's `origin` to the logs it reads ([`Logs::span`] for calls that span logs,
//! [`Logs::one`] for calls that address one), fix how much of each log a call may see when it
//! opens ([`Log::end`]), carry per-log positions across pages ([`SpanToken`]) and merge entries of
//! several logs in (time, origin, seq) order ([`Merge`]). A sidecar is the one-log case and reads
//! exactly as before: its one log is both the log searched and the log the service writes.
//!
//! Synchronous over the [`Store`] trait; must not import tonic, tokio or RocksDB.

use super::error::QueryError;
use super::nodes::NodeCache;
use super::plan::PageToken;
use crate::log::note::{VerifierKey, open_note};
use crate::log::store::{LogStore, Store};
use std::collections::BTreeMap;
use std::sync::Arc;

/// A log handed to the service: its origin, its store, and the keys its checkpoints are signed
/// with (the one that signed a checkpoint is handed out with it).
#[derive(Clone)]
pub struct ServedLog {
    pub origin: String,
    pub store: Arc<dyn Store>,
    pub verifiers: Vec<VerifierKey>,
}

/// What one service serves: the logs read when a call names no origin, and the log it writes its
/// own entries to (audit queries, refusals, alert reviews) with the key that log is signed with.
pub struct QueryLogs {
    followed: Vec<ServedLog>,
    own: ServedLog,
    pub(crate) own_key: VerifierKey,
}

impl QueryLogs {
    /// A sidecar: its own log is the one it serves and the one it writes.
    pub fn single(origin: String, store: Arc<dyn Store>, key: VerifierKey) -> Self {
        Self::hub(Vec::new(), origin, store, key)
    }

    /// An audit hub: its copies of the logs it follows, and its own log (also addressable by its
    /// origin, but not read by a call that names none).
    pub fn hub(
        followed: Vec<ServedLog>,
        origin: String,
        store: Arc<dyn Store>,
        key: VerifierKey,
    ) -> Self {
        QueryLogs {
            followed,
            own: ServedLog {
                origin,
                store,
                verifiers: vec![key.clone()],
            },
            own_key: key,
        }
    }
}

/// One served log, as the service holds it.
pub(crate) struct Log {
    pub origin: String,
    pub store: Arc<dyn Store>,
    /// Upper tree levels of this log, shared by every proof in it.
    pub nodes: NodeCache,
    verifiers: Vec<VerifierKey>,
    /// The service writes its entries to this log.
    pub own: bool,
    /// Read when a call names no origin.
    pub followed: bool,
}

impl Log {
    /// One past the last entry a call that opened with entry `open_seq` of the service's own log
    /// may see: in the own log, the entries before its opening entry; in a copy, what was stored
    /// when it opened (a copy stores entries only with the checkpoint that covers them).
    pub fn end(&self, open_seq: u64) -> Result<u64, QueryError> {
        if self.own {
            Ok(open_seq)
        } else {
            Ok(self.store.entry_count()?)
        }
    }

    /// The verifier key handed out with `note`: the configured key that signed it (the first
    /// configured key when none verifies it, as the answer is informational).
    pub fn verifier_for(&self, note: &str) -> String {
        let signer = match self.verifiers.as_slice() {
            [only] => Some(only),
            all => open_note(note, all)
                .ok()
                .and_then(|(_, by)| by.first().copied()),
        };
        signer
            .or(self.verifiers.first())
            .map(VerifierKey::to_vkey)
            .unwrap_or_default()
    }
}

/// Every log of one service, sorted by origin.
pub(crate) struct Logs {
    all: Vec<Arc<Log>>,
}

impl Logs {
    pub fn new(logs: QueryLogs) -> Self {
        let log = |l: ServedLog, own: bool, followed: bool| {
            Arc::new(Log {
                origin: l.origin,
                store: l.store,
                nodes: NodeCache::new(),
                verifiers: l.verifiers,
                own,
                followed,
            })
        };
        let single = logs.followed.is_empty();
        let mut all: Vec<Arc<Log>> = logs
            .followed
            .into_iter()
            .map(|l| log(l, false, true))
            .collect();
        all.push(log(logs.own, true, single));
        all.sort_by(|a, b| a.origin.cmp(&b.origin));
        Logs { all }
    }

    /// The log the service writes.
    pub fn own(&self) -> &Arc<Log> {
        // Invariant: `new` always adds the own log.
        self.all
            .iter()
            .find(|l| l.own)
            .expect("the service's own log is served")
    }

    /// More than one log: results then carry their origin.
    pub fn many(&self) -> bool {
        self.all.len() > 1
    }

    /// The origin a result from `log` carries: its own when the service serves several logs.
    pub fn tag(&self, log: &Log) -> String {
        if self.many() {
            log.origin.clone()
        } else {
            String::new()
        }
    }

    fn choices(&self) -> String {
        let names: Vec<String> = self.all.iter().map(|l| format!("{:?}", l.origin)).collect();
        names.join(", ")
    }

    fn named(&self, origin: &str) -> Result<Arc<Log>, QueryError> {
        self.all
            .iter()
            .find(|l| l.origin == origin)
            .cloned()
            .ok_or_else(|| {
                QueryError::InvalidArgument(format!(
                    "origin {origin:?} is not a log this service serves ({})",
                    self.choices()
                ))
            })
    }

    /// What a spanning call (Search, SubjectReport, ActorReport) reads: the log `origin` names,
    /// or every followed log when it is empty; in origin order.
    pub fn span(&self, origin: &str) -> Result<Vec<Arc<Log>>, QueryError> {
        if origin.is_empty() {
            Ok(self.all.iter().filter(|l| l.followed).cloned().collect())
        } else {
            Ok(vec![self.named(origin)?])
        }
    }

    /// The log a single-log call addresses: the one `origin` names, or, when it is empty, the
    /// only followed log.
    pub fn one(&self, origin: &str) -> Result<Arc<Log>, QueryError> {
        if !origin.is_empty() {
            return self.named(origin);
        }
        let mut followed = self.all.iter().filter(|l| l.followed);
        match (followed.next(), followed.next()) {
            (Some(only), None) => Ok(only.clone()),
            _ => Err(QueryError::InvalidArgument(format!(
                "origin is required: this service serves {}",
                self.choices()
            ))),
        }
    }
}

/// Where a search over several logs continues: per origin, the next seq to consider and the end
/// the first page saw. Opaque to clients.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SpanToken {
    pub positions: BTreeMap<String, PageToken>,
}

impl SpanToken {
    const PREFIX: &'static str = "s62p2.";

    pub fn encode(&self) -> String {
        let parts: Vec<String> = self
            .positions
            .iter()
            .map(|(origin, t)| format!("{}:{}:{}", hex::encode(origin), t.next, t.end))
            .collect();
        format!("{}{}", Self::PREFIX, parts.join(","))
    }

    pub fn parse(s: &str) -> Option<SpanToken> {
        let rest = s.strip_prefix(Self::PREFIX)?;
        let mut positions = BTreeMap::new();
        for part in rest.split(',') {
            let mut fields = part.split(':');
            let (origin, next, end) = (fields.next()?, fields.next()?, fields.next()?);
            if fields.next().is_some() {
                return None;
            }
            let origin = String::from_utf8(hex::decode(origin).ok()?).ok()?;
            let t = PageToken {
                next: next.parse().ok()?,
                end: end.parse().ok()?,
            };
            if t.next > t.end || positions.insert(origin, t).is_some() {
                return None;
            }
        }
        Some(SpanToken { positions })
    }
}

/// Streams of several logs, each in seq order (so in time order: times never decrease along a
/// log), merged into (time, log index, seq) order; with the logs in origin order that is
/// (time, origin, seq). The first error of any stream ends the merge.
pub(crate) struct Merge<T, E, I: Iterator<Item = Result<T, E>>> {
    streams: Vec<I>,
    heads: Vec<Option<T>>,
    done: Vec<bool>,
    key: fn(&T) -> (i64, u64),
}

impl<T, E, I: Iterator<Item = Result<T, E>>> Merge<T, E, I> {
    /// `key` gives an item's (time, seq).
    pub fn new(streams: Vec<I>, key: fn(&T) -> (i64, u64)) -> Self {
        let n = streams.len();
        Merge {
            streams,
            heads: (0..n).map(|_| None).collect(),
            done: vec![false; n],
            key,
        }
    }

    /// Reads one item ahead in every stream that has none; the index of the stream whose item
    /// comes next, `None` when every stream has ended.
    pub fn peek(&mut self) -> Result<Option<usize>, E> {
        for i in 0..self.streams.len() {
            if self.heads[i].is_none() && !self.done[i] {
                match self.streams[i].next() {
                    Some(Ok(item)) => self.heads[i] = Some(item),
                    Some(Err(e)) => {
                        self.done[i] = true;
                        return Err(e);
                    }
                    None => self.done[i] = true,
                }
            }
        }
        let key = self.key;
        Ok(self
            .heads
            .iter()
            .enumerate()
            .filter_map(|(i, h)| h.as_ref().map(|h| (key(h), i)))
            .min_by_key(|((time, seq), i)| (*time, *i, *seq))
            .map(|(_, i)| i))
    }

    /// The item read ahead in stream `i`.
    pub fn head(&self, i: usize) -> Option<&T> {
        self.heads[i].as_ref()
    }

    /// Takes the item read ahead in stream `i`.
    pub fn take_head(&mut self, i: usize) -> Option<T> {
        self.heads[i].take()
    }
}

impl<T, E, I: Iterator<Item = Result<T, E>>> Iterator for Merge<T, E, I> {
    /// The stream's index and its item.
    type Item = Result<(usize, T), E>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.peek() {
            Ok(Some(i)) => self.take_head(i).map(|item| Ok((i, item))),
            Ok(None) => None,
            Err(e) => Some(Err(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_span_token_round_trips_and_refuses_what_it_did_not_issue() {
        let mut t = SpanToken::default();
        t.positions
            .insert("a.example/log".into(), PageToken { next: 3, end: 9 });
        t.positions
            .insert("b,:.example/log".into(), PageToken { next: 7, end: 7 });
        assert_eq!(SpanToken::parse(&t.encode()), Some(t));
        for bad in [
            "",
            "s62p2.",
            "s62p1.1.2",
            "s62p2.61:9:3",
            "s62p2.zz:1:2",
            "s62p2.61:1:2:3",
            "s62p2.61:1:2,61:1:2",
        ] {
            assert_eq!(SpanToken::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn streams_merge_by_time_then_stream_then_seq() {
        type Item = (i64, u64);
        let a: Vec<Result<Item, ()>> = vec![Ok((1, 0)), Ok((5, 1)), Ok((5, 2))];
        let b: Vec<Result<Item, ()>> = vec![Ok((0, 0)), Ok((5, 1)), Ok((9, 2))];
        let merged: Vec<(usize, Item)> = Merge::new(vec![a.into_iter(), b.into_iter()], |x| *x)
            .collect::<Result<_, _>>()
            .expect("no error");
        assert_eq!(
            merged,
            [
                (1, (0, 0)),
                (0, (1, 0)),
                (0, (5, 1)),
                (0, (5, 2)),
                (1, (5, 1)),
                (1, (9, 2)),
            ]
        );
    }
}
