//! The witness's durable state: per log origin, the latest checkpoint it cosigned, kept as the
//! cosigned note itself (`STATE/<name>.checkpoint`: the text, the log's signature lines and the
//! witness's cosignature), which is also the file a verifier hands to
//! `s62 verify --trust-checkpoint`. Requests that prove the log misbehaved are kept in
//! `STATE/evidence/`.
//!
//! Invariants: a state file is replaced only by writing a temporary file, fsyncing it, renaming it
//! over the old one and fsyncing the folder, so a crash leaves the old or the new state, never a
//! torn one; the in-memory copy changes only after that succeeded. The caller holds one lock over
//! [`WitnessState`] for check-then-persist. File I/O only: must not import tokio, hyper or the
//! log store.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::fsutil::write_atomic;
use crate::log::checkpoint::Checkpoint;
use crate::log::note::parse_note;

use super::verdict::Latest;

/// Most evidence files kept; later ones are counted in the log line only.
pub const MAX_EVIDENCE_FILES: usize = 1000;

/// Why the state folder could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The folder or a state file could not be read or created.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A state file does not hold a checkpoint note of its origin.
    #[error("{path}: not a cosigned checkpoint of {origin:?}: {why}")]
    Corrupt {
        path: PathBuf,
        origin: String,
        why: String,
    },
}

/// The file-name stem for an origin: its characters outside `[A-Za-z0-9._-]` replaced by `_`,
/// then `-` and the first 8 hex digits of SHA-256(origin), so distinct origins never share a file.
pub fn file_stem(origin: &str) -> String {
    let safe: String = origin
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .take(100)
        .collect();
    let digest = crate::log::hash::sha256(origin.as_bytes());
    format!("{safe}-{}", &digest.to_hex()[..8])
}

/// Path of the state file (the latest cosigned checkpoint) of `origin` in `dir`.
pub fn checkpoint_file(dir: &Path, origin: &str) -> PathBuf {
    dir.join(format!("{}.checkpoint", file_stem(origin)))
}

struct LogState {
    latest: Option<Latest>,
}

/// Every followed log's latest cosigned checkpoint, mirrored on disk.
pub struct WitnessState {
    dir: PathBuf,
    logs: HashMap<String, LogState>,
    evidence_kept: usize,
}

impl WitnessState {
    /// Opens (creating if needed) the state folder and reads the state of each origin.
    pub fn open<'a>(
        dir: &Path,
        origins: impl IntoIterator<Item = &'a str>,
    ) -> Result<Self, StateError> {
        let io_err = |path: &Path| {
            let path = path.to_owned();
            move |source| StateError::Io { path, source }
        };
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        let mut logs = HashMap::new();
        for origin in origins {
            let path = checkpoint_file(dir, origin);
            let latest = match fs::read_to_string(&path) {
                Ok(note) => Some(parse_state(&path, origin, &note)?),
                Err(e) if e.kind() == io::ErrorKind::NotFound => None,
                Err(e) => return Err(io_err(&path)(e)),
            };
            logs.insert(origin.to_owned(), LogState { latest });
        }
        let evidence = dir.join("evidence");
        let evidence_kept = match fs::read_dir(&evidence) {
            Ok(rd) => rd.count(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
            Err(e) => return Err(io_err(&evidence)(e)),
        };
        Ok(WitnessState {
            dir: dir.to_owned(),
            logs,
            evidence_kept,
        })
    }

    /// The latest cosigned checkpoint of `origin`, if any.
    pub fn latest(&self, origin: &str) -> Option<Latest> {
        self.logs.get(origin).and_then(|l| l.latest)
    }

    /// Durably records `note` (the cosigned checkpoint) as the latest of `origin`.
    pub fn persist(&mut self, origin: &str, latest: Latest, note: &str) -> io::Result<()> {
        let path = checkpoint_file(&self.dir, origin);
        write_atomic(&path, note.as_bytes())?;
        self.logs
            .entry(origin.to_owned())
            .or_insert(LogState { latest: None })
            .latest = Some(latest);
        Ok(())
    }

    /// Keeps a refused request as evidence (`evidence/<stem>.<time>.<status>.<n>.txt`), at most
    /// [`MAX_EVIDENCE_FILES`]; returns the file written, if any.
    pub fn keep_evidence(
        &mut self,
        origin: &str,
        now: u64,
        status: u16,
        body: &[u8],
    ) -> io::Result<Option<PathBuf>> {
        if self.evidence_kept >= MAX_EVIDENCE_FILES {
            return Ok(None);
        }
        let dir = self.dir.join("evidence");
        fs::create_dir_all(&dir)?;
        let path = dir.join(format!(
            "{}.{now}.{status}.{}.txt",
            file_stem(origin),
            self.evidence_kept
        ));
        write_atomic(&path, body)?;
        self.evidence_kept += 1;
        Ok(Some(path))
    }
}

fn parse_state(path: &Path, origin: &str, note: &str) -> Result<Latest, StateError> {
    let corrupt = |why: String| StateError::Corrupt {
        path: path.to_owned(),
        origin: origin.to_owned(),
        why,
    };
    let parsed = parse_note(note).map_err(|e| corrupt(e.to_string()))?;
    let cp = Checkpoint::parse_text(&parsed.text).map_err(|e| corrupt(e.to_string()))?;
    if cp.origin != origin {
        return Err(corrupt(format!("it holds origin {:?}", cp.origin)));
    }
    Ok(Latest {
        size: cp.size,
        root: cp.root,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::hash::sha256;

    fn note(origin: &str, size: u64) -> String {
        format!(
            "{origin}\n{size}\n{}\n\n\u{2014} w AAAAAAE=\n",
            sha256(&size.to_be_bytes()).to_base64()
        )
    }

    #[test]
    fn state_survives_a_reopen_and_each_origin_has_its_own_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (a, b) = ("example.police.uk/a", "example.police.uk/b");
        let mut s = WitnessState::open(dir.path(), [a, b]).expect("open");
        assert_eq!(s.latest(a), None);
        let la = Latest {
            size: 7,
            root: sha256(&7u64.to_be_bytes()),
        };
        s.persist(a, la, &note(a, 7)).expect("persist");
        drop(s);
        let s = WitnessState::open(dir.path(), [a, b]).expect("reopen");
        assert_eq!(s.latest(a), Some(la));
        assert_eq!(s.latest(b), None);
        assert_eq!(
            fs::read_to_string(checkpoint_file(dir.path(), a)).expect("read"),
            note(a, 7)
        );
        assert_ne!(file_stem(a), file_stem(b));
        assert!(file_stem(a).starts_with("example.police.uk_a-"));
    }

    #[test]
    fn a_state_file_of_another_origin_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = "example.police.uk/a";
        fs::write(checkpoint_file(dir.path(), a), note("someone.else/log", 3)).expect("write");
        assert!(matches!(
            WitnessState::open(dir.path(), [a]),
            Err(StateError::Corrupt { .. })
        ));
    }
}
