//! Shared by the `admin_*` scenarios: a real writer over a store, the admin listener on a loopback
//! port, a deliberately plain HTTP/1.1 client (raw socket, no HTTP library) and a parser for the
//! Prometheus text exposition.
#![allow(dead_code, clippy::unwrap_used)]

use s62::admin::{AdminState, serve_admin};
use s62::ingest::{LogWriter, WriterConfig, WriterTask};
use s62::log::entry::{Entry, EntryKind, Operation};
use s62::log::note::SignerKey;
use s62::log::store::Store;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::oneshot;

pub const ORIGIN: &str = "records.test.police.uk/s62";

pub fn key() -> SignerKey {
    SignerKey::from_seed(ORIGIN, [42u8; 32]).expect("valid key name")
}

pub fn start_writer(store: Arc<dyn Store>) -> (LogWriter, WriterTask) {
    LogWriter::start(store, key(), WriterConfig::new(ORIGIN)).expect("writer starts")
}

/// A running admin listener; `stop` shuts it down and waits for it.
pub struct Admin {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    server: tokio::task::JoinHandle<()>,
}

impl Admin {
    pub async fn start(state: AdminState) -> Admin {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("addr");
        let (tx, rx) = oneshot::channel::<()>();
        let server = tokio::spawn(serve_admin(listener, Arc::new(state), async {
            let _ = rx.await;
        }));
        Admin {
            addr,
            stop: Some(tx),
            server,
        }
    }

    pub async fn get(&self, path: &str) -> HttpResponse {
        request(self.addr, "GET", path).await
    }

    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        tokio::time::timeout(std::time::Duration::from_secs(10), &mut self.server)
            .await
            .expect("admin listener stops within 10 s")
            .expect("admin task");
    }
}

#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One HTTP/1.1 request over a fresh connection, `Connection: close`, read to EOF.
pub async fn request(addr: SocketAddr, method: &str, path: &str) -> HttpResponse {
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.expect("send");
    let mut raw = Vec::new();
    tokio::time::timeout(std::time::Duration::from_secs(10), s.read_to_end(&mut raw))
        .await
        .expect("response within 10 s")
        .expect("read");
    let text = String::from_utf8(raw).expect("utf-8 response");
    let (head, body) = text.split_once("\r\n\r\n").expect("head and body");
    let mut lines = head.split("\r\n");
    let status_line = lines.next().expect("status line");
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers: Vec<(String, String)> = lines
        .map(|l| {
            let (k, v) = l.split_once(':').expect("header line");
            (k.trim().to_owned(), v.trim().to_owned())
        })
        .collect();
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    assert!(!chunked, "admin responses have a known length");
    HttpResponse {
        status,
        headers,
        body: body.to_owned(),
    }
}

/// An entry of `kind` and `op`, with made-up ids (the writer fills in seq, time and chain).
pub fn entry(kind: EntryKind, op: Operation) -> Entry {
    Entry {
        kind: kind as i32,
        operation: op as i32,
        subject_ids: vec!["P-000123".into()],
        ..Default::default()
    }
}

/// A parsed exposition: samples keyed by (name, sorted labels), plus HELP and TYPE per family.
#[derive(Debug, Default)]
pub struct Exposition {
    pub samples: BTreeMap<(String, Vec<(String, String)>), f64>,
    pub help: BTreeMap<String, String>,
    pub types: BTreeMap<String, String>,
}

impl Exposition {
    /// Parses the text format 0.0.4 strictly enough that a malformed line fails the test.
    pub fn parse(text: &str) -> Exposition {
        let mut e = Exposition::default();
        for (n, line) in text.lines().enumerate() {
            let at = || format!("line {}: {line:?}", n + 1);
            if line.is_empty() {
                continue;
            }
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let (name, help) = rest.split_once(' ').unwrap_or_else(|| panic!("{}", at()));
                assert!(
                    e.help.insert(name.into(), help.into()).is_none(),
                    "duplicate HELP, {}",
                    at()
                );
                continue;
            }
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, ty) = rest.split_once(' ').unwrap_or_else(|| panic!("{}", at()));
                assert!(
                    ["counter", "gauge", "histogram", "summary", "untyped"].contains(&ty),
                    "unknown type, {}",
                    at()
                );
                assert!(
                    !e.samples.keys().any(|(s, _)| family_of(s) == name),
                    "TYPE after samples of its family, {}",
                    at()
                );
                assert!(
                    e.types.insert(name.into(), ty.into()).is_none(),
                    "duplicate TYPE, {}",
                    at()
                );
                continue;
            }
            assert!(!line.starts_with('#'), "stray comment, {}", at());
            let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("{}", at()));
            let value: f64 = match value {
                "+Inf" => f64::INFINITY,
                "-Inf" => f64::NEG_INFINITY,
                v => v.parse().unwrap_or_else(|_| panic!("bad value, {}", at())),
            };
            let (name, labels) = match series.split_once('{') {
                None => (series.to_owned(), Vec::new()),
                Some((name, rest)) => {
                    let inner = rest.strip_suffix('}').unwrap_or_else(|| panic!("{}", at()));
                    (
                        name.to_owned(),
                        parse_labels(inner).unwrap_or_else(|| panic!("{}", at())),
                    )
                }
            };
            assert!(
                name.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
                "bad metric name, {}",
                at()
            );
            let family = family_of(&name);
            assert!(
                e.types.contains_key(family),
                "sample before its TYPE, {}",
                at()
            );
            let mut labels = labels;
            labels.sort();
            assert!(
                e.samples.insert((name, labels), value).is_none(),
                "duplicate series, {}",
                at()
            );
        }
        e
    }

    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let mut l: Vec<(String, String)> = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        l.sort();
        self.samples.get(&(name.to_owned(), l)).copied()
    }

    /// The value of a series that must be present.
    pub fn must(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.value(name, labels)
            .unwrap_or_else(|| panic!("no sample {name}{labels:?} in the scrape"))
    }

    /// Every sample of `name` as (labels, value).
    pub fn series(&self, name: &str) -> Vec<(Vec<(String, String)>, f64)> {
        self.samples
            .iter()
            .filter(|((n, _), _)| n == name)
            .map(|((_, l), v)| (l.clone(), *v))
            .collect()
    }
}

/// A histogram's `_bucket`, `_sum` and `_count` samples belong to the family without the suffix.
fn family_of(name: &str) -> &str {
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = name.strip_suffix(suffix) {
            return base;
        }
    }
    name
}

/// `a="x",b="y\"z"` → pairs, unescaping `\\`, `\"` and `\n`.
fn parse_labels(s: &str) -> Option<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        let mut name = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' {
                break;
            }
            name.push(c);
            chars.next();
        }
        if name.is_empty() {
            return if out.is_empty() && s.is_empty() {
                Some(out)
            } else {
                None
            };
        }
        chars.next(); // '='
        if chars.next()? != '"' {
            return None;
        }
        let mut value = String::new();
        loop {
            match chars.next()? {
                '\\' => match chars.next()? {
                    'n' => value.push('\n'),
                    c => value.push(c),
                },
                '"' => break,
                c => value.push(c),
            }
        }
        out.push((name, value));
        match chars.next() {
            None => return Some(out),
            Some(',') => continue,
            Some(_) => return None,
        }
    }
}
