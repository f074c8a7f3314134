//! Issue 14's end-to-end scenario with the real binaries only: two `s62 serve` proxies (two
//! origins, their own keys and folders) in front of one records service, both replicating to a
//! 3-node JetStream cluster, and one `s62 hub` following both streams with its auditor query
//! listener on mTLS. Officers request people through both proxies while one NATS node is killed
//! (and later restarted); the hub catches up with everything each sidecar logged, as an auditor
//! sees through `LatestCheckpoint`, and how long it stood still behind the stream is printed. A
//! subject report at the hub spans both logs and counts exactly what each proxy answered. Then an
//! entry forged by someone with write access to one stream (not that log's key) is published
//! under the message id the sidecar uses next, so the genuine entry is dropped as a duplicate:
//! the hub raises a `replication_fork` alert naming that origin, which an auditor finds with
//! `ListAlerts`, keeps nothing it could not verify, and goes on following the other log. Every
//! process stops cleanly on SIGTERM.
#![cfg(unix)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod query_harness;
mod replicate_support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use query_harness::{Pki, context};
use replicate_support::{Cluster, jetstream, read_stream};
use s62::log::entry::{Alert, EntryKind};
use s62::log::hash::leaf_hash;
use s62::query::pb::audit_query_client::AuditQueryClient;
use s62::query::pb::{
    LatestCheckpointRequest, ListAlertsRequest, SubjectEvent, SubjectReportRequest, SubjectSummary,
    list_alerts_response, subject_report_response,
};
use s62::replicate::{Names, ReplicatedEntry};
use tonic::transport::Channel;

