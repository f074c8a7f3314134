//! Who is asking: from the verified TLS client certificate, or from a header set by a gateway at a
//! configured peer address — never from a header anyone else sent.
//!
//! Invariants: a header identity is honoured only when the TCP peer is inside `trusted_peers`; a
//! certificate identity comes only from a chain rustls verified against the configured client CA.
//! Denial details name headers and sources, never the values sent. Must not import the log writer
//! or the upstream client.

use super::problem::Problem;
use crate::config::{CertificateField, IdentityConfig, IdentitySource};
use crate::log::entry::{Actor, AuthMethod};
use http::HeaderMap;
use http::header::HeaderName;
use std::net::{IpAddr, SocketAddr};
use x509_parser::extensions::GeneralName;

/// Every header that carries identity, to strip from requests of untrusted peers.
pub fn identity_headers(cfg: &IdentityConfig) -> impl Iterator<Item = &HeaderName> {
    std::iter::once(&cfg.header)
        .chain(cfg.display_name_header.as_ref())
        .chain(cfg.roles_header.as_ref())
}

/// True when header identities from `peer` are honoured.
pub fn trusts(cfg: &IdentityConfig, peer: IpAddr) -> bool {
    cfg.sources.contains(&IdentitySource::TrustedHeader) && cfg.is_trusted_peer(peer)
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
        let mut notes: Vec<String> = Vec::new();
        for source in &self.sources {
            match source {
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
                    if !trusts(self, peer.ip()) {
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
        let anonymous = Actor {
            source_address,
            auth_method: AuthMethod::None as i32,
            ..Default::default()
        };
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
        if let Ok(Some(ext)) = cert.subject_alternative_name() {
            for name in &ext.value.general_names {
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
}
