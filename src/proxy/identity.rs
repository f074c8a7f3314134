//! Who is asking: from the verified TLS client certificate, or from a header set by a gateway at a
//! configured peer address — never from a header anyone else sent.
//!
//! Invariants: a header identity is honoured only when the TCP peer is inside `trusted_peers`; a
//! certificate identity comes only from a chain rustls verified against the configured client CA.
//! Denial details name headers and sources, never the values sent. Must not import the log writer
//! or the upstream client.

use super::headers::same_spelling;
use super::problem::Problem;
use crate::config::{CertificateField, GatewayCertificate, IdentityConfig, IdentitySource};
use crate::log::entry::{Actor, AuthMethod};
use http::HeaderMap;
use http::header::HeaderName;
use std::net::{IpAddr, SocketAddr};
use x509_parser::extensions::GeneralName;

/// Every header that carries identity.
pub fn identity_headers(cfg: &IdentityConfig) -> impl Iterator<Item = &HeaderName> {
    std::iter::once(&cfg.header)
        .chain(cfg.display_name_header.as_ref())
        .chain(cfg.roles_header.as_ref())
}

/// Removes every identity header in every spelling (any case, `_` for `-`: CGI, WSGI and PHP
/// read `x_s62_user` as `x-s62-user`), except the configured spelling itself when `keep` (the
/// actor came from those headers, and the upstream may read them).
pub fn strip_identity(cfg: &IdentityConfig, headers: &mut HeaderMap, keep: bool) {
    let doomed: Vec<HeaderName> = headers
        .keys()
        .filter(|k| {
            identity_headers(cfg).any(|h| same_spelling(h.as_str(), k.as_str()))
                && !(keep && identity_headers(cfg).any(|h| h == *k))
        })
        .cloned()
        .collect();
    for name in doomed {
        headers.remove(name);
    }
}

/// The first identity header sent more than once, counting every spelling: the log would name
/// one value while the upstream may act on another.
fn repeated_identity_header(cfg: &IdentityConfig, headers: &HeaderMap) -> Option<String> {
    identity_headers(cfg).find_map(|h| {
        let n: usize = headers
            .keys()
            .filter(|k| same_spelling(k.as_str(), h.as_str()))
            .map(|k| headers.get_all(k).iter().count())
            .sum();
        (n > 1).then(|| h.to_string())
    })
}

/// True when `cert` is named in `gateway_certificates`.
pub fn is_gateway(cfg: &IdentityConfig, cert: Option<&CertIdentity>) -> bool {
    let Some(cert) = cert else { return false };
    cfg.gateway_certificates.iter().any(|g| match g {
        GatewayCertificate::CommonName(cn) => cert.common_name.as_deref() == Some(cn.as_str()),
        GatewayCertificate::SubjectAltName(san) => cert.sans.iter().any(|s| s == san),
    })
}

/// True when header identities from `peer`, on a connection with `cert`, are honoured: the
/// trusted-header source is on, the peer is a trusted gateway address, and (when gateway
/// certificates are named) the connection presented one of them.
pub fn trusts(cfg: &IdentityConfig, peer: IpAddr, cert: Option<&CertIdentity>) -> bool {
    cfg.sources.contains(&IdentitySource::TrustedHeader)
        && cfg.is_trusted_peer(peer)
        && (cfg.gateway_certificates.is_empty() || is_gateway(cfg, cert))
}

/// A request without the identity the policy requires: the refusal, and the anonymous actor
/// (source address only) to log it under.
#[derive(Debug)]
pub struct Unidentified {
    pub problem: Problem,
    pub actor: Actor,
}

/// Establishes who is asking, from the configured sources in order.
pub trait Identify {
    /// The actor for a request, or the refusal (and the anonymous actor to log it under) when an
    /// identity is required and none was found.
    fn identify(
        &self,
        peer: SocketAddr,
        cert: Option<&CertIdentity>,
        headers: &HeaderMap,
    ) -> Result<Actor, Box<Unidentified>>;
}