const CUSTODY: &str = "custody.s62.test/log";
const INTEL: &str = "intel.s62.test/log";
const HUB: &str = "hub.s62.test/hub";
/// People are `P-0` to `P-12`; the report is about this one.
const PEOPLE: u64 = 13;
const SUBJECT: u64 = 7;
/// Client threads per proxy.
const CLIENTS: u64 = 3;
/// How long anything the hub must do may take: after a node kill it may need most of a minute
/// to resume (docs/scale.md, failure table).
const PATIENCE: Duration = Duration::from_secs(120);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_sidecars_and_a_hub_survive_a_node_kill_report_across_logs_and_catch_a_forgery() {
    // 1. The cluster, the records service, two sidecars and the hub, each its own process.
    let mut cluster = tokio::task::spawn_blocking(Cluster::start).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let records = TcpListener::bind("127.0.0.1:0").unwrap();
    let upstream = records.local_addr().unwrap();
    records_service(records);
    let mut custody = Sidecar::start(dir.path(), CUSTODY, "pc-1001", upstream, &cluster.urls());
    let mut intel = Sidecar::start(dir.path(), INTEL, "pc-2002", upstream, &cluster.urls());
    let pki = Pki::new();
    let mut hub = HubProcess::start(dir.path(), &pki, &[&custody, &intel], &cluster.urls());
    let dpo = pki.client("Data Protection", &["dpo@example.police.uk"]);
    let mut auditor = pki.tls_client(hub.query, &dpo).await;

    // 2. Officers request people through both proxies, three clients each.
    let load = Load::start(&[&custody, &intel]);
    load.until_each_answered(150).await;

    // 3. One NATS node dies while the load goes on: the leader of the custody stream, the
    //    harshest node for that log to lose.
    let js = jetstream(&cluster.urls()).await;
    let leader = stream_leader(&js, CUSTODY).await;
    let killed = cluster.index_of(&leader).expect("the leader is a node");
    let mut watch = Watch::new(&[&custody, &intel]);
    cluster.kill_node(killed);
    let answered_at_kill = load.answered();
    watch
        .sample_for(&mut auditor, &js, Duration::from_secs(4))
        .await;
    let tallies = load.stop().await;
    for (s, (before, t)) in [&custody, &intel]
        .iter()
        .zip(answered_at_kill.iter().zip(&tallies))
    {
        assert!(
            t.failed.is_empty(),
            "{}: in async mode a dead node fails no request, yet {} failed: {:?}",
            s.origin,
            t.failed.len(),
            &t.failed[..t.failed.len().min(10)]
        );
        assert!(
            t.answered() > *before,
            "{}: the proxy went on answering after the kill ({before} before, {} in all)",
            s.origin,
            t.answered()
        );
    }

    // 4. With the load stopped, the hub holds everything each sidecar logged: its latest
    //    checkpoint of each log is, byte for byte, the one the sidecar serves on /checkpoint.
    let stopped = watch.elapsed();
    watch.until_caught_up(&mut auditor, &js, &hub).await;
    watch.print(&leader, stopped);
    cluster.start_node(killed);
    assert_eq!(
        alerts(&mut auditor).await,
        Vec::<Alert>::new(),
        "a killed node is no reason for an alert"
    );

    // 5. An auditor asks the hub about P-7 without naming a log: one report over both. Each
    //    request the proxy answered is an intent that asked for P-7 and an outcome that returned
    //    P-7 with a 200 — nothing else in either log names P-7.
    let (events, summary) = subject_report(&mut auditor, &format!("P-{SUBJECT}")).await;
    for (s, t) in [&custody, &intel].iter().zip(&tallies) {
        let answered = t.per_person[SUBJECT as usize];
        assert!(answered > 0, "{}: P-7 was requested", s.origin);
        let theirs: Vec<&SubjectEvent> = events.iter().filter(|e| e.origin == s.origin).collect();
        let of_kind = |kind: EntryKind| {
            theirs
                .iter()
                .copied()
                .filter(|e| e.kind == kind as i32)
                .collect::<Vec<_>>()
        };
        let (intents, outcomes) = (of_kind(EntryKind::Intent), of_kind(EntryKind::Outcome));
        assert_eq!(
            (
                intents.len() as u64,
                outcomes.len() as u64,
                theirs.len() as u64
            ),
            (answered, answered, 2 * answered),
            "{}: one intent and one outcome per request for P-7 the proxy answered",
            s.origin
        );
        for i in &intents {
            assert!(i.asked && !i.returned, "{}: {i:?}", s.origin);
            assert_eq!(i.route, "person-read");
            assert_eq!(i.actor.as_ref().map(|a| a.id.as_str()), Some(s.officer.id));
        }
        let intent_seqs: Vec<u64> = intents.iter().map(|i| i.seq).collect();
        for o in &outcomes {
            assert!(o.returned && o.status == 200, "{}: {o:?}", s.origin);
            assert!(
                o.answers_seq.is_some_and(|a| intent_seqs.contains(&a)),
                "{}: outcome {} answers one of the intents in the report",
                s.origin,
                o.seq
            );
        }
    }
    let p7 = |t: &Tally| t.per_person[SUBJECT as usize];
    assert_eq!(
        events.len() as u64,
        2 * (p7(&tallies[0]) + p7(&tallies[1])),
        "nothing from any other log"
    );
    assert_eq!(summary.events, events.len() as u64);
    assert_eq!(summary.actors, [custody.officer.id, intel.officer.id]);

    // 6. A forger with write access to the custody stream (not its key) publishes an entry
    //    linking to the log's last one under the message id the sidecar will use next if the
    //    entry goes alone (as the intent of a lone request does: it is published before the
    //    outcome exists).
    let names = Names::for_origin(CUSTODY);
    let size = custody.checkpoint_size();
    let last = last_entry(&js, &names).await;
    assert_eq!(last.seq, size - 1, "the stream ends where the log ends");
    let mut forged = s62::log::entry::decode(&last.leaf).unwrap();
    forged.seq = size;
    forged.checkpoint_follows = false;
    forged.prev_leaf_hash = leaf_hash(&last.leaf).0.to_vec();
    let payload = ReplicatedEntry {
        seq: size,
        leaf: s62::log::entry::encode(&forged),
        values: last.values.clone(),
    };
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Nats-Msg-Id", names.entries_id(size, size).as_str());
    js.publish_with_headers(
        names.entries.clone(),
        headers,
        s62::replicate::wire::encode_entries(vec![payload]).into(),
    )
    .await
    .unwrap()
    .await
    .unwrap();
    // The officer's next request: its intent is the genuine entry `size`, which the stream drops
    // as a duplicate; its outcome, `size + 1`, links to it and not to the forgery. (Had the
    // publisher sent both in one message, the stream would keep it and the hub would find the
    // second entry `size` instead.)
    assert_eq!(custody.officer.get(1), Some(200));
    let alerted = wait_for("the hub to raise an alert", &hub, async || {
        let found = alerts(&mut auditor).await;
        (!found.is_empty()).then_some(found)
    })
    .await;
    assert_eq!(alerted.len(), 1, "{alerted:?}");
    assert_eq!(alerted[0].rule, "replication_fork");
    assert_eq!(alerted[0].name, CUSTODY, "the alert names the forged log");
    assert!(
        [size, size + 1].contains(&alerted[0].sighting_seq),
        "found where the genuine log parts from the forgery: {alerted:?}"
    );
    assert_eq!(
        custody.checkpoint_size(),
        size + 2,
        "the sidecar logged both entries"
    );
    assert_eq!(
        size_of(&hub_checkpoint(&mut auditor, CUSTODY).await.unwrap()),
        size,
        "the hub keeps nothing of the custody log it could not verify"
    );

    // The intel log is still followed.
    for n in 0..20 {
        assert_eq!(intel.officer.get(n), Some(200));
    }
    let want = intel.checkpoint();
    wait_for("the hub to go on with the intel log", &hub, async || {
        (hub_checkpoint(&mut auditor, INTEL).await.as_deref() == Some(want.as_str())).then_some(())
    })
    .await;
    assert_eq!(
        alerts(&mut auditor).await,
        alerted,
        "and nothing more alerts"
    );

    // 7. Every process stops cleanly on SIGTERM.
    for (name, status) in [
        ("the hub", hub.process.terminate()),
        (CUSTODY, custody.process.terminate()),
        (INTEL, intel.process.terminate()),
    ] {
        assert!(
            status.success(),
            "{name} exits cleanly on SIGTERM: {status:?}"
        );
    }
}

