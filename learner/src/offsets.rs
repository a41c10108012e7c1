//! Which consumer offsets may be committed, per partition: sans-io bookkeeping for
//! [`crate::kafka`].
//!
//! Three offsets per partition, each the *next* offset to read:
//!
//! - `applied`: after the last record applied to the state;
//! - `covered`: what the last state file holds (equal to `applied` without a state file);
//! - `confirmed`: what the broker acknowledged as committed.
//!
//! Only `covered` offsets are committed, so a commit never gets ahead of the state file; and
//! every `covered` offset the broker has not confirmed is offered again at the next commit,
//! so a commit that fails (or whose answer never comes) is retried even when its partition has
//! gone quiet. Re-committing an offset is idempotent. Revoked partitions are forgotten, so a
//! stale offset never overwrites the commit of the partition's new owner.

use std::collections::BTreeMap;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommitLedger {
    applied: BTreeMap<i32, i64>,
    covered: BTreeMap<i32, i64>,
    confirmed: BTreeMap<i32, i64>,
}

impl CommitLedger {
    /// The record before `next_offset` on `partition` is applied to the state.
    pub fn applied(&mut self, partition: i32, next_offset: i64) {
        self.applied.insert(partition, next_offset);
    }

    /// Applied offsets, to snapshot before writing a state file.
    pub fn applied_offsets(&self) -> &BTreeMap<i32, i64> {
        &self.applied
    }

    /// Whether records were applied since the last state file (or since the last
    /// [`cover`](Self::cover)).
    pub fn needs_checkpoint(&self) -> bool {
        self.applied != self.covered
    }

    /// A state file holding everything up to `snapshot` is written (or there is no state file
    /// and `snapshot` is what was applied). Partitions revoked meanwhile stay forgotten.
    pub fn cover(&mut self, snapshot: &BTreeMap<i32, i64>) {
        for (partition, offset) in snapshot {
            if self.applied.contains_key(partition) {
                self.covered.insert(*partition, *offset);
            }
        }
    }

    /// Offsets to commit: covered and not yet confirmed at that value.
    pub fn to_commit(&self) -> BTreeMap<i32, i64> {
        self.covered
            .iter()
            .filter(|(p, o)| self.confirmed.get(p) != Some(o))
            .map(|(p, o)| (*p, *o))
            .collect()
    }

    /// The broker acknowledged `offset` as committed for `partition`. Ignored for a partition
    /// no longer owned.
    pub fn confirm(&mut self, partition: i32, offset: i64) {
        if self.applied.contains_key(&partition) {
            self.confirmed.insert(partition, offset);
        }
    }

    /// Confirmed offsets (for `/stats`).
    pub fn confirmed(&self) -> &BTreeMap<i32, i64> {
        &self.confirmed
    }

    /// Forgets `partitions` (revoked in a rebalance).
    pub fn revoke(&mut self, partitions: &[i32]) {
        for p in partitions {
            self.applied.remove(p);
            self.covered.remove(p);
            self.confirmed.remove(p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offsets(pairs: &[(i32, i64)]) -> BTreeMap<i32, i64> {
        pairs.iter().copied().collect()
    }

    #[test]
    fn only_covered_offsets_are_committed() {
        let mut l = CommitLedger::default();
        l.applied(0, 10);
        l.applied(1, 5);
        assert!(l.needs_checkpoint());
        assert!(l.to_commit().is_empty(), "nothing is covered by a state file yet");
        let snapshot = l.applied_offsets().clone();
        l.applied(0, 12); // applied while the state file was being written
        l.cover(&snapshot);
        assert_eq!(l.to_commit(), offsets(&[(0, 10), (1, 5)]));
        assert!(l.needs_checkpoint(), "offset 12 is not in the state file yet");
    }

    #[test]
    fn a_commit_that_is_never_confirmed_is_offered_again() {
        let mut l = CommitLedger::default();
        l.applied(0, 10);
        l.applied(1, 5);
        l.cover(&l.applied_offsets().clone());
        // Commit issued for both; only partition 1 is acknowledged (partition 0 failed later).
        l.confirm(1, 5);
        // Partition 0 goes quiet: no new record, yet it is still offered.
        assert_eq!(l.to_commit(), offsets(&[(0, 10)]));
        l.confirm(0, 10);
        assert!(l.to_commit().is_empty());
        assert_eq!(l.confirmed(), &offsets(&[(0, 10), (1, 5)]));
        // New records make the partition due again.
        l.applied(1, 9);
        l.cover(&l.applied_offsets().clone());
        assert_eq!(l.to_commit(), offsets(&[(1, 9)]));
        // A late acknowledgement of an older commit does not count as the new one.
        l.confirm(1, 5);
        assert_eq!(l.to_commit(), offsets(&[(1, 9)]));
    }

    #[test]
    fn revoked_partitions_are_forgotten() {
        let mut l = CommitLedger::default();
        l.applied(0, 10);
        l.applied(2, 3);
        let snapshot = l.applied_offsets().clone();
        l.revoke(&[2]);
        l.cover(&snapshot);
        l.confirm(2, 3);
        assert_eq!(l.to_commit(), offsets(&[(0, 10)]));
        assert!(!l.confirmed().contains_key(&2));
        assert!(!l.needs_checkpoint());
    }
}
