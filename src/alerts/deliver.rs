//! Alert delivery: every `alert` entry of the log goes to every configured sink — a webhook
//! (HTTP POST of JSON) and a syslog collector (RFC 5424 over TCP, octet-counting framing, TLS
//! optional) — at least once and in seq order per sink.
//!
//! Each sink follows the committed log on its own: it lists alert seqs through the kind index
//! from its position, opens each entry, and sends it until the sink accepts it (2xx for the
//! webhook; a complete write on a connection still open for syslog), waiting 1 s, then 2 s, ...
//! up to 60 s between attempts. Later alerts wait behind a failing one; nothing is dropped. After
//! each delivery the sink's next seq is written to the state file (JSON, replaced atomically), so
//! a restart resumes after the last delivered alert; a crash between sending and recording sends
//! that alert again (receivers deduplicate on `origin` + `seq`). A sink with no recorded position
//! starts at the log's end when it is first enabled: an old log does not flood a new receiver.
//!
//! The message formats are plain functions ([`webhook_json`], [`syslog_message`],
//! [`octet_frame`]); sockets and files live in the tasks below them. Tracing lines carry sink
//! names, seqs and errors only — never actor or subject ids, names or details — and the
//! personal fields go on the wire only with `personal_data = true`.
//!
//! Must not depend on the proxy's request path, the writer or the query service: it reads the
//! log through the store and learns of new entries from the checkpoint watch. It reuses the
//! upstream HTTP client and the PEM helpers of `crate::proxy`, nothing else of it.

use std::collections::BTreeMap;
use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Request, Uri, header};
use http_body_util::{BodyExt, Full};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::ServerName;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{Mutex, watch};
use tokio_rustls::TlsConnector;

use crate::config::{AlertSinks, SyslogConfig, WebhookConfig};
use crate::ingest::LatestCheckpoint;
use crate::log::entry::{Entry, EntryKind};
use crate::log::index::IndexFamily;
use crate::log::store::{LogStore, Store, StoreError};
use crate::proxy::tls::{TlsError, certs, provider};
use crate::proxy::upstream::{ForwardError, Upstream, UpstreamError, UpstreamSettings};

/// The webhook sink's metric label.
pub const WEBHOOK: &str = "webhook";
/// The syslog sink's metric label.
pub const SYSLOG: &str = "syslog";

/// First wait after a failed delivery; it doubles up to [`BACKOFF_MAX`].
pub const BACKOFF_FIRST: Duration = Duration::from_secs(1);
/// Longest wait between attempts.
pub const BACKOFF_MAX: Duration = Duration::from_secs(60);
/// Time allowed to connect to the syslog collector, and again for one write.
const SYSLOG_IO_TIMEOUT: Duration = Duration::from_secs(10);
/// How often a sink with nothing to do looks at the log even without a new checkpoint.
const IDLE_RECHECK: Duration = Duration::from_secs(60);

/// The state file's format version.
const STATE_VERSION: u32 = 1;

/// `s62_alerts_delivered_total` and friends' label: which sink (`webhook` or `syslog`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SinkLabel {
    pub sink: &'static str,
}

/// What `/metrics` shows of delivery (shared handles; clone freely). Both sinks have series
/// from the start, at 0, so dashboards and alerts can be set up before the first alert.
#[derive(Clone, Debug)]
pub struct DeliveryMetrics {
    /// Alerts a sink accepted.
    pub delivered: Family<SinkLabel, Counter>,
    /// Attempts that failed (each is retried).
    pub failures: Family<SinkLabel, Counter>,
    /// Alerts committed and not yet delivered.
    pub pending: Family<SinkLabel, Gauge>,
}

impl Default for DeliveryMetrics {
    fn default() -> Self {
        let m = DeliveryMetrics {
            delivered: Family::default(),
            failures: Family::default(),
            pending: Family::default(),
        };
        for sink in ["webhook", "syslog"] {
            drop(m.delivered.get_or_create(&SinkLabel { sink }));
            drop(m.failures.get_or_create(&SinkLabel { sink }));
            drop(m.pending.get_or_create(&SinkLabel { sink }));
        }
        m
    }
}

