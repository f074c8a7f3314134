//! `[witness]`: the witnesses (c2sp.org/tlog-witness) the sidecar submits its checkpoints to, how
//! often, and how many cosignatures make a quorum.

use std::collections::HashSet;
use std::time::Duration;

use http::Uri;
use serde::Deserialize;

use super::check::{Checker, Section};
use crate::log::cosignature::CosignerVerifier;

/// `[witness]`: checkpoint submission to independent witnesses.
#[derive(Clone, Debug, PartialEq)]
pub struct WitnessConfig {
    /// Least time between two submission rounds (the newest checkpoint each time).
    pub interval: Duration,
    /// How long the log may go without a quorum of cosignatures on a recent checkpoint before
    /// `/readyz` reports `degraded`.
    pub max_lag: Duration,
    /// Cosignatures from distinct witnesses that make a checkpoint witnessed.
    pub quorum: usize,
    /// Time allowed for one witness request (connect, send, answer).
    pub timeout: Duration,
    /// How long an export waits for a witnessed checkpoint covering its audit entry.
    pub export_wait: Duration,
    /// The witnesses, at least one.
    pub peers: Vec<WitnessPeer>,
}

/// One `[[witness.peer]]`.
#[derive(Clone, Debug, PartialEq)]
pub struct WitnessPeer {
    /// Short label for metrics, logs and admin entries (`[A-Za-z0-9._-]`, at most 64).
    pub name: String,
    /// Submission prefix, `http://host:port[/path]`: requests go to `<url>/add-checkpoint`.
    pub url: Uri,
    /// The witness's cosigner vkey (type 0x04).
    pub key: CosignerVerifier,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawWitness {
    interval_ms: Option<i64>,
    max_lag_ms: Option<i64>,
    quorum: Option<i64>,
    timeout_ms: Option<i64>,
    export_wait_ms: Option<i64>,
    peer: Option<Vec<toml::Value>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawPeer {
    name: Option<String>,
    url: Option<String>,
    key: Option<String>,
}

impl Section for WitnessConfig {
    const KEY: &'static str = "witness";
    type Raw = RawWitness;

    fn check(raw: RawWitness, c: &mut Checker<'_>) -> Option<Self> {
        let interval = c.millis("witness.interval_ms", raw.interval_ms, 1000);
        let max_lag = c.millis("witness.max_lag_ms", raw.max_lag_ms, 300_000);
        let timeout = c.millis("witness.timeout_ms", raw.timeout_ms, 5000);
        let export_wait = c.millis("witness.export_wait_ms", raw.export_wait_ms, 10_000);
        let quorum = c.positive("witness.quorum", raw.quorum, 1);
        let raw_peers = raw.peer.unwrap_or_default();
        if raw_peers.is_empty() {
            c.push("witness.peer", "at least one [[witness.peer]] is required");
        }
        let mut peers = Vec::new();
        let (mut names, mut keys) = (HashSet::new(), HashSet::new());
        for (i, value) in raw_peers.into_iter().enumerate() {
            let path = format!("witness.peer[{i}]");
            let Some(p) = c.table::<RawPeer>(&path, value) else {
                continue;
            };
            let name = c.required(&format!("{path}.name"), p.name);
            if let Some(n) = &name {
                let label_ok = !n.is_empty()
                    && n.len() <= 64
                    && n.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
                if !label_ok {
                    c.push(
                        &format!("{path}.name"),
                        format!("{n:?} must be 1 to 64 of A-Z a-z 0-9 . _ -"),
                    );
                } else if !names.insert(n.clone()) {
                    c.push(&format!("{path}.name"), format!("{n:?} is used twice"));
                }
            }
            let url =
                c.required(&format!("{path}.url"), p.url)
                    .and_then(|u| match u.parse::<Uri>() {
                        Ok(uri)
                            if uri.scheme_str() == Some("http")
                                && uri.host().is_some()
                                && uri.query().is_none() =>
                        {
                            Some(uri)
                        }
                        _ => {
                            c.push(
                                &format!("{path}.url"),
                                format!(
                                    "{u:?} must be http://host:port[/prefix] (the protocol is \
                                 authenticated by signatures; https is not supported here)"
                                ),
                            );
                            None
                        }
                    });
            let key =
                c.required(&format!("{path}.key"), p.key).and_then(
                    |k| match CosignerVerifier::parse(&k) {
                        Ok(key) => Some(key),
                        Err(e) => {
                            c.push(&format!("{path}.key"), e.to_string());
                            None
                        }
                    },
                );
            if let Some(k) = &key
                && !keys.insert(k.to_vkey())
            {
                c.push(&format!("{path}.key"), "the same key is configured twice");
            }
            if let (Some(name), Some(url), Some(key)) = (name, url, key) {
                peers.push(WitnessPeer { name, url, key });
            }
        }
        let witnesses: HashSet<&str> = peers.iter().map(|p| p.key.name()).collect();
        if !peers.is_empty() && quorum > witnesses.len() {
            c.push(
                "witness.quorum",
                format!(
                    "{quorum} is more than the {} distinct witnesses (by key name) configured",
                    witnesses.len()
                ),
            );
        }
        Some(WitnessConfig {
            interval,
            max_lag,
            quorum,
            timeout,
            export_wait,
            peers,
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

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
    const DPO: &str =
        "witness.dpo.example.police.uk+9d43a4ef+BOnLrKfFikZLhL14lKbdKajo+/LCxk8hEnn8LDVtacPx";
    const LOG_KEY: &str =
        "custody.example.police.uk/s62+2995a948+Acn7sab+FJELzPyu7tWwn++o4qPUYCNEdoYPqJw//s64";

    fn problems(extra: &str) -> Vec<String> {
        match Config::from_toml_str(&format!("{BASE}{extra}")) {
            Ok(_) => panic!("expected problems"),
            Err(e) => e.problems.iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn a_witness_section_gets_its_defaults() {
        let c = Config::from_toml_str(&format!(
            "{BASE}[witness]\n[[witness.peer]]\nname = \"dpo\"\nurl = \"http://w.example:7380\"\nkey = \"{DPO}\"\n"
        ))
        .unwrap_or_else(|e| panic!("{e}"));
        let w = c.witness.expect("witness");
        assert_eq!(w.interval.as_millis(), 1000);
        assert_eq!(w.max_lag.as_millis(), 300_000);
        assert_eq!(w.quorum, 1);
        assert_eq!(w.peers[0].key.to_vkey(), DPO);
        assert!(
            Config::from_toml_str(BASE)
                .expect("valid")
                .witness
                .is_none()
        );
    }

    #[test]
    fn every_witness_problem_is_reported_with_its_key_path() {
        let p = problems(&format!(
            "[witness]\nquorum = 3\ninterval_ms = 0\n\
             [[witness.peer]]\nname = \"dpo\"\nurl = \"https://w.example\"\nkey = \"{LOG_KEY}\"\n\
             [[witness.peer]]\nname = \"dpo\"\nurl = \"http://w.example\"\nkey = \"{DPO}\"\n\
             [[witness.peer]]\nname = \"has space\"\nurl = \"http://w2.example\"\nkey = \"{DPO}\"\n"
        ));
        for want in [
            "witness.interval_ms: must be greater than 0",
            "witness.peer[0].url: ",
            "witness.peer[0].key: key type 0x01 is not a cosigner key",
            "witness.peer[1].name: \"dpo\" is used twice",
            "witness.peer[2].name: ",
            "witness.peer[2].key: the same key is configured twice",
            "witness.quorum: 3 is more than the 1 distinct witnesses",
        ] {
            assert!(
                p.iter().any(|x| x.starts_with(want)),
                "{want} not in {p:#?}"
            );
        }
        let p = problems("[witness]\n");
        assert!(
            p.iter()
                .any(|x| x.starts_with("witness.peer: at least one")),
            "{p:?}"
        );
    }
}
