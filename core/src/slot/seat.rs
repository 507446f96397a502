//! Seat gauges (rules R16 and R17 in docs/rules.md): per-machine, per-core and per-instance pairs.
//!
//! A seat pair uses the same record and cursor word as a data-volume pair, read differently: the
//! offset is the number of seats held *now*, a gauge that `acquire` raises and `release` lowers,
//! bounded by the amount of the key that is Active. The amounts of the two keys do not add up: a
//! reserve key replaces the Active key, it does not extend it. So a seat pair switches only when
//! its Active key expires, and the switch is the same single CAS as for data volume: it sets the
//! `expired` flag, after which the reserve's amount and expiry bound the gauge. Seats held at
//! the switch stay held (the machines stay protected) and count against the new key; if the new
//! key is smaller, acquires are refused until enough seats are released.
//!
//! The 64-bit offset of a seat pair holds two 32-bit fields: `[at_switch:32 | held:32]`. Seat
//! amounts are `u32`, so the gauge never carries into `at_switch`. The switch CAS writes the
//! seats held at that instant into `at_switch` in the same word it sets the flag in, so the
//! retired key's final usage is exactly the gauge the switch saw. (A separate mark kept as a
//! running maximum, as data volume does, would be wrong here: the gauge also goes down, and a
//! switcher that lost its CAS to a release would leave a mark above what was held.)
//!
//! Acquire and release are each one CAS on the cursor word, so an acquire can never overshoot
//! the bound, a release can never take the gauge below zero, and an admin publish (which
//! carries the gauge into the next generation) never loses a concurrent acquire or release: the
//! loser of the race retries. A refusal is validated like a grant's window (see `confirm`).

use super::{
    epoch_of, offset_of, AccountRecord, Accounts, Cursor, Denied, LiveKey, Metering, PairEvent,
    PairEvents, PairRecord, PairState, Refusal, Side, SwitchReason, Word, OFFSET_MASK,
    SWITCHED_BIT,
};
use crate::error::RecordDamage;
use crate::sync::Ordering;

/// The `held` field of a seat pair's offset.
const HELD_MASK: u64 = u32::MAX as u64;

/// The seats held, from a seat pair's offset.
#[inline(always)]
pub(super) fn held(offset: u64) -> u64 {
    offset & HELD_MASK
}

/// The accounts a seat pair's publish moves its held seats between: (from, to).
pub(super) type SeatCarry<'a> = (Option<&'a AccountRecord>, Option<&'a AccountRecord>);

/// Whether two cursor words of a seat pair bound the gauge by the same key: the same
/// generation, switched or not alike. An acquire whose seats came from that key's account may
/// retry its gauge CAS on such a word without taking them again.
#[inline(always)]
fn same_bound(a: Word, b: Word) -> bool {
    (a ^ b) >> 64 == 0
}

/// The seats held when the Active key expired, from an expired seat pair's offset.
fn at_switch(offset: u64) -> u64 {
    offset >> 32
}