impl Identify for IdentityConfig {
    /// The actor for a request, or the refusal when an identity is required and none was found.
    fn identify(
        &self,
        peer: SocketAddr,
        cert: Option<&CertIdentity>,
        headers: &HeaderMap,
    ) -> Result<Actor, Box<Unidentified>> {
        let source_address = peer.to_string();
        let anonymous = Actor {
            source_address: source_address.clone(),
            auth_method: AuthMethod::None as i32,
            ..Default::default()
        };
        if let Some(header) = repeated_identity_header(self, headers) {
            return Err(Box::new(Unidentified {
                problem: Problem::AmbiguousIdentity { header },
                actor: anonymous,
            }));
        }
        let gateway = is_gateway(self, cert);
        let mut notes: Vec<String> = Vec::new();
        for source in &self.sources {
            match source {
                IdentitySource::ClientCertificate if gateway => {
                    notes.push("the client certificate is a gateway's, not a person's".into());
                }
                IdentitySource::ClientCertificate => match cert {
                    Some(c) => {
                        let id = match self.certificate_field {
                            CertificateField::CommonName => c.common_name.clone(),
                            CertificateField::SubjectAltName => c.san.clone(),
                        };
                        match id.filter(|s| !s.is_empty()) {
                            Some(id) => {
                                return Ok(Actor {
                                    id,
                                    display_name: c.common_name.clone().unwrap_or_default(),
                                    roles: c.organizational_units.clone(),
                                    source_address,
                                    auth_method: AuthMethod::Mtls as i32,
                                });
                            }
                            None => notes.push(format!(
                                "the client certificate has no {}",
                                match self.certificate_field {
                                    CertificateField::CommonName => "subject common name",
                                    CertificateField::SubjectAltName => "subject alternative name",
                                }
                            )),
                        }
                    }
                    None => notes.push("no client certificate was presented".into()),
                },
                IdentitySource::TrustedHeader => {
                    let value = header_text(headers, &self.header);
                    if !trusts(self, peer.ip(), cert) {
                        if value.is_some() {
                            notes.push(format!(
                                "the {} header was ignored: it came from a peer that is not a trusted gateway",
                                self.header
                            ));
                        }
                        continue;
                    }
                    match value {
                        Some(id) => {
                            let display_name = self
                                .display_name_header
                                .as_ref()
                                .and_then(|h| header_text(headers, h))
                                .unwrap_or_default();
                            let roles = self
                                .roles_header
                                .as_ref()
                                .and_then(|h| header_text(headers, h))
                                .map(|r| {
                                    r.split(',')
                                        .map(str::trim)
                                        .filter(|s| !s.is_empty())
                                        .map(str::to_owned)
                                        .collect()
                                })
                                .unwrap_or_default();
                            return Ok(Actor {
                                id,
                                display_name,
                                roles,
                                source_address,
                                auth_method: AuthMethod::TrustedHeader as i32,
                            });
                        }
                        None => notes.push(format!(
                            "the trusted gateway did not set the {} header",
                            self.header
                        )),
                    }
                }
            }
        }
        if self.required {
            let detail = if notes.is_empty() {
                "No identity source is configured.".to_owned()
            } else {
                format!("No identity was established: {}.", notes.join("; "))
            };
            Err(Box::new(Unidentified {
                problem: Problem::NoIdentity { detail },
                actor: anonymous,
            }))
        } else {
            Ok(anonymous)
        }
    }
}

fn header_text(headers: &HeaderMap, name: &HeaderName) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// What a verified client certificate says about its holder (parsed once per connection).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CertIdentity {
    pub common_name: Option<String>,
    /// First e-mail SAN, else first DNS SAN, else first URI SAN.
    pub san: Option<String>,
    /// Every e-mail, DNS and URI SAN, for matching gateway certificates.
    pub sans: Vec<String>,
    /// Subject OU values, recorded as roles.
    pub organizational_units: Vec<String>,
}

