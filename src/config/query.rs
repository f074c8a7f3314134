//! `[query]`, `[[query.auditor]]` and `[query.roles.*]`: the auditor gRPC listener, who may use
//! it, and what each role may call and for which purposes.
//!
//! The role table is data: which calls and purposes each role is granted, with defaults that
//! follow DPA 2018 s62(4)/(5). The service enforces it (`query::auth`); this module only parses
//! and checks it, and must not depend on the query service, the store or the network.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

use super::check::{Checker, Section, at};
use crate::log::entry::AuditPurpose;

/// `[query]`: the auditor gRPC service (always TLS with client certificates).
#[derive(Clone, Debug, PartialEq)]
pub struct QueryConfig {
    pub address: SocketAddr,
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    pub client_ca_file: PathBuf,
    pub auditors: Vec<Auditor>,
    /// What each role may call, and for which purposes (`[query.roles.*]` over the defaults).
    pub roles: RoleTable,
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
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AuditorRole {
    /// Professional standards or information management.
    Auditor,
    /// The data protection officer.
    Dpo,
    /// The Information Commissioner (s62(5)).
    Commissioner,
}

impl AuditorRole {
    pub const ALL: [AuditorRole; 3] = [
        AuditorRole::Auditor,
        AuditorRole::Dpo,
        AuditorRole::Commissioner,
    ];

    /// Lower-case name as written in configuration (`auditor`, `dpo`, `commissioner`).
    pub fn label(self) -> &'static str {
        match self {
            AuditorRole::Auditor => "auditor",
            AuditorRole::Dpo => "dpo",
            AuditorRole::Commissioner => "commissioner",
        }
    }

    /// Parses a [`AuditorRole::label`].
    pub fn from_label(s: &str) -> Option<AuditorRole> {
        AuditorRole::ALL.into_iter().find(|r| r.label() == s)
    }
}

/// A call of the auditor service (`s62.query.v1.AuditQuery`), as named in `[query.roles.*]
/// calls` and in audit entries: the gRPC method name. A new call is added here, to
/// [`QueryCall::ALL`] and to the defaults of the roles meant to have it; the commissioner's
/// default is every call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum QueryCall {
    Search,
    GetEntry,
    LatestCheckpoint,
    CheckpointAt,
    InclusionProof,
    ConsistencyProof,
    SubjectReport,
    Export,
    RedactValues,
    ActorReport,
    CoverageReport,
    /// Alerts with their reviews (`alert` entries through the kind index).
    ListAlerts,
    /// An auditor's finding on an alert: writes an `alert-review` entry.
    ReviewAlert,
}

impl QueryCall {
    /// Every call the service answers. Each must be granted to a role to be usable.
    pub const ALL: [QueryCall; 13] = [
        QueryCall::Search,
        QueryCall::GetEntry,
        QueryCall::LatestCheckpoint,
        QueryCall::CheckpointAt,
        QueryCall::InclusionProof,
        QueryCall::ConsistencyProof,
        QueryCall::SubjectReport,
        QueryCall::Export,
        QueryCall::RedactValues,
        QueryCall::ActorReport,
        QueryCall::CoverageReport,
        QueryCall::ListAlerts,
        QueryCall::ReviewAlert,
    ];

    /// The gRPC method name (`Search`, `Export`, ...).
    pub fn name(self) -> &'static str {
        match self {
            QueryCall::Search => "Search",
            QueryCall::GetEntry => "GetEntry",
            QueryCall::LatestCheckpoint => "LatestCheckpoint",
            QueryCall::CheckpointAt => "CheckpointAt",
            QueryCall::InclusionProof => "InclusionProof",
            QueryCall::ConsistencyProof => "ConsistencyProof",
            QueryCall::SubjectReport => "SubjectReport",
            QueryCall::Export => "Export",
            QueryCall::RedactValues => "RedactValues",
            QueryCall::ActorReport => "ActorReport",
            QueryCall::CoverageReport => "CoverageReport",
            QueryCall::ListAlerts => "ListAlerts",
            QueryCall::ReviewAlert => "ReviewAlert",
        }
    }

    /// Parses a [`QueryCall::name`].
    pub fn from_name(s: &str) -> Option<QueryCall> {
        QueryCall::ALL.into_iter().find(|c| c.name() == s)
    }
}

/// What one role may do: the calls it may make and the purposes it may state. A call is
/// admitted only when both hold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoleGrant {
    pub calls: BTreeSet<QueryCall>,
    pub purposes: BTreeSet<AuditPurpose>,
}