/// The records service: `GET /people/{id}` answers `{"id": id}`; anything else 404.
fn records_service(listener: TcpListener) {
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            std::thread::spawn(move || {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    match conn.read(&mut byte) {
                        Ok(1) => head.push(byte[0]),
                        _ => return,
                    }
                }
                let head = String::from_utf8_lossy(&head);
                let path = head.split(' ').nth(1).unwrap_or("/");
                let (status, body) = match path.strip_prefix("/people/") {
                    Some(id) => ("200 OK", format!("{{\"id\":\"{id}\"}}")),
                    None => ("404 Not Found", "{}".to_owned()),
                };
                let _ = write!(
                    conn,
                    "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
                     connection: close\r\n\r\n{body}",
                    body.len()
                );
            });
        }
    });
}

/// A child process, killed and reaped if the test ends before it was stopped.
struct Process {
    child: Child,
    log: PathBuf,
}

impl Process {
    fn spawn(bin_args: &[&str], config: &Path, log: PathBuf) -> Process {
        let child = Command::new(env!("CARGO_BIN_EXE_s62"))
            .args(bin_args)
            .arg(config)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("s62 starts");
        Process { child, log }
    }

    /// Waits until `addr` accepts connections, failing at once if the process exits.
    fn wait_listening(&mut self, addr: SocketAddr) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(addr).is_err() {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("{} exited ({status}):\n{}", self.log.display(), self.tail());
            }
            assert!(
                Instant::now() < deadline,
                "nothing listens on {addr}:\n{}",
                self.tail()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The last lines the process logged, leaving out the test's own queries.
    fn tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| !l.contains("s62::query::service"))
            .collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// SIGTERM, then the exit status (within 60 s).
    fn terminate(&mut self) -> ExitStatus {
        let pid = self.child.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "{} did not stop within 60 s of SIGTERM:\n{}",
                self.log.display(),
                self.tail()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// `s62 keygen --origin ORIGIN --out DIR`; returns the verifier keys of `DIR/log.pub`.
fn keygen(origin: &str, out: &Path) -> Vec<String> {
    let done = Command::new(env!("CARGO_BIN_EXE_s62"))
        .args(["keygen", "--origin", origin, "--out"])
        .arg(out)
        .output()
        .unwrap();
    assert!(done.status.success(), "keygen: {done:?}");
    std::fs::read_to_string(out.join("log.pub"))
        .unwrap()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect()
}

fn toml_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|i| format!("\"{i}\"")).collect();
    format!("[{}]", quoted.join(", "))
}

