//! Who is calling and what they may do: the client certificate on the connection, matched against
//! the auditors named in the `[query]` configuration (by subject common name or subject alternative
//! name), and the role table that says which calls and purposes each role is granted.
//!
//! The TLS layer has already checked the certificate chains to the configured client CA; this module
//! only reads names out of the verified leaf certificate, and decides [`Auditors::authorize`] from
//! configuration. It must not import the network, the store or tonic: it is a function of
//! certificate bytes and configuration.

use crate::config::{Auditor, AuditorMatch, AuditorRole, QueryCall, RoleTable};
use crate::log::entry::AuditPurpose;
use crate::log::entry::{Actor, AuthMethod};
use crate::log::hash::sha256;
use rustls_pki_types::CertificateDer;
use std::net::SocketAddr;
use std::sync::Arc;
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

/// What the transport knows about a connection; attached to every request on it.
#[derive(Clone, Debug, Default)]
pub struct PeerInfo {
    /// The peer's socket address, when there is one (not over an in-memory transport).
    pub remote_addr: Option<SocketAddr>,
    /// The client's certificate chain, leaf first, as verified by the TLS layer.
    pub certificates: Option<Arc<Vec<CertificateDer<'static>>>>,
}

/// The names a client certificate carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PresentedIdentity {
    /// The subject's first common name, if any.
    pub common_name: Option<String>,
    /// E-mail, DNS and URI subject alternative names, in certificate order.
    pub alt_names: Vec<String>,
    /// The subject distinguished name as text.
    pub subject: String,
    /// SHA-256 of the certificate's DER, hex.
    pub fingerprint: String,
}

impl PresentedIdentity {
    /// Reads the names from a DER certificate.
    pub fn from_der(der: &[u8]) -> Result<Self, String> {
        let (_, cert) = X509Certificate::from_der(der)
            .map_err(|e| format!("the client certificate is not valid X.509: {e}"))?;
        let common_name = cert
            .subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .map(str::to_owned);
        let mut alt_names = Vec::new();
        if let Ok(Some(san)) = cert.subject_alternative_name() {
            for name in &san.value.general_names {
                match name {
                    GeneralName::RFC822Name(s) | GeneralName::DNSName(s) | GeneralName::URI(s) => {
                        alt_names.push((*s).to_owned())
                    }
                    _ => {}
                }
            }
        }
        Ok(PresentedIdentity {
            common_name,
            alt_names,
            subject: cert.subject().to_string(),
            fingerprint: sha256(der).to_hex(),
        })
    }

    /// The identity as logged for someone who is not (or not yet) an auditor: the common name, else
    /// the first alternative name, else the fingerprint.
    pub fn label(&self) -> String {
        if let Some(cn) = &self.common_name {
            format!("cn:{cn}")
        } else if let Some(san) = self.alt_names.first() {
            format!("san:{san}")
        } else {
            format!("sha256:{}", self.fingerprint)
        }
    }

    fn matches(&self, m: &AuditorMatch) -> bool {
        match m {
            AuditorMatch::CommonName(cn) => self.common_name.as_deref() == Some(cn.as_str()),
            AuditorMatch::SubjectAltName(san) => self.alt_names.iter().any(|n| n == san),
        }
    }
}

/// A configured auditor, identified on this call.
#[derive(Clone, Debug)]
pub struct Caller {
    /// The auditor's name from configuration; the `actor.id` of their audit entries.
    pub name: String,
    pub role: AuditorRole,
    pub identity: PresentedIdentity,
    pub remote_addr: Option<SocketAddr>,
}

impl Caller {
    /// The actor recorded on this auditor's audit-query entries.
    pub fn actor(&self) -> Actor {
        Actor {
            id: self.name.clone(),
            display_name: self.identity.subject.clone(),
            roles: vec![self.role.label().to_owned()],
            source_address: self.remote_addr.map(|a| a.to_string()).unwrap_or_default(),
            auth_method: AuthMethod::Mtls as i32,
        }
    }
}