/// The role table: one [`RoleGrant`] per role.
///
/// Defaults (each replaceable per role, per list, in `[query.roles.<role>]`):
///
/// | role | calls | purposes |
/// |---|---|---|
/// | `auditor` | search, entries, checkpoints, proofs, subject reports | lawfulness, self-monitoring, integrity-and-security |
/// | `dpo` | the auditor's, plus `Export`, `RedactValues`, `ActorReport`, `CoverageReport`, `ListAlerts`, `ReviewAlert` | every s62(4) purpose (adds criminal-proceedings) |
/// | `commissioner` | every call | `commissioner-request` only |
///
/// The Commissioner's access is the s62(5) route, so by default that is the only purpose a
/// Commissioner states: a Commissioner query logged as "self-monitoring" would misstate its
/// legal basis. Equally, only the Commissioner states `commissioner-request`; a force whose DPO
/// answers Commissioner requests by exporting for them adds it to `[query.roles.dpo] purposes`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoleTable {
    pub auditor: RoleGrant,
    pub dpo: RoleGrant,
    pub commissioner: RoleGrant,
}

impl RoleTable {
    /// The grant of `role`.
    pub fn grant(&self, role: AuditorRole) -> &RoleGrant {
        match role {
            AuditorRole::Auditor => &self.auditor,
            AuditorRole::Dpo => &self.dpo,
            AuditorRole::Commissioner => &self.commissioner,
        }
    }

    fn grant_mut(&mut self, role: AuditorRole) -> &mut RoleGrant {
        match role {
            AuditorRole::Auditor => &mut self.auditor,
            AuditorRole::Dpo => &mut self.dpo,
            AuditorRole::Commissioner => &mut self.commissioner,
        }
    }
}

