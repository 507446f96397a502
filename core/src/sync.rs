//! The one place the engine gets its atomics and shared cells from.
//!
//! Normally these are `std`'s, and `portable-atomic`'s `AtomicU128` for the slot pair's cursor
//! word (std's is not stable); under `--cfg loom` they are loom's, so the slot-pair code and the
//! event ring that ship are the very code the loom models in `slot::loom_models` and
//! `events::ring::loom_models` check.
//!
//! Loom has no 128-bit atomic. Under loom, [`AtomicU128`] is a loom mutex around the value: every
//! operation is atomic and every interleaving of them is explored, but each one synchronizes
//! like a lock, so the loom models check the cursor's atomicity and the orderings of every other
//! location (limits, key ids, marks), not the orderings chosen for the cursor itself. Those are
//! argued at each call site.

#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{fence, AtomicU32, AtomicU64, AtomicUsize, Ordering};

#[cfg(not(loom))]
pub(crate) use portable_atomic::AtomicU128;

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{fence, AtomicU32, AtomicU64, AtomicUsize, Ordering};

#[cfg(loom)]
pub(crate) use loom::cell::UnsafeCell;

/// `std`'s `UnsafeCell` behind loom's closure API, so code using it runs unchanged under loom,
/// which then checks every access for data races.
#[cfg(not(loom))]
pub(crate) struct UnsafeCell<T>(std::cell::UnsafeCell<T>);

#[cfg(not(loom))]
impl<T> UnsafeCell<T> {
    /// A cell holding `value`.
    pub(crate) const fn new(value: T) -> UnsafeCell<T> {
        UnsafeCell(std::cell::UnsafeCell::new(value))
    }

    /// Runs `f` with a pointer for reading the contents.
    #[inline]
    pub(crate) fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
        f(self.0.get())
    }

    /// Runs `f` with a pointer for writing the contents.
    #[inline]
    pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
        f(self.0.get())
    }
}

/// A 128-bit atomic for loom models: a loom mutex around the value (see the module doc).
#[cfg(loom)]
pub(crate) struct AtomicU128(loom::sync::Mutex<u128>);

#[cfg(loom)]
impl AtomicU128 {
    #[cfg(test)]
    pub(crate) fn new(value: u128) -> AtomicU128 {
        AtomicU128(loom::sync::Mutex::new(value))
    }

    pub(crate) fn is_lock_free() -> bool {
        true
    }

    pub(crate) fn load(&self, _: Ordering) -> u128 {
        *self.0.lock().unwrap()
    }

    pub(crate) fn store(&self, value: u128, _: Ordering) {
        *self.0.lock().unwrap() = value;
    }

    pub(crate) fn compare_exchange(
        &self,
        current: u128,
        new: u128,
        _: Ordering,
        _: Ordering,
    ) -> Result<u128, u128> {
        let mut value = self.0.lock().unwrap();
        if *value == current {
            *value = new;
            Ok(current)
        } else {
            Err(*value)
        }
    }

    pub(crate) fn compare_exchange_weak(
        &self,
        current: u128,
        new: u128,
        success: Ordering,
        failure: Ordering,
    ) -> Result<u128, u128> {
        self.compare_exchange(current, new, success, failure)
    }
}

/// Lets the thread this one waits for run (cold paths only, see `slot::PairRecord`): a few spin
/// rounds, then the scheduler.
#[cfg(not(loom))]
pub(crate) fn wait_turn(round: u32) {
    if round < 64 {
        std::hint::spin_loop();
    } else {
        std::thread::yield_now();
    }
}

/// Under loom, every wait yields, so the model runs the thread waited for.
#[cfg(loom)]
pub(crate) fn wait_turn(_: u32) {
    loom::thread::yield_now();
}
