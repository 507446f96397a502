//! A handle's lease slot: a block of its pair's cursor held by one thread, which grants from it
//! with a load and a store (no read-modify-write, no shared cache line).
//!
//! A slot takes its block with one grant of the pair (one CAS on the cursor), so the block is
//! charged and refused exactly as any grant is; the take stops one byte short of the Active
//! key's end, so a block never switches the pair: the grant that needs the reserve does, and
//! the switch happens at the same byte as without slots. The slot then hands the block out to
//! its one thread; `room` is what is left. When the block is given back (its handle closes, its
//! key expired, or a reclaimer found its process dead), what is left returns to the cursor,
//! once, if the cursor is still in the generation and on the side the block was taken from.
//! Otherwise the generation or side it belonged to is over and that key's usage was settled
//! with the block in it: the block stays charged, unused (at most one block per live slot per
//! switch or admin change, and only if the handle closes before spending it).
//!
//! Blocks adapt: a slot's block doubles from [`MIN_BLOCK`] up to [`MAX_BLOCK`] while it keeps
//! using them, but is never more than 1/[`SHARE`] of what the pair's lease and its account have
//! left, so near the end every slot holds at most a minimum block (or one request).
//!
//! The record lives in the mapped slot table (`slots.tgs`), so a process killed at any instant
//! leaves its slot's `room` exactly as its last acknowledged grant stored it. The usage ratchet
//! reads the slots with the cursors (`returnable`), so a block given back is never taken for a
//! rollback.

use super::*;
use crate::sync::fence;

/// The smallest block a slot takes (more only when one request needs more). Two bytes under
/// loom, whose models meter keys of a few bytes.
#[cfg(not(loom))]
pub(crate) const MIN_BLOCK: u64 = 64 * 1024;
#[cfg(loom)]
pub(crate) const MIN_BLOCK: u64 = 2;

/// The largest block a slot takes.
pub(crate) const MAX_BLOCK: u64 = 64 << 20;

/// A block is at most this fraction of what the pair and its key's account have left.
pub(crate) const SHARE: u64 = 64;

/// One slot: 64 bytes, one cache line, all atomics (an all-zero record is a free slot). The
/// first four fields are the slot table's (who owns the slot); the rest are written only by the
/// owning thread, or by a reclaimer once the owner's process is gone.
#[repr(C, align(64))]
pub(crate) struct LeaseSlot {
    /// The owning process's pid (0: free).
    pub(crate) pid: AtomicU32,
    /// The pair's record index plus one (0 while being claimed).
    pub(crate) record: AtomicU32,
    /// The owning process's start time (clock ticks since boot).
    pub(crate) start: AtomicU64,
    /// The high half of the cursor word the block's CAS installed: its epoch and side (0: no
    /// block).
    tag: AtomicU64,
    /// What of the block is left to grant.
    room: AtomicU64,
    /// The size asked for by the last block take (the next doubles it): while a take is under
    /// way, the most it can move the cursor.
    size: AtomicU64,
    _spare: [AtomicU64; 2],
    /// The block may be granted from while the coarse clock is below this Unix second.
    valid_until: AtomicU32,
    /// Odd while the owner moves the cursor for this slot (taking a block, or giving one back)
    /// and has not yet recorded it here; see [`LeaseSlot::returnable`].
    seq: AtomicU32,
}

#[cfg(not(loom))]
const _: () = assert!(std::mem::size_of::<LeaseSlot>() == 64);

impl LeaseSlot {
    /// A free slot (for tests and loom models; the table's records start zeroed).
    #[cfg(test)]
    pub(crate) fn new() -> LeaseSlot {
        LeaseSlot {
            pid: AtomicU32::new(0),
            record: AtomicU32::new(0),
            start: AtomicU64::new(0),
            tag: AtomicU64::new(0),
            room: AtomicU64::new(0),
            size: AtomicU64::new(0),
            _spare: [AtomicU64::new(0), AtomicU64::new(0)],
            valid_until: AtomicU32::new(0),
            seq: AtomicU32::new(0),
        }
    }

