//! C2SP signed notes (c2sp.org/signed-note) with Ed25519 keys: key IDs, verifier and signer key
//! strings, signing, strict parsing and verification.
//!
//! This is a wire format that strangers verify with their own tools (Go's `golang.org/x/mod/sumdb/note`,
//! transparency-dev witnesses, …), so every byte below is fixed by the spec:
//!
//! ```text
//! note      = text "\n" 1*sigline          ; text is non-empty and ends in "\n"
//! sigline   = "—" " " keyname " " base64(keyid ‖ signature) "\n"    ; "—" is U+2014
//! keyid     = 4 bytes, big-endian = SHA-256(keyname ‖ 0x0A ‖ 0x01 ‖ 32-byte Ed25519 public key)[:4]
//! signature = Ed25519 (RFC 8032) over the text, INCLUDING its final "\n" and EXCLUDING the blank line
//! vkey      = keyname "+" hex(keyid) "+" base64(0x01 ‖ public key)
//! skey      = "PRIVATE+KEY+" keyname "+" hex(keyid) "+" base64(0x01 ‖ 32-byte seed)
//! ```
//!
//! * The text is separated from the signatures by the *last* blank line, so the text may itself
//!   contain blank lines.
//! * Notes are UTF-8 with no ASCII control characters other than `"\n"`.
//! * Key names are non-empty and contain neither `+` nor Unicode white space.
//! * base64 is RFC 4648 §4 standard, padded; it may contain `+`, so key strings are split on `+`
//!   with a maximum field count.
//! * A verifier ignores signatures from unknown keys (a key is known when name AND key ID both
//!   match), MUST verify signatures from known keys, rejects the note if one of them fails, and
//!   rejects the note if no known key signed it.
//!
//! Pure: no file I/O, no storage, no tokio, no clock. The only side effect in this module is the
//! operating-system randomness read by [`SignerKey::generate`].

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

/// Signature type byte for Ed25519 in key IDs and key strings (c2sp.org/signed-note).
pub const ALG_ED25519: u8 = 0x01;

/// Maximum number of signature lines accepted in one note. The spec requires accepting at least
/// 16; Go's `sumdb/note` rejects more than 100, and so do we.
pub const MAX_SIGNATURES: usize = 100;

/// The em dash and space that open every signature line.
pub(crate) const SIG_PREFIX: &str = "\u{2014} ";

/// Errors from key handling, note parsing, signing and verification.
#[derive(Debug, thiserror::Error)]
pub enum NoteError {
    /// A key name is empty or contains `+`, white space or an ASCII control character.
    #[error("invalid key name {name:?}: {why}")]
    BadName {
        /// The rejected name.
        name: String,
        /// Which rule it breaks.
        why: &'static str,
    },
    /// A verifier or signer key string does not have the `name+keyid+base64` structure, or its
    /// fields are not valid hex/base64 or have the wrong length. Never contains key material.
    #[error("malformed key: {why}")]
    MalformedKey {
        /// What is wrong with the key string.
        why: &'static str,
    },
    /// The key ID written in a key string is not the one derived from its name and public key.
    #[error(
        "key ID mismatch for {name}: key string says {}, key derives {}",
        hex::encode(.stated),
        hex::encode(.derived)
    )]
    KeyIdMismatch {
        /// Key name.
        name: String,
        /// Key ID written in the key string.
        stated: [u8; 4],
        /// Key ID derived from the name and public key.
        derived: [u8; 4],
    },
    /// The key's signature type byte is not [`ALG_ED25519`].
    #[error("unsupported signature algorithm 0x{alg:02x} (only Ed25519, 0x01, is supported)")]
    UnsupportedAlgorithm {
        /// The type byte found.
        alg: u8,
    },
    /// 32 bytes that are not a valid Ed25519 public key (not a curve point).
    #[error("invalid Ed25519 public key for {name}")]
    InvalidPublicKey {
        /// Key name.
        name: String,
    },
    /// A verifier-key file contained no keys.
    #[error("verifier-key file contains no keys")]
    NoKeys,
    /// A line of a verifier-key file failed to parse.
    #[error("verifier-key file line {line}: {source}")]
    KeyFileLine {
        /// 1-based line number in the file.
        line: usize,
        /// Why the line was rejected.
        #[source]
        source: Box<NoteError>,
    },
    /// Text handed to [`SignerKey::sign_note`] cannot be a note text.
    #[error("text cannot be signed as a note: {why}")]
    UnsignableText {
        /// Which rule it breaks.
        why: &'static str,
    },
    /// The note does not follow the signed-note format.
    #[error("malformed note (line {line}): {why}")]
    Malformed {
        /// 1-based line number in the note where the problem is; for problems with the note as a
        /// whole (e.g. no blank line) it is the number of the last line.
        line: usize,
        /// What is wrong.
        why: &'static str,
    },
    /// No signature in the note came from a known key.
    #[error("note has no signature from a known key")]
    NoKnownSignature,
    /// A signature from a known key (name and key ID match) does not verify. The whole note is
    /// rejected.
    #[error("invalid signature from known key {name} ({})", hex::encode(.key_id))]
    BadSignature {
        /// Key name on the signature line.
        name: String,
        /// Key ID on the signature line.
        key_id: [u8; 4],
    },
    /// The operating system's random number generator failed.
    #[error("random number generator failed: {0}")]
    Random(getrandom::Error),
}