/// `s62 serve` with its own key, folder, proxy and admin listeners, and the officer who uses it.
struct Sidecar {
    origin: &'static str,
    keys: Vec<String>,
    officer: Officer,
    admin: SocketAddr,
    process: Process,
}

/// An officer requesting people through one proxy (behind a trusted gateway: the identity and
/// justification are headers).
#[derive(Clone, Copy)]
struct Officer {
    id: &'static str,
    proxy: SocketAddr,
}

impl Officer {
    /// Person `P-{n % 13}`: the status.
    fn get(self, n: u64) -> Option<u16> {
        let headers = format!(
            "x-s62-user: {}\r\nx-s62-purpose: investigation\r\nx-s62-justification: end-to-end test\r\n",
            self.id
        );
        http_get(self.proxy, &format!("/people/P-{}", n % PEOPLE), &headers).map(|(s, _)| s)
    }
}

impl Sidecar {
    fn start(
        root: &Path,
        origin: &'static str,
        officer: &'static str,
        upstream: SocketAddr,
        nats: &[String],
    ) -> Sidecar {
        let dir = root.join(origin.split('.').next().unwrap());
        let keys = keygen(origin, &dir.join("keys"));
        let (proxy, admin) = (free_addr(), free_addr());
        let config = dir.join("sidecar.toml");
        std::fs::write(
            &config,
            format!(
                "[log]\ndata_dir = \"log\"\nkey_file = \"keys/log.key\"\norigin = \"{origin}\"\n\n\
                 [listen]\naddress = \"{proxy}\"\n\n[upstream]\nurl = \"http://{upstream}\"\n\n\
                 [identity]\nsources = [\"trusted_header\"]\nheader = \"x-s62-user\"\n\
                 trusted_peers = [\"127.0.0.0/8\"]\n\n\
                 [admin]\naddress = \"{admin}\"\n\n\
                 [routes]\nstrict = true\n\n\
                 [[routes.rule]]\nname = \"person-read\"\nmethod = \"GET\"\npath = \"/people/{{id}}\"\n\
                 operation = \"consultation\"\nsubjects = [\"path:id\"]\n\
                 returned_subjects = [\"response:/id\"]\n\n\
                 [replicate]\nurls = {}\nmode = \"async\"\n",
                toml_list(nats)
            ),
        )
        .unwrap();
        let mut process = Process::spawn(&["serve", "--config"], &config, dir.join("serve.log"));
        process.wait_listening(proxy);
        process.wait_listening(admin);
        Sidecar {
            origin,
            keys,
            officer: Officer { id: officer, proxy },
            admin,
            process,
        }
    }

    /// The latest signed checkpoint, as the sidecar serves it on its admin listener.
    fn checkpoint(&self) -> String {
        match http_get(self.admin, "/checkpoint", "") {
            Some((200, note)) => note,
            other => panic!("{}: GET /checkpoint: {other:?}", self.origin),
        }
    }

