//! What goes on the wire to JetStream: stream and subject names for an origin, message ids, and
//! the entry message. Shared by the publisher and the hub; pure (no network, no store, no clock).
//!
//! | subject | payload | `Nats-Msg-Id` |
//! |---|---|---|
//! | `s62.<token>.entries` | [`EntriesMessage`]: consecutive entries, each a [`ReplicatedEntry`] (seq, the leaf as stored, the value row as stored) | `<origin>/<first seq>-<last seq>` |
//! | `s62.<token>.checkpoints` | the signed checkpoint note as stored (UTF-8) | `<origin>/checkpoint/<size>` |
//! | `s62.<token>.cosignatures` | a checkpoint note as stored once witnesses cosigned it: the published note followed by their cosignature lines | `<origin>/cosigned/<size>/<signature lines>` |
//!
//! Every subject of an origin lives in one stream, `S62_<token>`, so a consumer of the stream sees
//! every entry before the checkpoint that covers it (the publisher sends a checkpoint only once
//! every entry below its size is acknowledged), and a checkpoint before its cosigned note.
//!
//! An entries message carries several entries (up to [`BATCH_ENTRIES`]) so that the stream's
//! cost per message is paid once per batch, not once per entry. s62 before 2026-12-02 published
//! one entry per message (fields 1-3 of the same protobuf message, `Nats-Msg-Id`
//! `<origin>/<seq>`); [`decode_entries`] reads both, so streams written then stay readable.

use crate::log::hash::sha256;

/// One entry as replicated. The hub checks `leaf` exactly as a verifier checks a stored entry
/// (hash it as it is, never re-encode it) and `values` as a stored value row
/// (docs/format.md, "Values beside the leaf").
#[derive(Clone, PartialEq, prost::Message)]
pub struct ReplicatedEntry {
    /// The entry's seq (also inside the leaf; the hub checks they agree).
    #[prost(uint64, tag = "1")]
    pub seq: u64,
    /// The stored bytes of the entry: the Merkle leaf.
    #[prost(bytes = "vec", tag = "2")]
    pub leaf: Vec<u8>,
    /// Formats 2 and 3: the stored `s62.v1.EntryValues` row, as it was when published (empty for
    /// format 1, or when every value was already redacted).
    #[prost(bytes = "vec", tag = "3")]
    pub values: Vec<u8>,
}

/// Entries per entries message, at most.
pub const BATCH_ENTRIES: usize = 128;

/// Encoded bytes per entries message, at most (one entry larger than this goes alone). NATS
/// refuses messages over the server's `max_payload` (1 MiB by default).
pub const BATCH_BYTES: usize = 256 * 1024;

/// An entries message: consecutive entries in seq order (field 4). A message written by s62 before
/// 2026-12-02 holds one entry in fields 1-3 instead, and no field 4.
#[derive(Clone, PartialEq, prost::Message)]
pub struct EntriesMessage {
    /// Earlier versions: the one entry's seq.
    #[prost(uint64, tag = "1")]
    pub seq: u64,
    /// Earlier versions: the one entry's leaf.
    #[prost(bytes = "vec", tag = "2")]
    pub leaf: Vec<u8>,
    /// Earlier versions: the one entry's value row.
    #[prost(bytes = "vec", tag = "3")]
    pub values: Vec<u8>,
    /// The entries, in seq order.
    #[prost(message, repeated, tag = "4")]
    pub entries: Vec<ReplicatedEntry>,
}

/// The payload of an entries message holding `entries`.
pub fn encode_entries(entries: Vec<ReplicatedEntry>) -> Vec<u8> {
    prost::Message::encode_to_vec(&EntriesMessage {
        entries,
        ..Default::default()
    })
}

/// The encoded size `entry` adds to an entries message.
pub fn encoded_len(entry: &ReplicatedEntry) -> usize {
    let len = prost::Message::encoded_len(entry);
    1 + prost::encoding::encoded_len_varint(len as u64) + len
}

/// The entries an entries message holds, in the order it holds them: field 4, or the one entry of
/// an earlier version's message. A message with both forms, or neither, does not decode.
pub fn decode_entries(payload: &[u8]) -> Result<Vec<ReplicatedEntry>, String> {
    let m: EntriesMessage = prost::Message::decode(payload).map_err(|e| e.to_string())?;
    let single = m.seq != 0 || !m.leaf.is_empty() || !m.values.is_empty();
    match (single, m.entries.is_empty()) {
        (false, false) => Ok(m.entries),
        (true, true) => Ok(vec![ReplicatedEntry {
            seq: m.seq,
            leaf: m.leaf,
            values: m.values,
        }]),
        (true, false) => Err("an entries message holds both one entry and a batch".into()),
        (false, true) => Err("an entries message holds no entry".into()),
    }
}

