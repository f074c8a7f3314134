//! The sidecar's configuration: TOML text → a typed, validated [`Config`], reporting every problem
//! at once with its key path (`routes.rule[2].path: ...`).
//!
//! Parse, don't validate: each `[section]` is a file here with its serde `Raw*` struct
//! (`deny_unknown_fields`, what was written) and its typed struct (only checked values: socket
//! addresses, header names, CIDRs, operations, compiled path templates and JSON pointers), joined
//! by the [`check::Section`] trait. Rules that span sections live in `cross.rs`. Array entries are
//! numbered from 0 in key paths.
//!
//! Must not depend on the network, the log store or a runtime; the only I/O is reading the file in
//! [`Config::load`] and the existence checks in [`Config::check_files`], which startup calls
//! separately.

mod admin;
mod alert_sinks;
mod alerts;
mod check;
mod cidr;
mod cross;
mod hub;
mod identity;
mod justification;
mod limits;
mod listen;
mod log;
mod query;
mod replicate;
mod retention;
mod routes;
mod upstream;
mod witness;
mod witness_server;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use http::Uri;
use serde::Deserialize;

pub use self::log::LogConfig;
pub use admin::AdminConfig;
pub use alert_sinks::{
    AlertSinks, DOCUMENTATION_ENTERPRISE_NUMBER, FACILITIES, Facility, SyslogConfig, SyslogTls,
    WebhookConfig,
};
pub use alerts::{AlertRule, AlertsConfig, RuleKind, WorkingHours};
pub use check::{ConfigError, LoadError, Problem};
pub use cidr::{CidrError, IpCidr};
pub use hub::{HubConfig, MonitoredLog};
pub use identity::{CertificateField, GatewayCertificate, IdentityConfig, IdentitySource};
pub use justification::JustificationConfig;
pub use limits::LimitsConfig;
pub use listen::{ClientAuth, ListenConfig, ServerTls};
pub use query::{Auditor, AuditorMatch, AuditorRole, QueryCall, QueryConfig, RoleGrant, RoleTable};
pub use replicate::{ReplicateConfig, ReplicateMode};
pub use retention::RetentionConfig;
pub use routes::{
    DEFAULT_REFUSED_HEADERS, ErasureProbe, IdSource, MethodMatch, RouteRule, RoutesConfig,
    header_spelling,
};
pub use upstream::{ClientIdentityFiles, UpstreamConfig};
pub use witness::{WitnessConfig, WitnessPeer};
pub use witness_server::{WitnessServerConfig, WitnessedLog};

use check::{Checker, problem};

/// A checked configuration. Relative file paths are already resolved against the config's folder.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    pub log: LogConfig,
    pub listen: ListenConfig,
    pub upstream: UpstreamConfig,
    pub identity: IdentityConfig,
    pub justification: JustificationConfig,
    pub limits: LimitsConfig,
    pub routes: RoutesConfig,
    /// The auditor gRPC service; `None` when `[query]` is absent (no auditor listener).
    pub query: Option<QueryConfig>,
    /// Health, metrics and checkpoint publication; `None` when `[admin]` is absent.
    pub admin: Option<AdminConfig>,
    /// Checkpoint submission to witnesses; `None` when `[witness]` is absent.
    pub witness: Option<WitnessConfig>,
    /// Redaction of personal values past their retention period; `None` when `[retention]` is
    /// absent (values are kept until redacted on request).
    pub retention: Option<RetentionConfig>,
    /// Misuse rules and alert delivery; `None` when `[alerts]` is absent (zombie alerts from
    /// erasure checks are still raised).
    pub alerts: Option<AlertsConfig>,
    /// Off-node replication to NATS JetStream; `None` when `[replicate]` is absent.
    pub replicate: Option<ReplicateConfig>,
}

/// The shipped example; the demo's routes come from it.
const EXAMPLE: &str = include_str!("../../config/sidecar.example.toml");

