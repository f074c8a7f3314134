//! Witness key files: `witness.key` (the cosigner's secret key string, mode 0600) and
//! `witness.pub` (its cosigner vkey, type 0x04, which logs and verifiers are given). File I/O
//! only; the key formats live in [`crate::log::cosignature`].

use std::path::{Path, PathBuf};

use crate::keys::{KeyFileError, write_private};
use crate::log::cosignature::{CosignatureError, CosignerKey, CosignerVerifier};

/// A witness key file could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum WitnessKeyError {
    /// Reading or writing failed, the file exists already, or a private key is readable by others.
    #[error(transparent)]
    File(#[from] KeyFileError),
    /// The file's content is not a valid cosigner key.
    #[error("{path}: {source}")]
    Format {
        path: PathBuf,
        #[source]
        source: CosignatureError,
    },
}

/// Paths of a witness key pair in `dir`.
pub fn key_paths(dir: &Path) -> (PathBuf, PathBuf) {
    (dir.join("witness.key"), dir.join("witness.pub"))
}

/// Generates a cosigner key named `name`; writes `dir/witness.key` (0600) and `dir/witness.pub`.
/// Never overwrites a key.
pub fn generate(dir: &Path, name: &str) -> Result<CosignerKey, WitnessKeyError> {
    let (key_path, pub_path) = key_paths(dir);
    for p in [&key_path, &pub_path] {
        if p.exists() {
            return Err(KeyFileError::Exists(p.clone()).into());
        }
    }
    let key = CosignerKey::generate(name).map_err(|source| WitnessKeyError::Format {
        path: key_path.clone(),
        source,
    })?;
    std::fs::create_dir_all(dir).map_err(|source| KeyFileError::Io {
        path: dir.to_owned(),
        source,
    })?;
    write_private(&key_path, &format!("{}\n", key.to_skey()))?;
    std::fs::write(&pub_path, format!("{}\n", key.verifier().to_vkey())).map_err(|source| {
        KeyFileError::Io {
            path: pub_path.clone(),
            source,
        }
    })?;
    Ok(key)
}

/// Reads a cosigner secret key file, refusing one that other users can read.
pub fn read_cosigner(path: &Path) -> Result<CosignerKey, WitnessKeyError> {
    let io = |source| KeyFileError::Io {
        path: path.to_owned(),
        source,
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path).map_err(io)?.permissions().mode();
        if mode & 0o077 != 0 {
            return Err(KeyFileError::TooOpen {
                path: path.to_owned(),
                mode: mode & 0o777,
            }
            .into());
        }
    }
    let text = std::fs::read_to_string(path).map_err(io)?;
    CosignerKey::parse(text.trim()).map_err(|source| WitnessKeyError::Format {
        path: path.to_owned(),
        source,
    })
}

/// Reads a file of cosigner vkeys (one per line, `#` comments), e.g. for `verify --witness`.
pub fn read_cosigner_verifiers(path: &Path) -> Result<Vec<CosignerVerifier>, WitnessKeyError> {
    let text = std::fs::read_to_string(path).map_err(|source| KeyFileError::Io {
        path: path.to_owned(),
        source,
    })?;
    CosignerVerifier::parse_many(&text).map_err(|source| WitnessKeyError::Format {
        path: path.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_witness_key_reads_back_and_its_public_half_is_a_cosigner_vkey() {
        let dir = tempfile::tempdir().expect("tempdir");
        let key = generate(dir.path(), "witness.dpo.example.police.uk").expect("generate");
        let (key_path, pub_path) = key_paths(dir.path());
        assert_eq!(
            read_cosigner(&key_path).expect("reads").verifier(),
            key.verifier()
        );
        assert_eq!(
            read_cosigner_verifiers(&pub_path).expect("reads"),
            vec![key.verifier()]
        );
        assert!(matches!(
            generate(dir.path(), "witness.dpo.example.police.uk"),
            Err(WitnessKeyError::File(KeyFileError::Exists(_)))
        ));
    }
}
