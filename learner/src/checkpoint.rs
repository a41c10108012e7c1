//! The state file: the learned state written atomically (temporary file, fsync, rename), so a
//! crash leaves either the previous checkpoint or the new one, never a torn file.
//!
//! In Kafka mode the consumer writes the checkpoint *before* it commits the offsets of the records
//! inside it, and the checkpoint holds those offsets. After a crash the learner reloads the
//! checkpoint and, when its partitions are assigned, resumes from the checkpoint's offsets, or
//! from the group's committed ones when another member went further; so however far commits
//! lagged behind (a broker refusing them while checkpoints went on), nothing the state holds is
//! read again. What is replayed is at most the few records applied while a checkpoint was being
//! copied, and their request ids (kept in the checkpoint) make them duplicates.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use tracing::warn;

use crate::metrics::Counters;
use crate::shared::SharedLearner;
use crate::state::{KafkaOffsets, SavedState};

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("state file {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error(
        "state file {path} is not a learner checkpoint: {detail} (start with --reset-state to \
         begin with an empty state; the file is replaced at the next checkpoint)"
    )]
    Format { path: PathBuf, detail: String },
    #[error("state file {path} not written: it would not read back ({detail})")]
    Unreadable { path: PathBuf, detail: String },
    #[error("state file {path} has format {got}, this learner reads {expected}")]
    Version { path: PathBuf, got: u32, expected: u32 },
}

/// Reads a checkpoint; `Ok(None)` when the file does not exist yet.
pub fn load(path: &Path) -> Result<Option<SavedState>, CheckpointError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(CheckpointError::Io { path: path.to_owned(), source }),
    };
    let saved = parse(&bytes)
        .map_err(|detail| CheckpointError::Format { path: path.to_owned(), detail })?;
    if saved.format != SavedState::FORMAT {
        return Err(CheckpointError::Version {
            path: path.to_owned(),
            got: saved.format,
            expected: SavedState::FORMAT,
        });
    }
    Ok(Some(saved))
}

/// Parses a checkpoint; the error names the field (`routes./s.downstreams.a.latency.sum_ms:
/// invalid type: null, expected f64`).
fn parse(bytes: &[u8]) -> Result<SavedState, String> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let saved: SavedState = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        if path == "." { e.inner().to_string() } else { format!("{path}: {}", e.inner()) }
    })?;
    de.end().map_err(|e| e.to_string())?;
    Ok(saved)
}

/// Writes a checkpoint atomically (temporary file, fsync, rename, fsync of the directory), and
/// only if its bytes read back as a checkpoint: JSON has no NaN or infinity (serde_json writes
/// `null`), so a state holding one must never replace a good file.
pub fn save(path: &Path, saved: &SavedState) -> Result<(), CheckpointError> {
    let io = |source| CheckpointError::Io { path: path.to_owned(), source };
    let bytes = serde_json::to_vec(saved).map_err(|e| CheckpointError::Unreadable {
        path: path.to_owned(),
        detail: e.to_string(),
    })?;
    parse(&bytes)
        .map_err(|detail| CheckpointError::Unreadable { path: path.to_owned(), detail })?;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut file = std::fs::File::create(&tmp).map_err(io)?;
    file.write_all(&bytes).map_err(io)?;
    file.sync_all().map_err(io)?;
    drop(file);
    std::fs::rename(&tmp, path).map_err(io)?;
    // The rename is durable once the directory entry is.
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io)?;
    Ok(())
}

/// Writes the learner's state file; false (logged, counted) when it could not. The state is
/// copied under the lock and serialized after it. In Kafka mode `kafka` holds the consumer
/// offsets the state covers (taken before the copy, so never ahead of it).
pub fn write_checkpoint(
    path: &Path,
    learner: &SharedLearner,
    counters: &Counters,
    kafka: Option<KafkaOffsets>,
) -> bool {
    let mut saved = learner.saved();
    saved.kafka = kafka;
    match save(path, &saved) {
        Ok(()) => {
            counters.checkpoints.fetch_add(1, Ordering::Relaxed);
            true
        }
        Err(e) => {
            counters.checkpoint_failures.fetch_add(1, Ordering::Relaxed);
            warn!(error = %e, "checkpoint failed");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::LearnerState;
    use magnetar_core::posterior::Decay;

    #[test]
    fn missing_file_is_no_checkpoint_and_garbage_is_an_error() {
        let dir = std::env::temp_dir().join(format!("learner-ckpt-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("state.json");
        let _ = std::fs::remove_file(&path);
        assert!(load(&path).unwrap().is_none());
        let state = LearnerState::new(Decay::default(), 10);
        save(&path, &state.to_saved()).unwrap();
        assert_eq!(load(&path).unwrap().unwrap().version, 0);
        std::fs::write(&path, b"{\"format\": 1").unwrap();
        let err = load(&path).unwrap_err();
        assert!(err.to_string().contains("not a learner checkpoint"), "{err}");
        assert!(err.to_string().contains("--reset-state"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_state_that_would_not_read_back_is_not_written_and_a_bad_field_is_named() {
        let dir = std::env::temp_dir().join(format!("learner-ckpt-nan-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("state.json");
        let mut state = LearnerState::new(Decay::default(), 10);
        let mut r = crate::ingest::tests::record("x");
        state.apply(&r, 2_000);
        save(&path, &state.to_saved()).unwrap();
        let good = std::fs::read(&path).unwrap();
        // A latency no parser lets in, applied behind its back: the sum becomes infinite.
        r.request_id = "y".into();
        r.attempts[0].latency_ms = f64::MAX;
        state.apply(&r, 2_000);
        r.request_id = "z".into();
        state.apply(&r, 2_000);
        let err = save(&path, &state.to_saved()).unwrap_err();
        assert!(err.to_string().contains("would not read back"), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), good, "the good file was replaced");
        // A file written so by an older learner names the field.
        let text =
            String::from_utf8(good).unwrap().replacen("\"sum_ms\":10.0", "\"sum_ms\":null", 1);
        std::fs::write(&path, text).unwrap();
        let err = load(&path).unwrap_err().to_string();
        assert!(err.contains("latency.sum_ms: invalid type: null"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
