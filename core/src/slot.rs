//! The Active/Reserved slot pair of one project and license class, and the lock-free grant.
//!
//! # Design
//!
//! A key is one quota **account** (`slot::account`) that every pair holding it draws from. A
//! pair never meters a key directly: it holds a **lease** of each of its two keys' accounts, a
//! range of bytes already taken from the account, and grants from its leases with one
//! compare-and-swap on its own cursor. When the lease of the key it draws from is spent, the
//! caller that found it spent takes the next block from the account (one CAS there) and extends
//! the lease (one CAS on the lease word), then grants. When the account is empty the lease is
//! marked *last*; a pair whose Active lease is last and spent switches to the Reserved key.
//!
//! The cursor is one 128-bit word: `[exhausted:1 | epoch:62 | switched:1]` in its high half,
//! the offset in its low half. Before the switch the offset counts this pair's use of the
//! Active key; the switch is one CAS that sets `switched` (and `exhausted` when the Active key
//! ran out rather than expired) and restarts the offset at this pair's use of the reserve. A
//! grant that crosses the switch is split in that very CAS: the part that fits the Active lease
//! ends it, the rest starts the reserve. So `granted == charged` holds at every instant, and the
//! single caller whose CAS switched reports the switch.
//!
//! Admin changes (adding a reserve, replacing a key) never edit the live generation: they write
//! the *other* of two generation slots, with fresh empty leases tagged with the new epoch, and
//! publish it by a compare-and-swap that bumps the epoch. A consumer that read the old
//! generation then fails its own CAS and retries, so it never waits and never charges a key that
//! is no longer there. This is a seqlock whose validation step is the grant itself. After its
//! CAS the publisher *seals* the old generation's leases and gives their unused part back to the
//! accounts; a refill of the old generation that lands after the seal finds it sealed and gives
//! its block back itself, so every block is given back exactly once.
//!
//! The epoch never repeats: 2^62 publishes, each an fsynced catalog transaction, cannot happen.
//! That is what makes the validation sound against a consumer stalled for any length of time
//! (a stopped process, a debugger, a descheduled VM) between reading a generation and its CAS:
//! with a narrower epoch that wrapped, the word could return to the very value the consumer read
//! while the generation slot holds other keys. Everything decided from a generation slot is
//! validated the same way:
//! - a **grant** by its CAS;
//! - a **lease** by the epoch it carries: the grant uses it only while its tag is the cursor's
//!   epoch, and it only grows within an epoch, so a grant that fits it fits it still at its CAS;
//! - the **key ids an event names** are read before the CAS that makes the event true;
//! - a **refusal**, which has no CAS, by reloading the cursor on the (cold) refusal path: if the
//!   epoch moved, the slot read may hold a later generation and the request is retried.
//!
//! An Active key that expires is switched by the next caller: it records the offset reached
//! (the *expiry mark*) and moves the cursor to the reserve in one CAS, then seals the Active
//! lease, giving its unused part back.
//!
//! Everything here takes `now` as an argument and reports events through [`PairEvents`], so the
//! same code runs against the memory-mapped state file and under the loom models below.

use crate::error::RecordDamage;
use crate::refusal::Refusal;
use crate::sync::{AtomicU128, AtomicU32, AtomicU64, Ordering};

pub(crate) mod account;
mod grant;
mod lease_slot;
mod publish;
#[cfg(all(test, not(loom)))]
mod races;
mod seat;
#[cfg(test)]
mod testing;

#[cfg(not(loom))]
pub(crate) use account::THRESHOLDS;
pub(crate) use account::{AccountRecord, Accounts};
pub(crate) use lease_slot::{LeaseSlot, Returnable};

/// What a pair's cursor offset counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Metering {
    /// Cumulative bytes drawn from the leases of the Active key, then of the reserve.
    Volume,
    /// Seats held now (a gauge that goes up and down), bounded by the Active key's amount; the
    /// `switched` flag says the reserve has taken over. See `slot::seat`.
    Seats,
}

const METERING_SEATS: u32 = 1;

/// A cursor word: `[exhausted:1 | epoch:62 | switched:1 | offset:64]`.
pub(crate) type Word = u128;

