//! Shared scenario scaffolding for the proxy tests: a real upstream (the demo records service,
//! counting the requests that reach it) on a loopback port, an s62 proxy in front of it over an
//! in-memory store that can fail or hold its writes, and a reader for what the log holds.
//!
//! [`Upstream::start_lenient`] puts a few lines of the behaviour of common frameworks in front of
//! the records service — the second upstream the attack scenarios run against: it obeys
//! method-override headers and `_method` (Spring's HiddenHttpMethodFilter, Express'
//! method-override), `X-Original-URL`/`X-Rewrite-URL` (Symfony, IIS), drops `;` path parameters
//! before resolving `..` (Tomcat/Spring: `/objects/..;/exports` is `/exports`), strips a `.json`
//! suffix (Spring's suffix pattern match) and does not decode query keys.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use s62::config::Config;
use s62::ingest::{LogWriter, WriterConfig, WriterTask};
use s62::log::entry::{Entry, EntryKind};
use s62::log::note::SignerKey;
use s62::log::store::memory::MemoryStore;
use s62::log::store::{LogStore, Store, StoreError};
use s62::proxy::upstream::UpstreamSettings;
use s62::proxy::{Proxy, ProxySettings};
use s62::records::Records;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

pub const ORIGIN: &str = "test.s62/proxy";

/// The shipped example's routes, over plain HTTP, identity from `x-s62-user` set by a loopback
/// gateway (`Config::demo`). Tests adjust fields from here.
pub fn config() -> Config {
    Config::demo(
        "/nonexistent/s62-test".into(),
        "/nonexistent/s62-test.key".into(),
        "127.0.0.1:0".parse().expect("addr"),
        "http://127.0.0.1:1".parse().expect("uri"),
    )
}

/// Proxy settings from `cfg`, pointed at `upstream`.
pub fn settings(cfg: &Config, upstream: SocketAddr) -> ProxySettings {
    let mut s = ProxySettings::from_config(cfg).expect("settings");
    s.upstream = UpstreamSettings {
        url: format!("http://{upstream}").parse().expect("uri"),
        ..s.upstream
    };
    s
}

pub fn key() -> SignerKey {
    SignerKey::from_seed(ORIGIN, [9u8; 32]).expect("key")
}

/// An in-memory store whose writes can be failed (full disk) or held until released.
#[derive(Default)]
pub struct TestStore {
    pub inner: MemoryStore,
    /// `None`: writes pass. `Some(n)`: n more writes pass, then writes wait.
    allowance: Mutex<Option<usize>>,
    released: Condvar,
    pub writes: AtomicUsize,
}

impl TestStore {
    pub fn new() -> Arc<TestStore> {
        Arc::new(TestStore::default())
    }

    pub fn set_failing(&self, failing: bool) {
        self.inner.set_failing(failing);
    }

    /// Let `n` more writes through, then hold every further write until [`TestStore::release`].
    pub fn hold_after(&self, n: usize) {
        *self.allowance.lock().unwrap() = Some(n);
    }

    pub fn release(&self) {
        *self.allowance.lock().unwrap() = None;
        self.released.notify_all();
    }

    /// Every entry the log holds, with its personal values put back (format 2).
    pub fn entries(&self) -> Vec<Entry> {
        self.inner
            .opened_entries(0, 100_000)
            .expect("entries and values match")
            .into_iter()
            .map(|o| o.entry)
            .collect()
    }

    pub fn of_kind(&self, kind: EntryKind) -> Vec<Entry> {
        self.entries()
            .into_iter()
            .filter(|e| e.kind == kind as i32)
            .collect()
    }
}

impl Store for TestStore {
    fn write(&self, puts: &[(Vec<u8>, Vec<u8>)]) -> Result<(), StoreError> {
        let mut a = self.allowance.lock().unwrap();
        loop {
            match *a {
                None => break,
                Some(0) => a = self.released.wait(a).unwrap(),
                Some(n) => {
                    *a = Some(n - 1);
                    break;
                }
            }
        }
        drop(a);
        let r = self.inner.write(puts);
        if r.is_ok() {
            self.writes.fetch_add(1, Ordering::SeqCst);
        }
        r
    }
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.get(key)
    }
    fn scan(
        &self,
        prefix: &[u8],
        from: &[u8],
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>, StoreError> {
        self.inner.scan(prefix, from, limit)
    }
    fn last(&self, prefix: &[u8]) -> Result<Option<(Vec<u8>, Vec<u8>)>, StoreError> {
        self.inner.last(prefix)
    }
}

