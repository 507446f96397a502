//! The one place the engine gets its atomics from.
//!
//! Normally these are `std`'s atomics; under `--cfg loom` they are loom's, so the slot-pair code
//! that ships is the very code the loom models in `slot::loom_models` check.

#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicU32, AtomicU64, Ordering};