const OFFSET_MASK: Word = u64::MAX as Word;
const SWITCHED_BIT: Word = 1 << 64;
const EPOCH_SHIFT: u32 = 65;
const EPOCH_MASK: u64 = (1 << 62) - 1;
const EXHAUSTED_BIT: Word = 1 << 127;

/// The offset of a cursor word.
#[inline(always)]
fn offset_of(word: Word) -> u64 {
    word as u64
}

/// The epoch of a cursor word.
#[inline(always)]
fn epoch_of(word: Word) -> u64 {
    (word >> EPOCH_SHIFT) as u64 & EPOCH_MASK
}

/// The decoded cursor word.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Cursor {
    /// Which generation is live; its keys sit in slot `epoch & 1`. Below 2^62.
    pub epoch: u64,
    /// Set when the pair switched to the reserve in this generation.
    pub switched: bool,
    /// With `switched`: the Active key ran out (rather than expired).
    pub exhausted: bool,
    /// This pair's use of the key it draws from now (for a seat pair, see `slot::seat`).
    pub offset: u64,
}

impl Cursor {
    #[inline]
    pub(crate) fn unpack(word: Word) -> Cursor {
        Cursor {
            epoch: epoch_of(word),
            switched: word & SWITCHED_BIT != 0,
            exhausted: word & EXHAUSTED_BIT != 0,
            offset: offset_of(word),
        }
    }

    #[inline]
    pub(crate) fn pack(self) -> Word {
        debug_assert!(self.epoch <= EPOCH_MASK);
        (Word::from(self.epoch) << EPOCH_SHIFT)
            | if self.switched { SWITCHED_BIT } else { 0 }
            | if self.exhausted { EXHAUSTED_BIT } else { 0 }
            | Word::from(self.offset)
    }
}

/// One generation's limits and expiries. For a data-volume pair the limits are the keys' whole
/// limits (what views show; 0 means no key); what may be granted is in the leases.
#[repr(C)]
pub(crate) struct Limits {
    active_limit: AtomicU64,
    reserve_limit: AtomicU64,
    active_expiry: AtomicU32,
    reserve_expiry: AtomicU32,
}

/// One generation's cold facts: which catalog keys fill the slots, and what the admin change that
/// created it retired (kept so a crash between the publish and the catalog write loses nothing).
#[repr(C)]
pub(crate) struct GenMeta {
    active_key: AtomicU32,
    reserve_key: AtomicU32,
    switches_before: AtomicU32,
    retired_key: AtomicU32,
    retired_used: AtomicU64,
}

/// One generation's accounts, grace and leases, `[0]` for the Active key and `[1]` for the
/// reserve.
#[repr(C)]
pub(crate) struct GenLeases {
    accounts: [AtomicU32; 2],
    /// A [`Grace`] word (0 in a state written before grace existed: no grace).
    grace: AtomicU64,
    leases: [AtomicU128; 2],
}

/// A generation's grace word: `[epoch tag:30 | reported:2 | reserve days:16 | active days:16]`.
///
/// The days are the keys' `grace_days`, written with the rest of the generation before its
/// publish, so a consumer's read of them is validated by its CAS like the limits'. A `reported`
/// bit is set, by one CAS, by the request that first grants from that key's grace, which so
/// reports [`PairEvent::GraceStarted`] exactly once per generation; the CAS expects the tag of
/// the consumer's epoch (its low 30 bits), so a consumer stalled while its slot was rewritten
/// for a later generation fails it, unless 2^30 publishes (each an fsynced catalog
/// transaction) passed meanwhile, when the worst it could do is mark the later generation's
/// grace as reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Grace(u64);

const GRACE_TAG_SHIFT: u32 = 34;
const GRACE_TAG_MASK: u64 = (1 << 30) - 1;
const SECONDS_PER_DAY: u64 = 86_400;

impl Grace {
    /// The word of a generation `epoch` whose keys have `active` and `reserve` days of grace.
    fn new(epoch: u64, active: u16, reserve: u16) -> Grace {
        Grace(
            (epoch & GRACE_TAG_MASK) << GRACE_TAG_SHIFT
                | u64::from(reserve) << 16
                | u64::from(active),
        )
    }

    /// The days of grace of `side`'s key.
    fn days(self, side: Side) -> u16 {
        (self.0 >> (16 * side as u32)) as u16
    }

