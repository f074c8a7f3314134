//! Shared scenery for the query service tests: a log (in-memory store + the real writer), a PKI
//! made on the spot with rcgen (a client CA, a server certificate for `localhost`, auditor and
//! stranger certificates, and a foreign CA), the service over in-memory duplex pipes and over
//! real TLS, and the entries a proxy would write.
#![allow(dead_code)]

use hyper_util::rt::TokioIo;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rustls_pki_types::CertificateDer;
use s62::config::{Auditor, AuditorMatch, AuditorRole, QueryConfig, RoleTable};
use s62::ingest::{LogWriter, WriterConfig, WriterTask};
use s62::log::entry::{
    Actor, AuditPurpose, AuthMethod, Entry, EntryKind, Justification, Operation, Outcome, Request,
};
use s62::log::note::SignerKey;
use s62::log::store::memory::MemoryStore;
use s62::log::store::{LogStore, Store};
use s62::query::pb::CallContext;
use s62::query::pb::audit_query_client::AuditQueryClient;
use s62::query::{
    Auditors, Connection, PeerInfo, QueryLogs, ServedLog, serve_logs_incoming, serve_query_on,
};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

pub const ORIGIN: &str = "records.example.police.uk/s62";

/// A log: memory store, the real group-commit writer, its key.
pub struct TestLog {
    pub store: Arc<MemoryStore>,
    pub writer: LogWriter,
    pub task: Option<WriterTask>,
    pub key: SignerKey,
}

impl TestLog {
    pub fn new() -> TestLog {
        TestLog::named(ORIGIN, 7)
    }

    /// A log of another origin, signed with a key from `seed` (a second sidecar, or a hub).
    pub fn named(origin: &str, seed: u8) -> TestLog {
        let store = Arc::new(MemoryStore::new());
        let key = || SignerKey::from_seed(origin, [seed; 32]).expect("key");
        let (writer, task) = LogWriter::start(
            store.clone() as Arc<dyn Store>,
            key(),
            WriterConfig::new(origin),
        )
        .expect("writer");
        TestLog {
            store,
            writer,
            task: Some(task),
            key: key(),
        }
    }

    pub fn entry(&self, seq: u64) -> Entry {
        // With its personal values put back (format 2), each checked against its commitment.
        self.store
            .opened(seq)
            .expect("read and values match")
            .expect("present")
            .entry
    }

    /// This log as a sidecar's query service serves it.
    pub fn served(&self) -> QueryLogs {
        QueryLogs::single(
            self.writer.origin().to_owned(),
            self.store.clone() as Arc<dyn Store>,
            self.key.verifier(),
        )
    }

    /// This log as a hub serves its copy of it.
    pub fn as_copy(&self) -> ServedLog {
        ServedLog {
            origin: self.writer.origin().to_owned(),
            store: self.store.clone() as Arc<dyn Store>,
            verifiers: vec![self.key.verifier()],
        }
    }

    pub fn size(&self) -> u64 {
        self.store.entry_count().expect("count")
    }

    /// Every entry, in order.
    pub fn all(&self) -> Vec<Entry> {
        (0..self.size()).map(|s| self.entry(s)).collect()
    }

