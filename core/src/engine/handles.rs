//! [`ProjectHandle`]: a project's data-volume pair, looked up once, for the hot path.

use std::marker::PhantomData;
use std::ptr::NonNull;

use super::*;
use crate::slot::LeaseSlot;

/// A handle on one project's data-volume pair, looked up once, for the hot path: no hashing,
/// no strings, no locks. `Clone` is cheap; valid while any clone of its [`Engine`] lives.
#[derive(Clone)]
pub struct ProjectHandle {
    pub(super) record: Mapped<PairRecord>,
    pub(super) index: u32,
    pub(super) clock: Clock,
    pub(super) name: Arc<str>,
    pub(super) inner: Arc<Inner>,
}

impl ProjectHandle {
    /// The project's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    #[inline]
    pub(super) fn pair(&self) -> &PairRecord {
        self.record.get()
    }

    /// Grants `bytes` in full or refuses with nothing charged (`Exhausted`, `Expired`,
    /// `NoActiveKey`, in fleet mode `Unavailable`). Lock-free, no syscall, no allocation. A
    /// request of 0 bytes is a probe: granted exactly when a valid key still has capacity.
    #[inline]
    pub fn consume(&self, bytes: u64) -> Result<(), Refusal> {
        self.pair()
            .grant(bytes, Mode::AllOrNothing, self.clock.now(), self)
            .map(drop)
            .map_err(|r| self.inner.refusal(r))
    }

    /// Grants as much of `bytes` as remains and returns it; refuses only when nothing remains.
    #[inline]
    pub fn consume_partial(&self, bytes: u64) -> Result<u64, Refusal> {
        self.pair()
            .grant(bytes, Mode::Partial, self.clock.now(), self)
            .map_err(|r| self.inner.refusal(r))
    }

    /// Grants each amount in order, all or nothing each, stopping at the first refusal; the
    /// granted prefix is charged in one atomic step. Returns how many were granted, with the
    /// refusal of the first that was not.
    #[inline]
    pub fn consume_many(&self, amounts: &[u64]) -> (usize, Result<(), Refusal>) {
        let (granted, result) = self.pair().grant_many(amounts, self.clock.now(), self);
        (granted, result.map_err(|r| self.inner.refusal(r)))
    }

    /// The pair's current usage.
    pub fn usage(&self) -> Usage {
        Usage::from(&self.pair().state())
    }
}

impl ProjectHandle {
    /// A handle on the same project for the calling thread, with its own **lease slot**: a
    /// block taken from the pair with one CAS, from which this handle grants with a load and a
    /// store, sharing no cache line with other threads. Blocks adapt (see
    /// [`ThreadProject`]); closing (dropping) the handle gives back what its block has left.
    /// A slot lives in `slots.tgs` beside the state, so a killed process's block is given
    /// back by the next engine that opens the state. Refused with `SlotsFull` when 4,096 thread
    /// handles are open.
    pub fn for_thread(&self) -> Result<ThreadProject> {
        let state = &self.inner.state;
        let index = self.inner.slots.claim(self.index, self.inner.me, state)?;
        let slot = self.inner.slots.slot(index);
        // SAFETY: `slot` is in the mapping that `self.inner.slots` keeps mapped for as long as
        // it lives; a slot is aligned, in bounds (`slot` checked the index) and all atomics.
        let slot = unsafe { Mapped::new(NonNull::from(slot), self.inner.slots.clone()) };
        Ok(ThreadProject {
            project: self.clone(),
            slot,
            index,
            _one_thread: PhantomData,
        })
    }
}