    /// Whether the start of `side`'s grace was reported.
    fn reported(self, side: Side) -> bool {
        self.0 & 1 << (32 + side as u32) != 0
    }

    /// Whether this word belongs to generation `epoch` (up to the tag's width).
    fn tagged(self, epoch: u64) -> bool {
        self.0 >> GRACE_TAG_SHIFT == epoch & GRACE_TAG_MASK
    }
}

/// Where an expired key stands in its grace at `now`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum InGrace {
    /// It has no grace.
    None,
    /// It grants until this Unix second.
    Until(u32),
    /// Its grace ended.
    Over,
}

/// A lease word: `[epoch:62 | sealed:1 | last:1 | settling:1 | refilling:15 | end:48]`.
///
/// `end` is where the lease stops, in the cursor's offset space of the key it leases: the pair
/// may grant up to it (48 bits: a pair's use of one key stays below twice
/// [`crate::key::MAX_LIMIT_BYTES`]). `refilling` counts the refills that registered on the lease
/// and have not landed their block yet. `last` says the account had nothing more when the last
/// refill in flight landed, so reaching `end` means the key is used up; only a refill that
/// leaves `refilling` at zero may set it, because until then another block taken from the
/// account may still be on its way into this lease. `sealed` says the generation is over and
/// the unused part was given back. `settling` says the publish that opened the generation has
/// not yet given back the leases of the generation before: until it has, the account still
/// counts them, so no refill takes from it (a refill helps the publish finish first, see
/// [`PairRecord::finish_publish`]). The epoch tags which generation the lease belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Lease {
    epoch: u64,
    sealed: bool,
    last: bool,
    settling: bool,
    refilling: u16,
    end: u64,
}

const LEASE_END_MASK: u64 = (1 << 48) - 1;
const LEASE_REFILLING_SHIFT: u32 = 48;
const LEASE_REFILLING_MAX: u16 = (1 << 15) - 1;
const LEASE_SETTLING: u64 = 1 << 63;
const LEASE_LAST: Word = 1 << 64;
const LEASE_SEALED: Word = 1 << 65;
const LEASE_EPOCH_SHIFT: u32 = 66;

/// How long a refill may stay registered on a lease, with the account empty, before a grant
/// waiting for it takes its process for dead and ends the lease (see [`PairRecord::await_refill`]).
#[cfg(not(loom))]
const REFILL_GIVE_UP: std::time::Duration = std::time::Duration::from_secs(1);

impl Lease {
    fn unpack(word: Word) -> Lease {
        Lease {
            epoch: (word >> LEASE_EPOCH_SHIFT) as u64,
            sealed: word & LEASE_SEALED != 0,
            last: word & LEASE_LAST != 0,
            settling: word as u64 & LEASE_SETTLING != 0,
            refilling: (word as u64 >> LEASE_REFILLING_SHIFT) as u16 & LEASE_REFILLING_MAX,
            end: word as u64 & LEASE_END_MASK,
        }
    }

    fn pack(self) -> Word {
        debug_assert!(self.end <= LEASE_END_MASK && self.refilling <= LEASE_REFILLING_MAX);
        (Word::from(self.epoch) << LEASE_EPOCH_SHIFT)
            | if self.sealed { LEASE_SEALED } else { 0 }
            | if self.last { LEASE_LAST } else { 0 }
            | Word::from(if self.settling { LEASE_SETTLING } else { 0 })
            | Word::from(u64::from(self.refilling) << LEASE_REFILLING_SHIFT)
            | Word::from(self.end & LEASE_END_MASK)
    }

    /// Whether this lease is the live one of a cursor in `epoch`.
    fn live_in(self, epoch: u64) -> bool {
        self.epoch == epoch && !self.sealed
    }
}

/// Which of a generation's two keys a lease or an account belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    Active = 0,
    Reserve = 1,
}

