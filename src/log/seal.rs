//! Formats 2 and 3: personal values committed to by the leaf, stored beside it, removable later.
//!
//! A format-2 leaf is an `s62.v1.Entry` whose personal fields ([`PersonalField`]) are all empty;
//! for every value they had, the leaf carries a [`FieldCommitment`]
//!
//! ```text
//! sha256 = SHA-256("s62/v2 field\n" ‖ u8 field ‖ u32 index, big-endian ‖ salt (16 bytes) ‖ UTF-8 value)
//! ```
//!
//! and the value and its salt are stored in an [`EntryValues`] row beside the leaf. Commitments are
//! listed in [`PersonalField`] order, then by index; singular fields have index 0 and are committed
//! only when non-empty; every element of a repeated field is committed, empty or not, so lists keep
//! their length. Each value has its own salt, so removing one value and its salt leaves nothing
//! from which it could be recomputed by hashing guesses, while the other values stay checkable.
//! Salts are derived from a per-batch random seed that is never stored:
//! `salt = SHA-256("s62/v2 salt\n" ‖ seed ‖ u64 seq ‖ u8 field ‖ u32 index)[..16]`; a verifier
//! never needs the seed, only the stored salt.
//!
//! Format 3 stores the same per-value commitments out of the leaf: the leaf holds one
//! `values_root`, a hash over every value's (field, index, commitment), and the row holds a
//! 16-byte per-entry seed from which each value's salt derives, so an entry pays 48 random bytes
//! instead of 48 per value. Redacting a value replaces it in the row by its commitment and
//! replaces the seed by the remaining values' own salts (docs/format.md, "Format 3").
//!
//! Pure: no storage, no clock, no randomness (the caller passes the seed).

use super::entry::pb::{EntryValues, FieldCommitment, FieldValue, PersonalField};
use super::entry::{Actor, Entry};
use super::hash::Hash;
use sha2::{Digest, Sha256};

/// The `format_version` of entries whose leaf holds one commitment per value.
pub const FORMAT_V2: u32 = 2;

/// The `format_version` of entries whose leaf holds one commitment to all their values.
pub const FORMAT_V3: u32 = 3;

/// Whether entries of `format` keep their personal values beside the leaf (formats 2 and 3).
pub fn is_sealed(format: u32) -> bool {
    format == FORMAT_V2 || format == FORMAT_V3
}

/// Length of a format-3 entry's seed.
pub const SEED_BYTES: usize = 16;

/// Length of each value's salt.
pub const SALT_BYTES: usize = 16;

/// Bytes a sealed entry adds per personal value at most (the commitment message).
pub const COMMITMENT_OVERHEAD_BYTES: usize = 48;

const FIELD_DOMAIN: &[u8] = b"s62/v2 field\n";
const SALT_DOMAIN: &[u8] = b"s62/v2 salt\n";
const V3_SEED_DOMAIN: &[u8] = b"s62/v3 seed\n";
const V3_SALT_DOMAIN: &[u8] = b"s62/v3 salt\n";
const V3_ROOT_DOMAIN: &[u8] = b"s62/v3 values\n";

/// Every personal field, in commitment order.
pub const PERSONAL_FIELDS: [PersonalField; 14] = [
    PersonalField::ActorId,
    PersonalField::ActorName,
    PersonalField::ActorRole,
    PersonalField::ActorAddress,
    PersonalField::SubjectId,
    PersonalField::RecordId,
    PersonalField::Recipient,
    PersonalField::JustificationText,
    PersonalField::CaseReference,
    PersonalField::RequestPath,
    PersonalField::ReturnedSubjectId,
    PersonalField::ReturnedRecordId,
    PersonalField::AuditFilter,
    PersonalField::AuditCaseReference,
];

impl PersonalField {
    /// Lower-case name used in JSON output, config and the CLI (`subject_id`, ...).
    pub fn label(self) -> &'static str {
        match self {
            PersonalField::Unspecified => "unspecified",
            PersonalField::ActorId => "actor_id",
            PersonalField::ActorName => "actor_name",
            PersonalField::ActorRole => "actor_role",
            PersonalField::ActorAddress => "actor_address",
            PersonalField::SubjectId => "subject_id",
            PersonalField::RecordId => "record_id",
            PersonalField::Recipient => "recipient",
            PersonalField::JustificationText => "justification_text",
            PersonalField::CaseReference => "case_reference",
            PersonalField::RequestPath => "request_path",
            PersonalField::ReturnedSubjectId => "returned_subject_id",
            PersonalField::ReturnedRecordId => "returned_record_id",
            PersonalField::AuditFilter => "audit_filter",
            PersonalField::AuditCaseReference => "audit_case_reference",
        }
    }

    /// Parses a [`PersonalField::label`].
    pub fn from_label(s: &str) -> Option<PersonalField> {
        PERSONAL_FIELDS.into_iter().find(|f| f.label() == s)
    }

    fn repeated(self) -> bool {
        matches!(
            self,
            PersonalField::ActorRole
                | PersonalField::SubjectId
                | PersonalField::RecordId
                | PersonalField::Recipient
                | PersonalField::ReturnedSubjectId
                | PersonalField::ReturnedRecordId
        )
    }
}

