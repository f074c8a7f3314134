//! Witness cosignatures (c2sp.org/tlog-cosignature, Ed25519 `cosignature/v1`): cosigner keys,
//! signing and verifying cosignature lines on a checkpoint note.
//!
//! A cosignature is a signed-note signature line ([`super::note`]) whose key type byte is 0x04:
//!
//! ```text
//! line      = "—" " " name " " base64(keyid ‖ timestamp ‖ signature) "\n"
//! keyid     = SHA-256(name ‖ 0x0A ‖ 0x04 ‖ 32-byte Ed25519 public key)[:4]
//! timestamp = u64 big-endian POSIX seconds, at most 2^63 − 1
//! signature = Ed25519 over "cosignature/v1\n" ‖ "time " decimal(timestamp) "\n" ‖ note text
//! vkey      = name "+" hex(keyid) "+" base64(0x04 ‖ public key)
//! skey      = "PRIVATE+KEY+" name "+" hex(keyid) "+" base64(0x04 ‖ 32-byte seed)
//! ```
//!
//! The note text is the whole checkpoint body including its final newline and any extension
//! lines, excluding every signature line. A cosignature states that, at that time, this is the
//! largest tree head consistent with everything the cosigner has seen for the origin.
//!
//! Invariants: a key of type 0x01 (a log's signed-note key) is never accepted as a cosigner key,
//! so a log signature can never count as a cosignature or the other way round; verification is
//! `verify_strict`; a line from a known cosigner that does not verify rejects the note (the
//! signed-note rule), lines from unknown keys are ignored.
//!
//! Pure: no file I/O, no clock (the caller passes the time), no tokio, no storage. The only side
//! effect is the operating-system randomness read by [`CosignerKey::generate`].

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

use super::note::{
    Note, NoteError, NoteSignature, SIG_PREFIX, check_key_name, parse_key_id_hex, parse_note, wipe,
};

/// Key type byte of an Ed25519 `cosignature/v1` key (c2sp.org/tlog-cosignature).
pub const ALG_COSIGNATURE_V1: u8 = 0x04;

/// First line of every signed message: the domain separator.
pub const HEADER_LINE: &str = "cosignature/v1";

/// Largest timestamp a cosignature may carry (2^63 − 1).
pub const MAX_TIMESTAMP: u64 = i64::MAX as u64;

/// Bytes after the key ID in a cosignature: 8-byte timestamp and 64-byte Ed25519 signature.
pub const SIGNATURE_LEN: usize = 8 + 64;

/// Errors from cosigner keys, cosigning and cosignature verification.
#[derive(Debug, thiserror::Error)]
pub enum CosignatureError {
    /// A key string or a note failed the signed-note rules (name, structure, key ID, point).
    #[error(transparent)]
    Note(#[from] NoteError),
    /// A key whose type byte is not 0x04. A 0x01 key is a log's signed-note key, not a witness's.
    #[error(
        "key type 0x{alg:02x} is not a cosigner key: a witness key has type 0x04 \
         (Ed25519 cosignature/v1); 0x01 is a log's signed-note key"
    )]
    NotACosignerKey {
        /// The type byte found.
        alg: u8,
    },
    /// A cosigner-key file held no keys.
    #[error("cosigner-key file contains no keys")]
    NoKeys,
    /// A line of a cosigner-key file failed to parse.
    #[error("cosigner-key file line {line}: {source}")]
    KeyFileLine {
        /// 1-based line number.
        line: usize,
        /// Why the line was rejected.
        #[source]
        source: Box<CosignatureError>,
    },
    /// A timestamp above 2^63 − 1, which the spec forbids.
    #[error("cosignature timestamp {0} exceeds 2^63 - 1")]
    TimestampTooLarge(u64),
    /// The text handed to [`CosignerKey::cosign`] cannot be a note text.
    #[error("text cannot be cosigned: {why}")]
    UncosignableText {
        /// Which rule it breaks.
        why: &'static str,
    },
    /// A cosignature line from a known cosigner (name and key ID match) does not verify.
    #[error("invalid cosignature from known witness {name} ({})", hex::encode(.key_id))]
    BadCosignature {
        /// Name on the line.
        name: String,
        /// Key ID on the line.
        key_id: [u8; 4],
    },
}