/// Key ID of an Ed25519 key: `SHA-256(name ‖ 0x0A ‖ 0x01 ‖ pubkey)[:4]`.
pub fn key_id(name: &str, public_key: &[u8; 32]) -> [u8; 4] {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update([b'\n', ALG_ED25519]);
    h.update(public_key);
    let d = h.finalize();
    [d[0], d[1], d[2], d[3]]
}

/// Checks a key name: non-empty, no `+`, no white space (ASCII or Unicode, the `White_Space`
/// property, which is the same set as Go's `unicode.IsSpace`), and — because a note cannot carry
/// them — no ASCII control characters.
pub fn check_key_name(name: &str) -> Result<(), NoteError> {
    let bad = |why| {
        Err(NoteError::BadName {
            name: name.to_owned(),
            why,
        })
    };
    if name.is_empty() {
        return bad("empty");
    }
    if name.contains('+') {
        return bad("contains '+'");
    }
    if name.chars().any(char::is_whitespace) {
        return bad("contains white space");
    }
    if name.chars().any(|c| c < ' ') {
        return bad("contains an ASCII control character");
    }
    Ok(())
}

/// Parses the 8-hex-digit key ID field of a key string.
pub(crate) fn parse_key_id_hex(s: &str) -> Result<[u8; 4], NoteError> {
    if s.len() != 8 {
        return Err(NoteError::MalformedKey {
            why: "key ID is not 8 hex digits",
        });
    }
    let mut id = [0u8; 4];
    hex::decode_to_slice(s, &mut id).map_err(|_| NoteError::MalformedKey {
        why: "key ID is not 8 hex digits",
    })?;
    Ok(id)
}

/// Best-effort wipe of a temporary buffer holding secret bytes. `black_box` keeps the compiler
/// from treating the stores as dead. (`SigningKey` itself is zeroized on drop by ed25519-dalek's
/// `zeroize` feature.)
pub(crate) fn wipe(buf: &mut [u8]) {
    buf.fill(0);
    std::hint::black_box(buf);
}

/// An Ed25519 note signing key with its name and key ID.
///
/// `Debug` prints the name, key ID and public key only, never the seed. The secret is zeroized
/// on drop.
pub struct SignerKey {
    name: String,
    key_id: [u8; 4],
    key: SigningKey,
}

impl std::fmt::Debug for SignerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignerKey")
            .field("name", &self.name)
            .field("key_id", &hex::encode(self.key_id))
            .field(
                "public_key",
                &B64.encode(self.key.verifying_key().as_bytes()),
            )
            .finish_non_exhaustive()
    }
}

