//! The index of a downstream in the fleet, the one type that the fleet, the retry plan and the
//! strategies share. It lives below all three so that none of them imports another for it.

/// Index of a downstream in the fleet, `0..fleet_len`.
pub type ArmId = usize;
