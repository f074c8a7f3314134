//! Witness cosignatures in offline verification: `s62 verify --witness FILE --quorum N` and
//! `s62 verify-bundle --witness FILE --quorum N`.
//!
//! Rules: the verifier names the witnesses it trusts (cosigner vkeys, type 0x04) and how many must
//! agree. On a stored log every cosignature line from a listed witness, on every stored
//! checkpoint, must verify (a bad one is tampering: someone edited a stored note); the log's
//! LATEST checkpoint must carry valid cosignatures from at least N distinct listed witnesses
//! (distinct by key name). On a bundle the same quorum is required on the header's checkpoint,
//! which every entry's proof is against. Lines from unlisted keys are ignored.
//!
//! What a quorum proves: N parties outside the operator's control saw this tree head and checked
//! it was consistent with every one they saw before, so a cut, rollback or fork after they
//! cosigned cannot also collect their cosignatures. Reads through the [`Store`] trait; must not
//! depend on tokio, HTTP or RocksDB.

use std::path::{Path, PathBuf};

use crate::log::cosignature::{CosignerVerifier, distinct_witnesses, open_cosignatures};
use crate::log::store::{LogStore, Store};

use super::VerifyError;

/// The witnesses a verifier trusts and how many of them must have cosigned.
#[derive(Clone, Debug)]
pub struct WitnessRequirement {
    pub witnesses: Vec<CosignerVerifier>,
    pub quorum: usize,
}

impl WitnessRequirement {
    /// Reads the cosigner vkey files given with `--witness`.
    pub fn from_files(files: &[PathBuf], quorum: usize) -> Result<Self, String> {
        let mut witnesses = Vec::new();
        for f in files {
            witnesses.extend(
                crate::witness::keys::read_cosigner_verifiers(f).map_err(|e| e.to_string())?,
            );
        }
        if quorum == 0 {
            return Err("--quorum must be at least 1".into());
        }
        Ok(WitnessRequirement { witnesses, quorum })
    }
}

/// What the witness check found on a stored log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WitnessReport {
    /// Size of the latest checkpoint.
    pub latest_size: u64,
    /// Names of the listed witnesses that cosigned it.
    pub cosigned_by: Vec<String>,
    /// Stored checkpoints carrying at least one listed witness's cosignature.
    pub cosigned_checkpoints: u64,
}

/// The listed witnesses (distinct names) with a valid cosignature on `note`, or tampering if a
/// listed witness's line on it does not verify.
pub fn cosigners_of(note: &str, req: &WitnessRequirement) -> Result<Vec<String>, String> {
    let (_, found) = open_cosignatures(note, &req.witnesses).map_err(|e| e.to_string())?;
    let mut names: Vec<String> = found.iter().map(|c| c.witness.name().to_owned()).collect();
    names.sort();
    names.dedup();
    debug_assert_eq!(names.len(), distinct_witnesses(&found));
    Ok(names)
}

/// Checks every stored checkpoint's cosignatures from listed witnesses and the quorum on the
/// latest checkpoint. Run after [`super::verify_store`] has checked the log itself.
pub fn verify_store_witnesses(
    store: &dyn Store,
    req: &WitnessRequirement,
) -> Result<WitnessReport, VerifyError> {
    const CHUNK: usize = 4096;
    let mut from = 0u64;
    let mut cosigned_checkpoints = 0u64;
    let mut newest_quorum: Option<u64> = None;
    let mut latest: Option<(u64, Vec<String>)> = None;
    loop {
        let chunk = store.checkpoints(from, CHUNK)?;
        let Some((last, _)) = chunk.last() else { break };
        from = last + 1;
        for (size, note) in &chunk {
            let names = cosigners_of(note, req).map_err(|e| VerifyError::Tampered {
                seq: size.checked_sub(1),
                problem: format!("checkpoint at size {size}: {e}"),
            })?;
            if !names.is_empty() {
                cosigned_checkpoints += 1;
            }
            if names.len() >= req.quorum {
                newest_quorum = Some(*size);
            }
            latest = Some((*size, names));
        }
        if chunk.len() < CHUNK {
            break;
        }
    }
    let Some((latest_size, cosigned_by)) = latest else {
        return Err(VerifyError::CouldNotRun(
            "the log has no checkpoint to check for cosignatures".into(),
        ));
    };
    if cosigned_by.len() < req.quorum {
        return Err(VerifyError::Tampered {
            seq: None,
            problem: format!(
                "the latest checkpoint (size {latest_size}) carries valid cosignatures from {} of the \
                 listed witnesses{}; {} required. {}",
                cosigned_by.len(),
                if cosigned_by.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", cosigned_by.join(", "))
                },
                req.quorum,
                match newest_quorum {
                    Some(w) => format!(
                        "The newest checkpoint with a quorum is size {w}: entries {w}..{latest_size} \
                         are not witnessed (a live log catches up within witness.interval_ms; a \
                         log cut or forked after size {w} never does)"
                    ),
                    None => "No stored checkpoint has a quorum".into(),
                }
            ),
        });
    }
    Ok(WitnessReport {
        latest_size,
        cosigned_by,
        cosigned_checkpoints,
    })
}