/// The shared record of one slot pair: 256 bytes, the first cache line holding the cursor and
/// both generations' expiries. 256 divides a 512-byte sector, so a record never straddles two
/// sectors (see RELIABILITY.md on torn writes). It lives in the memory-mapped state file and is
/// only ever accessed through atomics; an all-zero record is a valid empty pair.
///
/// | offset | field |
/// | ---: | --- |
/// | 0 | `cursor` (16 bytes) |
/// | 16 | `limits[0]`, `limits[1]` (24 bytes each) |
/// | 64 | `expiry_mark` (16 bytes: epoch, offset) |
/// | 80 | `meta[0]`, `meta[1]` (24 bytes each) |
/// | 128 | `refused_epoch` (8), `owner` (4), `metering` (4) |
/// | 144 | `leases[0]`, `leases[1]` (48 bytes each: two account ids, two lease words) |
/// | 240 | `replaced` (16 bytes): the cursor word the last publish replaced |
#[repr(C, align(64))]
pub struct PairRecord {
    cursor: AtomicU128,
    limits: [Limits; 2],
    expiry_mark: AtomicU128,
    meta: [GenMeta; 2],
    /// The epoch of the last reported refusal plus one (0: none yet).
    refused_epoch: AtomicU64,
    owner: AtomicU32,
    /// [`METERING_SEATS`] for a seat gauge, 0 for a data-volume pair; set once when claimed.
    metering: AtomicU32,
    leases: [GenLeases; 2],
    /// The cursor word the last publish replaced, stored before its CAS, so whoever finishes
    /// that publish (the publisher or a refill helping it) knows what the old generation used.
    replaced: AtomicU128,
}

#[cfg(not(loom))]
const _: () = {
    use std::mem::{offset_of, size_of};
    assert!(size_of::<PairRecord>() == 256);
    assert!(offset_of!(PairRecord, limits) == 16);
    assert!(offset_of!(PairRecord, expiry_mark) == 64);
    assert!(offset_of!(PairRecord, meta) == 80);
    assert!(offset_of!(PairRecord, refused_epoch) == 128);
    assert!(offset_of!(PairRecord, owner) == 136);
    assert!(offset_of!(PairRecord, metering) == 140);
    assert!(offset_of!(PairRecord, leases) == 144);
    assert!(size_of::<GenLeases>() == 48);
    assert!(offset_of!(PairRecord, replaced) == 240);
};

/// Whether a refused request may be granted in part.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    AllOrNothing,
    Partial,
}

/// Why a switch happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SwitchReason {
    /// The Active key's account was used up.
    Exhausted,
    /// The Active key's expiry passed.
    Expired,
}

/// Why a request was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefusalReason {
    /// Not enough bytes left.
    Exhausted,
    /// The keys that could cover it have expired.
    Expired,
    /// The pair holds no key.
    NoActiveKey,
}

/// An event raised on the hot path, with catalog key row ids; cheap to copy, no heap.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PairEvent {
    Switched {
        from: u32,
        to: u32,
        reason: SwitchReason,
    },
    Threshold {
        key: u32,
        percent: u8,
    },
    Refused {
        reason: RefusalReason,
    },
    /// An expired key with no reserve to take over started granting in its grace, which lasts
    /// until `until` (Unix seconds).
    GraceStarted {
        key: u32,
        until: u32,
    },
    /// An expired key's grace ended: the first request after it was refused.
    GraceEnded {
        key: u32,
    },
    /// A key with no reserve held granted its first byte past its limit, into its overage.
    OverageStarted {
        key: u32,
    },
    /// Seats taken back from a process that is gone (see `holders`).
    Reclaimed {
        pid: u32,
        units: u32,
    },
    /// The clock was set back `behind` seconds from `latest`, the latest second seen (an
    /// event of the whole state, pushed with no record).
    ClockRolledBack {
        behind: u32,
        latest: u32,
    },
}

/// Receives hot-path events. Implementations must not block, lock or allocate.
pub(crate) trait PairEvents {
    fn emit(&self, event: PairEvent);
}

/// The part of the cursor space a request may use right now, from the cursor and the leases.
/// Plain `u64`s, so the hot path keeps it in registers.
#[derive(Clone, Copy)]
struct Window {
    /// Cursor offset up to which a grant needs no refill.
    end: u64,
    /// Where the Active lease ends when the window runs on into the reserve's lease (the
    /// Active lease is last); `u64::MAX` when it does not.
    split: u64,
    /// The lease a refill would extend: the one the window ends in, unless it is last.
    refill: Option<Side>,
    /// Whether a request the Active key cannot cover may run on into a valid reserve.
    spill: bool,
}

