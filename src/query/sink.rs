//! Where a streaming call's producer puts its messages: a [`Sink`] counts the results (what the
//! closing audit entry records) apart from framing messages (page ends, headers, summaries), and
//! tells the producer to stop when the client has gone.
//!
//! Producers (search, report, export) are synchronous code over the store that write into a sink,
//! so they can be tested without a runtime or a network. Must not import tonic or the store.

use super::error::QueryError;

/// Why a producer stopped before its end.
#[derive(Debug)]
pub enum Stop {
    /// The client went away (cancelled, disconnected); nothing more can be delivered.
    Disconnected,
    /// The call failed; the error is sent to the client and recorded.
    Failed(QueryError),
}

impl From<QueryError> for Stop {
    fn from(e: QueryError) -> Self {
        Stop::Failed(e)
    }
}

impl From<crate::log::store::StoreError> for Stop {
    fn from(e: crate::log::store::StoreError) -> Self {
        Stop::Failed(e.into())
    }
}

impl From<super::plan::PlanError> for Stop {
    fn from(e: super::plan::PlanError) -> Self {
        Stop::Failed(e.into())
    }
}

/// A stream of messages to one client.
pub trait Sink<T> {
    /// Sends a result (an entry, an event): counted in `results_returned`.
    fn result(&mut self, item: T) -> Result<(), Stop>;
    /// Sends a framing message (page end, bundle header or end, summary): not counted.
    fn frame(&mut self, item: T) -> Result<(), Stop>;
}

/// A sink that keeps everything, for tests and in-process callers.
#[derive(Debug)]
pub struct VecSink<T> {
    pub items: Vec<T>,
    pub results: u64,
    /// Refuse further items once this many have been taken (simulates a client going away).
    pub capacity: Option<usize>,
}

impl<T> Default for VecSink<T> {
    fn default() -> Self {
        VecSink {
            items: Vec::new(),
            results: 0,
            capacity: None,
        }
    }
}

impl<T> VecSink<T> {
    fn push(&mut self, item: T) -> Result<(), Stop> {
        if self.capacity.is_some_and(|c| self.items.len() >= c) {
            return Err(Stop::Disconnected);
        }
        self.items.push(item);
        Ok(())
    }
}

impl<T> Sink<T> for VecSink<T> {
    fn result(&mut self, item: T) -> Result<(), Stop> {
        self.push(item)?;
        self.results += 1;
        Ok(())
    }

    fn frame(&mut self, item: T) -> Result<(), Stop> {
        self.push(item)
    }
}
