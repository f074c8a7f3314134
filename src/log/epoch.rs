//! Key epochs: which signing key may sign which checkpoint sizes, and the `log.pub` text that
//! states them.
//!
//! A log starts with one key. `s62 rotate-key` appends an `admin` entry `key_rotated` at seq `r`
//! naming the next key (`Admin.new_verifier_key`); the checkpoint of size `h = r + 1` (the
//! *handover size*) is signed by both keys, and from then on only the new key signs. So:
//!
//! ```text
//! key 0 signs sizes 1 ..= h1      key 1 signs h1 ..= h2      ...      key n signs hn ..
//! ```
//!
//! The epochs are derived from the log itself ([`handover_key`] on each entry), never from a
//! file: a verifier starts from the key it trusts for the first checkpoint and follows the
//! handovers that the signed tree contains. `log.pub` states the same epochs so that people and
//! other tools can read them; a verifier checks that the file and the log agree.
//!
//! `log.pub`, one key per line (blank lines and `#` comments ignored):
//!
//! ```text
//! <note verifier key>                     a log that never rotated: the key signs every size
//! <note verifier key> from=1 to=1236      after rotations: every line says its sizes;
//! <note verifier key> from=1236           consecutive keys share the handover size
//! ```
//!
//! Pure: no file I/O, no clock.

use super::entry::{Entry, EntryKind};
use super::note::{NoteError, VerifierKey};

/// The `admin.action` of a key handover entry.
pub const KEY_ROTATED: &str = "key_rotated";

/// One key and the checkpoint sizes it signs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyEpoch {
    pub key: VerifierKey,
    /// The first tree size it signs: 1 for the log's first key, else its handover size.
    pub from_size: u64,
    /// The last tree size it signs (the handover size to its successor, which both sign), or
    /// `None` while it is the current key.
    pub until_size: Option<u64>,
}

/// Why a checkpoint's signers or a key file do not fit the epochs.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EpochError {
    /// The key of the epoch holding this size did not sign its checkpoint.
    #[error(
        "the checkpoint of size {size} is not signed by {expected}, the log's signing key for that size"
    )]
    NotSignedByCurrentKey { size: u64, expected: String },
    /// A handover checkpoint lacks the outgoing key's signature, so nothing links the keys.
    #[error(
        "the checkpoint of size {size} hands the log over to a new key but is not signed by the outgoing key {outgoing}"
    )]
    HandoverNotLinked { size: u64, outgoing: String },
    /// A key signed a checkpoint outside the sizes it may sign: a retired key after its
    /// handover, or a later key before it was handed the log.
    #[error(
        "the checkpoint of size {size} is signed by {key}, which may sign only sizes {range} \
         (a retired key still signing, or a key used before the log was handed to it)"
    )]
    SignerOutOfEpoch {
        size: u64,
        key: String,
        range: String,
    },
    /// A key that is no epoch's key signed a checkpoint.
    #[error("the checkpoint of size {size} is signed by {key}, which the log never handed over to")]
    SignerNotInLog { size: u64, key: String },
    /// A handover that does not move forward, or hands over to the current key.
    #[error("a key handover at size {size} does not follow the current epoch (from size {from})")]
    HandoverOutOfOrder { size: u64, from: u64 },
}

/// The epochs of a log, oldest first; never empty.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyEpochs {
    epochs: Vec<KeyEpoch>,
}

fn key_label(k: &VerifierKey) -> String {
    format!("{}+{}", k.name(), hex::encode(k.key_id()))
}

impl KeyEpochs {
    /// A log whose first key is `key`.
    pub fn starting_with(key: VerifierKey) -> Self {
        KeyEpochs {
            epochs: vec![KeyEpoch {
                key,
                from_size: 1,
                until_size: None,
            }],
        }
    }

    /// Every epoch, oldest first.
    pub fn epochs(&self) -> &[KeyEpoch] {
        &self.epochs
    }

    /// The key that signs from the last handover on.
    pub fn current(&self) -> &KeyEpoch {
        // Invariant: constructed non-empty, and only ever grows.
        #[allow(clippy::expect_used)]
        self.epochs.last().expect("key epochs are never empty")
    }

