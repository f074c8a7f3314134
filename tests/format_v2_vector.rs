//! The format-2 test vector of docs/format.md, checked three ways: the writer's sealing code
//! produces exactly the documented leaf and values; the commitments recomputed here from the
//! documented formula alone (plain SHA-256, none of the log's code) match the leaf; and the
//! documented bytes are the ones in docs/format.md, so the spec cannot drift from the code.

mod format_vector;

use format_vector::{
    assert_no_value_in_clear, assert_published, assert_subject_redacted, independent, vector_entry,
    vector_seed,
};
use prost::Message;
use s62::log::entry::{Entry, EntryValues};
use s62::log::seal::{seal, unseal};
use sha2::{Digest, Sha256};

const LEAF_HEX: &str = "08021007188080a4abc5cabbbe1820012803322011111111111111111111111111111111111111111111111111111111111111113a022802420f0a0d696e7665737469676174696f6e62120a034745541a06706572736f6e2203722d31900101f2012408011a2073812c14e1a82b40423e78293720d507f365f0a6f6689f5993a41fdfe01baf22f2012408021a20ebf72f9ddb033d1b1c54492b8e264aed84277a5ff6316d20387cfb544c75f9bef2012408031a206f8f6225f00dc503fc6e3494a3776ba3aa3d9c924ab9e41dfa64fb88e51ddb4bf2012408041a200d67d7e15833fc37f54d86bc67def989a7be6b4025fed4a47fd9acfcc585eceaf2012408051a20109f62618ec6383417441bed7f6d00657dc315574adfd3ecd3edae986008ac16f2012408081a20052c994a477c0a0aac93b29c7ef499a6a312dfe45037751271c29771b720a7fbf2012408091a20a222203c079fc7b8eb13dcb7ed07737804544d9907ee3fe6f9ac6b37860d0e13f20124080a1a20fa11fcdbc61bf3d98d4dd508c98c895044bc38ca820d6baadc6cd5358c179e54";
const LEAF_HASH_HEX: &str = "633a36d014ff43270c775ae01e06f7c4b4d82c7adabc04abaf88c31d56ecd35a";
const VALUES_HEX: &str = "0a1d08011a10abcd4d326332dbd04cacf296dd6fadee220750432d343437310a2308021a10391c23ff3819fcbd719d1a112d08d4a6220d504320412e204f6666696365720a1f08031a1012fc49b1a36d09c4cbc2921f1a79ddad2209636f6e737461626c650a1e08041a10fb7fb9af6bf04efc5c45a5aaad59dad9220831302e302e302e370a1c08051a1032718d1aef3c3747b44af76c35a79c702206502d313030310a2708081a10946b9f0ec8d446f2e0760216f7171a322211636865636b696e6720616e20616c6962690a2208091a1089dc05efa295e20eed54261ff1eedf92220c43522d323032362d303034320a24080a1a10f5d0302376b5e064db17d00e0ff7bb4f220e2f70656f706c652f502d31303031";

fn sealed() -> (Vec<u8>, Vec<u8>) {
    let mut e = vector_entry();
    let values = seal(&mut e, &vector_seed(), s62::log::seal::FORMAT_V2);
    (e.encode_to_vec(), values.encode_to_vec())
}

#[test]
fn the_writer_seals_the_vector_entry_into_the_documented_leaf_and_values() {
    let (leaf, values) = sealed();
    assert_eq!(hex::encode(&leaf), LEAF_HEX, "leaf bytes");
    assert_eq!(hex::encode(&values), VALUES_HEX, "value row bytes");
    let mut h = Sha256::new();
    h.update([0x00]);
    h.update(&leaf);
    assert_eq!(
        hex::encode(h.finalize()),
        LEAF_HASH_HEX,
        "RFC 6962 leaf hash"
    );
}

#[test]
fn each_commitment_is_recomputed_from_the_documented_formula_alone() {
    let (leaf, values) = sealed();
    let leaf = Entry::decode(leaf.as_slice()).expect("leaf decodes");
    let values = EntryValues::decode(values.as_slice()).expect("values decode");
    assert_eq!(leaf.commitments.len(), 8, "one per personal value");
    assert_eq!(values.values.len(), leaf.commitments.len());
    for (c, v) in leaf.commitments.iter().zip(&values.values) {
        assert_eq!((c.field, c.index), (v.field, v.index), "same order");
        assert_eq!(v.salt.len(), 16);
        // SHA-256("s62/v2 field\n" || u8 field || u32be index || salt || UTF-8 value)
        let mut h = Sha256::new();
        h.update(b"s62/v2 field\n");
        h.update([u8::try_from(c.field).expect("field number fits a byte")]);
        h.update(c.index.to_be_bytes());
        h.update(&v.salt);
        h.update(v.value.as_bytes());
        assert_eq!(
            h.finalize().as_slice(),
            c.sha256.as_slice(),
            "field {}",
            c.field
        );
    }
    // The leaf carries no personal value in clear.
    assert_no_value_in_clear(LEAF_HEX);
}

#[test]
fn the_values_put_back_give_the_entry_as_written_and_a_removed_one_shows_as_redacted() {
    let (leaf, values) = sealed();
    let leaf = Entry::decode(leaf.as_slice()).expect("leaf decodes");
    let mut values = EntryValues::decode(values.as_slice()).expect("values decode");
    let opened = unseal(&leaf, &values).expect("values match");
    let mut expected = vector_entry();
    expected.format_version = 2;
    expected.commitments = leaf.commitments.clone();
    assert_eq!(opened.entry, expected);
    assert!(opened.redacted.is_empty());

    values.values.retain(|v| v.field != 5); // subject_id
    let opened = unseal(&leaf, &values).expect("a missing value is not a mismatch");
    assert_subject_redacted(&opened);
}

#[test]
fn an_independent_python_implementation_of_the_spec_builds_the_same_bytes() {
    let v = independent("format_v2_independent.py");
    let (leaf, values) = sealed();
    assert_eq!(v["leaf"], hex::encode(leaf));
    assert_eq!(v["values"], hex::encode(values));
    assert_eq!(v["leaf_hash"], LEAF_HASH_HEX);
}

#[test]
fn docs_format_md_carries_this_vector() {
    assert_published(
        "format-2",
        &[
            ("leaf", LEAF_HEX),
            ("leaf hash", LEAF_HASH_HEX),
            ("values", VALUES_HEX),
        ],
    );
}