/// The commitment hash of one value.
pub fn commitment(field: PersonalField, index: u32, salt: &[u8], value: &str) -> Hash {
    let mut h = Sha256::new();
    h.update(FIELD_DOMAIN);
    h.update([field as u8]);
    h.update(index.to_be_bytes());
    h.update(salt);
    h.update(value.as_bytes());
    Hash(h.finalize().into())
}

fn salt(seed: &[u8; 32], seq: u64, field: PersonalField, index: u32) -> Vec<u8> {
    let mut h = Sha256::new();
    h.update(SALT_DOMAIN);
    h.update(seed);
    h.update(seq.to_be_bytes());
    h.update([field as u8]);
    h.update(index.to_be_bytes());
    h.finalize()[..SALT_BYTES].to_vec()
}

/// A format-3 entry's seed, derived from the batch's random seed (which is never stored).
fn entry_seed(batch_seed: &[u8; 32], seq: u64) -> Vec<u8> {
    let mut h = Sha256::new();
    h.update(V3_SEED_DOMAIN);
    h.update(batch_seed);
    h.update(seq.to_be_bytes());
    h.finalize()[..SEED_BYTES].to_vec()
}

/// The salt of value (`field`, `index`) of a format-3 entry with seed `seed`.
/// Returned by value: sealing and verification only hash it, so no allocation per value.
pub fn v3_salt(seed: &[u8], field: PersonalField, index: u32) -> [u8; SALT_BYTES] {
    let mut h = Sha256::new();
    h.update(V3_SALT_DOMAIN);
    h.update(seed);
    h.update([field as u8]);
    h.update(index.to_be_bytes());
    let mut salt = [0u8; SALT_BYTES];
    salt.copy_from_slice(&h.finalize()[..SALT_BYTES]);
    salt
}

/// A format-3 leaf's `values_root` over its values' commitments, given in (field, index) order.
pub fn values_root<'a>(commitments: impl IntoIterator<Item = (FieldRef, &'a Hash)>) -> Hash {
    let mut h = Sha256::new();
    h.update(V3_ROOT_DOMAIN);
    for (r, c) in commitments {
        h.update([r.field as u8]);
        h.update(r.index.to_be_bytes());
        h.update(c.0);
    }
    Hash(h.finalize().into())
}

/// The slots of a personal field in an entry, read or written in place.
fn slots(e: &mut Entry, field: PersonalField) -> Slots<'_> {
    let actor = || Actor::default();
    match field {
        PersonalField::Unspecified => Slots::None,
        PersonalField::ActorId => Slots::One(&mut e.actor.get_or_insert_with(actor).id),
        PersonalField::ActorName => Slots::One(&mut e.actor.get_or_insert_with(actor).display_name),
        PersonalField::ActorRole => Slots::Many(&mut e.actor.get_or_insert_with(actor).roles),
        PersonalField::ActorAddress => {
            Slots::One(&mut e.actor.get_or_insert_with(actor).source_address)
        }
        PersonalField::SubjectId => Slots::Many(&mut e.subject_ids),
        PersonalField::RecordId => Slots::Many(&mut e.record_ids),
        PersonalField::Recipient => Slots::Many(&mut e.recipients),
        PersonalField::JustificationText => {
            Slots::One(&mut e.justification.get_or_insert_with(Default::default).text)
        }
        PersonalField::CaseReference => Slots::One(
            &mut e
                .justification
                .get_or_insert_with(Default::default)
                .case_reference,
        ),
        PersonalField::RequestPath => {
            Slots::One(&mut e.request.get_or_insert_with(Default::default).path)
        }
        PersonalField::ReturnedSubjectId => Slots::Many(
            &mut e
                .outcome
                .get_or_insert_with(Default::default)
                .returned_subject_ids,
        ),
        PersonalField::ReturnedRecordId => Slots::Many(
            &mut e
                .outcome
                .get_or_insert_with(Default::default)
                .returned_record_ids,
        ),
        PersonalField::AuditFilter => Slots::One(
            &mut e
                .audit_query
                .get_or_insert_with(Default::default)
                .filter_json,
        ),
        PersonalField::AuditCaseReference => Slots::One(
            &mut e
                .audit_query
                .get_or_insert_with(Default::default)
                .case_reference,
        ),
    }
}