    /// Grants `want` bytes from the block if it holds them and they may still be granted at
    /// `now`. The hot path: two loads of this thread's own line and a store, no RMW.
    #[inline(always)]
    pub(crate) fn spend(&self, want: u64, now: u32) -> bool {
        // Relaxed (both loads): the owning thread is the only writer of `room` and
        // `valid_until` while its process lives, so it reads its own last stores.
        let room = self.room.load(Ordering::Relaxed);
        // `want - 1 < room` is `0 < want <= room` in one compare: a probe (0 bytes) takes the
        // slow path, which answers it from the pair as a grant would.
        if want.wrapping_sub(1) < room && now < self.valid_until.load(Ordering::Relaxed) {
            // Release: pairs with the Acquire load of a reclaimer, so with the block's other
            // fields (stored before `room` in `fill`) it reads a room no larger than this.
            self.room.store(room - want, Ordering::Release);
            return true;
        }
        false
    }

    /// The words `spend` uses: the room and the second the block stops at.
    #[cfg(not(loom))]
    pub(crate) fn block_words(&self) -> (&AtomicU64, &AtomicU32) {
        (&self.room, &self.valid_until)
    }

    /// What the block has left.
    pub(crate) fn room(&self) -> u64 {
        // Acquire: pairs with the Release stores of `room` (see `spend`).
        self.room.load(Ordering::Acquire)
    }

    /// The slow path of a grant through this slot: gives back a block whose keys may no longer
    /// be granted from, takes the next block when this one is spent, and grants what the block
    /// does not cover from the pair directly (one grant, so a request crossing the Active
    /// limit is split as any is).
    #[cold]
    #[inline(never)]
    pub(crate) fn grant(
        &self,
        pair: &PairRecord,
        want: u64,
        mode: Mode,
        now: u32,
        env: &(impl PairEvents + Accounts),
    ) -> Result<u64, Refusal> {
        // Relaxed: written only by this thread (see `spend`).
        if self.room() > 0 && now >= self.valid_until.load(Ordering::Relaxed) {
            self.give_back(pair);
        }
        if self.room() == 0 {
            self.fill(pair, want, now, env);
        }
        let room = self.room();
        if want == 0 && room > 0 {
            return Ok(0);
        }
        if want != 0 && want <= room {
            // Release: as in `spend`.
            self.room.store(room - want, Ordering::Release);
            return Ok(want);
        }
        let partial = mode == Mode::Partial && room > 0;
        match pair.grant(want - room, mode, now, env) {
            Ok(granted) => {
                // Release: as in `spend`.
                self.room.store(0, Ordering::Release);
                Ok(room + granted)
            }
            Err(_) if partial => {
                self.room.store(0, Ordering::Release);
                Ok(room)
            }
            Err(Refusal::Exhausted { remaining, .. }) => Err(Refusal::Exhausted {
                requested: want,
                remaining: remaining + room,
            }),
            Err(refusal) => Err(refusal),
        }
    }

    /// Takes the next block for a request of `want` bytes: as much of the adaptive size as the
    /// pair grants (at least `want` when it can). Takes nothing when the pair refuses; the
    /// caller's grant then meets that refusal itself.
    fn fill(&self, pair: &PairRecord, want: u64, now: u32, env: &(impl PairEvents + Accounts)) {
        // Relaxed: written only by this thread.
        let last = self.size.load(Ordering::Relaxed);
        let grown = if last == 0 {
            MIN_BLOCK
        } else {
            (last * 2).min(MAX_BLOCK)
        };
        let size = grown
            .min((pair.headroom(env) / SHARE).max(MIN_BLOCK))
            .max(want);
        // Relaxed: published by `begin`'s fence, with the odd sequence.
        self.size.store(size, Ordering::Relaxed);
        self.begin();
        let moved = pair.grant_moving::<true>(size, Mode::Partial, now, env);
        let Some(moved) = moved.ok().filter(|moved| moved.len > 0) else {
            self.end();
            return;
        };
        // A block never switches the pair (`grant_moving` stops it short of the Active key's
        // end), so it lies on one side: the one its word names.
        let valid_until = pair.valid_until(moved.to, now);
        // Relaxed (both): published by the Release store of `room` below.
        self.tag.store((moved.to >> 64) as u64, Ordering::Relaxed);
        self.valid_until.store(valid_until, Ordering::Relaxed);
        // Release: a reclaimer that Acquire-loads this room reads the fields stored above.
        self.room.store(moved.len, Ordering::Release);
        self.end();
    }