impl SignerKey {
    /// A new key from 32 bytes of operating-system randomness.
    pub fn generate(name: &str) -> Result<Self, NoteError> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(NoteError::Random)?;
        let key = Self::from_seed(name, seed);
        wipe(&mut seed);
        key
    }

    /// The key with this RFC 8032 seed (the 32-byte Ed25519 private key).
    pub fn from_seed(name: &str, mut seed: [u8; 32]) -> Result<Self, NoteError> {
        check_key_name(name)?;
        let key = SigningKey::from_bytes(&seed);
        wipe(&mut seed);
        Ok(SignerKey {
            name: name.to_owned(),
            key_id: key_id(name, key.verifying_key().as_bytes()),
            key,
        })
    }

    /// Parses `PRIVATE+KEY+<name>+<hex keyid>+<base64(0x01 ‖ seed)>`; the key ID must be the one
    /// derived from the name and the seed's public key. Errors never contain key material.
    pub fn parse(skey: &str) -> Result<Self, NoteError> {
        let mut parts = skey.splitn(5, '+');
        let (Some("PRIVATE"), Some("KEY"), Some(name), Some(id_hex), Some(key64)) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(NoteError::MalformedKey {
                why: "signer key is not PRIVATE+KEY+name+keyid+key",
            });
        };
        check_key_name(name)?;
        let stated = parse_key_id_hex(id_hex)?;
        // 0x01 ‖ 32-byte seed is 33 bytes; one spare byte lets an over-long key be detected.
        let mut buf = [0u8; 34];
        let decoded = B64.decode_slice(key64, &mut buf);
        let n = match decoded {
            Ok(n) => n,
            Err(_) => {
                wipe(&mut buf);
                return Err(NoteError::MalformedKey {
                    why: "signer key is not valid base64 of 33 bytes",
                });
            }
        };
        if n == 0 {
            return Err(NoteError::MalformedKey {
                why: "signer key is empty",
            });
        }
        if buf[0] != ALG_ED25519 {
            let alg = buf[0];
            wipe(&mut buf);
            return Err(NoteError::UnsupportedAlgorithm { alg });
        }
        if n != 33 {
            wipe(&mut buf);
            return Err(NoteError::MalformedKey {
                why: "Ed25519 signer key is not 32 bytes",
            });
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
            });
        }
        Ok(key)
    }

    /// The signer key string `PRIVATE+KEY+<name>+<hex keyid>+<base64(0x01 ‖ seed)>`.
    /// The returned string is secret; the caller must protect it.
    pub fn to_skey(&self) -> String {
        let mut buf = [0u8; 33];
        buf[0] = ALG_ED25519;
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

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key ID.
    pub fn key_id(&self) -> [u8; 4] {
        self.key_id
    }

    /// The matching verifier key.
    pub fn verifier(&self) -> VerifierKey {
        VerifierKey {
            name: self.name.clone(),
            key_id: self.key_id,
            key: self.key.verifying_key(),
        }
    }

    /// Signs `text` and returns the full note:
    /// `text ‖ "\n" ‖ "— <name> <base64(keyid ‖ signature)>\n"`.
    ///
    /// `text` must be non-empty, end in `"\n"` and contain no ASCII control characters other than
    /// `"\n"`. Blank lines inside the text are allowed: the parser separates text from signatures
    /// at the *last* blank line, and a signature line never contains one, so the text always
    /// round-trips.
    pub fn sign_note(&self, text: &str) -> Result<String, NoteError> {
        if !text.ends_with('\n') {
            return Err(NoteError::UnsignableText {
                why: "text does not end in a newline",
            });
        }
        if text.chars().any(|c| c < ' ' && c != '\n') {
            return Err(NoteError::UnsignableText {
                why: "text contains an ASCII control character other than newline",
            });
        }
        let sig = self.key.sign(text.as_bytes());
        let mut blob = Vec::with_capacity(4 + 64);
        blob.extend_from_slice(&self.key_id);
        blob.extend_from_slice(&sig.to_bytes());
        Ok(format!(
            "{text}\n{SIG_PREFIX}{} {}\n",
            self.name,
            B64.encode(blob)
        ))
    }

    /// Adds this key's signature to an already signed note (e.g. a checkpoint both the old and
    /// the new key sign at a key rotation).
    pub fn cosign(&self, note: &str) -> Result<String, NoteError> {
        let parsed = parse_note(note)?;
        let signed = self.sign_note(&parsed.text)?;
        // `signed` is text + "\n" + one signature line; keep the existing lines and add that one.
        let line = &signed[parsed.text.len() + 1..];
        Ok(format!("{note}{line}"))
    }
}