impl Default for RoleTable {
    fn default() -> Self {
        use AuditPurpose as P;
        use QueryCall as C;
        let auditor_calls = [
            C::Search,
            C::GetEntry,
            C::LatestCheckpoint,
            C::CheckpointAt,
            C::InclusionProof,
            C::ConsistencyProof,
            C::SubjectReport,
        ];
        let auditor_purposes = [P::Lawfulness, P::SelfMonitoring, P::IntegrityAndSecurity];
        let dpo_extra = [
            C::Export,
            C::RedactValues,
            C::ActorReport,
            C::CoverageReport,
            // Alert review judges an officer's conduct (s62(4)(b)): the DPO's, not every
            // auditor's, by default.
            C::ListAlerts,
            C::ReviewAlert,
        ];
        RoleTable {
            auditor: RoleGrant {
                calls: auditor_calls.into_iter().collect(),
                purposes: auditor_purposes.into_iter().collect(),
            },
            dpo: RoleGrant {
                calls: auditor_calls.into_iter().chain(dpo_extra).collect(),
                purposes: auditor_purposes
                    .into_iter()
                    .chain([P::CriminalProceedings])
                    .collect(),
            },
            commissioner: RoleGrant {
                calls: QueryCall::ALL.into_iter().collect(),
                purposes: [P::CommissionerRequest].into_iter().collect(),
            },
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawQuery {
    address: Option<String>,
    cert_file: Option<String>,
    key_file: Option<String>,
    client_ca_file: Option<String>,
    auditor: Option<Vec<toml::Value>>,
    roles: Option<toml::Value>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRoles {
    auditor: Option<toml::Value>,
    dpo: Option<toml::Value>,
    commissioner: Option<toml::Value>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRoleGrant {
    calls: Option<Vec<String>>,
    purposes: Option<Vec<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAuditor {
    name: Option<String>,
    #[serde(rename = "match")]
    matcher: Option<String>,
    role: Option<String>,
}

impl Section for QueryConfig {
    const KEY: &'static str = "query";
    type Raw = RawQuery;

    fn check(raw: RawQuery, c: &mut Checker<'_>) -> Option<Self> {
        QueryConfig::check_at(Self::KEY, raw, c)
    }
}

impl QueryConfig {
    /// Checks a query table found at `table` (`query` in a sidecar's config, `hub.query` in the
    /// hub's): the same keys and rules wherever it is, each problem reported under `table`.
    pub(crate) fn check_at(table: &str, raw: RawQuery, c: &mut Checker<'_>) -> Option<Self> {
        let key = |k: &str| at(table, k);
        let address = c
            .required(&key("address"), raw.address)
            .and_then(|a| c.socket(&key("address"), &a));
        let cert_file = c.file(&key("cert_file"), raw.cert_file);
        let cert_file = c.required(&key("cert_file"), cert_file);
        let key_file = c.file(&key("key_file"), raw.key_file);
        let key_file = c.required(&key("key_file"), key_file);
        let client_ca_file = c.file(&key("client_ca_file"), raw.client_ca_file);
        let client_ca_file = c.required(&key("client_ca_file"), client_ca_file);
        let mut auditors: Vec<Auditor> = Vec::new();
        let mut ok = true;
        let list = raw.auditor.unwrap_or_default();
        if list.is_empty() {
            c.push(
                &key("auditor"),
                format!(
                    "no auditor is named, so nobody could query the log; add [[{table}.auditor]] or remove [{table}]"
                ),
            );
        }
        for (i, value) in list.into_iter().enumerate() {
            let path = format!("{table}.auditor[{i}]");
            let Some(raw) = c.table::<RawAuditor>(&path, value) else {
                ok = false;
                continue;
            };
            match auditor(&path, raw, c) {
                Some(a) => {
                    if let Some(j) = auditors.iter().position(|o| o.name == a.name) {
                        c.push(
                            &format!("{path}.name"),
                            format!("{:?} is already {table}.auditor[{j}]", a.name),
                        );
                        ok = false;
                    } else if let Some(j) = auditors.iter().position(|o| o.matcher == a.matcher) {
                        c.push(
                            &format!("{path}.match"),
                            format!("the same certificate already matches {table}.auditor[{j}]"),
                        );
                        ok = false;
                    }
                    auditors.push(a);
                }
                None => ok = false,
            }
        }
        let roles = match raw.roles {
            None => Some(RoleTable::default()),
            Some(value) => roles(&key("roles"), value, c),
        };
        Some(QueryConfig {
            address: address?,
            cert_file: cert_file?,
            key_file: key_file?,
            client_ca_file: client_ca_file?,
            auditors: ok.then_some(auditors)?,
            roles: roles?,
        })
    }
}

/// The two forms of `match`, for its error message. (A constant, so rustfmt formats the
/// `match` below the same way every time; with the literal inline it does not.)
const MATCH_FORMS: &str = "\"cn:<common name>\" or \"san:<subject alternative name>\"";

fn auditor(path: &str, raw: RawAuditor, c: &mut Checker<'_>) -> Option<Auditor> {
    let name = c.required(&at(path, "name"), raw.name);
    if name.as_ref().is_some_and(|n| n.trim().is_empty()) {
        c.push(&at(path, "name"), "must not be empty");
        return None;
    }
    let matcher =
        c.required(&at(path, "match"), raw.matcher)
            .and_then(|m| match m.split_once(':') {
                Some(("cn", v)) if !v.is_empty() => Some(AuditorMatch::CommonName(v.to_owned())),
                Some(("san", v)) if !v.is_empty() => {
                    Some(AuditorMatch::SubjectAltName(v.to_owned()))
                }
                _ => {
                    c.push(&at(path, "match"), format!("{m:?} must be {MATCH_FORMS}"));
                    None
                }
            });
    let role = c
        .required(&at(path, "role"), raw.role)
        .and_then(|r| match AuditorRole::from_label(&r) {
            Some(role) => Some(role),
            None => {
                c.push(
                    &at(path, "role"),
                    format!("{r:?} is not \"auditor\", \"dpo\" or \"commissioner\""),
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

/// `[query.roles]`: each role named overrides the default calls and/or purposes it lists.
fn roles(path: &str, value: toml::Value, c: &mut Checker<'_>) -> Option<RoleTable> {
    let raw: RawRoles = c.table(path, value)?;
    let mut table = RoleTable::default();
    let mut ok = true;
    for (role, value) in [
        (AuditorRole::Auditor, raw.auditor),
        (AuditorRole::Dpo, raw.dpo),
        (AuditorRole::Commissioner, raw.commissioner),
    ] {
        let Some(value) = value else { continue };
        let path = at(path, role.label());
        let Some(raw) = c.table::<RawRoleGrant>(&path, value) else {
            ok = false;
            continue;
        };
        let grant = table.grant_mut(role);
        if let Some(calls) = raw.calls {
            match names(&at(&path, "calls"), &calls, QueryCall::from_name, c, || {
                let all: Vec<&str> = QueryCall::ALL.iter().map(|c| c.name()).collect();
                format!("is not a call of the query service ({})", all.join(", "))
            }) {
                Some(calls) => grant.calls = calls,
                None => ok = false,
            }
        }
        if let Some(purposes) = raw.purposes {
            match names(
                &at(&path, "purposes"),
                &purposes,
                AuditPurpose::from_label,
                c,
                || {
                    "is not a purpose (lawfulness, self-monitoring, integrity-and-security, \
                     criminal-proceedings or commissioner-request)"
                        .to_owned()
                },
            ) {
                Some(purposes) => grant.purposes = purposes,
                None => ok = false,
            }
        }
    }
    ok.then_some(table)
}

/// A non-empty list of distinct names, each parsed by `parse`; every bad one is reported at its
/// index.
fn names<T: Ord>(
    path: &str,
    list: &[String],
    parse: impl Fn(&str) -> Option<T>,
    c: &mut Checker<'_>,
    unknown: impl Fn() -> String,
) -> Option<BTreeSet<T>> {
    if list.is_empty() {
        c.push(
            path,
            "must name at least one (to shut a role out, remove its auditors)",
        );
        return None;
    }
    let mut out = BTreeSet::new();
    let mut ok = true;
    for (i, name) in list.iter().enumerate() {
        let here = format!("{path}[{i}]");
        match parse(name) {
            Some(v) => {
                if !out.insert(v) {
                    c.push(&here, format!("{name:?} is listed twice"));
                    ok = false;
                }
            }
            None => {
                c.push(&here, format!("{name:?} {}", unknown()));
                ok = false;
            }
        }
    }
    ok.then_some(out)
}