/// What a grant's CAS did: `len` bytes granted by moving the cursor to `to` (see
/// [`PairRecord::grant_moving`]).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Moved {
    len: u64,
    to: Word,
}

/// The catalog rows of a generation's two keys, read before the CAS that validates them.
#[derive(Clone, Copy)]
struct KeyRows {
    active: u32,
    reserve: u32,
}

impl KeyRows {
    /// The row of the key on `side`.
    fn of(self, side: Side) -> u32 {
        match side {
            Side::Active => self.active,
            Side::Reserve => self.reserve,
        }
    }
}

/// A refusal as the grant decides it, before [`PairRecord::refuse`] reports it and turns it
/// into the public [`Refusal`]. A type of its own because it carries what the public one does
/// not: `GraceOver` names the side whose grace ended (the `GraceEnded` event names its key),
/// and the request's size is added only on the way out, once, rather than threaded through
/// `window` and `seat_bound`.
#[derive(Clone, Copy)]
enum Denied {
    Exhausted {
        remaining: u64,
    },
    NoSeats {
        available: u64,
    },
    Expired,
    /// An expired key's grace ended (a refusal as `Expired`, which also reports the end).
    GraceOver(Side),
    NoActiveKey,
    /// The live generation's lease does not carry its epoch ([`Refusal::CorruptLease`]).
    Damaged,
    /// A fleet host's stock of the key is spent and the store has not given more yet.
    Unavailable,
}

/// What a refill did.
enum Refill {
    /// The lease grew, was marked last, or changed under us: look at the window again.
    Again,
    /// The cursor's generation is over: reload the cursor.
    Stale,
    /// The account is empty but other refills of the lease are still landing their blocks:
    /// wait until the lease word moves from this one, then look again.
    Wait(Side, Word),
    /// The account cannot cover an all-or-nothing request with nothing to fall back on: it has
    /// this many bytes left.
    Short(u64),
    /// A fleet account's stock is short and the store may have more (see `AccountRecord`).
    Unavailable,
}

/// A key in a slot, as the admin side sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct LiveKey {
    /// Catalog row id of the key.
    pub key: u32,
    /// The key's account (0: none, for a seat key).
    pub account: u32,
    /// The key's whole limit (seat amount for a seat key).
    pub limit: u64,
    /// What this pair used of it (seats held for a seat key).
    pub used: u64,
    /// Unix seconds; [`crate::clock::NEVER`] for none.
    pub expiry: u32,
    /// Days an expired Active key keeps granting with no valid reserve (0: none).
    pub grace_days: u16,
}

/// The logical content of a pair: a switch that happened in this generation is already applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PairState {
    pub epoch: u64,
    pub active: Option<LiveKey>,
    pub reserve: Option<LiveKey>,
    /// The key the current generation's switch retired, with this pair's final use of it.
    pub switched_out: Option<(u32, u64)>,
    /// Why that switch happened.
    pub switch_reason: Option<SwitchReason>,
    /// What the admin change that opened this generation retired.
    pub published_retired: Option<(u32, u64)>,
    pub switches: u32,
}

/// What an admin change wants the next generation to hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct NextGen {
    pub active: Option<LiveKey>,
    pub reserve: Option<LiveKey>,
    pub retired: Option<(u32, u64)>,
    pub switches: u32,
}

impl PairRecord {
    /// An empty pair (for tests and loom models; the state file's records start zeroed).
    #[cfg(test)]
    pub(crate) fn new() -> PairRecord {
        let limits = || Limits {
            active_limit: AtomicU64::new(0),
            reserve_limit: AtomicU64::new(0),
            active_expiry: AtomicU32::new(0),
            reserve_expiry: AtomicU32::new(0),
        };
        let meta = || GenMeta {
            active_key: AtomicU32::new(0),
            reserve_key: AtomicU32::new(0),
            switches_before: AtomicU32::new(0),
            retired_key: AtomicU32::new(0),
            retired_used: AtomicU64::new(0),
        };
        let leases = || GenLeases {
            accounts: [AtomicU32::new(0), AtomicU32::new(0)],
            grace: AtomicU64::new(0),
            leases: [AtomicU128::new(0), AtomicU128::new(0)],
        };
        PairRecord {
            cursor: AtomicU128::new(0),
            limits: [limits(), limits()],
            expiry_mark: AtomicU128::new(0),
            meta: [meta(), meta()],
            refused_epoch: AtomicU64::new(0),
            owner: AtomicU32::new(0),
            metering: AtomicU32::new(0),
            leases: [leases(), leases()],
            replaced: AtomicU128::new(0),
        }
    }