/// The records service on a loopback port, counting the requests that reach it.
pub struct Upstream {
    pub addr: SocketAddr,
    pub hits: Arc<AtomicUsize>,
    pub records: Records,
    /// Set to make the upstream wait this long before answering.
    pub delay: Arc<Mutex<Duration>>,
    /// Headers of the last request received.
    pub last_headers: Arc<Mutex<Option<http::HeaderMap>>>,
    /// Bodies of the requests received.
    pub bodies: Arc<Mutex<Vec<Bytes>>>,
    /// Method and target the records service finally served (after any lenient rewriting).
    pub served: Arc<Mutex<Vec<(String, String)>>>,
}

/// How the test upstream deviates from the plain records service.
#[derive(Clone, Default)]
pub struct Tweaks {
    /// A path that answers with this many bytes of JSON.
    pub big: Option<(&'static str, usize)>,
    /// Behave like a framework that obeys overrides, `;` and suffixes (see the module doc).
    pub lenient: bool,
    /// A path answered with (content type, content encoding, body) instead of by the records.
    pub canned: Option<(
        &'static str,
        &'static str,
        Option<&'static str>,
        &'static [u8],
    )>,
    /// A path whose body trickles forever: one small chunk every 100 ms.
    pub trickle: Option<&'static str>,
}

/// What a lenient framework does to a request before its handlers see it.
pub fn lenient_rewrite(parts: &mut http::request::Parts) {
    for h in [
        "x-http-method-override",
        "x-http-method",
        "x-method-override",
    ] {
        if let Some(m) = parts
            .headers
            .get(h)
            .and_then(|v| http::Method::from_bytes(v.as_bytes()).ok())
        {
            parts.method = m;
        }
    }
    let mut path = parts.uri.path().to_owned();
    let mut query = parts.uri.query().map(str::to_owned);
    for h in ["x-original-url", "x-rewrite-url"] {
        if let Some(v) = parts.headers.get(h).and_then(|v| v.to_str().ok()) {
            let (p, q) = v.split_once('?').unwrap_or((v, ""));
            path = p.to_owned();
            query = (!q.is_empty()).then(|| q.to_owned());
        }
    }
    if let Some(m) = query.as_deref().and_then(|q| {
        q.split('&')
            .find_map(|kv| kv.strip_prefix("_method="))
            .and_then(|m| http::Method::from_bytes(m.to_ascii_uppercase().as_bytes()).ok())
    }) {
        parts.method = m;
    }
    // Tomcat: path parameters go before `..` is resolved; Spring: `.json` is a suffix.
    let mut segments: Vec<String> = Vec::new();
    for raw in path.split('/').filter(|s| !s.is_empty()) {
        let seg = raw.split(';').next().unwrap_or("");
        match seg {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s.strip_suffix(".json").unwrap_or(s).to_owned()),
        }
    }
    // Query keys are not decoded: `%73urname` is not `surname` here.
    let query = query.map(|q| {
        q.split('&')
            .map(|kv| match kv.split_once('=') {
                Some((k, v)) => format!("{}={v}", k.replace('%', "%25")),
                None => kv.replace('%', "%25"),
            })
            .collect::<Vec<_>>()
            .join("&")
    });
    let target = match query {
        Some(q) => format!("/{}?{q}", segments.join("/")),
        None => format!("/{}", segments.join("/")),
    };
    parts.uri = target.parse().expect("rewritten target");
}

impl Upstream {
    pub async fn start() -> Upstream {
        Self::start_tweaked(Records::demo(), Tweaks::default()).await
    }

    /// The records service behind the framework behaviour of [`lenient_rewrite`].
    pub async fn start_lenient() -> Upstream {
        Self::start_tweaked(
            Records::demo(),
            Tweaks {
                lenient: true,
                ..Tweaks::default()
            },
        )
        .await
    }

