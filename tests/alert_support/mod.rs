//! Real alert receivers for tests: a webhook (a small hyper server) and a real `rsyslogd` with
//! only `imtcp`, started and stopped by the test on loopback ports. `rsyslogd` must be installed
//! (`scripts/setup.sh` does it; CI runs it): a test that needs it fails, not skips, without it.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

// ---------------------------------------------------------------------------------------------
// A webhook receiver.

/// In a receiver's script: answer 200, but only after 3 s.
pub const TOO_LATE: u16 = 0;

#[derive(Clone, Default)]
pub struct Receiver {
    /// Statuses to answer, in order, before answering 200 to everything.
    pub script: Arc<Mutex<VecDeque<u16>>>,
    /// Every request: (status answered, headers, JSON body).
    pub seen: Arc<Mutex<Vec<(u16, http::HeaderMap, serde_json::Value)>>>,
}

impl Receiver {
    pub async fn start(script: &[u16]) -> (Receiver, SocketAddr) {
        let r = Receiver::default();
        r.script.lock().unwrap().extend(script);
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let server = r.clone();
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let r = server.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| r.clone().answer(req));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tcp), service)
                        .await;
                });
            }
        });
        (r, addr)
    }

    async fn answer(self, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, hyper::Error> {
        let (parts, body) = req.into_parts();
        let body = body.collect().await?.to_bytes();
        let json = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
        let status = self.script.lock().unwrap().pop_front().unwrap_or(200);
        if status == TOO_LATE {
            // Received, but answered (200) only after the sender has given up.
            self.seen
                .lock()
                .unwrap()
                .push((TOO_LATE, parts.headers, json));
            tokio::time::sleep(Duration::from_secs(3)).await;
            return Ok(Response::new(Full::new(Bytes::from_static(b"{}"))));
        }
        self.seen
            .lock()
            .unwrap()
            .push((status, parts.headers, json));
        Ok(Response::builder()
            .status(status)
            .body(Full::new(Bytes::from_static(b"{}")))
            .expect("response"))
    }

    /// Bodies of the requests answered 2xx, in arrival order.
    pub fn accepted(&self) -> Vec<serde_json::Value> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|(s, _, _)| (200..300).contains(s))
            .map(|(_, _, j)| j.clone())
            .collect()
    }

    pub fn accepted_seqs(&self) -> Vec<u64> {
        self.accepted()
            .iter()
            .map(|j| j["seq"].as_u64().expect("seq"))
            .collect()
    }

    pub fn attempts(&self) -> usize {
        self.seen.lock().unwrap().len()
    }
}

// ---------------------------------------------------------------------------------------------
// A real rsyslogd.

pub fn rsyslogd() -> PathBuf {
    let found = [
        "/usr/sbin/rsyslogd",
        "/sbin/rsyslogd",
        "/usr/local/sbin/rsyslogd",
    ]
    .into_iter()
    .map(PathBuf::from)
    .find(|p| p.is_file())
    .or_else(|| {
        let out = Command::new("sh")
            .args(["-c", "command -v rsyslogd"])
            .output()
            .ok()?;
        let p = String::from_utf8(out.stdout).ok()?.trim().to_owned();
        (!p.is_empty()).then(|| PathBuf::from(p))
    });
    found.unwrap_or_else(|| {
        panic!(
            "rsyslogd is not installed: run scripts/setup.sh (it installs rsyslog; CI does), \
             these tests need a real syslog collector"
        )
    })
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// An `rsyslogd -n` with only `imtcp` on a loopback port, writing what it receives to a file in
/// the RFC 5424 layout (`RSYSLOG_SyslogProtocol23Format`, which keeps the structured data).
pub struct Rsyslog {
    child: Child,
    dir: PathBuf,
    pub port: u16,
}

impl Rsyslog {
    pub async fn start(dir: &Path, port: u16) -> Rsyslog {
        let conf = dir.join("rsyslog.conf");
        std::fs::write(
            &conf,
            format!(
                r#"global(workDirectory="{dir}")
module(load="imtcp")
input(type="imtcp" address="127.0.0.1" port="{port}")
*.* action(type="omfile" file="{out}" template="RSYSLOG_SyslogProtocol23Format")
"#,
                dir = dir.display(),
                out = dir.join("received.log").display(),
            ),
        )
        .unwrap();
        let child = Command::new(rsyslogd())
            .arg("-n")
            .arg("-f")
            .arg(&conf)
            .arg("-i")
            .arg(dir.join("rsyslogd.pid"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("rsyslogd starts");
        let mut r = Rsyslog {
            child,
            dir: dir.to_owned(),
            port,
        };
        for _ in 0..200 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return r;
            }
            if let Ok(Some(status)) = r.child.try_wait() {
                panic!(
                    "rsyslogd exited at start ({status}); config {}",
                    conf.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        r.stop();
        panic!("rsyslogd did not listen on port {port}");
    }

    /// SIGTERM (rsyslogd flushes its file and closes its connections), then waits.
    pub fn stop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        for _ in 0..100 {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn lines(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.join("received.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.stop();
        }
    }
}