enum Slots<'a> {
    None,
    One(&'a mut String),
    Many(&'a mut Vec<String>),
}

/// Takes every personal value out of `e`, in commitment order. Absent sub-messages stay absent.
fn take_values(e: &mut Entry) -> Vec<(PersonalField, u32, String)> {
    let had = (
        e.actor.is_some(),
        e.justification.is_some(),
        e.request.is_some(),
        e.outcome.is_some(),
        e.audit_query.is_some(),
    );
    let mut out = Vec::new();
    for field in PERSONAL_FIELDS {
        match slots(e, field) {
            Slots::None => {}
            Slots::One(s) => {
                if !s.is_empty() {
                    out.push((field, 0, std::mem::take(s)));
                }
            }
            Slots::Many(v) => {
                for (i, s) in std::mem::take(v).into_iter().enumerate() {
                    out.push((field, u32::try_from(i).unwrap_or(u32::MAX), s));
                }
            }
        }
    }
    // `slots` created empty sub-messages to reach their fields; drop the ones that were absent.
    if !had.0 {
        e.actor = None;
    }
    if !had.1 {
        e.justification = None;
    }
    if !had.2 {
        e.request = None;
    }
    if !had.3 {
        e.outcome = None;
    }
    if !had.4 {
        e.audit_query = None;
    }
    out
}

/// How many values [`seal`] would commit to for `e`.
pub fn value_count(e: &Entry) -> usize {
    let one = |s: &str| usize::from(!s.is_empty());
    let mut n = e.subject_ids.len() + e.record_ids.len() + e.recipients.len();
    if let Some(a) = &e.actor {
        n += one(&a.id) + one(&a.display_name) + a.roles.len() + one(&a.source_address);
    }
    if let Some(j) = &e.justification {
        n += one(&j.text) + one(&j.case_reference);
    }
    if let Some(r) = &e.request {
        n += one(&r.path);
    }
    if let Some(o) = &e.outcome {
        n += o.returned_subject_ids.len() + o.returned_record_ids.len();
    }
    if let Some(q) = &e.audit_query {
        n += one(&q.filter_json) + one(&q.case_reference);
    }
    n
}

/// Seals a sequenced entry (its `seq` set) as `format` ([`FORMAT_V2`] or [`FORMAT_V3`]): moves
/// every personal value into the returned [`EntryValues`] and commits to them in the entry.
/// `seed` is the batch's random seed, never stored.
pub fn seal(e: &mut Entry, seed: &[u8; 32], format: u32) -> EntryValues {
    let seq = e.seq;
    let mut values = EntryValues::default();
    e.commitments.clear();
    e.values_root.clear();
    let taken = take_values(e);
    if format == FORMAT_V3 {
        if !taken.is_empty() {
            values.seed = entry_seed(seed, seq);
            let mut committed = Vec::with_capacity(taken.len());
            for (field, index, value) in taken {
                let salt = v3_salt(&values.seed, field, index);
                committed.push((
                    FieldRef { field, index },
                    commitment(field, index, &salt, &value),
                ));
                values.values.push(FieldValue {
                    field: field as i32,
                    index,
                    value,
                    ..Default::default()
                });
            }
            e.values_root = values_root(committed.iter().map(|(r, c)| (*r, c)))
                .0
                .to_vec();
        }
        e.format_version = FORMAT_V3;
        return values;
    }
    for (field, index, value) in taken {
        let salt = salt(seed, seq, field, index);
        e.commitments.push(FieldCommitment {
            field: field as i32,
            index,
            sha256: commitment(field, index, &salt, &value).0.to_vec(),
        });
        values.values.push(FieldValue {
            field: field as i32,
            index,
            salt,
            value,
            ..Default::default()
        });
    }
    e.format_version = FORMAT_V2;
    values
}

/// Removes from a sealed entry's stored `values` every value `covers(field, index)` names, as a
/// redaction does. Format 2 drops the value and its salt; format 3 replaces the value by its
/// commitment and, since a stored seed would let the removed value's salt be recomputed,
/// replaces the seed by the remaining values' own salts. Applying it twice changes nothing more.
/// Returns how many values it removed.
pub fn redact_values(
    format: u32,
    values: &mut EntryValues,
    covers: impl Fn(i32, u32) -> bool,
) -> usize {
    let before = values.values.len();
    if format != FORMAT_V3 {
        values.values.retain(|v| !covers(v.field, v.index));
        return before - values.values.len();
    }
    // Values still stored that the redaction names; with none, the row stays as it is.
    let named: Vec<bool> = values
        .values
        .iter()
        .map(|v| v.sha256.is_empty() && covers(v.field, v.index))
        .collect();
    if !named.contains(&true) {
        return 0;
    }
    let seed = std::mem::take(&mut values.seed);
    let mut removed = 0;
    for (v, remove) in values.values.iter_mut().zip(named) {
        let Ok(field) = PersonalField::try_from(v.field) else {
            continue;
        };
        if v.sha256.is_empty() && v.salt.is_empty() && !seed.is_empty() {
            v.salt = v3_salt(&seed, field, v.index).to_vec();
        }
        if remove {
            v.sha256 = commitment(field, v.index, &v.salt, &v.value).0.to_vec();
            v.salt.clear();
            v.value.clear();
            removed += 1;
        }
    }
    removed
}

/// Which value of an entry: a personal field and its index (0 for singular fields).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FieldRef {
    pub field: PersonalField,
    pub index: u32,
}