    /// Marks the start of a cursor move for this slot: the sequence turns odd before the move,
    /// so whoever reads the move's cursor word reads the odd sequence too.
    fn begin(&self) {
        // Relaxed: ordered before the cursor CAS by the fence.
        let seq = self.seq.load(Ordering::Relaxed);
        self.seq.store(seq | 1, Ordering::Relaxed);
        // Release: with the cursor CAS that follows (Relaxed), synchronizes with an Acquire
        // load of the cursor that reads the CAS's word (or a later one in its release
        // sequence): that reader then reads this odd sequence, or the even one `end` stores.
        fence(Ordering::Release);
    }

    /// Marks the end of a cursor move, after its result is stored here.
    fn end(&self) {
        // Relaxed load: this thread's own last store. Release store: a reader that sees the
        // even sequence sees the block's fields stored before it.
        let seq = self.seq.load(Ordering::Relaxed);
        self.seq.store((seq | 1).wrapping_add(1), Ordering::Release);
    }

    /// What this slot may take off its pair's cursor now, as the usage ratchet must not count
    /// it: what a block of the cursor's side (`tag`) has left, plus, while a move is
    /// under way, the most it can take. Read twice by the ratchet, around its read of the
    /// cursor; see `engine::ratchet`.
    pub(crate) fn returnable(&self) -> Returnable {
        // Acquire (both): pair with `end`'s and `spend`'s Release stores.
        let seq = self.seq.load(Ordering::Acquire);
        let room = self.room.load(Ordering::Acquire);
        // Relaxed (all): ordered by the Acquire loads above.
        let tag = self.tag.load(Ordering::Relaxed);
        let pending = if seq & 1 == 1 {
            self.size.load(Ordering::Relaxed)
        } else {
            0
        };
        Returnable {
            seq,
            tag,
            room,
            pending,
        }
    }

    /// Whether the owner was moving the cursor for this slot when its process died: what the
    /// move did is then unknown, and its block is not given back (lost rather than returned
    /// twice).
    pub(crate) fn mid_move(&self) -> bool {
        // Acquire: pairs with `end`'s Release store.
        self.seq.load(Ordering::Acquire) & 1 == 1
    }

    /// Gives what is left of the block back to the cursor, once, if the cursor is still in the
    /// generation and on the side the block was taken from, and empties the slot; returns what
    /// the cursor got back. A block of a generation or side that is over stays charged to its
    /// key unused: the key's usage was settled with it (at the switch, or by the admin change
    /// that ended the generation), so giving it to the account would leave the two apart.
    /// Called by the owning thread, or by a reclaimer that locked the slot of a process that is
    /// gone.
    pub(crate) fn give_back(&self, pair: &PairRecord) -> u64 {
        // Acquire: pairs with the Release stores of `room`, so the fields below are the block's.
        let room = self.room.load(Ordering::Acquire);
        // Relaxed (both): ordered by the Acquire load above.
        let tag = self.tag.load(Ordering::Relaxed);
        let mut returned = 0;
        if room > 0 && tag != 0 {
            // The room stays until the cursor has it back, so the ratchet never counts it as
            // granted; a process killed in between leaves the sequence odd, and a reclaimer
            // then gives nothing back (the room is lost rather than returned twice).
            self.begin();
            if pair.return_to_cursor(tag, room) {
                returned = room;
            }
            // Release: as in `spend`.
            self.room.store(0, Ordering::Release);
            self.end();
        }
        // A room is stored only after its tag (`fill`), so the room is 0 here either way.
        // Relaxed: `tag` is read after an Acquire load of `room`.
        self.tag.store(0, Ordering::Relaxed);
        returned
    }

    /// Empties a slot being handed to a new owner.
    pub(crate) fn reset(&self) {
        // Relaxed (all): published with the slot's claim (a Release store of `record`).
        self.size.store(0, Ordering::Relaxed);
        self.valid_until.store(0, Ordering::Relaxed);
        self.room.store(0, Ordering::Relaxed);
        self.tag.store(0, Ordering::Relaxed);
        self.seq.store(0, Ordering::Relaxed);
    }
}