impl Config {
    /// Parses TOML text; relative file paths stay relative (to the working directory).
    pub fn from_toml_str(text: &str) -> Result<Config, ConfigError> {
        parse(text, None)
    }

    /// Parses TOML text, resolving relative file paths against `dir`.
    pub fn from_toml_str_in(text: &str, dir: &Path) -> Result<Config, ConfigError> {
        parse(text, Some(dir))
    }

    /// Reads and parses a config file; relative paths resolve against the file's folder.
    pub fn load(path: &Path) -> Result<Config, LoadError> {
        let text = std::fs::read_to_string(path).map_err(|source| LoadError::Read {
            path: path.to_owned(),
            source,
        })?;
        let dir = path.parent().unwrap_or(Path::new(""));
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        parse(&text, Some(dir)).map_err(|problems| LoadError::Invalid {
            path: path.to_owned(),
            problems,
        })
    }

    /// The built-in demo: plain HTTP on `listen`, identity from `x-s62-user` set by a loopback
    /// peer, and the POLE routes of `config/sidecar.example.toml`. No query or admin listener.
    pub fn demo(data_dir: PathBuf, key_file: PathBuf, listen: SocketAddr, upstream: Uri) -> Config {
        // Invariant: the shipped example parses (tests/config_example.rs and this module's tests).
        #[allow(clippy::expect_used)]
        let example = Config::from_toml_str(EXAMPLE).expect("the shipped example config parses");
        let loopback = ["127.0.0.0/8", "::1/128"].map(|s| {
            // Invariant: literal, well-formed CIDRs.
            #[allow(clippy::expect_used)]
            s.parse::<IpCidr>().expect("literal CIDR")
        });
        Config {
            log: LogConfig {
                data_dir,
                key_file,
                origin: "demo.s62.local/log".into(),
                ..example.log
            },
            listen: ListenConfig {
                address: listen,
                tls: None,
            },
            upstream: UpstreamConfig {
                url: upstream,
                ca_file: None,
                client_identity: None,
                ..example.upstream
            },
            identity: IdentityConfig {
                sources: vec![IdentitySource::TrustedHeader],
                trusted_peers: loopback.to_vec(),
                // Plain HTTP: no gateway presents a certificate.
                gateway_certificates: Vec::new(),
                ..example.identity
            },
            justification: example.justification,
            limits: example.limits,
            routes: example.routes,
            query: None,
            admin: None,
            witness: None,
            retention: None,
            alerts: example.alerts,
            replicate: None,
        }
    }

    /// Checks that the files the config names exist (call at startup; `from_toml_str` does no
    /// I/O). The data folder may be absent if its parent exists (it is created).
    pub fn check_files(&self) -> Vec<Problem> {
        let mut problems = Vec::new();
        let mut file = |path: &str, p: &Path| {
            if !p.is_file() {
                problems.push(problem(
                    path,
                    format!("{} is not a readable file", p.display()),
                ));
            }
        };
        file("log.key_file", &self.log.key_file);
        for (key, path) in self.alerts.iter().flat_map(AlertsConfig::files) {
            file(&key, path);
        }
        if let Some(tls) = &self.listen.tls {
            file("listen.tls.cert_file", &tls.cert_file);
            file("listen.tls.key_file", &tls.key_file);
            if let Some(ca) = &tls.client_ca_file {
                file("listen.tls.client_ca_file", ca);
            }
        }
        if let Some(creds) = self
            .replicate
            .as_ref()
            .and_then(|r| r.credentials_file.as_ref())
        {
            file("replicate.credentials_file", creds);
        }
        if let Some(ca) = &self.upstream.ca_file {
            file("upstream.ca_file", ca);
        }
        if let Some(id) = &self.upstream.client_identity {
            file("upstream.client_cert_file", &id.cert_file);
            file("upstream.client_key_file", &id.key_file);
        }
        if let Some(q) = &self.query {
            file("query.cert_file", &q.cert_file);
            file("query.key_file", &q.key_file);
            file("query.client_ca_file", &q.client_ca_file);
        }
        let mut folder = |path: &str, p: &Path| {
            let parent_exists = p
                .parent()
                .is_none_or(|d| d.as_os_str().is_empty() || d.is_dir());
            if p.exists() && !p.is_dir() {
                problems.push(problem(path, format!("{} is not a folder", p.display())));
            } else if !p.exists() && !parent_exists {
                problems.push(problem(
                    path,
                    format!("neither {} nor its parent folder exists", p.display()),
                ));
            }
        };
        folder("log.data_dir", &self.log.data_dir);
        if let Some(dir) = self.admin.as_ref().and_then(|a| a.checkpoint_dir.as_ref()) {
            folder("admin.checkpoint_dir", dir);
        }
        problems
    }
}

