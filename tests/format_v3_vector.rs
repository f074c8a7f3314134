//! The format-3 test vector of docs/format.md ("Format 3 test vector"), checked four ways: the
//! writer's sealing and redaction code produce exactly the documented leaf, row and redacted row;
//! `values_root` recomputed here from the documented formulas alone (plain SHA-256, none of the
//! log's sealing code) matches the leaf, from the row as written and from the redacted row; an
//! independent Python implementation of the spec builds the same bytes; and the documented bytes
//! are the ones in docs/format.md, so the spec cannot drift from the code.

mod format_vector;

use format_vector::{
    assert_no_value_in_clear, assert_published, assert_subject_redacted, independent, vector_entry,
    vector_seed,
};
use prost::Message;
use s62::log::entry::{Entry, EntryValues};
use s62::log::seal::{FORMAT_V3, SealError, redact_values, seal, unseal};
use sha2::{Digest, Sha256};

/// PersonalField `subject_id`, the value the vector redacts.
const SUBJECT_ID: i32 = 5;

const LEAF_HEX: &str = "08031007188080a4abc5cabbbe1820012803322011111111111111111111111111111111111111111111111111111111111111113a022802420f0a0d696e7665737469676174696f6e62120a034745541a06706572736f6e2203722d31900101a2022091fc40fa6085349a0da54fef3de3a913348258edb2190d68bc413f5de7cd7db0";
const LEAF_HASH_HEX: &str = "d1c74079e866e495aab93d69083b4f591600844a7725616dacdc4c5ea4d07fb5";
/// The row as written: one `FieldValue { field, index, value }` per value, then the entry seed.
const VALUES_HEX: &str = "0a0b0801220750432d343437310a110802220d504320412e204f6666696365720a0d08032209636f6e737461626c650a0c0804220831302e302e302e370a0a08052206502d313030310a1508082211636865636b696e6720616e20616c6962690a100809220c43522d323032362d303034320a12080a220e2f70656f706c652f502d3130303112107641b73bb87c3f2334c4feaf30e80298";
/// The row after redacting subject_id: no seed, each remaining value with its salt, and
/// subject_id[0] replaced by its kept commitment.
const REDACTED_VALUES_HEX: &str = "0a1d08011a10ac4a5c48f23774124588c99579af5dae220750432d343437310a2308021a1058d8c302fb257027effde93a66dbc0d8220d504320412e204f6666696365720a1f08031a10961ee714e177c00973ae452080cd190b2209636f6e737461626c650a1e08041a10032aff97a1e7db1510b4d6e95e2ebe27220831302e302e302e370a2408052a20e0fc6514d6e040e4cd96794c50b9f65ca841466464dd46661cee0a5e5904454d0a2708081a1067f7ea1d0c22e5f3080697781c51342e2211636865636b696e6720616e20616c6962690a2208091a108ad9df127de5de446af3502220a641f8220c43522d323032362d303034320a24080a1a107bc41241ea1edcb62c8aa5e58e0e3d0d220e2f70656f706c652f502d31303031";

/// The sealed leaf and the row as written.
fn sealed() -> (Entry, EntryValues) {
    let mut e = vector_entry();
    let values = seal(&mut e, &vector_seed(), FORMAT_V3);
    (e, values)
}

/// The row after the writer's redaction of subject_id.
fn redacted(values: &EntryValues) -> EntryValues {
    let mut values = values.clone();
    let removed = redact_values(FORMAT_V3, &mut values, |f, _| f == SUBJECT_ID);
    assert_eq!(removed, 1, "one subject id removed");
    values
}

fn decode_leaf() -> Entry {
    Entry::decode(hex::decode(LEAF_HEX).expect("hex").as_slice()).expect("leaf decodes")
}

fn decode_row(hex: &str) -> EntryValues {
    EntryValues::decode(hex::decode(hex).expect("hex").as_slice()).expect("row decodes")
}

