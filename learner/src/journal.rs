//! Embedded mode's state log: nothing acknowledged is lost.
//!
//! With `--state-file` in embedded mode, every accepted batch goes through one writer thread
//! before it is answered: the writer appends the records (one JSON line each, with its offset)
//! to the current segment of the state log, `fdatasync`s it, and only then applies them to the
//! state and lets the handlers answer 200. **Group commit**: the writer takes every batch that
//! queued up while it was syncing and makes them durable with one sync, so the cost of a sync
//! is shared by all the requests in flight (measured in README).
//!
//! Every commit interval (and at shutdown, after the last queued batch) the writer starts a new
//! segment, writes the checkpoint (which holds the next offset), and deletes the segments the
//! checkpoint covers. At start, the checkpoint is loaded and the segments replayed, skipping
//! every offset the checkpoint already holds, so a crash at any point neither loses an
//! acknowledged record nor counts one twice; a torn last line (a batch whose sync never
//! finished, so never answered) is skipped. Segments: `<state-file>.log.<first offset>`.
//!
//! A batch the writer cannot make durable (a write or sync failed, or the learner is
//! stopping) is not learned and is answered with a per-record error (v2 `error_code` 50002,
//! v3 500), so the router may post it again.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use magnetar_core::telemetry::TelemetryRecord;
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;
use tracing::{info, warn};

use crate::checkpoint::write_checkpoint;
use crate::clock::now_ms;
use crate::metrics::Counters;
use crate::shared::SharedLearner;
use crate::state::Applied;

/// Most batches made durable by one sync (bounds the writer's buffer).
pub const MAX_GROUP: usize = 1024;

/// One line of the state log.
#[derive(Serialize, Deserialize)]
struct Line<R> {
    offset: i64,
    record: R,
}

type Reply = oneshot::Sender<(i64, Vec<Applied>)>;

/// A batch on its way to the writer, each record already encoded as JSON by the handler (on the
/// async threads, in parallel), so the one writer thread only copies bytes, syncs and applies.
struct Batch {
    records: Vec<TelemetryRecord>,
    encoded: Vec<Vec<u8>>,
    reply: Reply,
}

enum Message {
    Batch(Batch),
    Stop,
}

/// Handle to the writer thread.
pub struct Journal {
    tx: Mutex<Sender<Message>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Journal")
    }
}

/// Appends the line `Line { offset, record }` serializes to, from the record's own JSON.
fn push_line(buffer: &mut Vec<u8>, offset: i64, record: &[u8]) {
    buffer.extend_from_slice(b"{\"offset\":");
    buffer.extend_from_slice(offset.to_string().as_bytes());
    buffer.extend_from_slice(b",\"record\":");
    buffer.extend_from_slice(record);
    buffer.extend_from_slice(b"}\n");
}

fn segments(state_file: &Path) -> std::io::Result<Vec<(i64, PathBuf)>> {
    let dir = state_file.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let prefix =
        format!("{}.log.", state_file.file_name().map(|n| n.to_string_lossy()).unwrap_or_default());
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(first) = name.strip_prefix(&prefix).and_then(|n| n.parse::<i64>().ok()) {
            found.push((first, entry.path()));
        }
    }
    found.sort();
    Ok(found)
}

fn segment_path(state_file: &Path, first: i64) -> PathBuf {
    let mut name = state_file.as_os_str().to_owned();
    name.push(format!(".log.{first:020}"));
    PathBuf::from(name)
}

fn sync_dir(state_file: &Path) -> std::io::Result<()> {
    let dir = state_file.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    File::open(dir)?.sync_all()
}

/// Deletes the state log (`--reset-state`: the state starts empty, so must its log).
pub fn discard(state_file: &Path) -> std::io::Result<()> {
    for (_, path) in segments(state_file)? {
        std::fs::remove_file(path)?;
    }
    Ok(())
}

/// Replays the state log into `learner` (records past its checkpoint); returns how many.
pub fn replay(state_file: &Path, learner: &SharedLearner) -> std::io::Result<u64> {
    let mut replayed = 0u64;
    for (_, path) in segments(state_file)? {
        let mut lines = Vec::new();
        for (n, line) in BufReader::new(File::open(&path)?).lines().enumerate() {
            let line = line?;
            match serde_json::from_str::<Line<TelemetryRecord>>(&line) {
                Ok(l) => lines.push(l),
                Err(e) => {
                    warn!(path = %path.display(), line = n + 1, error = %e, "skipping a torn state log line");
                }
            }
        }
        let applied = learner.apply_logged(lines.iter().map(|l| (l.offset, &l.record)), now_ms());
        replayed += applied.len() as u64;
    }
    Ok(replayed)
}

impl Journal {
    /// Starts the writer for `state_file` (after [`replay`]; `covered` is the next offset the
    /// state file held before it); it checkpoints every `interval`.
    pub fn start(
        state_file: PathBuf,
        learner: SharedLearner,
        counters: Arc<Counters>,
        interval: Duration,
        covered: i64,
    ) -> std::io::Result<Journal> {
        let (tx, rx) = channel();
        let writer = Writer::open(state_file, learner, counters, interval, covered)?;
        let thread =
            std::thread::Builder::new().name("state-log".into()).spawn(move || writer.run(rx))?;
        Ok(Journal { tx: Mutex::new(tx), thread: Mutex::new(Some(thread)) })
    }

    /// Makes `records` durable and learns them; `None` when that could not be done.
    pub async fn append(&self, records: Vec<TelemetryRecord>) -> Option<(i64, Vec<Applied>)> {
        let (reply, answer) = oneshot::channel();
        // Serializing a validated record cannot fail (finite numbers, string keys).
        let encoded = records.iter().map(|r| serde_json::to_vec(r).unwrap_or_default()).collect();
        let batch = Batch { records, encoded, reply };
        let sent =
            self.tx.lock().unwrap_or_else(PoisonError::into_inner).send(Message::Batch(batch));
        sent.ok()?;
        answer.await.ok()
    }

