//! Graceful shutdown under load: `s62 serve` (a real child process) receives SIGTERM while 16
//! clients are sending requests. Every response a client received with a 200 must have its intent
//! and outcome in the log; the log ends with the `stopped` admin entry and verifies.

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
}

fn wait_port(addr: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "{addr} never listened");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// One request; returns the status and the X-Request-Id s62 answered with.
fn get(addr: SocketAddr, n: usize) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let req = format!(
        "GET /people/P-100{} HTTP/1.1\r\nHost: records\r\nx-s62-user: pc-4021\r\nx-s62-purpose: investigation\r\n\
         x-s62-justification: shutdown test\r\nx-request-id: sigterm-{n}\r\nConnection: close\r\n\r\n",
        n % 5 + 1
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
    let upstream = free_addr();
    let mut records = Command::new(bin)
        .args(["records", "--listen", &upstream.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("records service");
    wait_port(upstream);
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
    let mut serve = Command::new(bin)
        .args(["serve", "--config"])
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("serve");
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
    std::thread::sleep(Duration::from_millis(1500));
    let before_term = acknowledged.lock().expect("lock").len();
    assert!(before_term > 0, "the clients were being served");
    assert!(
        Command::new("kill")
            .args(["-TERM", &serve.id().to_string()])
            .status()
            .expect("kill")
            .success()
    );
    let exited = serve.wait().expect("serve exits");
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().expect("client");
    }
    let _ = records.kill();
    let _ = records.wait();
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
