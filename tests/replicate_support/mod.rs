//! A real 3-node NATS JetStream cluster on loopback ports, for the replication and hub tests:
//! `nats-server` from the distribution's package (scripts/setup.sh installs it), one config file,
//! store folder and child process per node, routes between them. Nodes can be killed (SIGKILL)
//! and restarted on the same store; every node is killed when the cluster is dropped.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use async_nats::jetstream;
use s62::replicate::{Names, ReplicatedEntry, decode_entries};

pub struct Node {
    pub name: String,
    pub client: SocketAddr,
    pub config: PathBuf,
    child: Option<Child>,
}

pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub nodes: Vec<Node>,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

impl Cluster {
    /// Writes three node configs, starts them and waits until JetStream has a meta leader.
    pub fn start() -> Cluster {
        let dir = tempfile::tempdir().expect("tempdir");
        let clients: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let routes: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let mut nodes = Vec::new();
        for i in 0..3 {
            let name = format!("n{}", i + 1);
            let store = dir.path().join(&name);
            std::fs::create_dir_all(&store).expect("store dir");
            let others: Vec<String> = (0..3)
                .filter(|j| *j != i)
                .map(|j| format!("\"nats-route://127.0.0.1:{}\"", routes[j]))
                .collect();
            let text = format!(
                "server_name: {name}\nlisten: 127.0.0.1:{client}\n\
                 jetstream {{\n  store_dir: \"{store}\"\n  max_memory_store: 64MB\n  max_file_store: 2GB\n}}\n\
                 cluster {{\n  name: s62test\n  listen: 127.0.0.1:{route}\n  routes: [{others}]\n}}\n",
                client = clients[i],
                store = store.display(),
                route = routes[i],
                others = others.join(", "),
            );
            let config = dir.path().join(format!("{name}.conf"));
            std::fs::write(&config, text).expect("node config");
            nodes.push(Node {
                name,
                client: SocketAddr::from(([127, 0, 0, 1], clients[i])),
                config,
                child: None,
            });
        }
        let mut cluster = Cluster { dir, nodes };
        for i in 0..3 {
            cluster.start_node(i);
        }
        cluster.wait_meta_leader();
        cluster
    }

