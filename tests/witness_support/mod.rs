//! A real `s62 witness` process on a loopback port, and a raw HTTP/1.1 client written from the
//! spec (no hyper), for the witness tests.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A running `s62 witness`, killed on drop.
pub struct WitnessProcess {
    child: Option<Child>,
    pub addr: SocketAddr,
    pub config: PathBuf,
    pub state_dir: PathBuf,
    /// The witness's cosigner vkey file (`witness.pub`).
    pub pub_file: PathBuf,
    pub vkey: String,
}

fn free_port() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr")
}

fn s62() -> Command {
    Command::new(env!("CARGO_BIN_EXE_s62"))
}

impl WitnessProcess {
    /// Makes a witness key named `name` in `dir`, writes a config following `logs`
    /// (origin, TOML lines giving its keys), and starts the witness.
    pub fn start(dir: &Path, name: &str, logs: &[(&str, String)]) -> WitnessProcess {
        std::fs::create_dir_all(dir).expect("mkdir");
        let out = s62()
            .args(["witness-keygen", "--name", name, "--out"])
            .arg(dir)
            .output()
            .expect("witness-keygen");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let pub_file = dir.join("witness.pub");
        let vkey = std::fs::read_to_string(&pub_file)
            .expect("witness.pub")
            .trim()
            .to_owned();
        let addr = free_port();
        let mut config =
            format!("listen = \"{addr}\"\nkey_file = \"witness.key\"\nstate_dir = \"state\"\n");
        for (origin, keys) in logs {
            config.push_str(&format!("[[log]]\norigin = \"{origin}\"\n{keys}\n"));
        }
        let config_path = dir.join("witness.toml");
        std::fs::write(&config_path, config).expect("config");
        let mut w = WitnessProcess {
            child: None,
            addr,
            config: config_path,
            state_dir: dir.join("state"),
            pub_file,
            vkey,
        };
        w.restart();
        w
    }

    /// (Re)starts the process on the same address and waits until it accepts connections.
    pub fn restart(&mut self) {
        self.kill();
        let child = s62()
            .args(["witness", "--config"])
            .arg(&self.config)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn s62 witness");
        self.child = Some(child);
        for _ in 0..200 {
            if TcpStream::connect(self.addr).is_ok() {
                return;
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("s62 witness exited: {status}");
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("s62 witness did not listen on {}", self.addr);
    }

    /// Kills the process (SIGKILL: nothing is flushed on the way out).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The file holding the latest cosigned checkpoint of `origin`.
    pub fn checkpoint_file(&self, origin: &str) -> PathBuf {
        let found: Vec<PathBuf> = std::fs::read_dir(&self.state_dir)
            .expect("state dir")
            .map(|e| e.expect("entry").path())
            .filter(|p| p.extension().is_some_and(|x| x == "checkpoint"))
            .filter(|p| std::fs::read_to_string(p).is_ok_and(|t| t.lines().next() == Some(origin)))
            .collect();
        assert_eq!(found.len(), 1, "one state file for {origin}: {found:?}");
        found[0].clone()
    }

    /// The submission prefix URL for the sidecar's config.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for WitnessProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// An HTTP answer.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub content_type: String,
    pub body: String,
}

/// Sends `method path` with `body` over a fresh connection and reads the whole answer.
pub fn request(addr: SocketAddr, method: &str, path: &str, body: &str) -> Answer {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: witness\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .expect("send");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read");
    let raw = String::from_utf8(raw).expect("utf-8 answer");
    let (head, body) = raw.split_once("\r\n\r\n").expect("head and body");
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .expect("status line");
    let content_type = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.eq_ignore_ascii_case("content-type"))
        .map(|(_, v)| v.trim().to_owned())
        .unwrap_or_default();
    Answer {
        status,
        content_type,
        body: body.to_owned(),
    }
}

/// `POST /add-checkpoint`.
pub fn add_checkpoint(addr: SocketAddr, body: &str) -> Answer {
    request(addr, "POST", "/add-checkpoint", body)
}
