//! [`Mapped`]: a reference into one of the engine's shared mappings (the state file's records,
//! the seat-holder table), held by a hot-path handle. The one place that argues why a handle may
//! keep a raw pointer into a mapping, share it across threads, and dereference it.

use std::ptr::NonNull;
use std::sync::Arc;

/// A `T` inside a memory mapping that `owner` keeps alive, for as long as this lives.
pub(crate) struct Mapped<T> {
    ptr: NonNull<T>,
    /// Keeps the mapping `ptr` points into mapped.
    _owner: Arc<dyn Send + Sync>,
}

impl<T> Mapped<T> {
    /// A reference to `*ptr`, kept valid by `owner`.
    ///
    /// # Safety
    /// `ptr` must point into a mapping that `owner` keeps mapped for as long as `owner` lives,
    /// be aligned for `T` and in bounds, and the `T` there must be valid for any bit pattern and
    /// only ever accessed through shared references (a record of atomics).
    pub(crate) unsafe fn new(ptr: NonNull<T>, owner: Arc<dyn Send + Sync>) -> Mapped<T> {
        Mapped { ptr, _owner: owner }
    }

    /// The `T`.
    #[inline(always)]
    pub(crate) fn get(&self) -> &T {
        // SAFETY: `new`'s contract: the mapping outlives `self` (it holds `_owner`), the pointer
        // is in bounds and aligned, and the `T` is only shared.
        unsafe { self.ptr.as_ref() }
    }
}

impl<T> Clone for Mapped<T> {
    fn clone(&self) -> Mapped<T> {
        Mapped {
            ptr: self.ptr,
            _owner: Arc::clone(&self._owner),
        }
    }
}

// SAFETY: a `Mapped` only gives out `&T` (`get`), and the mapping lives as long as any clone of
// it; so sending one to another thread is sharing a `&T`, sound when `T: Sync` (a record of
// atomics).
unsafe impl<T: Sync> Send for Mapped<T> {}
// SAFETY: as above: `&Mapped<T>` gives only `&T`, which `T: Sync` lets threads share.
unsafe impl<T: Sync> Sync for Mapped<T> {}