impl PairRecord {
    /// Takes `units` seats if the Active key (or, once it expired, the reserve) has that many
    /// free, and returns the seats held on this pair afterwards. A request of 0 is a probe that
    /// succeeds exactly when a valid key covers the pair.
    ///
    /// With a key account (every key added since accounts exist), the seats are taken from the
    /// account first, one CAS there, so the amount bounds the seats held across every pair that
    /// holds the key; then the pair's gauge is raised, one CAS here. If the pair changed keys
    /// between the two (a switch or an admin publish moved the epoch), the seats go back to the
    /// account they came from and the request starts again. A pair without an account (a state
    /// written before seat accounts) is bounded by its own gauge, one CAS.
    #[inline]
    pub(crate) fn acquire(
        &self,
        units: u64,
        now: u32,
        env: &(impl PairEvents + Accounts),
    ) -> Result<u64, Refusal> {
        debug_assert_eq!(self.metering(), Metering::Seats);
        let mut word = self.load_cursor();
        'request: loop {
            let refusal = match self.seat_bound(&mut word, now, env) {
                Ok(_) if units == 0 => return Ok(held(offset_of(word))),
                Ok(bound) => match self.seat_account(word, env) {
                    Some(account) => match account.take_seats(units) {
                        Ok(()) => loop {
                            // Relaxed on success: the gauge is the only datum an acquire
                            // publishes. Acquire on failure: the retry reads the limits and
                            // accounts of whatever epoch the current word carries. The account
                            // bounds every pair's gauge, so `held + units` stays in its field.
                            match self.cursor.compare_exchange_weak(
                                word,
                                word + Word::from(units),
                                Ordering::Relaxed,
                                Ordering::Acquire,
                            ) {
                                Ok(_) => return Ok(held(offset_of(word)) + units),
                                Err(current) if same_bound(current, word) => word = current,
                                Err(current) => {
                                    account.return_seats(units);
                                    word = current;
                                    continue 'request;
                                }
                            }
                        },
                        // A fleet host's stock is short: its fleet thread leases more seats
                        // (as many as this request wants) while the store has them free.
                        Err(available) if account.is_fleet_seats() => {
                            account.want(units);
                            if account.is_dry() {
                                Denied::NoSeats { available }
                            } else {
                                Denied::Unavailable
                            }
                        }
                        Err(available) => Denied::NoSeats { available },
                    },
                    None => {
                        let held = held(offset_of(word));
                        let available = bound.saturating_sub(held);
                        if units > available {
                            Denied::NoSeats { available }
                        } else {
                            // Orderings as above; `held + units <= bound <= u32::MAX`.
                            match self.cursor.compare_exchange_weak(
                                word,
                                word + Word::from(units),
                                Ordering::Relaxed,
                                Ordering::Acquire,
                            ) {
                                Ok(_) => return Ok(held + units),
                                Err(current) => {
                                    word = current;
                                    continue;
                                }
                            }
                        }
                    }
                },
                Err(refusal) => refusal,
            };
            match self.confirm(word) {
                Ok(()) => return Err(self.refuse(word, units, refusal, env)),
                Err(current) => word = current,
            }
        }
    }

    /// Gives back `units` seats and returns the seats held on this pair afterwards; refuses with
    /// `NotHeld` (changing nothing) when fewer are held. Never waits and never depends on
    /// expiry: a machine may always stop being protected. The gauge first, then the account of
    /// the key that bounded it (named before the CAS, which validates it).
    #[inline]
    pub(crate) fn release(&self, units: u64, env: &impl Accounts) -> Result<u64, Refusal> {
        debug_assert_eq!(self.metering(), Metering::Seats);
        // Acquire (load and failure): the account read below must be the generation's of the
        // word the CAS then validates. Relaxed on success: the gauge publishes no other data.
        let mut word = self.cursor.load(Ordering::Acquire);
        loop {
            let held = held(offset_of(word));
            if units > held {
                return Err(Refusal::NotHeld {
                    requested: units,
                    held,
                });
            }
            let account = self.seat_account(word, env);
            match self.cursor.compare_exchange_weak(
                word,
                word - Word::from(units),
                Ordering::Relaxed,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    if let Some(account) = account {
                        account.return_seats(units);
                    }
                    return Ok(held - units);
                }
                Err(current) => word = current,
            }
        }
    }

    /// The account of the key bounding the gauge at `word`: the Active key's, or the reserve's
    /// once the Active key expired. `None` for a pair without accounts.
    fn seat_account<'a>(&self, word: Word, env: &'a impl Accounts) -> Option<&'a AccountRecord> {
        env.account(self.seat_account_id(word))
    }

    /// For a seat pair, before a publish from `word`: counts the `held` seats in the account of
    /// the next Active key, and returns (the account bounding them now, that account). The
    /// caller uncounts them from the first after its CAS, or from the second if the CAS failed.
    /// Both `None` for a data-volume pair or when nothing is held; either `None` for a key
    /// without an account (a state written before seat accounts, or no next key).
    pub(super) fn seat_carry<'a>(
        &self,
        word: Word,
        next_active: Option<LiveKey>,
        held: u64,
        env: &'a impl Accounts,
    ) -> SeatCarry<'a> {
        if self.metering() != Metering::Seats || held == 0 {
            return (None, None);
        }
        let to = next_active.and_then(|key| env.account(key.account));
        if let Some(to) = to {
            to.carry_seats(held);
        }
        (self.seat_account(word, env), to)
    }

    /// The id of [`Self::seat_account`] (0 for none).
    pub(crate) fn seat_account_id(&self, word: Word) -> u32 {
        let cursor = Cursor::unpack(word);
        let side = if cursor.switched {
            Side::Reserve
        } else {
            Side::Active
        };
        // Acquire: as in `account_of`.
        self.leases[cursor.epoch as usize & 1].accounts[side as usize].load(Ordering::Acquire)
    }

    /// The seats held on this pair now.
    pub(crate) fn seats_held(&self) -> u64 {
        held(offset_of(self.gauge_word()))
    }

    /// Whether a valid key covers the pair now (rule R23 in docs/rules.md: "each instance must
    /// be assigned a license"): `Ok` or the refusal (`NoActiveKey`, `Expired`). Switches an
    /// expired Active key to its reserve on the way, like every other caller. Lock-free,
    /// usually one load.
    #[inline]
    pub(crate) fn covers(
        &self,
        now: u32,
        env: &(impl PairEvents + Accounts),
    ) -> Result<(), Refusal> {
        let mut word = self.load_cursor();
        loop {
            let refusal = match self.seat_bound(&mut word, now, env) {
                Ok(_) => return Ok(()),
                Err(refusal) => refusal,
            };
            match self.confirm(word) {
                Ok(()) => return Err(self.refuse(word, 0, refusal, env)),
                Err(current) => word = current,
            }
        }
    }

    /// The amount bounding the gauge now: the Active key's, or the reserve's once the Active key
    /// expired (switching it on the way, which updates `word`).
    #[inline(always)]
    fn seat_bound(
        &self,
        word: &mut Word,
        now: u32,
        env: &(impl PairEvents + Accounts),
    ) -> Result<u64, Denied> {
        loop {
            let cursor = Cursor::unpack(*word);
            let limits = &self.limits[cursor.epoch as usize & 1];
            // Acquire (all four): as in `window`: a value from a later generation orders our CAS
            // (or the refusal's reload) after the epoch bump that preceded it, so it fails.
            let active_limit = limits.active_limit.load(Ordering::Acquire);
            let reserve_limit = limits.reserve_limit.load(Ordering::Acquire);
            let active_expiry = limits.active_expiry.load(Ordering::Acquire);
            let reserve_expiry = limits.reserve_expiry.load(Ordering::Acquire);
            if active_limit == 0 {
                return Err(Denied::NoActiveKey);
            }
            if cursor.switched {
                return if reserve_expiry > now {
                    Ok(reserve_limit)
                } else {
                    Err(Denied::Expired)
                };
            }
            if active_expiry > now {
                return Ok(active_limit);
            }
            if reserve_limit == 0 || reserve_expiry <= now {
                return Err(Denied::Expired);
            }
            match self.switch_seats_on_expiry(*word, env) {
                Ok(switched) | Err(switched) => *word = switched,
            }
        }
    }

    /// Hands an expired Active key's seats to the reserve: sets the expired flag and records the
    /// seats held in `at_switch`, in one CAS. The reserve's account counts the seats carried
    /// before the CAS (a moment of over-counting only refuses, never over-grants) and the Active
    /// key's account stops counting them after it. Returns the new word if this caller
    /// switched, the current word otherwise.
    #[cold]
    #[inline(never)]
    fn switch_seats_on_expiry(
        &self,
        word: Word,
        env: &(impl PairEvents + Accounts),
    ) -> Result<Word, Word> {
        let keys = self.key_rows(word);
        let held = held(offset_of(word));
        let slot = epoch_of(word) as usize & 1;
        let (from, to) = (
            self.account_of(slot, Side::Active, env),
            self.account_of(slot, Side::Reserve, env),
        );
        if let Some(to) = to {
            to.carry_seats(held);
        }
        let new = (word & !OFFSET_MASK) | SWITCHED_BIT | Word::from(held << 32 | held);
        // Release on success, Acquire on failure: as for data volume (`switch_on_expiry`); the
        // key ids and accounts were Acquire-loaded before, so this CAS validates them.
        if let Err(current) =
            self.cursor
                .compare_exchange(word, new, Ordering::Release, Ordering::Acquire)
        {
            if let Some(to) = to {
                to.return_seats(held);
            }
            return Err(current);
        }
        if let Some(from) = from {
            from.return_seats(held);
        }
        env.emit(PairEvent::Switched {
            from: keys.active,
            to: keys.reserve,
            reason: SwitchReason::Expired,
        });
        Ok(new)
    }

    /// The cursor word, for [`PairRecord::reset_gauge`].
    pub(crate) fn gauge_word(&self) -> Word {
        // Acquire: pairs with the publish that wrote the word's generation.
        self.cursor.load(Ordering::Acquire)
    }

    /// Sets the gauge to zero if the cursor still holds `seen`, and returns the seats dropped.
    /// Only for a pair no owner holds seats on (see `Holders::reclaim_dead`): seats counted as
    /// held by an owner killed between its two steps are leaked otherwise.
    pub(crate) fn reset_gauge(&self, seen: Word, env: &impl Accounts) -> u64 {
        let held = held(offset_of(seen));
        if held == 0 {
            return 0;
        }
        let account = self.seat_account(seen, env);
        // Relaxed: as in `release`; the CAS fails if anyone moved the gauge since `seen`.
        match self.cursor.compare_exchange(
            seen,
            seen - Word::from(held),
            Ordering::Relaxed,
            Ordering::Relaxed,
        ) {
            Ok(_) => {
                if let Some(account) = account {
                    account.return_seats(held);
                }
                held
            }
            Err(_) => 0,
        }
    }

    /// Takes back the seats of a holder that died (see `holders`): lowers the gauge by `units`,
    /// or to zero if fewer are held, which only a damaged state can cause.
    pub(crate) fn reclaim(&self, units: u64, env: &impl Accounts) -> u64 {
        // Acquire and Relaxed: as in `release`.
        let mut word = self.cursor.load(Ordering::Acquire);
        loop {
            let taken = units.min(held(offset_of(word)));
            let account = self.seat_account(word, env);
            match self.cursor.compare_exchange_weak(
                word,
                word - Word::from(taken),
                Ordering::Relaxed,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    if let Some(account) = account {
                        account.return_seats(taken);
                    }
                    return taken;
                }
                Err(current) => word = current,
            }
        }
    }
}

