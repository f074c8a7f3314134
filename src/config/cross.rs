//! Rules that span sections, checked once every section that parsed is known. A rule whose
//! sections did not parse is skipped: their own problems are already reported.

use super::check::Checker;
use super::{
    AdminConfig, AlertsConfig, ClientAuth, IdentityConfig, IdentitySource, JustificationConfig,
    ListenConfig, QueryConfig, RoutesConfig, RuleKind,
};

/// The sections the cross-section rules look at; `None` where a section did not parse (and, for
/// optional sections, `Some(None)` where it is absent).
pub(super) struct Parsed<'s> {
    pub listen: Option<&'s ListenConfig>,
    pub identity: Option<&'s IdentityConfig>,
    pub justification: Option<&'s JustificationConfig>,
    pub query: Option<&'s QueryConfig>,
    pub admin: Option<&'s AdminConfig>,
}

pub(super) fn check(s: &Parsed<'_>, c: &mut Checker<'_>) {
    if let (Some(listen), Some(identity)) = (s.listen, s.identity) {
        client_certificates_need_tls(listen, identity, c);
        gateways_are_named_when_certificates_are_required(listen, identity, c);
    }
    if let (Some(identity), Some(justification)) = (s.identity, s.justification) {
        distinct_headers(identity, justification, c);
    }
    if let Some(listen) = s.listen {
        distinct_addresses(listen, s.query, s.admin, c);
    }
}

/// Identity from a client certificate needs a listener that asks for one.
fn client_certificates_need_tls(
    listen: &ListenConfig,
    identity: &IdentityConfig,
    c: &mut Checker<'_>,
) {
    if identity
        .sources
        .contains(&IdentitySource::ClientCertificate)
        && listen
            .tls
            .as_ref()
            .is_none_or(|t| t.client_auth == ClientAuth::None)
    {
        c.push(
            "identity.sources",
            "\"client_certificate\" needs [listen.tls] with client_ca_file and \
             client_auth = \"optional\" or \"required\"",
        );
    }
}

/// With client certificates required, a gateway connects with a certificate too; unless that
/// certificate is named as a gateway's, the certificate source would log every officer behind
/// the gateway as the gateway.
fn gateways_are_named_when_certificates_are_required(
    listen: &ListenConfig,
    identity: &IdentityConfig,
    c: &mut Checker<'_>,
) {
    let required = listen
        .tls
        .as_ref()
        .is_some_and(|t| t.client_auth == ClientAuth::Required);
    if required
        && identity.sources.contains(&IdentitySource::TrustedHeader)
        && identity.gateway_certificates.is_empty()
    {
        c.push(
            "identity.gateway_certificates",
            "client_auth = \"required\" with \"trusted_header\": the gateway presents a certificate \
             too, so name it here (\"cn:<name>\" or \"san:<name>\") or every request through it is \
             logged as the gateway",
        );
    }
}

/// One header may carry one thing: an identity header that is also a justification header
/// would let one value stand for two facts.
fn distinct_headers(identity: &IdentityConfig, j: &JustificationConfig, c: &mut Checker<'_>) {
    let mut named = vec![("identity.header", &identity.header)];
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
            c.push(path, format!("{h:?} is already used by {other}"));
        }
    }
}

/// Each listener needs an address of its own.
fn distinct_addresses(
    listen: &ListenConfig,
    query: Option<&QueryConfig>,
    admin: Option<&AdminConfig>,
    c: &mut Checker<'_>,
) {
    let mut taken = vec![("listen.address", listen.address)];
    if let Some(q) = query {
        taken.push(("query.address", q.address));
    }
    if let Some(a) = admin {
        taken.push(("admin.address", a.address));
    }
    for (i, (path, addr)) in taken.iter().enumerate() {
        if let Some((other, _)) = taken[..i].iter().find(|(_, a)| a == addr) {
            c.push(path, format!("{addr} is already used by {other}"));
        }
    }
}

/// A `break_glass` rule's routes must be route rules that exist, and its header must not be one
/// `[routes]` refuses (such a request would be refused before it could be marked).
pub(super) fn break_glass_routes_exist(
    alerts: &AlertsConfig,
    routes: &RoutesConfig,
    c: &mut Checker<'_>,
) {
    for (i, rule) in alerts.rules.iter().enumerate() {
        if let RuleKind::BreakGlass {
            routes: named,
            header,
            ..
        } = &rule.kind
        {
            if let Some(h) = header
                && routes.refused_headers.iter().any(|r| r == h.as_str())
            {
                c.push(
                    &format!("alerts.rule[{i}].header"),
                    format!("{h:?} is in routes.refused_headers: requests carrying it are refused"),
                );
            }
            for (j, name) in named.iter().enumerate() {
                if !routes.rules.iter().any(|r| &r.name == name) {
                    c.push(
                        &format!("alerts.rule[{i}].routes[{j}]"),
                        format!("{name:?} is not the name of a [[routes.rule]]"),
                    );
                }
            }
        }
    }
}