/// An Ed25519 note verifier key with its name and key ID.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifierKey {
    name: String,
    key_id: [u8; 4],
    key: VerifyingKey,
}

impl VerifierKey {
    /// Parses `<name>+<hex keyid>+<base64(0x01 ‖ pubkey)>`. The string is split on `+` into at
    /// most three fields (the base64 may contain `+`), and the key ID must be the one derived from
    /// the name and public key.
    pub fn parse(vkey: &str) -> Result<Self, NoteError> {
        let mut parts = vkey.splitn(3, '+');
        let (Some(name), Some(id_hex), Some(key64)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(NoteError::MalformedKey {
                why: "verifier key is not name+keyid+key",
            });
        };
        check_key_name(name)?;
        let stated = parse_key_id_hex(id_hex)?;
        let raw = B64.decode(key64).map_err(|_| NoteError::MalformedKey {
            why: "verifier key is not valid base64",
        })?;
        let Some((&alg, pubkey)) = raw.split_first() else {
            return Err(NoteError::MalformedKey {
                why: "verifier key is empty",
            });
        };
        if alg != ALG_ED25519 {
            return Err(NoteError::UnsupportedAlgorithm { alg });
        }
        let pubkey: [u8; 32] = pubkey.try_into().map_err(|_| NoteError::MalformedKey {
            why: "Ed25519 public key is not 32 bytes",
        })?;
        let derived = key_id(name, &pubkey);
        if derived != stated {
            return Err(NoteError::KeyIdMismatch {
                name: name.to_owned(),
                stated,
                derived,
            });
        }
        let key = VerifyingKey::from_bytes(&pubkey).map_err(|_| NoteError::InvalidPublicKey {
            name: name.to_owned(),
        })?;
        Ok(VerifierKey {
            name: name.to_owned(),
            key_id: derived,
            key,
        })
    }

    /// Parses a verifier-key file: one vkey per line; blank lines (after trimming surrounding
    /// white space) and lines starting with `#` are ignored; at least one key is required.
    /// Several keys are how a key rotation is expressed.
    pub fn parse_many(text: &str) -> Result<Vec<Self>, NoteError> {
        let mut keys = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let key = Self::parse(line).map_err(|e| NoteError::KeyFileLine {
                line: i + 1,
                source: Box::new(e),
            })?;
            keys.push(key);
        }
        if keys.is_empty() {
            return Err(NoteError::NoKeys);
        }
        Ok(keys)
    }

    /// The verifier key string `<name>+<hex keyid>+<base64(0x01 ‖ pubkey)>`.
    pub fn to_vkey(&self) -> String {
        let mut buf = [0u8; 33];
        buf[0] = ALG_ED25519;
        buf[1..].copy_from_slice(self.key.as_bytes());
        format!(
            "{}+{}+{}",
            self.name,
            hex::encode(self.key_id),
            B64.encode(buf)
        )
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key ID.
    pub fn key_id(&self) -> [u8; 4] {
        self.key_id
    }

    /// The 32-byte Ed25519 public key.
    pub fn public_key(&self) -> [u8; 32] {
        self.key.to_bytes()
    }

    /// Strict Ed25519 verification (`verify_strict`: rejects non-canonical and small-order
    /// encodings) of `sig` over `msg`. A signature that is not 64 bytes fails.
    fn verifies(&self, msg: &[u8], sig: &[u8]) -> bool {
        let Ok(sig) = ed25519_dalek::Signature::from_slice(sig) else {
            return false;
        };
        self.key.verify_strict(msg, &sig).is_ok()
    }
}

/// One signature line of a note, decoded but not verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoteSignature {
    /// Key name on the line.
    pub name: String,
    /// The first 4 bytes of the decoded base64: the key ID, big-endian.
    pub key_id: [u8; 4],
    /// The remaining bytes: the signature itself (64 bytes for Ed25519; other algorithms differ).
    pub signature: Vec<u8>,
}

/// A parsed note: its text (including the final `"\n"`) and its signature lines, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    /// The signed text, including its final newline, excluding the blank separator line.
    pub text: String,
    /// The signature lines, in note order.
    pub signatures: Vec<NoteSignature>,
}

