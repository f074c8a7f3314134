//! Key files on disk: `log.key` (the signed-note private key, mode 0600) and `log.pub` (the log's
//! note verifier keys and the checkpoint sizes each signs). File I/O only; the key formats live in
//! [`crate::log::note`] and [`crate::log::epoch`]. Every file is written durably (fsync'd, and
//! `log.pub` replaced atomically), so a crash never leaves half a key.

use crate::fsutil::write_atomic;
use crate::log::epoch::{self, KeyEpochs, LogKeys};
use crate::log::note::{NoteError, SignerKey};
use std::io::Write;
use std::path::{Path, PathBuf};

/// A key file could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    /// Reading or writing the file failed.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file's content is not a valid key.
    #[error("{path}: {source}")]
    Format {
        path: PathBuf,
        #[source]
        source: NoteError,
    },
    /// The verifier-key file is not a valid `log.pub`.
    #[error("{path}: {source}")]
    PubFormat {
        path: PathBuf,
        #[source]
        source: epoch::KeyFileError,
    },
    /// keygen refuses to replace a key: checkpoints signed with it would no longer verify.
    #[error("{0} already exists; refusing to overwrite a signing key")]
    Exists(PathBuf),
    /// A private key file others can read.
    #[error("{path} is readable by other users (mode {mode:o}); run chmod 600 on it")]
    TooOpen { path: PathBuf, mode: u32 },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> KeyFileError + '_ {
    move |source| KeyFileError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Paths of a key pair in `dir`.
pub fn key_paths(dir: &Path) -> (PathBuf, PathBuf) {
    (dir.join("log.key"), dir.join("log.pub"))
}

/// Generates a key named `origin` and writes `dir/log.key` (0600) and `dir/log.pub`.
pub fn generate(dir: &Path, origin: &str) -> Result<SignerKey, KeyFileError> {
    let (_, pub_path) = key_paths(dir);
    if pub_path.exists() {
        return Err(KeyFileError::Exists(pub_path));
    }
    let key = generate_signer(dir, origin)?;
    write_log_keys(&pub_path, &KeyEpochs::starting_with(key.verifier()))?;
    Ok(key)
}

/// Generates a key named `origin` and writes only `dir/log.key` (0600); refuses to replace one.
pub fn generate_signer(dir: &Path, origin: &str) -> Result<SignerKey, KeyFileError> {
    let (key_path, _) = key_paths(dir);
    if key_path.exists() {
        return Err(KeyFileError::Exists(key_path));
    }
    let key = SignerKey::generate(origin).map_err(|source| KeyFileError::Format {
        path: key_path.clone(),
        source,
    })?;
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    write_private(&key_path, &format!("{}\n", key.to_skey()))?;
    Ok(key)
}

/// Writes `log.pub` for these epochs, atomically and durably.
pub fn write_log_keys(path: &Path, epochs: &KeyEpochs) -> Result<(), KeyFileError> {
    write_atomic(path, epochs.to_key_file().as_bytes()).map_err(io(path))
}

#[cfg(unix)]
pub(crate) fn write_private(path: &Path, content: &str) -> Result<(), KeyFileError> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io(path))?;
    f.write_all(content.as_bytes()).map_err(io(path))?;
    f.sync_all().map_err(io(path))?;
    let dir = path.parent().unwrap_or(Path::new("."));
    crate::fsutil::sync_dir(dir).map_err(io(dir))
}

#[cfg(not(unix))]
pub(crate) fn write_private(path: &Path, content: &str) -> Result<(), KeyFileError> {
    let mut f = std::fs::File::create_new(path).map_err(io(path))?;
    f.write_all(content.as_bytes()).map_err(io(path))?;
    f.sync_all().map_err(io(path))
}

/// Reads a private key file, refusing one that other users can read.
pub fn read_signer(path: &Path) -> Result<SignerKey, KeyFileError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)
            .map_err(io(path))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(KeyFileError::TooOpen {
                path: path.to_owned(),
                mode: mode & 0o777,
            });
        }
    }
    let text = std::fs::read_to_string(path).map_err(io(path))?;
    SignerKey::parse(text.trim()).map_err(|source| KeyFileError::Format {
        path: path.to_owned(),
        source,
    })
}

/// Reads a `log.pub`: the log's verifier keys and, after rotations, the sizes each signs.
pub fn read_log_keys(path: &Path) -> Result<LogKeys, KeyFileError> {
    let text = std::fs::read_to_string(path).map_err(io(path))?;
    LogKeys::parse(&text).map_err(|source| KeyFileError::PubFormat {
        path: path.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keygen_writes_a_private_key_only_its_owner_can_read_and_a_matching_public_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let key = generate(dir.path(), "example.police.uk/records").expect("generated");
        let (key_path, pub_path) = key_paths(dir.path());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&key_path)
                .expect("meta")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let read_back = read_signer(&key_path).expect("reads");
        assert_eq!(read_back.verifier(), key.verifier());
        assert_eq!(
            read_log_keys(&pub_path).expect("reads").keys(),
            [key.verifier()]
        );
        let line = std::fs::read_to_string(&pub_path).expect("read");
        assert!(line.starts_with("example.police.uk/records+"), "{line}");
    }

    #[test]
    fn keygen_never_overwrites_a_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        generate(dir.path(), "a.example/log").expect("first");
        assert!(matches!(
            generate(dir.path(), "a.example/log"),
            Err(KeyFileError::Exists(_))
        ));
    }

    #[cfg(unix)]
    #[test]
    fn a_private_key_readable_by_others_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        generate(dir.path(), "a.example/log").expect("generated");
        let (key_path, _) = key_paths(dir.path());
        std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        assert!(matches!(
            read_signer(&key_path),
            Err(KeyFileError::TooOpen { .. })
        ));
    }
}
