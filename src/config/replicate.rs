//! `[replicate]`: off-node replication of the log to a NATS JetStream cluster (the policy only; the
//! publisher is `crate::replicate`).

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::check::{Checker, Section};

/// How replication relates to the proxy's responses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplicateMode {
    /// The default: the publisher follows the log off the hot path; a response never waits for
    /// the stream. Falling behind by more than `max_lag` makes `/readyz` degraded.
    Async,
    /// Each buffered response is held until its outcome entry is acknowledged by the stream
    /// (R`replicas`), so nothing is released before it is durable off the node. A stream that
    /// does not acknowledge within `sync_timeout` makes the request fail closed (503).
    Sync,
}

impl ReplicateMode {
    pub fn label(self) -> &'static str {
        match self {
            ReplicateMode::Async => "async",
            ReplicateMode::Sync => "sync",
        }
    }
}

/// `[replicate]`.
#[derive(Clone, Debug, PartialEq)]
pub struct ReplicateConfig {
    /// Cluster seed URLs (`nats://host:port` or `tls://host:port`), at least one.
    pub urls: Vec<String>,
    pub mode: ReplicateMode,
    /// Async mode: how long the stream may stay behind the log before `/readyz` is degraded.
    pub max_lag: Duration,
    /// Sync mode: how long a response waits for the stream's acknowledgement of its outcome.
    pub sync_timeout: Duration,
    /// The stream's `max_age` when s62 creates it (the span as written and as a duration).
    pub max_age: Duration,
    /// The stream's replica count when s62 creates it (1 to 5; 3 by default).
    pub replicas: usize,
    /// A NATS `.creds` file (JWT and nkey seed); none: connect without credentials.
    pub credentials_file: Option<PathBuf>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawReplicate {
    urls: Option<Vec<String>>,
    mode: Option<String>,
    max_lag_ms: Option<i64>,
    sync_timeout_ms: Option<i64>,
    max_age: Option<String>,
    replicas: Option<i64>,
    credentials_file: Option<String>,
}

impl RawReplicate {
    /// Only `urls` set: the hub checks its URLs with the same rules.
    pub(crate) fn with_urls(urls: Vec<String>) -> Self {
        RawReplicate {
            urls: Some(urls),
            ..Default::default()
        }
    }
}

impl Section for ReplicateConfig {
    const KEY: &'static str = "replicate";
    type Raw = RawReplicate;