/// The top level: each section is kept as a TOML value and checked on its own, so one bad
/// section cannot hide another.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    log: Option<toml::Value>,
    listen: Option<toml::Value>,
    upstream: Option<toml::Value>,
    identity: Option<toml::Value>,
    justification: Option<toml::Value>,
    limits: Option<toml::Value>,
    routes: Option<toml::Value>,
    query: Option<toml::Value>,
    admin: Option<toml::Value>,
    witness: Option<toml::Value>,
    retention: Option<toml::Value>,
    alerts: Option<toml::Value>,
    replicate: Option<toml::Value>,
}

fn parse(text: &str, base: Option<&Path>) -> Result<Config, ConfigError> {
    let mut c = Checker::new(base);
    let config = config(text, &mut c);
    match config {
        Some(config) if c.problems.is_empty() => Ok(config),
        _ => Err(ConfigError {
            problems: c.problems,
        }),
    }
}

/// Checks the whole document: each section, then the rules that span sections.
fn config(text: &str, c: &mut Checker<'_>) -> Option<Config> {
    let doc = match text.parse::<toml::Table>() {
        Ok(doc) => doc,
        Err(e) => {
            c.push("", e.to_string().trim_end().to_owned());
            return None;
        }
    };
    let raw: RawConfig = c.table("", toml::Value::Table(doc))?;

    let log = c.required_section::<LogConfig>(raw.log);
    let listen = c.defaulted_section::<ListenConfig>(raw.listen);
    let upstream = c.required_section::<UpstreamConfig>(raw.upstream);
    let identity = c.required_section::<IdentityConfig>(raw.identity);
    let justification = c.defaulted_section::<JustificationConfig>(raw.justification);
    let limits = c.defaulted_section::<LimitsConfig>(raw.limits);
    let routes = c.defaulted_section::<RoutesConfig>(raw.routes);
    let query = c.optional_section::<QueryConfig>(raw.query);
    let admin = c.optional_section::<AdminConfig>(raw.admin);
    let witness = c.optional_section::<WitnessConfig>(raw.witness);
    let retention = c.optional_section::<RetentionConfig>(raw.retention);
    let alerts = c.optional_section::<AlertsConfig>(raw.alerts);
    let replicate = c.optional_section::<ReplicateConfig>(raw.replicate);
    if let (Some(Some(alerts)), Some(routes)) = (&alerts, &routes) {
        cross::break_glass_routes_exist(alerts, routes, c);
    }

    cross::check(
        &cross::Parsed {
            listen: listen.as_ref(),
            identity: identity.as_ref(),
            justification: justification.as_ref(),
            query: query.as_ref().and_then(Option::as_ref),
            admin: admin.as_ref().and_then(Option::as_ref),
        },
        c,
    );

    Some(Config {
        log: log?,
        listen: listen?,
        upstream: upstream?,
        identity: identity?,
        justification: justification?,
        limits: limits?,
        routes: routes?,
        query: query?,
        admin: admin?,
        witness: witness?,
        retention: retention?,
        alerts: alerts?,
        replicate: replicate?,
    })
}

#[cfg(test)]
mod tests;
