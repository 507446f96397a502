//! Key accounts: one quota per key, drawn by every pair that holds the key (see
//! `../shared/QUOTA.md` and the design comment in `slot.rs`).
//!
//! An account is a record of the state file, like a pair. It counts `taken`: the bytes of the
//! key handed out as **leases** (blocks) to the pairs that hold it, used or not. A pair grants
//! from its lease with its own cursor CAS, and takes the next block from the account with one
//! CAS on `taken` when its lease is spent; `taken <= limit` is the whole of "never over-grant",
//! since no pair grants beyond its lease and every lease was counted in `taken` before it was
//! published. A pair gives the unused part of a lease back (subtracts it from `taken`) when the
//! lease is sealed: at the next publish of the pair, or when the key is switched out on expiry.
//!
//! Blocks adapt so that capacity idle in other pairs' leases stays small when one pair runs
//! dry: a key with one holder leases itself whole; with `h` holders a block is
//! `remaining / 2h`, capped at `min(1 % of the limit, 64 MiB) / h`. When a pair is switched or
//! refused because the account is empty, each other holder has at most one unused block, so
//! the idle capacity is at most `min(1 % of the limit, 64 MiB)` (see [`block_size`]).
//!
//! The 80/90/100 % thresholds of a key are reported when a block is taken for a grant that
//! reaches them; a block never extends past a threshold the grant it serves does not reach, so
//! with one holder a threshold is reported by exactly the grant that crosses it, as before
//! accounts existed. With several holders a threshold is reported when the bytes leased plus the
//! grant reach it (usage is then within the idle bound of it). Each threshold is reported once
//! per account, whichever pair reaches it.

use crate::sync::{AtomicU32, AtomicU64, Ordering};

mod fleet_seats;

/// The `kind` an account record carries where a pair record keeps its metering.
pub(crate) const ACCOUNT_KIND: u32 = 2;

/// Largest block a shared key's holders lease in total at once, before dividing by holders.
const MAX_SHARED_BLOCK: u64 = 64 << 20;

/// Largest block a pair leases from a fleet account's stock (unless a grant needs more).
const FLEET_BLOCK: u64 = 4 << 20;

/// One key's quota account: 256 bytes, a record of the state file, only accessed through
/// atomics; all zeros is an unused record.
///
/// | offset | field |
/// | ---: | --- |
/// | 0 | `taken` (8) |
/// | 8 | `limit` (8) |
/// | 16 | `holders` (4), `reported` (4) |
/// | 24 | `overage` (8) |
/// | 32 | `forgiven` (8), `period` (8) |
/// | 48 | `supply` (8), `fleet` (8), `wanted` (8): a fleet host's stock (see [`AccountRecord::take`]) |
/// | 72 | `deadline` (8): until when a fleet host's stock may be leased to pairs |
/// | 80 | spare, zero |
/// | 136 | `owner` (4), `kind` (4): where a pair record keeps them |
/// | 144 | spare, zero |
#[repr(C, align(64))]
pub struct AccountRecord {
    taken: AtomicU64,
    limit: AtomicU64,
    holders: AtomicU32,
    /// Bit `i` set once threshold `THRESHOLDS[i]` was reported; bit [`OVERAGE_BIT`] once the
    /// overage started.
    reported: AtomicU32,
    /// Bytes that may be leased beyond `limit` to pairs holding no reserve (the key's
    /// `overage_percent` of its limit; 0 in a state written before overage existed).
    overage: AtomicU64,
    /// Bytes used in the closed periods of a key with a `reset` term: `taken - forgiven` is
    /// what the current period has drawn (0 for a key without one; see `engine::resets`).
    forgiven: AtomicU64,
    /// The start (Unix seconds) of the period `forgiven` and `reported` belong to; 0 for a key
    /// without a reset.
    period: AtomicU64,
    /// In fleet mode, the bytes this host has drawn from the fleet store's leases of the key
    /// (cumulative, like `taken`): `taken <= supply` bounds what the host's pairs may lease.
    /// Only the host's fleet thread raises it. 0 and unused in the embedded mode.
    supply: AtomicU64,
    /// Bit [`FLEET`] when the account is a fleet store account (set before any pair names it),
    /// bit [`DRY`] while the store said the key has nothing left to lease.
    fleet: AtomicU64,
    /// The largest grant a fleet account's stock was too small for since the fleet thread last
    /// looked: a hint that sizes its next draw.
    wanted: AtomicU64,
    /// In fleet mode, when the stock stops being grantable: the earliest deadline (the host's
    /// `CLOCK_MONOTONIC`, in ns) of the store leases it was drawn from, which comes before the
    /// store may reclaim them; 0 for none. Only the host's fleet thread sets it.
    deadline: AtomicU64,
    _spare: [AtomicU64; 7],
    owner: AtomicU32,
    kind: AtomicU32,
    _tail: [AtomicU64; 14],
}