    /// Waits (briefly) until an entry satisfying `pred` exists; streams close asynchronously.
    pub async fn wait_for(&self, what: &str, pred: impl Fn(&Entry) -> bool) -> Entry {
        for _ in 0..200 {
            if let Some(e) = self.all().into_iter().find(|e| pred(e)) {
                return e;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("no entry in the log: {what}");
    }

    /// Writes an intent/outcome pair as the proxy would; returns (intent seq, outcome seq).
    pub async fn exchange(&self, ex: Exchange<'_>) -> (u64, u64) {
        let intent = self
            .writer
            .append(Entry {
                kind: EntryKind::Intent as i32,
                operation: ex.operation as i32,
                actor: Some(officer(ex.actor)),
                justification: Some(Justification {
                    purpose_code: "investigation".into(),
                    text: ex.why.into(),
                    case_reference: ex.case.into(),
                }),
                subject_ids: ex.asked.iter().map(|s| (*s).to_owned()).collect(),
                record_ids: ex.records.iter().map(|s| (*s).to_owned()).collect(),
                recipients: ex.recipients.iter().map(|s| (*s).to_owned()).collect(),
                request: Some(Request {
                    method: ex.method.into(),
                    path: ex.path.into(),
                    route: ex.route.into(),
                    request_id: format!("req-{}", ex.path),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .await
            .expect("intent")
            .seq;
        let outcome = self
            .writer
            .append(Entry {
                kind: EntryKind::Outcome as i32,
                operation: ex.operation as i32,
                actor: Some(officer(ex.actor)),
                answers_seq: Some(intent),
                outcome: Some(Outcome {
                    status: ex.status,
                    returned_subject_ids: ex.returned.iter().map(|s| (*s).to_owned()).collect(),
                    returned_record_ids: ex
                        .returned_records
                        .iter()
                        .map(|s| (*s).to_owned())
                        .collect(),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .await
            .expect("outcome")
            .seq;
        (intent, outcome)
    }

    /// Writes a request refused before it was forwarded, as the proxy would (the intent's fields
    /// and a denial); returns its seq.
    pub async fn refused(&self, ex: Exchange<'_>, reason: &str) -> u64 {
        self.writer
            .append(Entry {
                kind: EntryKind::Denied as i32,
                operation: ex.operation as i32,
                actor: Some(officer(ex.actor)),
                subject_ids: ex.asked.iter().map(|s| (*s).to_owned()).collect(),
                request: Some(Request {
                    method: ex.method.into(),
                    path: ex.path.into(),
                    route: ex.route.into(),
                    request_id: format!("req-{}", ex.path),
                    ..Default::default()
                }),
                denial: Some(s62::log::entry::Denial {
                    reason: reason.into(),
                    detail: String::new(),
                }),
                ..Default::default()
            })
            .await
            .expect("denied")
            .seq
    }

    /// `n` consultations of subject `P-{i % 50}` by `pc-{i % 7}`.
    pub async fn background(&self, n: u64) {
        for i in 0..n {
            let subject = format!("P-{}", i % 50);
            self.exchange(Exchange {
                actor: &format!("pc-{}", i % 7),
                asked: &[&subject],
                returned: &[&subject],
                ..Exchange::default()
            })
            .await;
        }
    }
}

pub fn officer(id: &str) -> Actor {
    Actor {
        id: id.into(),
        display_name: format!("Officer {id}"),
        roles: vec!["investigator".into()],
        source_address: "10.0.0.5:40000".into(),
        auth_method: AuthMethod::Mtls as i32,
    }
}

/// One request through the proxy, as logged.
pub struct Exchange<'a> {
    pub actor: &'a str,
    pub operation: Operation,
    pub method: &'a str,
    pub path: &'a str,
    pub route: &'a str,
    pub why: &'a str,
    pub case: &'a str,
    pub asked: &'a [&'a str],
    pub records: &'a [&'a str],
    pub recipients: &'a [&'a str],
    pub returned: &'a [&'a str],
    pub returned_records: &'a [&'a str],
    /// The HTTP status the outcome records (200 by default).
    pub status: u32,
}

impl Default for Exchange<'_> {
    fn default() -> Self {
        Exchange {
            actor: "pc-1",
            operation: Operation::Consultation,
            method: "GET",
            path: "/people",
            route: "people.view",
            why: "routine",
            case: "OP-0",
            asked: &[],
            records: &[],
            recipients: &[],
            returned: &[],
            returned_records: &[],
            status: 200,
        }
    }
}

/// A lawful context for calls.
pub fn context() -> Option<CallContext> {
    Some(CallContext {
        purpose: AuditPurpose::SelfMonitoring as i32,
        case_reference: "PSD-2026-041".into(),
    })
}

/// A certificate and its key, as PEM, plus the DER.
pub struct Credential {
    pub cert_pem: String,
    pub key_pem: String,
    pub der: CertificateDer<'static>,
}

/// A client CA and the certificates it issues; files are written under `dir`.
pub struct Pki {
    pub dir: tempfile::TempDir,
    ca: CertifiedIssuer<'static, KeyPair>,
}

fn ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    CertifiedIssuer::self_signed(params, KeyPair::generate().expect("key")).expect("ca")
}

fn issue(
    ca: &CertifiedIssuer<'static, KeyPair>,
    cn: &str,
    sans: &[&str],
    usage: ExtendedKeyUsagePurpose,
) -> Credential {
    let mut params =
        CertificateParams::new(sans.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>())
            .expect("params");
    params.distinguished_name.push(DnType::CommonName, cn);
    params.extended_key_usages = vec![usage];
    let key = KeyPair::generate().expect("key");
    let cert = params.signed_by(&key, &**ca).expect("sign");
    Credential {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
        der: cert.der().clone(),
    }
}

impl Pki {
    pub fn new() -> Pki {
        Pki {
            dir: tempfile::tempdir().expect("tempdir"),
            ca: ca("s62 test client CA"),
        }
    }

    /// A client certificate issued by this CA.
    pub fn client(&self, cn: &str, sans: &[&str]) -> Credential {
        issue(&self.ca, cn, sans, ExtendedKeyUsagePurpose::ClientAuth)
    }

    /// A client certificate from a CA the server does not trust.
    pub fn foreign_client(&self, cn: &str) -> Credential {
        issue(
            &ca("someone else's CA"),
            cn,
            &[],
            ExtendedKeyUsagePurpose::ClientAuth,
        )
    }

    /// Writes `text` as NAME, replacing it whole (a temporary file renamed over it): a server
    /// task may be reading the same file, e.g. the CA that [`Pki::ca_path`] writes at every call,
    /// and must never see it truncated.
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        let tmp = tempfile::NamedTempFile::new_in(self.dir.path()).expect("temporary file");
        std::fs::write(tmp.path(), text).expect("write");
        tmp.persist(&p).expect("rename into place");
        p
    }

    /// Writes a credential as NAME.crt / NAME.key; returns the paths.
    pub fn write_credential(&self, name: &str, c: &Credential) -> (PathBuf, PathBuf) {
        (
            self.write(&format!("{name}.crt"), &c.cert_pem),
            self.write(&format!("{name}.key"), &c.key_pem),
        )
    }

    pub fn ca_path(&self) -> PathBuf {
        self.write("client-ca.crt", &self.ca.pem())
    }

    /// A client of the query service at `addr` over TLS, presenting `cred`; it trusts this CA,
    /// which issued the server's certificate for `localhost` ([`Pki::query_config`]).
    pub async fn tls_client(
        &self,
        addr: std::net::SocketAddr,
        cred: &Credential,
    ) -> AuditQueryClient<Channel> {
        let identity = Some((cred.cert_pem.as_str(), cred.key_pem.as_str()));
        AuditQueryClient::new(
            tls_channel(addr, &self.ca_path(), identity)
                .await
                .expect("connect over TLS"),
        )
    }

    /// A `[query]` configuration: server certificate for `localhost` (issued by the same CA, so
    /// clients can use `ca_path()` to trust it), client CA, the auditors of [`auditors`] and the
    /// default role table.
    pub fn query_config(&self) -> QueryConfig {
        let server = issue(
            &self.ca,
            "s62 query",
            &["localhost"],
            ExtendedKeyUsagePurpose::ServerAuth,
        );
        let (cert_file, key_file) = self.write_credential("server", &server);
        QueryConfig {
            address: "127.0.0.1:0".parse().expect("addr"),
            cert_file,
            key_file,
            client_ca_file: self.ca_path(),
            auditors: auditors(),
            roles: RoleTable::default(),
        }
    }
}

/// A TLS connection to the query service at `addr` (certificate for `localhost`), trusting `ca`,
/// presenting the PEM certificate and key in `identity` if any.
pub async fn tls_channel(
    addr: std::net::SocketAddr,
    ca: &std::path::Path,
    identity: Option<(&str, &str)>,
) -> Result<Channel, String> {
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(std::fs::read(ca).expect("ca")))
        .domain_name("localhost");
    if let Some((cert, key)) = identity {
        tls = tls.identity(Identity::from_pem(cert, key));
    }
    Endpoint::from_shared(format!("https://{addr}"))
        .expect("endpoint")
        .tls_config(tls)
        .expect("tls")
        .connect()
        .await
        .map_err(|e| format!("connect: {e}"))
}