    /// Records that entry `handover_size - 1` handed the log to `new`.
    pub fn hand_over(&mut self, handover_size: u64, new: VerifierKey) -> Result<(), EpochError> {
        let current = self.current();
        if handover_size < current.from_size || new == current.key {
            return Err(EpochError::HandoverOutOfOrder {
                size: handover_size,
                from: current.from_size,
            });
        }
        if let Some(last) = self.epochs.last_mut() {
            last.until_size = Some(handover_size);
        }
        self.epochs.push(KeyEpoch {
            key: new,
            from_size: handover_size,
            until_size: None,
        });
        Ok(())
    }

    /// Checks which keys signed the checkpoint of `size`: the epoch's key must have, the outgoing
    /// key too at a handover size, and no other epoch's key. `signed_by` is what
    /// [`super::note::open_note`] returned over the verifier's known keys; known keys that are
    /// no epoch's key must not have signed either.
    pub fn check_signers(&self, size: u64, signed_by: &[&VerifierKey]) -> Result<(), EpochError> {
        let Some(i) = self.epochs.iter().rposition(|e| e.from_size <= size) else {
            // Size 0 is never signed, and the first epoch starts at 1.
            return Err(EpochError::NotSignedByCurrentKey {
                size,
                expected: key_label(&self.epochs[0].key),
            });
        };
        let epoch = &self.epochs[i];
        let outgoing = (i > 0 && size == epoch.from_size).then(|| &self.epochs[i - 1].key);
        // A signer out of place is the most telling finding (a retired key still signing), so it
        // is reported before a missing signature.
        for signer in signed_by {
            if *signer == &epoch.key || Some(*signer) == outgoing {
                continue;
            }
            return Err(match self.epochs.iter().find(|e| &e.key == *signer) {
                Some(e) => EpochError::SignerOutOfEpoch {
                    size,
                    key: key_label(signer),
                    range: match e.until_size {
                        Some(u) => format!("{}..={u}", e.from_size),
                        None => format!("{}..", e.from_size),
                    },
                },
                None => EpochError::SignerNotInLog {
                    size,
                    key: key_label(signer),
                },
            });
        }
        if !signed_by.contains(&&epoch.key) {
            return Err(EpochError::NotSignedByCurrentKey {
                size,
                expected: key_label(&epoch.key),
            });
        }
        if let Some(out) = outgoing
            && !signed_by.contains(&out)
        {
            return Err(EpochError::HandoverNotLinked {
                size,
                outgoing: key_label(out),
            });
        }
        Ok(())
    }

    /// The `log.pub` text: a bare key while the log never rotated, else every key with its sizes.
    pub fn to_key_file(&self) -> String {
        if let [only] = self.epochs.as_slice() {
            return format!("{}\n", only.key.to_vkey());
        }
        let mut s = String::from(
            "# Note verifier keys of this s62 log and the checkpoint sizes each signs; consecutive\n\
             # keys both sign their handover size. Check the log with: s62 verify --key log.pub\n",
        );
        for e in &self.epochs {
            s.push_str(&e.key.to_vkey());
            s.push_str(&format!(" from={}", e.from_size));
            if let Some(u) = e.until_size {
                s.push_str(&format!(" to={u}"));
            }
            s.push('\n');
        }
        s
    }
}

/// A parsed `log.pub`: the keys a verifier trusts for this log and, when the file states them,
/// their epochs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogKeys {
    keys: Vec<VerifierKey>,
    stated: Option<KeyEpochs>,
}

/// Why a `log.pub` text was refused.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    /// A line's key does not parse.
    #[error("line {line}: {source}")]
    Key {
        line: usize,
        #[source]
        source: NoteError,
    },
    /// A word after the key is not `from=<size>` or `to=<size>`.
    #[error("line {line}: {word:?} is not from=<size> or to=<size>")]
    Word { line: usize, word: String },
    /// The stated sizes do not form a chain of epochs starting at size 1.
    #[error("line {line}: {why}")]
    Epochs { line: usize, why: String },
    /// No key at all.
    #[error("the file holds no verifier key")]
    Empty,
}