    /// `big`: a path that answers with this many bytes of JSON (for streaming tests).
    pub async fn start_with(records: Records, big: Option<(&'static str, usize)>) -> Upstream {
        Self::start_tweaked(
            records,
            Tweaks {
                big,
                ..Tweaks::default()
            },
        )
        .await
    }

    pub async fn start_tweaked(records: Records, tweaks: Tweaks) -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let hits = Arc::new(AtomicUsize::new(0));
        let delay = Arc::new(Mutex::new(Duration::ZERO));
        let last_headers = Arc::new(Mutex::new(None));
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let served = Arc::new(Mutex::new(Vec::new()));
        let up = Upstream {
            addr,
            hits: hits.clone(),
            records: records.clone(),
            delay: delay.clone(),
            last_headers: last_headers.clone(),
            bodies: bodies.clone(),
            served: served.clone(),
        };
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let records = records.clone();
                let hits = hits.clone();
                let delay = delay.clone();
                let last_headers = last_headers.clone();
                let bodies = bodies.clone();
                let served = served.clone();
                let tweaks = tweaks.clone();
                let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let records = records.clone();
                    let hits = hits.clone();
                    let delay = *delay.lock().unwrap();
                    let last_headers = last_headers.clone();
                    let bodies = bodies.clone();
                    let served = served.clone();
                    let tweaks = tweaks.clone();
                    async move {
                        hits.fetch_add(1, Ordering::SeqCst);
                        *last_headers.lock().unwrap() = Some(req.headers().clone());
                        if !delay.is_zero() {
                            tokio::time::sleep(delay).await;
                        }
                        let (mut parts, body) = req.into_parts();
                        if tweaks.lenient {
                            lenient_rewrite(&mut parts);
                        }
                        served
                            .lock()
                            .unwrap()
                            .push((parts.method.to_string(), parts.uri.to_string()));
                        let body = body
                            .collect()
                            .await
                            .map(|c| c.to_bytes())
                            .unwrap_or_default();
                        bodies.lock().unwrap().push(body.clone());
                        if let Some(path) = tweaks.trickle
                            && parts.uri.path() == path
                        {
                            let chunks = futures_chunks();
                            let mut r = Response::new(chunks);
                            r.headers_mut()
                                .insert("content-type", "application/json".parse().unwrap());
                            return Ok::<_, std::convert::Infallible>(r);
                        }
                        if let Some((path, ctype, encoding, bytes)) = tweaks.canned
                            && parts.uri.path() == path
                        {
                            let mut r = Response::new(boxed(Full::new(Bytes::from_static(bytes))));
                            r.headers_mut()
                                .insert("content-type", ctype.parse().unwrap());
                            if let Some(e) = encoding {
                                r.headers_mut()
                                    .insert("content-encoding", e.parse().unwrap());
                            }
                            return Ok(r);
                        }
                        if let Some((path, n)) = tweaks.big
                            && parts.uri.path() == path
                        {
                            let filler = "x".repeat(n);
                            let json = format!(
                                "{{\"id\":\"E-4001\",\"people\":[{{\"id\":\"P-1001\"}}],\"blob\":\"{filler}\"}}"
                            );
                            let mut r = Response::new(boxed(Full::new(Bytes::from(json))));
                            r.headers_mut()
                                .insert("content-type", "application/json".parse().unwrap());
                            return Ok(r);
                        }
                        let req = Request::from_parts(parts, Full::new(body));
                        Ok(records.handle(req).await.map(boxed))
                    }
                });
                tokio::spawn(async move {
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        up
    }

    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

type TestBody = http_body_util::combinators::UnsyncBoxBody<Bytes, std::convert::Infallible>;

fn boxed(b: Full<Bytes>) -> TestBody {
    b.boxed_unsync()
}

/// A JSON body that never ends: `[` then `0,` every 100 ms.
fn futures_chunks() -> TestBody {
    let stream = futures_stream();
    http_body_util::StreamBody::new(stream).boxed_unsync()
}

fn futures_stream()
-> impl tokio_stream::Stream<Item = Result<http_body::Frame<Bytes>, std::convert::Infallible>>
+ Send
+ 'static {
    use tokio_stream::StreamExt;
    let first = tokio_stream::iter([Ok(http_body::Frame::data(Bytes::from_static(b"[")))]);
    let rest = tokio_stream::wrappers::IntervalStream::new(tokio::time::interval(
        Duration::from_millis(100),
    ))
    .map(|_| Ok(http_body::Frame::data(Bytes::from_static(b"0,"))));
    first.chain(rest)
}

/// An s62 proxy on a loopback port in front of `upstream`.
pub struct Sidecar {
    pub addr: SocketAddr,
    pub store: Arc<TestStore>,
    pub writer: LogWriter,
    stop: Option<oneshot::Sender<()>>,
    served: Option<tokio::task::JoinHandle<()>>,
    task: Option<WriterTask>,
}

impl Sidecar {
    pub async fn start(settings: ProxySettings) -> Sidecar {
        Self::start_on(settings, TestStore::new()).await
    }

