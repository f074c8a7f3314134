//! Graceful shutdown under load: `s62 serve` (a real child process) receives SIGTERM while 16
//! clients are sending requests and while one request is provably in flight: the records system
//! has received it and holds its answer until s62 has stopped accepting connections. That request
//! must still be answered 200, with its outcome logged before the `stopped` entry; every response
//! a client received with a 200 must have its intent and outcome in the log; the log ends with
//! the `stopped` admin entry and verifies.

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The person whose request the records system holds.
const HELD: &str = "P-1009";

/// A records system on `listener`: answers `GET /people/{id}` with `{"id": id}`; a request for
/// [`HELD`] is reported on `arrived` and answered only once `release` says so.
fn records_system(listener: TcpListener, arrived: mpsc::Sender<()>, release: mpsc::Receiver<()>) {
    let release = Arc::new(Mutex::new(release));
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let (arrived, release) = (arrived.clone(), release.clone());
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
                let id = path.rsplit('/').next().unwrap_or("");
                if id == HELD {
                    let _ = arrived.send(());
                    let _ = release.lock().expect("lock").recv();
                }
                let body = format!("{{\"id\":\"{id}\"}}");
                let _ = write!(
                    conn,
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
                     connection: close\r\n\r\n{body}",
                    body.len()
                );
            });
        }
    });
}

/// A child process that is killed and reaped when the test ends, passing or failing (after a
/// clean exit the kill does nothing).
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Polls `cond` every 10 ms; panics naming `what` after 20 s.
fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
}

fn wait_port(addr: SocketAddr) {
    wait_until(&format!("{addr} to listen"), || {
        TcpStream::connect(addr).is_ok()
    });
}

/// One request for person `P-100{n % 5 + 1}`; returns the status and the X-Request-Id s62
/// answered with.
fn get(addr: SocketAddr, n: usize) -> Option<(u16, String)> {
    get_person(
        addr,
        &format!("P-100{}", n % 5 + 1),
        &format!("sigterm-{n}"),
    )
}

