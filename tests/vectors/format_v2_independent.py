#!/usr/bin/env python3
"""Rebuilds the format-2 test vector of docs/format.md from the spec alone (hashlib and a few
lines of protobuf wire encoding; no s62 code) and prints leaf, values row and leaf hash as JSON.
tests/format_v2_vector.rs runs it and compares with what s62's writer produces."""
import hashlib
import json
import struct

SEED = bytes(range(32))  # the vector's per-batch seed: 00 01 ... 1f
SEQ = 7
# (PersonalField number, index, value) in commitment order.
VALUES = [
    (1, 0, "PC-4471"),            # actor_id
    (2, 0, "PC A. Officer"),      # actor_name
    (3, 0, "constable"),          # actor_role[0]
    (4, 0, "10.0.0.7"),           # actor_address
    (5, 0, "P-1001"),             # subject_id[0]
    (8, 0, "checking an alibi"),  # justification_text
    (9, 0, "CR-2026-0042"),       # case_reference
    (10, 0, "/people/P-1001"),    # request_path
]


def varint(n):
    out = b""
    while True:
        b, n = n & 0x7F, n >> 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def length_delimited(field, data):
    return varint(field << 3 | 2) + varint(len(data)) + data


def varint_field(field, n):
    return varint(field << 3) + varint(n) if n else b""


def sealed_leaf_fields(format_version):
    """The vector leaf's fields up to field 18: what a sealed leaf keeps (no personal value)."""
    return (
        varint_field(1, format_version)                      # format_version
        + varint_field(2, SEQ)                               # seq
        + varint_field(3, 1764547200000000000)               # time_unix_nanos
        + varint_field(4, 1)                                 # kind: intent
        + varint_field(5, 3)                                 # operation: consultation
        + length_delimited(6, b"\x11" * 32)                  # prev_leaf_hash
        + length_delimited(7, varint_field(5, 2))            # actor: auth_method mTLS only
        + length_delimited(8, length_delimited(1, b"investigation"))  # justification.purpose_code
        + length_delimited(12, length_delimited(1, b"GET") + length_delimited(3, b"person")
                           + length_delimited(4, b"r-1"))    # request: method, route, request_id
        + varint_field(18, 1)                                # checkpoint_follows
    )


def main():
    commitments, row = b"", b""
    for field, index, value in VALUES:
        where = bytes([field]) + struct.pack(">I", index)
        salt = hashlib.sha256(b"s62/v2 salt\n" + SEED + struct.pack(">Q", SEQ) + where).digest()[:16]
        sha = hashlib.sha256(b"s62/v2 field\n" + where + salt + value.encode()).digest()
        head = varint_field(1, field) + varint_field(2, index)
        commitments += length_delimited(30, head + length_delimited(3, sha))
        row += length_delimited(1, head + length_delimited(3, salt) + length_delimited(4, value.encode()))
    leaf = sealed_leaf_fields(2) + commitments
    print(json.dumps({
        "leaf": leaf.hex(),
        "values": row.hex(),
        "leaf_hash": hashlib.sha256(b"\x00" + leaf).hexdigest(),
    }))


if __name__ == "__main__":
    main()
