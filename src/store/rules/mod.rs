//! The decisions every backend makes the same way, as plain functions over
//! plain data, tested once: a backend reads, asks a rule what to do, and
//! writes what it says.
//!
//! - [`clock`]: the ledger clock (an org's entry times never go back);
//! - [`members`]: a member call's plan (new, re-added or redundant PIDs,
//!   leavers, the ledger entries in the caller's order);
//! - [`deaths`]: where an upserted death record goes in the feed, and
//!   where the next poll of a segment's death signals starts;
//! - [`keys`]: the idempotency-key record a keyed write leaves.

pub(crate) mod clock;
pub(crate) mod deaths;
pub(crate) mod keys;
pub(crate) mod members;