    pub async fn start_on(settings: ProxySettings, store: Arc<TestStore>) -> Sidecar {
        Self::start_with_writer(settings, store, WriterConfig::new(ORIGIN)).await
    }

    pub async fn start_with_writer(
        settings: ProxySettings,
        store: Arc<TestStore>,
        writer_config: WriterConfig,
    ) -> Sidecar {
        let (writer, task) =
            LogWriter::start(store.clone() as Arc<dyn Store>, key(), writer_config)
                .expect("writer");
        let proxy = Proxy::new(settings, writer.clone()).expect("proxy");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (stop, stopped) = oneshot::channel::<()>();
        let served = tokio::spawn(proxy.serve(listener, async {
            let _ = stopped.await;
        }));
        Sidecar {
            addr,
            store,
            writer,
            stop: Some(stop),
            served: Some(served),
            task: Some(task),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Stops the proxy and drains the writer.
    pub async fn stop(mut self) -> Arc<TestStore> {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(h) = self.served.take() {
            let _ = tokio::time::timeout(Duration::from_secs(35), h).await;
        }
        if let Some(t) = self.task.take() {
            t.shutdown_async().await;
        }
        self.store.clone()
    }
}

/// A plain HTTP/1.1 client over hyper.
pub fn client() -> hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    Full<Bytes>,
> {
    hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build_http()
}

/// A response read in full.
pub struct Reply {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
}

/// Sends a request as officer `pc-4021` through a trusted gateway, with `extra` headers.
pub async fn send(
    method: &str,
    url: &str,
    body: Option<serde_json::Value>,
    extra: &[(&str, &str)],
) -> Reply {
    let mut b = Request::builder().method(method).uri(url);
    b = b
        .header("x-s62-user", "pc-4021")
        .header("x-s62-user-name", "PC 4021 Sam Patel")
        .header("x-s62-roles", "officer,response");
    for (k, v) in extra {
        b = b.header(*k, *v);
    }
    let body = match body {
        Some(v) => {
            b = b.header("content-type", "application/json");
            Bytes::from(v.to_string())
        }
        None => Bytes::new(),
    };
    let resp = client()
        .request(b.body(Full::new(body)).expect("request"))
        .await
        .expect("response");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    Reply {
        status,
        headers,
        body,
    }
}

/// The justification headers an officer sends.
pub const JUSTIFIED: &[(&str, &str)] = &[
    ("x-s62-purpose", "investigation"),
    (
        "x-s62-justification",
        "Enquiries into burglary at Marsh Lane",
    ),
    ("x-s62-case-ref", "44260103-0112"),
];

/// Sends raw body bytes as officer `pc-4021`, with the given content type (or none), and `extra`
/// headers appended (so a header can be sent twice).
pub async fn send_bytes(
    method: &str,
    url: &str,
    content_type: Option<&str>,
    body: &[u8],
    extra: &[(&str, &str)],
) -> Reply {
    let mut b = Request::builder()
        .method(method)
        .uri(url)
        .header("x-s62-user", "pc-4021")
        .header("x-s62-user-name", "PC 4021 Sam Patel")
        .header("x-s62-roles", "officer,response");
    if let Some(ct) = content_type {
        b = b.header("content-type", ct);
    }
    for (k, v) in extra {
        b = b.header(*k, *v);
    }
    finish(b, Bytes::copy_from_slice(body)).await
}

/// Sends a request with exactly the headers given (no identity added).
pub async fn send_headers(method: &str, url: &str, headers: &[(&str, &str)]) -> Reply {
    let mut b = Request::builder().method(method).uri(url);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    finish(b, Bytes::new()).await
}

async fn finish(b: http::request::Builder, body: Bytes) -> Reply {
    let resp = client()
        .request(b.body(Full::new(body)).expect("request"))
        .await
        .expect("response");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    Reply {
        status,
        headers,
        body,
    }
}

/// Entries of `kind` whose request id is `id`.
pub fn for_request(store: &TestStore, kind: EntryKind, id: &str) -> Vec<Entry> {
    store
        .of_kind(kind)
        .into_iter()
        .filter(|e| e.request.as_ref().is_some_and(|r| r.request_id == id))
        .collect()
}

/// The request id the proxy answered with.
pub fn reply_id(r: &Reply) -> String {
    r.headers["x-request-id"]
        .to_str()
        .expect("ascii")
        .to_owned()
}

/// Waits up to 10 s for `cond`.
pub async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..200 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting until {what}");
}