impl std::fmt::Display for FieldRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.field.repeated() {
            write!(f, "{}[{}]", self.field.label(), self.index)
        } else {
            f.write_str(self.field.label())
        }
    }
}

/// An entry with its personal values put back, and which of them are no longer stored.
#[derive(Clone, Debug, PartialEq)]
pub struct Opened {
    /// The entry as it was written, except that removed values are empty strings.
    pub entry: Entry,
    /// The values whose commitment is in the leaf but whose value is no longer stored.
    pub redacted: Vec<FieldRef>,
}

/// Why a stored entry's values do not fit its leaf.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// A stored value does not hash to its commitment: it was altered.
    #[error("the stored value of {0} does not match its commitment in the leaf")]
    Mismatch(FieldRef),
    /// A stored value has no commitment in the leaf: it was added.
    #[error("a value of {0} is stored that the leaf does not commit to")]
    Uncommitted(FieldRef),
    /// Two commitments or two values for the same field and index.
    #[error("{0} is committed to or stored twice")]
    Duplicate(FieldRef),
    /// A sealed (format 2 or 3) leaf holds a personal value in clear.
    #[error("the leaf holds {0} in clear, which its format commits to instead")]
    InClear(FieldRef),
    /// Format 3: the stored values, with the commitments kept for redacted ones, do not hash to
    /// the leaf's `values_root`.
    #[error(
        "the stored values do not match the leaf's values_root: a value was altered, added or \
         removed"
    )]
    RootMismatch,
    /// A commitment that names no personal field, or a malformed hash or salt.
    #[error("a commitment or value is malformed: {0}")]
    Malformed(&'static str),
}

/// A sealed leaf's stored values, each checked against its commitment, borrowed from the row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checked<'v> {
    /// The values still stored, in the leaf's commitment order.
    pub present: Vec<(FieldRef, &'v str)>,
    /// The values whose commitment is in the leaf but whose value is no longer stored.
    pub redacted: Vec<FieldRef>,
}

/// Checks a sealed leaf against its stored `values` without building the plain entry (format 3:
/// [`check_v3`]). For format 2: the leaf holds no personal value in clear, every commitment
/// names a personal field once, every stored value hashes to its commitment and none is
/// uncommitted. A format-1 leaf has no commitments and its values are its own fields: nothing is
/// present or redacted.
pub fn check_values<'v>(leaf: &Entry, values: &'v EntryValues) -> Result<Checked<'v>, SealError> {
    if !is_sealed(leaf.format_version) {
        return Ok(Checked {
            present: Vec::new(),
            redacted: Vec::new(),
        });
    }
    // A sealed leaf holds no personal value; find which one only when it does (tampering).
    if value_count(leaf) > 0 {
        let mut in_clear = leaf.clone();
        if let Some((field, index, _)) = take_values(&mut in_clear).into_iter().next() {
            return Err(SealError::InClear(FieldRef { field, index }));
        }
    }
    if leaf.format_version == FORMAT_V3 {
        return check_v3(leaf, values);
    }
    if !leaf.values_root.is_empty() || !values.seed.is_empty() {
        return Err(SealError::Malformed("format 3 fields in a format-2 entry"));
    }
    // Stored values by (field, index), sorted; `None` once a commitment has claimed one. A few
    // values per entry: a sorted vector, not a map, keeps verification at hashing speed.
    let mut stored: Vec<(FieldRef, Option<&FieldValue>)> = Vec::with_capacity(values.values.len());
    for v in &values.values {
        let r = FieldRef {
            field: field_of(v.field)?,
            index: v.index,
        };
        if v.salt.len() != SALT_BYTES {
            return Err(SealError::Malformed("a salt is not 16 bytes"));
        }
        if !v.sha256.is_empty() {
            return Err(SealError::Malformed(
                "a format-3 redaction mark in a format-2 row",
            ));
        }
        stored.push((r, Some(v)));
    }
    stored.sort_unstable_by_key(|(r, _)| *r);
    if let Some(w) = stored.windows(2).find(|w| w[0].0 == w[1].0) {
        return Err(SealError::Duplicate(w[0].0));
    }
    let mut checked = Checked {
        present: Vec::with_capacity(stored.len()),
        redacted: Vec::new(),
    };
    let mut seen: Vec<FieldRef> = Vec::with_capacity(leaf.commitments.len());
    for c in &leaf.commitments {
        let r = FieldRef {
            field: field_of(c.field)?,
            index: c.index,
        };
        seen.push(r);
        check_ref(r)?;
        let found = stored
            .binary_search_by_key(&r, |(k, _)| *k)
            .ok()
            .and_then(|i| stored[i].1.take());
        match found {
            Some(v) => {
                // Both sides are stored bytes and neither is secret: a plain comparison.
                let expected = commitment(r.field, r.index, &v.salt, &v.value);
                if c.sha256[..] != expected.0[..] {
                    return Err(SealError::Mismatch(r));
                }
                checked.present.push((r, v.value.as_str()));
            }
            None => checked.redacted.push(r),
        }
    }
    seen.sort_unstable();
    if let Some(w) = seen.windows(2).find(|w| w[0] == w[1]) {
        return Err(SealError::Duplicate(w[0]));
    }
    if let Some((r, _)) = stored.iter().find(|(_, v)| v.is_some()) {
        return Err(SealError::Uncommitted(*r));
    }
    Ok(checked)
}