    fn checkpoint_size(&self) -> u64 {
        size_of(&self.checkpoint())
    }
}

/// A GET over a fresh connection: status and body.
fn http_get(addr: SocketAddr, path: &str, headers: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: s62\r\n{headers}Connection: close\r\n\r\n"
    )
    .ok()?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).ok()?;
    let text = String::from_utf8(out).ok()?;
    let status = text.get(9..12)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n")?.1.to_owned();
    Some((status, body))
}

/// The tree size of a signed checkpoint note (its second line).
fn size_of(note: &str) -> u64 {
    note.lines().nth(1).and_then(|l| l.parse().ok()).unwrap()
}

/// `s62 hub --config FILE` following both sidecars' logs, with `[hub.query]` on mTLS.
struct HubProcess {
    query: SocketAddr,
    process: Process,
}

impl HubProcess {
    fn start(root: &Path, pki: &Pki, sidecars: &[&Sidecar], nats: &[String]) -> HubProcess {
        let dir = root.join("hub");
        keygen(HUB, &dir.join("keys"));
        // The server certificate (for `localhost`) and the client CA, written by the harness.
        let tls = pki.query_config();
        let query = free_addr();
        let mut text = format!(
            "[hub]\nurls = {}\ndata_dir = \"data\"\nkey_file = \"keys/log.key\"\norigin = \"{HUB}\"\n\n",
            toml_list(nats)
        );
        for s in sidecars {
            text.push_str(&format!(
                "[[hub.log]]\norigin = \"{}\"\nkeys = {}\n\n",
                s.origin,
                toml_list(&s.keys)
            ));
        }
        text.push_str(&format!(
            "[hub.query]\naddress = \"{query}\"\ncert_file = \"{}\"\nkey_file = \"{}\"\n\
             client_ca_file = \"{}\"\n\n\
             [[hub.query.auditor]]\nname = \"dpo\"\nmatch = \"san:dpo@example.police.uk\"\nrole = \"dpo\"\n",
            tls.cert_file.display(),
            tls.key_file.display(),
            tls.client_ca_file.display()
        ));
        let config = dir.join("hub.toml");
        std::fs::write(&config, text).unwrap();
        let mut process = Process::spawn(&["hub", "--config"], &config, dir.join("hub.log"));
        process.wait_listening(query);
        HubProcess { query, process }
    }
}

/// What one proxy's clients saw.
#[derive(Default)]
struct Tally {
    /// 200s per person `P-n`.
    per_person: [u64; PEOPLE as usize],
    /// Requests not answered 200: what happened instead.
    failed: Vec<String>,
}

impl Tally {
    fn answered(&self) -> u64 {
        self.per_person.iter().sum()
    }
}

/// Client threads requesting people through each proxy until stopped.
struct Load {
    stop: Arc<AtomicBool>,
    answered: Vec<Arc<AtomicU64>>,
    clients: Vec<Vec<std::thread::JoinHandle<Tally>>>,
}