/// Why an identified auditor may not make a call; each is logged as a `denied` entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RoleRefusal {
    /// The caller's role is not granted this call.
    CallNotGranted { role: AuditorRole, call: QueryCall },
    /// The caller's role may make this call, but not for the stated purpose.
    PurposeNotGranted {
        role: AuditorRole,
        purpose: AuditPurpose,
    },
}

/// Why a connection's caller is not an auditor; each is logged as a `denied` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// No certificate on the connection.
    NoCertificate,
    /// A certificate that is not readable X.509.
    Unreadable(String),
    /// A valid certificate that matches no configured auditor.
    NotAnAuditor(PresentedIdentity),
}

impl Refusal {
    /// Machine-readable reason for the `denied` entry.
    pub fn reason(&self) -> &'static str {
        match self {
            Refusal::NoCertificate => "no_client_certificate",
            Refusal::Unreadable(_) => "unreadable_client_certificate",
            Refusal::NotAnAuditor(_) => "not_an_auditor",
        }
    }

    /// The actor as presented, for the `denied` entry.
    pub fn actor(&self, remote_addr: Option<SocketAddr>) -> Actor {
        let source_address = remote_addr.map(|a| a.to_string()).unwrap_or_default();
        match self {
            Refusal::NotAnAuditor(id) => Actor {
                id: id.label(),
                display_name: id.subject.clone(),
                roles: Vec::new(),
                source_address,
                auth_method: AuthMethod::Mtls as i32,
            },
            Refusal::NoCertificate | Refusal::Unreadable(_) => Actor {
                id: String::new(),
                display_name: String::new(),
                roles: Vec::new(),
                source_address,
                auth_method: AuthMethod::None as i32,
            },
        }
    }
}

/// The auditors allowed to query the log, and what their roles may do.
#[derive(Clone, Debug, Default)]
pub struct Auditors {
    list: Vec<Auditor>,
    roles: RoleTable,
}

impl Auditors {
    /// `list`, with the default role table.
    pub fn new(list: Vec<Auditor>) -> Self {
        Self::with_roles(list, RoleTable::default())
    }

    /// `list`, with the role table `roles` (from `[query.roles]`).
    pub fn with_roles(list: Vec<Auditor>, roles: RoleTable) -> Self {
        Auditors { list, roles }
    }

    /// Whether an identified caller's role may make `call` for `purpose`: the call is checked
    /// first, so a caller outside their calls is told so whatever purpose they state.
    pub fn authorize(
        &self,
        caller: &Caller,
        call: QueryCall,
        purpose: AuditPurpose,
    ) -> Result<(), RoleRefusal> {
        let grant = self.roles.grant(caller.role);
        if !grant.calls.contains(&call) {
            return Err(RoleRefusal::CallNotGranted {
                role: caller.role,
                call,
            });
        }
        if !grant.purposes.contains(&purpose) {
            return Err(RoleRefusal::PurposeNotGranted {
                role: caller.role,
                purpose,
            });
        }
        Ok(())
    }

