//! `[query]` and `[[query.auditor]]`: the auditor gRPC listener and who may use it.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

use super::check::{Checker, Section, at};

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

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawQuery {
    address: Option<String>,
    cert_file: Option<String>,
    key_file: Option<String>,
    client_ca_file: Option<String>,
    auditor: Option<Vec<toml::Value>>,
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
        let address = c
            .required("query.address", raw.address)
            .and_then(|a| c.socket("query.address", &a));
        let cert_file = c.file("query.cert_file", raw.cert_file);
        let cert_file = c.required("query.cert_file", cert_file);
        let key_file = c.file("query.key_file", raw.key_file);
        let key_file = c.required("query.key_file", key_file);
        let client_ca_file = c.file("query.client_ca_file", raw.client_ca_file);
        let client_ca_file = c.required("query.client_ca_file", client_ca_file);
        let mut auditors: Vec<Auditor> = Vec::new();
        let mut ok = true;
        let list = raw.auditor.unwrap_or_default();
        if list.is_empty() {
            c.push(
                "query.auditor",
                "no auditor is named, so nobody could query the log; add [[query.auditor]] or remove [query]",
            );
        }
        for (i, value) in list.into_iter().enumerate() {
            let path = format!("query.auditor[{i}]");
            let Some(raw) = c.table::<RawAuditor>(&path, value) else {
                ok = false;
                continue;
            };
            match auditor(&path, raw, c) {
                Some(a) => {
                    if let Some(j) = auditors.iter().position(|o| o.name == a.name) {
                        c.push(
                            &format!("{path}.name"),
                            format!("{:?} is already query.auditor[{j}]", a.name),
                        );
                        ok = false;
                    } else if let Some(j) = auditors.iter().position(|o| o.matcher == a.matcher) {
                        c.push(
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
        .and_then(|r| match r.as_str() {
            "auditor" => Some(AuditorRole::Auditor),
            "dpo" => Some(AuditorRole::Dpo),
            "commissioner" => Some(AuditorRole::Commissioner),
            other => {
                c.push(
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