fn sha256(parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

/// `u8(field) ‖ u32be(index)`, as the spec writes a value's place in every formula.
fn place(field: i32, index: u32) -> Vec<u8> {
    let mut out = vec![u8::try_from(field).expect("field number fits a byte")];
    out.extend_from_slice(&index.to_be_bytes());
    out
}

/// `values_root = SHA-256("s62/v3 values\n" ‖ for each value in (field, index) order:
/// u8 field ‖ u32be index ‖ commitment)`.
fn root_over(mut commitments: Vec<(i32, u32, [u8; 32])>) -> [u8; 32] {
    commitments.sort_by_key(|(f, i, _)| (*f, *i));
    let mut h = Sha256::new();
    h.update(b"s62/v3 values\n");
    for (f, i, c) in commitments {
        h.update(place(f, i));
        h.update(c);
    }
    h.finalize().into()
}

/// `SHA-256("s62/v2 field\n" ‖ u8 field ‖ u32be index ‖ salt ‖ UTF-8 value)`.
fn commitment(field: i32, index: u32, salt: &[u8], value: &str) -> [u8; 32] {
    sha256(&[
        b"s62/v2 field\n",
        &place(field, index),
        salt,
        value.as_bytes(),
    ])
}

#[test]
fn the_writer_seals_and_redacts_the_vector_entry_into_the_documented_leaf_and_rows() {
    let (leaf, values) = sealed();
    let leaf = leaf.encode_to_vec();
    assert_eq!(hex::encode(&leaf), LEAF_HEX, "leaf bytes");
    assert_eq!(
        hex::encode(values.encode_to_vec()),
        VALUES_HEX,
        "value row bytes as written"
    );
    assert_eq!(
        hex::encode(sha256(&[&[0x00], &leaf])),
        LEAF_HASH_HEX,
        "RFC 6962 leaf hash"
    );
    assert_eq!(
        hex::encode(redacted(&values).encode_to_vec()),
        REDACTED_VALUES_HEX,
        "value row bytes after redacting subject_id"
    );
}

#[test]
fn values_root_is_recomputed_from_the_documented_formulas_alone_from_either_row() {
    let leaf = decode_leaf();
    assert_eq!(leaf.format_version, 3);
    assert!(
        leaf.commitments.is_empty(),
        "a format-3 leaf has no commitments"
    );
    assert_eq!(leaf.values_root.len(), 32);

    // As written: the entry seed is in the row, each salt derives from it.
    let row = decode_row(VALUES_HEX);
    assert_eq!(row.seed.len(), 16, "the entry seed is stored");
    assert_eq!(row.values.len(), 8, "one item per personal value");
    let from_seed: Vec<(i32, u32, [u8; 32])> = row
        .values
        .iter()
        .map(|v| {
            assert!(
                v.salt.is_empty() && v.sha256.is_empty(),
                "no salt, no kept commitment"
            );
            // salt = SHA-256("s62/v3 salt\n" ‖ seed ‖ u8 field ‖ u32be index), first 16 bytes
            let salt = sha256(&[b"s62/v3 salt\n", &row.seed, &place(v.field, v.index)]);
            (
                v.field,
                v.index,
                commitment(v.field, v.index, &salt[..16], &v.value),
            )
        })
        .collect();
    assert_eq!(
        root_over(from_seed.clone()).as_slice(),
        leaf.values_root.as_slice(),
        "values_root from the row as written"
    );

    // Redacted: no seed; stored salts for the values left, the kept commitment as stored.
    let row = decode_row(REDACTED_VALUES_HEX);
    assert!(row.seed.is_empty(), "the seed is gone");
    assert_eq!(
        row.values.len(),
        8,
        "the removed value's commitment is kept"
    );
    let from_salts: Vec<(i32, u32, [u8; 32])> = row
        .values
        .iter()
        .map(|v| {
            if v.field == SUBJECT_ID {
                assert!(v.value.is_empty() && v.salt.is_empty(), "no value, no salt");
                let kept = <[u8; 32]>::try_from(v.sha256.as_slice()).expect("32-byte commitment");
                (v.field, v.index, kept)
            } else {
                assert!(v.sha256.is_empty());
                assert_eq!(v.salt.len(), 16, "{}: an explicit 16-byte salt", v.field);
                (
                    v.field,
                    v.index,
                    commitment(v.field, v.index, &v.salt, &v.value),
                )
            }
        })
        .collect();
    assert_eq!(from_salts, from_seed, "the same commitments either way");
    assert_eq!(
        root_over(from_salts).as_slice(),
        leaf.values_root.as_slice(),
        "values_root from the redacted row"
    );

    // Neither the leaf nor the redacted row carries what they must not.
    assert_no_value_in_clear(LEAF_HEX);
    assert!(
        !row.values.iter().any(|v| v.value == "P-1001"),
        "the redacted row still holds the subject id"
    );
}

#[test]
fn the_rows_put_back_give_the_entry_as_written_or_redacted_and_every_shortcut_is_caught() {
    let leaf = decode_leaf();
    let row = decode_row(VALUES_HEX);
    let opened = unseal(&leaf, &row).expect("the row as written matches");
    let mut expected = vector_entry();
    expected.format_version = 3;
    expected.values_root = leaf.values_root.clone();
    assert_eq!(opened.entry, expected);
    assert!(opened.redacted.is_empty());

    let redacted_row = decode_row(REDACTED_VALUES_HEX);
    let opened = unseal(&leaf, &redacted_row).expect("a redacted row is not a mismatch");
    assert_subject_redacted(&opened);
    let mut rest = opened.entry;
    rest.subject_ids = expected.subject_ids.clone();
    assert_eq!(rest, expected, "every other value is put back");

    // The seed put back would give the removed value's salt: refused.
    let mut reseeded = redacted_row.clone();
    reseeded.seed = row.seed.clone();
    assert!(
        matches!(unseal(&leaf, &reseeded), Err(SealError::Malformed(_))),
        "a redacted row with its seed put back"
    );

    // The kept commitment dropped: the root no longer matches.
    let mut dropped = redacted_row;
    dropped.values.retain(|v| v.field != SUBJECT_ID);
    assert_eq!(unseal(&leaf, &dropped), Err(SealError::RootMismatch));
}

#[test]
fn an_independent_python_implementation_of_the_spec_builds_the_same_bytes() {
    let v = independent("format_v3_independent.py");
    let (leaf, values) = sealed();
    assert_eq!(v["leaf"], hex::encode(leaf.encode_to_vec()), "leaf");
    assert_eq!(v["leaf_hash"], LEAF_HASH_HEX, "leaf hash");
    assert_eq!(v["values"], hex::encode(values.encode_to_vec()), "row");
    assert_eq!(
        v["redacted_values"],
        hex::encode(redacted(&values).encode_to_vec()),
        "redacted row"
    );
}

#[test]
fn docs_format_md_carries_this_vector() {
    assert_published(
        "format-3",
        &[
            ("leaf", LEAF_HEX),
            ("leaf hash", LEAF_HASH_HEX),
            ("values", VALUES_HEX),
            ("redacted values", REDACTED_VALUES_HEX),
        ],
    );
}