/// Parses a note strictly per the spec, without verifying anything.
///
/// Rejects: ASCII control characters other than `"\n"`; no blank line separating text and
/// signatures; no signature lines; a final line without `"\n"`; any line after the blank line
/// that is not `"— <valid key name> <base64>"`; base64 that is not canonical standard padded
/// base64; a decoded signature shorter than 5 bytes (4-byte key ID plus a non-empty signature,
/// as Go's `sumdb/note` requires); more than [`MAX_SIGNATURES`] signature lines.
///
/// Invalid UTF-8 (e.g. a note starting with byte 0xff) cannot reach this function: decode bytes
/// with `std::str::from_utf8` first and reject on error.
pub fn parse_note(note: &str) -> Result<Note, NoteError> {
    let last_line = note.matches('\n').count() + usize::from(!note.ends_with('\n'));
    let malformed = |line, why| NoteError::Malformed { line, why };

    let mut line = 1;
    for c in note.chars() {
        if c == '\n' {
            line += 1;
        } else if c < ' ' {
            return Err(malformed(line, "ASCII control character"));
        }
    }

    // The text ends at the LAST blank line: "...\n" "\n" signatures.
    let Some(split) = note.rfind("\n\n") else {
        return Err(malformed(last_line, "no blank line before the signatures"));
    };
    let text = &note[..split + 1];
    let sigs = &note[split + 2..];
    if sigs.is_empty() {
        return Err(malformed(last_line, "no signature lines"));
    }
    if !sigs.ends_with('\n') {
        return Err(malformed(last_line, "last line does not end in a newline"));
    }

    // Line number of the first signature line: the text's lines, then the blank line.
    let first = text.matches('\n').count() + 2;
    let mut signatures = Vec::new();
    for (i, sig_line) in sigs.split_terminator('\n').enumerate() {
        let line = first + i;
        if i >= MAX_SIGNATURES {
            return Err(malformed(line, "too many signatures"));
        }
        let Some(rest) = sig_line.strip_prefix(SIG_PREFIX) else {
            return Err(malformed(
                line,
                "not a signature line (\"— name signature\")",
            ));
        };
        let Some((name, b64)) = rest.split_once(' ') else {
            return Err(malformed(
                line,
                "signature line has no space after the key name",
            ));
        };
        if check_key_name(name).is_err() {
            return Err(malformed(line, "invalid key name"));
        }
        let Ok(blob) = B64.decode(b64) else {
            return Err(malformed(line, "signature is not valid base64"));
        };
        if blob.len() < 5 {
            return Err(malformed(
                line,
                "signature shorter than key ID plus one byte",
            ));
        }
        let (id, signature) = blob.split_at(4);
        signatures.push(NoteSignature {
            name: name.to_owned(),
            key_id: [id[0], id[1], id[2], id[3]],
            signature: signature.to_vec(),
        });
    }
    Ok(Note {
        text: text.to_owned(),
        signatures,
    })
}

/// Parses and verifies a note against `known` keys.
///
/// A signature line is from a known key when both its name and key ID equal a known key's.
/// Every such signature must verify (Ed25519 `verify_strict` over the text); one that does not is
/// an error ([`NoteError::BadSignature`]), not skipped. Signatures from unknown keys — including
/// ones that share only the name or only the key ID with a known key — are ignored. At least one
/// known key must have signed ([`NoteError::NoKnownSignature`]).
///
/// Returns the parsed note and the known keys that signed it, each once, in signature order.
pub fn open_note<'k>(
    note: &str,
    known: &'k [VerifierKey],
) -> Result<(Note, Vec<&'k VerifierKey>), NoteError> {
    let parsed = parse_note(note)?;
    let mut signed_by: Vec<&'k VerifierKey> = Vec::new();
    for sig in &parsed.signatures {
        let mut candidates = known
            .iter()
            .filter(|k| k.name == sig.name && k.key_id == sig.key_id)
            .peekable();
        if candidates.peek().is_none() {
            continue; // unknown key: ignored, per the spec
        }
        // Normally one candidate. If the caller configured two keys sharing name and key ID
        // (a 32-bit collision), the signature counts if either key verifies it.
        let Some(key) = candidates.find(|k| k.verifies(parsed.text.as_bytes(), &sig.signature))
        else {
            return Err(NoteError::BadSignature {
                name: sig.name.clone(),
                key_id: sig.key_id,
            });
        };
        if !signed_by.iter().any(|k| std::ptr::eq(*k, key)) {
            signed_by.push(key);
        }
    }
    if signed_by.is_empty() {
        return Err(NoteError::NoKnownSignature);
    }
    Ok((parsed, signed_by))
}