/// Key ID of an Ed25519 cosigner key: `SHA-256(name ‖ 0x0A ‖ 0x04 ‖ pubkey)[:4]`.
pub fn cosigner_key_id(name: &str, public_key: &[u8; 32]) -> [u8; 4] {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update([b'\n', ALG_COSIGNATURE_V1]);
    h.update(public_key);
    let d = h.finalize();
    [d[0], d[1], d[2], d[3]]
}

/// The message a `cosignature/v1` signature covers:
/// `"cosignature/v1\ntime <timestamp>\n" ‖ text`.
pub fn signed_message(timestamp: u64, text: &str) -> Vec<u8> {
    format!("{HEADER_LINE}\ntime {timestamp}\n{text}").into_bytes()
}

/// Renders one decoded signature line back to its text form, `— name base64(keyid ‖ sig)\n`.
pub fn signature_line(sig: &NoteSignature) -> String {
    let mut blob = Vec::with_capacity(4 + sig.signature.len());
    blob.extend_from_slice(&sig.key_id);
    blob.extend_from_slice(&sig.signature);
    format!("{SIG_PREFIX}{} {}\n", sig.name, B64.encode(blob))
}

/// An Ed25519 cosigner (witness) signing key with its name and key ID. `Debug` never prints the
/// seed; the secret is zeroized on drop.
pub struct CosignerKey {
    name: String,
    key_id: [u8; 4],
    key: SigningKey,
}

impl std::fmt::Debug for CosignerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CosignerKey")
            .field("name", &self.name)
            .field("key_id", &hex::encode(self.key_id))
            .finish_non_exhaustive()
    }
}

impl CosignerKey {
    /// A new key from 32 bytes of operating-system randomness.
    pub fn generate(name: &str) -> Result<Self, CosignatureError> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| CosignatureError::Note(NoteError::Random(e)))?;
        let key = Self::from_seed(name, seed);
        wipe(&mut seed);
        key
    }

    /// The key with this RFC 8032 seed.
    pub fn from_seed(name: &str, mut seed: [u8; 32]) -> Result<Self, CosignatureError> {
        check_key_name(name)?;
        let key = SigningKey::from_bytes(&seed);
        wipe(&mut seed);
        Ok(CosignerKey {
            name: name.to_owned(),
            key_id: cosigner_key_id(name, key.verifying_key().as_bytes()),
            key,
        })
    }

    /// Parses `PRIVATE+KEY+<name>+<hex keyid>+<base64(0x04 ‖ seed)>`; the key ID must be the one
    /// derived from the name and the seed's public key. Errors never contain key material.
    pub fn parse(skey: &str) -> Result<Self, CosignatureError> {
        let malformed = |why| CosignatureError::Note(NoteError::MalformedKey { why });
        let mut parts = skey.splitn(5, '+');
        let (Some("PRIVATE"), Some("KEY"), Some(name), Some(id_hex), Some(key64)) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(malformed("signer key is not PRIVATE+KEY+name+keyid+key"));
        };
        check_key_name(name)?;
        let stated = parse_key_id_hex(id_hex)?;
        // 0x04 ‖ 32-byte seed is 33 bytes; one spare byte lets an over-long key be detected.
        let mut buf = [0u8; 34];
        let n = match B64.decode_slice(key64, &mut buf) {
            Ok(n) => n,
            Err(_) => {
                wipe(&mut buf);
                return Err(malformed("signer key is not valid base64 of 33 bytes"));
            }
        };
        let alg = buf[0];
        if n == 0 || alg != ALG_COSIGNATURE_V1 {
            wipe(&mut buf);
            return Err(CosignatureError::NotACosignerKey { alg });
        }
        if n != 33 {
            wipe(&mut buf);
            return Err(malformed("Ed25519 signer key is not 32 bytes"));
        }
        let mut seed = [0u8; 32];
        seed.copy_from_slice(&buf[1..33]);
        wipe(&mut buf);
        let key = Self::from_seed(name, seed)?;
        wipe(&mut seed);
        if key.key_id != stated {
            return Err(NoteError::KeyIdMismatch {
                name: name.to_owned(),
                stated,
                derived: key.key_id,
            }
            .into());
        }
        Ok(key)
    }

    /// The secret key string `PRIVATE+KEY+<name>+<hex keyid>+<base64(0x04 ‖ seed)>`.
    pub fn to_skey(&self) -> String {
        let mut buf = [0u8; 33];
        buf[0] = ALG_COSIGNATURE_V1;
        buf[1..].copy_from_slice(self.key.as_bytes());
        let s = format!(
            "PRIVATE+KEY+{}+{}+{}",
            self.name,
            hex::encode(self.key_id),
            B64.encode(buf)
        );
        wipe(&mut buf);
        s
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn key_id(&self) -> [u8; 4] {
        self.key_id
    }

    /// The matching public key.
    pub fn verifier(&self) -> CosignerVerifier {
        CosignerVerifier {
            name: self.name.clone(),
            key_id: self.key_id,
            key: self.key.verifying_key(),
        }
    }

    /// The cosignature line (`— name base64(keyid ‖ timestamp ‖ sig)\n`) over the note `text`
    /// (a checkpoint body ending in `"\n"`) at `timestamp` seconds.
    pub fn cosign(&self, text: &str, timestamp: u64) -> Result<String, CosignatureError> {
        if timestamp > MAX_TIMESTAMP {
            return Err(CosignatureError::TimestampTooLarge(timestamp));
        }
        if text.is_empty() || !text.ends_with('\n') {
            return Err(CosignatureError::UncosignableText {
                why: "text does not end in a newline",
            });
        }
        if text.chars().any(|c| c < ' ' && c != '\n') {
            return Err(CosignatureError::UncosignableText {
                why: "text contains an ASCII control character other than newline",
            });
        }
        let sig = self.key.sign(&signed_message(timestamp, text));
        let mut signature = Vec::with_capacity(SIGNATURE_LEN);
        signature.extend_from_slice(&timestamp.to_be_bytes());
        signature.extend_from_slice(&sig.to_bytes());
        Ok(signature_line(&NoteSignature {
            name: self.name.clone(),
            key_id: self.key_id,
            signature,
        }))
    }
}