impl Load {
    fn start(sidecars: &[&Sidecar]) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let (mut answered, mut clients) = (Vec::new(), Vec::new());
        for s in sidecars {
            let count = Arc::new(AtomicU64::new(0));
            answered.push(count.clone());
            let officer = s.officer;
            let threads = (0..CLIENTS).map(|c| {
                let (stop, count) = (stop.clone(), count.clone());
                std::thread::spawn(move || {
                    let mut tally = Tally::default();
                    let mut n = c * 5;
                    while !stop.load(Ordering::Relaxed) {
                        match officer.get(n) {
                            Some(200) => {
                                tally.per_person[(n % PEOPLE) as usize] += 1;
                                count.fetch_add(1, Ordering::Relaxed);
                            }
                            other => tally.failed.push(format!("P-{}: {other:?}", n % PEOPLE)),
                        }
                        n += 1;
                    }
                    tally
                })
            });
            clients.push(threads.collect());
        }
        Load {
            stop,
            answered,
            clients,
        }
    }

    /// 200s so far, per proxy.
    fn answered(&self) -> Vec<u64> {
        self.answered
            .iter()
            .map(|a| a.load(Ordering::Relaxed))
            .collect()
    }

    async fn until_each_answered(&self, n: u64) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.answered().iter().any(|a| *a < n) {
            assert!(
                Instant::now() < deadline,
                "the proxies answered only {:?}",
                self.answered()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops the clients; what each proxy's clients saw.
    async fn stop(self) -> Vec<Tally> {
        self.stop.store(true, Ordering::Relaxed);
        tokio::task::spawn_blocking(move || {
            self.clients
                .into_iter()
                .map(|threads| {
                    let mut sum = Tally::default();
                    for t in threads {
                        let t = t.join().unwrap();
                        for (s, n) in sum.per_person.iter_mut().zip(t.per_person) {
                            *s += n;
                        }
                        sum.failed.extend(t.failed);
                    }
                    sum
                })
                .collect()
        })
        .await
        .unwrap()
    }
}

/// Each log at one moment: entries the sidecar logged (its latest checkpoint), published in the
/// stream (its latest checkpoint message) and verified by the hub (its latest checkpoint of it).
#[derive(Clone, Copy, Debug)]
struct Sample {
    at: Duration,
    logged: u64,
    published: u64,
    verified: u64,
}

/// Samples every log while the hub is expected to fall behind and catch up, from the kill on.
struct Watch<'a> {
    sidecars: Vec<&'a Sidecar>,
    start: Instant,
    samples: Vec<Vec<Sample>>,
}