/// What a slot may take off its pair's cursor, as [`LeaseSlot::returnable`] read it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Returnable {
    /// The slot's sequence (odd while its owner moves the cursor).
    pub seq: u32,
    /// The side and generation its block was taken in (the high half of a cursor word).
    pub tag: u64,
    /// What its block has left.
    pub room: u64,
    /// With a cursor move under way, the most that move can take (whatever the cursor).
    pub pending: u64,
}

impl Returnable {
    /// The most it may take off a cursor whose word's high half is `tag`.
    pub(crate) fn most_off(self, tag: u64) -> u64 {
        if self.tag == tag {
            self.room + self.pending
        } else {
            self.pending
        }
    }

    /// The least it surely holds of a cursor whose word's high half `tag` was read between
    /// `before` and `after`, two reads of the same slot: what its block has left if no cursor
    /// move began or ended between them (the sequence did not change and is even), else 0.
    pub(crate) fn surely_held(before: Returnable, after: Returnable, tag: u64) -> u64 {
        if before.seq == after.seq && after.seq & 1 == 0 && after.tag == tag {
            after.room
        } else {
            0
        }
    }
}

impl PairState {
    /// The high half of the cursor word this state was read from (its epoch and side), as a
    /// slot's `tag` names it.
    pub(crate) fn cursor_tag(&self) -> u64 {
        let reason = self.switch_reason;
        let word = Cursor {
            epoch: self.epoch,
            switched: reason.is_some(),
            exhausted: reason == Some(SwitchReason::Exhausted),
            offset: 0,
        }
        .pack();
        (word >> 64) as u64
    }
}

impl PairRecord {
    /// Gives `len` bytes of a block back to the cursor if it is still in the generation and on
    /// the side `tag` (the high half of a cursor word) names; `false` if it moved on.
    pub(crate) fn return_to_cursor(&self, tag: u64, len: u64) -> bool {
        // Acquire: as in `load_cursor`.
        let mut word = self.cursor.load(Ordering::Acquire);
        loop {
            if (word >> 64) as u64 != tag {
                return false;
            }
            // The block was counted in this generation's offset on this side, which returns
            // only ever lower by what was counted, so the offset holds `len`; a slot table
            // edited to claim more is given nothing.
            if offset_of(word) < len {
                return false;
            }
            // Relaxed on success: as a grant's CAS, the cursor is the only datum it publishes.
            // Acquire on failure: the retry compares the current word.
            match self.cursor.compare_exchange_weak(
                word,
                word - Word::from(len),
                Ordering::Relaxed,
                Ordering::Acquire,
            ) {
                Ok(_) => return true,
                Err(current) => word = current,
            }
        }
    }

    /// What the pair may still grant from the side it draws from now: its lease's room plus
    /// what the lease's account has not leased out. An estimate (no validation): it only sizes
    /// blocks.
    pub(crate) fn headroom(&self, env: &impl Accounts) -> u64 {
        // Acquire: as in `load_cursor`.
        let word = self.cursor.load(Ordering::Acquire);
        let side = if Cursor::unpack(word).switched {
            Side::Reserve
        } else {
            Side::Active
        };
        let slot = epoch_of(word) as usize & 1;
        let left = self.account_of(slot, side, env).map_or(0, |account| {
            account
                .ceiling(self.may_use_overage(slot, side))
                .saturating_sub(account.drawn())
        });
        self.room().saturating_add(left)
    }

