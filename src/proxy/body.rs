//! Response bodies the proxy releases: either fully buffered bytes (whose outcome entry is already
//! durable) or a stream from the upstream that digests and counts what passes and appends its
//! outcome entry when it ends.
//!
//! Invariant for [`LoggedStream`]: exactly one outcome entry per stream — on the end of the
//! stream (the last frame and the end are released to the client only after that entry is
//! durable; if it cannot be written the stream ends in an error instead, so the client can tell
//! the response is incomplete), on an upstream error, past the exchange deadline
//! (`exchange_timeout`), or when the client goes away (the body is dropped unfinished:
//! `client_disconnected`). Every append runs in a spawned task, so a client that leaves while
//! the final append waits for room in the log's queue cannot cancel it. In sync replication
//! (`[replicate] mode = "sync"`) the end is also held until the stream acknowledged the outcome,
//! and the stream ends in an error if it does not in time. Must not import the upstream client or
//! hyper's server.

use crate::ingest::LogWriter;
use crate::log::entry::{Entry, Outcome};
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use sha2::{Digest, Sha256};
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Errors a relayed body can end with.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body of every response the proxy sends.
pub struct ProxyBody {
    kind: Kind,
}

enum Kind {
    Full(Option<Bytes>),
    Stream(Box<LoggedStream>),
}

impl ProxyBody {
    /// No body.
    pub fn empty() -> Self {
        ProxyBody {
            kind: Kind::Full(None),
        }
    }

    /// Bytes already in hand.
    pub fn full(bytes: Bytes) -> Self {
        ProxyBody {
            kind: Kind::Full((!bytes.is_empty()).then_some(bytes)),
        }
    }

    /// A stream that logs its outcome when it ends.
    pub fn stream(s: LoggedStream) -> Self {
        ProxyBody {
            kind: Kind::Stream(Box::new(s)),
        }
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match &mut self.get_mut().kind {
            Kind::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            Kind::Stream(s) => Pin::new(s.as_mut()).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Full(b) => b.is_none(),
            Kind::Stream(_) => false,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            Kind::Stream(s) => s.size_hint(),
        }
    }
}

/// The upstream body type a [`LoggedStream`] relays.
pub type UpstreamBody = http_body_util::combinators::UnsyncBoxBody<Bytes, BoxError>;

type Pending = Pin<Box<dyn Future<Output = Result<(), BoxError>> + Send>>;

/// A streamed response: digests and counts bytes as they pass and writes the outcome entry once.
pub struct LoggedStream {
    /// Frames read while deciding whether the response could be buffered.
    prefix: VecDeque<Bytes>,
    inner: UpstreamBody,
    hasher: Sha256,
    bytes: u64,
    /// The outcome entry to complete; `None` once it has been handed to the writer.
    sink: Option<(LogWriter, Entry)>,
    /// The final append, polled before the end of the stream is signalled.
    pending: Option<Pending>,
    /// The last frame, released once the final append is durable.
    held: Option<Frame<Bytes>>,
    hint: SizeHint,
    /// Past this, the stream ends in error (`exchange_timeout`).
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
    /// `[replicate] mode = "sync"`: the end is released only once the stream acknowledged the
    /// outcome too.
    replication: Option<std::sync::Arc<crate::replicate::ReplicationGate>>,
}

impl LoggedStream {
    /// `outcome` is the entry to append (kind outcome, `answers_seq` set, `outcome.status` set);
    /// its digest, byte count, `streamed` and `error` are filled in here.
    pub fn new(prefix: Vec<Bytes>, inner: UpstreamBody, writer: LogWriter, outcome: Entry) -> Self {
        let prefix_len: u64 = prefix.iter().map(|b| b.len() as u64).sum();
        let inner_hint = inner.size_hint();
        let mut hint = SizeHint::new();
        hint.set_lower(inner_hint.lower() + prefix_len);
        if let Some(upper) = inner_hint.upper() {
            hint.set_upper(upper + prefix_len);
        }
        LoggedStream {
            prefix: prefix.into(),
            inner,
            hasher: Sha256::new(),
            bytes: 0,
            sink: Some((writer, outcome)),
            pending: None,
            held: None,
            hint,
            deadline: None,
            replication: None,
        }
    }

    /// Holds the end of the stream until `gate` (sync replication) has the outcome entry; it
    /// ends in error if the gate times out, as a buffered response fails closed.
    pub fn with_replication(
        mut self,
        gate: Option<std::sync::Arc<crate::replicate::ReplicationGate>>,
    ) -> Self {
        self.replication = gate;
        self
    }

    /// Ends the stream in error, with outcome `exchange_timeout`, if it is still running at
    /// `deadline`.
    pub fn with_deadline(mut self, deadline: tokio::time::Instant) -> Self {
        self.deadline = Some(Box::pin(tokio::time::sleep_until(deadline)));
        self
    }

