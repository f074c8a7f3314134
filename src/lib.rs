//! s62: an audit-logging sidecar for records systems that hold personal data for law enforcement
//! (UK Data Protection Act 2018 s62, EU directive 2016/680 art. 25).
//!
//! Dependencies point inward to [`log`], the pure format core; [`log::store::rocks`] is the only
//! RocksDB user; [`ingest`] is the only writer.
#![forbid(unsafe_code)]

pub mod admin;
pub mod alerts;
pub mod app;
pub mod classify;
#[cfg(feature = "rocksdb")]
pub mod commands;
pub mod compliance;
pub mod config;
pub mod console;
#[cfg(feature = "rocksdb")]
pub mod demo;
pub mod fsutil;
#[cfg(feature = "rocksdb")]
pub mod hub;
pub mod ingest;
pub mod keys;
pub mod log;
pub mod proxy;
pub mod query;
pub mod records;
pub mod render;
pub mod replicate;
pub mod retention;
pub mod verify;
pub mod witness;
