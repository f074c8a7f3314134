//! The c2sp.org/tlog-witness `add-checkpoint` wire format: the request body a log sends to a
//! witness and the `text/x.tlog.size` body of a 409 answer. Writer and strict parser, nothing else
//! (what a witness decides is [`crate::witness::verdict`]).
//!
//! ```text
//! body   = "old " size "\n"            ; ASCII decimal, no leading zeros ("0" for zero)
//!          *63( base64(hash) "\n" )    ; RFC 6962 §2.1.2 consistency proof, old → checkpoint size
//!          "\n"
//!          signed-note                 ; the checkpoint, possibly with several signatures
//! 409    = size "\n"                   ; Content-Type: text/x.tlog.size
//! ```
//!
//! Invariants: [`AddCheckpoint::parse`] accepts exactly what [`AddCheckpoint::to_body`] writes
//! (canonical decimal and canonical padded base64 of 32 bytes only); the checkpoint note itself is
//! kept verbatim and parsed by the caller. Pure: no I/O, no clock, no HTTP types.

use super::hash::Hash;

/// Most consistency-proof lines a request may carry.
pub const MAX_PROOF_LINES: usize = 63;

/// Content type of a 409 answer's body.
pub const SIZE_CONTENT_TYPE: &str = "text/x.tlog.size";

/// The path (after the witness's submission prefix) that takes checkpoints.
pub const ADD_CHECKPOINT_PATH: &str = "/add-checkpoint";

/// Why an `add-checkpoint` body or a size body was rejected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    /// The body does not follow the format; `line` is 1-based.
    #[error("malformed add-checkpoint body (line {line}): {why}")]
    Malformed {
        /// Line where the problem is.
        line: usize,
        /// What is wrong.
        why: &'static str,
    },
    /// More proof lines than the protocol allows (or than the writer may send).
    #[error("consistency proof has {0} lines; at most 63 are allowed")]
    ProofTooLong(usize),
    /// A 409 body that is not `<decimal size>\n`.
    #[error("malformed tree size body: {0}")]
    SizeBody(&'static str),
}

/// One `add-checkpoint` request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddCheckpoint {
    /// Size of the checkpoint the log believes the witness last cosigned (0 for none).
    pub old_size: u64,
    /// Consistency proof from `old_size` to the checkpoint's size; empty when `old_size` is 0.
    pub proof: Vec<Hash>,
    /// The signed checkpoint note, verbatim.
    pub checkpoint: String,
}

/// Parses canonical ASCII decimal: digits only, no sign, no leading zero unless "0".
fn decimal(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) || (s.len() > 1 && s.starts_with('0'))
    {
        return None;
    }
    s.parse().ok()
}

impl AddCheckpoint {
    /// The request body. Refuses a proof longer than [`MAX_PROOF_LINES`].
    pub fn to_body(&self) -> Result<String, BodyError> {
        if self.proof.len() > MAX_PROOF_LINES {
            return Err(BodyError::ProofTooLong(self.proof.len()));
        }
        let mut body = format!("old {}\n", self.old_size);
        for h in &self.proof {
            body.push_str(&h.to_base64());
            body.push('\n');
        }
        body.push('\n');
        body.push_str(&self.checkpoint);
        Ok(body)
    }

    /// Strict parse. Every line before the checkpoint must end in `"\n"`; the old-size line must
    /// be `old <canonical decimal>`; each proof line canonical padded base64 of exactly 32 bytes;
    /// at most 63 of them; an empty line; then a non-empty checkpoint note (kept verbatim).
    pub fn parse(body: &str) -> Result<Self, BodyError> {
        let malformed = |line, why| BodyError::Malformed { line, why };
        let Some((first, mut rest)) = body.split_once('\n') else {
            return Err(malformed(1, "no old size line"));
        };
        let Some(old) = first.strip_prefix("old ") else {
            return Err(malformed(1, "first line is not \"old <size>\""));
        };
        let old_size = decimal(old).ok_or(malformed(
            1,
            "old size is not a decimal number without leading zeros",
        ))?;
        let mut proof = Vec::new();
        let mut line = 1;
        loop {
            line += 1;
            let Some((l, after)) = rest.split_once('\n') else {
                return Err(malformed(line, "no empty line before the checkpoint"));
            };
            rest = after;
            if l.is_empty() {
                break;
            }
            if proof.len() == MAX_PROOF_LINES {
                return Err(BodyError::ProofTooLong(MAX_PROOF_LINES + 1));
            }
            let h = Hash::from_base64(l)
                .filter(|h| h.to_base64() == l)
                .ok_or(malformed(
                    line,
                    "proof line is not canonical base64 of a 32-byte hash",
                ))?;
            proof.push(h);
        }
        if rest.is_empty() {
            return Err(malformed(line + 1, "no checkpoint after the empty line"));
        }
        Ok(AddCheckpoint {
            old_size,
            proof,
            checkpoint: rest.to_owned(),
        })
    }
}