impl DeliveryMetrics {
    /// Registers `s62_alerts_delivered_total{sink}`, `s62_alert_delivery_failures_total{sink}`
    /// and `s62_alert_delivery_pending{sink}`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "s62_alerts_delivered",
            "Alert entries delivered, by sink",
            self.delivered.clone(),
        );
        registry.register(
            "s62_alert_delivery_failures",
            "Failed alert delivery attempts (each is retried), by sink",
            self.failures.clone(),
        );
        registry.register(
            "s62_alert_delivery_pending",
            "Alert entries committed and not yet delivered, by sink",
            self.pending.clone(),
        );
    }

    /// Alerts `sink` has accepted so far.
    pub fn delivered_to(&self, sink: &'static str) -> u64 {
        self.delivered.get_or_create(&SinkLabel { sink }).get()
    }

    /// Failed attempts to deliver to `sink`.
    pub fn failures_of(&self, sink: &'static str) -> u64 {
        self.failures.get_or_create(&SinkLabel { sink }).get()
    }

    /// Alerts waiting for `sink`.
    pub fn pending_for(&self, sink: &'static str) -> i64 {
        self.pending.get_or_create(&SinkLabel { sink }).get()
    }
}

/// Why delivery could not start (nothing was delivered).
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// A CA file could not be read.
    #[error("{key} {path}: {source}")]
    CaFile {
        key: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The CA file held no usable certificate.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The webhook client could not be built.
    #[error("alerts.webhook: {0}")]
    Webhook(#[from] UpstreamError),
    /// The syslog TLS server name is not usable.
    #[error("alerts.syslog.server_name {0:?} is not a valid TLS server name")]
    ServerName(String),
    /// The state file exists but could not be read or understood.
    #[error("alert delivery state file {path}: {why}")]
    State { path: PathBuf, why: String },
    /// Reading the log for the starting position failed.
    #[error("reading the log: {0}")]
    Store(#[from] StoreError),
}

/// Why one delivery attempt failed (it is retried).
#[derive(Debug, thiserror::Error)]
enum SendError {
    /// The webhook answered with a non-2xx status.
    #[error("the receiver answered {0}")]
    Status(u16),
    /// The webhook could not be reached, or did not answer in time.
    #[error(transparent)]
    Http(#[from] ForwardError),
    /// The request could not be built.
    #[error("building the request: {0}")]
    Request(#[from] http::Error),
    /// The JSON body could not be encoded.
    #[error("encoding the alert: {0}")]
    Json(#[from] serde_json::Error),
    /// Connecting or writing to the syslog collector failed.
    #[error("syslog connection: {0}")]
    Io(#[from] io::Error),
    /// The syslog collector did not accept the connection or the write in time.
    #[error("syslog connection: no progress within {0:?}")]
    Timeout(Duration),
}

// ---------------------------------------------------------------------------------------------
// The messages (pure).

/// One alert as the sinks see it: the entry's alert fields and, for `personal_data`, its actor
/// and subject ids.
#[derive(Clone, Debug, PartialEq)]
pub struct AlertMessage {
    pub origin: String,
    pub seq: u64,
    /// When the entry was written, Unix nanoseconds.
    pub time_unix_nanos: i64,
    pub rule: String,
    /// The configured rule name; the rule until entries carry one.
    pub name: String,
    pub sighting_seq: u64,
    pub related_seq: u64,
    pub detail: String,
    /// Personal: only sent with `personal_data = true`.
    pub actor_id: String,
    /// Personal: only sent with `personal_data = true`.
    pub subject_ids: Vec<String>,
}

impl AlertMessage {
    /// The message for alert entry `e` of the log `origin` (an entry without alert fields gives
    /// empty ones: it is still delivered, so the receiver sees it exists).
    pub fn from_entry(origin: &str, e: &Entry) -> AlertMessage {
        let a = e.alert.clone().unwrap_or_default();
        AlertMessage {
            origin: origin.to_owned(),
            seq: e.seq,
            time_unix_nanos: e.time_unix_nanos,
            // Alerts written before rules had names carry none: the rule stands in.
            name: if a.name.is_empty() {
                a.rule.clone()
            } else {
                a.name
            },
            rule: a.rule,
            sighting_seq: a.sighting_seq,
            related_seq: a.related_seq,
            detail: a.detail,
            actor_id: e.actor.as_ref().map(|x| x.id.clone()).unwrap_or_default(),
            subject_ids: e.subject_ids.clone(),
        }
    }

    fn timestamp(&self) -> jiff::Timestamp {
        jiff::Timestamp::from_nanosecond(i128::from(self.time_unix_nanos))
            .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
    }
}

#[derive(Serialize)]
struct WebhookBody<'a> {
    origin: &'a str,
    seq: u64,
    time: String,
    rule: &'a str,
    name: &'a str,
    sighting_seq: u64,
    related_seq: u64,
    detail: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    actor_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    subject_ids: Option<&'a [String]>,
}

/// The webhook's JSON body; `actor_id` and `subject_ids` only when `personal_data`.
pub fn webhook_json(a: &AlertMessage, personal_data: bool) -> Result<Vec<u8>, serde_json::Error> {
    serde_json::to_vec(&WebhookBody {
        origin: &a.origin,
        seq: a.seq,
        time: a.timestamp().to_string(),
        rule: &a.rule,
        name: &a.name,
        sighting_seq: a.sighting_seq,
        related_seq: a.related_seq,
        detail: &a.detail,
        actor_id: personal_data.then_some(a.actor_id.as_str()),
        subject_ids: personal_data.then_some(a.subject_ids.as_slice()),
    })
}

/// The fixed parts of every syslog message.
#[derive(Clone, Debug, PartialEq)]
pub struct SyslogHeader {
    /// The facility code, 0..=23 (severity is always warning, 4).
    pub facility: u8,
    pub hostname: String,
    pub app_name: String,
    /// PROCID: the sidecar's process id.
    pub procid: String,
    /// The private enterprise number of the SD-ID `s62@N`.
    pub enterprise_number: u32,
}

/// Severity of every alert message: warning.
pub const SEVERITY_WARNING: u8 = 4;

/// One RFC 5424 message (without framing):
/// `<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID alert [s62@N origin=".." seq=".." rule=".."
/// name=".." sighting=".." related=".."] detail`, with `actor=".."` when `personal_data`.
/// The detail is BOM-free UTF-8 with control characters turned into spaces (one line).
pub fn syslog_message(a: &AlertMessage, h: &SyslogHeader, personal_data: bool) -> String {
    let pri = u16::from(h.facility) * 8 + u16::from(SEVERITY_WARNING);
    let time = format!("{:.6}", a.timestamp());
    let mut sd = format!(
        "[s62@{} origin=\"{}\" seq=\"{}\" rule=\"{}\" name=\"{}\" sighting=\"{}\" related=\"{}\"",
        h.enterprise_number,
        sd_escape(&a.origin),
        a.seq,
        sd_escape(&a.rule),
        sd_escape(&a.name),
        a.sighting_seq,
        a.related_seq,
    );
    if personal_data {
        sd.push_str(&format!(" actor=\"{}\"", sd_escape(&a.actor_id)));
    }
    sd.push(']');
    let mut msg = format!(
        "<{pri}>1 {time} {} {} {} alert {sd}",
        h.hostname, h.app_name, h.procid
    );
    let detail: String = a
        .detail
        .trim_start_matches('\u{feff}')
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if !detail.is_empty() {
        msg.push(' ');
        msg.push_str(&detail);
    }
    msg
}

/// An SD-PARAM value with `"`, `\` and `]` escaped (RFC 5424 section 6.3.3).
pub fn sd_escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if matches!(c, '"' | '\\' | ']') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Octet-counting framing (RFC 6587 section 3.4.1): `LEN SP MSG`, LEN in bytes.
pub fn octet_frame(msg: &str) -> Vec<u8> {
    let mut out = format!("{} ", msg.len()).into_bytes();
    out.extend_from_slice(msg.as_bytes());
    out
}

// ---------------------------------------------------------------------------------------------
// The state file.

/// What the state file holds: per sink, the next seq to deliver from.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeliveryState {
    version: u32,
    /// The log's origin: a state file of another log is refused.
    origin: String,
    sinks: BTreeMap<String, SinkProgress>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SinkProgress {
    /// Every alert below this seq has been delivered (or was older than the sink).
    next_seq: u64,
}

/// The state file and its content; writes are serialized by the mutex around it.
struct StateFile {
    path: PathBuf,
    state: DeliveryState,
}

impl StateFile {
    /// Reads the file (absent: a fresh state for `origin`).
    async fn load(path: PathBuf, origin: &str) -> Result<StateFile, DeliveryError> {
        let read_path = path.clone();
        let bytes = tokio::task::spawn_blocking(move || std::fs::read(&read_path))
            .await
            .map_err(|e| io::Error::other(e.to_string()));
        let bad = |why: String| DeliveryError::State {
            path: path.clone(),
            why,
        };
        let state = match bytes {
            Ok(Ok(bytes)) => {
                let state: DeliveryState = serde_json::from_slice(&bytes)
                    .map_err(|e| bad(format!("not a delivery state: {e}")))?;
                if state.version != STATE_VERSION {
                    return Err(bad(format!("unknown version {}", state.version)));
                }
                if state.origin != origin {
                    return Err(bad(format!(
                        "it belongs to the log {:?}, not {origin:?}",
                        state.origin
                    )));
                }
                state
            }
            Ok(Err(e)) if e.kind() == io::ErrorKind::NotFound => DeliveryState {
                version: STATE_VERSION,
                origin: origin.to_owned(),
                sinks: BTreeMap::new(),
            },
            Ok(Err(e)) | Err(e) => return Err(bad(e.to_string())),
        };
        Ok(StateFile { path, state })
    }

    /// Records `sink`'s position and writes the file atomically (temp, fsync, rename).
    async fn record(&mut self, sink: &'static str, next_seq: u64) -> io::Result<()> {
        self.state
            .sinks
            .insert(sink.to_owned(), SinkProgress { next_seq });
        let bytes = serde_json::to_vec_pretty(&self.state)?;
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || crate::fsutil::write_atomic(&path, &bytes))
            .await
            .map_err(|e| io::Error::other(e.to_string()))?
    }
}

// ---------------------------------------------------------------------------------------------
// The sinks.

/// The webhook: a pooled HTTP client for one URL.
struct WebhookSink {
    client: Upstream,
    url: Uri,
    headers: Vec<(HeaderName, HeaderValue)>,
    timeout: Duration,
    personal_data: bool,
}

impl WebhookSink {
    fn new(cfg: &WebhookConfig) -> Result<WebhookSink, DeliveryError> {
        let tls = match &cfg.ca_file {
            Some(ca) if cfg.is_https() => Some(client_tls(ca, "alerts.webhook.ca_file", true)?),
            _ => None,
        };
        let client = Upstream::new(&UpstreamSettings {
            url: cfg.url.clone(),
            tls,
            connect_timeout: cfg.timeout,
            response_timeout: cfg.timeout,
        })?;
        Ok(WebhookSink {
            client,
            url: cfg.url.clone(),
            headers: cfg.headers.clone(),
            timeout: cfg.timeout,
            personal_data: cfg.personal_data,
        })
    }

    async fn send(&mut self, a: &AlertMessage) -> Result<(), SendError> {
        let body = webhook_json(a, self.personal_data)?;
        let mut req = Request::post(self.url.clone())
            .header(header::CONTENT_TYPE, "application/json")
            .body(
                Full::new(Bytes::from(body))
                    .map_err(|never| match never {})
                    .boxed_unsync(),
            )?;
        if let Some(host) = self
            .url
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
        {
            req.headers_mut().insert(header::HOST, host);
        }
        for (name, value) in &self.headers {
            req.headers_mut().insert(name.clone(), value.clone());
        }
        let resp = self.client.send(req).await?;
        let status = resp.status();
        // Read and drop the body so the connection can be reused.
        let _ = tokio::time::timeout(self.timeout, resp.into_body().collect()).await;
        if status.is_success() {
            Ok(())
        } else {
            Err(SendError::Status(status.as_u16()))
        }
    }
}

/// A byte stream to the collector, plain or TLS.
trait Conn: AsyncRead + AsyncWrite + Unpin + Send + Sync {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + Sync> Conn for T {}

/// The syslog collector: one persistent connection, made again after any error.
struct SyslogSink {
    address: String,
    tls: Option<(TlsConnector, ServerName<'static>)>,
    conn: Option<Box<dyn Conn>>,
    header: SyslogHeader,
    personal_data: bool,
}

impl SyslogSink {
    fn new(cfg: &SyslogConfig) -> Result<SyslogSink, DeliveryError> {
        let tls = match &cfg.tls {
            None => None,
            Some(t) => {
                let config = client_tls(&t.ca_file, "alerts.syslog.ca_file", false)?;
                let name = ServerName::try_from(t.server_name.clone())
                    .map_err(|_| DeliveryError::ServerName(t.server_name.clone()))?;
                Some((TlsConnector::from(config), name))
            }
        };
        let hostname = cfg.hostname.clone().unwrap_or_else(machine_hostname);
        Ok(SyslogSink {
            address: cfg.address(),
            tls,
            conn: None,
            header: SyslogHeader {
                facility: cfg.facility.code(),
                hostname,
                app_name: cfg.app_name.clone(),
                procid: std::process::id().to_string(),
                enterprise_number: cfg.enterprise_number,
            },
            personal_data: cfg.personal_data,
        })
    }

    async fn connect(&self) -> Result<Box<dyn Conn>, SendError> {
        let tcp = within(TcpStream::connect(self.address.as_str())).await?;
        tcp.set_nodelay(true)?;
        match &self.tls {
            None => Ok(Box::new(tcp)),
            Some((connector, name)) => {
                let tls = within(connector.connect(name.clone(), tcp)).await?;
                Ok(Box::new(tls))
            }
        }
    }

    async fn send(&mut self, a: &AlertMessage) -> Result<(), SendError> {
        let frame = octet_frame(&syslog_message(a, &self.header, self.personal_data));
        // A collector that closed the connection (restart, idle timeout) would swallow the next
        // write: the kernel accepts it and the peer resets. Look for the close first.
        if let Some(conn) = self.conn.as_mut()
            && !still_open(conn.as_mut()).await
        {
            self.conn = None;
        }
        let mut conn = match self.conn.take() {
            Some(c) => c,
            None => self.connect().await?,
        };
        let written = tokio::time::timeout(SYSLOG_IO_TIMEOUT, async {
            conn.write_all(&frame).await?;
            conn.flush().await
        })
        .await;
        match written {
            Ok(Ok(())) => {
                self.conn = Some(conn);
                Ok(())
            }
            // The connection is dropped: the retry makes a fresh one.
            Ok(Err(e)) => Err(SendError::Io(e)),
            Err(_) => Err(SendError::Timeout(SYSLOG_IO_TIMEOUT)),
        }
    }
}

/// `io` within [`SYSLOG_IO_TIMEOUT`].
async fn within<T>(io: impl Future<Output = io::Result<T>>) -> Result<T, SendError> {
    match tokio::time::timeout(SYSLOG_IO_TIMEOUT, io).await {
        Ok(done) => Ok(done?),
        Err(_) => Err(SendError::Timeout(SYSLOG_IO_TIMEOUT)),
    }
}

/// Whether the collector has not closed or broken the connection (it never sends us data; any
/// it does send is read and ignored).
async fn still_open(conn: &mut dyn Conn) -> bool {
    let mut buf = [0u8; 512];
    loop {
        // A zero timeout polls the read once: pending means open and quiet.
        match tokio::time::timeout(Duration::ZERO, conn.read(&mut buf)).await {
            Err(_) => return true,
            Ok(Ok(0)) | Ok(Err(_)) => return false,
            Ok(Ok(_)) => continue,
        }
    }
}

/// The machine's hostname for RFC 5424 HOSTNAME, or `-` (NILVALUE) when it is unknown.
fn machine_hostname() -> String {
    let read = |p: &str| std::fs::read_to_string(p).ok();
    let name = read("/proc/sys/kernel/hostname")
        .or_else(|| read("/etc/hostname"))
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_default();
    let name = name.trim();
    if name.is_empty() || name.len() > 255 || !name.bytes().all(|b| (33..=126).contains(&b)) {
        "-".to_owned()
    } else {
        name.to_owned()
    }
}

/// A client TLS config trusting only the certificates in `ca_file`.
fn client_tls(
    ca_file: &std::path::Path,
    key: &'static str,
    http: bool,
) -> Result<Arc<ClientConfig>, DeliveryError> {
    let pem = std::fs::read(ca_file).map_err(|source| DeliveryError::CaFile {
        key,
        path: ca_file.to_owned(),
        source,
    })?;
    let mut roots = RootCertStore::empty();
    for c in certs(&pem, key)? {
        roots.add(c).map_err(|source| TlsError::Rustls {
            what: key.to_owned(),
            source,
        })?;
    }
    let mut cfg = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|source| TlsError::Rustls {
            what: key.to_owned(),
            source,
        })?
        .with_root_certificates(roots)
        .with_no_client_auth();
    if http {
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    }
    Ok(Arc::new(cfg))
}

enum Sink {
    Webhook(Box<WebhookSink>),
    Syslog(SyslogSink),
}

impl Sink {
    fn label(&self) -> &'static str {
        match self {
            Sink::Webhook(_) => WEBHOOK,
            Sink::Syslog(_) => SYSLOG,
        }
    }

    async fn send(&mut self, a: &AlertMessage) -> Result<(), SendError> {
        match self {
            Sink::Webhook(s) => s.send(a).await,
            Sink::Syslog(s) => s.send(a).await,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The task.

/// Delivers every alert entry to every sink in `sinks` until `stop` resolves.
///
/// Returns an error only before delivering anything: a CA file that does not read, or a state
/// file that is not this log's. `state_file` is `<log.data_dir>/alert-delivery.json` in the
/// sidecar. On `stop`, a delivery in flight finishes (bounded by its timeouts) and its position
/// is recorded; waits between attempts end at once.
pub async fn run(
    sinks: AlertSinks,
    origin: String,
    store: Arc<dyn Store>,
    checkpoints: watch::Receiver<LatestCheckpoint>,
    state_file: PathBuf,
    metrics: DeliveryMetrics,
    stop: impl Future<Output = ()>,
) -> Result<(), DeliveryError> {
    let mut active = Vec::new();
    if let Some(w) = &sinks.webhook {
        active.push(Sink::Webhook(Box::new(WebhookSink::new(w)?)));
    }
    if let Some(s) = &sinks.syslog {
        active.push(Sink::Syslog(SyslogSink::new(s)?));
    }
    if active.is_empty() {
        stop.await;
        return Ok(());
    }
    let mut file = StateFile::load(state_file, &origin).await?;
    // A sink with no recorded position starts at the log's end (nothing older is sent).
    let end = {
        let store = store.clone();
        tokio::task::spawn_blocking(move || store.entry_count())
            .await
            .map_err(|e| StoreError::Backend(e.to_string()))??
    };
    let mut starts = Vec::new();
    for sink in &active {
        let label = sink.label();
        let start = match file.state.sinks.get(label) {
            Some(p) => p.next_seq,
            None => {
                if let Err(e) = file.record(label, end).await {
                    tracing::error!(sink = label, error = %e, "alert delivery state not written");
                }
                tracing::info!(
                    sink = label,
                    from_seq = end,
                    "alert delivery starts at the log's end"
                );
                end
            }
        };
        starts.push(start);
    }
    let file = Arc::new(Mutex::new(file));
    let (stopping_tx, stopping) = watch::channel(false);
    let mut followers = tokio::task::JoinSet::new();
    for (sink, start) in active.into_iter().zip(starts) {
        let follower = Follower {
            sink,
            origin: origin.clone(),
            store: store.clone(),
            checkpoints: checkpoints.clone(),
            file: file.clone(),
            metrics: metrics.clone(),
            stopping: stopping.clone(),
            next: start,
        };
        followers.spawn(follower.run());
    }
    tokio::pin!(stop);
    tokio::select! {
        () = &mut stop => {}
        // Followers only end on stop; if one ends early (a panic), stop the others too.
        _ = followers.join_next() => {}
    }
    let _ = stopping_tx.send(true);
    while followers.join_next().await.is_some() {}
    Ok(())
}

/// One sink following the log.
struct Follower {
    sink: Sink,
    origin: String,
    store: Arc<dyn Store>,
    checkpoints: watch::Receiver<LatestCheckpoint>,
    file: Arc<Mutex<StateFile>>,
    metrics: DeliveryMetrics,
    stopping: watch::Receiver<bool>,
    /// The next seq to deliver from.
    next: u64,
}

impl Follower {
    async fn run(mut self) {
        let label = self.sink.label();
        while !*self.stopping.borrow() {
            let pending = match self.pending().await {
                Ok(p) => p,
                Err(e) => {
                    tracing::error!(sink = label, error = %e, "alert delivery could not read the log");
                    self.idle(BACKOFF_MAX).await;
                    continue;
                }
            };
            // A shared handle: the family's lock is not held across the awaits below.
            let gauge = self
                .metrics
                .pending
                .get_or_create(&SinkLabel { sink: label })
                .clone();
            gauge.set(i64::try_from(pending.len()).unwrap_or(i64::MAX));
            if pending.is_empty() {
                self.idle(IDLE_RECHECK).await;
                continue;
            }
            for seq in pending {
                if *self.stopping.borrow() {
                    return; // the alerts left are delivered after the restart
                }
                let message = match self.open(seq).await {
                    Ok(m) => m,
                    Err(e) => {
                        tracing::error!(sink = label, seq, error = %e, "alert entry could not be read");
                        self.idle(BACKOFF_MAX).await;
                        break;
                    }
                };
                if !self.deliver(&message).await {
                    return; // stopping
                }
                self.next = seq + 1;
                gauge.dec();
                let recorded = self.file.lock().await.record(label, self.next).await;
                if let Err(e) = recorded {
                    // Delivered anyway; a restart before the next record sends it again.
                    tracing::error!(sink = label, seq, error = %e, "alert delivery state not written");
                }
            }
        }
    }

    /// Sends `m` until the sink accepts it (`true`) or delivery stops (`false`).
    async fn deliver(&mut self, m: &AlertMessage) -> bool {
        let label = self.sink.label();
        let mut wait = BACKOFF_FIRST;
        loop {
            match self.sink.send(m).await {
                Ok(()) => {
                    self.metrics
                        .delivered
                        .get_or_create(&SinkLabel { sink: label })
                        .inc();
                    tracing::debug!(sink = label, seq = m.seq, "alert delivered");
                    return true;
                }
                Err(e) => {
                    self.metrics
                        .failures
                        .get_or_create(&SinkLabel { sink: label })
                        .inc();
                    tracing::warn!(
                        sink = label,
                        seq = m.seq,
                        retry_in_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                        error = %e,
                        "alert delivery failed; retrying"
                    );
                    // Alerts committed while this one fails are waiting too: count them.
                    if let Ok(p) = self.pending().await {
                        self.metrics
                            .pending
                            .get_or_create(&SinkLabel { sink: label })
                            .set(i64::try_from(p.len()).unwrap_or(i64::MAX));
                    }
                }
            }
            let mut stopping = self.stopping.clone();
            tokio::select! {
                _ = stopping.wait_for(|s| *s) => return false,
                () = tokio::time::sleep(wait) => {}
            }
            wait = (wait * 2).min(BACKOFF_MAX);
        }
    }

    /// Alert seqs from `next` on, ascending.
    async fn pending(&self) -> Result<Vec<u64>, StoreError> {
        let (store, from) = (self.store.clone(), self.next);
        tokio::task::spawn_blocking(move || {
            let mut out: Vec<u64> = Vec::new();
            loop {
                let start = out.last().map_or(from, |s| s + 1);
                let page =
                    store.index_seqs(IndexFamily::Kind, EntryKind::Alert.label(), start, 1024)?;
                let done = page.len() < 1024;
                out.extend(page);
                if done {
                    return Ok(out);
                }
            }
        })
        .await
        .map_err(|e| StoreError::Backend(e.to_string()))?
    }

    async fn open(&self, seq: u64) -> Result<AlertMessage, StoreError> {
        let store = self.store.clone();
        let opened = tokio::task::spawn_blocking(move || store.opened(seq))
            .await
            .map_err(|e| StoreError::Backend(e.to_string()))??
            .ok_or_else(|| {
                StoreError::Corrupt(format!("alert entry {seq} is indexed but missing"))
            })?;
        Ok(AlertMessage::from_entry(&self.origin, &opened.entry))
    }

    /// Waits for a new checkpoint, `at_most`, or stop.
    async fn idle(&mut self, at_most: Duration) {
        let mut stopping = self.stopping.clone();
        let writer_gone = tokio::select! {
            _ = stopping.wait_for(|s| *s) => false,
            changed = self.checkpoints.changed() => changed.is_err(),
            () = tokio::time::sleep(at_most) => false,
        };
        if writer_gone {
            // No new alerts can come: wait for stop.
            let _ = stopping.wait_for(|s| *s).await;
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::log::entry::{Actor, Alert};

    fn alert() -> AlertMessage {
        let e = Entry {
            seq: 41,
            kind: EntryKind::Alert as i32,
            time_unix_nanos: 1_764_650_000_123_456_789,
            actor: Some(Actor {
                id: "officer-7".into(),
                ..Default::default()
            }),
            subject_ids: vec!["P-1001".into()],
            alert: Some(Alert {
                rule: "zombie".into(),
                sighting_seq: 40,
                related_seq: 12,
                detail: "seen \"again\" ] \\ \n next".into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        AlertMessage::from_entry("records.example/s62", &e)
    }

    fn header() -> SyslogHeader {
        SyslogHeader {
            facility: 10,
            hostname: "records-01".into(),
            app_name: "s62".into(),
            procid: "77".into(),
            enterprise_number: 32473,
        }
    }

    #[test]
    fn the_webhook_json_leaves_out_personal_fields_unless_asked() {
        let body: serde_json::Value =
            serde_json::from_slice(&webhook_json(&alert(), false).unwrap()).unwrap();
        assert_eq!(
            body,
            serde_json::json!({
                "origin": "records.example/s62",
                "seq": 41,
                "time": "2025-12-02T04:33:20.123456789Z",
                "rule": "zombie",
                "name": "zombie",
                "sighting_seq": 40,
                "related_seq": 12,
                "detail": "seen \"again\" ] \\ \n next",
            })
        );
        let body: serde_json::Value =
            serde_json::from_slice(&webhook_json(&alert(), true).unwrap()).unwrap();
        assert_eq!(body["actor_id"], "officer-7");
        assert_eq!(body["subject_ids"], serde_json::json!(["P-1001"]));
    }

    #[test]
    fn the_syslog_message_is_rfc5424_with_escaped_sd_values_and_one_line() {
        let msg = syslog_message(&alert(), &header(), false);
        assert_eq!(
            msg,
            "<84>1 2025-12-02T04:33:20.123456Z records-01 s62 77 alert \
             [s62@32473 origin=\"records.example/s62\" seq=\"41\" rule=\"zombie\" \
             name=\"zombie\" sighting=\"40\" related=\"12\"] seen \"again\" ] \\   next"
        );
        assert!(!msg.contains("officer-7") && !msg.contains("P-1001"));
        let mut a = alert();
        a.actor_id = "o\"ff]ic\\er".into();
        let msg = syslog_message(&a, &header(), true);
        assert!(
            msg.contains(" related=\"12\" actor=\"o\\\"ff\\]ic\\\\er\"]"),
            "{msg}"
        );
    }

    #[test]
    fn an_empty_detail_ends_the_message_at_the_structured_data() {
        let mut a = alert();
        a.detail.clear();
        assert!(syslog_message(&a, &header(), false).ends_with("related=\"12\"]"));
    }

    #[test]
    fn octet_counting_counts_bytes_not_characters() {
        assert_eq!(octet_frame("é"), b"2 \xc3\xa9");
        assert_eq!(octet_frame("<84>1 -"), b"7 <84>1 -");
    }

    #[test]
    fn sd_escape_escapes_exactly_quote_backslash_and_bracket() {
        assert_eq!(sd_escape(r#"a"b\c]d[e="#), r#"a\"b\\c\]d[e="#);
    }
}