#[cfg(not(loom))]
const _: () = {
    use std::mem::{offset_of, size_of};
    assert!(size_of::<AccountRecord>() == 256);
    assert!(offset_of!(AccountRecord, overage) == 24);
    assert!(offset_of!(AccountRecord, forgiven) == 32);
    assert!(offset_of!(AccountRecord, period) == 40);
    assert!(offset_of!(AccountRecord, supply) == 48);
    assert!(offset_of!(AccountRecord, fleet) == 56);
    assert!(offset_of!(AccountRecord, wanted) == 64);
    assert!(offset_of!(AccountRecord, deadline) == 72);
    assert!(offset_of!(AccountRecord, owner) == 136);
    assert!(offset_of!(AccountRecord, kind) == 140);
};

/// The thresholds reported per account, in percent.
pub(crate) const THRESHOLDS: [u8; 3] = [80, 90, 100];

/// The bit of `reported` set when the first grant past the limit was reported.
const OVERAGE_BIT: u32 = 1 << 3;

/// The bit of `fleet` that makes an account a fleet store account.
const FLEET: u64 = 1;

/// The bit of `fleet` set while the store has nothing left to lease for the key.
const DRY: u64 = 1 << 1;

/// The usage at which `percent` of `limit` is reached: the smallest `u` with
/// `u * 100 >= limit * percent`.
pub(crate) fn threshold_at(limit: u64, percent: u8) -> u64 {
    // u128: `limit * 100` cannot overflow.
    ((u128::from(limit) * u128::from(percent)).div_ceil(100)) as u64
}

/// Gives access to accounts by id (record index plus one; 0 names none).
pub(crate) trait Accounts {
    /// The account `id` names, or `None` for 0 or an id beyond the state.
    fn account(&self, id: u32) -> Option<&AccountRecord>;
}

/// What a block taken from an account covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Block {
    /// Bytes taken.
    pub len: u64,
    /// What the current period had drawn before this block (`taken - forgiven`).
    pub from: u64,
    /// Whether the block took the account's last byte.
    pub last: bool,
}

