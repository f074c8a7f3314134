//! A whole `s62 serve` inside the test process, wired by `s62::app::run` exactly as the binary
//! wires it: the demo records service on a loopback port, the proxy in front of it (the shipped
//! example's routes, identity from `x-s62-user` set by a loopback gateway), the admin listener,
//! and optionally the auditor query service over real TLS. Plus a plain HTTP/1.1 client for the
//! officers' requests and a poll for conditions instead of fixed sleeps.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use s62::config::{AdminConfig, Config, QueryConfig};
use s62::log::entry::Entry;
use s62::log::store::memory::MemoryStore;
use s62::log::store::{LogStore, Store};
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::oneshot;

pub const ORIGIN: &str = "app.s62.test/records";

/// Polls `check` every 10 ms until it yields a value; panics naming `what` after 20 s.
pub async fn poll<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A free loopback address (bound and released; fine for tests on one machine).
pub fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
}

/// An HTTP response read to the end.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub head: String,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// One HTTP/1.1 request on a fresh connection (`Connection: close`); `None` if the connection
/// fails. `headers` are sent as given; a body is sent as JSON.
pub async fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> Option<Reply> {
    let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: records\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if let Some(b) = body {
        req.push_str(&format!(
            "content-type: application/json\r\ncontent-length: {}\r\n",
            b.len()
        ));
    }
    req.push_str("\r\n");
    if let Some(b) = body {
        req.push_str(b);
    }
    s.write_all(req.as_bytes()).await.ok()?;
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut raw))
        .await
        .ok()?
        .ok()?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.get(9..12)?.parse().ok()?;
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_owned()
    };
    Some(Reply {
        status,
        head: head.to_owned(),
        body,
    })
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// An officer's identity and justification headers, as the loopback gateway would set them.
pub fn officer<'a>(
    id: &'a str,
    why: Option<(&'a str, &'a str, &'a str)>,
) -> Vec<(&'a str, &'a str)> {
    let mut h = vec![("x-s62-user", id)];
    if let Some((purpose, text, case)) = why {
        h.extend([
            ("x-s62-purpose", purpose),
            ("x-s62-justification", text),
            ("x-s62-case-ref", case),
        ]);
    }
    h
}

/// A running sidecar and the records system behind it.
pub struct App {
    pub proxy: SocketAddr,
    pub admin: SocketAddr,
    pub query: Option<QueryConfig>,
    pub store: Arc<MemoryStore>,
    /// Holds `log.key` and `log.pub`.
    pub dir: tempfile::TempDir,
    pub pub_key: PathBuf,
    stop: Option<oneshot::Sender<()>>,
    stop_records: Option<oneshot::Sender<()>>,
    served: Option<tokio::task::JoinHandle<Result<(), s62::app::AppError>>>,
    records: Option<tokio::task::JoinHandle<()>>,
}

impl App {
    /// Starts the records service and `app::run` in front of it, and waits until `/readyz`
    /// answers 200 (log writable, records system reachable).
    pub async fn start(query: Option<QueryConfig>) -> App {
        let dir = tempfile::tempdir().expect("tempdir");
        let key = s62::keys::generate(dir.path(), ORIGIN).expect("keygen");
        let (key_path, pub_key) = s62::keys::key_paths(dir.path());

        let records = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind records");
        let records_addr = records.local_addr().expect("addr");
        let (stop_records, records_stopped) = oneshot::channel::<()>();
        let records = tokio::spawn(s62::records::serve(
            records,
            s62::records::Records::demo(),
            async {
                let _ = records_stopped.await;
            },
        ));

        let proxy_listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind proxy");
        let proxy = proxy_listener.local_addr().expect("addr");
        let mut cfg = Config::demo(
            dir.path().join("data"),
            key_path,
            proxy,
            format!("http://{records_addr}").parse().expect("uri"),
        );
        cfg.log.origin = ORIGIN.into();
        let admin = free_addr();
        cfg.admin = Some(AdminConfig {
            address: admin,
            checkpoint_dir: None,
        });
        let query = query.map(|mut q| {
            q.address = free_addr();
            q
        });
        cfg.query = query.clone();

        let store = Arc::new(MemoryStore::new());
        let (stop, stopped) = oneshot::channel::<()>();
        let run_store = store.clone() as Arc<dyn Store>;
        let served = tokio::spawn(async move {
            s62::app::run(&cfg, run_store, key, proxy_listener, async {
                let _ = stopped.await;
            })
            .await
        });
        let app = App {
            proxy,
            admin,
            query,
            store,
            dir,
            pub_key,
            stop: Some(stop),
            stop_records: Some(stop_records),
            served: Some(served),
            records: Some(records),
        };
        poll("the sidecar to be ready", || async {
            send(app.admin, "GET", "/readyz", &[], None)
                .await
                .filter(|r| r.status == 200)
        })
        .await;
        app
    }

    /// Sends one request through the proxy; the connection must work.
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> Reply {
        send(self.proxy, method, path, headers, body)
            .await
            .unwrap_or_else(|| panic!("{method} {path}: no HTTP response from the proxy"))
    }

    /// `GET` on the admin listener.
    pub async fn admin_get(&self, path: &str) -> Reply {
        send(self.admin, "GET", path, &[], None)
            .await
            .unwrap_or_else(|| panic!("GET {path}: no response from the admin listener"))
    }

    /// Every entry in the log, with its personal values put back (format 2, each checked against
    /// its commitment), and its stored leaf bytes.
    pub fn entries(&self) -> Vec<(u64, Entry, Vec<u8>)> {
        let n = self.store.entry_count().expect("count");
        self.store
            .opened_entries(0, n as usize)
            .expect("read and values match")
            .into_iter()
            .map(|o| (o.seq, o.entry, o.leaf))
            .collect()
    }

    /// Stops the records system (its port closes); the sidecar keeps running.
    pub async fn stop_records(&mut self) {
        if let Some(s) = self.stop_records.take() {
            let _ = s.send(());
        }
        if let Some(r) = self.records.take() {
            r.await.expect("records task");
        }
    }

    /// Stops the sidecar in order and returns how `app::run` ended.
    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(h) = self.served.take() {
            h.await.expect("task").expect("served and stopped cleanly");
        }
        self.stop_records().await;
    }
}