fn field_of(raw: i32) -> Result<PersonalField, SealError> {
    match PersonalField::try_from(raw) {
        Ok(PersonalField::Unspecified) | Err(_) => Err(SealError::Malformed("unknown field")),
        Ok(f) => Ok(f),
    }
}

/// A (field, index) a leaf may commit to: index 0 on single-valued fields, bounded otherwise.
fn check_ref(r: FieldRef) -> Result<(), SealError> {
    if !r.field.repeated() && r.index != 0 {
        return Err(SealError::Malformed("an index on a single-valued field"));
    }
    if r.index > MAX_INDEX {
        return Err(SealError::Malformed("an index beyond any entry"));
    }
    Ok(())
}

/// [`check_values`] for a format-3 leaf: every stored value (hashed with its salt, derived from
/// the row's seed or stored with it) and every redacted value's kept commitment, in (field, index)
/// order, must hash to the leaf's `values_root`. A root mismatch cannot say which value changed.
fn check_v3<'v>(leaf: &Entry, values: &'v EntryValues) -> Result<Checked<'v>, SealError> {
    if !leaf.commitments.is_empty() {
        return Err(SealError::Malformed(
            "a format-3 leaf lists per-value commitments",
        ));
    }
    if leaf.values_root.is_empty() {
        // No personal value was committed to: nothing may be stored.
        return match values.values.first() {
            Some(v) => Err(SealError::Uncommitted(FieldRef {
                field: field_of(v.field)?,
                index: v.index,
            })),
            None if !values.seed.is_empty() => Err(SealError::Malformed(
                "a seed stored for an entry without values",
            )),
            None => Ok(Checked {
                present: Vec::new(),
                redacted: Vec::new(),
            }),
        };
    }
    if leaf.values_root.len() != 32 {
        return Err(SealError::Malformed("values_root is not 32 bytes"));
    }
    let seed = values.seed.as_slice();
    if !seed.is_empty() && seed.len() != SEED_BYTES {
        return Err(SealError::Malformed("a seed is not 16 bytes"));
    }
    let mut items: Vec<(FieldRef, Hash, Option<&'v str>)> = Vec::with_capacity(values.values.len());
    for v in &values.values {
        let r = FieldRef {
            field: field_of(v.field)?,
            index: v.index,
        };
        check_ref(r)?;
        if !v.sha256.is_empty() {
            let kept = <[u8; 32]>::try_from(v.sha256.as_slice()).map_err(|_| {
                SealError::Malformed("a redacted value's commitment is not 32 bytes")
            })?;
            if !v.salt.is_empty() || !v.value.is_empty() {
                return Err(SealError::Malformed(
                    "a redacted value still has its value or salt",
                ));
            }
            if !seed.is_empty() {
                return Err(SealError::Malformed(
                    "a redacted value's salt can still be derived from the stored seed",
                ));
            }
            items.push((r, Hash(kept), None));
            continue;
        }
        let c = match (seed.is_empty(), v.salt.len()) {
            (false, 0) => commitment(r.field, r.index, &v3_salt(seed, r.field, r.index), &v.value),
            (true, SALT_BYTES) => commitment(r.field, r.index, &v.salt, &v.value),
            _ => {
                return Err(SealError::Malformed(
                    "a value's salt must be derived from the seed, or stored (16 bytes) when there is none",
                ));
            }
        };
        items.push((r, c, Some(v.value.as_str())));
    }
    items.sort_unstable_by_key(|(r, _, _)| *r);
    if let Some(w) = items.windows(2).find(|w| w[0].0 == w[1].0) {
        return Err(SealError::Duplicate(w[0].0));
    }
    let root = values_root(items.iter().map(|(r, c, _)| (*r, c)));
    if leaf.values_root[..] != root.0[..] {
        return Err(SealError::RootMismatch);
    }
    let mut checked = Checked {
        present: Vec::with_capacity(items.len()),
        redacted: Vec::new(),
    };
    for (r, _, value) in items {
        match value {
            Some(v) => checked.present.push((r, v)),
            None => checked.redacted.push(r),
        }
    }
    Ok(checked)
}