/// The body of a 409 answer: the witness's latest cosigned size and a newline.
pub fn size_body(size: u64) -> String {
    format!("{size}\n")
}

/// Parses a 409 body: `<canonical decimal>\n` exactly.
pub fn parse_size_body(body: &str) -> Result<u64, BodyError> {
    let digits = body
        .strip_suffix('\n')
        .ok_or(BodyError::SizeBody("does not end in a newline"))?;
    decimal(digits).ok_or(BodyError::SizeBody(
        "not a decimal number without leading zeros",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::hash::sha256;

    fn note() -> String {
        "example.com/log\n5\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n\n— example.com/log AAAA\n".into()
    }

    #[test]
    fn a_body_round_trips_byte_for_byte() {
        let req = AddCheckpoint {
            old_size: 3,
            proof: vec![sha256(b"a"), sha256(b"b")],
            checkpoint: note(),
        };
        let body = req.to_body().expect("writes");
        assert!(body.starts_with("old 3\n"));
        assert_eq!(AddCheckpoint::parse(&body), Ok(req));
    }

    #[test]
    fn the_spec_example_body_parses() {
        // c2sp.org/tlog-witness, "Example request body".
        let body = "old 20852014\n\
PlRNCrwHpqhGrupue0L7gxbjbMiKA9temvuZZDDpkaw=\n\
jrJZDmY8Y7SyJE0MWLpLozkIVMSMZcD5kvuKxPC3swk=\n\
5+pKlUdi2LeF/BcMHBn+Ku6yhPGNCswZZD1X/6QgPd8=\n\
/6WVhPs2CwSsb5rYBH5cjHV/wSmA79abXAwhXw3Kj/0=\n\
\n\
example.com/behind-the-sofa\n\
20852163\n\
CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n\
\n\
— example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n\
— example.com/behind-the-sofa opLqBQsREYCgu6xQkYQwJr9fo45a62DN9EdmHXnZdXNqlcVGlCum2Wks+49/V6267UEjw6QUXTS5Rovnzv++qbSzm9Q=\n";
        let req = AddCheckpoint::parse(body).expect("the spec's example parses");
        assert_eq!(req.old_size, 20852014);
        assert_eq!(req.proof.len(), 4);
        assert!(
            req.checkpoint
                .starts_with("example.com/behind-the-sofa\n20852163\n")
        );
        assert_eq!(req.to_body().expect("writes"), body);
    }

    #[test]
    fn malformed_bodies_are_refused_with_the_line() {
        let n = note();
        let cases: Vec<(String, usize)> = vec![
            (format!("old 03\n\n{n}"), 1),
            (format!("old -1\n\n{n}"), 1),
            (format!("old\n\n{n}"), 1),
            (format!("new 3\n\n{n}"), 1),
            (format!("old 18446744073709551616\n\n{n}"), 1),
            ("old 3".to_string(), 1),
            (format!("old 3\nnot-base64\n\n{n}"), 2),
            // 31 bytes, and a non-canonical encoding of 32 bytes (last char not a multiple of 4).
            (
                format!("old 3\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==\n\n{n}"),
                2,
            ),
            (
                format!("old 3\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAB=\n\n{n}"),
                2,
            ),
            ("old 3\n\n".to_string(), 3),
            ("old 3\nAAAA".to_string(), 2),
        ];
        for (body, line) in cases {
            match AddCheckpoint::parse(&body) {
                Err(BodyError::Malformed { line: l, .. }) => assert_eq!(l, line, "{body:?}"),
                other => panic!("{body:?} gave {other:?}"),
            }
        }
    }

    #[test]
    fn more_than_63_proof_lines_are_refused_both_ways() {
        let h = sha256(b"x").to_base64();
        let body = format!("old 1\n{}\n{}", format!("{h}\n").repeat(64), note());
        assert_eq!(
            AddCheckpoint::parse(&body),
            Err(BodyError::ProofTooLong(64))
        );
        let body63 = format!("old 1\n{}\n{}", format!("{h}\n").repeat(63), note());
        assert_eq!(AddCheckpoint::parse(&body63).map(|r| r.proof.len()), Ok(63));
        let req = AddCheckpoint {
            old_size: 1,
            proof: vec![sha256(b"x"); 64],
            checkpoint: note(),
        };
        assert_eq!(req.to_body(), Err(BodyError::ProofTooLong(64)));
    }

    #[test]
    fn size_bodies_are_canonical_decimal_and_a_newline() {
        assert_eq!(size_body(0), "0\n");
        assert_eq!(parse_size_body("20852014\n"), Ok(20852014));
        assert_eq!(parse_size_body("0\n"), Ok(0));
        for bad in ["5", "05\n", "\n", "5 \n", "x\n", "5\n\n"] {
            assert!(parse_size_body(bad).is_err(), "{bad:?}");
        }
    }
}