fn get_person(addr: SocketAddr, person: &str, request_id: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    let req = format!(
        "GET /people/{person} HTTP/1.1\r\nHost: records\r\nx-s62-user: pc-4021\r\nx-s62-purpose: investigation\r\n\
         x-s62-justification: shutdown test\r\nx-request-id: {request_id}\r\nConnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes()).ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let status = out.get(9..12)?.parse().ok()?;
    let id = out.lines().find_map(|l| {
        l.to_ascii_lowercase()
            .strip_prefix("x-request-id: ")
            .map(|v| v.trim().to_owned())
    })?;
    Some((status, id))
}

#[cfg(unix)]
#[test]
fn sigterm_under_load_loses_no_acknowledged_request() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bin = env!("CARGO_BIN_EXE_s62");
    assert!(
        Command::new(bin)
            .args(["keygen", "--origin", "sigterm.s62.test/log", "--out"])
            .arg(dir.path().join("keys"))
            .output()
            .expect("keygen")
            .status
            .success()
    );
    let records = TcpListener::bind("127.0.0.1:0").expect("bind records");
    let upstream = records.local_addr().expect("addr");
    let (arrived_tx, arrived) = mpsc::channel();
    let (release, release_rx) = mpsc::channel();
    records_system(records, arrived_tx, release_rx);
    let proxy = free_addr();
    let config = dir.path().join("sidecar.toml");
    std::fs::write(
        &config,
        format!(
            "[log]\ndata_dir = \"log\"\nkey_file = \"keys/log.key\"\norigin = \"sigterm.s62.test/log\"\n\n\
             [listen]\naddress = \"{proxy}\"\n\n[upstream]\nurl = \"http://{upstream}\"\n\n\
             [identity]\nsources = [\"trusted_header\"]\nheader = \"x-s62-user\"\ntrusted_peers = [\"127.0.0.0/8\"]\n"
        ),
    )
    .expect("config");
    let mut serve = KillOnDrop(
        Command::new(bin)
            .args(["serve", "--config"])
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("serve"),
    );
    wait_port(proxy);

    let stop = Arc::new(AtomicBool::new(false));
    let acknowledged = Arc::new(Mutex::new(Vec::<String>::new()));
    let clients: Vec<_> = (0..16)
        .map(|c| {
            let (stop, acknowledged) = (stop.clone(), acknowledged.clone());
            std::thread::spawn(move || {
                let mut n = c * 1_000_000;
                while !stop.load(Ordering::Relaxed) {
                    if let Some((200, id)) = get(proxy, n) {
                        acknowledged.lock().expect("lock").push(id);
                    }
                    n += 1;
                }
            })
        })
        .collect();
    wait_until("the clients to be served", || {
        acknowledged.lock().expect("lock").len() >= 16
    });

    // One more request, which the records system receives and holds: it is in flight.
    let held = std::thread::spawn(move || get_person(proxy, HELD, "held-at-sigterm"));
    arrived
        .recv_timeout(Duration::from_secs(20))
        .expect("the held request reached the records system");
    assert!(
        Command::new("kill")
            .args(["-TERM", &serve.0.id().to_string()])
            .status()
            .expect("kill")
            .success()
    );
    // s62 has begun to stop: it no longer accepts connections, and the request is still held.
    wait_until("s62 to stop accepting connections", || {
        TcpStream::connect(proxy).is_err()
    });
    assert!(
        !held.is_finished(),
        "the held request was answered before SIGTERM took effect"
    );
    release.send(()).expect("release the held request");
    let (held_status, held_id) = held
        .join()
        .expect("held client")
        .expect("a request in flight at SIGTERM is answered");
    assert_eq!(
        held_status, 200,
        "a request in flight at SIGTERM is answered"
    );

    let exited = serve.0.wait().expect("serve exits");
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().expect("client");
    }
    assert!(
        exited.success(),
        "s62 serve stopped cleanly on SIGTERM: {exited:?}"
    );

    let entries = Command::new(bin)
        .args(["entries", "--data-dir"])
        .arg(dir.path().join("log"))
        .output()
        .expect("entries");
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&entries.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    let mut intents = std::collections::HashMap::new();
    let mut outcomes = HashSet::new();
    for e in &lines {
        match e["kind"].as_str() {
            Some("intent") => {
                intents.insert(
                    e["seq"].as_u64().expect("seq"),
                    e["request"]["request_id"].as_str().unwrap_or("").to_owned(),
                );
            }
            Some("outcome") => {
                if let Some(id) = e["answers_seq"].as_u64().and_then(|s| intents.get(&s)) {
                    outcomes.insert(id.clone());
                }
            }
            _ => {}
        }
    }
    // The held request's outcome is logged, and before the `stopped` entry. s62 answers with the
    // request id it generated and logged; the client's own id is kept beside it.
    let held_intent = intents
        .iter()
        .find(|(_, id)| **id == held_id)
        .map(|(seq, _)| *seq)
        .expect("the held request's intent");
    let held_intent_entry = lines
        .iter()
        .find(|e| e["seq"].as_u64() == Some(held_intent))
        .expect("intent");
    assert_eq!(
        held_intent_entry["request"]["client_request_id"],
        "held-at-sigterm"
    );
    let held_outcome = lines
        .iter()
        .find(|e| e["kind"] == "outcome" && e["answers_seq"].as_u64() == Some(held_intent))
        .expect("the held request's outcome");
    assert_eq!(held_outcome["outcome"]["status"], 200);
    let stopped_seq = lines
        .iter()
        .find(|e| e["admin"]["action"] == "stopped")
        .and_then(|e| e["seq"].as_u64())
        .expect("stopped entry");
    assert!(held_outcome["seq"].as_u64().expect("seq") < stopped_seq);

    let acknowledged = acknowledged.lock().expect("lock").clone();
    let missing: Vec<_> = acknowledged
        .iter()
        .filter(|id| !outcomes.contains(*id))
        .collect();
    assert!(
        missing.is_empty(),
        "acknowledged but not logged: {missing:?}"
    );
    assert_eq!(
        lines.last().and_then(|e| e["admin"]["action"].as_str()),
        Some("stopped")
    );
    let verify = Command::new(bin)
        .args(["verify", "--data-dir"])
        .arg(dir.path().join("log"))
        .arg("--key")
        .arg(dir.path().join("keys/log.pub"))
        .output()
        .expect("verify");
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stderr)
    );
}