impl AccountRecord {
    /// An unused account (for tests and loom models; the state file's records start zeroed).
    #[cfg(test)]
    pub(crate) fn new() -> AccountRecord {
        AccountRecord {
            taken: AtomicU64::new(0),
            limit: AtomicU64::new(0),
            holders: AtomicU32::new(0),
            reported: AtomicU32::new(0),
            overage: AtomicU64::new(0),
            forgiven: AtomicU64::new(0),
            period: AtomicU64::new(0),
            supply: AtomicU64::new(0),
            fleet: AtomicU64::new(0),
            wanted: AtomicU64::new(0),
            deadline: AtomicU64::new(0),
            _spare: std::array::from_fn(|_| AtomicU64::new(0)),
            owner: AtomicU32::new(0),
            kind: AtomicU32::new(0),
            _tail: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }

    /// Makes a free record the account of a key of `limit` bytes, `overage` more for pairs
    /// holding no reserve, of which `taken` are already used (an account converted from
    /// per-pair copies may start used, even beyond its limit). Only under the admin lock,
    /// before any pair names the account.
    pub(crate) fn open(&self, limit: u64, overage: u64, taken: u64, owner: u32) {
        // Relaxed: published with the account id by the Release stores of the pair generation
        // that first names it (see `PairRecord::publish`).
        self.limit.store(limit, Ordering::Relaxed);
        self.overage.store(overage, Ordering::Relaxed);
        self.taken.store(taken, Ordering::Relaxed);
        self.kind.store(ACCOUNT_KIND, Ordering::Relaxed);
        // Release: a record with an owner is never handed out again (see `Engine`'s allocation).
        self.owner.store(owner, Ordering::Release);
    }

    /// Whether this record was made an account.
    pub(crate) fn is_account(&self) -> bool {
        // Relaxed: written once, before the account is shared.
        self.kind.load(Ordering::Relaxed) == ACCOUNT_KIND
    }

    /// The key's limit.
    pub(crate) fn limit(&self) -> u64 {
        // Relaxed: written once before the account is published (see `open`).
        self.limit.load(Ordering::Relaxed)
    }

    /// The bytes beyond the limit a pair holding no reserve may lease.
    pub(crate) fn overage(&self) -> u64 {
        // Relaxed: written once before the account is published (see `open`).
        self.overage.load(Ordering::Relaxed)
    }

    /// What may be leased in all: the limit, plus the overage `into_overage`; for a fleet
    /// account, what this host has drawn from the store (the store bounds it by the limit
    /// across the fleet; the overage is not leased in fleets).
    pub(crate) fn ceiling(&self, into_overage: bool) -> u64 {
        if let Some(supply) = self.supply() {
            return supply.saturating_sub(self.forgiven());
        }
        if into_overage {
            self.limit() + self.overage()
        } else {
            self.limit()
        }
    }

    /// Whether a pair drawing up to the limit (or, `into_overage`, up to the limit plus the
    /// overage) can take nothing more in this period. A fleet account is used up only when the
    /// host's stock is spent *and* the store said the key has nothing left: a spent stock alone
    /// is refused as unavailable (see `PairRecord::refill`).
    pub(crate) fn used_up(&self, into_overage: bool) -> bool {
        // The flags first: DRY is stored (Release) after the last supply the thread added, so
        // a take that sees it (Acquire) reads that supply below, never an older one.
        let flags = self.fleet_flags();
        if flags & FLEET != 0 && flags & DRY == 0 {
            return false;
        }
        // A dry fleet stock past its deadline is used up too: what is left of it may not be
        // granted, and the store has nothing more.
        self.drawn() >= self.ceiling(into_overage) || self.stock_expired()
    }

    fn fleet_flags(&self) -> u64 {
        // Acquire: pairs with the Release store of `make_fleet`, so a take that sees the bit
        // also sees the supply stored before it.
        self.fleet.load(Ordering::Acquire)
    }

    /// Whether this is a fleet store account.
    pub(crate) fn is_fleet(&self) -> bool {
        self.fleet_flags() & FLEET != 0
    }

    /// A fleet account's stock (`None` in the embedded mode): the bytes drawn from the store,
    /// counted like `taken` from the account's opening, plus the closed periods' usage.
    pub(crate) fn supply(&self) -> Option<u64> {
        // Acquire: pairs with the Release `fetch_add` in `add_supply`; the bytes it adds were
        // drawn from the store before it, so a take that sees them may lease them.
        self.is_fleet().then(|| self.supply.load(Ordering::Acquire))
    }

    /// Makes this account a fleet account with an empty stock (admin, before any pair names
    /// it): its pairs lease only what the fleet thread draws from the store.
    pub(crate) fn make_fleet(&self) {
        // Relaxed: ordered before the flag by the Release store below.
        self.supply.store(0, Ordering::Relaxed);
        // Release: see `fleet_flags`. Keeps DRY as it was.
        self.fleet.fetch_or(FLEET, Ordering::Release);
    }

    /// Adds `len` drawn bytes to a fleet account's stock (the fleet thread, once the store
    /// acknowledged the draw).
    // Used by the fleet thread, which loom builds leave out, and by the loom models.
    #[cfg_attr(loom, allow(dead_code))]
    pub(crate) fn add_supply(&self, len: u64) {
        // Release: see `supply`.
        self.supply.fetch_add(len, Ordering::Release);
    }

    /// Withdraws a fleet account's whole unleased stock, as a take of it that no pair holds:
    /// one CAS on `taken`, so it races the pairs' takes safely. Returns `(withdrawn, taken
    /// before)`. For an engine's close, which gives the stock back to the store.
    // Used by the fleet thread, which loom builds leave out, and by the loom models.
    #[cfg_attr(loom, allow(dead_code))]
    pub(crate) fn withdraw_stock(&self) -> (u64, u64) {
        let Some(supply) = self.supply() else {
            return (0, self.taken());
        };
        // Relaxed (load and CAS): as in `take`; `supply` only grows while the engine runs.
        let mut taken = self.taken.load(Ordering::Relaxed);
        loop {
            if taken >= supply {
                return (0, taken);
            }
            match self.taken.compare_exchange_weak(
                taken,
                supply,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return (supply - taken, taken),
                Err(current) => taken = current,
            }
        }
    }

    /// Whether this fleet account's stock is past its deadline (never under loom, whose models
    /// leave the store out).
    #[inline]
    pub(crate) fn stock_expired(&self) -> bool {
        // Relaxed: a deadline guards no other data; a stale one is at most a round of the
        // fleet thread old, and the thread withdraws a stock whose leases expired.
        #[cfg(not(loom))]
        match self.deadline.load(Ordering::Relaxed) {
            0 => false,
            deadline => crate::clock::monotonic_ns() >= deadline,
        }
        #[cfg(loom)]
        false
    }

    /// Sets until when this fleet account's stock may be leased to pairs (`CLOCK_MONOTONIC`
    /// ns; 0 for no deadline): the fleet thread, after its renewals.
    #[cfg(not(loom))]
    pub(crate) fn set_deadline(&self, deadline: u64) {
        // Relaxed: see `stock_expired`.
        self.deadline.store(deadline, Ordering::Relaxed);
    }

    /// Records whether the store has nothing left to lease for the key.
    // Used by the fleet thread, which loom builds leave out, and by the loom models.
    #[cfg_attr(loom, allow(dead_code))]
    pub(crate) fn set_dry(&self, dry: bool) {
        // Release: a take that sees DRY (Acquire, in `used_up`) also sees every supply added
        // before it, so "spent and dry" is never judged on a stale stock. A take that misses
        // the flag refuses as unavailable instead of exhausted, and the pair switches at its
        // next grant.
        if dry {
            self.fleet.fetch_or(DRY, Ordering::Release);
        } else {
            self.fleet.fetch_and(!DRY, Ordering::Release);
        }
    }

    /// Whether the store said the key has nothing left to lease.
    pub(crate) fn is_dry(&self) -> bool {
        self.fleet_flags() & DRY != 0
    }

    /// Notes that a grant needing `need` more bytes found this fleet account's stock short.
    pub(crate) fn want(&self, need: u64) {
        // Relaxed: a sizing hint for the fleet thread, which guards nothing.
        self.wanted.fetch_max(need, Ordering::Relaxed);
    }

    /// The largest need noted since the last call, which clears it (the fleet thread).
    #[cfg(not(loom))]
    pub(crate) fn take_wanted(&self) -> u64 {
        // Relaxed: see `want`.
        self.wanted.swap(0, Ordering::Relaxed)
    }

    /// Bytes leased to holders, used or not, since the account was opened (across periods).
    pub(crate) fn taken(&self) -> u64 {
        // Relaxed: a snapshot of one counter; nothing else is read through it.
        self.taken.load(Ordering::Relaxed)
    }

    /// Bytes the closed periods used (0 for a key without a reset).
    pub(crate) fn forgiven(&self) -> u64 {
        // Relaxed: only grows, under the admin lock; a stale (smaller) value only makes a take
        // see less room than there is, never more (see `take`).
        self.forgiven.load(Ordering::Relaxed)
    }

    /// Bytes leased to holders in the current period, used or not: what `limit` bounds.
    pub(crate) fn drawn(&self) -> u64 {
        self.taken().saturating_sub(self.forgiven())
    }

    /// The start of the period the account counts (0 for a key without a reset).
    pub(crate) fn period(&self) -> u64 {
        // Relaxed: written under the admin lock; read there, and by a fleet host's thread,
        // which only learns from it which store account to draw on next (a stale value delays
        // that by a round) and reads nothing else through it.
        self.period.load(Ordering::Relaxed)
    }

    /// Starts the period beginning at `start` (admin, under the admin lock): the closed
    /// periods used `forgiven` bytes in all, which the new period's room no longer counts, and
    /// its thresholds and overage start are reported afresh. Idempotent: it stores values, so
    /// a reset repeated after a crash changes nothing more.
    pub(crate) fn start_period(&self, start: u64, forgiven: u64) {
        // Relaxed: `forgiven` guards no other data; a take that reads the old value sees less
        // room, which only refuses or sizes a block smaller (see `take`).
        self.forgiven.store(forgiven, Ordering::Relaxed);
        // Relaxed: the bits make "reported once" exact by themselves; they guard no data. A
        // grant between the two stores that crosses a threshold of the new period reports it
        // once more.
        self.reported.store(0, Ordering::Relaxed);
        // Relaxed: see `period`.
        self.period.store(start, Ordering::Relaxed);
        // A fleet account's new period draws on a store account of its own (see
        // `engine::fleet`): whether that has more is the fleet thread's to learn, so the old
        // period's "dry" no longer holds, and a spent stock is refused as unavailable, not
        // exhausted, until the thread looked. Release: as in `set_dry`.
        self.fleet.fetch_and(!DRY, Ordering::Release);
    }

    /// How many pairs hold the key (admin-maintained; sizes blocks).
    pub(crate) fn holders(&self) -> u32 {
        // Relaxed: a sizing hint; any value keeps `taken <= limit`.
        self.holders.load(Ordering::Relaxed)
    }

    /// Records how many pairs hold the key now (admin, under the admin lock).
    pub(crate) fn set_holders(&self, holders: u32) {
        // Relaxed: see `holders`.
        self.holders.store(holders, Ordering::Relaxed);
    }

    /// Takes the next block for a grant that needs `need` more bytes than its lease holds, up to
    /// the limit, or with `into_overage` (a pair holding no reserve) up to the limit plus the
    /// overage. With `whole_or_none` (an all-or-nothing grant with nothing to fall back on),
    /// takes nothing when the account cannot cover `need` and returns the bytes it has left as
    /// `Err`; otherwise a short account is taken entirely. `Ok(None)` means the account is
    /// empty as far as this pair may draw.
    pub(crate) fn take(
        &self,
        need: u64,
        whole_or_none: bool,
        into_overage: bool,
    ) -> Result<Option<Block>, u64> {
        if self.stock_expired() {
            // A fleet host past its leases' deadline grants nothing more from its stock: its
            // fleet thread renews them or withdraws the stock.
            return Ok(None);
        }
        let limit = self.limit();
        let ceiling = self.ceiling(into_overage);
        // Read before `taken`: it only grows, so `taken - forgiven` read this way is at least
        // the period's true draw, and the CAS below can only leave it at or under `ceiling`.
        let forgiven = self.forgiven();
        // Relaxed (load and CAS): `taken` is a counter whose only invariant, `taken - forgiven
        // <= limit + overage`, is kept by the CAS itself; it publishes no other data.
        let mut taken = self.taken.load(Ordering::Relaxed);
        loop {
            let drawn = taken.saturating_sub(forgiven);
            let remaining = ceiling.saturating_sub(drawn);
            if remaining == 0 {
                return Ok(None);
            }
            if whole_or_none && remaining < need {
                return Err(remaining);
            }
            let mut len = block_size(limit, ceiling, drawn, need, self.holders());
            if self.is_fleet() {
                // A fleet pair's block is at most FLEET_BLOCK (or what the grant needs): what
                // a closing host's pairs hold unused stays leased to it, so it stays small.
                len = len.min(FLEET_BLOCK.max(need)).min(remaining);
            }
            match self.taken.compare_exchange_weak(
                taken,
                taken + len,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    return Ok(Some(Block {
                        len,
                        from: drawn,
                        last: drawn + len == ceiling,
                    }))
                }
                Err(current) => taken = current,
            }
        }
    }