impl LogKeys {
    /// Parses a `log.pub` text (see the module docs). Either every key states its sizes or none
    /// does; stated sizes must chain from size 1 with each `to` equal to the next `from`.
    pub fn parse(text: &str) -> Result<Self, KeyFileError> {
        let mut lines: Vec<(usize, VerifierKey, Option<u64>, Option<u64>)> = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut words = line.split_whitespace();
            let Some(vkey) = words.next() else { continue };
            let key = VerifierKey::parse(vkey).map_err(|source| KeyFileError::Key {
                line: i + 1,
                source,
            })?;
            let (mut from, mut to) = (None, None);
            for word in words {
                let bad = || KeyFileError::Word {
                    line: i + 1,
                    word: word.to_owned(),
                };
                let (name, value) = word.split_once('=').ok_or_else(bad)?;
                let value: u64 = value.parse().map_err(|_| bad())?;
                match name {
                    "from" if from.is_none() => from = Some(value),
                    "to" if to.is_none() => to = Some(value),
                    _ => return Err(bad()),
                }
            }
            lines.push((i + 1, key, from, to));
        }
        if lines.is_empty() {
            return Err(KeyFileError::Empty);
        }
        let stated_any = lines.iter().any(|(_, _, f, t)| f.is_some() || t.is_some());
        let keys: Vec<VerifierKey> = lines.iter().map(|(_, k, _, _)| k.clone()).collect();
        if !stated_any {
            return Ok(LogKeys { keys, stated: None });
        }
        let epochs_error = |line, why: &str| KeyFileError::Epochs {
            line,
            why: why.to_owned(),
        };
        let mut epochs: Option<KeyEpochs> = None;
        let n = lines.len();
        for (j, (line, key, from, to)) in lines.into_iter().enumerate() {
            let Some(from) = from else {
                return Err(epochs_error(
                    line,
                    "every key needs from=<size> once any does",
                ));
            };
            let last = j + 1 == n;
            match (to, last) {
                (None, false) => {
                    return Err(epochs_error(
                        line,
                        "only the last key may have no to=<size>",
                    ));
                }
                (Some(_), true) => {
                    return Err(epochs_error(
                        line,
                        "the last key is current: it has no to=<size>",
                    ));
                }
                (Some(t), false) if t < from => {
                    return Err(epochs_error(line, "to=<size> is below from=<size>"));
                }
                _ => {}
            }
            match epochs.as_mut() {
                None if from == 1 => epochs = Some(KeyEpochs::starting_with(key)),
                None => return Err(epochs_error(line, "the first key must be from=1")),
                Some(e) => {
                    if e.current().until_size != Some(from) {
                        return Err(epochs_error(
                            line,
                            "from=<size> must equal the previous key's to=<size> (the handover size both sign)",
                        ));
                    }
                    e.hand_over(from, key)
                        .map_err(|err| epochs_error(line, &err.to_string()))?;
                }
            }
            if let (Some(e), Some(t)) = (epochs.as_mut(), to)
                && let Some(l) = e.epochs.last_mut()
            {
                l.until_size = Some(t);
            }
        }
        Ok(LogKeys {
            keys,
            stated: epochs,
        })
    }

    /// Every key the file lists.
    pub fn keys(&self) -> &[VerifierKey] {
        &self.keys
    }

    /// The epochs the file states, if it states any.
    pub fn stated_epochs(&self) -> Option<&KeyEpochs> {
        self.stated.as_ref()
    }

    /// The log's first key, when the file alone says which it is: the stated first epoch, or the
    /// only key of a file without sizes.
    pub fn first_key(&self) -> Option<&VerifierKey> {
        match (&self.stated, self.keys.as_slice()) {
            (Some(e), _) => Some(&e.epochs()[0].key),
            (None, [only]) => Some(only),
            (None, _) => None,
        }
    }

    /// Keys for a file holding exactly these epochs.
    pub fn from_epochs(epochs: KeyEpochs) -> Self {
        let keys = epochs.epochs().iter().map(|e| e.key.clone()).collect();
        let stated = (epochs.epochs().len() > 1).then_some(epochs);
        LogKeys { keys, stated }
    }
}

