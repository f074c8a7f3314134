//! The config file of `s62 witness` (not the sidecar's): where it listens, its key, its state
//! folder, and the logs it follows (`[[log]]`: origin and the keys trusted to sign its
//! checkpoints). Same rules as the sidecar's config: unknown keys are errors, every problem is
//! reported at once with its key path, relative paths resolve against the file's folder.
//!
//! Pure apart from reading the file in [`WitnessServerConfig::load`]; key files named by
//! `[[log]] key_file` are read when the witness starts.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::check::{Checker, ConfigError, LoadError};
use crate::log::note::VerifierKey;

/// A checked witness configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct WitnessServerConfig {
    /// Where to listen (plain HTTP; the protocol authenticates by signatures).
    pub listen: SocketAddr,
    /// The witness's secret cosigner key (`s62 witness-keygen`), mode 0600.
    pub key_file: PathBuf,
    /// Where the latest cosigned checkpoint of each log (and evidence) is kept.
    pub state_dir: PathBuf,
    /// The submission prefix: `""` or a path like `/witness`; requests go to
    /// `<prefix>/add-checkpoint`.
    pub prefix: String,
    /// The logs this witness follows, at least one.
    pub logs: Vec<WitnessedLog>,
}

/// One `[[log]]`: a log this witness cosigns for.
#[derive(Clone, Debug, PartialEq)]
pub struct WitnessedLog {
    /// The checkpoint origin (first line) that names the log.
    pub origin: String,
    /// Note verifier keys trusted to sign its checkpoints, written inline.
    pub keys: Vec<VerifierKey>,
    /// A verifier-key file (the log's `log.pub`) read at start, in addition to `keys`.
    pub key_file: Option<PathBuf>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawWitnessServer {
    listen: Option<String>,
    key_file: Option<String>,
    state_dir: Option<String>,
    prefix: Option<String>,
    log: Option<Vec<toml::Value>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawLog {
    origin: Option<String>,
    keys: Option<Vec<String>>,
    key_file: Option<String>,
}

impl WitnessServerConfig {
    /// Parses TOML text, resolving relative paths against `dir`.
    pub fn from_toml_str_in(text: &str, dir: &Path) -> Result<Self, ConfigError> {
        let mut c = Checker::new(Some(dir));
        match check(text, &mut c) {
            Some(cfg) if c.problems.is_empty() => Ok(cfg),
            _ => Err(ConfigError {
                problems: c.problems,
            }),
        }
    }

    /// Reads and checks a witness config file.
    pub fn load(path: &Path) -> Result<Self, LoadError> {
        let text = std::fs::read_to_string(path).map_err(|source| LoadError::Read {
            path: path.to_owned(),
            source,
        })?;
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        Self::from_toml_str_in(&text, dir).map_err(|problems| LoadError::Invalid {
            path: path.to_owned(),
            problems,
        })
    }
}

fn check(text: &str, c: &mut Checker<'_>) -> Option<WitnessServerConfig> {
    let doc = match text.parse::<toml::Table>() {
        Ok(doc) => doc,
        Err(e) => {
            c.push("", e.to_string().trim_end().to_owned());
            return None;
        }
    };
    let raw: RawWitnessServer = c.table("", toml::Value::Table(doc))?;
    let listen = c.socket("listen", raw.listen.as_deref().unwrap_or("127.0.0.1:7380"));
    let key_file = c.required("key_file", raw.key_file);
    let key_file = c.file("key_file", key_file);
    let state_dir = c.required("state_dir", raw.state_dir);
    let state_dir = c.file("state_dir", state_dir);
    let prefix = raw.prefix.unwrap_or_default();
    if !prefix.is_empty()
        && (!prefix.starts_with('/')
            || prefix.ends_with('/')
            || prefix
                .chars()
                .any(|ch| ch.is_whitespace() || ch == '?' || ch == '#'))
    {
        c.push(
            "prefix",
            format!("{prefix:?} must be empty or a path like \"/witness\" (no trailing slash)"),
        );
    }
    let mut logs = Vec::new();
    let mut origins = HashSet::new();
    let raw_logs = raw.log.unwrap_or_default();
    if raw_logs.is_empty() {
        c.push("log", "at least one [[log]] is required");
    }
    for (i, value) in raw_logs.into_iter().enumerate() {
        let path = format!("log[{i}]");
        let Some(l) = c.table::<RawLog>(&path, value) else {
            continue;
        };
        let origin = c.required(&format!("{path}.origin"), l.origin);
        if let Some(o) = &origin {
            if o.is_empty() || o.chars().any(|ch| ch < ' ') {
                c.push(
                    &format!("{path}.origin"),
                    "must be non-empty without control characters",
                );
            } else if !origins.insert(o.clone()) {
                c.push(
                    &format!("{path}.origin"),
                    format!("{o:?} is already followed by an earlier [[log]]"),
                );
            }
        }
        let mut keys = Vec::new();
        for (k, vkey) in l.keys.clone().unwrap_or_default().iter().enumerate() {
            match VerifierKey::parse(vkey) {
                Ok(key) => keys.push(key),
                Err(e) => c.push(&format!("{path}.keys[{k}]"), e.to_string()),
            }
        }
        let key_file = c.file(&format!("{path}.key_file"), l.key_file);
        if l.keys.as_ref().is_none_or(Vec::is_empty) && key_file.is_none() {
            c.push(
                &path,
                "needs the log's verifier keys: keys = [\"<vkey>\"] or key_file = \"log.pub\"",
            );
        }
        if let Some(origin) = origin {
            logs.push(WitnessedLog {
                origin,
                keys,
                key_file,
            });
        }
    }
    Some(WitnessServerConfig {
        listen: listen?,
        key_file: key_file?,
        state_dir: state_dir?,
        prefix,
        logs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const VKEY: &str =
        "records.example.police.uk/s62+5b1d8c63+AXWHlfBu7uFgmhfWmsAjOQRrlPwpn+S5uaLYYyV2iIMw";

    fn parse(text: &str) -> Result<WitnessServerConfig, ConfigError> {
        WitnessServerConfig::from_toml_str_in(text, Path::new("/etc/w"))
    }

    #[test]
    fn a_minimal_witness_config_parses_with_defaults_and_resolved_paths() {
        let key = crate::log::note::SignerKey::from_seed("records.example.police.uk/s62", [7; 32])
            .expect("key")
            .verifier()
            .to_vkey();
        let cfg = parse(&format!(
            "key_file = \"witness.key\"\nstate_dir = \"state\"\n\
             [[log]]\norigin = \"records.example.police.uk/s62\"\nkeys = [\"{key}\"]\n\
             [[log]]\norigin = \"other.example/log\"\nkey_file = \"other.pub\"\n"
        ))
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(cfg.listen, "127.0.0.1:7380".parse().expect("addr"));
        assert_eq!(cfg.key_file, PathBuf::from("/etc/w/witness.key"));
        assert_eq!(cfg.state_dir, PathBuf::from("/etc/w/state"));
        assert_eq!(cfg.prefix, "");
        assert_eq!(cfg.logs.len(), 2);
        assert_eq!(cfg.logs[0].keys.len(), 1);
        assert_eq!(
            cfg.logs[1].key_file,
            Some(PathBuf::from("/etc/w/other.pub"))
        );
    }

    #[test]
    fn the_shipped_witness_example_parses_with_no_unknown_keys() {
        let text = include_str!("../../config/witness.example.toml");
        let cfg = parse(text).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(cfg.logs.len(), 2);
        assert_eq!(cfg.logs[1].keys.len(), 1);
        assert_eq!(cfg.state_dir, PathBuf::from("/var/lib/s62-witness"));
    }

    #[test]
    fn every_problem_is_reported_with_its_key_path() {
        let err = parse(&format!(
            "listen = \"nowhere\"\nprefix = \"w/\"\ncolour = 1\n\
             [[log]]\norigin = \"a.example/log\"\nkeys = [\"not a key\"]\n\
             [[log]]\norigin = \"a.example/log\"\nkeys = [\"{VKEY}\"]\n\
             [[log]]\norigin = \"b.example/log\"\n"
        ))
        .expect_err("bad");
        let paths: Vec<&str> = err.problems.iter().map(|p| p.path.as_str()).collect();
        for want in [
            "listen",
            "key_file",
            "state_dir",
            "prefix",
            "colour",
            "log[0].keys[0]",
            "log[1].origin",
            "log[1].keys[0]",
            "log[2]",
        ] {
            assert!(paths.contains(&want), "{want} missing from {paths:?}");
        }
    }
}
