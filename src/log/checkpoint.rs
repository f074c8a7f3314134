//! Transparency-log checkpoints (c2sp.org/tlog-checkpoint): the signed tree head, carried as the
//! text of a C2SP signed note ([`super::note`]).
//!
//! The note text is at least three non-empty lines, each ending in `"\n"`:
//!
//! ```text
//! <origin>\n              the log's identity; non-empty
//! <tree size>\n           ASCII decimal, no sign, no leading zeros ("0" for the empty tree)
//! <root hash>\n           standard padded base64 of the 32-byte RFC 6962 root
//! [<extension line>\n]*   optional, opaque, each non-empty
//! ```
//!
//! Parsing is strict and byte-exact: [`Checkpoint::parse_text`] accepts exactly the texts that
//! [`Checkpoint::to_text`] produces. A valid signature only says the log signed this head; that two
//! heads are consistent (no split view) is checked by the caller with a consistency proof.
//!
//! Pure: no file I/O, no storage, no tokio, no clock.

use super::hash::Hash;
use super::note::{NoteError, SignerKey, VerifierKey, open_note, open_notes};

/// Errors from checkpoint parsing, signing and verification.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// The note text is not a well-formed checkpoint body.
    #[error("malformed checkpoint (line {line}): {why}")]
    Malformed {
        /// 1-based line number in the checkpoint text.
        line: usize,
        /// What is wrong.
        why: &'static str,
    },
    /// The checkpoint's fields cannot be written as a checkpoint text that parses back to the
    /// same checkpoint (e.g. an origin containing a newline); refused rather than signed.
    #[error("checkpoint cannot be encoded: {why}")]
    Unencodable {
        /// What is wrong.
        why: &'static str,
    },
    /// The checkpoint verified but belongs to another log.
    #[error("checkpoint origin mismatch: expected {expected:?}, found {found:?}")]
    OriginMismatch {
        /// The origin the caller expected.
        expected: String,
        /// The origin in the checkpoint.
        found: String,
    },
    /// The signed note around the checkpoint is malformed, unsigned by a known key or carries a
    /// bad signature.
    #[error(transparent)]
    Note(#[from] NoteError),
}

/// A tree head: the log's origin, its size and its RFC 6962 root hash, plus any extension lines.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log's identity (first line).
    pub origin: String,
    /// Number of leaves.
    pub size: u64,
    /// RFC 6962 Merkle tree root at `size`.
    pub root: Hash,
    /// Opaque extension lines, without their newlines.
    pub extensions: Vec<String>,
}

impl Checkpoint {
    /// The checkpoint note text: `"<origin>\n<size>\n<base64 root>\n"` then each extension line
    /// followed by `"\n"`.
    pub fn to_text(&self) -> String {
        let mut s = format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            self.root.to_base64()
        );
        for ext in &self.extensions {
            s.push_str(ext);
            s.push('\n');
        }
        s
    }

    /// Strict parse of a checkpoint text: at least three lines, each ending in `"\n"`; origin
    /// non-empty; size in decimal with no sign and no leading zeros (except `"0"`), fitting a
    /// `u64`; root exactly 32 bytes of canonical standard padded base64; extension lines
    /// non-empty. ASCII control characters (other than the line ends) are rejected anywhere.
    pub fn parse_text(text: &str) -> Result<Self, CheckpointError> {
        let malformed = |line, why| CheckpointError::Malformed { line, why };
        let Some(body) = text.strip_suffix('\n') else {
            let last = text.matches('\n').count() + 1;
            return Err(malformed(last, "text does not end in a newline"));
        };
        let lines: Vec<&str> = body.split('\n').collect();
        for (i, l) in lines.iter().enumerate() {
            if l.chars().any(|c| c < ' ') {
                return Err(malformed(i + 1, "ASCII control character"));
            }
        }
        let [origin, size, root, extensions @ ..] = lines.as_slice() else {
            return Err(malformed(lines.len(), "fewer than three lines"));
        };

        if origin.is_empty() {
            return Err(malformed(1, "empty origin"));
        }

        if size.is_empty() || !size.bytes().all(|b| b.is_ascii_digit()) {
            return Err(malformed(2, "tree size is not a decimal number"));
        }
        if size.len() > 1 && size.starts_with('0') {
            return Err(malformed(2, "tree size has a leading zero"));
        }
        let Ok(size) = size.parse::<u64>() else {
            return Err(malformed(2, "tree size does not fit in 64 bits"));
        };

        let Some(root_hash) = Hash::from_base64(root) else {
            return Err(malformed(3, "root is not base64 of 32 bytes"));
        };
        // Byte-exact: only the canonical encoding of those 32 bytes is accepted.
        if root_hash.to_base64() != *root {
            return Err(malformed(3, "root is not canonical base64"));
        }

        for (i, ext) in extensions.iter().enumerate() {
            if ext.is_empty() {
                return Err(malformed(4 + i, "empty extension line"));
            }
        }

        Ok(Checkpoint {
            origin: (*origin).to_owned(),
            size,
            root: root_hash,
            extensions: extensions.iter().map(|e| (*e).to_owned()).collect(),
        })
    }

    /// Signs the checkpoint text with `key` and returns the full signed note. Refuses a
    /// checkpoint whose text would not parse back to itself.
    pub fn sign(&self, key: &SignerKey) -> Result<String, CheckpointError> {
        let text = self.to_text();
        match Self::parse_text(&text) {
            Ok(back) if back == *self => {}
            _ => {
                return Err(CheckpointError::Unencodable {
                    why: "origin or an extension line is empty or contains a newline or control character",
                });
            }
        }
        Ok(key.sign_note(&text)?)
    }
}

/// Verifies a signed checkpoint note against `known` keys (see [`open_note`] for the signature
/// rules), parses its text strictly and, if `origin` is given, requires that origin.
///
/// Returns the checkpoint and the known keys that signed it. Detecting a split view (two
/// validly signed but inconsistent checkpoints) is the caller's job, with a consistency proof.
pub fn open_checkpoint<'k>(
    note: &str,
    known: &'k [VerifierKey],
    origin: Option<&str>,
) -> Result<(Checkpoint, Vec<&'k VerifierKey>), CheckpointError> {
    let (note, signed_by) = open_note(note, known)?;
    Ok((checkpoint_text(&note.text, origin)?, signed_by))
}

/// [`open_checkpoint`] on each of many notes, with their signatures checked in batches
/// ([`open_notes`]: see there for how that differs from `verify_strict`).
#[allow(clippy::type_complexity)]
pub fn open_checkpoints<'k>(
    notes: &[&str],
    known: &'k [VerifierKey],
    origin: Option<&str>,
) -> Vec<Result<(Checkpoint, Vec<&'k VerifierKey>), CheckpointError>> {
    open_notes(notes, known)
        .into_iter()
        .map(|opened| {
            let (note, signed_by) = opened?;
            Ok((checkpoint_text(&note.text, origin)?, signed_by))
        })
        .collect()
}

/// A verified note's text as a checkpoint of `origin`, if given.
fn checkpoint_text(text: &str, origin: Option<&str>) -> Result<Checkpoint, CheckpointError> {
    let checkpoint = Checkpoint::parse_text(text)?;
    if let Some(expected) = origin
        && checkpoint.origin != expected
    {
        return Err(CheckpointError::OriginMismatch {
            expected: expected.to_owned(),
            found: checkpoint.origin,
        });
    }
    Ok(checkpoint)
}