    /// Gives back `len` bytes leased and not used.
    pub(crate) fn give_back(&self, len: u64) {
        if len > 0 {
            // Relaxed: see `take`. Every byte given back was counted in `taken` by the `take`
            // that leased it, so this never goes below zero.
            self.taken.fetch_sub(len, Ordering::Relaxed);
        }
    }

    /// The thresholds a grant reaching usage `from + need` crosses (with `from` the bytes
    /// leased before its block), each returned once per account.
    /// A fleet account reports none: one host's draw says nothing of the fleet's usage.
    pub(crate) fn claim_thresholds(&self, from: u64, need: u64) -> impl Iterator<Item = u8> + '_ {
        let limit = if self.is_fleet() { 0 } else { self.limit() };
        THRESHOLDS
            .into_iter()
            .enumerate()
            .filter(move |&(i, percent)| {
                let at = threshold_at(limit, percent);
                // Relaxed: the bit makes "reported once" exact by itself; it guards no data.
                from < at
                    && at <= from.saturating_add(need)
                    && self.reported.fetch_or(1 << i, Ordering::Relaxed) & (1 << i) == 0
            })
            .map(|(_, percent)| percent)
    }

    /// Whether a grant reaching usage `from + need` is the first past the limit of an account
    /// with an overage: true once per account.
    pub(crate) fn claim_overage(&self, from: u64, need: u64) -> bool {
        // Relaxed: as in `claim_thresholds`.
        self.overage() > 0
            && from.saturating_add(need) > self.limit()
            && self.reported.fetch_or(OVERAGE_BIT, Ordering::Relaxed) & OVERAGE_BIT == 0
    }

    /// The thresholds reported so far, bit `i` for `THRESHOLDS[i]`.
    #[cfg(all(test, not(loom)))]
    pub(crate) fn reported(&self) -> u32 {
        // Relaxed: read by a test after the threads that set it were joined.
        self.reported.load(Ordering::Relaxed)
    }

    /// Takes `units` seats of a seat key's account if that many are free (`taken` counts the
    /// seats held across every pair the key bounds), else returns how many are free. One CAS.
    /// A fleet seat account is bounded by this host's stock instead (see `fleet_seats`).
    pub(crate) fn take_seats(&self, units: u64) -> Result<(), u64> {
        if self.is_fleet_seats() {
            return self.take_fleet_seats(units);
        }
        let limit = self.limit();
        // Relaxed (load and CAS): as in `take`; the gauge publishes no other data.
        let mut taken = self.taken.load(Ordering::Relaxed);
        loop {
            let free = limit.saturating_sub(taken);
            if units > free {
                return Err(free);
            }
            match self.taken.compare_exchange_weak(
                taken,
                taken + units,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Ok(()),
                Err(current) => taken = current,
            }
        }
    }

    /// Counts `units` seats that a pair carries onto this key (a switch or an admin change made
    /// the key bound seats already held), even beyond its amount: seats held stay held, and
    /// acquires are refused until enough are released.
    pub(crate) fn carry_seats(&self, units: u64) {
        if units > 0 {
            // Relaxed: see `take_seats`.
            self.taken.fetch_add(units, Ordering::Relaxed);
        }
    }

    /// Uncounts `units` seats released, reclaimed or carried away. Saturates at zero, which
    /// only a damaged state can reach: every seat uncounted was counted first.
    pub(crate) fn return_seats(&self, units: u64) {
        if units == 0 {
            return;
        }
        // Relaxed: see `take_seats`.
        let mut taken = self.taken.load(Ordering::Relaxed);
        loop {
            match self.taken.compare_exchange_weak(
                taken,
                taken.saturating_sub(units),
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return,
                Err(current) => taken = current,
            }
        }
    }

    /// Sets a seat account's count to zero if it is still `seen`, and says whether it did: for
    /// seats that owners killed between their steps left counted, once nothing can hold any
    /// (see `Holders::reset_unowned`). A change since `seen` (an acquire that took seats after
    /// the caller looked) makes it fail; a take and a give-back of as many leaves none held.
    pub(crate) fn drop_leaked(&self, seen: u64) -> bool {
        // Relaxed: see `take_seats`.
        self.taken
            .compare_exchange(seen, 0, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    }

    /// Sets `taken` (admin, under the admin lock, with no pair drawing: conversion and repair).
    pub(crate) fn set_taken(&self, taken: u64) {
        // Relaxed: see `open`.
        self.taken.store(taken, Ordering::Relaxed);
    }
}

