#!/usr/bin/env python3
"""Rebuilds the format-3 test vector of docs/format.md from the spec alone (hashlib and a few
lines of protobuf wire encoding; no s62 code) and prints leaf, leaf hash, the value row as written
and the row after redacting subject_id[0], as JSON.
tests/format_v3_vector.rs runs it and compares with what s62's writer produces."""
import hashlib
import json
import struct

# The same entry, batch seed and protobuf wire helpers as the format-2 vector, which is an
# independent implementation too: nothing here comes from s62.
from format_v2_independent import SEED as BATCH_SEED
from format_v2_independent import SEQ, VALUES, length_delimited, sealed_leaf_fields, varint_field

REDACTED = {(5, 0)}  # subject_id[0]


def sha256(data):
    return hashlib.sha256(data).digest()


def main():
    # Entry seed: SHA-256("s62/v3 seed\n" || batch seed || u64be(seq)), first 16 bytes.
    seed = sha256(b"s62/v3 seed\n" + BATCH_SEED + struct.pack(">Q", SEQ))[:16]
    root_input, row, redacted_row = b"s62/v3 values\n", b"", b""
    for field, index, value in VALUES:
        where = bytes([field]) + struct.pack(">I", index)
        salt = sha256(b"s62/v3 salt\n" + seed + where)[:16]
        commitment = sha256(b"s62/v2 field\n" + where + salt + value.encode())
        root_input += where + commitment
        head = varint_field(1, field) + varint_field(2, index)
        # FieldValue { field 1, index 2, salt 3, value 4, sha256 5 }
        row += length_delimited(1, head + length_delimited(4, value.encode()))
        if (field, index) in REDACTED:
            redacted_row += length_delimited(1, head + length_delimited(5, commitment))
        else:
            redacted_row += length_delimited(
                1, head + length_delimited(3, salt) + length_delimited(4, value.encode()))
    row += length_delimited(2, seed)  # EntryValues.seed, field 2, after the values (field 1)
    values_root = sha256(root_input)
    leaf = sealed_leaf_fields(3) + length_delimited(36, values_root)  # field 36: values_root
    print(json.dumps({
        "leaf": leaf.hex(),
        "leaf_hash": hashlib.sha256(b"\x00" + leaf).hexdigest(),
        "values": row.hex(),
        "redacted_values": redacted_row.hex(),
    }))


if __name__ == "__main__":
    main()