/// Three auditors, one per role: `psd-alex` (auditor, matched by common name "Alex Auditor"),
/// `dpo` (dpo, by subject alternative name `dpo@example.police.uk`) and `ico-casey`
/// (commissioner, by common name "Casey Commissioner").
pub fn auditors() -> Vec<Auditor> {
    vec![
        Auditor {
            name: "psd-alex".into(),
            matcher: AuditorMatch::CommonName("Alex Auditor".into()),
            role: AuditorRole::Auditor,
        },
        Auditor {
            name: "dpo".into(),
            matcher: AuditorMatch::SubjectAltName("dpo@example.police.uk".into()),
            role: AuditorRole::Dpo,
        },
        Auditor {
            name: "ico-casey".into(),
            matcher: AuditorMatch::CommonName("Casey Commissioner".into()),
            role: AuditorRole::Commissioner,
        },
    ]
}

/// The query service over in-memory pipes; each `client` call is a new connection presenting
/// the given certificate (as a TLS layer would after verifying it).
pub struct InMemory {
    conns: mpsc::Sender<std::io::Result<Connection<tokio::io::DuplexStream>>>,
    stop: Option<oneshot::Sender<()>>,
}

impl InMemory {
    pub async fn start(log: &TestLog) -> InMemory {
        InMemory::serve(log.served(), log.writer.clone()).await
    }