/// A project handle for one thread at a time, with its own lease slot (see
/// [`ProjectHandle::for_thread`]). `Send` but not `Sync`: the slot has one writer.
///
/// Its grants are the pair's: charged when its block is taken (one grant of the pair, split
/// across the Active limit and switching exactly as any grant), and what the block has left
/// when it is given back is returned uncharged, once. A block is at least 64 KiB (or one
/// request), at most 64 MiB, and at most 1/64 of what the pair and its key's account have left,
/// so when a request is refused the other live slots of the pair hold at most a minimum block
/// each beyond 1/64 of what was left at their last take. A block stops granting at its key's
/// expiry (the pair then switches or refuses as it would).
pub struct ThreadProject {
    project: ProjectHandle,
    slot: Mapped<LeaseSlot>,
    index: u32,
    _one_thread: PhantomData<std::cell::Cell<()>>,
}

impl ThreadProject {
    /// Grants `bytes` in full or refuses with nothing charged, as [`ProjectHandle::consume`].
    /// Within a block: two loads of this thread's own cache line and a store.
    #[inline]
    pub fn consume(&self, bytes: u64) -> Result<(), Refusal> {
        let now = self.project.clock.now();
        if self.slot.get().spend(bytes, now) {
            return Ok(());
        }
        self.grant(bytes, Mode::AllOrNothing, now).map(drop)
    }

    /// Grants `bytes` only if this handle's block holds them and its keys may grant now; does
    /// nothing and returns `false` otherwise (then call [`Self::consume`]). Two loads and a
    /// store; cannot panic. For bindings that keep this path outside their panic boundary.
    #[inline]
    pub fn consume_from_block(&self, bytes: u64) -> bool {
        self.slot.get().spend(bytes, self.project.clock.now())
    }

    /// Grants as much of `bytes` as remains, as [`ProjectHandle::consume_partial`].
    #[inline]
    pub fn consume_partial(&self, bytes: u64) -> Result<u64, Refusal> {
        let now = self.project.clock.now();
        if self.slot.get().spend(bytes, now) {
            return Ok(bytes);
        }
        self.grant(bytes, Mode::Partial, now)
    }

    #[cold]
    #[inline(never)]
    fn grant(&self, bytes: u64, mode: Mode, now: u32) -> Result<u64, Refusal> {
        self.slot
            .get()
            .grant(self.project.pair(), bytes, mode, now, &self.project)
            .map_err(|r| self.project.inner.refusal(r))
    }

    /// What this handle's block has left (granted by the pair, not yet by this handle).
    pub fn room(&self) -> u64 {
        self.slot.get().room()
    }

    /// The three words [`Self::consume_from_block`] reads and writes: what the block has left,
    /// the second from which it may not be granted from, and the engine's coarse clock. For
    /// bindings that inline that path in their callers (C `tollgate_inline.h`): they must keep
    /// to its orderings (Relaxed loads, a Release store of the room) and to one thread.
    #[cfg(not(loom))]
    pub fn block_words(
        &self,
    ) -> (
        &std::sync::atomic::AtomicU64,
        &std::sync::atomic::AtomicU32,
        &std::sync::atomic::AtomicU32,
    ) {
        let (room, valid_until) = self.slot.get().block_words();
        (room, valid_until, self.project.clock.latest_word())
    }

    /// The project handle this thread handle grants for.
    pub fn project(&self) -> &ProjectHandle {
        &self.project
    }
}

impl Drop for ThreadProject {
    fn drop(&mut self) {
        let inner = &self.project.inner;
        inner.slots.free(self.index, self.project.pair());
    }
}

impl PairEvents for ProjectHandle {
    #[inline]
    fn emit(&self, event: PairEvent) {
        self.inner.hot_events.push(self.index, event);
    }
}

impl Accounts for ProjectHandle {
    #[inline]
    fn account(&self, id: u32) -> Option<&AccountRecord> {
        self.inner.state.account(id)
    }
}

/// The record at `index` of the state file, for a hot-path handle to hold.
pub(super) fn mapped_record(state: &Arc<StateFile>, index: u32) -> Mapped<PairRecord> {
    // SAFETY: `record_ptr` asserts `index` is in range and returns an aligned pointer into the
    // mapping that `state` owns for as long as it lives; a record is all atomics.
    unsafe { Mapped::new(state.record_ptr(index), state.clone()) }
}
