//! `[identity]`: how the acting person is established (client certificate, or a header honoured
//! only from trusted gateway peers).

use std::net::IpAddr;

use http::HeaderName;
use serde::Deserialize;

use super::check::{Checker, Section};
use super::cidr::IpCidr;

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
    /// Client certificates that belong to a gateway, not to a person. A connection presenting
    /// one is never identified by it; its identity header is honoured instead (from a trusted
    /// peer). When set, identity headers are honoured only on such connections.
    pub gateway_certificates: Vec<GatewayCertificate>,
}

/// How a gateway's client certificate is recognised.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GatewayCertificate {
    /// `cn:<subject common name>`.
    CommonName(String),
    /// `san:<email, DNS or URI subject alternative name>`.
    SubjectAltName(String),
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

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawIdentity {
    sources: Option<Vec<String>>,
    certificate_field: Option<String>,
    header: Option<String>,
    display_name_header: Option<String>,
    roles_header: Option<String>,
    trusted_peers: Option<Vec<String>>,
    required: Option<bool>,
    gateway_certificates: Option<Vec<String>>,
}

impl Section for IdentityConfig {
    const KEY: &'static str = "identity";
    type Raw = RawIdentity;

    fn check(raw: RawIdentity, c: &mut Checker<'_>) -> Option<Self> {
        let sources = c.required("identity.sources", raw.sources);
        let sources = sources.and_then(|list| sources_list(&list, c));
        let certificate_field = match raw.certificate_field.as_deref() {
            None | Some("cn") => Some(CertificateField::CommonName),
            Some("san") => Some(CertificateField::SubjectAltName),
            Some(other) => {
                c.push(
                    "identity.certificate_field",
                    format!("{other:?} is not \"cn\" or \"san\""),
                );
                None
            }
        };
        let header = c.header(
            "identity.header",
            raw.header.as_deref().unwrap_or("x-s62-user"),
        );
        let display_name_header = match raw.display_name_header {
            Some(h) => c.header("identity.display_name_header", &h).map(Some),
            None => Some(None),
        };
        let roles_header = match raw.roles_header {
            Some(h) => c.header("identity.roles_header", &h).map(Some),
            None => Some(None),
        };
        let mut trusted_peers = Vec::new();
        let mut peers_ok = true;
        for (i, p) in raw.trusted_peers.iter().flatten().enumerate() {
            match p.parse::<IpCidr>() {
                Ok(net) => trusted_peers.push(net),
                Err(e) => {
                    c.push(
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
                c.push(
                    "identity.trusted_peers",
                    "\"trusted_header\" needs at least one trusted peer (the gateway's address); \
                     headers from any other peer are ignored",
                );
            }
            if !header_source && raw.trusted_peers.as_ref().is_some_and(|v| !v.is_empty()) {
                c.push(
                    "identity.trusted_peers",
                    "has no effect unless identity.sources includes \"trusted_header\"",
                );
            }
        }
        let mut gateway_certificates = Vec::new();
        let mut gateways_ok = true;
        for (i, g) in raw.gateway_certificates.iter().flatten().enumerate() {
            match g.split_once(':') {
                Some(("cn", v)) if !v.is_empty() => {
                    gateway_certificates.push(GatewayCertificate::CommonName(v.to_owned()))
                }
                Some(("san", v)) if !v.is_empty() => {
                    gateway_certificates.push(GatewayCertificate::SubjectAltName(v.to_owned()))
                }
                _ => {
                    c.push(
                        &format!("identity.gateway_certificates[{i}]"),
                        format!("{g:?} must be \"cn:<common name>\" or \"san:<name>\""),
                    );
                    gateways_ok = false;
                }
            }
        }
        Some(IdentityConfig {
            gateway_certificates: gateways_ok.then_some(gateway_certificates)?,
            sources: sources?,
            certificate_field: certificate_field?,
            header: header?,
            display_name_header: display_name_header?,
            roles_header: roles_header?,
            trusted_peers: peers_ok.then_some(trusted_peers)?,
            required: raw.required.unwrap_or(true),
        })
    }
}

fn sources_list(list: &[String], c: &mut Checker<'_>) -> Option<Vec<IdentitySource>> {
    if list.is_empty() {
        c.push("identity.sources", "must name at least one source");
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
                c.push(
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
            c.push(&path, format!("{s:?} is listed twice"));
            ok = false;
        }
        out.push(source);
    }
    ok.then_some(out)
}