    /// An audit hub's service: `copies` are read as the hub's verified copies of other logs;
    /// `own` is the hub's own log, which the service writes.
    pub async fn hub(own: &TestLog, copies: &[&TestLog]) -> InMemory {
        let served = copies.iter().map(|c| c.as_copy()).collect();
        let logs = QueryLogs::hub(
            served,
            own.writer.origin().to_owned(),
            own.store.clone() as Arc<dyn Store>,
            own.key.verifier(),
        );
        InMemory::serve(logs, own.writer.clone()).await
    }

    async fn serve(logs: QueryLogs, writer: LogWriter) -> InMemory {
        let (conns, rx) = mpsc::channel(16);
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(async move {
            serve_logs_incoming(
                tokio_stream::wrappers::ReceiverStream::new(rx),
                Auditors::new(auditors()),
                logs,
                writer,
                async {
                    let _ = stopped.await;
                },
            )
            .await
            .expect("serve");
        });
        InMemory {
            conns,
            stop: Some(stop),
        }
    }

    pub async fn client(&self, cert: Option<&Credential>) -> AuditQueryClient<Channel> {
        let (client_io, server_io) = tokio::io::duplex(64 * 1024);
        let peer = PeerInfo {
            remote_addr: Some("192.0.2.10:50000".parse().expect("addr")),
            certificates: cert.map(|c| Arc::new(vec![c.der.clone()])),
        };
        self.conns
            .send(Ok(Connection::new(server_io, peer)))
            .await
            .expect("server running");
        let mut client_io = Some(client_io);
        let channel = Endpoint::try_from("http://in-memory.invalid")
            .expect("endpoint")
            .connect_with_connector(tower::service_fn(move |_| {
                let io = client_io.take();
                async move {
                    io.map(TokioIo::new)
                        .ok_or_else(|| std::io::Error::other("one connection per client"))
                }
            }))
            .await
            .expect("connect");
        AuditQueryClient::new(channel)
    }
}

impl Drop for InMemory {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

/// The query service over real TLS on 127.0.0.1; returns the bound address.
pub async fn start_tls(log: &TestLog, cfg: &QueryConfig) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let cfg = cfg.clone();
    let store = log.store.clone() as Arc<dyn Store>;
    let writer = log.writer.clone();
    let verifier = log.key.verifier();
    tokio::spawn(async move {
        serve_query_on(
            listener,
            &cfg,
            store,
            writer,
            verifier,
            std::future::pending(),
        )
        .await
        .expect("serve");
    });
    addr
}