/// An Ed25519 cosigner (witness) public key with its name and key ID.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CosignerVerifier {
    name: String,
    key_id: [u8; 4],
    key: VerifyingKey,
}

impl CosignerVerifier {
    /// Parses `<name>+<hex keyid>+<base64(0x04 ‖ pubkey)>`, requiring the key ID derived with
    /// type byte 0x04.
    pub fn parse(vkey: &str) -> Result<Self, CosignatureError> {
        let malformed = |why| CosignatureError::Note(NoteError::MalformedKey { why });
        let mut parts = vkey.splitn(3, '+');
        let (Some(name), Some(id_hex), Some(key64)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(malformed("verifier key is not name+keyid+key"));
        };
        check_key_name(name)?;
        let stated = parse_key_id_hex(id_hex)?;
        let raw = B64
            .decode(key64)
            .map_err(|_| malformed("verifier key is not valid base64"))?;
        let Some((&alg, pubkey)) = raw.split_first() else {
            return Err(malformed("verifier key is empty"));
        };
        if alg != ALG_COSIGNATURE_V1 {
            return Err(CosignatureError::NotACosignerKey { alg });
        }
        let pubkey: [u8; 32] = pubkey
            .try_into()
            .map_err(|_| malformed("Ed25519 public key is not 32 bytes"))?;
        let derived = cosigner_key_id(name, &pubkey);
        if derived != stated {
            return Err(NoteError::KeyIdMismatch {
                name: name.to_owned(),
                stated,
                derived,
            }
            .into());
        }
        let key = VerifyingKey::from_bytes(&pubkey).map_err(|_| NoteError::InvalidPublicKey {
            name: name.to_owned(),
        })?;
        Ok(CosignerVerifier {
            name: name.to_owned(),
            key_id: derived,
            key,
        })
    }

    /// Parses a cosigner-key file: one vkey per line; blank lines and `#` comments are ignored;
    /// at least one key.
    pub fn parse_many(text: &str) -> Result<Vec<Self>, CosignatureError> {
        let mut keys = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            keys.push(
                Self::parse(line).map_err(|e| CosignatureError::KeyFileLine {
                    line: i + 1,
                    source: Box::new(e),
                })?,
            );
        }
        if keys.is_empty() {
            return Err(CosignatureError::NoKeys);
        }
        Ok(keys)
    }

    /// The vkey string `<name>+<hex keyid>+<base64(0x04 ‖ pubkey)>`.
    pub fn to_vkey(&self) -> String {
        let mut buf = [0u8; 33];
        buf[0] = ALG_COSIGNATURE_V1;
        buf[1..].copy_from_slice(self.key.as_bytes());
        format!(
            "{}+{}+{}",
            self.name,
            hex::encode(self.key_id),
            B64.encode(buf)
        )
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn key_id(&self) -> [u8; 4] {
        self.key_id
    }

    pub fn public_key(&self) -> [u8; 32] {
        self.key.to_bytes()
    }

    /// Whether `signature` (the bytes after the key ID: timestamp ‖ Ed25519 signature) is this
    /// key's valid cosignature over `text`; returns its timestamp if so.
    pub fn verify(&self, text: &str, signature: &[u8]) -> Option<u64> {
        if signature.len() != SIGNATURE_LEN {
            return None;
        }
        let (ts, sig) = signature.split_at(8);
        let timestamp = u64::from_be_bytes(ts.try_into().ok()?);
        if timestamp > MAX_TIMESTAMP {
            return None;
        }
        let sig = ed25519_dalek::Signature::from_slice(sig).ok()?;
        self.key
            .verify_strict(&signed_message(timestamp, text), &sig)
            .ok()
            .map(|()| timestamp)
    }

    /// Whether a signature line names this key (name and key ID both match).
    pub fn names(&self, sig: &NoteSignature) -> bool {
        sig.name == self.name && sig.key_id == self.key_id
    }
}

