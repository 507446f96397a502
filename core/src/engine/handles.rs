//! [`ProjectHandle`]: a project's data-volume pair, looked up once, for the hot path.

use super::*;

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
