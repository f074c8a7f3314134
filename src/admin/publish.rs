//! Checkpoint publication: each signed checkpoint note is also written to a folder as plain files,
//! so compliance teams and witnesses can copy them somewhere the operator does not control and
//! later hand one to `s62 verify --trust-checkpoint`.
//!
//! Layout: `DIR/checkpoint.<size>` (one file per signed size, never rewritten) and
//! `DIR/checkpoint` (the latest). Each file is written to a temporary name, fsync'd and renamed, and
//! the folder is fsync'd, so a reader never sees a torn note and a crash leaves the old or the new
//! file, not half of one. Two guards keep the folder useful as evidence after a rollback of the data
//! folder: a different note for a size already published is refused (that would be a fork, and the
//! earlier file is the proof), and `DIR/checkpoint` never moves to a smaller size. Plain file I/O:
//! must not import RocksDB, the writer or any network code.

use crate::fsutil::write_atomic;
use std::fs;
use std::io::{self, ErrorKind};
use std::path::{Path, PathBuf};

/// File name of the latest published checkpoint inside the publication folder.
pub const LATEST: &str = "checkpoint";

/// Path of the file holding the checkpoint of `size`.
pub fn checkpoint_path(dir: &Path, size: u64) -> PathBuf {
    dir.join(format!("{LATEST}.{size}"))
}

/// Writes `note` (the signed checkpoint of tree size `size`) as `DIR/checkpoint.<size>` and as
/// `DIR/checkpoint`, atomically and durably; creates `dir` if needed.
///
/// Publishing the same note twice is a no-op. Errors (nothing is overwritten in either case):
/// [`ErrorKind::AlreadyExists`] when `checkpoint.<size>` already holds a *different* note — two
/// checkpoints for one size means the log forked or was rolled back; [`ErrorKind::InvalidInput`]
/// when `checkpoint` already holds a larger size (the per-size file is still written).
pub fn publish_checkpoint(dir: &Path, size: u64, note: &str) -> io::Result<()> {
    fs::create_dir_all(dir)?;
    let sized = checkpoint_path(dir, size);
    match fs::read(&sized) {
        Ok(existing) if existing == note.as_bytes() => {}
        Ok(_) => {
            return Err(io::Error::new(
                ErrorKind::AlreadyExists,
                format!(
                    "{} already holds a different checkpoint for size {size}: the log has forked \
                     or been rolled back; keeping the published one",
                    sized.display()
                ),
            ));
        }
        Err(e) if e.kind() == ErrorKind::NotFound => write_atomic(&sized, note.as_bytes())?,
        Err(e) => return Err(e),
    }
    let latest = dir.join(LATEST);
    if let Some(published) = published_size(&latest)?
        && published > size
    {
        return Err(io::Error::new(
            ErrorKind::InvalidInput,
            format!(
                "{} holds size {published}; refusing to move it back to {size}",
                latest.display()
            ),
        ));
    }
    write_atomic(&latest, note.as_bytes())
}

/// The tree size in a published checkpoint file (its second line), if the file exists.
fn published_size(path: &Path) -> io::Result<Option<u64>> {
    let text = match fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let size = text.lines().nth(1).and_then(|l| l.parse::<u64>().ok());
    match size {
        Some(s) => Ok(Some(s)),
        None => Err(io::Error::new(
            ErrorKind::InvalidData,
            format!("{} is not a checkpoint note", path.display()),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn note(size: u64, root: &str) -> String {
        format!("example.police.uk/s62\n{size}\n{root}\n\n— example.police.uk/s62 sig{size}\n")
    }

    #[test]
    fn each_checkpoint_gets_its_own_file_and_the_latest_follows_the_newest() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pubdir = dir.path().join("published");
        publish_checkpoint(&pubdir, 3, &note(3, "AAA=")).expect("first");
        publish_checkpoint(&pubdir, 7, &note(7, "BBB=")).expect("second");

        let read = |p: PathBuf| fs::read_to_string(p).expect("read");
        assert_eq!(read(checkpoint_path(&pubdir, 3)), note(3, "AAA="));
        assert_eq!(read(checkpoint_path(&pubdir, 7)), note(7, "BBB="));
        assert_eq!(read(pubdir.join(LATEST)), note(7, "BBB="));
        let mut names: Vec<String> = fs::read_dir(&pubdir)
            .expect("list")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            ["checkpoint", "checkpoint.3", "checkpoint.7"],
            "no temp files are left behind"
        );
    }

    #[test]
    fn republishing_the_same_note_is_harmless() {
        let dir = tempfile::tempdir().expect("tempdir");
        publish_checkpoint(dir.path(), 5, &note(5, "CCC=")).expect("first");
        publish_checkpoint(dir.path(), 5, &note(5, "CCC=")).expect("same again");
        assert_eq!(
            fs::read_to_string(dir.path().join(LATEST)).expect("read"),
            note(5, "CCC=")
        );
    }

    #[test]
    fn a_second_different_checkpoint_for_a_published_size_is_refused_and_the_first_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        publish_checkpoint(dir.path(), 5, &note(5, "CCC=")).expect("first");
        let err = publish_checkpoint(dir.path(), 5, &note(5, "DDD=")).expect_err("a fork");
        assert_eq!(err.kind(), ErrorKind::AlreadyExists);
        assert!(err.to_string().contains("forked"), "{err}");
        assert_eq!(
            fs::read_to_string(checkpoint_path(dir.path(), 5)).expect("read"),
            note(5, "CCC=")
        );
        assert_eq!(
            fs::read_to_string(dir.path().join(LATEST)).expect("read"),
            note(5, "CCC=")
        );
    }

    #[test]
    fn the_latest_file_never_moves_back_to_a_smaller_tree() {
        let dir = tempfile::tempdir().expect("tempdir");
        publish_checkpoint(dir.path(), 9, &note(9, "EEE=")).expect("newer");
        let err = publish_checkpoint(dir.path(), 4, &note(4, "FFF=")).expect_err("rollback");
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        assert_eq!(
            fs::read_to_string(dir.path().join(LATEST)).expect("read"),
            note(9, "EEE=")
        );
        // The smaller checkpoint is still kept under its own name.
        assert_eq!(
            fs::read_to_string(checkpoint_path(dir.path(), 4)).expect("read"),
            note(4, "FFF=")
        );
    }
}