/// The names one origin uses in NATS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Names {
    pub origin: String,
    /// A NATS-safe token for the origin: its characters outside `[A-Za-z0-9_-]` as `_`, then
    /// `-` and the first 8 hex digits of SHA-256(origin), so two origins never share a token.
    pub token: String,
    pub stream: String,
    pub entries: String,
    pub checkpoints: String,
    pub cosignatures: String,
}

impl Names {
    pub fn for_origin(origin: &str) -> Names {
        let mut token: String = origin
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .take(64)
            .collect();
        token.push('-');
        token.push_str(&sha256(origin.as_bytes()).to_hex()[..8]);
        Names {
            origin: origin.to_owned(),
            stream: format!("S62_{token}"),
            entries: format!("s62.{token}.entries"),
            checkpoints: format!("s62.{token}.checkpoints"),
            cosignatures: format!("s62.{token}.cosignatures"),
            token,
        }
    }

    /// `Nats-Msg-Id` of the entries message holding seqs `first..=last`.
    pub fn entries_id(&self, first: u64, last: u64) -> String {
        format!("{}/{first}-{last}", self.origin)
    }

    /// `Nats-Msg-Id` of the checkpoint for tree size `size`.
    pub fn checkpoint_id(&self, size: u64) -> String {
        format!("{}/checkpoint/{size}", self.origin)
    }

    /// `Nats-Msg-Id` of the checkpoint for `size` as stored with `lines` signature lines (the
    /// log's and the witnesses'): each cosignature added later makes a new message.
    pub fn cosigned_id(&self, size: u64, lines: usize) -> String {
        format!("{}/cosigned/{size}/{lines}", self.origin)
    }

    /// Every subject of the origin's stream.
    pub fn subjects(&self) -> Vec<String> {
        vec![
            self.entries.clone(),
            self.checkpoints.clone(),
            self.cosignatures.clone(),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn an_origin_gets_safe_distinct_names() {
        let a = Names::for_origin("custody.example.police.uk/s62");
        assert!(a.token.starts_with("custody_example_police_uk_s62-"));
        assert_eq!(a.entries, format!("s62.{}.entries", a.token));
        assert!(!a.stream.contains('.'));
        let b = Names::for_origin("custody_example_police_uk_s62");
        assert_ne!(a.token, b.token, "sanitised alike, told apart by the hash");
        assert_eq!(a.entries_id(7, 9), "custody.example.police.uk/s62/7-9");
        assert_eq!(
            a.checkpoint_id(8),
            "custody.example.police.uk/s62/checkpoint/8"
        );
        assert_eq!(
            a.cosigned_id(8, 2),
            "custody.example.police.uk/s62/cosigned/8/2"
        );
        assert_eq!(a.subjects().len(), 3);
    }

    #[test]
    fn an_entry_message_round_trips() {
        let m = ReplicatedEntry {
            seq: 3,
            leaf: vec![1, 2, 3],
            values: vec![4],
        };
        let back = ReplicatedEntry::decode(m.encode_to_vec().as_slice()).expect("decodes");
        assert_eq!(back, m);
    }

    fn entry(seq: u64) -> ReplicatedEntry {
        ReplicatedEntry {
            seq,
            leaf: vec![seq as u8 + 1; 3],
            values: if seq.is_multiple_of(2) {
                vec![]
            } else {
                vec![9]
            },
        }
    }

    #[test]
    fn an_entries_message_carries_a_batch_and_its_size_is_known_ahead() {
        let batch: Vec<ReplicatedEntry> = (0..5).map(entry).collect();
        let payload = encode_entries(batch.clone());
        assert_eq!(payload.len(), batch.iter().map(encoded_len).sum::<usize>());
        assert_eq!(decode_entries(&payload), Ok(batch));
    }

    #[test]
    fn a_message_from_an_earlier_version_holds_one_entry() {
        // As s62 published before batches: the ReplicatedEntry itself is the payload.
        let old = entry(7).encode_to_vec();
        assert_eq!(decode_entries(&old), Ok(vec![entry(7)]));
    }

    #[test]
    fn a_message_with_both_forms_or_none_is_refused() {
        let both = EntriesMessage {
            seq: 7,
            leaf: vec![1],
            values: vec![],
            entries: vec![entry(8)],
        }
        .encode_to_vec();
        assert!(matches!(decode_entries(&both), Err(e) if e.contains("both")));
        assert!(matches!(decode_entries(&[]), Err(e) if e.contains("no entry")));
        assert!(decode_entries(&[0xff, 0xff]).is_err(), "not protobuf");
    }
}
