//! Key files on disk: `log.key` (the signed-note private key, mode 0600) and `log.pub` (note
//! verifier keys, one per line). File I/O only; the key formats live in [`crate::log::note`].

use crate::log::note::{NoteError, SignerKey, VerifierKey};
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
    let (key_path, pub_path) = key_paths(dir);
    for p in [&key_path, &pub_path] {
        if p.exists() {
            return Err(KeyFileError::Exists(p.clone()));
        }
    }
    let key = SignerKey::generate(origin).map_err(|source| KeyFileError::Format {
        path: key_path.clone(),
        source,
    })?;
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    write_private(&key_path, &format!("{}\n", key.to_skey()))?;
    std::fs::write(&pub_path, format!("{}\n", key.verifier().to_vkey())).map_err(io(&pub_path))?;
    Ok(key)
}

#[cfg(unix)]
fn write_private(path: &Path, content: &str) -> Result<(), KeyFileError> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io(path))?;
    f.write_all(content.as_bytes()).map_err(io(path))?;
    f.sync_all().map_err(io(path))
}

#[cfg(not(unix))]
fn write_private(path: &Path, content: &str) -> Result<(), KeyFileError> {
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

/// Reads a verifier-key file: one or more note verifier keys.
pub fn read_verifiers(path: &Path) -> Result<Vec<VerifierKey>, KeyFileError> {
    let text = std::fs::read_to_string(path).map_err(io(path))?;
    VerifierKey::parse_many(&text).map_err(|source| KeyFileError::Format {
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
            read_verifiers(&pub_path).expect("reads"),
            vec![key.verifier()]
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