    /// Writes what is queued, checkpoints, and stops the writer (blocks until it has).
    pub fn stop(&self) {
        let _ = self.tx.lock().unwrap_or_else(PoisonError::into_inner).send(Message::Stop);
        let thread = self.thread.lock().unwrap_or_else(PoisonError::into_inner).take();
        if let Some(thread) = thread {
            if thread.join().is_err() {
                warn!("the state log writer panicked");
            }
        }
    }
}

struct Writer {
    state_file: PathBuf,
    learner: SharedLearner,
    counters: Arc<Counters>,
    interval: Duration,
    segment: File,
    next: i64,
    saved_version: u64,
    /// The next offset the state file holds: below `next`, the log holds what it does not.
    covered: i64,
    buffer: Vec<u8>,
}

impl Writer {
    fn open(
        state_file: PathBuf,
        learner: SharedLearner,
        counters: Arc<Counters>,
        interval: Duration,
        covered: i64,
    ) -> std::io::Result<Writer> {
        let next = learner.next_offset();
        let segment = Self::new_segment(&state_file, next)?;
        let saved_version = learner.version();
        Ok(Writer {
            state_file,
            learner,
            counters,
            interval,
            segment,
            next,
            saved_version,
            covered,
            buffer: Vec::new(),
        })
    }

    fn new_segment(state_file: &Path, first: i64) -> std::io::Result<File> {
        let file =
            OpenOptions::new().create(true).append(true).open(segment_path(state_file, first))?;
        sync_dir(state_file)?;
        Ok(file)
    }

    fn run(mut self, rx: Receiver<Message>) {
        let mut last_checkpoint = Instant::now();
        let mut stopping = false;
        while !stopping {
            let wait = self.interval.saturating_sub(last_checkpoint.elapsed());
            let mut group = Vec::new();
            match rx.recv_timeout(wait) {
                Ok(Message::Batch(batch)) => group.push(batch),
                Ok(Message::Stop) | Err(RecvTimeoutError::Disconnected) => stopping = true,
                Err(RecvTimeoutError::Timeout) => {}
            }
            while !stopping && !group.is_empty() && group.len() < MAX_GROUP {
                match rx.try_recv() {
                    Ok(Message::Batch(batch)) => group.push(batch),
                    Ok(Message::Stop) => stopping = true,
                    Err(_) => break,
                }
            }
            if !group.is_empty() {
                self.commit(group);
            }
            if stopping || last_checkpoint.elapsed() >= self.interval {
                self.checkpoint();
                last_checkpoint = Instant::now();
            }
        }
        // Batches sent after Stop get no answer: their handlers report them not stored.
        info!("state log closed");
    }

    /// Appends, syncs, applies and answers one group of batches.
    fn commit(&mut self, group: Vec<Batch>) {
        self.buffer.clear();
        let mut offset = self.next;
        for batch in &group {
            for record in &batch.encoded {
                push_line(&mut self.buffer, offset, record);
                offset += 1;
            }
        }
        let written = self.segment.write_all(&self.buffer).and_then(|()| self.segment.sync_data());
        if let Err(e) = written {
            self.counters.journal_failures.fetch_add(1, Ordering::Relaxed);
            warn!(error = %e, "state log write failed; the batches are answered as not stored");
            // The segment may end in a partial line: continue in a fresh one.
            match Self::new_segment(&self.state_file, self.next) {
                Ok(segment) => self.segment = segment,
                Err(e) => warn!(error = %e, "cannot open a new state log segment"),
            }
            return;
        }
        self.counters.journal_syncs.fetch_add(1, Ordering::Relaxed);
        let now = now_ms();
        for Batch { records, reply, .. } in group {
            let first = self.next;
            self.next += records.len() as i64;
            let applied = self
                .learner
                .apply_logged(records.iter().enumerate().map(|(i, r)| (first + i as i64, r)), now);
            let _ = reply.send((first, applied));
        }
    }

    /// New segment, checkpoint, then the covered segments go.
    fn checkpoint(&mut self) {
        let version = self.learner.version();
        if version == self.saved_version && self.next == self.covered {
            return;
        }
        match Self::new_segment(&self.state_file, self.next) {
            Ok(segment) => self.segment = segment,
            Err(e) => {
                warn!(error = %e, "cannot open a new state log segment; checkpoint postponed");
                return;
            }
        }
        if !write_checkpoint(&self.state_file, &self.learner, &self.counters, None) {
            return;
        }
        self.saved_version = version;
        self.covered = self.next;
        match segments(&self.state_file) {
            Ok(all) => {
                for (first, path) in all.into_iter().filter(|(first, _)| *first < self.next) {
                    if let Err(e) = std::fs::remove_file(&path) {
                        warn!(first, error = %e, "cannot remove a covered state log segment");
                    }
                }
            }
            Err(e) => warn!(error = %e, "cannot list the state log segments"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_built_from_the_encoded_record_is_the_one_serde_writes_and_reads() {
        let record = crate::ingest::tests::record("line");
        let mut built = Vec::new();
        push_line(&mut built, 12_345, &serde_json::to_vec(&record).unwrap());
        let mut expected = serde_json::to_vec(&Line { offset: 12_345, record: &record }).unwrap();
        expected.push(b'\n');
        assert_eq!(String::from_utf8(built.clone()).unwrap(), String::from_utf8(expected).unwrap());
        let back: Line<TelemetryRecord> = serde_json::from_slice(&built).unwrap();
        assert_eq!((back.offset, back.record.request_id), (12_345, record.request_id));
    }
}
