//! Identity over real TLS: certificates are made here with rcgen (a force CA, the sidecar's server
//! certificate, officers' client certificates), written to a temporary folder and named in the
//! config exactly as an operator would; and an HTTPS upstream verified against its CA.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod proxy_support;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use proxy_support::*;
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DnType, IsCa, Issuer,
    KeyIdMethod, KeyPair, KeyUsagePurpose, RevocationReason, RevokedCertParams, SanType,
    SerialNumber, date_time_ymd,
};
use rustls_pki_types::ServerName;
use s62::config::{CertificateField, ClientAuth, Config, IdentitySource, ServerTls};
use s62::log::entry::{AuthMethod, EntryKind};
use s62::proxy::tls;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::net::{TcpListener, TcpStream};

struct Pki {
    ca_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl Pki {
    fn new() -> Pki {
        let key = KeyPair::generate().expect("key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params
            .distinguished_name
            .push(DnType::CommonName, "Wessex Police Test CA");
        let cert = params.self_signed(&key).expect("ca");
        Pki {
            ca_pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// (certificate PEM, key PEM).
    fn issue(&self, cn: &str, ou: Option<&str>, sans: Vec<SanType>) -> (String, String) {
        self.issue_serial(cn, ou, sans, None)
    }

    fn issue_serial(
        &self,
        cn: &str,
        ou: Option<&str>,
        sans: Vec<SanType>,
        serial: Option<u64>,
    ) -> (String, String) {
        let key = KeyPair::generate().expect("key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.serial_number = serial.map(SerialNumber::from);
        params.distinguished_name.push(DnType::CommonName, cn);
        if let Some(ou) = ou {
            params
                .distinguished_name
                .push(DnType::OrganizationalUnitName, ou);
        }
        params.subject_alt_names = sans;
        let cert = params.signed_by(&key, &self.issuer).expect("signed");
        (cert.pem(), key.serialize_pem())
    }

    /// A revocation list (PEM) revoking `serials`.
    fn crl(&self, serials: &[u64]) -> String {
        CertificateRevocationListParams {
            this_update: date_time_ymd(2026, 1, 1),
            next_update: date_time_ymd(2036, 1, 1),
            crl_number: SerialNumber::from(serials.len() as u64 + 1),
            issuing_distribution_point: None,
            revoked_certs: serials
                .iter()
                .map(|s| RevokedCertParams {
                    serial_number: SerialNumber::from(*s),
                    revocation_time: date_time_ymd(2026, 1, 2),
                    reason_code: Some(RevocationReason::KeyCompromise),
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: KeyIdMethod::Sha256,
        }
        .signed_by(&self.issuer)
        .expect("crl")
        .pem()
        .expect("pem")
    }

    fn server(&self) -> (String, String) {
        self.issue(
            "localhost",
            None,
            vec![
                SanType::DnsName("localhost".try_into().expect("dns")),
                SanType::IpAddress("127.0.0.1".parse().expect("ip")),
            ],
        )
    }
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write");
    p
}

/// A config terminating TLS with client certificates (`client_auth`), identity from `field`,
/// with the certificate files written to `dir` as an operator would.
fn tls_config(dir: &Path, pki: &Pki, client_auth: ClientAuth, field: CertificateField) -> Config {
    let (cert, key) = pki.server();
    let mut cfg = config();
    cfg.listen.tls = Some(ServerTls {
        cert_file: write(dir, "server.pem", &cert),
        key_file: write(dir, "server.key", &key),
        client_ca_file: Some(write(dir, "ca.pem", &pki.ca_pem)),
        client_auth,
        crl_files: Vec::new(),
    });
    cfg.identity.sources = vec![IdentitySource::ClientCertificate];
    cfg.identity.certificate_field = field;
    cfg
}

fn client_tls(pki: &Pki, identity: Option<(String, String)>) -> Arc<rustls::ClientConfig> {
    let id = identity.as_ref().map(|(c, k)| (c.as_bytes(), k.as_bytes()));
    let cfg = tls::client_config(pki.ca_pem.as_bytes(), id).expect("client config");
    let mut cfg = (*cfg).clone();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(cfg)
}

/// One GET over TLS; `Err` when the handshake or the exchange fails.
async fn get_over_tls(
    addr: SocketAddr,
    cfg: Arc<rustls::ClientConfig>,
    path: &str,
) -> Result<(u16, Bytes), String> {
    get_over_tls_with(addr, cfg, path, &[]).await
}

/// [`get_over_tls`] with extra request headers.
async fn get_over_tls_with(
    addr: SocketAddr,
    cfg: Arc<rustls::ClientConfig>,
    path: &str,
    extra: &[(&str, &str)],
) -> Result<(u16, Bytes), String> {
    let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let stream = tokio_rustls::TlsConnector::from(cfg)
        .connect(ServerName::try_from("localhost").expect("name"), tcp)
        .await
        .map_err(|e| e.to_string())?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let mut req = http::Request::get(path)
        .header("host", "localhost")
        .header("x-s62-purpose", "investigation");
    for (k, v) in extra {
        req = req.header(*k, *v);
    }
    let req = req.body(Full::new(Bytes::new())).expect("request");
    let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok((status, body))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_officer_is_identified_by_the_common_name_of_a_verified_client_certificate() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let upstream = Upstream::start().await;
    let sidecar = Sidecar::start(settings(
        &tls_config(
            dir.path(),
            &pki,
            ClientAuth::Required,
            CertificateField::CommonName,
        ),
        upstream.addr,
    ))
    .await;
    let officer = pki.issue("DC 1180 Jane Okoro", Some("CID"), vec![]);
    let (status, body) = get_over_tls(
        sidecar.addr,
        client_tls(&pki, Some(officer)),
        "/people/P-1003",
    )
    .await
    .expect("exchange");
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));

    // Without a certificate the handshake is refused and nothing is forwarded.
    let refused = get_over_tls(sidecar.addr, client_tls(&pki, None), "/people/P-1003").await;
    assert!(
        refused.is_err(),
        "a client without a certificate was served: {refused:?}"
    );
    // Nor with a certificate from another CA.
    let other = Pki::new();
    let stranger = other.issue("Mallory", None, vec![]);
    let cfg = rustls::ClientConfig::builder_with_provider(tls::provider())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(cfg_roots(&pki))
        .with_client_auth_cert(
            tls::certs(stranger.0.as_bytes(), "stranger").expect("certs"),
            tls::key(stranger.1.as_bytes(), "stranger").expect("key"),
        )
        .expect("client auth");
    assert!(
        get_over_tls(sidecar.addr, Arc::new(cfg), "/people/P-1003")
            .await
            .is_err()
    );
    assert_eq!(upstream.hits(), 1);

    let store = sidecar.stop().await;
    let intent = &store.of_kind(EntryKind::Intent)[0];
    let actor = intent.actor.as_ref().expect("actor");
    assert_eq!(actor.id, "DC 1180 Jane Okoro");
    assert_eq!(actor.roles, ["CID"]);
    assert_eq!(actor.auth_method, AuthMethod::Mtls as i32);
    assert_eq!(intent.subject_ids, ["P-1003"]);
}

fn cfg_roots(pki: &Pki) -> rustls::RootCertStore {
    let mut roots = rustls::RootCertStore::empty();
    for c in tls::certs(pki.ca_pem.as_bytes(), "ca").expect("ca") {
        roots.add(c).expect("root");
    }
    roots
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_optional_client_certificates_the_san_names_the_officer_and_no_certificate_is_401() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let upstream = Upstream::start().await;
    let sidecar = Sidecar::start(settings(
        &tls_config(
            dir.path(),
            &pki,
            ClientAuth::Optional,
            CertificateField::SubjectAltName,
        ),
        upstream.addr,
    ))
    .await;
    let officer = pki.issue(
        "PC 4021 Sam Patel",
        None,
        vec![SanType::Rfc822Name(
            "sam.patel@wessex.police.example".try_into().expect("email"),
        )],
    );
    let (status, _) = get_over_tls(
        sidecar.addr,
        client_tls(&pki, Some(officer)),
        "/people/P-1002",
    )
    .await
    .expect("ok");
    assert_eq!(status, 200);
    let (status, body) = get_over_tls(sidecar.addr, client_tls(&pki, None), "/people/P-1002")
        .await
        .expect("answered");
    assert_eq!(status, 401);
    let problem: serde_json::Value = serde_json::from_slice(&body).expect("json");
    assert!(
        problem["detail"]
            .as_str()
            .expect("detail")
            .contains("no client certificate")
    );
    assert_eq!(upstream.hits(), 1);
    let store = sidecar.stop().await;
    let intent = &store.of_kind(EntryKind::Intent)[0];
    assert_eq!(
        intent.actor.as_ref().expect("actor").id,
        "sam.patel@wessex.police.example"
    );
    let denied = &store.of_kind(EntryKind::Denied)[0];
    assert_eq!(
        denied.denial.as_ref().expect("denial").reason,
        "no_identity"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_upstream_is_verified_against_its_ca() {
    let pki = Pki::new();
    let (cert, key) = pki.server();
    // The records service behind TLS.
    let server_cfg =
        tls::server_config(cert.as_bytes(), key.as_bytes(), None, tls::ClientAuth::None)
            .expect("server tls");
    let acceptor = tokio_rustls::TlsAcceptor::from(server_cfg);
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let records = s62::records::Records::demo();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let acceptor = acceptor.clone();
            let records = records.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let svc = hyper::service::service_fn(move |req| {
                    let records = records.clone();
                    async move { Ok::<_, std::convert::Infallible>(records.handle(req).await) }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), svc)
                    .await;
            });
        }
    });

    let mut s = settings(&config(), addr);
    s.upstream.url = format!("https://localhost:{}", addr.port())
        .parse()
        .expect("uri");
    s.upstream.tls = Some(tls::client_config(pki.ca_pem.as_bytes(), None).expect("client tls"));
    let sidecar = Sidecar::start(s.clone()).await;
    let r = send("GET", &sidecar.url("/people/P-1004"), None, JUSTIFIED).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["family_name"], "Barnard");
    sidecar.stop().await;

    // The same upstream, but trusting another CA: unreachable (502), and recorded.
    s.upstream.tls =
        Some(tls::client_config(Pki::new().ca_pem.as_bytes(), None).expect("client tls"));
    let sidecar = Sidecar::start(s).await;
    let r = send("GET", &sidecar.url("/people/P-1004"), None, JUSTIFIED).await;
    assert_eq!(r.status, 502);
    let store = sidecar.stop().await;
    assert_eq!(
        store.of_kind(EntryKind::Outcome)[0]
            .outcome
            .as_ref()
            .expect("outcome")
            .error,
        "upstream_unreachable"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_tls_handshakes_are_logged_as_aggregated_denials() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let upstream = Upstream::start().await;
    let mut cfg = tls_config(
        dir.path(),
        &pki,
        ClientAuth::Required,
        CertificateField::CommonName,
    );
    cfg.limits.denial_window = std::time::Duration::from_millis(300);
    let sidecar = Sidecar::start(settings(&cfg, upstream.addr)).await;
    // Plain HTTP at a TLS port, three times.
    for _ in 0..3 {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut sock = TcpStream::connect(sidecar.addr).await.expect("connect");
        let _ = sock.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
        let mut buf = [0u8; 512];
        let _ = sock.read(&mut buf).await;
    }
    // No client certificate, twice.
    for _ in 0..2 {
        let r = get_over_tls(sidecar.addr, client_tls(&pki, None), "/people/P-1003").await;
        assert!(r.is_err());
    }
    eventually("the handshake failures are logged", || {
        sidecar
            .store
            .of_kind(EntryKind::Denied)
            .iter()
            .map(|e| {
                let d = e.denial.as_ref().expect("denial");
                assert_eq!(d.reason, "tls_handshake_failed");
                d.detail
                    .split_once(' ')
                    .and_then(|(n, _)| n.parse::<u64>().ok())
                    .unwrap_or(0)
            })
            .sum::<u64>()
            == 5
    })
    .await;
    let store = sidecar.stop().await;
    let d = &store.of_kind(EntryKind::Denied)[0];
    assert_eq!(d.actor.as_ref().expect("actor").source_address, "127.0.0.1");
    assert!(d.request.is_none(), "no request was ever read");
    assert_eq!(upstream.hits(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_headers_do_not_reach_the_upstream_when_a_certificate_named_the_officer() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let upstream = Upstream::start().await;
    let mut cfg = tls_config(
        dir.path(),
        &pki,
        ClientAuth::Optional,
        CertificateField::CommonName,
    );
    cfg.identity.sources = vec![
        IdentitySource::ClientCertificate,
        IdentitySource::TrustedHeader,
    ];
    let sidecar = Sidecar::start(settings(&cfg, upstream.addr)).await;
    let officer = pki.issue("DC 1180 Jane Okoro", Some("CID"), vec![]);
    // The records system would believe the header; the log names the certificate.
    let (status, _) = get_over_tls_with(
        sidecar.addr,
        client_tls(&pki, Some(officer)),
        "/people/P-1003",
        &[("x-s62-user", "ch-supt-0001"), ("x-s62-roles", "admin")],
    )
    .await
    .expect("exchange");
    assert_eq!(status, 200);
    let seen = upstream
        .last_headers
        .lock()
        .unwrap()
        .clone()
        .expect("headers");
    assert!(!seen.contains_key("x-s62-user") && !seen.contains_key("x-s62-roles"));
    let store = sidecar.stop().await;
    let actor = store.of_kind(EntryKind::Intent)[0]
        .actor
        .clone()
        .expect("actor");
    assert_eq!(actor.id, "DC 1180 Jane Okoro");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_gateway_with_required_certificates_the_gateway_is_never_the_officer() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let upstream = Upstream::start().await;
    let mut cfg = tls_config(
        dir.path(),
        &pki,
        ClientAuth::Required,
        CertificateField::CommonName,
    );
    cfg.identity.sources = vec![
        IdentitySource::ClientCertificate,
        IdentitySource::TrustedHeader,
    ];
    cfg.identity.gateway_certificates = vec![s62::config::GatewayCertificate::CommonName(
        "gateway.records.test".into(),
    )];
    let sidecar = Sidecar::start(settings(&cfg, upstream.addr)).await;
    let gateway = pki.issue("gateway.records.test", None, vec![]);
    let officer = pki.issue("DC 1180 Jane Okoro", None, vec![]);
    let (via_gateway, _) = get_over_tls_with(
        sidecar.addr,
        client_tls(&pki, Some(gateway.clone())),
        "/people/P-1003",
        &[("x-s62-user", "pc-4021")],
    )
    .await
    .expect("exchange");
    let (gateway_alone, _) = get_over_tls(
        sidecar.addr,
        client_tls(&pki, Some(gateway)),
        "/people/P-1003",
    )
    .await
    .expect("exchange");
    // An officer's own certificate cannot claim another officer through the header.
    let (direct, _) = get_over_tls_with(
        sidecar.addr,
        client_tls(&pki, Some(officer)),
        "/people/P-1003",
        &[("x-s62-user", "pc-4021")],
    )
    .await
    .expect("exchange");
    assert_eq!((via_gateway, gateway_alone, direct), (200, 401, 200));
    let store = sidecar.stop().await;
    let actors: Vec<_> = store
        .of_kind(EntryKind::Intent)
        .into_iter()
        .map(|e| {
            let a = e.actor.expect("actor");
            (a.id, a.auth_method)
        })
        .collect();
    assert_eq!(
        actors,
        [
            ("pc-4021".to_owned(), AuthMethod::TrustedHeader as i32),
            ("DC 1180 Jane Okoro".to_owned(), AuthMethod::Mtls as i32)
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_certificate_is_refused_and_a_changed_list_is_reloaded() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let upstream = Upstream::start().await;
    let crl = write(dir.path(), "clients.crl", &pki.crl(&[1001]));
    let mut cfg = tls_config(
        dir.path(),
        &pki,
        ClientAuth::Required,
        CertificateField::CommonName,
    );
    if let Some(t) = cfg.listen.tls.as_mut() {
        t.crl_files = vec![crl.clone()];
    }
    let sidecar = Sidecar::start(settings(&cfg, upstream.addr)).await;
    let revoked = pki.issue_serial("PC 1001 Left The Force", None, vec![], Some(1001));
    let current = pki.issue_serial("PC 1002 Serving", None, vec![], Some(1002));
    let refused = get_over_tls(
        sidecar.addr,
        client_tls(&pki, Some(revoked)),
        "/people/P-1003",
    )
    .await;
    assert!(
        refused.is_err(),
        "a revoked certificate was served: {refused:?}"
    );
    let (status, _) = get_over_tls(
        sidecar.addr,
        client_tls(&pki, Some(current.clone())),
        "/people/P-1003",
    )
    .await
    .expect("exchange");
    assert_eq!(status, 200);
    // The CA revokes PC 1002 as well; s62 notices the file changed.
    std::fs::write(&crl, pki.crl(&[1001, 1002])).expect("write");
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    let refused = get_over_tls(
        sidecar.addr,
        client_tls(&pki, Some(current)),
        "/people/P-1003",
    )
    .await;
    assert!(
        refused.is_err(),
        "the reloaded list was not applied: {refused:?}"
    );
    assert_eq!(upstream.hits(), 1);
    sidecar.stop().await;
}