/// One valid cosignature found on a note.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cosigned<'k> {
    /// The known cosigner that made it.
    pub witness: &'k CosignerVerifier,
    /// Its timestamp, POSIX seconds.
    pub timestamp: u64,
    /// Index of the line among the note's signature lines.
    pub line: usize,
}

/// Checks every cosignature on a parsed note against `known` cosigner keys.
///
/// Lines whose name and key ID match no known key are ignored (log signatures, other
/// witnesses). Every line that does match must verify, else [`CosignatureError::BadCosignature`].
/// Returns one [`Cosigned`] per known key that cosigned (the first line if a key signed twice),
/// in line order. Several keys with the same name (a witness that rotated its key) are counted
/// by the caller as it sees fit; see [`distinct_witnesses`].
pub fn verify_cosignatures<'k>(
    note: &Note,
    known: &'k [CosignerVerifier],
) -> Result<Vec<Cosigned<'k>>, CosignatureError> {
    let mut found: Vec<Cosigned<'k>> = Vec::new();
    for (line, sig) in note.signatures.iter().enumerate() {
        let mut candidates = known.iter().filter(|k| k.names(sig)).peekable();
        if candidates.peek().is_none() {
            continue;
        }
        let Some((witness, timestamp)) =
            candidates.find_map(|k| k.verify(&note.text, &sig.signature).map(|t| (k, t)))
        else {
            return Err(CosignatureError::BadCosignature {
                name: sig.name.clone(),
                key_id: sig.key_id,
            });
        };
        if !found.iter().any(|c| std::ptr::eq(c.witness, witness)) {
            found.push(Cosigned {
                witness,
                timestamp,
                line,
            });
        }
    }
    Ok(found)
}

/// Parses `note` and checks its cosignatures ([`verify_cosignatures`]).
pub fn open_cosignatures<'k>(
    note: &str,
    known: &'k [CosignerVerifier],
) -> Result<(Note, Vec<Cosigned<'k>>), CosignatureError> {
    let parsed = parse_note(note)?;
    let found = verify_cosignatures(&parsed, known)?;
    Ok((parsed, found))
}

/// Number of distinct witness names among `cosigned`: two keys of one witness count once.
pub fn distinct_witnesses(cosigned: &[Cosigned<'_>]) -> usize {
    let mut names: Vec<&str> = cosigned.iter().map(|c| c.witness.name()).collect();
    names.sort_unstable();
    names.dedup();
    names.len()
}

/// `note` with the signature lines of `extra` appended, skipping any whose name and key ID
/// already sign `note` (a witness that cosigns the same checkpoint twice keeps its first line).
/// The text and the existing lines are kept byte for byte.
pub fn add_signature_lines(note: &str, extra: &[NoteSignature]) -> Result<String, NoteError> {
    let parsed = parse_note(note)?;
    let mut out = note.to_owned();
    let mut present: Vec<(&str, [u8; 4])> = parsed
        .signatures
        .iter()
        .map(|s| (s.name.as_str(), s.key_id))
        .collect();
    for sig in extra {
        if present
            .iter()
            .any(|(n, id)| *n == sig.name && *id == sig.key_id)
        {
            continue;
        }
        out.push_str(&signature_line(sig));
        present.push((sig.name.as_str(), sig.key_id));
    }
    // The result must still be a note (e.g. at most MAX_SIGNATURES lines).
    parse_note(&out)?;
    Ok(out)
}

#[cfg(test)]
mod tests;