    /// Until when (Unix seconds) a block taken by the CAS that installed `word` may be granted
    /// from: its key's expiry, or the next second when the key grants in its grace, so the pair
    /// judges the grace again. The next second too when the generation moved on before its
    /// expiries could be read whole: the take itself found the key valid at `now`.
    fn valid_until(&self, word: Word, now: u32) -> u32 {
        let limits = &self.limits[epoch_of(word) as usize & 1];
        // Acquire: as in `window`; validated by the reload below.
        let expiry = if Cursor::unpack(word).switched {
            limits.reserve_expiry.load(Ordering::Acquire)
        } else {
            limits.active_expiry.load(Ordering::Acquire)
        };
        if epoch_of(self.load_cursor()) != epoch_of(word) {
            return now.saturating_add(1);
        }
        if expiry > now {
            expiry
        } else {
            now.saturating_add(1)
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::super::testing::{accounts_field, live, TestAccounts};
    use super::*;
    use crate::clock::NEVER;

    #[derive(Default)]
    struct Env {
        accounts: TestAccounts,
    }

    accounts_field!(Env);

    impl PairEvents for Env {
        fn emit(&self, _: PairEvent) {}
    }

    fn pair(env: &Env, active: LiveKey, reserve: Option<LiveKey>) -> PairRecord {
        let record = PairRecord::new();
        let next = NextGen {
            active: Some(active),
            reserve,
            retired: None,
            switches: 0,
        };
        env.accounts.open_for(&next);
        record.publish::<()>(env, |_| Ok(next)).unwrap();
        record
    }

    #[test]
    fn spend_grants_only_from_a_live_block() {
        let env = Env::default();
        let record = pair(&env, live(1, 1 << 30, 100), None);
        let slot = LeaseSlot::new();
        assert!(!slot.spend(1, 0), "an empty slot");
        assert_eq!(slot.grant(&record, 10, Mode::AllOrNothing, 0, &env), Ok(10));
        let room = slot.room();
        assert_eq!(room, MIN_BLOCK - 10);
        assert!(!slot.spend(0, 0), "a probe takes the slow path");
        assert!(!slot.spend(room + 1, 0), "more than the block holds");
        assert!(slot.spend(room, 0));
        assert_eq!(slot.room(), 0);
        assert_eq!(slot.grant(&record, 10, Mode::AllOrNothing, 0, &env), Ok(10));
        assert!(!slot.spend(1, 100), "past the key's expiry");
        assert_eq!(slot.give_back(&record), 2 * MIN_BLOCK - 10);
        assert_eq!(record.state().active.unwrap().used, MIN_BLOCK + 10);
    }

    #[test]
    fn a_block_stops_short_of_the_active_limit_and_the_grant_that_crosses_it_switches() {
        let env = Env::default();
        let record = pair(&env, live(1, 100, NEVER), Some(live(2, 1_000, NEVER)));
        record.grant(90, Mode::AllOrNothing, 0, &env).unwrap();
        let slot = LeaseSlot::new();
        // The block takes what the Active key has left but its last byte: no switch yet.
        assert_eq!(slot.grant(&record, 5, Mode::AllOrNothing, 0, &env), Ok(5));
        assert_eq!(slot.room(), 4);
        assert_eq!(record.state().switched_out, None);
        // 10 bytes: the block's 4, then 6 from the pair, split 1 + 5 across the limit.
        assert_eq!(slot.grant(&record, 10, Mode::AllOrNothing, 0, &env), Ok(10));
        assert_eq!(slot.room(), 0);
        let state = record.state();
        assert_eq!(state.switched_out, Some((1, 100)));
        assert_eq!(state.active.unwrap().used, 5);
        // The next block is the reserve's; given back, it returns to the cursor whole.
        assert_eq!(slot.grant(&record, 1, Mode::AllOrNothing, 0, &env), Ok(1));
        assert_eq!(slot.give_back(&record), 994);
        assert_eq!(record.state().active.unwrap().used, 6);
    }

    #[test]
    fn blocks_grow_and_shrink_with_what_is_left() {
        let env = Env::default();
        let record = pair(&env, live(1, 1 << 40, NEVER), None);
        let slot = LeaseSlot::new();
        let mut sizes = Vec::new();
        for _ in 0..12 {
            slot.grant(&record, 1, Mode::AllOrNothing, 0, &env).unwrap();
            sizes.push(slot.room() + 1);
            slot.spend(slot.room(), 0);
        }
        assert_eq!(sizes[0], MIN_BLOCK);
        assert_eq!(sizes[1], 2 * MIN_BLOCK);
        assert_eq!(*sizes.last().unwrap(), MAX_BLOCK);
        // Near the end, a block is at most 1/64 of what is left, but never under the minimum.
        for (limit, block) in [
            (100 * MIN_BLOCK, 100 * MIN_BLOCK / 64),
            (10 * MIN_BLOCK, MIN_BLOCK),
        ] {
            let env = Env::default();
            let small = pair(&env, live(2, limit, NEVER), None);
            let slot = LeaseSlot::new();
            slot.size.store(MAX_BLOCK, Ordering::Relaxed);
            slot.grant(&small, 1, Mode::AllOrNothing, 0, &env).unwrap();
            assert_eq!(slot.room() + 1, block);
        }
    }
}
