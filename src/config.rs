//! The sidecar's configuration: TOML text → a typed, validated [`Config`], reporting every problem
//! at once with its key path (`routes.rule[2].path: ...`).
//!
//! Parse, don't validate: serde `Raw*` structs (`deny_unknown_fields`) hold what was written; the
//! typed structs hold only checked values (socket addresses, header names, CIDRs, operations,
//! compiled path templates and JSON pointers), so nothing downstream re-checks them. Array entries
//! are numbered from 0 in key paths. Must not depend on the network, the log store or a runtime;
//! the only I/O is reading the file in [`Config::load`] and the existence checks in
//! [`Config::check_files`], which startup calls separately.

use std::collections::HashSet;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use http::{HeaderName, Method, Uri};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::classify::pointer::JsonPointer;
use crate::classify::template::PathTemplate;
use crate::log::entry::Operation;

// ---------------------------------------------------------------------------------------------
// Typed configuration
// ---------------------------------------------------------------------------------------------

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
}

/// `[log]`: where the log lives and how the group-commit writer batches.
#[derive(Clone, Debug, PartialEq)]
pub struct LogConfig {
    pub data_dir: PathBuf,
    /// Ed25519 signing key for checkpoints.
    pub key_file: PathBuf,
    /// Checkpoint origin line and signed-note key name (no whitespace, no `+`).
    pub origin: String,
    pub queue_capacity: usize,
    /// How long an append waits for queue space before the request fails closed.
    pub queue_wait: Duration,
    pub max_batch: usize,
}

/// `[listen]`: the client-facing listener.
#[derive(Clone, Debug, PartialEq)]
pub struct ListenConfig {
    pub address: SocketAddr,
    /// `None`: plain HTTP (local use, demos, or behind a TLS-terminating gateway in the same pod).
    pub tls: Option<ServerTls>,
}

/// `[listen.tls]`.
#[derive(Clone, Debug, PartialEq)]
pub struct ServerTls {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    /// Set exactly when `client_auth` is not [`ClientAuth::None`].
    pub client_ca_file: Option<PathBuf>,
    pub client_auth: ClientAuth,
}

/// Whether the listener asks for TLS client certificates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientAuth {
    /// No client certificate is requested.
    None,
    /// A certificate is verified if offered; clients without one may still connect.
    Optional,
    /// Clients without a valid certificate are refused during the handshake.
    Required,
}

/// `[upstream]`: the records system.
#[derive(Clone, Debug, PartialEq)]
pub struct UpstreamConfig {
    /// `http://` or `https://` with an authority and no path beyond `/`.
    pub url: Uri,
    /// Extra trust root for an `https` upstream.
    pub ca_file: Option<PathBuf>,
    /// Client certificate presented to an `https` upstream.
    pub client_identity: Option<ClientIdentityFiles>,
    pub connect_timeout: Duration,
    pub response_timeout: Duration,
}

impl UpstreamConfig {
    /// Whether the upstream is reached over TLS.
    pub fn is_https(&self) -> bool {
        self.url.scheme_str() == Some("https")
    }
}

/// A certificate chain and its private key.
#[derive(Clone, Debug, PartialEq)]
pub struct ClientIdentityFiles {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

/// `[identity]`: how the acting person is established.
#[derive(Clone, Debug, PartialEq)]
pub struct IdentityConfig {
    /// Tried in this order; the first that yields an identity wins.
    pub sources: Vec<IdentitySource>,
    pub certificate_field: CertificateField,
    /// Header carrying the user id when the peer is trusted.
    pub header: HeaderName,
    pub display_name_header: Option<HeaderName>,
    /// Comma-separated roles.
    pub roles_header: Option<HeaderName>,
    /// Peers whose identity headers are honoured.
    pub trusted_peers: Vec<IpCidr>,
    /// Refuse (and log a denial for) requests with no identity.
    pub required: bool,
}

impl IdentityConfig {
    /// Whether identity headers from `peer` are honoured.
    pub fn is_trusted_peer(&self, peer: IpAddr) -> bool {
        self.trusted_peers.iter().any(|net| net.contains(peer))
    }
}

/// Where an identity can come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdentitySource {
    /// The verified TLS client certificate.
    ClientCertificate,
    /// [`IdentityConfig::header`], only from [`IdentityConfig::trusted_peers`].
    TrustedHeader,
}

/// Which certificate field names the person.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CertificateField {
    /// The subject common name.
    CommonName,
    /// The first email or DNS subject alternative name.
    SubjectAltName,
}

/// An IPv4 or IPv6 network in CIDR form.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpCidr {
    network: IpAddr,
    prefix: u8,
}

/// Why a string is not a CIDR network.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CidrError {
    /// The address part is not an IP address.
    #[error("{0:?} is not an IP address")]
    Address(String),
    /// The prefix length is not a number within the address family's width.
    #[error("prefix length {0:?} must be 0..={1}")]
    Prefix(String, u8),
    /// Bits are set after the prefix, which usually means a typo.
    #[error("host bits are set; did you mean {0}?")]
    HostBits(IpCidr),
}

impl IpCidr {
    /// Whether `ip` is inside this network (IPv4-mapped IPv6 addresses count as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.network, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                mask32(self.prefix) & u32::from(ip) == u32::from(net)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                mask128(self.prefix) & u128::from(ip) == u128::from(net)
            }
            _ => false,
        }
    }
}

fn mask32(prefix: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0)
}

fn mask128(prefix: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0)
}

impl FromStr for IpCidr {
    type Err = CidrError;

    /// `10.0.0.0/8`, `::1/128`, or a bare address (a single host).
    fn from_str(s: &str) -> Result<Self, CidrError> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let network: IpAddr = addr.parse().map_err(|_| CidrError::Address(addr.into()))?;
        let width = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => width,
            Some(p) => match p.parse::<u8>() {
                Ok(n) if n <= width => n,
                _ => return Err(CidrError::Prefix(p.into(), width)),
            },
        };
        let masked = match network {
            IpAddr::V4(v4) => IpAddr::V4((u32::from(v4) & mask32(prefix)).into()),
            IpAddr::V6(v6) => IpAddr::V6((u128::from(v6) & mask128(prefix)).into()),
        };
        let cidr = IpCidr {
            network: masked,
            prefix,
        };
        if masked != network {
            return Err(CidrError::HostBits(cidr));
        }
        Ok(cidr)
    }
}

impl fmt::Display for IpCidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// `[justification]`: where the person's reason comes from and when it is required.
#[derive(Clone, Debug, PartialEq)]
pub struct JustificationConfig {
    pub purpose_header: HeaderName,
    pub text_header: HeaderName,
    pub case_header: HeaderName,
    /// Operations that need a justification unless a rule overrides it.
    pub required_for: Vec<Operation>,
}

impl JustificationConfig {
    /// Whether `operation` needs a justification by default.
    pub fn is_required_for(&self, operation: Operation) -> bool {
        self.required_for.contains(&operation)
    }
}

impl Default for JustificationConfig {
    /// s62(2) and (3): consultation and disclosure are logged with a justification.
    fn default() -> Self {
        JustificationConfig {
            purpose_header: HeaderName::from_static("x-s62-purpose"),
            text_header: HeaderName::from_static("x-s62-justification"),
            case_header: HeaderName::from_static("x-s62-case-ref"),
            required_for: vec![Operation::Consultation, Operation::Disclosure],
        }
    }
}

