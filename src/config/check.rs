//! The machinery every section shares: [`Problem`]s with key paths, the [`Checker`] that collects
//! them, and the [`Section`] trait each `[table]` implements to parse and check itself.
//!
//! Pure: no file or network I/O; file paths are only resolved against the config's folder.

use std::collections::HashSet;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use http::HeaderName;
use serde::de::DeserializeOwned;

use crate::log::entry::Operation;

/// One thing wrong with a configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// Key path, e.g. `routes.rule[2].path`; empty for the file as a whole.
    pub path: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// Every problem found in a configuration.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    pub problems: Vec<Problem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.problems.len();
        write!(
            f,
            "invalid configuration ({n} problem{}):",
            if n == 1 { "" } else { "s" }
        )?;
        for p in &self.problems {
            write!(f, "\n  {p}")?;
        }
        Ok(())
    }
}

/// Why [`super::Config::load`] failed.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read.
    #[error("cannot read config file {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file was read but is not a valid configuration. The problems are printed here, not
    /// again as a source, so `{:#}` lists them once.
    #[error("config file {path}: {problems}")]
    Invalid {
        path: PathBuf,
        problems: ConfigError,
    },
}

pub(crate) fn problem(path: &str, message: impl Into<String>) -> Problem {
    Problem {
        path: path.to_owned(),
        message: message.into(),
    }
}