/// The header checkpoint of a bundle file (its first line's `checkpoint`).
pub fn bundle_checkpoint(file: &Path) -> Result<String, String> {
    use std::io::{BufRead, Read};
    let f = std::fs::File::open(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let mut first = String::new();
    std::io::BufReader::new(f)
        .take(16 * 1024 * 1024)
        .read_line(&mut first)
        .map_err(|e| format!("{}: {e}", file.display()))?;
    match serde_json::from_str::<crate::verify::bundle::Line>(&first) {
        Ok(crate::verify::bundle::Line::Header(h)) => Ok(h.checkpoint),
        _ => Err(format!(
            "{}: the first line is not a bundle header",
            file.display()
        )),
    }
}

/// `verify-bundle --witness`: the quorum on the bundle's checkpoint. Exit 0, 1 (too few or a bad
/// cosignature), 2 (could not run). Run after the bundle itself verified.
pub fn verify_bundle_quorum(file: &Path, req: &WitnessRequirement) -> std::process::ExitCode {
    use std::process::ExitCode;
    let note = match bundle_checkpoint(file) {
        Ok(n) => n,
        Err(e) => {
            eprintln!("s62 verify-bundle: could not run: {e}");
            return ExitCode::from(2);
        }
    };
    let size = crate::log::note::parse_note(&note)
        .ok()
        .and_then(|n| crate::log::checkpoint::Checkpoint::parse_text(&n.text).ok())
        .map_or(0, |c| c.size);
    match cosigners_of(&note, req) {
        Ok(names) if names.len() >= req.quorum => {
            println!(
                "OK: its checkpoint (size {size}) is cosigned by {} listed witness(es): {}",
                names.len(),
                names.join(", ")
            );
            ExitCode::SUCCESS
        }
        Ok(names) => {
            eprintln!(
                "TAMPERED: {}: the bundle's checkpoint (size {size}) carries valid cosignatures from {} \
                 of the listed witnesses; {} required",
                file.display(),
                names.len(),
                req.quorum
            );
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!(
                "TAMPERED: {}: the bundle's checkpoint (size {size}): {e}",
                file.display()
            );
            ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::cosignature::CosignerKey;
    use crate::log::store::checkpoint_key;
    use crate::log::store::memory::MemoryStore;

    const TEXT: &str =
        "records.example.police.uk/s62\n{size}\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n";

    fn text(size: u64) -> String {
        TEXT.replace("{size}", &size.to_string())
    }

    fn put(store: &MemoryStore, size: u64, note: &str) {
        store
            .write(&[(checkpoint_key(size), note.as_bytes().to_vec())])
            .expect("put");
    }

    fn req(keys: &[&CosignerKey], quorum: usize) -> WitnessRequirement {
        WitnessRequirement {
            witnesses: keys.iter().map(|k| k.verifier()).collect(),
            quorum,
        }
    }

    #[test]
    fn the_latest_checkpoint_needs_the_quorum_and_every_listed_line_must_verify() {
        let (a, b) = (
            CosignerKey::from_seed("a.example/w", [1; 32]).expect("a"),
            CosignerKey::from_seed("b.example/w", [2; 32]).expect("b"),
        );
        let log_line = "\u{2014} records.example.police.uk/s62 AAAAAAE=\n";
        let store = MemoryStore::new();
        let cosigned = |size: u64, by: &[&CosignerKey]| {
            let t = text(size);
            let mut note = format!("{t}\n{log_line}");
            for k in by {
                note.push_str(&k.cosign(&t, 1000 + size).expect("cosign"));
            }
            note
        };
        put(&store, 3, &cosigned(3, &[&a, &b]));
        put(&store, 5, &cosigned(5, &[&a]));
        let ok = verify_store_witnesses(&store, &req(&[&a, &b], 1)).expect("quorum 1");
        assert_eq!(ok.latest_size, 5);
        assert_eq!(ok.cosigned_by, vec!["a.example/w".to_string()]);
        assert_eq!(ok.cosigned_checkpoints, 2);

        match verify_store_witnesses(&store, &req(&[&a, &b], 2)) {
            Err(VerifyError::Tampered { problem, .. }) => {
                assert!(
                    problem.contains("size 5") && problem.contains("from 1 of"),
                    "{problem}"
                );
                assert!(
                    problem.contains("newest checkpoint with a quorum is size 3"),
                    "{problem}"
                );
            }
            other => panic!("{other:?}"),
        }

        // Someone edits b's stored cosignature at size 3 (moves it onto the size-5 text).
        let forged = cosigned(3, &[&a]) + &b.cosign(&text(5), 7).expect("b");
        put(&store, 3, &forged);
        match verify_store_witnesses(&store, &req(&[&a, &b], 1)) {
            Err(VerifyError::Tampered {
                seq: Some(2),
                problem,
            }) => {
                assert!(problem.contains("checkpoint at size 3"), "{problem}");
            }
            other => panic!("{other:?}"),
        }
        // A verifier who does not list b ignores that line.
        assert!(verify_store_witnesses(&store, &req(&[&a], 1)).is_ok());
    }
}