    /// Identifies the caller on a connection: the first configured auditor whose matcher fits the
    /// leaf certificate.
    pub fn identify(&self, peer: &PeerInfo) -> Result<Caller, Refusal> {
        let Some(leaf) = peer.certificates.as_ref().and_then(|c| c.first()) else {
            return Err(Refusal::NoCertificate);
        };
        let identity = PresentedIdentity::from_der(leaf.as_ref()).map_err(Refusal::Unreadable)?;
        match self.list.iter().find(|a| identity.matches(&a.matcher)) {
            Some(a) => Ok(Caller {
                name: a.name.clone(),
                role: a.role,
                identity,
                remote_addr: peer.remote_addr,
            }),
            None => Err(Refusal::NotAnAuditor(identity)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(cn: &str, sans: &[&str]) -> CertificateDer<'static> {
        let mut params =
            rcgen::CertificateParams::new(sans.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>())
                .expect("params");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        let key = rcgen::KeyPair::generate().expect("key");
        params.self_signed(&key).expect("cert").der().clone()
    }

    fn peer(der: CertificateDer<'static>) -> PeerInfo {
        PeerInfo {
            remote_addr: None,
            certificates: Some(Arc::new(vec![der])),
        }
    }

    fn auditors() -> Auditors {
        Auditors::new(vec![
            Auditor {
                name: "psd-auditor".into(),
                matcher: AuditorMatch::CommonName("Alex Auditor".into()),
                role: AuditorRole::Auditor,
            },
            Auditor {
                name: "dpo".into(),
                matcher: AuditorMatch::SubjectAltName("dpo.example.police.uk".into()),
                role: AuditorRole::Dpo,
            },
        ])
    }

    #[test]
    fn an_auditor_is_recognised_by_common_name() {
        let caller = auditors()
            .identify(&peer(cert("Alex Auditor", &["x.example"])))
            .expect("auditor");
        assert_eq!(caller.name, "psd-auditor");
        assert_eq!(caller.actor().roles, ["auditor"]);
        assert_eq!(caller.actor().auth_method, AuthMethod::Mtls as i32);
    }

    #[test]
    fn an_auditor_is_recognised_by_subject_alternative_name() {
        let caller = auditors()
            .identify(&peer(cert("Someone", &["dpo.example.police.uk"])))
            .expect("auditor");
        assert_eq!(caller.name, "dpo");
        assert_eq!(caller.role, AuditorRole::Dpo);
    }

    #[test]
    fn a_certificate_naming_nobody_configured_is_refused_with_its_identity() {
        let refusal = auditors()
            .identify(&peer(cert("Mallory", &["mallory.example"])))
            .expect_err("refused");
        let Refusal::NotAnAuditor(id) = &refusal else {
            panic!("wrong refusal {refusal:?}");
        };
        assert_eq!(id.label(), "cn:Mallory");
        assert_eq!(refusal.actor(None).id, "cn:Mallory");
        assert_eq!(refusal.reason(), "not_an_auditor");
    }

    #[test]
    fn a_role_is_held_to_its_calls_first_and_then_to_its_purposes() {
        let mut roles = RoleTable::default();
        roles.auditor.calls = [QueryCall::Search].into_iter().collect();
        roles.auditor.purposes = [AuditPurpose::Lawfulness].into_iter().collect();
        let auditors = Auditors::with_roles(auditors().list, roles);
        let alex = auditors
            .identify(&peer(cert("Alex Auditor", &[])))
            .expect("auditor");
        assert_eq!(
            auditors.authorize(&alex, QueryCall::Search, AuditPurpose::Lawfulness),
            Ok(())
        );
        assert_eq!(
            auditors.authorize(&alex, QueryCall::Search, AuditPurpose::SelfMonitoring),
            Err(RoleRefusal::PurposeNotGranted {
                role: AuditorRole::Auditor,
                purpose: AuditPurpose::SelfMonitoring
            })
        );
        assert_eq!(
            auditors.authorize(&alex, QueryCall::GetEntry, AuditPurpose::SelfMonitoring),
            Err(RoleRefusal::CallNotGranted {
                role: AuditorRole::Auditor,
                call: QueryCall::GetEntry
            }),
            "the call is refused before its purpose is looked at"
        );
        let dpo = auditors
            .identify(&peer(cert("Someone", &["dpo.example.police.uk"])))
            .expect("dpo");
        assert_eq!(
            auditors.authorize(&dpo, QueryCall::Export, AuditPurpose::CriminalProceedings),
            Ok(()),
            "other roles keep their defaults"
        );
    }

    #[test]
    fn no_certificate_and_garbage_are_refused() {
        assert_eq!(
            auditors()
                .identify(&PeerInfo::default())
                .expect_err("no cert"),
            Refusal::NoCertificate
        );
        let garbage = CertificateDer::from(vec![1u8, 2, 3]);
        assert!(matches!(
            auditors().identify(&peer(garbage)),
            Err(Refusal::Unreadable(_))
        ));
    }
}