/// The largest index of a repeated field's value that a leaf may commit to.
const MAX_INDEX: u32 = 1 << 20;

/// Puts the stored `values` back into a leaf's entry, checking each against its commitment
/// ([`check_values`]). A format-1 entry is returned as it is (it has no values).
pub fn unseal(leaf: &Entry, values: &EntryValues) -> Result<Opened, SealError> {
    let checked = check_values(leaf, values)?;
    let mut entry = leaf.clone();
    let put_back = checked.present.iter().map(|&(r, v)| (r, v.to_owned()));
    let emptied = checked.redacted.iter().map(|&r| (r, String::new()));
    for (r, value) in put_back.chain(emptied) {
        match slots(&mut entry, r.field) {
            Slots::None => {}
            Slots::One(s) => *s = value,
            Slots::Many(list) => {
                // `check_values` bounds the index by `MAX_INDEX`.
                let i = r.index as usize;
                if list.len() <= i {
                    list.resize(i + 1, String::new());
                }
                list[i] = value;
            }
        }
    }
    // Sub-messages `slots` created only to hold nothing are dropped again.
    if leaf.actor.is_none() && entry.actor.as_ref().is_some_and(|a| *a == Actor::default()) {
        entry.actor = None;
    }
    Ok(Opened {
        entry,
        redacted: checked.redacted,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::entry::{Justification, Outcome, Request};

    fn plain() -> Entry {
        Entry {
            seq: 7,
            actor: Some(Actor {
                id: "pc-1234".into(),
                display_name: "PC Jane Doe".into(),
                roles: vec!["response".into(), "".into(), "custody".into()],
                source_address: "10.1.2.3:5555".into(),
                ..Default::default()
            }),
            justification: Some(Justification {
                purpose_code: "investigation".into(),
                text: "burglary at 4 Elm Road".into(),
                case_reference: "CR-2026-001".into(),
            }),
            subject_ids: vec!["P-1".into(), "P-2".into()],
            request: Some(Request {
                method: "GET".into(),
                path: "/people/P-1?x=1".into(),
                route: "person-read".into(),
                ..Default::default()
            }),
            outcome: Some(Outcome {
                status: 200,
                returned_subject_ids: vec!["P-1".into()],
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// The verifier takes index values from the leaf and the checked value row
    /// ([`check_values`]) instead of building the plain entry: for every indexed field, with any
    /// value removed, both ways must name the same records, or verification would pass a
    /// stripped index or fail a sound one.
    #[test]
    fn index_values_from_a_leaf_and_its_values_are_those_of_the_opened_entry() {
        use crate::log::entry::AuditQuery;
        use crate::log::index::{MAX_INDEXED_VALUE_BYTES, index_values, index_values_with};
        let mut every_field = plain();
        every_field.record_ids = vec!["R-9".into(), "".into(), "R-9".into()];
        every_field.recipients = vec!["CPS".into(), "Interpol".into()];
        if let Some(o) = every_field.outcome.as_mut() {
            o.returned_record_ids = vec!["R-10".into(), "R-9".into()];
        }
        every_field.audit_query = Some(AuditQuery {
            purpose: crate::log::entry::AuditPurpose::SelfMonitoring as i32,
            filter_json: r#"{"subject":"P-1"}"#.into(),
            case_reference: "CR-2026-001".into(),
            ..Default::default()
        });
        let mut long_case = plain();
        if let Some(j) = long_case.justification.as_mut() {
            j.case_reference = "c".repeat(MAX_INDEXED_VALUE_BYTES + 1);
        }
        let no_actor = Entry {
            actor: None,
            ..plain()
        };
        for (original, format) in [every_field, long_case, no_actor]
            .into_iter()
            .flat_map(|e| [(e.clone(), FORMAT_V2), (e, FORMAT_V3)])
        {
            let mut leaf = original.clone();
            let values = seal(&mut leaf, &[3u8; 32], format);
            // Every value stored, each one removed in turn, and all of them removed.
            let mut cases = vec![values.clone()];
            for one in &values.values {
                let mut fewer = values.clone();
                let removed =
                    redact_values(format, &mut fewer, |f, i| f == one.field && i == one.index);
                assert_eq!(removed, 1);
                cases.push(fewer);
            }
            let mut none = values.clone();
            redact_values(format, &mut none, |_, _| true);
            cases.push(none);
            for stored in &cases {
                let opened = unseal(&leaf, stored).expect("opens");
                let checked = check_values(&leaf, stored).expect("checks");
                assert_eq!(checked.redacted, opened.redacted);
                let from_row =
                    index_values_with(&leaf, checked.present.iter().map(|(r, v)| (r.field, *v)));
                assert_eq!(from_row, index_values(&opened.entry));
            }
            let all = check_values(&leaf, &values).expect("checks");
            assert_eq!(
                index_values_with(&leaf, all.present.iter().map(|(r, v)| (r.field, *v))),
                index_values(&original),
                "with every value stored, the records are the original entry's"
            );
        }
    }

    #[test]
    fn a_sealed_entry_holds_no_personal_value_and_opens_back_to_the_original() {
        for format in [FORMAT_V2, FORMAT_V3] {
            let original = plain();
            let mut sealed = original.clone();
            let values = seal(&mut sealed, &[1u8; 32], format);
            let bytes = crate::log::entry::encode(&sealed);
            for secret in [
                "pc-1234", "Jane", "custody", "10.1.2.3", "P-1", "P-2", "Elm", "CR-2026",
            ] {
                assert!(
                    !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                    "{secret} is in the format-{format} leaf"
                );
            }
            assert_eq!(sealed.format_version, format);
            assert_eq!(
                sealed.request.as_ref().map(|r| r.route.as_str()),
                Some("person-read")
            );
            assert_eq!(value_count(&original), values.values.len());
            let opened = unseal(&sealed, &values).expect("opens");
            let mut expected = original;
            expected.format_version = format;
            expected.commitments = sealed.commitments.clone();
            expected.values_root = sealed.values_root.clone();
            assert_eq!(opened.entry, expected);
            assert!(opened.redacted.is_empty());
        }
    }

    #[test]
    fn a_removed_value_is_reported_redacted_and_a_changed_or_added_one_is_caught() {
        for format in [FORMAT_V2, FORMAT_V3] {
            let mut sealed = plain();
            let values = seal(&mut sealed, &[1u8; 32], format);
            let subject_1 = FieldRef {
                field: PersonalField::SubjectId,
                index: 1,
            };
            let is_subject_1 = |f: i32, i: u32| f == PersonalField::SubjectId as i32 && i == 1;
            let mut fewer = values.clone();
            assert_eq!(redact_values(format, &mut fewer, is_subject_1), 1);
            let opened = unseal(&sealed, &fewer).expect("opens");
            assert_eq!(opened.redacted, [subject_1]);
            assert_eq!(opened.entry.subject_ids, ["P-1", ""]);
            let again = fewer.clone();
            assert_eq!(redact_values(format, &mut fewer, is_subject_1), 0);
            assert_eq!(fewer, again, "a second redaction changes nothing");

            let mut changed = values.clone();
            for v in &mut changed.values {
                if is_subject_1(v.field, v.index) {
                    v.value = "P-3".into();
                }
            }
            let expected = match format {
                FORMAT_V2 => SealError::Mismatch(subject_1),
                _ => SealError::RootMismatch,
            };
            assert_eq!(unseal(&sealed, &changed), Err(expected));

            let mut added = values.clone();
            added.values.push(FieldValue {
                field: PersonalField::SubjectId as i32,
                index: 2,
                salt: if format == FORMAT_V2 {
                    vec![0; SALT_BYTES]
                } else {
                    Vec::new()
                },
                value: "P-9".into(),
                ..Default::default()
            });
            assert!(matches!(
                unseal(&sealed, &added),
                Err(SealError::Uncommitted(_) | SealError::RootMismatch)
            ));

            let mut clear = sealed.clone();
            clear.subject_ids.push("P-9".into());
            assert!(matches!(
                unseal(&clear, &values),
                Err(SealError::InClear(_))
            ));
        }
    }

    /// Format 3 keeps a redacted value's commitment in the row: the insider who deletes a value
    /// without a redaction, drops the kept commitment, edits it, or puts the seed back (so the
    /// removed value could be guessed) is caught; what is left gives no salt to hash guesses with.
    #[test]
    fn a_format_3_redaction_leaves_no_salt_for_the_removed_value_and_every_shortcut_is_caught() {
        let mut sealed = plain();
        let values = seal(&mut sealed, &[1u8; 32], FORMAT_V3);
        assert_eq!(values.seed.len(), SEED_BYTES);
        assert!(values.values.iter().all(|v| v.salt.is_empty()));
        let is_p2 = |f: i32, i: u32| f == PersonalField::SubjectId as i32 && i == 1;
        let mut redacted = values.clone();
        redact_values(FORMAT_V3, &mut redacted, is_p2);
        assert!(redacted.seed.is_empty(), "the seed is gone");
        let kept = redacted
            .values
            .iter()
            .find(|v| is_p2(v.field, v.index))
            .map(|v| v.sha256.clone())
            .expect("the commitment is kept");
        let row = prost::Message::encode_to_vec(&redacted);
        assert!(!row.windows(3).any(|w| w == b"P-2"), "the value is gone");
        // Every salt still stored, and the old seed's derivations from any stored salt, fail to
        // confirm the true value.
        for v in redacted.values.iter().filter(|v| v.sha256.is_empty()) {
            assert_eq!(v.salt.len(), SALT_BYTES);
            for guess_salt in [
                v.salt.clone(),
                v3_salt(&v.salt, PersonalField::SubjectId, 1).to_vec(),
            ] {
                let guess = commitment(PersonalField::SubjectId, 1, &guess_salt, "P-2");
                assert_ne!(guess.0.to_vec(), kept);
            }
        }
        let opened = unseal(&sealed, &redacted).expect("a redacted row opens");
        assert_eq!(opened.entry.subject_ids, ["P-1", ""]);
        assert_eq!(opened.entry.actor.map(|a| a.id), Some("pc-1234".into()));

        let mut dropped = redacted.clone();
        dropped.values.retain(|v| !is_p2(v.field, v.index));
        assert_eq!(unseal(&sealed, &dropped), Err(SealError::RootMismatch));
        let mut deleted = values.clone();
        deleted.values.retain(|v| !is_p2(v.field, v.index));
        assert_eq!(unseal(&sealed, &deleted), Err(SealError::RootMismatch));
        let mut edited = redacted.clone();
        for v in &mut edited.values {
            if is_p2(v.field, v.index) {
                v.sha256[0] ^= 1;
            }
        }
        assert_eq!(unseal(&sealed, &edited), Err(SealError::RootMismatch));
        let mut reseeded = redacted.clone();
        reseeded.seed = values.seed.clone();
        assert!(matches!(
            unseal(&sealed, &reseeded),
            Err(SealError::Malformed(_))
        ));
        assert_eq!(
            unseal(&sealed, &EntryValues::default()),
            Err(SealError::RootMismatch),
            "a deleted row is caught"
        );
    }

    /// Why format 3 exists: per value, format 2 stores a commitment in the leaf and a salt in the
    /// row (48 random bytes); format 3 stores 48 random bytes per entry.
    #[test]
    fn a_format_3_entry_stores_48_random_bytes_per_entry_where_format_2_stores_48_per_value() {
        let stored = |format| {
            let mut e = plain();
            let values = seal(&mut e, &[1u8; 32], format);
            let n = values.values.len();
            let bytes =
                crate::log::entry::encode(&e).len() + prost::Message::encode_to_vec(&values).len();
            (bytes, n)
        };
        let (v2, n) = stored(FORMAT_V2);
        let (v3, _) = stored(FORMAT_V3);
        assert!(n >= 10);
        assert!(
            v3 + 48 * (n - 1) <= v2,
            "format 3 stores {v3} bytes and format 2 {v2} for {n} values"
        );
    }

    #[test]
    fn salts_differ_per_value_and_per_entry_so_one_removal_leaves_nothing_to_hash_guesses_with() {
        let mut a = plain();
        let va = seal(&mut a, &[1u8; 32], FORMAT_V2);
        let salts: std::collections::BTreeSet<&[u8]> =
            va.values.iter().map(|v| v.salt.as_slice()).collect();
        assert_eq!(salts.len(), va.values.len(), "one salt per value");
        let mut b = plain();
        b.seq = 8;
        let vb = seal(&mut b, &[1u8; 32], FORMAT_V2);
        assert_ne!(va.values[0].salt, vb.values[0].salt);
        // Format 3: a seed per entry, a salt per value.
        let mut c = plain();
        let vc = seal(&mut c, &[1u8; 32], FORMAT_V3);
        let mut d = plain();
        d.seq = 8;
        let vd = seal(&mut d, &[1u8; 32], FORMAT_V3);
        assert_ne!(vc.seed, vd.seed);
        let salts: std::collections::BTreeSet<Vec<u8>> = vc
            .values
            .iter()
            .map(|v| v3_salt(&vc.seed, field_of(v.field).expect("field"), v.index).to_vec())
            .collect();
        assert_eq!(salts.len(), vc.values.len(), "one salt per value");
    }
}