    fn size_hint(&self) -> SizeHint {
        self.hint
    }

    fn take_outcome(&mut self, error: &str) -> Option<(LogWriter, Entry)> {
        let (writer, mut entry) = self.sink.take()?;
        let digest = std::mem::take(&mut self.hasher).finalize();
        let outcome = entry.outcome.get_or_insert_with(Outcome::default);
        outcome.response_sha256 = digest.to_vec();
        outcome.response_bytes = self.bytes;
        outcome.streamed = true;
        outcome.error = error.to_owned();
        Some((writer, entry))
    }

    fn count(&mut self, data: &Bytes) {
        self.hasher.update(data);
        self.bytes += data.len() as u64;
    }

    /// Starts the final append; the end of the stream (or `last`, its final frame) is released
    /// only once it is durable.
    fn finish(&mut self, last: Option<Frame<Bytes>>) {
        let Some((writer, entry)) = self.take_outcome("") else {
            return;
        };
        self.held = last;
        let replication = self.replication.clone();
        // The append runs on its own task: if the client goes away while it waits (a full
        // queue, a slow disk), dropping this body must not cancel it.
        let (done, wait) = tokio::sync::oneshot::channel::<Result<(), BoxError>>();
        let append = async move {
            let result = match writer.append(entry).await {
                Ok(receipt) => {
                    tracing::debug!(seq = receipt.seq, "streamed outcome logged");
                    match replication {
                        Some(gate) => gate.wait_for(receipt.seq).await.map_err(|e| {
                            tracing::error!(seq = receipt.seq, error = %e, "streamed outcome not replicated; ending the stream in error");
                            BoxError::from(e)
                        }),
                        None => Ok(()),
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "streamed outcome could not be logged; ending the stream in error");
                    Err(BoxError::from(e))
                }
            };
            let _ = done.send(result);
        };
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn(append);
            }
            Err(_) => tracing::error!("no runtime to log a streamed outcome on"),
        }
        self.pending = Some(Box::pin(async move {
            wait.await
                .unwrap_or_else(|_| Err(BoxError::from("the outcome append was lost")))
        }));
    }

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        loop {
            if let Some(pending) = this.pending.as_mut() {
                let done = std::task::ready!(pending.as_mut().poll(cx));
                this.pending = None;
                return Poll::Ready(match done {
                    Ok(()) => this.held.take().map(Ok),
                    Err(e) => {
                        this.held = None;
                        Some(Err(e))
                    }
                });
            }
            if this.sink.is_none() {
                return Poll::Ready(this.held.take().map(Ok));
            }
            if let Some(deadline) = this.deadline.as_mut()
                && deadline.as_mut().poll(cx).is_ready()
            {
                this.prefix.clear();
                if let Some((writer, entry)) = this.take_outcome("exchange_timeout") {
                    spawn_outcome(writer, entry);
                }
                return Poll::Ready(Some(Err(BoxError::from(
                    "the exchange took longer than limits.exchange_timeout_ms",
                ))));
            }
            let frame = match this.prefix.pop_front() {
                Some(b) => Frame::data(b),
                None => match std::task::ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
                    Some(Ok(frame)) => frame,
                    Some(Err(e)) => {
                        if let Some((writer, entry)) = this.take_outcome("upstream_body_error") {
                            spawn_outcome(writer, entry);
                        }
                        return Poll::Ready(Some(Err(e)));
                    }
                    None => {
                        this.finish(None);
                        continue;
                    }
                },
            };
            if let Some(data) = frame.data_ref() {
                let data = data.clone();
                this.count(&data);
            }
            // A server writing a response of known length stops polling once it has the last
            // byte, so the end is detected here and that last frame waits for the outcome.
            if this.prefix.is_empty() && this.inner.is_end_stream() {
                this.finish(Some(frame));
                continue;
            }
            return Poll::Ready(Some(Ok(frame)));
        }
    }
}

impl Drop for LoggedStream {
    fn drop(&mut self) {
        if let Some((writer, entry)) = self.take_outcome("client_disconnected") {
            spawn_outcome(writer, entry);
        }
    }
}

/// Appends an outcome nobody waits for (the client is gone or the stream already failed).
fn spawn_outcome(writer: LogWriter, entry: Entry) {
    let Ok(rt) = tokio::runtime::Handle::try_current() else {
        tracing::error!("no runtime to log a streamed outcome on");
        return;
    };
    rt.spawn(async move {
        match writer.append(entry).await {
            Ok(r) => tracing::info!(seq = r.seq, "outcome of an interrupted stream logged"),
            Err(e) => {
                tracing::error!(error = %e, "outcome of an interrupted stream could not be logged")
            }
        }
    });
}