    fn check(raw: RawReplicate, c: &mut Checker<'_>) -> Option<Self> {
        let urls = c.required("replicate.urls", raw.urls).unwrap_or_default();
        if urls.is_empty() && !c.problems.iter().any(|p| p.path == "replicate.urls") {
            c.push("replicate.urls", "at least one URL is required");
        }
        for (i, u) in urls.iter().enumerate() {
            let ok = ["nats://", "tls://"].iter().any(|scheme| {
                u.strip_prefix(scheme).is_some_and(|rest| {
                    !rest.is_empty() && !rest.contains('/') && !rest.contains(char::is_whitespace)
                })
            });
            if !ok {
                c.push(
                    &format!("replicate.urls[{i}]"),
                    format!("{u:?} must be nats://host:port or tls://host:port"),
                );
            }
        }
        let mode = match raw.mode.as_deref() {
            None | Some("async") => ReplicateMode::Async,
            Some("sync") => ReplicateMode::Sync,
            Some(other) => {
                c.push(
                    "replicate.mode",
                    format!("{other:?} must be \"async\" or \"sync\""),
                );
                ReplicateMode::Async
            }
        };
        let max_lag = c.millis("replicate.max_lag_ms", raw.max_lag_ms, 30_000);
        let sync_timeout = c.millis("replicate.sync_timeout_ms", raw.sync_timeout_ms, 5_000);
        let max_age = match raw.max_age {
            None => Duration::from_secs(7 * 365 * 86_400),
            Some(text) => c
                .span("replicate.max_age", &text)
                .unwrap_or(Duration::from_secs(1)),
        };
        let replicas = match raw.replicas {
            None => 3,
            Some(n @ 1..=5) => n as usize,
            Some(n) => {
                c.push(
                    "replicate.replicas",
                    format!("{n} must be between 1 and 5 (JetStream's limit)"),
                );
                3
            }
        };
        let credentials_file = c.file("replicate.credentials_file", raw.credentials_file);
        Some(ReplicateConfig {
            urls,
            mode,
            max_lag,
            sync_timeout,
            max_age,
            replicas,
            credentials_file,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::ReplicateMode;
    use crate::config::Config;
    use std::time::Duration;

    const BASE: &str = r#"
[log]
data_dir = "data"
key_file = "log.key"
origin = "test.example/s62"
[upstream]
url = "http://127.0.0.1:9000"
[identity]
sources = ["trusted_header"]
trusted_peers = ["127.0.0.1"]
"#;

    fn problems(extra: &str) -> Vec<String> {
        match Config::from_toml_str(&format!("{BASE}{extra}")) {
            Ok(_) => panic!("expected problems"),
            Err(e) => e.problems.iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn a_replicate_section_gets_async_mode_three_replicas_and_its_defaults() {
        let c = Config::from_toml_str(&format!(
            "{BASE}[replicate]\nurls = [\"nats://10.0.0.1:4222\", \"tls://nats.example:4222\"]\n"
        ))
        .unwrap_or_else(|e| panic!("{e}"));
        let r = c.replicate.expect("replicate");
        assert_eq!(r.mode, ReplicateMode::Async);
        assert_eq!(r.replicas, 3);
        assert_eq!(r.max_lag, Duration::from_secs(30));
        assert_eq!(r.sync_timeout, Duration::from_secs(5));
        assert_eq!(r.max_age, Duration::from_secs(7 * 365 * 86_400));
        assert_eq!(r.credentials_file, None);
        assert!(
            Config::from_toml_str(BASE)
                .expect("valid")
                .replicate
                .is_none()
        );
    }

    #[test]
    fn sync_mode_max_age_and_credentials_are_read() {
        let c = Config::from_toml_str_in(
            &format!(
                "{BASE}[replicate]\nurls = [\"nats://127.0.0.1:4222\"]\nmode = \"sync\"\n\
                 max_age = \"30d\"\nreplicas = 1\nmax_lag_ms = 500\ncredentials_file = \"s62.creds\"\n"
            ),
            std::path::Path::new("/etc/s62"),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let r = c.replicate.expect("replicate");
        assert_eq!(r.mode, ReplicateMode::Sync);
        assert_eq!(r.max_age, Duration::from_secs(30 * 86_400));
        assert_eq!(r.replicas, 1);
        assert_eq!(r.max_lag, Duration::from_millis(500));
        assert_eq!(
            r.credentials_file.as_deref(),
            Some(std::path::Path::new("/etc/s62/s62.creds"))
        );
    }

    #[test]
    fn every_replicate_problem_is_reported_with_its_key_path() {
        let p = problems(
            "[replicate]\nurls = [\"http://n1:4222\", \"nats://\"]\nmode = \"eventually\"\n\
             replicas = 7\nmax_lag_ms = 0\nmax_age = \"forever\"\nsync_timeout_ms = -1\n\
             credentials_file = \"\"\nstream = \"x\"\n",
        );
        for want in [
            "replicate.urls[0]: \"http://n1:4222\" must be nats://host:port",
            "replicate.urls[1]: ",
            "replicate.mode: \"eventually\" must be \"async\" or \"sync\"",
            "replicate.replicas: 7 must be between 1 and 5",
            "replicate.max_lag_ms: must be greater than 0",
            "replicate.sync_timeout_ms: must be greater than 0",
            "replicate.max_age: \"forever\" is not a positive duration",
            "replicate.credentials_file: must not be empty",
            "replicate.stream: unknown key",
        ] {
            assert!(
                p.iter().any(|x| x.starts_with(want)),
                "{want} not in {p:#?}"
            );
        }
        let p = problems("[replicate]\n");
        assert!(
            p.iter().any(|x| x == "replicate.urls: is required"),
            "{p:?}"
        );
        let p = problems("[replicate]\nurls = []\n");
        assert!(
            p.iter()
                .any(|x| x == "replicate.urls: at least one URL is required"),
            "{p:?}"
        );
    }
}