/// Signatures checked together by [`open_notes`]: ed25519-dalek's batch verification costs about
/// a third of one `verify_strict` per signature at this size (49–53k/s against 16–20k/s on these
/// machines, as the project's toolchain notes measured), and a failed batch is re-checked
/// one note at a time, so the cost of a bad signature is bounded by it.
pub const SIGNATURE_BATCH: usize = 256;

/// Opens many notes: the same result, note by note, as [`open_note`] on each, but the signatures
/// are checked together with Ed25519 batch verification ([`ed25519_dalek::verify_batch`]) in
/// groups of [`SIGNATURE_BATCH`]. A group that fails is checked again note by note with
/// `verify_strict`, which names the bad signature.
///
/// The batch equation is the cofactored one: it also accepts a signature that differs from a
/// valid one by a small-order point, which `verify_strict` (and Go's `crypto/ed25519`) refuse.
/// Making such a signature takes the signing key, so this lets no one without the key pass a
/// note; a verifier that must agree with cofactorless tools bit for bit uses [`open_note`].
#[allow(clippy::type_complexity)]
pub fn open_notes<'k>(
    notes: &[&str],
    known: &'k [VerifierKey],
) -> Vec<Result<(Note, Vec<&'k VerifierKey>), NoteError>> {
    // Each note parsed, with the known key that must have made each of its signatures, when
    // that key is the only candidate (else the note is opened alone).
    let mut out: Vec<Result<(Note, Vec<&'k VerifierKey>), NoteError>> =
        Vec::with_capacity(notes.len());
    let mut batchable: Vec<(usize, Vec<(&'k VerifierKey, ed25519_dalek::Signature)>)> = Vec::new();
    for (i, text) in notes.iter().enumerate() {
        let parsed = match parse_note(text) {
            Ok(p) => p,
            Err(e) => {
                out.push(Err(e));
                continue;
            }
        };
        let mut sigs = Vec::new();
        let mut alone = false;
        for sig in &parsed.signatures {
            let mut candidates = known
                .iter()
                .filter(|k| k.name == sig.name && k.key_id == sig.key_id);
            match (candidates.next(), candidates.next()) {
                (None, _) => {}
                (Some(key), None) => match ed25519_dalek::Signature::from_slice(&sig.signature) {
                    Ok(s) => sigs.push((key, s)),
                    Err(_) => alone = true,
                },
                (Some(_), Some(_)) => alone = true,
            }
        }
        if alone || sigs.is_empty() {
            out.push(open_note(text, known));
        } else {
            batchable.push((i, sigs));
            out.push(Ok((parsed, Vec::new())));
        }
    }
    for group in batchable.chunks(SIGNATURE_BATCH) {
        let mut messages: Vec<&[u8]> = Vec::new();
        let mut signatures = Vec::new();
        let mut keys = Vec::new();
        for (i, sigs) in group {
            let Ok((note, _)) = &out[*i] else { continue };
            let text = note.text.as_bytes();
            for (key, sig) in sigs {
                messages.push(text);
                signatures.push(*sig);
                keys.push(key.key);
            }
        }
        let all_good = ed25519_dalek::verify_batch(&messages, &signatures, &keys).is_ok();
        for (i, sigs) in group {
            if !all_good {
                out[*i] = open_note(notes[*i], known);
                continue;
            }
            if let Ok((_, signed_by)) = &mut out[*i] {
                for (key, _) in sigs {
                    if !signed_by.iter().any(|k| std::ptr::eq(*k, *key)) {
                        signed_by.push(key);
                    }
                }
            }
        }
    }
    out
}