    /// `nats://` URLs of every node.
    pub fn urls(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|n| format!("nats://{}", n.client))
            .collect()
    }

    pub fn start_node(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        let log = std::fs::File::create(self.dir.path().join(format!("{}.log", node.name)))
            .expect("node log");
        let child = Command::new(nats_server())
            .arg("-c")
            .arg(&node.config)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("nats-server starts (scripts/setup.sh installs it)");
        node.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(node.client).is_err() {
            assert!(Instant::now() < deadline, "{} does not listen", node.name);
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL, as a crashed machine.
    pub fn kill_node(&mut self, i: usize) {
        if let Some(mut c) = self.nodes[i].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.name == name)
    }

    fn wait_meta_leader(&self) {
        let urls = self.urls();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("rt");
        rt.block_on(async {
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                // `$JS.API.INFO` answers without an error once there is a meta leader (raw:
                // async-nats's account type wants fields nats-server 2.9 does not send).
                if let Ok(client) = async_nats::connect(urls.clone()).await
                    && let Ok(Ok(reply)) = tokio::time::timeout(
                        Duration::from_secs(2),
                        client.request("$JS.API.INFO", "".into()),
                    )
                    .await
                {
                    let text = String::from_utf8_lossy(&reply.payload);
                    if text.contains("account_info_response") && !text.contains("\"error\"") {
                        return;
                    }
                }
                assert!(
                    Instant::now() < deadline,
                    "no JetStream meta leader within 60 s"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.kill_node(i);
        }
    }
}

fn nats_server() -> PathBuf {
    for p in ["/usr/sbin/nats-server", "/usr/bin/nats-server"] {
        if std::path::Path::new(p).exists() {
            return PathBuf::from(p);
        }
    }
    PathBuf::from("nats-server")
}

/// A JetStream context on the cluster.
pub async fn jetstream(urls: &[String]) -> jetstream::Context {
    let client = async_nats::connect(urls.to_vec()).await.expect("connect");
    jetstream::new(client)
}

/// Every message of the origin's stream, in stream order: (entries in order, checkpoint sizes).
/// Reads by stream sequence, so a duplicate stored twice shows up twice.
pub async fn read_stream(
    js: &jetstream::Context,
    names: &Names,
) -> (Vec<ReplicatedEntry>, Vec<u64>) {
    let mut stream = js.get_stream(&names.stream).await.expect("stream exists");
    let info = stream.info().await.expect("stream info").clone();
    let (mut entries, mut checkpoints) = (Vec::new(), Vec::new());
    for seq in info.state.first_sequence..=info.state.last_sequence {
        // Just after a node restarts, the cluster may answer 503 "JetStream system temporarily
        // unavailable" (code 10008) for a few seconds; anything else, or 10 s of it, fails.
        let mut tries = 0;
        let m = loop {
            match stream.get_raw_message(seq).await {
                Ok(m) => break m,
                Err(e) if e.to_string().contains("temporarily unavailable") && tries < 50 => {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => panic!("stream message {seq}: {e}"),
            }
        };
        if m.subject.as_str() == names.entries {
            entries.extend(decode_entries(m.payload.as_ref()).expect("entries message"));
        } else {
            let text = String::from_utf8(m.payload.to_vec()).expect("utf-8 note");
            let size: u64 = text
                .lines()
                .nth(1)
                .expect("size line")
                .parse()
                .expect("size");
            checkpoints.push(size);
        }
    }
    (entries, checkpoints)
}

/// Asserts `entries` are seqs 0..n exactly once, in order.
pub fn assert_exactly_once(entries: &[ReplicatedEntry], n: u64) {
    let seqs: Vec<u64> = entries.iter().map(|e| e.seq).collect();
    let mut sorted = seqs.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(
        sorted.len(),
        seqs.len(),
        "the stream holds duplicates ({} messages, {} distinct seqs)",
        seqs.len(),
        sorted.len()
    );
    let missing: Vec<u64> = (0..n)
        .filter(|s| sorted.binary_search(s).is_err())
        .take(10)
        .collect();
    assert!(
        missing.is_empty(),
        "the stream misses seqs {missing:?} (of {n})"
    );
    assert_eq!(
        sorted.len() as u64,
        n,
        "the stream holds seqs beyond the log"
    );
}

/// Waits (up to 30 s) until the origin's last checkpoint message is for `size`.
pub async fn wait_checkpoint(js: &jetstream::Context, names: &Names, size: u64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let last = match js.get_stream(&names.stream).await {
            Ok(s) => s
                .get_last_raw_message_by_subject(&names.checkpoints)
                .await
                .ok()
                .and_then(|m| {
                    String::from_utf8_lossy(&m.payload)
                        .lines()
                        .nth(1)
                        .and_then(|l| l.parse::<u64>().ok())
                }),
            Err(_) => None,
        };
        if last == Some(size) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the checkpoint of size {size} was not published (last: {last:?})"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A log's replication task, started as `s62 serve` starts it (async mode).
pub struct Publisher {
    pub gate: std::sync::Arc<s62::replicate::ReplicationGate>,
    pub metrics: s62::replicate::ReplicationMetrics,
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Publisher {
    /// Publishes `store`, written by `writer`, to the origin's stream on `urls`.
    pub fn start(
        urls: Vec<String>,
        origin: &str,
        store: std::sync::Arc<dyn s62::log::store::Store>,
        writer: &s62::ingest::LogWriter,
    ) -> Publisher {
        Publisher::start_witnessed(urls, origin, store, writer, None)
    }

    /// [`Publisher::start`], also publishing the notes a witness client cosigns (`cosigned`:
    /// its `cosignatures_stored()`), as `s62 serve` does with `[witness]`.
    pub fn start_witnessed(
        urls: Vec<String>,
        origin: &str,
        store: std::sync::Arc<dyn s62::log::store::Store>,
        writer: &s62::ingest::LogWriter,
        cosigned: Option<tokio::sync::watch::Receiver<u64>>,
    ) -> Publisher {
        let gate = s62::replicate::ReplicationGate::new(Duration::from_secs(30));
        let metrics = s62::replicate::ReplicationMetrics::default();
        let (stop, mut stop_rx) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(s62::replicate::run(
            s62::config::ReplicateConfig {
                urls,
                mode: s62::config::ReplicateMode::Async,
                max_lag: Duration::from_secs(30),
                sync_timeout: Duration::from_secs(20),
                max_age: Duration::from_secs(86_400),
                replicas: 3,
                credentials_file: None,
            },
            origin.into(),
            store,
            writer.committed(),
            cosigned,
            gate.clone(),
            metrics.clone(),
            async move {
                let _ = stop_rx.wait_for(|s| *s).await;
            },
        ));
        Publisher {
            gate,
            metrics,
            stop,
            task,
        }
    }

    pub async fn stop(self) {
        let _ = self.stop.send(true);
        self.task.await.unwrap();
    }
}

/// A loopback TCP proxy in front of one NATS node that forwards the client protocol both ways
/// and drops the stream's acknowledgement of the first `budget` publishes to one subject: the
/// message is stored, the publisher never hears so (as when a connection fails after the
/// server stored it). It parses just enough of the protocol to tell a publish's reply subject
/// (`PUB`/`HPUB <subject> <reply> ...`) from the messages delivered to it (`MSG`/`HMSG`).
pub struct AckDropper {
    pub addr: SocketAddr,
    state: std::sync::Arc<std::sync::Mutex<DropState>>,
}

#[derive(Default)]
struct DropState {
    /// Reply subjects of publishes to the watched subject (while acknowledgements are still to
    /// be dropped).
    replies: std::collections::HashSet<String>,
    /// Acknowledgements still to drop, and those dropped (their payloads).
    budget: usize,
    dropped: Vec<String>,
}

impl AckDropper {
    pub fn start(node: SocketAddr, subject: &str, budget: usize) -> AckDropper {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let state = std::sync::Arc::new(std::sync::Mutex::new(DropState {
            budget,
            ..DropState::default()
        }));
        let (shared, subject) = (state.clone(), subject.to_string());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                let Ok(server) = TcpStream::connect(node) else {
                    continue;
                };
                let (c2, s2) = (
                    client.try_clone().expect("clone"),
                    server.try_clone().expect("clone"),
                );
                let (st, subj) = (shared.clone(), subject.clone());
                std::thread::spawn(move || client_to_server(client, server, &subj, &st));
                let st = shared.clone();
                std::thread::spawn(move || server_to_client(s2, c2, &st));
            }
        });
        AckDropper { addr, state }
    }

    pub fn url(&self) -> String {
        format!("nats://{}", self.addr)
    }

    /// The acknowledgements dropped so far.
    pub fn dropped(&self) -> Vec<String> {
        self.state.lock().unwrap().dropped.clone()
    }
}

/// One protocol operation as read: its line's words (the operation upper-cased, empty for a
/// blank line), the line's length, and every byte of it to forward, payload and CRLF included.
struct Op {
    words: Vec<String>,
    line_len: usize,
    frame: Vec<u8>,
}

fn next_op(from: &mut std::io::BufReader<TcpStream>) -> Option<Op> {
    use std::io::{BufRead, Read};
    let mut frame = Vec::new();
    if from.read_until(b'\n', &mut frame).ok()? == 0 {
        return None;
    }
    let line_len = frame.len();
    let mut words: Vec<String> = String::from_utf8_lossy(&frame)
        .split_whitespace()
        .map(str::to_string)
        .collect();
    if let Some(op) = words.first_mut() {
        op.make_ascii_uppercase();
    }
    if matches!(
        words.first().map(String::as_str),
        Some("PUB" | "HPUB" | "MSG" | "HMSG")
    ) {
        let len: usize = words.last()?.parse().ok()?;
        let mut payload = vec![0; len + 2];
        from.read_exact(&mut payload).ok()?;
        frame.extend_from_slice(&payload);
    }
    Some(Op {
        words,
        line_len,
        frame,
    })
}

fn client_to_server(
    client: TcpStream,
    mut server: TcpStream,
    subject: &str,
    state: &std::sync::Mutex<DropState>,
) {
    use std::io::Write;
    let mut from = std::io::BufReader::new(client);
    while let Some(Op { words, frame, .. }) = next_op(&mut from) {
        // PUB <subject> <reply> <len>; HPUB <subject> <reply> <hdr len> <len>.
        let with_reply = match words.first().map(String::as_str) {
            Some("PUB") => words.len() == 4,
            Some("HPUB") => words.len() == 5,
            _ => false,
        };
        if with_reply && words[1] == subject {
            let mut s = state.lock().unwrap();
            if s.budget > 0 {
                s.replies.insert(words[2].clone());
            }
        }
        if server.write_all(&frame).is_err() {
            break;
        }
    }
    let _ = server.shutdown(std::net::Shutdown::Both);
}

fn server_to_client(server: TcpStream, mut client: TcpStream, state: &std::sync::Mutex<DropState>) {
    use std::io::Write;
    let mut from = std::io::BufReader::new(server);
    while let Some(Op {
        words,
        line_len,
        frame,
    }) = next_op(&mut from)
    {
        if matches!(words.first().map(String::as_str), Some("MSG" | "HMSG")) {
            let mut s = state.lock().unwrap();
            if s.budget > 0 && s.replies.remove(&words[1]) {
                s.budget -= 1;
                let payload = String::from_utf8_lossy(&frame[line_len..])
                    .trim()
                    .to_string();
                s.dropped.push(payload);
                continue;
            }
        }
        if client.write_all(&frame).is_err() {
            break;
        }
    }
    let _ = client.shutdown(std::net::Shutdown::Both);
}