/// `[limits]`.
#[derive(Clone, Debug, PartialEq)]
pub struct LimitsConfig {
    pub max_request_body_bytes: usize,
    /// Responses up to this size are held until their outcome entry is durable; larger ones stream.
    pub max_buffered_response_bytes: usize,
    pub max_header_bytes: usize,
    pub request_timeout: Duration,
    pub max_connections: usize,
    /// On SIGTERM, how long requests in flight may take to finish (and log their outcomes).
    pub shutdown_grace: Duration,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_request_body_bytes: 1 << 20,
            max_buffered_response_bytes: 8 << 20,
            max_header_bytes: 64 << 10,
            request_timeout: Duration::from_secs(30),
            max_connections: 4096,
            shutdown_grace: Duration::from_secs(30),
        }
    }
}

/// `[routes]`: the rule table, first match wins.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RoutesConfig {
    /// Refuse (and log a denial for) requests that no rule matches.
    pub strict: bool,
    pub rules: Vec<RouteRule>,
}

/// One `[[routes.rule]]`.
#[derive(Clone, Debug, PartialEq)]
pub struct RouteRule {
    pub name: String,
    pub methods: MethodMatch,
    pub path: PathTemplate,
    pub operation: Operation,
    pub subjects: Vec<IdSource>,
    pub records: Vec<IdSource>,
    pub recipients: Vec<IdSource>,
    /// Read from the JSON response body: what the person actually received.
    pub returned_subjects: Vec<JsonPointer>,
    pub returned_records: Vec<JsonPointer>,
    /// Overrides [`JustificationConfig::required_for`] for this rule.
    pub justification_required: Option<bool>,
    pub stream_request: bool,
    pub stream_response: bool,
}

/// Which methods a rule covers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MethodMatch {
    /// `"*"`.
    Any,
    /// The listed methods; `GET` also covers `HEAD`.
    Only(Vec<Method>),
}

impl MethodMatch {
    /// Whether a request with `method` is covered.
    pub fn allows(&self, method: &Method) -> bool {
        match self {
            MethodMatch::Any => true,
            MethodMatch::Only(list) => {
                list.contains(method) || (*method == Method::HEAD && list.contains(&Method::GET))
            }
        }
    }
}

/// Where an id is read from in the request (`"path:id"`, `"query:q"`, `"header:x-h"`,
/// `"body:/p"`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IdSource {
    /// A template parameter, percent-decoded.
    Path(String),
    /// Every value of a query parameter (form-decoded).
    Query(String),
    /// Every value of a request header, trimmed.
    Header(HeaderName),
    /// A pointer into the JSON request body.
    Body(JsonPointer),
}

/// `[query]`: the auditor gRPC service (always TLS with client certificates).
#[derive(Clone, Debug, PartialEq)]
pub struct QueryConfig {
    pub address: SocketAddr,
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    pub client_ca_file: PathBuf,
    pub auditors: Vec<Auditor>,
}

/// One `[[query.auditor]]`: a person allowed to query the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Auditor {
    pub name: String,
    pub matcher: AuditorMatch,
    pub role: AuditorRole,
}

/// How an auditor's client certificate is recognised.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuditorMatch {
    /// `cn:<subject common name>`.
    CommonName(String),
    /// `san:<email or DNS subject alternative name>`.
    SubjectAltName(String),
}

/// What an auditor is there as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuditorRole {
    /// Professional standards or information management.
    Auditor,
    /// The data protection officer.
    Dpo,
    /// The Information Commissioner (s62(5)).
    Commissioner,
}

