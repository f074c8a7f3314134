//! The audit hub's configuration file (`s62 hub --config FILE`): one `[hub]` table naming the
//! JetStream cluster, the hub's own log (folder, signing key, origin) and, for each log it
//! monitors, that log's origin and verifier keys (`[[hub.log]]`, with the witnesses whose
//! cosignatures the hub checks on its checkpoints), and optionally the auditor query
//! listener (`[hub.query]`, with exactly the keys and checks of the sidecar's `[query]`: the same
//! parser). Checked like the sidecar's config: every problem at once, with its key path.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::check::{Checker, LoadError, Section};
use super::query::RawQuery;
use super::{ConfigError, QueryConfig, ReplicateConfig, ReplicateMode};
use crate::log::cosignature::CosignerVerifier;
use crate::log::epoch::LogKeys;

/// A checked hub configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct HubConfig {
    /// Cluster seed URLs (`nats://` or `tls://`).
    pub urls: Vec<String>,
    /// A NATS `.creds` file; none: connect without credentials.
    pub credentials_file: Option<PathBuf>,
    /// The hub's folder: its own log in `log/`, a verified copy of each monitored log in
    /// `logs/<token>/`.
    pub data_dir: PathBuf,
    /// The hub's own signing key (its alerts are entries of its own log).
    pub key_file: PathBuf,
    /// The hub's own log origin.
    pub origin: String,
    /// The monitored logs.
    pub logs: Vec<MonitoredLog>,
    /// The auditor query service over every log the hub holds (`[hub.query]`); `None`: the hub
    /// serves no queries.
    pub query: Option<QueryConfig>,
}

/// One `[[hub.log]]`.
#[derive(Clone, Debug, PartialEq)]
pub struct MonitoredLog {
    pub origin: String,
    /// The log's verifier keys, as its `log.pub` lists them: the first signs from size 1; a
    /// handover in the log must name one of the others.
    pub keys: LogKeys,
    /// The witnesses whose cosignatures the hub checks on this log's checkpoints (their cosigner
    /// keys, as each witness's `witness.pub` gives them); empty: the log is not witnessed.
    pub witnesses: Vec<CosignerVerifier>,
    /// Distinct witnesses (by key name) whose cosignatures make a checkpoint witnessed.
    pub witness_quorum: usize,
    /// How long a checkpoint the hub verified may go without a witnessed checkpoint at least
    /// as large before the hub raises `replication_unwitnessed`.
    pub witness_max_lag: Duration,
}

impl MonitoredLog {
    /// A log followed without witness checks.
    pub fn new(origin: impl Into<String>, keys: LogKeys) -> MonitoredLog {
        MonitoredLog {
            origin: origin.into(),
            keys,
            witnesses: Vec::new(),
            witness_quorum: 1,
            witness_max_lag: Duration::from_millis(DEFAULT_WITNESS_MAX_LAG_MS),
        }
    }
}

/// `witness_max_lag_ms` when not given: the sidecar's own `witness.max_lag_ms` default.
const DEFAULT_WITNESS_MAX_LAG_MS: u64 = 300_000;

impl HubConfig {
    /// Parses TOML text; relative paths resolve against `dir` when given.
    pub fn from_toml_str(text: &str, dir: Option<&Path>) -> Result<HubConfig, ConfigError> {
        let mut c = Checker::new(dir);
        let parsed = (|| {
            let doc = match text.parse::<toml::Table>() {
                Ok(doc) => doc,
                Err(e) => {
                    c.push("", e.to_string().trim_end().to_owned());
                    return None;
                }
            };
            let raw: RawFile = c.table("", toml::Value::Table(doc))?;
            c.required_section::<HubConfig>(raw.hub)
        })();
        match parsed {
            Some(cfg) if c.problems.is_empty() => Ok(cfg),
            _ => Err(ConfigError {
                problems: c.problems,
            }),
        }
    }

    /// Reads and parses a hub config file.
    pub fn load(path: &Path) -> Result<HubConfig, LoadError> {
        let text = std::fs::read_to_string(path).map_err(|source| LoadError::Read {
            path: path.to_owned(),
            source,
        })?;
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        Self::from_toml_str(&text, Some(dir)).map_err(|problems| LoadError::Invalid {
            path: path.to_owned(),
            problems,
        })
    }