/// The logical content of a seat pair at `cursor`: the gauge counts against whichever key is
/// Active; the reserve, until it takes over, holds nothing.
pub(super) fn state(
    cursor: Cursor,
    mut state: PairState,
    active: LiveKey,
    reserve: LiveKey,
) -> PairState {
    let held = held(cursor.offset);
    if cursor.switched && reserve.limit > 0 {
        state.switched_out = Some((active.key, at_switch(cursor.offset)));
        state.switch_reason = Some(SwitchReason::Expired);
        state.active = Some(LiveKey {
            used: held,
            ..reserve
        });
        state.switches += 1;
    } else {
        state.active = Some(LiveKey {
            used: held,
            ..active
        });
        state.reserve = (reserve.limit > 0).then_some(LiveKey { used: 0, ..reserve });
    }
    state
}

/// Checks a seat pair's cursor: `at_switch` is set only by the switch.
pub(super) fn check(cursor: Cursor) -> Result<(), RecordDamage> {
    if !cursor.switched && at_switch(cursor.offset) != 0 {
        return Err(RecordDamage::SwitchWithoutExpiry {
            gauge: cursor.offset,
        });
    }
    Ok(())
}

#[cfg(all(test, not(loom)))]
mod tests;

#[cfg(all(test, loom))]
mod loom_models;