/// The block to lease from an account of `limit` bytes, of which this pair may lease up to
/// `ceiling` (the limit, or the limit plus the overage), with `taken` leased, for a grant that
/// needs `need` more bytes, with `holders` pairs holding the key.
///
/// - One holder: everything left (the key leases itself whole, as before accounts existed).
/// - `h` holders: `remaining / 2h`, at least 1, at most `min(limit / 100, 64 MiB) / h`, so the
///   unused blocks of all other holders together stay below `min(1 % of limit, 64 MiB)`.
/// - Never less than `need`, never more than what is left.
/// - Never past the next threshold the grant does not reach, so the grant that reaches it
///   takes the next block and reports it; the first byte past the limit counts as one (the
///   start of the overage).
pub(crate) fn block_size(limit: u64, ceiling: u64, taken: u64, need: u64, holders: u32) -> u64 {
    let remaining = ceiling.saturating_sub(taken);
    let holders = u64::from(holders.max(1));
    let target = if holders == 1 {
        remaining
    } else {
        let cap = ((limit / 100).min(MAX_SHARED_BLOCK) / holders).max(1);
        (remaining / (2 * holders)).clamp(1, cap)
    };
    let mut len = target.max(need);
    if let Some(at) = THRESHOLDS
        .into_iter()
        .map(|percent| threshold_at(limit, percent))
        .chain([limit + 1])
        .find(|&at| at > taken.saturating_add(need))
    {
        // `at > taken + need`, so the bound is at least `need`.
        len = len.min(at - 1 - taken);
    }
    len.min(remaining)
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    /// (limit, ceiling, taken, need, holders).
    type Sizing = (u64, u64, u64, u64, u32);

    #[test]
    fn blocks_follow_holders_thresholds_and_what_is_left() {
        // (limit, taken, need, holders) -> block
        let cases: &[(Sizing, u64)] = &[
            // One holder: whole key up to just below the 80 % threshold.
            ((100, 100, 0, 1, 1), 79),
            ((100, 100, 79, 1, 1), 10),
            ((100, 100, 89, 1, 1), 10),
            ((100, 100, 99, 1, 1), 1),
            // A grant reaching past a threshold takes what it needs.
            ((100, 100, 0, 95, 1), 99),
            // Several holders: remaining / 2h, capped by 1 % / h.
            ((1 << 30, 1 << 30, 0, 1, 2), (1 << 30) / 100 / 2),
            ((1 << 40, 1 << 40, 0, 1, 4), (64 << 20) / 4),
            ((1000, 1000, 990, 1, 3), 1),
            // Never more than is left.
            ((10, 10, 8, 5, 1), 2),
            // With an overage: the first byte past the limit cuts a block, as a threshold
            // does; past it, the overage is leased like the rest.
            ((100, 150, 99, 1, 1), 1),
            ((100, 150, 100, 1, 1), 50),
            ((100, 150, 120, 40, 1), 30),
        ];
        for &((limit, ceiling, taken, need, holders), want) in cases {
            assert_eq!(
                block_size(limit, ceiling, taken, need, holders),
                want,
                "limit {limit} ceiling {ceiling} taken {taken} need {need} holders {holders}"
            );
        }
    }

    #[test]
    fn take_never_passes_the_limit_and_refuses_short_whole_requests() {
        let account = AccountRecord::new();
        account.open(100, 0, 0, 1);
        assert_eq!(
            account.take(1, false, false),
            Ok(Some(Block {
                len: 79,
                from: 0,
                last: false
            }))
        );
        assert_eq!(account.take(30, true, false), Err(21));
        assert_eq!(account.taken(), 79);
        let rest = account.take(30, false, false).unwrap().unwrap();
        assert_eq!((rest.len, rest.last), (21, true));
        assert_eq!(account.take(1, false, false), Ok(None));
        account.give_back(5);
        assert_eq!(account.taken(), 95);
    }

    /// The overage is leased only to a pair holding no reserve, and its start is claimed once.
    #[test]
    fn the_overage_is_for_pairs_without_a_reserve() {
        let account = AccountRecord::new();
        account.open(100, 20, 0, 1);
        assert_eq!(account.take(100, false, false).unwrap().unwrap().len, 100);
        assert_eq!(
            account.take(1, false, false),
            Ok(None),
            "a pair with a reserve stops"
        );
        assert!(account.claim_overage(100, 1));
        assert!(!account.claim_overage(100, 1), "once");
        let block = account.take(1, false, true).unwrap().unwrap();
        assert_eq!((block.from, block.len, block.last), (100, 20, true));
        assert_eq!(account.take(1, false, true), Ok(None));
        assert_eq!(account.take(5, true, true), Ok(None));
        assert_eq!(account.taken(), 120);
        let plain = AccountRecord::new();
        plain.open(100, 0, 0, 1);
        assert!(!plain.claim_overage(100, 5), "no overage, no start");
    }

    #[test]
    fn thresholds_are_reported_once_per_account() {
        let account = AccountRecord::new();
        account.open(100, 0, 0, 1);
        assert_eq!(account.claim_thresholds(0, 79).count(), 0);
        assert_eq!(
            account.claim_thresholds(79, 11).collect::<Vec<_>>(),
            [80, 90]
        );
        assert_eq!(account.claim_thresholds(0, 100).collect::<Vec<_>>(), [100]);
        assert_eq!(account.claim_thresholds(0, 100).count(), 0);
    }
}