    /// The connection settings, in the shape the publisher's `connect` takes.
    pub fn connection(&self) -> ReplicateConfig {
        ReplicateConfig {
            urls: self.urls.clone(),
            mode: ReplicateMode::Async,
            max_lag: std::time::Duration::from_secs(30),
            sync_timeout: std::time::Duration::from_secs(5),
            max_age: std::time::Duration::from_secs(86_400),
            replicas: 3,
            credentials_file: self.credentials_file.clone(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    hub: Option<toml::Value>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawHub {
    urls: Option<Vec<String>>,
    credentials_file: Option<String>,
    data_dir: Option<String>,
    key_file: Option<String>,
    origin: Option<String>,
    log: Option<Vec<toml::Value>>,
    query: Option<toml::Value>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawLog {
    origin: Option<String>,
    keys: Option<Vec<String>>,
    witnesses: Option<Vec<String>>,
    witness_quorum: Option<i64>,
    witness_max_lag_ms: Option<i64>,
}

impl Section for HubConfig {
    const KEY: &'static str = "hub";
    type Raw = RawHub;

    fn check(raw: RawHub, c: &mut Checker<'_>) -> Option<Self> {
        // The URL rules are the publisher's: checked by the same code.
        let urls = match raw.urls {
            None => {
                c.push("hub.urls", "is required");
                Vec::new()
            }
            Some(urls) => {
                let mut rc = Checker::new(None);
                let _ = <ReplicateConfig as Section>::check(
                    super::replicate::RawReplicate::with_urls(urls.clone()),
                    &mut rc,
                );
                for p in rc.problems {
                    c.push(&p.path.replacen("replicate.", "hub.", 1), p.message);
                }
                urls
            }
        };
        let credentials_file = c.file("hub.credentials_file", raw.credentials_file);
        let data_dir = c.required("hub.data_dir", raw.data_dir);
        let data_dir = c.file("hub.data_dir", data_dir);
        let key_file = c.required("hub.key_file", raw.key_file);
        let key_file = c.file("hub.key_file", key_file);
        let origin = c.required("hub.origin", raw.origin);
        let mut logs = Vec::new();
        let raw_logs = raw.log.unwrap_or_default();
        if raw_logs.is_empty() {
            c.push("hub.log", "at least one [[hub.log]] is required");
        }
        let mut origins = HashSet::new();
        for (i, value) in raw_logs.into_iter().enumerate() {
            let path = format!("hub.log[{i}]");
            let Some(l) = c.table::<RawLog>(&path, value) else {
                continue;
            };
            let o = c.required(&format!("{path}.origin"), l.origin);
            if let Some(o) = &o
                && !origins.insert(o.clone())
            {
                c.push(&format!("{path}.origin"), format!("{o:?} is listed twice"));
            }
            if o.is_some() && o == origin {
                c.push(
                    &format!("{path}.origin"),
                    "is the hub's own origin: the hub does not monitor its own log",
                );
            }
            let keys =
                c.required(&format!("{path}.keys"), l.keys).and_then(|k| {
                    match LogKeys::parse(&k.join("\n")) {
                        Ok(keys) => Some(keys),
                        Err(e) => {
                            c.push(&format!("{path}.keys"), e.to_string());
                            None
                        }
                    }
                });
            let mut witnesses: Vec<CosignerVerifier> = Vec::new();
            for (j, k) in l.witnesses.unwrap_or_default().iter().enumerate() {
                match CosignerVerifier::parse(k) {
                    Ok(w) if witnesses.iter().any(|x| x.to_vkey() == w.to_vkey()) => c.push(
                        &format!("{path}.witnesses[{j}]"),
                        "the same key is listed twice",
                    ),
                    Ok(w) => witnesses.push(w),
                    Err(e) => c.push(&format!("{path}.witnesses[{j}]"), e.to_string()),
                }
            }
            let quorum_path = format!("{path}.witness_quorum");
            let witness_quorum = c.positive(&quorum_path, l.witness_quorum, 1);
            let distinct: HashSet<&str> = witnesses.iter().map(CosignerVerifier::name).collect();
            if !witnesses.is_empty() && witness_quorum > distinct.len() {
                c.push(
                    &quorum_path,
                    format!(
                        "{witness_quorum} is more than the {} distinct witnesses (by key name) listed",
                        distinct.len()
                    ),
                );
            }
            if witnesses.is_empty() && l.witness_quorum.is_some() {
                c.push(&quorum_path, "is set but no witnesses are listed");
            }
            let witness_max_lag = c.millis(
                &format!("{path}.witness_max_lag_ms"),
                l.witness_max_lag_ms,
                DEFAULT_WITNESS_MAX_LAG_MS,
            );
            if let (Some(origin), Some(keys)) = (o, keys) {
                logs.push(MonitoredLog {
                    witnesses,
                    witness_quorum,
                    witness_max_lag,
                    ..MonitoredLog::new(origin, keys)
                });
            }
        }
        let query = match raw.query {
            None => Some(None),
            Some(value) => c
                .table::<RawQuery>("hub.query", value)
                .and_then(|raw| QueryConfig::check_at("hub.query", raw, c))
                .map(Some),
        };
        Some(HubConfig {
            query: query?,
            urls,
            credentials_file,
            data_dir: data_dir?,
            key_file: key_file?,
            origin: origin?,
            logs,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::HubConfig;
    use std::path::Path;

    const KEY: &str =
        "custody.example.police.uk/s62+2995a948+Acn7sab+FJELzPyu7tWwn++o4qPUYCNEdoYPqJw//s64";

    #[test]
    fn a_hub_config_names_the_cluster_its_own_log_and_the_logs_it_monitors() {
        let c = HubConfig::from_toml_str(
            &format!(
                "[hub]\nurls = [\"nats://10.0.0.1:4222\"]\ndata_dir = \"hub\"\nkey_file = \"hub.key\"\n\
                 origin = \"hub.example/s62\"\n\
                 [[hub.log]]\norigin = \"custody.example.police.uk/s62\"\nkeys = [\"{KEY}\"]\n"
            ),
            Some(Path::new("/srv")),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.data_dir, Path::new("/srv/hub"));
        assert_eq!(c.logs.len(), 1);
        assert_eq!(c.logs[0].keys.keys()[0].to_vkey(), KEY);
    }

    const DPO: &str =
        "witness.dpo.example.police.uk+9d43a4ef+BOnLrKfFikZLhL14lKbdKajo+/LCxk8hEnn8LDVtacPx";

    #[test]
    fn a_monitored_log_names_the_witnesses_whose_cosignatures_the_hub_checks() {
        let base = "[hub]\nurls = [\"nats://10.0.0.1:4222\"]\ndata_dir = \"hub\"\nkey_file = \"hub.key\"\n\
                    origin = \"hub.example/s62\"\n";
        let c = HubConfig::from_toml_str(
            &format!(
                "{base}[[hub.log]]\norigin = \"custody.example.police.uk/s62\"\nkeys = [\"{KEY}\"]\n\
                 witnesses = [\"{DPO}\"]\nwitness_max_lag_ms = 60000\n\
                 [[hub.log]]\norigin = \"intel.example.police.uk/s62\"\nkeys = [\"{KEY}\"]\n"
            ),
            None,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.logs[0].witnesses.len(), 1);
        assert_eq!(c.logs[0].witnesses[0].to_vkey(), DPO);
        assert_eq!(c.logs[0].witness_quorum, 1);
        assert_eq!(c.logs[0].witness_max_lag.as_millis(), 60_000);
        assert!(
            c.logs[1].witnesses.is_empty(),
            "a log need not be witnessed"
        );

        let e = HubConfig::from_toml_str(
            &format!(
                "{base}[[hub.log]]\norigin = \"a/log\"\nkeys = [\"{KEY}\"]\n\
                 witnesses = [\"{DPO}\", \"{DPO}\", \"{KEY}\"]\nwitness_quorum = 2\n\
                 witness_max_lag_ms = 0\n\
                 [[hub.log]]\norigin = \"b/log\"\nkeys = [\"{KEY}\"]\nwitness_quorum = 1\n"
            ),
            None,
        )
        .expect_err("invalid");
        let p: Vec<String> = e.problems.iter().map(ToString::to_string).collect();
        for want in [
            "hub.log[0].witnesses[1]: the same key is listed twice",
            // A log's signing key is not a cosigner key (its type byte differs).
            "hub.log[0].witnesses[2]: ",
            "hub.log[0].witness_quorum: 2 is more than the 1 distinct witnesses",
            "hub.log[0].witness_max_lag_ms: must be greater than 0",
            "hub.log[1].witness_quorum: is set but no witnesses are listed",
        ] {
            assert!(
                p.iter().any(|x| x.starts_with(want)),
                "{want} not in {p:#?}"
            );
        }
    }

    #[test]
    fn every_hub_problem_is_reported_with_its_key_path() {
        let e = HubConfig::from_toml_str(
            &format!(
                "[hub]\nurls = [\"http://x\"]\norigin = \"hub.example/s62\"\nbogus = 1\n\
                 [[hub.log]]\norigin = \"a/log\"\nkeys = [\"not a key\"]\n\
                 [[hub.log]]\norigin = \"a/log\"\nkeys = [\"{KEY}\"]\n\
                 [[hub.log]]\norigin = \"hub.example/s62\"\n"
            ),
            None,
        )
        .expect_err("invalid");
        let p: Vec<String> = e.problems.iter().map(ToString::to_string).collect();
        for want in [
            "hub.urls[0]: \"http://x\" must be nats://host:port",
            "hub.bogus: unknown key",
            "hub.data_dir: is required",
            "hub.key_file: is required",
            "hub.log[0].keys: ",
            "hub.log[1].origin: \"a/log\" is listed twice",
            "hub.log[2].origin: is the hub's own origin",
            "hub.log[2].keys: is required",
        ] {
            assert!(
                p.iter().any(|x| x.starts_with(want)),
                "{want} not in {p:#?}"
            );
        }
        let e = HubConfig::from_toml_str("[hub]\n", None).expect_err("invalid");
        let p: Vec<String> = e.problems.iter().map(ToString::to_string).collect();
        assert!(
            p.iter()
                .any(|x| x == "hub.log: at least one [[hub.log]] is required"),
            "{p:?}"
        );
        assert!(p.iter().any(|x| x == "hub.urls: is required"), "{p:?}");
    }

    #[test]
    fn a_hub_query_listener_has_the_sidecars_query_keys_and_checks_under_hub_query() {
        let base = format!(
            "[hub]\nurls = [\"nats://10.0.0.1:4222\"]\ndata_dir = \"hub\"\nkey_file = \"hub.key\"\n\
             origin = \"hub.example/s62\"\n\
             [[hub.log]]\norigin = \"custody.example.police.uk/s62\"\nkeys = [\"{KEY}\"]\n"
        );
        let none = HubConfig::from_toml_str(&base, None).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            none.query, None,
            "without [hub.query] the hub serves no queries"
        );
        let c = HubConfig::from_toml_str(
            &format!(
                "{base}[hub.query]\naddress = \"127.0.0.1:7443\"\ncert_file = \"q.crt\"\n\
                 key_file = \"q.key\"\nclient_ca_file = \"ca.crt\"\n\
                 [[hub.query.auditor]]\nname = \"dpo\"\nmatch = \"san:dpo@example.police.uk\"\n\
                 role = \"dpo\"\n[hub.query.roles.auditor]\ncalls = [\"Search\"]\n"
            ),
            Some(Path::new("/srv")),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let q = c.query.expect("a query listener");
        assert_eq!(q.cert_file, Path::new("/srv/q.crt"));
        assert_eq!(q.auditors.len(), 1);
        assert_eq!(q.roles.auditor.calls.len(), 1);
        let e = HubConfig::from_toml_str(
            &format!(
                "{base}[hub.query]\naddress = \"nowhere\"\nbogus = 1\n\
                 [hub.query.roles.dpo]\ncalls = [\"Nothing\"]\n"
            ),
            None,
        )
        .expect_err("invalid");
        let p: Vec<String> = e.problems.iter().map(ToString::to_string).collect();
        for want in [
            "hub.query.bogus: unknown key",
            "hub.query.address: ",
            "hub.query.cert_file: is required",
            "hub.query.client_ca_file: is required",
            "hub.query.auditor: no auditor is named",
            "hub.query.roles.dpo.calls[0]: \"Nothing\" is not a call",
        ] {
            assert!(
                p.iter().any(|x| x.starts_with(want)),
                "{want} not in {p:#?}"
            );
        }
    }
}