/// The key a `key_rotated` admin entry hands the log to, if `entry` is one. Entries written before
/// `Admin.new_verifier_key` existed named the key in their detail text (`new signing key <vkey>;`),
/// which is read instead.
pub fn handover_key(entry: &Entry) -> Option<Result<VerifierKey, NoteError>> {
    if entry.kind != EntryKind::Admin as i32 {
        return None;
    }
    let admin = entry.admin.as_ref()?;
    if admin.action != KEY_ROTATED {
        return None;
    }
    let vkey = if admin.new_verifier_key.is_empty() {
        admin
            .detail
            .strip_prefix("new signing key ")
            .and_then(|rest| rest.split(';').next())
            .unwrap_or("")
    } else {
        admin.new_verifier_key.as_str()
    };
    Some(VerifierKey::parse(vkey))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::note::SignerKey;

    fn key(seed: u8) -> VerifierKey {
        SignerKey::from_seed("log.example/s62", [seed; 32])
            .expect("key")
            .verifier()
    }

    #[test]
    fn the_current_key_signs_and_the_outgoing_key_signs_only_up_to_its_handover() {
        let (k0, k1) = (key(1), key(2));
        let mut epochs = KeyEpochs::starting_with(k0.clone());
        epochs.hand_over(10, k1.clone()).expect("handover");
        assert!(epochs.check_signers(9, &[&k0]).is_ok());
        assert!(
            epochs.check_signers(10, &[&k0, &k1]).is_ok(),
            "the handover link"
        );
        assert!(epochs.check_signers(11, &[&k1]).is_ok());
        assert!(matches!(
            epochs.check_signers(11, &[&k0]),
            Err(EpochError::SignerOutOfEpoch { size: 11, .. })
        ));
        assert!(matches!(
            epochs.check_signers(11, &[]),
            Err(EpochError::NotSignedByCurrentKey { size: 11, .. })
        ));
        assert!(matches!(
            epochs.check_signers(11, &[&k1, &k0]),
            Err(EpochError::SignerOutOfEpoch { size: 11, .. })
        ));
        assert!(matches!(
            epochs.check_signers(10, &[&k1]),
            Err(EpochError::HandoverNotLinked { size: 10, .. })
        ));
        assert!(matches!(
            epochs.check_signers(5, &[&k0, &k1]),
            Err(EpochError::SignerOutOfEpoch { size: 5, .. })
        ));
        let stranger = key(3);
        assert!(matches!(
            epochs.check_signers(12, &[&k1, &stranger]),
            Err(EpochError::SignerNotInLog { size: 12, .. })
        ));
    }

    #[test]
    fn a_key_file_round_trips_its_epochs() {
        let (k0, k1, k2) = (key(1), key(2), key(3));
        let mut epochs = KeyEpochs::starting_with(k0.clone());
        assert_eq!(epochs.to_key_file(), format!("{}\n", k0.to_vkey()));
        epochs.hand_over(10, k1).expect("first");
        epochs.hand_over(25, k2).expect("second");
        let text = epochs.to_key_file();
        assert!(
            text.contains(" from=1 to=10\n") && text.contains(" from=25\n"),
            "{text}"
        );
        let parsed = LogKeys::parse(&text).expect("parses");
        assert_eq!(parsed.stated_epochs(), Some(&epochs));
        assert_eq!(parsed.keys().len(), 3);
        assert_eq!(parsed.first_key(), Some(&k0));
    }

    #[test]
    fn inconsistent_stated_epochs_are_refused() {
        let (k0, k1) = (key(1).to_vkey(), key(2).to_vkey());
        for bad in [
            format!("{k0} from=2 to=10\n{k1} from=10\n"),
            format!("{k0} from=1 to=10\n{k1} from=11\n"),
            format!("{k0} from=1\n{k1} from=10\n"),
            format!("{k0} from=1 to=10\n{k1} from=10 to=20\n"),
            format!("{k0} from=1 to=10\n{k1}\n"),
            format!("{k0} since=1\n"),
            format!("{k0} from=1 from=1\n"),
        ] {
            assert!(LogKeys::parse(&bad).is_err(), "{bad}");
        }
        assert!(matches!(
            LogKeys::parse("# nothing\n"),
            Err(KeyFileError::Empty)
        ));
    }

    #[test]
    fn a_rotation_entry_names_its_new_key_in_a_field_or_in_legacy_detail_text() {
        use crate::log::entry::admin_entry;
        let k1 = key(2);
        let mut e = admin_entry(KEY_ROTATED, "anything");
        if let Some(a) = e.admin.as_mut() {
            a.new_verifier_key = k1.to_vkey();
        }
        assert_eq!(handover_key(&e).map(|r| r.ok()), Some(Some(k1.clone())));
        let legacy = admin_entry(
            KEY_ROTATED,
            &format!("new signing key {}; previous key id 0badf00d", k1.to_vkey()),
        );
        assert_eq!(handover_key(&legacy).map(|r| r.ok()), Some(Some(k1)));
        assert!(handover_key(&admin_entry("started", "x")).is_none());
    }
}