impl<'a> Watch<'a> {
    fn new(sidecars: &[&'a Sidecar]) -> Watch<'a> {
        Watch {
            sidecars: sidecars.to_vec(),
            start: Instant::now(),
            samples: vec![Vec::new(); sidecars.len()],
        }
    }

    fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    /// One sample of every log; true when the hub holds each sidecar's latest checkpoint.
    async fn sample(
        &mut self,
        auditor: &mut AuditQueryClient<Channel>,
        js: &async_nats::jetstream::Context,
    ) -> bool {
        let mut caught_up = true;
        for (i, s) in self.sidecars.iter().enumerate() {
            let at = self.start.elapsed();
            let logged = tokio::task::block_in_place(|| s.checkpoint());
            let previous = self.samples[i].last().copied();
            let names = Names::for_origin(s.origin);
            // A probe that does not answer in time keeps the previous value.
            let (published, held) = tokio::join!(
                tokio::time::timeout(PROBE, published(js, &names)),
                tokio::time::timeout(PROBE, hub_checkpoint(auditor, s.origin)),
            );
            let published = match published {
                Ok(Some(size)) => size,
                _ => previous.map_or(0, |p| p.published),
            };
            let held = held.ok().flatten();
            let verified = match &held {
                Some(note) => size_of(note),
                None => previous.map_or(0, |p| p.verified),
            };
            caught_up &= held.as_deref() == Some(logged.as_str());
            self.samples[i].push(Sample {
                at,
                logged: size_of(&logged),
                published,
                verified,
            });
        }
        caught_up
    }

    async fn sample_for(
        &mut self,
        auditor: &mut AuditQueryClient<Channel>,
        js: &async_nats::jetstream::Context,
        period: Duration,
    ) {
        let until = self.start.elapsed() + period;
        while self.start.elapsed() < until {
            self.sample(auditor, js).await;
            tokio::time::sleep(TICK).await;
        }
    }

    async fn until_caught_up(
        &mut self,
        auditor: &mut AuditQueryClient<Channel>,
        js: &async_nats::jetstream::Context,
        hub: &HubProcess,
    ) {
        let deadline = Instant::now() + PATIENCE;
        while !self.sample(auditor, js).await {
            // A finding stops the hub taking that log in: fail now, showing the stream's order.
            // Seen in 2 of 36 runs when this test was written: `replication_gap` although every
            // entry was in the stream, once — entries published in one pipeline around the leader
            // change were stored out of order (e.g. 0-315, 401-827, 316-400, ...). The hub now
            // holds entries ahead of a missing one (`Monitor::entry`), so this is a real failure.
            let raised = alerts(auditor).await;
            if let Some(a) = raised.first() {
                panic!(
                    "the hub raised an alert after a node kill: {raised:?}\nlast samples \
                     (logged, published, verified): {:?}\n{} stream order (runs of entry seqs): {}",
                    self.samples
                        .iter()
                        .map(|s| s.last().map(|s| (s.logged, s.published, s.verified)))
                        .collect::<Vec<_>>(),
                    a.name,
                    stream_order(js, &a.name).await
                );
            }
            assert!(
                Instant::now() < deadline,
                "the hub did not catch up with the sidecars within {PATIENCE:?}; last samples \
                 (logged, published, verified): {:?}\nhub log:\n{}\nsidecar logs:\n{}",
                self.samples
                    .iter()
                    .map(|s| s.last().map(|s| (s.logged, s.published, s.verified)))
                    .collect::<Vec<_>>(),
                hub.process.tail(),
                self.sidecars
                    .iter()
                    .map(|s| s.process.tail())
                    .collect::<Vec<_>>()
                    .join("\n")
            );
            tokio::time::sleep(TICK).await;
        }
    }

    /// Prints, per log, the longest time the hub stood still behind the stream and the stream
    /// behind the log, and when the hub caught up.
    fn print(&self, killed: &str, load_stopped: Duration) {
        for (s, samples) in self.sidecars.iter().zip(&self.samples) {
            // The start of the last run of samples in which the hub held the whole log.
            let caught_up = samples
                .iter()
                .rev()
                .take_while(|x| x.verified == x.logged)
                .last()
                .map_or(Duration::ZERO, |x| x.at);
            println!(
                "{}: node {killed} killed at 0 s, load stopped at {:.1} s; the hub stood still \
                 behind the stream for up to {:.1} s, the stream behind the log for up to {:.1} s; \
                 caught up at {:.1} s ({:.1} s after the load stopped), {} entries",
                s.origin,
                load_stopped.as_secs_f64(),
                stall(samples, |x| (x.verified, x.published)).as_secs_f64(),
                stall(samples, |x| (x.published, x.logged)).as_secs_f64(),
                caught_up.as_secs_f64(),
                caught_up.saturating_sub(load_stopped).as_secs_f64(),
                samples.last().map_or(0, |x| x.logged),
            );
        }
    }
}

/// How often the watch samples, and how long one probe may take.
const TICK: Duration = Duration::from_millis(250);
const PROBE: Duration = Duration::from_secs(1);

/// The longest time `(follower, leader)` had the follower behind and not moving.
fn stall(samples: &[Sample], pair: impl Fn(&Sample) -> (u64, u64)) -> Duration {
    let mut longest = Duration::ZERO;
    // The follower's value and when it was first seen (or last seen level with the leader).
    let mut since: Option<(u64, Duration)> = None;
    for s in samples {
        let (follower, leader) = pair(s);
        match since {
            Some((v, t)) if v == follower && follower < leader => {
                longest = longest.max(s.at - t);
            }
            _ => since = Some((follower, s.at)),
        }
    }
    longest
}

/// Polls `probe` every 250 ms until it yields, for up to [`PATIENCE`].
async fn wait_for<T>(what: &str, hub: &HubProcess, mut probe: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(t) = probe().await {
            return t;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {PATIENCE:?} waiting for {what}; hub log:\n{}",
            hub.process.tail()
        );
        tokio::time::sleep(TICK).await;
    }
}

/// The node leading the origin's stream (a new stream may take a moment to report one).
async fn stream_leader(js: &async_nats::jetstream::Context, origin: &str) -> String {
    let names = Names::for_origin(origin);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut stream = js.get_stream(&names.stream).await.unwrap();
        let info = stream.info().await.unwrap();
        if let Some(leader) = info.cluster.as_ref().and_then(|c| c.leader.clone()) {
            return leader;
        }
        assert!(
            Instant::now() < deadline,
            "the stream reports no leader: {:?}",
            info.cluster
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The entry seqs of the origin's stream in stream order, as runs: "0-430, 432-960, 431-431, ...".
async fn stream_order(js: &async_nats::jetstream::Context, origin: &str) -> String {
    let (entries, _) = read_stream(js, &Names::for_origin(origin)).await;
    let mut runs: Vec<(u64, u64)> = Vec::new();
    for e in entries {
        match runs.last_mut() {
            Some((_, last)) if e.seq == *last + 1 => *last = e.seq,
            _ => runs.push((e.seq, e.seq)),
        }
    }
    let runs: Vec<String> = runs.iter().map(|(a, b)| format!("{a}-{b}")).collect();
    runs.join(", ")
}

/// The size of the latest checkpoint in the origin's stream.
async fn published(js: &async_nats::jetstream::Context, names: &Names) -> Option<u64> {
    let stream = js.get_stream(&names.stream).await.ok()?;
    let m = stream
        .get_last_raw_message_by_subject(&names.checkpoints)
        .await
        .ok()?;
    Some(size_of(std::str::from_utf8(&m.payload).ok()?))
}

/// The last entry in the origin's stream, as the sidecar published it.
async fn last_entry(js: &async_nats::jetstream::Context, names: &Names) -> ReplicatedEntry {
    let m = js
        .get_stream(&names.stream)
        .await
        .unwrap()
        .get_last_raw_message_by_subject(&names.entries)
        .await
        .unwrap();
    s62::replicate::decode_entries(m.payload.as_ref())
        .unwrap()
        .pop()
        .unwrap()
}

/// The hub's latest checkpoint of `origin`, asked for as an auditor (none before the first).
async fn hub_checkpoint(auditor: &mut AuditQueryClient<Channel>, origin: &str) -> Option<String> {
    let response = auditor
        .latest_checkpoint(LatestCheckpointRequest {
            context: context(),
            origin: origin.into(),
        })
        .await
        .ok()?;
    let checkpoint = response.into_inner().checkpoint?;
    assert_eq!(
        checkpoint.origin, origin,
        "the checkpoint of the log asked for"
    );
    Some(checkpoint.note)
}

/// Every alert in the hub's own log, asked for as an auditor.
async fn alerts(auditor: &mut AuditQueryClient<Channel>) -> Vec<Alert> {
    let mut stream = auditor
        .list_alerts(ListAlertsRequest {
            context: context(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut found = Vec::new();
    while let Some(m) = stream.message().await.unwrap() {
        if let Some(list_alerts_response::Item::Alert(item)) = m.item {
            let logged = item.alert.expect("the alert entry");
            assert_eq!(
                logged.origin, HUB,
                "alerts are entries of the hub's own log"
            );
            found.push(logged.entry.and_then(|e| e.alert).expect("an alert"));
        }
    }
    found
}

/// A subject report across every log the hub holds: its events and its summary.
async fn subject_report(
    auditor: &mut AuditQueryClient<Channel>,
    subject: &str,
) -> (Vec<SubjectEvent>, SubjectSummary) {
    let mut stream = auditor
        .subject_report(SubjectReportRequest {
            context: context(),
            subject: subject.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let (mut events, mut summary) = (Vec::new(), None);
    while let Some(m) = stream.message().await.unwrap() {
        match m.item {
            Some(subject_report_response::Item::Event(e)) => events.push(e),
            Some(subject_report_response::Item::Summary(s)) => summary = Some(s),
            None => {}
        }
    }
    (events, summary.expect("a summary ends the report"))
}