/// `[admin]`: health, metrics and published checkpoints.
#[derive(Clone, Debug, PartialEq)]
pub struct AdminConfig {
    pub address: SocketAddr,
    /// Where signed checkpoints are also written as files, for publication.
    pub checkpoint_dir: Option<PathBuf>,
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

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

/// Why [`Config::load`] failed.
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

// ---------------------------------------------------------------------------------------------
// Entry points
// ---------------------------------------------------------------------------------------------

/// The shipped example; the demo's routes come from it.
const EXAMPLE: &str = include_str!("../config/sidecar.example.toml");

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
                ..example.identity
            },
            justification: example.justification,
            limits: example.limits,
            routes: example.routes,
            query: None,
            admin: None,
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
        if let Some(tls) = &self.listen.tls {
            file("listen.tls.cert_file", &tls.cert_file);
            file("listen.tls.key_file", &tls.key_file);
            if let Some(ca) = &tls.client_ca_file {
                file("listen.tls.client_ca_file", ca);
            }
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

fn problem(path: &str, message: impl Into<String>) -> Problem {
    Problem {
        path: path.to_owned(),
        message: message.into(),
    }
}

// ---------------------------------------------------------------------------------------------
// Raw (as written) structures
// ---------------------------------------------------------------------------------------------

/// Top level: each section is checked on its own so one bad section cannot hide another.
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
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLog {
    data_dir: Option<String>,
    key_file: Option<String>,
    origin: Option<String>,
    queue_capacity: Option<i64>,
    queue_wait_ms: Option<i64>,
    max_batch: Option<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawListen {
    address: Option<String>,
    tls: Option<toml::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServerTls {
    cert_file: Option<String>,
    key_file: Option<String>,
    client_ca_file: Option<String>,
    client_auth: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUpstream {
    url: Option<String>,
    ca_file: Option<String>,
    client_cert_file: Option<String>,
    client_key_file: Option<String>,
    connect_timeout_ms: Option<i64>,
    response_timeout_ms: Option<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIdentity {
    sources: Option<Vec<String>>,
    certificate_field: Option<String>,
    header: Option<String>,
    display_name_header: Option<String>,
    roles_header: Option<String>,
    trusted_peers: Option<Vec<String>>,
    required: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawJustification {
    purpose_header: Option<String>,
    text_header: Option<String>,
    case_header: Option<String>,
    required_for: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    max_request_body_bytes: Option<i64>,
    max_buffered_response_bytes: Option<i64>,
    max_header_bytes: Option<i64>,
    request_timeout_ms: Option<i64>,
    max_connections: Option<i64>,
    shutdown_grace_ms: Option<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoutes {
    strict: Option<bool>,
    rule: Option<Vec<toml::Value>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    name: Option<String>,
    /// A string or a list of strings.
    method: Option<toml::Value>,
    path: Option<String>,
    operation: Option<String>,
    subjects: Option<Vec<String>>,
    records: Option<Vec<String>>,
    recipients: Option<Vec<String>>,
    returned_subjects: Option<Vec<String>>,
    returned_records: Option<Vec<String>>,
    justification_required: Option<bool>,
    stream_request: Option<bool>,
    stream_response: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawQuery {
    address: Option<String>,
    cert_file: Option<String>,
    key_file: Option<String>,
    client_ca_file: Option<String>,
    auditor: Option<Vec<toml::Value>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAuditor {
    name: Option<String>,
    #[serde(rename = "match")]
    matcher: Option<String>,
    role: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAdmin {
    address: Option<String>,
    checkpoint_dir: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// Raw → typed
// ---------------------------------------------------------------------------------------------

/// Collects problems while checking; `None` from a checker means a problem was recorded.
struct Checker<'a> {
    problems: Vec<Problem>,
    reported: HashSet<String>,
    base: Option<&'a Path>,
}

fn parse(text: &str, base: Option<&Path>) -> Result<Config, ConfigError> {
    let mut c = Checker {
        problems: Vec::new(),
        reported: HashSet::new(),
        base,
    };
    let config = c.config(text);
    match config {
        Some(config) if c.problems.is_empty() => Ok(config),
        _ => Err(ConfigError {
            problems: c.problems,
        }),
    }
}

fn at(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

impl Checker<'_> {
    fn push(&mut self, path: &str, message: impl Into<String>) {
        self.reported.insert(path.to_owned());
        self.problems.push(problem(path, message));
    }

    /// Deserializes one table, reporting every unknown key and every mistyped value (each with
    /// its key path) rather than stopping at the first.
    fn table<T: DeserializeOwned>(&mut self, path: &str, value: toml::Value) -> Option<T> {
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

    fn required<T>(&mut self, path: &str, value: Option<T>) -> Option<T> {
        if value.is_none() && !self.reported.contains(path) {
            self.push(path, "is required");
        }
        value
    }

    fn positive(&mut self, path: &str, value: Option<i64>, default: usize) -> usize {
        match value {
            None => default,
            Some(v) if v > 0 => usize::try_from(v).unwrap_or(usize::MAX),
            Some(v) => {
                self.push(path, format!("must be greater than 0 (got {v})"));
                default
            }
        }
    }

    fn millis(&mut self, path: &str, value: Option<i64>, default_ms: u64) -> Duration {
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

    fn file(&mut self, path: &str, value: Option<String>) -> Option<PathBuf> {
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

    fn socket(&mut self, path: &str, value: &str) -> Option<SocketAddr> {
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

    fn header(&mut self, path: &str, value: &str) -> Option<HeaderName> {
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

    fn operation(&mut self, path: &str, value: &str) -> Option<Operation> {
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

    /// Checks the whole document: each section, then the rules that span sections.
    fn config(&mut self, text: &str) -> Option<Config> {
        let doc = match text.parse::<toml::Table>() {
            Ok(doc) => doc,
            Err(e) => {
                self.push("", e.to_string().trim_end().to_owned());
                return None;
            }
        };
        let raw: RawConfig = self.table("", toml::Value::Table(doc))?;

        let log = self
            .required("log", raw.log)
            .and_then(|v| self.table("log", v))
            .and_then(|r| self.log(r));
        let listen = match raw.listen {
            Some(v) => self.table("listen", v).and_then(|r| self.listen(r)),
            None => self.listen(RawListen {
                address: None,
                tls: None,
            }),
        };
        let upstream = self
            .required("upstream", raw.upstream)
            .and_then(|v| self.table("upstream", v))
            .and_then(|r| self.upstream(r));
        let identity = self
            .required("identity", raw.identity)
            .and_then(|v| self.table("identity", v))
            .and_then(|r| self.identity(r));
        let justification = match raw.justification {
            Some(v) => self
                .table("justification", v)
                .and_then(|r| self.justification(r)),
            None => Some(JustificationConfig::default()),
        };
        let limits = match raw.limits {
            Some(v) => self.table("limits", v).map(|r| self.limits(r)),
            None => Some(LimitsConfig::default()),
        };
        let routes = match raw.routes {
            Some(v) => self.table("routes", v).and_then(|r| self.routes(r)),
            None => Some(RoutesConfig::default()),
        };
        let query = raw
            .query
            .map(|v| self.table("query", v).and_then(|r| self.query(r)));
        let admin = raw
            .admin
            .map(|v| self.table("admin", v).and_then(|r| self.admin(r)));

        // Cross-section checks, where both sides parsed.
        if let (Some(listen), Some(identity)) = (&listen, &identity)
            && identity
                .sources
                .contains(&IdentitySource::ClientCertificate)
            && listen
                .tls
                .as_ref()
                .is_none_or(|t| t.client_auth == ClientAuth::None)
        {
            self.push(
                "identity.sources",
                "\"client_certificate\" needs [listen.tls] with client_ca_file and \
                 client_auth = \"optional\" or \"required\"",
            );
        }
        if let (Some(identity), Some(justification)) = (&identity, &justification) {
            self.distinct_headers(identity, justification);
        }
        if let Some(listen) = &listen {
            let mut taken = vec![("listen.address", listen.address)];
            if let Some(Some(q)) = &query {
                taken.push(("query.address", q.address));
            }
            if let Some(Some(a)) = &admin {
                taken.push(("admin.address", a.address));
            }
            for (i, (path, addr)) in taken.iter().enumerate() {
                if let Some((other, _)) = taken[..i].iter().find(|(_, a)| a == addr) {
                    self.push(path, format!("{addr} is already used by {other}"));
                }
            }
        }

        Some(Config {
            log: log?,
            listen: listen?,
            upstream: upstream?,
            identity: identity?,
            justification: justification?,
            limits: limits?,
            routes: routes?,
            // Present-but-invalid sections stop here; absent ones stay `None`.
            query: query.map_or(Some(None), |q| q.map(Some))?,
            admin: admin.map_or(Some(None), |a| a.map(Some))?,
        })
    }

    fn log(&mut self, raw: RawLog) -> Option<LogConfig> {
        let data_dir = self.file("log.data_dir", raw.data_dir);
        let data_dir = self.required("log.data_dir", data_dir);
        let key_file = self.file("log.key_file", raw.key_file);
        let key_file = self.required("log.key_file", key_file);
        let origin = self.required("log.origin", raw.origin);
        if let Some(o) = &origin
            && (o.is_empty()
                || o.contains('+')
                || o.chars().any(|c| c.is_whitespace() || c.is_control()))
        {
            self.push(
                "log.origin",
                "must be non-empty with no spaces, '+' or control characters \
                 (it is the checkpoint origin and signing key name), e.g. \"records.example.police.uk/s62\"",
            );
        }
        let queue_capacity = self.positive("log.queue_capacity", raw.queue_capacity, 16384);
        let queue_wait = self.millis("log.queue_wait_ms", raw.queue_wait_ms, 2000);
        let max_batch = self.positive("log.max_batch", raw.max_batch, 4096);
        if max_batch > queue_capacity {
            self.push(
                "log.max_batch",
                format!("must not exceed log.queue_capacity ({queue_capacity})"),
            );
        }
        Some(LogConfig {
            data_dir: data_dir?,
            key_file: key_file?,
            origin: origin?,
            queue_capacity,
            queue_wait,
            max_batch,
        })
    }

    fn listen(&mut self, raw: RawListen) -> Option<ListenConfig> {
        let address = self.socket(
            "listen.address",
            raw.address.as_deref().unwrap_or("127.0.0.1:8443"),
        );
        let tls = match raw.tls {
            None => Some(None),
            Some(v) => self
                .table::<RawServerTls>("listen.tls", v)
                .and_then(|t| self.server_tls(t))
                .map(Some),
        };
        Some(ListenConfig {
            address: address?,
            tls: tls?,
        })
    }

    fn server_tls(&mut self, raw: RawServerTls) -> Option<ServerTls> {
        let cert_file = self.file("listen.tls.cert_file", raw.cert_file);
        let cert_file = self.required("listen.tls.cert_file", cert_file);
        let key_file = self.file("listen.tls.key_file", raw.key_file);
        let key_file = self.required("listen.tls.key_file", key_file);
        let client_ca_file = self.file("listen.tls.client_ca_file", raw.client_ca_file);
        let client_auth = match raw.client_auth.as_deref() {
            None if client_ca_file.is_some() => Some(ClientAuth::Required),
            None | Some("none") => Some(ClientAuth::None),
            Some("optional") => Some(ClientAuth::Optional),
            Some("required") => Some(ClientAuth::Required),
            Some(other) => {
                self.push(
                    "listen.tls.client_auth",
                    format!("{other:?} is not one of \"none\", \"optional\", \"required\""),
                );
                None
            }
        };
        match (client_auth, &client_ca_file) {
            (Some(ClientAuth::None), Some(_)) => self.push(
                "listen.tls.client_ca_file",
                "is set but client_auth = \"none\"; remove it or ask for client certificates",
            ),
            (Some(ClientAuth::Optional | ClientAuth::Required), None) => self.push(
                "listen.tls.client_ca_file",
                "is required to verify client certificates (client_auth is not \"none\")",
            ),
            _ => {}
        }
        Some(ServerTls {
            cert_file: cert_file?,
            key_file: key_file?,
            client_ca_file,
            client_auth: client_auth?,
        })
    }

    fn upstream(&mut self, raw: RawUpstream) -> Option<UpstreamConfig> {
        let url = self.required("upstream.url", raw.url);
        let url = url.and_then(|u| self.upstream_url(&u));
        let https = url
            .as_ref()
            .is_some_and(|u| u.scheme_str() == Some("https"));
        let ca_file = self.file("upstream.ca_file", raw.ca_file);
        let cert = self.file("upstream.client_cert_file", raw.client_cert_file);
        let key = self.file("upstream.client_key_file", raw.client_key_file);
        let client_identity = match (cert, key) {
            (Some(cert_file), Some(key_file)) => Some(ClientIdentityFiles {
                cert_file,
                key_file,
            }),
            (Some(_), None) => {
                self.push(
                    "upstream.client_key_file",
                    "is required with upstream.client_cert_file",
                );
                None
            }
            (None, Some(_)) => {
                self.push(
                    "upstream.client_cert_file",
                    "is required with upstream.client_key_file",
                );
                None
            }
            (None, None) => None,
        };
        if url.is_some() && !https {
            for (key, set) in [
                ("upstream.ca_file", ca_file.is_some()),
                ("upstream.client_cert_file", client_identity.is_some()),
            ] {
                if set {
                    self.push(key, "TLS files are only used with an https:// upstream url");
                }
            }
        }
        let connect_timeout =
            self.millis("upstream.connect_timeout_ms", raw.connect_timeout_ms, 2000);
        let response_timeout = self.millis(
            "upstream.response_timeout_ms",
            raw.response_timeout_ms,
            30000,
        );
        Some(UpstreamConfig {
            url: url?,
            ca_file,
            client_identity,
            connect_timeout,
            response_timeout,
        })
    }

    fn upstream_url(&mut self, text: &str) -> Option<Uri> {
        let path = "upstream.url";
        let Ok(url) = text.parse::<Uri>() else {
            self.push(path, format!("{text:?} is not a URL"));
            return None;
        };
        if !matches!(url.scheme_str(), Some("http" | "https")) {
            self.push(
                path,
                format!("{text:?} must start with http:// or https://"),
            );
            return None;
        }
        if url.authority().is_none_or(|a| a.host().is_empty()) {
            self.push(path, format!("{text:?} has no host"));
            return None;
        }
        if url.authority().is_some_and(|a| a.as_str().contains('@')) {
            self.push(path, "must not contain credentials");
            return None;
        }
        if url.path_and_query().is_some_and(|pq| pq.as_str() != "/") {
            self.push(
                path,
                "must not have a path or query (requests are forwarded with their own path)",
            );
            return None;
        }
        Some(url)
    }

    fn identity(&mut self, raw: RawIdentity) -> Option<IdentityConfig> {
        let sources = self.required("identity.sources", raw.sources);
        let sources = sources.and_then(|list| {
            if list.is_empty() {
                self.push("identity.sources", "must name at least one source");
                return None;
            }
            let mut out = Vec::new();
            let mut ok = true;
            for (i, s) in list.iter().enumerate() {
                let path = format!("identity.sources[{i}]");
                let source = match s.as_str() {
                    "client_certificate" => IdentitySource::ClientCertificate,
                    "trusted_header" => IdentitySource::TrustedHeader,
                    other => {
                        self.push(
                            &path,
                            format!(
                                "unknown source {other:?} (expected \"client_certificate\" or \
                                 \"trusted_header\")"
                            ),
                        );
                        ok = false;
                        continue;
                    }
                };
                if out.contains(&source) {
                    self.push(&path, format!("{s:?} is listed twice"));
                    ok = false;
                }
                out.push(source);
            }
            ok.then_some(out)
        });
        let certificate_field = match raw.certificate_field.as_deref() {
            None | Some("cn") => Some(CertificateField::CommonName),
            Some("san") => Some(CertificateField::SubjectAltName),
            Some(other) => {
                self.push(
                    "identity.certificate_field",
                    format!("{other:?} is not \"cn\" or \"san\""),
                );
                None
            }
        };
        let header = self.header(
            "identity.header",
            raw.header.as_deref().unwrap_or("x-s62-user"),
        );
        let display_name_header = match raw.display_name_header {
            Some(h) => self.header("identity.display_name_header", &h).map(Some),
            None => Some(None),
        };
        let roles_header = match raw.roles_header {
            Some(h) => self.header("identity.roles_header", &h).map(Some),
            None => Some(None),
        };
        let mut trusted_peers = Vec::new();
        let mut peers_ok = true;
        for (i, p) in raw.trusted_peers.iter().flatten().enumerate() {
            match p.parse::<IpCidr>() {
                Ok(net) => trusted_peers.push(net),
                Err(e) => {
                    self.push(
                        &format!("identity.trusted_peers[{i}]"),
                        format!("{p:?}: {e}"),
                    );
                    peers_ok = false;
                }
            }
        }
        if let Some(sources) = &sources {
            let header_source = sources.contains(&IdentitySource::TrustedHeader);
            if header_source && raw.trusted_peers.as_ref().is_none_or(Vec::is_empty) {
                self.push(
                    "identity.trusted_peers",
                    "\"trusted_header\" needs at least one trusted peer (the gateway's address); \
                     headers from any other peer are ignored",
                );
            }
            if !header_source && raw.trusted_peers.as_ref().is_some_and(|v| !v.is_empty()) {
                self.push(
                    "identity.trusted_peers",
                    "has no effect unless identity.sources includes \"trusted_header\"",
                );
            }
        }
        Some(IdentityConfig {
            sources: sources?,
            certificate_field: certificate_field?,
            header: header?,
            display_name_header: display_name_header?,
            roles_header: roles_header?,
            trusted_peers: peers_ok.then_some(trusted_peers)?,
            required: raw.required.unwrap_or(true),
        })
    }

    fn justification(&mut self, raw: RawJustification) -> Option<JustificationConfig> {
        let d = JustificationConfig::default();
        let header = |c: &mut Self, key: &str, v: Option<String>, default: HeaderName| match v {
            Some(h) => c.header(&format!("justification.{key}"), &h),
            None => Some(default),
        };
        let purpose_header = header(self, "purpose_header", raw.purpose_header, d.purpose_header);
        let text_header = header(self, "text_header", raw.text_header, d.text_header);
        let case_header = header(self, "case_header", raw.case_header, d.case_header);
        let required_for = match raw.required_for {
            None => Some(d.required_for),
            Some(list) => {
                let mut out = Vec::new();
                let mut ok = true;
                for (i, label) in list.iter().enumerate() {
                    match self.operation(&format!("justification.required_for[{i}]"), label) {
                        Some(op) if !out.contains(&op) => out.push(op),
                        Some(_) => {}
                        None => ok = false,
                    }
                }
                ok.then_some(out)
            }
        };
        Some(JustificationConfig {
            purpose_header: purpose_header?,
            text_header: text_header?,
            case_header: case_header?,
            required_for: required_for?,
        })
    }

    fn distinct_headers(&mut self, identity: &IdentityConfig, j: &JustificationConfig) {
        let mut named: Vec<(&str, &HeaderName)> = vec![("identity.header", &identity.header)];
        if let Some(h) = &identity.display_name_header {
            named.push(("identity.display_name_header", h));
        }
        if let Some(h) = &identity.roles_header {
            named.push(("identity.roles_header", h));
        }
        named.push(("justification.purpose_header", &j.purpose_header));
        named.push(("justification.text_header", &j.text_header));
        named.push(("justification.case_header", &j.case_header));
        for (i, (path, h)) in named.iter().enumerate() {
            if let Some((other, _)) = named[..i].iter().find(|(_, o)| o == h) {
                self.push(path, format!("{h:?} is already used by {other}"));
            }
        }
    }

    fn limits(&mut self, raw: RawLimits) -> LimitsConfig {
        let d = LimitsConfig::default();
        LimitsConfig {
            max_request_body_bytes: self.positive(
                "limits.max_request_body_bytes",
                raw.max_request_body_bytes,
                d.max_request_body_bytes,
            ),
            max_buffered_response_bytes: self.positive(
                "limits.max_buffered_response_bytes",
                raw.max_buffered_response_bytes,
                d.max_buffered_response_bytes,
            ),
            max_header_bytes: self.positive(
                "limits.max_header_bytes",
                raw.max_header_bytes,
                d.max_header_bytes,
            ),
            request_timeout: self.millis(
                "limits.request_timeout_ms",
                raw.request_timeout_ms,
                30000,
            ),
            max_connections: self.positive(
                "limits.max_connections",
                raw.max_connections,
                d.max_connections,
            ),
            shutdown_grace: self.millis("limits.shutdown_grace_ms", raw.shutdown_grace_ms, 30000),
        }
    }

    fn routes(&mut self, raw: RawRoutes) -> Option<RoutesConfig> {
        let mut rules = Vec::new();
        let mut ok = true;
        let mut names: Vec<(String, usize)> = Vec::new();
        for (i, value) in raw.rule.into_iter().flatten().enumerate() {
            let path = format!("routes.rule[{i}]");
            let Some(raw_rule) = self.table::<RawRule>(&path, value) else {
                ok = false;
                continue;
            };
            if let Some(name) = &raw_rule.name {
                if let Some((_, first)) = names.iter().find(|(n, _)| n == name) {
                    self.push(
                        &format!("{path}.name"),
                        format!("{name:?} is already the name of routes.rule[{first}]"),
                    );
                    ok = false;
                }
                names.push((name.clone(), i));
            }
            match self.rule(&path, raw_rule) {
                Some(rule) => rules.push(rule),
                None => ok = false,
            }
        }
        ok.then_some(RoutesConfig {
            strict: raw.strict.unwrap_or(false),
            rules,
        })
    }

    fn rule(&mut self, path: &str, raw: RawRule) -> Option<RouteRule> {
        let before = self.problems.len();
        let name = self.required(&at(path, "name"), raw.name);
        if name.as_ref().is_some_and(|n| n.trim().is_empty()) {
            self.push(&at(path, "name"), "must not be empty");
        }
        let methods = self
            .required(&at(path, "method"), raw.method)
            .and_then(|m| self.methods(&at(path, "method"), m));
        let template = self.required(&at(path, "path"), raw.path).and_then(|t| {
            match PathTemplate::parse(&t) {
                Ok(t) => Some(t),
                Err(e) => {
                    self.push(&at(path, "path"), e.to_string());
                    None
                }
            }
        });
        let operation = self
            .required(&at(path, "operation"), raw.operation)
            .and_then(|o| self.operation(&at(path, "operation"), &o));

        let sources = |c: &mut Self, key: &str, list: Option<Vec<String>>| -> Vec<IdSource> {
            let mut out = Vec::new();
            for (i, s) in list.into_iter().flatten().enumerate() {
                if let Some(src) = c.id_source(&format!("{path}.{key}[{i}]"), &s, template.as_ref())
                {
                    out.push(src);
                }
            }
            out
        };
        let subjects = sources(self, "subjects", raw.subjects);
        let records = sources(self, "records", raw.records);
        let recipients = sources(self, "recipients", raw.recipients);
        let returned = |c: &mut Self, key: &str, list: Option<Vec<String>>| {
            let mut out = Vec::new();
            for (i, s) in list.into_iter().flatten().enumerate() {
                if let Some(p) = c.response_pointer(&format!("{path}.{key}[{i}]"), &s) {
                    out.push(p);
                }
            }
            out
        };
        let returned_subjects = returned(self, "returned_subjects", raw.returned_subjects);
        let returned_records = returned(self, "returned_records", raw.returned_records);

        let stream_request = raw.stream_request.unwrap_or(false);
        let stream_response = raw.stream_response.unwrap_or(false);
        let body_sources = [&subjects, &records, &recipients]
            .into_iter()
            .flatten()
            .any(|s| matches!(s, IdSource::Body(_)));
        if stream_request && body_sources {
            self.push(
                &at(path, "stream_request"),
                "a streamed request body cannot be read: remove the \"body:\" sources or stream_request",
            );
        }
        if stream_response && !(returned_subjects.is_empty() && returned_records.is_empty()) {
            self.push(
                &at(path, "stream_response"),
                "a streamed response cannot be read: remove returned_subjects/returned_records or stream_response",
            );
        }
        if operation == Some(Operation::Disclosure) && recipients.is_empty() {
            self.push(
                &at(path, "recipients"),
                "a disclosure rule must say where the recipients come from (s62(3))",
            );
        }
        if self.problems.len() > before {
            return None;
        }
        Some(RouteRule {
            name: name?,
            methods: methods?,
            path: template?,
            operation: operation?,
            subjects,
            records,
            recipients,
            returned_subjects,
            returned_records,
            justification_required: raw.justification_required,
            stream_request,
            stream_response,
        })
    }

    fn methods(&mut self, path: &str, value: toml::Value) -> Option<MethodMatch> {
        let list: Vec<(String, String)> = match value {
            toml::Value::String(s) => vec![(path.to_owned(), s)],
            toml::Value::Array(items) => {
                let mut list = Vec::new();
                for (i, item) in items.into_iter().enumerate() {
                    let p = format!("{path}[{i}]");
                    match item {
                        toml::Value::String(s) => list.push((p, s)),
                        other => {
                            self.push(&p, format!("expected a string, found {}", other.type_str()))
                        }
                    }
                }
                if list.is_empty() {
                    self.push(path, "must name at least one method");
                    return None;
                }
                list
            }
            other => {
                self.push(
                    path,
                    format!(
                        "expected a method or a list of methods, found {}",
                        other.type_str()
                    ),
                );
                return None;
            }
        };
        if list.iter().any(|(_, m)| m == "*") {
            if list.len() > 1 {
                self.push(path, "\"*\" already covers every method; list nothing else");
                return None;
            }
            return Some(MethodMatch::Any);
        }
        let mut methods = Vec::new();
        let mut ok = true;
        for (p, m) in list {
            if m.bytes().any(|b| b.is_ascii_lowercase()) {
                self.push(
                    &p,
                    format!(
                        "methods are case-sensitive; write {:?}",
                        m.to_ascii_uppercase()
                    ),
                );
                ok = false;
                continue;
            }
            match Method::from_bytes(m.as_bytes()) {
                Ok(method) if !m.is_empty() => {
                    if !methods.contains(&method) {
                        methods.push(method);
                    }
                }
                _ => {
                    self.push(&p, format!("{m:?} is not an HTTP method token"));
                    ok = false;
                }
            }
        }
        ok.then_some(MethodMatch::Only(methods))
    }

    fn id_source(
        &mut self,
        path: &str,
        text: &str,
        template: Option<&PathTemplate>,
    ) -> Option<IdSource> {
        let Some((kind, arg)) = text.split_once(':') else {
            self.push(
                path,
                format!("{text:?} must be \"path:<param>\", \"query:<name>\", \"header:<name>\" or \"body:<json pointer>\""),
            );
            return None;
        };
        match kind {
            "path" => {
                if let Some(t) = template
                    && !t.has_param(arg)
                {
                    let params: Vec<&str> = t.params().collect();
                    self.push(
                        path,
                        format!(
                            "the template {:?} has no {{{arg}}} (its parameters: {})",
                            t.as_str(),
                            if params.is_empty() {
                                "none".to_owned()
                            } else {
                                params.join(", ")
                            }
                        ),
                    );
                    return None;
                }
                Some(IdSource::Path(arg.to_owned()))
            }
            "query" if !arg.is_empty() => Some(IdSource::Query(arg.to_owned())),
            "query" => {
                self.push(path, "\"query:\" needs a parameter name");
                None
            }
            "header" => self.header(path, arg).map(IdSource::Header),
            "body" => match JsonPointer::parse(arg) {
                Ok(p) => Some(IdSource::Body(p)),
                Err(e) => {
                    self.push(path, e.to_string());
                    None
                }
            },
            "response" => {
                self.push(
                    path,
                    "\"response:\" is read after the upstream answers; put it in returned_subjects or returned_records",
                );
                None
            }
            other => {
                self.push(
                    path,
                    format!("unknown source kind {other:?} (expected path, query, header or body)"),
                );
                None
            }
        }
    }

    fn response_pointer(&mut self, path: &str, text: &str) -> Option<JsonPointer> {
        let Some(pointer) = text.strip_prefix("response:") else {
            self.push(
                path,
                format!("{text:?} must be \"response:<json pointer>\""),
            );
            return None;
        };
        match JsonPointer::parse(pointer) {
            Ok(p) => Some(p),
            Err(e) => {
                self.push(path, e.to_string());
                None
            }
        }
    }

    fn query(&mut self, raw: RawQuery) -> Option<QueryConfig> {
        let address = self
            .required("query.address", raw.address)
            .and_then(|a| self.socket("query.address", &a));
        let cert_file = self.file("query.cert_file", raw.cert_file);
        let cert_file = self.required("query.cert_file", cert_file);
        let key_file = self.file("query.key_file", raw.key_file);
        let key_file = self.required("query.key_file", key_file);
        let client_ca_file = self.file("query.client_ca_file", raw.client_ca_file);
        let client_ca_file = self.required("query.client_ca_file", client_ca_file);
        let mut auditors: Vec<Auditor> = Vec::new();
        let mut ok = true;
        let list = raw.auditor.unwrap_or_default();
        if list.is_empty() {
            self.push(
                "query.auditor",
                "no auditor is named, so nobody could query the log; add [[query.auditor]] or remove [query]",
            );
        }
        for (i, value) in list.into_iter().enumerate() {
            let path = format!("query.auditor[{i}]");
            let Some(raw) = self.table::<RawAuditor>(&path, value) else {
                ok = false;
                continue;
            };
            match self.auditor(&path, raw) {
                Some(a) => {
                    if let Some(j) = auditors.iter().position(|o| o.name == a.name) {
                        self.push(
                            &format!("{path}.name"),
                            format!("{:?} is already query.auditor[{j}]", a.name),
                        );
                        ok = false;
                    } else if let Some(j) = auditors.iter().position(|o| o.matcher == a.matcher) {
                        self.push(
                            &format!("{path}.match"),
                            format!("the same certificate already matches query.auditor[{j}]"),
                        );
                        ok = false;
                    }
                    auditors.push(a);
                }
                None => ok = false,
            }
        }
        Some(QueryConfig {
            address: address?,
            cert_file: cert_file?,
            key_file: key_file?,
            client_ca_file: client_ca_file?,
            auditors: ok.then_some(auditors)?,
        })
    }

    fn auditor(&mut self, path: &str, raw: RawAuditor) -> Option<Auditor> {
        let name = self.required(&at(path, "name"), raw.name);
        if name.as_ref().is_some_and(|n| n.trim().is_empty()) {
            self.push(&at(path, "name"), "must not be empty");
            return None;
        }
        let matcher = self
            .required(&at(path, "match"), raw.matcher)
            .and_then(|m| match m.split_once(':') {
                Some(("cn", v)) if !v.is_empty() => Some(AuditorMatch::CommonName(v.to_owned())),
                Some(("san", v)) if !v.is_empty() => Some(AuditorMatch::SubjectAltName(v.to_owned())),
                _ => {
                    self.push(
                        &at(path, "match"),
                        format!("{m:?} must be \"cn:<common name>\" or \"san:<subject alternative name>\""),
                    );
                    None
                }
            });
        let role = self
            .required(&at(path, "role"), raw.role)
            .and_then(|r| match r.as_str() {
                "auditor" => Some(AuditorRole::Auditor),
                "dpo" => Some(AuditorRole::Dpo),
                "commissioner" => Some(AuditorRole::Commissioner),
                other => {
                    self.push(
                        &at(path, "role"),
                        format!("{other:?} is not \"auditor\", \"dpo\" or \"commissioner\""),
                    );
                    None
                }
            });
        Some(Auditor {
            name: name?,
            matcher: matcher?,
            role: role?,
        })
    }

    fn admin(&mut self, raw: RawAdmin) -> Option<AdminConfig> {
        let address = self.socket(
            "admin.address",
            raw.address.as_deref().unwrap_or("127.0.0.1:9090"),
        );
        let checkpoint_dir = self.file("admin.checkpoint_dir", raw.checkpoint_dir);
        Some(AdminConfig {
            address: address?,
            checkpoint_dir,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The smallest valid config: plain HTTP, identity from a gateway on loopback.
    const MINIMAL: &str = r#"
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

    fn problems(text: &str) -> Vec<String> {
        match Config::from_toml_str(text) {
            Ok(_) => panic!("expected problems"),
            Err(e) => e.problems.iter().map(ToString::to_string).collect(),
        }
    }

    fn has(problems: &[String], path_and_words: &str) -> bool {
        problems.iter().any(|p| p.starts_with(path_and_words))
    }

    #[test]
    fn a_minimal_config_gets_the_documented_defaults() {
        let c = Config::from_toml_str(MINIMAL).expect("valid");
        assert_eq!(c.listen.address, "127.0.0.1:8443".parse().expect("addr"));
        assert!(c.listen.tls.is_none());
        assert_eq!(c.log.queue_capacity, 16384);
        assert_eq!(c.log.queue_wait, Duration::from_millis(2000));
        assert_eq!(c.log.max_batch, 4096);
        assert_eq!(c.upstream.connect_timeout, Duration::from_millis(2000));
        assert_eq!(c.upstream.response_timeout, Duration::from_millis(30000));
        assert!(!c.upstream.is_https());
        assert_eq!(c.identity.header, "x-s62-user");
        assert!(c.identity.required);
        assert_eq!(c.justification, JustificationConfig::default());
        assert_eq!(c.limits, LimitsConfig::default());
        assert!(!c.routes.strict && c.routes.rules.is_empty());
        assert!(c.query.is_none() && c.admin.is_none());
        assert_eq!(
            c.log.data_dir,
            PathBuf::from("data"),
            "no base folder: left as written"
        );
    }

    #[test]
    fn relative_paths_resolve_against_the_config_folder() {
        let c = Config::from_toml_str_in(MINIMAL, Path::new("/etc/s62")).expect("valid");
        assert_eq!(c.log.data_dir, PathBuf::from("/etc/s62/data"));
        assert_eq!(c.log.key_file, PathBuf::from("/etc/s62/log.key"));
    }

    #[test]
    fn load_reads_a_file_and_resolves_paths_next_to_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s62.toml");
        std::fs::write(&path, MINIMAL).expect("write");
        let c = Config::load(&path).expect("loads");
        assert_eq!(c.log.key_file, dir.path().join("log.key"));
        assert!(matches!(
            Config::load(&dir.path().join("missing.toml")),
            Err(LoadError::Read { .. })
        ));
    }

    #[test]
    fn every_problem_is_reported_at_once_with_its_key_path() {
        let text = r#"
colour = "blue"

[log]
data_dir = ""
origin = "has space"
queue_capacity = 0
queue_wait_ms = -5
typo = 1

[listen]
address = "localhost:80"

[listen.tls]
cert_file = "c.pem"
key_file = "k.pem"
client_auth = "sometimes"

[upstream]
url = "ftp://records"
connect_timeout_ms = "soon"

[identity]
sources = ["trusted_header", "password"]
header = "X-User"
trusted_peers = ["10.0.0.1/8", "nonsense"]

[justification]
required_for = ["consultation", "peeking"]

[limits]
max_request_body_bytes = 0

[routes]
strict = true

[[routes.rule]]
name = "a"
method = "get"
path = "/people/{id}/{id}"
operation = "looking"

[[routes.rule]]
name = "a"
method = "GET"
path = "/people/{id}"
operation = "consultation"
subjects = ["path:person", "body:people", "response:/id", "cookie:x"]
returned_subjects = ["/results/*/id"]

[[routes.rule]]
name = "export"
method = "POST"
path = "/exports"
operation = "disclosure"
colour = "red"

[query]
address = "0.0.0.0:8444"
cert_file = "q.crt"
key_file = "q.key"

[[query.auditor]]
name = "Alice"
match = "email:alice@example"
role = "superuser"
"#;
        let p = problems(text);
        for expected in [
            "colour: unknown key",
            "log.typo: unknown key",
            "log.data_dir: must not be empty",
            "log.key_file: is required",
            "log.origin: must be non-empty",
            "log.queue_capacity: must be greater than 0",
            "log.queue_wait_ms: must be greater than 0",
            "listen.address: \"localhost:80\" is not an IP socket address",
            "listen.tls.client_auth: \"sometimes\"",
            "upstream.url: \"ftp://records\" must start with http:// or https://",
            "upstream.connect_timeout_ms: invalid type",
            "identity.sources[1]: unknown source \"password\"",
            "identity.header: header names are written in lower case",
            "identity.trusted_peers[0]: \"10.0.0.1/8\": host bits are set; did you mean 10.0.0.0/8?",
            "identity.trusted_peers[1]: \"nonsense\"",
            "justification.required_for[1]: unknown operation \"peeking\"",
            "limits.max_request_body_bytes: must be greater than 0",
            "routes.rule[0].method: methods are case-sensitive; write \"GET\"",
            "routes.rule[0].path: parameter {id} appears more than once",
            "routes.rule[0].operation: unknown operation \"looking\"",
            "routes.rule[1].name: \"a\" is already the name of routes.rule[0]",
            "routes.rule[1].subjects[0]: the template \"/people/{id}\" has no {person}",
            "routes.rule[1].subjects[1]: a JSON pointer must be empty or start with '/'",
            "routes.rule[1].subjects[2]: \"response:\" is read after the upstream answers",
            "routes.rule[1].subjects[3]: unknown source kind \"cookie\"",
            "routes.rule[1].returned_subjects[0]: \"/results/*/id\" must be \"response:<json pointer>\"",
            "routes.rule[2].colour: unknown key",
            "routes.rule[2].recipients: a disclosure rule must say where the recipients come from",
            "query.client_ca_file: is required",
            "query.auditor[0].match: \"email:alice@example\"",
            "query.auditor[0].role: \"superuser\"",
        ] {
            assert!(
                has(&p, expected),
                "missing {expected:?} in:\n{}",
                p.join("\n")
            );
        }
    }

    #[test]
    fn the_error_lists_each_problem_on_its_own_line() {
        let err = Config::from_toml_str("[log]\nqueue_capacity = 0\n").expect_err("invalid");
        let shown = err.to_string();
        assert!(shown.starts_with("invalid configuration ("), "{shown}");
        for p in &err.problems {
            assert!(shown.lines().any(|l| l.trim() == p.to_string()), "{shown}");
        }
        assert!(shown.contains("\n  upstream: is required"), "{shown}");
        assert!(shown.contains("\n  identity: is required"), "{shown}");
    }

    #[test]
    fn a_toml_syntax_error_is_one_problem_with_its_position() {
        let p = problems("[log\n");
        assert_eq!(p.len(), 1);
        assert!(p[0].contains("line 1"), "{p:?}");
    }

    #[test]
    fn identity_sources_must_be_backed_by_tls_or_trusted_peers() {
        let p = problems(&MINIMAL.replace(
            "sources = [\"trusted_header\"]\ntrusted_peers = [\"127.0.0.1\"]",
            "sources = [\"client_certificate\", \"trusted_header\"]",
        ));
        assert!(
            has(
                &p,
                "identity.sources: \"client_certificate\" needs [listen.tls]"
            ),
            "{p:?}"
        );
        assert!(
            has(
                &p,
                "identity.trusted_peers: \"trusted_header\" needs at least one"
            ),
            "{p:?}"
        );
    }

    #[test]
    fn tls_client_auth_needs_a_ca_and_defaults_to_required_with_one() {
        let with_ca = format!(
            "{MINIMAL}\n[listen.tls]\ncert_file = \"c\"\nkey_file = \"k\"\nclient_ca_file = \"ca\"\n"
        );
        let c = Config::from_toml_str(&with_ca).expect("valid");
        assert_eq!(
            c.listen.tls.map(|t| t.client_auth),
            Some(ClientAuth::Required)
        );
        let p = problems(&format!(
            "{MINIMAL}\n[listen.tls]\ncert_file = \"c\"\nkey_file = \"k\"\nclient_auth = \"required\"\n"
        ));
        assert!(has(&p, "listen.tls.client_ca_file: is required"), "{p:?}");
    }

    #[test]
    fn upstream_tls_files_need_https_and_come_in_pairs() {
        let p = problems(&MINIMAL.replace(
            "url = \"http://127.0.0.1:9000\"",
            "url = \"http://127.0.0.1:9000/api\"\nca_file = \"ca\"\nclient_cert_file = \"c\"",
        ));
        assert!(has(&p, "upstream.url: must not have a path"), "{p:?}");
        assert!(
            has(&p, "upstream.client_key_file: is required with"),
            "{p:?}"
        );
        let p = problems(&MINIMAL.replace(
            "url = \"http://127.0.0.1:9000\"",
            "url = \"http://127.0.0.1:9000\"\nca_file = \"ca\"",
        ));
        assert!(
            has(
                &p,
                "upstream.ca_file: TLS files are only used with an https://"
            ),
            "{p:?}"
        );
    }

    #[test]
    fn listeners_and_role_headers_may_not_collide() {
        let p = problems(&format!(
            "{MINIMAL}\n[justification]\ncase_header = \"x-s62-user\"\n\
             [admin]\naddress = \"127.0.0.1:8443\"\n"
        ));
        assert!(
            has(
                &p,
                "justification.case_header: \"x-s62-user\" is already used by identity.header"
            ),
            "{p:?}"
        );
        assert!(
            has(
                &p,
                "admin.address: 127.0.0.1:8443 is already used by listen.address"
            ),
            "{p:?}"
        );
    }

    #[test]
    fn streaming_excludes_body_and_response_sources() {
        let p = problems(&format!(
            "{MINIMAL}\n[[routes.rule]]\nname = \"up\"\nmethod = \"POST\"\npath = \"/files/{{*rest}}\"\n\
             operation = \"collection\"\nsubjects = [\"body:/id\", \"path:rest\"]\n\
             returned_records = [\"response:/id\"]\nstream_request = true\nstream_response = true\n"
        ));
        assert!(
            has(&p, "routes.rule[0].stream_request: a streamed request body"),
            "{p:?}"
        );
        assert!(
            has(&p, "routes.rule[0].stream_response: a streamed response"),
            "{p:?}"
        );
    }

    #[test]
    fn method_lists_and_wildcards_parse() {
        let c = Config::from_toml_str(&format!(
            "{MINIMAL}\n[[routes.rule]]\nname = \"w\"\nmethod = [\"PUT\", \"PATCH\", \"PUT\"]\n\
             path = \"/x\"\noperation = \"alteration\"\n\
             [[routes.rule]]\nname = \"any\"\nmethod = \"*\"\npath = \"/y\"\noperation = \"consultation\"\n"
        ))
        .expect("valid");
        assert_eq!(
            c.routes.rules[0].methods,
            MethodMatch::Only(vec![Method::PUT, Method::PATCH])
        );
        assert_eq!(c.routes.rules[1].methods, MethodMatch::Any);
        assert!(MethodMatch::Only(vec![Method::GET]).allows(&Method::HEAD));
        assert!(!MethodMatch::Only(vec![Method::GET]).allows(&Method::POST));
        let p = problems(&format!(
            "{MINIMAL}\n[[routes.rule]]\nname = \"w\"\nmethod = [\"*\", \"GET\"]\npath = \"/x\"\n\
             operation = \"alteration\"\n[[routes.rule]]\nname = \"v\"\nmethod = []\npath = \"/x\"\n\
             operation = \"alteration\"\n"
        ));
        assert!(
            has(&p, "routes.rule[0].method: \"*\" already covers"),
            "{p:?}"
        );
        assert!(
            has(&p, "routes.rule[1].method: must name at least one"),
            "{p:?}"
        );
    }

    #[test]
    fn cidrs_match_ipv4_ipv6_and_mapped_addresses() {
        let net: IpCidr = "10.0.0.0/8".parse().expect("cidr");
        assert!(net.contains("10.1.2.3".parse().expect("ip")));
        assert!(net.contains("::ffff:10.1.2.3".parse().expect("ip")));
        assert!(!net.contains("11.0.0.1".parse().expect("ip")));
        let v6: IpCidr = "fd00::/8".parse().expect("cidr");
        assert!(v6.contains("fd12::1".parse().expect("ip")));
        assert!(!v6.contains("10.0.0.1".parse().expect("ip")));
        let all: IpCidr = "0.0.0.0/0".parse().expect("cidr");
        assert!(all.contains("192.0.2.1".parse().expect("ip")));
        let host: IpCidr = "::1".parse().expect("cidr");
        assert_eq!(host.to_string(), "::1/128");
        assert_eq!(
            "1.2.3.0/33".parse::<IpCidr>(),
            Err(CidrError::Prefix("33".into(), 32))
        );
    }

    #[test]
    fn the_demo_config_uses_the_example_routes_over_plain_http() {
        let c = Config::demo(
            "d".into(),
            "k".into(),
            "127.0.0.1:8080".parse().expect("addr"),
            Uri::from_static("http://127.0.0.1:9000"),
        );
        assert!(c.listen.tls.is_none());
        assert_eq!(c.identity.sources, [IdentitySource::TrustedHeader]);
        assert!(c.identity.is_trusted_peer("127.0.0.1".parse().expect("ip")));
        assert!(!c.identity.is_trusted_peer("10.0.0.1".parse().expect("ip")));
        assert!(c.routes.rules.iter().any(|r| r.name == "person-export"));
        assert!(c.query.is_none() && c.admin.is_none());
    }

    #[test]
    fn check_files_names_missing_files_by_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let c = Config::from_toml_str_in(MINIMAL, dir.path()).expect("valid");
        let p: Vec<String> = c.check_files().iter().map(ToString::to_string).collect();
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].starts_with("log.key_file: "), "{p:?}");
        std::fs::write(dir.path().join("log.key"), b"k").expect("write");
        assert!(c.check_files().is_empty());
    }
}