impl CertIdentity {
    /// Reads the end-entity certificate; `None` when it does not parse (rustls already verified
    /// it, so that would be a parser limitation, not an attack).
    pub fn from_der(der: &[u8]) -> Option<CertIdentity> {
        let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
        let subject = cert.subject();
        let common_name = subject
            .iter_common_name()
            .find_map(|a| a.as_str().ok())
            .map(str::to_owned);
        let organizational_units = subject
            .iter_organizational_unit()
            .filter_map(|a| a.as_str().ok())
            .map(str::to_owned)
            .collect();
        let mut email = None;
        let mut uri = None;
        let mut dns = None;
        let mut sans = Vec::new();
        if let Ok(Some(ext)) = cert.subject_alternative_name() {
            for name in &ext.value.general_names {
                if let GeneralName::RFC822Name(s) | GeneralName::URI(s) | GeneralName::DNSName(s) =
                    name
                {
                    sans.push((*s).to_owned());
                }
                match name {
                    GeneralName::RFC822Name(s) if email.is_none() => email = Some((*s).to_owned()),
                    GeneralName::URI(s) if uri.is_none() => uri = Some((*s).to_owned()),
                    GeneralName::DNSName(s) if dns.is_none() => dns = Some((*s).to_owned()),
                    _ => {}
                }
            }
        }
        Some(CertIdentity {
            common_name,
            san: email.or(dns).or(uri),
            sans,
            organizational_units,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn policy() -> IdentityConfig {
        IdentityConfig {
            sources: vec![
                IdentitySource::ClientCertificate,
                IdentitySource::TrustedHeader,
            ],
            certificate_field: CertificateField::CommonName,
            header: HeaderName::from_static("x-user"),
            display_name_header: Some(HeaderName::from_static("x-user-name")),
            roles_header: Some(HeaderName::from_static("x-user-roles")),
            trusted_peers: vec!["10.1.0.0/16".parse().expect("cidr")],
            required: true,
            gateway_certificates: Vec::new(),
        }
    }

    fn with_user() -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-user", HeaderValue::from_static("pc-4021"));
        h.insert(
            "x-user-roles",
            HeaderValue::from_static("officer, response"),
        );
        h
    }

    #[test]
    fn a_header_from_a_trusted_gateway_names_the_actor() {
        let actor = policy()
            .identify("10.1.2.3:5000".parse().expect("addr"), None, &with_user())
            .expect("identified");
        assert_eq!(actor.id, "pc-4021");
        assert_eq!(actor.roles, ["officer", "response"]);
        assert_eq!(actor.auth_method, AuthMethod::TrustedHeader as i32);
        assert_eq!(actor.source_address, "10.1.2.3:5000");
    }

    #[test]
    fn a_header_from_anyone_else_is_ignored_and_noted_without_its_value() {
        let Unidentified { problem, actor } = *policy()
            .identify("192.0.2.7:5000".parse().expect("addr"), None, &with_user())
            .expect_err("refused");
        assert_eq!(actor.auth_method, AuthMethod::None as i32);
        let Problem::NoIdentity { detail } = problem else {
            panic!("wrong problem {problem:?}")
        };
        assert!(detail.contains("x-user header was ignored"), "{detail}");
        assert!(
            !detail.contains("pc-4021"),
            "the value is never echoed: {detail}"
        );
    }

    #[test]
    fn a_certificate_wins_over_a_header() {
        let cert = CertIdentity {
            common_name: Some("DC 1180 Jane Okoro".into()),
            san: Some("jane.okoro@police.example".into()),
            sans: vec!["jane.okoro@police.example".into()],
            organizational_units: vec!["CID".into()],
        };
        let actor = policy()
            .identify(
                "10.1.2.3:5000".parse().expect("addr"),
                Some(&cert),
                &with_user(),
            )
            .expect("identified");
        assert_eq!(actor.id, "DC 1180 Jane Okoro");
        assert_eq!(actor.roles, ["CID"]);
        assert_eq!(actor.auth_method, AuthMethod::Mtls as i32);
    }

    #[test]
    fn an_identity_header_sent_twice_in_any_spelling_is_refused() {
        let peer = "10.1.2.3:5000".parse().expect("addr");
        let mut twice = with_user();
        twice.append("x-user", HeaderValue::from_static("ch-supt-1"));
        let mut spelled = with_user();
        spelled.insert("x_user", HeaderValue::from_static("ch-supt-1"));
        for h in [twice, spelled] {
            let refused = policy().identify(peer, None, &h).expect_err("refused");
            assert!(
                matches!(&refused.problem, Problem::AmbiguousIdentity { header } if header == "x-user"),
                "{:?}",
                refused.problem
            );
        }
    }

    #[test]
    fn identity_headers_are_stripped_in_every_spelling() {
        let mut h = with_user();
        h.insert("X_User_Name", HeaderValue::from_static("x"));
        h.insert("accept", HeaderValue::from_static("*/*"));
        let mut kept = h.clone();
        strip_identity(&policy(), &mut h, false);
        assert_eq!(h.len(), 1, "{h:?}");
        strip_identity(&policy(), &mut kept, true);
        assert!(kept.contains_key("x-user") && kept.contains_key("x-user-roles"));
        assert!(
            !kept.contains_key("x_user_name"),
            "other spellings always go"
        );
    }

    #[test]
    fn a_gateway_certificate_is_never_the_actor_and_its_header_wins() {
        let mut cfg = policy();
        cfg.gateway_certificates = vec![GatewayCertificate::CommonName("gw.example".into())];
        let gw = CertIdentity {
            common_name: Some("gw.example".into()),
            ..Default::default()
        };
        let peer = "10.1.2.3:5000".parse().expect("addr");
        let actor = cfg
            .identify(peer, Some(&gw), &with_user())
            .expect("identified");
        assert_eq!(actor.id, "pc-4021");
        assert_eq!(actor.auth_method, AuthMethod::TrustedHeader as i32);
        // Without its header, the gateway is nobody.
        assert!(cfg.identify(peer, Some(&gw), &HeaderMap::new()).is_err());
        // Once gateways are named, a trusted address without a gateway certificate is not enough.
        assert!(cfg.identify(peer, None, &with_user()).is_err());
    }
}