/// `path.key`, or `key` at the top level.
pub(crate) fn at(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// One `[table]` of the config file: how it is written ([`Section::Raw`], serde with
/// `deny_unknown_fields`) and how it becomes a checked value.
pub(crate) trait Section: Sized {
    /// The table's key path (`"log"`, `"listen"`, ...).
    const KEY: &'static str;
    /// The table as written; `Default` is an empty table.
    type Raw: DeserializeOwned + Default;
    /// Checks the table, recording every problem in `c`; `None` when the value cannot be built.
    fn check(raw: Self::Raw, c: &mut Checker<'_>) -> Option<Self>;
}

/// Collects problems while checking; `None` from a checker means a problem was recorded.
pub(crate) struct Checker<'a> {
    pub(crate) problems: Vec<Problem>,
    reported: HashSet<String>,
    base: Option<&'a Path>,
}

impl<'a> Checker<'a> {
    /// A checker resolving relative file paths against `base` (left as written when `None`).
    pub(crate) fn new(base: Option<&'a Path>) -> Self {
        Checker {
            problems: Vec::new(),
            reported: HashSet::new(),
            base,
        }
    }

    pub(crate) fn push(&mut self, path: &str, message: impl Into<String>) {
        self.reported.insert(path.to_owned());
        self.problems.push(problem(path, message));
    }

    /// A section that must be present.
    pub(crate) fn required_section<S: Section>(&mut self, value: Option<toml::Value>) -> Option<S> {
        let value = self.required(S::KEY, value)?;
        let raw = self.table::<S::Raw>(S::KEY, value)?;
        S::check(raw, self)
    }

    /// A section whose absence means an empty table (every key at its default).
    pub(crate) fn defaulted_section<S: Section>(
        &mut self,
        value: Option<toml::Value>,
    ) -> Option<S> {
        let raw = match value {
            Some(v) => self.table::<S::Raw>(S::KEY, v)?,
            None => S::Raw::default(),
        };
        S::check(raw, self)
    }

    /// A section whose absence turns a feature off: `Some(None)` when absent, `None` when present
    /// but invalid.
    pub(crate) fn optional_section<S: Section>(
        &mut self,
        value: Option<toml::Value>,
    ) -> Option<Option<S>> {
        match value {
            None => Some(None),
            Some(v) => {
                let raw = self.table::<S::Raw>(S::KEY, v)?;
                S::check(raw, self).map(Some)
            }
        }
    }

    /// Deserializes one table, reporting every unknown key and every mistyped value (each with
    /// its key path) rather than stopping at the first.
    pub(crate) fn table<T: DeserializeOwned>(
        &mut self,
        path: &str,
        value: toml::Value,
    ) -> Option<T> {
        let mut table = match value {
            toml::Value::Table(t) => t,
            other => {
                self.push(
                    path,
                    format!("expected a table, found {}", other.type_str()),
                );
                return None;
            }
        };
        // Each failed round removes one key, so this ends. What remains is still checked (the
        // problems already recorded make the whole parse fail), so one typo hides nothing else.
        for _ in 0..=table.len() {
            let err = match toml::Value::Table(table.clone()).try_into::<T>() {
                Ok(raw) => return Some(raw),
                Err(err) => err,
            };
            let message = err.message().trim_end();
            if let Some(rest) = message.strip_prefix("unknown field `")
                && let Some((key, expected)) = rest.split_once('`')
                && table.remove(key).is_some()
            {
                let expected = expected.trim_start_matches(", ");
                self.push(&at(path, key), format!("unknown key ({expected})"));
                continue;
            }
            // toml's Display ends with "in `key.sub`" when the error is inside a value.
            let shown = err.to_string();
            let keys = shown
                .lines()
                .rev()
                .find_map(|l| l.strip_prefix("in `")?.strip_suffix('`'))
                .map(str::to_owned);
            if let Some(keys) = keys {
                let first = keys.split('.').next().unwrap_or(&keys).to_owned();
                if table.remove(&first).is_some() {
                    self.push(&at(path, &keys), message.to_owned());
                    continue;
                }
            }
            self.push(path, message.to_owned());
            return None;
        }
        None
    }

    pub(crate) fn required<T>(&mut self, path: &str, value: Option<T>) -> Option<T> {
        if value.is_none() && !self.reported.contains(path) {
            self.push(path, "is required");
        }
        value
    }

    pub(crate) fn positive(&mut self, path: &str, value: Option<i64>, default: usize) -> usize {
        match value {
            None => default,
            Some(v) if v > 0 => usize::try_from(v).unwrap_or(usize::MAX),
            Some(v) => {
                self.push(path, format!("must be greater than 0 (got {v})"));
                default
            }
        }
    }

    pub(crate) fn millis(&mut self, path: &str, value: Option<i64>, default_ms: u64) -> Duration {
        match value {
            None => Duration::from_millis(default_ms),
            Some(v) if v > 0 => Duration::from_millis(v.unsigned_abs()),
            Some(v) => {
                self.push(
                    path,
                    format!("must be greater than 0 milliseconds (got {v})"),
                );
                Duration::from_millis(default_ms)
            }
        }
    }

    /// A positive duration written as a span (`"1h"`, `"30d"`, `"90 minutes"`), days counted as
    /// 24 hours.
    pub(crate) fn span(&mut self, path: &str, text: &str) -> Option<Duration> {
        let total = text.parse::<jiff::Span>().ok().and_then(|span| {
            span.total(jiff::SpanTotal::from(jiff::Unit::Millisecond).days_are_24_hours())
                .ok()
        });
        match total {
            Some(ms) if (1.0..1e13).contains(&ms) => Some(Duration::from_millis(ms as u64)),
            _ => {
                self.push(
                    path,
                    format!("{text:?} is not a positive duration such as \"1h\" or \"30d\""),
                );
                None
            }
        }
    }

    pub(crate) fn file(&mut self, path: &str, value: Option<String>) -> Option<PathBuf> {
        let value = value?;
        if value.trim().is_empty() {
            self.push(path, "must not be empty");
            return None;
        }
        let p = PathBuf::from(value);
        Some(match self.base {
            Some(base) if p.is_relative() => base.join(p),
            _ => p,
        })
    }

    pub(crate) fn socket(&mut self, path: &str, value: &str) -> Option<SocketAddr> {
        match value.parse() {
            Ok(addr) => Some(addr),
            Err(_) => {
                self.push(
                    path,
                    format!(
                        "{value:?} is not an IP socket address \
                         (write e.g. \"127.0.0.1:8443\" or \"[::]:8443\")"
                    ),
                );
                None
            }
        }
    }

    pub(crate) fn header(&mut self, path: &str, value: &str) -> Option<HeaderName> {
        if value.bytes().any(|b| b.is_ascii_uppercase()) {
            self.push(
                path,
                format!(
                    "header names are written in lower case ({:?})",
                    value.to_ascii_lowercase()
                ),
            );
            return None;
        }
        match HeaderName::from_bytes(value.as_bytes()) {
            Ok(h) => Some(h),
            Err(_) => {
                self.push(path, format!("{value:?} is not a valid header name"));
                None
            }
        }
    }

    pub(crate) fn operation(&mut self, path: &str, value: &str) -> Option<Operation> {
        let op = Operation::from_label(value);
        if op.is_none() {
            self.push(
                path,
                format!(
                    "unknown operation {value:?} (expected collection, alteration, \
                     consultation, disclosure, combination or erasure)"
                ),
            );
        }
        op
    }
}