    /// The cursor word, as a grant starts from it.
    #[inline(always)]
    fn load_cursor(&self) -> Word {
        // Acquire: pairs with the Release CAS that published this epoch's generation, so the
        // limits, leases and key ids read for it are at least that generation's.
        self.cursor.load(Ordering::Acquire)
    }

    /// The lease word of `side` in generation slot `slot`.
    #[inline(always)]
    fn lease_word(&self, slot: usize, side: Side) -> &AtomicU128 {
        &self.leases[slot].leases[side as usize]
    }

    /// The lease of `side` in generation slot `slot`.
    #[inline(always)]
    fn lease(&self, slot: usize, side: Side) -> Lease {
        // Acquire: pairs with the Release publish of the generation (a later generation's lease
        // makes the validating CAS fail, see the module doc) and with the Release CAS of a
        // refill, whose block was counted in its account before.
        Lease::unpack(self.lease_word(slot, side).load(Ordering::Acquire))
    }

    /// The catalog project id owning this record plus one; 0 for a free record.
    pub(crate) fn owner(&self) -> u32 {
        // Acquire: pairs with the Release in `claim`, so a seen owner comes with a zeroed pair.
        self.owner.load(Ordering::Acquire)
    }

    /// Marks a free record as owned by `owner` (non-zero) and metering as `metering` says.
    pub(crate) fn claim(&self, owner: u32, metering: Metering) {
        self.set_metering(metering);
        // Release: publishes the record's (zero) state and its metering with its owner.
        self.owner.store(owner, Ordering::Release);
    }

    /// Sets how the cursor is read. Only for a record no consumer uses yet (being claimed, or at
    /// open when a state written before seat gauges existed is brought up to date: such records
    /// never moved their cursor, so both readings agree).
    pub(crate) fn set_metering(&self, metering: Metering) {
        let flag = match metering {
            Metering::Volume => 0,
            Metering::Seats => METERING_SEATS,
        };
        // Relaxed: published by the Release store of the owner in `claim`, or before any handle
        // exists at open.
        self.metering.store(flag, Ordering::Relaxed);
    }

    /// How the cursor is read.
    pub(crate) fn metering(&self) -> Metering {
        // Relaxed: written once before the record is shared (see `set_metering`).
        if self.metering.load(Ordering::Relaxed) == METERING_SEATS {
            Metering::Seats
        } else {
            Metering::Volume
        }
    }

    /// What the lease the pair draws from now still holds beyond what it used (0 without one).
    pub(crate) fn room(&self) -> u64 {
        // Acquire: as in `state`.
        let cursor = Cursor::unpack(self.cursor.load(Ordering::Acquire));
        let side = if cursor.switched {
            Side::Reserve
        } else {
            Side::Active
        };
        let lease = self.lease(cursor.epoch as usize & 1, side);
        if lease.live_in(cursor.epoch) {
            lease.end.saturating_sub(cursor.offset)
        } else {
            0
        }
    }
}

/// Where a key that expired at `expiry` stands in a grace of `days` at `now`.
fn grace_at(days: u16, expiry: u32, now: u32) -> InGrace {
    if days == 0 {
        return InGrace::None;
    }
    let until = u64::from(expiry) + u64::from(days) * SECONDS_PER_DAY;
    if u64::from(now) >= until {
        InGrace::Over
    } else {
        // Below `now`'s own range, so it fits.
        InGrace::Until(until as u32)
    }
}

/// Reports a switch made by this caller.
fn report_switch(events: &impl PairEvents, keys: KeyRows, reason: SwitchReason) {
    events.emit(PairEvent::Switched {
        from: keys.active,
        to: keys.reserve,
        reason,
    });
}

#[cfg(all(test, not(loom)))]
mod tests;

#[cfg(all(test, not(loom)))]
mod proptests;

#[cfg(all(test, loom))]
mod loom_models;
