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

use crate::error::Error;
use crate::sync::{AtomicU128, AtomicU32, AtomicU64, Ordering};

pub(crate) mod account;
#[cfg(all(test, not(loom)))]
mod races;
mod seat;
#[cfg(test)]
mod testing;

pub(crate) use account::{AccountRecord, Accounts};

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

/// The catalog rows of a generation's two keys, read before the CAS that validates them.
#[derive(Clone, Copy)]
struct KeyRows {
    active: u32,
    reserve: u32,
}

/// A refusal decided on the hot path; it becomes an [`Error`] only on the way out.
#[derive(Clone, Copy)]
enum Refusal {
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
    /// The live generation's lease does not carry its epoch.
    Damaged,
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

    /// Validates a refusal decided from `word` and the generation slot of its epoch: `Ok` if the
    /// epoch is still live, so the slot held that generation throughout and the refusal was true
    /// when `word` was read; otherwise the current word, to retry from.
    #[cold]
    #[inline(never)]
    fn confirm(&self, word: Word) -> Result<(), Word> {
        // Acquire: the slot's loads before this were Acquire, so if any of them read a later
        // generation's store, the publish that bumped the epoch before that store happens-before
        // this load, which therefore sees the moved epoch.
        let current = self.cursor.load(Ordering::Acquire);
        if epoch_of(current) == epoch_of(word) {
            Ok(())
        } else {
            Err(current)
        }
    }

    /// Grants `want` bytes (all or nothing, or as much as remains in `Partial` mode) and returns
    /// the amount granted. Lock-free: one CAS on the cursor while the lease lasts.
    #[inline(always)]
    pub(crate) fn grant(
        &self,
        want: u64,
        mode: Mode,
        now: u32,
        env: &(impl PairEvents + Accounts),
    ) -> Result<u64, Error> {
        let mut word = self.load_cursor();
        loop {
            let refusal = match self.window(&mut word, now, env) {
                Ok(_) if want == 0 => return Ok(0),
                Ok(w) => {
                    let room = w.end - offset_of(word);
                    let granted = if want <= room {
                        Ok(want)
                    } else if let Some(side) = w.refill {
                        match self.refill(word, side, want - room, mode, w, env) {
                            Refill::Again => continue,
                            Refill::Stale => {
                                word = self.load_cursor();
                                continue;
                            }
                            Refill::Wait(side, seen) => {
                                self.await_refill(word, side, seen, env);
                                continue;
                            }
                            Refill::Short(left) => Err(room + left),
                        }
                    } else if mode == Mode::Partial && room > 0 {
                        Ok(room)
                    } else {
                        Err(room)
                    };
                    match granted {
                        Ok(granted) => match self.advance(word, granted, w, env) {
                            Ok(()) => return Ok(granted),
                            Err(current) => {
                                word = current;
                                continue;
                            }
                        },
                        Err(remaining) => Refusal::Exhausted { remaining },
                    }
                }
                Err(refusal) => refusal,
            };
            match self.confirm(word) {
                Ok(()) => return Err(self.refuse(word, want, refusal, env)),
                Err(current) => word = current,
            }
        }
    }

    /// Grants the longest prefix of `amounts` that fits, in one CAS, and returns how many were
    /// granted with the refusal of the first that was not.
    #[inline]
    pub(crate) fn grant_many(
        &self,
        amounts: &[u64],
        now: u32,
        env: &(impl PairEvents + Accounts),
    ) -> (usize, Result<(), Error>) {
        let mut word = self.load_cursor();
        loop {
            let w = match self.window(&mut word, now, env) {
                Ok(w) => w,
                Err(refusal) => {
                    if let Err(current) = self.confirm(word) {
                        word = current;
                        continue;
                    }
                    let want = amounts.first().copied().unwrap_or(0);
                    return (0, Err(self.refuse(word, want, refusal, env)));
                }
            };
            let room = w.end.saturating_sub(offset_of(word));
            let (mut count, mut sum) = (0usize, 0u64);
            for &amount in amounts {
                if amount > room - sum {
                    break;
                }
                sum += amount;
                count += 1;
            }
            if let (Some(&next), Some(side)) = (amounts.get(count), w.refill) {
                // The first amount that does not fit may fit after a refill; a short account
                // is taken whole, as for a partial grant.
                let need = sum.saturating_add(next).saturating_sub(room);
                match self.refill(word, side, need, Mode::Partial, w, env) {
                    Refill::Again => continue,
                    Refill::Stale => {
                        word = self.load_cursor();
                        continue;
                    }
                    Refill::Wait(side, seen) => {
                        self.await_refill(word, side, seen, env);
                        continue;
                    }
                    // Only a damaged generation (no account) is short for a partial request:
                    // grant what fits and refuse the rest.
                    Refill::Short(_) => {}
                }
            }
            if sum > 0 {
                // A successful CAS validates the window, and with it the refusal that follows.
                if let Err(current) = self.advance(word, sum, w, env) {
                    word = current;
                    continue;
                }
            }
            let Some(&refused) = amounts.get(count) else {
                return (count, Ok(()));
            };
            if sum == 0 {
                if let Err(current) = self.confirm(word) {
                    word = current;
                    continue;
                }
            }
            let refusal = Refusal::Exhausted {
                remaining: room - sum,
            };
            return (count, Err(self.refuse(word, refused, refusal, env)));
        }
    }

    /// Finds the usable window for a request, switching an expired Active key on the way
    /// (which updates `word`).
    #[inline(always)]
    fn window(
        &self,
        word: &mut Word,
        now: u32,
        env: &(impl PairEvents + Accounts),
    ) -> Result<Window, Refusal> {
        loop {
            let cursor = Cursor::unpack(*word);
            let slot = cursor.epoch as usize & 1;
            let limits = &self.limits[slot];
            // Acquire (all four): an admin writes a later generation into this slot with Release
            // stores only after bumping the epoch; if we read such a value, Acquire orders our
            // CAS (or the refusal's reload, `confirm`) after that bump, so it fails instead of
            // acting on a torn generation.
            let active_limit = limits.active_limit.load(Ordering::Acquire);
            if active_limit == 0 {
                return Err(Refusal::NoActiveKey);
            }
            let reserve_limit = limits.reserve_limit.load(Ordering::Acquire);
            let active_expiry = limits.active_expiry.load(Ordering::Acquire);
            let reserve_expiry = limits.reserve_expiry.load(Ordering::Acquire);
            let reserve_valid = reserve_limit > 0 && reserve_expiry > now;
            if cursor.switched {
                let lease = self.lease(slot, Side::Reserve);
                if !lease.live_in(cursor.epoch) {
                    // A later generation owns the slot: this word is stale.
                    *word = self.reload_stale(*word)?;
                    continue;
                }
                if lease.last && cursor.offset >= lease.end {
                    // Used up (which takes precedence over expired): even an empty request is
                    // refused, as it is for a key that was never shared.
                    return Err(Refusal::Exhausted { remaining: 0 });
                }
                let window = Window {
                    end: lease.end,
                    split: u64::MAX,
                    refill: (!lease.last).then_some(Side::Reserve),
                    spill: false,
                };
                if reserve_expiry <= now {
                    return self.in_grace(Side::Reserve, *word, now, window, env);
                }
                return Ok(window);
            }
            let active = self.lease(slot, Side::Active);
            if !active.live_in(cursor.epoch) {
                *word = self.reload_stale(*word)?;
                continue;
            }
            let spent = active.last && cursor.offset >= active.end;
            let reserve_held = reserve_limit > 0;
            if !spent && active_expiry <= now {
                if !reserve_valid {
                    // No reserve can take over: the key grants on while its grace lasts, in
                    // the window the last branch below would give it.
                    let window = Window {
                        end: active.end,
                        split: if active.last && reserve_held {
                            active.end
                        } else {
                            u64::MAX
                        },
                        refill: (!active.last).then_some(Side::Active),
                        spill: false,
                    };
                    return self.in_grace(Side::Active, *word, now, window, env);
                }
                match self.switch_on_expiry(*word, env) {
                    Ok(switched) | Err(switched) => *word = switched,
                }
                continue;
            }
            if spent && !reserve_valid {
                if !reserve_held {
                    return Err(Refusal::Exhausted { remaining: 0 });
                }
                // Used up with an expired reserve: the reserve takes over all the same (as it
                // would have at the grant that used the key up), and its expiry refuses.
                if let Err(current) = self.switch_on_exhaustion(*word, 0, env) {
                    *word = current;
                } else {
                    *word = self.load_cursor();
                }
                continue;
            }
            if !active.last || !reserve_valid {
                return Ok(Window {
                    end: active.end,
                    // The grant that uses the key up switches to a reserve held, valid or not.
                    split: if active.last && reserve_held {
                        active.end
                    } else {
                        u64::MAX
                    },
                    refill: (!active.last).then_some(Side::Active),
                    spill: reserve_valid,
                });
            }
            let reserve = self.lease(slot, Side::Reserve);
            if !reserve.live_in(cursor.epoch) {
                *word = self.reload_stale(*word)?;
                continue;
            }
            return Ok(Window {
                end: active.end + reserve.end,
                split: active.end,
                refill: (!reserve.last).then_some(Side::Reserve),
                spill: false,
            });
        }
    }

    /// Lets an expired key of `side` grant on from `window` while its grace lasts: the window
    /// within the grace (reporting its start once per generation), else the refusal. Decided
    /// from the generation slot, so validated like the window: by the grant's CAS, or `confirm`
    /// for a refusal. Cold and out of line, so the grant's own path keeps its shape.
    #[cold]
    #[inline(never)]
    fn in_grace(
        &self,
        side: Side,
        word: Word,
        now: u32,
        window: Window,
        events: &impl PairEvents,
    ) -> Result<Window, Refusal> {
        let slot = epoch_of(word) as usize & 1;
        let limits = &self.limits[slot];
        // Acquire: as in `window`.
        let expiry = match side {
            Side::Active => limits.active_expiry.load(Ordering::Acquire),
            Side::Reserve => limits.reserve_expiry.load(Ordering::Acquire),
        };
        let cell = &self.leases[slot].grace;
        // Acquire: as the limits' loads in `window`.
        let mut grace = Grace(cell.load(Ordering::Acquire));
        match grace_at(grace.days(side), expiry, now) {
            InGrace::None => Err(Refusal::Expired),
            InGrace::Over => Err(Refusal::GraceOver(side)),
            InGrace::Until(until) => {
                let epoch = epoch_of(word);
                // The key row the event names, read before the CAS that makes it true.
                let keys = self.key_rows(word);
                while !grace.reported(side) && grace.tagged(epoch) {
                    let marked = Grace(grace.0 | 1 << (32 + side as u32));
                    // Relaxed (both): the bit publishes nothing; the CAS only makes "first"
                    // exact. A failure means the other side's bit was set: look again.
                    match cell.compare_exchange_weak(
                        grace.0,
                        marked.0,
                        Ordering::Relaxed,
                        Ordering::Relaxed,
                    ) {
                        Ok(_) => {
                            let key = match side {
                                Side::Active => keys.active,
                                Side::Reserve => keys.reserve,
                            };
                            events.emit(PairEvent::GraceStarted { key, until });
                            break;
                        }
                        Err(now) => grace = Grace(now),
                    }
                }
                Ok(window)
            }
        }
    }

    /// The cursor word after `word` read a lease that is not its generation's live one. A later
    /// publish or switch moved the cursor on; a cursor still at `word` means the lease was
    /// damaged (a live generation's leases carry its epoch until it ends), which is refused.
    #[cold]
    #[inline(never)]
    fn reload_stale(&self, word: Word) -> Result<Word, Refusal> {
        let current = self.load_cursor();
        if current == word {
            return Err(Refusal::Damaged);
        }
        Ok(current)
    }

    /// The account of `side` in generation slot `slot`.
    fn account_of<'a>(
        &self,
        slot: usize,
        side: Side,
        env: &'a impl Accounts,
    ) -> Option<&'a AccountRecord> {
        // Acquire: pairs with the Release store of the generation that named the account; a
        // later generation's id is caught by the lease CAS that follows (its epoch tag).
        env.account(self.leases[slot].accounts[side as usize].load(Ordering::Acquire))
    }

    /// Takes the next block of `side`'s account for a grant that needs `need` bytes beyond the
    /// window and adds it to the lease; marks the lease last when the account is empty and no
    /// other refill is still on its way.
    ///
    /// A refill is three steps: it registers on the lease (`refilling + 1`, one CAS), takes a
    /// block from the account (one CAS there), and lands it (`end + len`, `refilling - 1`, one
    /// CAS). Without the registration, a refill that emptied the account could mark the lease
    /// last while an earlier refill's block was still between the account and the lease: the
    /// pair would switch or refuse with that block in flight, and the block, finding the lease
    /// last, would go back to the account unused. With it, only the refill that leaves
    /// `refilling` at zero decides `last`, from the account as it is then; a new refill cannot
    /// register meanwhile without failing that CAS.
    #[cold]
    #[inline(never)]
    fn refill(
        &self,
        word: Word,
        side: Side,
        need: u64,
        mode: Mode,
        w: Window,
        env: &(impl PairEvents + Accounts),
    ) -> Refill {
        let epoch = epoch_of(word);
        let slot = epoch as usize & 1;
        let cell = self.lease_word(slot, side);
        let Some(account) = self.account_of(slot, side, env) else {
            // A generation with a key but no account is damaged; `check` refuses it at open.
            return Refill::Short(0);
        };
        let mut current = self.lease(slot, side);
        loop {
            if !current.live_in(epoch) {
                return Refill::Stale;
            }
            if current.last {
                return Refill::Again;
            }
            if current.settling {
                // The publish that opened this generation has not given the last one's leases
                // back yet: help it, so the account is whole before we take from it.
                self.finish_publish(env);
                let now = self.lease(slot, side);
                if now == current {
                    // Nothing finished it: the file was damaged. Wait it out like a dead refill.
                    return Refill::Wait(side, current.pack());
                }
                current = now;
                continue;
            }
            if current.refilling == LEASE_REFILLING_MAX {
                // 32,767 refills in flight on one lease: let one of them land first.
                return Refill::Wait(side, current.pack());
            }
            let registered = Lease {
                refilling: current.refilling + 1,
                ..current
            };
            // Relaxed on success: registering publishes nothing; the landing CAS orders the
            // block. Acquire on failure: the retry reads the lease as it is.
            match cell.compare_exchange_weak(
                current.pack(),
                registered.pack(),
                Ordering::Relaxed,
                Ordering::Acquire,
            ) {
                Ok(_) => break,
                Err(now) => current = Lease::unpack(now),
            }
        }
        // An all-or-nothing request that cannot spill into a reserve gains nothing from a
        // partial block: it takes nothing and is refused.
        let whole_or_none = mode == Mode::AllOrNothing && !(side == Side::Active && w.spill);
        let into_overage = self.may_use_overage(slot, side);
        let taken = account.take(need, whole_or_none, into_overage);
        let block = match taken {
            Ok(Some(block)) => Some(block),
            Ok(None) | Err(_) => None,
        };
        let len = block.map_or(0, |b| b.len);
        // The key rows the threshold events name, read before the lease CAS validates them.
        let key = self.key_rows(word);
        let mut current = self.lease(slot, side);
        let landed = loop {
            if !current.live_in(epoch) || current.last {
                // Sealed, of another generation, or ended by a grant that gave this refill up
                // for dead (`await_refill`): the block belongs to nobody. Then the refill stops
                // counting on a sealed lease, which is drained once none counts (`drained`).
                account.give_back(len);
                self.update_sealed(epoch, side, |lease| Lease {
                    refilling: lease.refilling.saturating_sub(1),
                    ..lease
                });
                return Refill::Again;
            }
            // This refill's registration is still counted: only the landing of a registered
            // refill lowers the count, and only a seal or `last` (both handled above) end it.
            let refilling = current.refilling.saturating_sub(1);
            let next = Lease {
                end: current.end + len,
                refilling,
                last: refilling == 0 && account.taken() >= account.ceiling(into_overage),
                ..current
            };
            // Release on success: the block was counted in the account before; a grant that
            // Acquire-loads the grown lease grants from it. Acquire on failure: the retry reads
            // the lease as it is.
            match cell.compare_exchange_weak(
                current.pack(),
                next.pack(),
                Ordering::Release,
                Ordering::Acquire,
            ) {
                Ok(_) => break next,
                Err(now) => current = Lease::unpack(now),
            }
        };
        if let Some(b) = block {
            let row = match side {
                Side::Active => key.active,
                Side::Reserve => key.reserve,
            };
            for percent in account.claim_thresholds(b.from, need.min(b.len)) {
                env.emit(PairEvent::Threshold { key: row, percent });
            }
            if account.claim_overage(b.from, need.min(b.len)) {
                env.emit(PairEvent::OverageStarted { key: row });
            }
        }
        match taken {
            // Blocks of other refills are still landing and may cover the request.
            Ok(None) | Err(_) if !landed.last && landed.refilling > 0 => {
                Refill::Wait(side, landed.pack())
            }
            Err(left) => Refill::Short(left),
            Ok(_) => Refill::Again,
        }
    }

    /// Waits, without a lock, until the lease of `side` in `word`'s generation moves from `seen`:
    /// another refill landed its block, or the lease ended. A refill lands two CASes after it
    /// registers, so this normally spins a few rounds; it only comes into play when the
    /// account is empty. A refill whose process was killed between registering and landing
    /// never lands: after [`REFILL_GIVE_UP`] with the lease still at `seen`, the waiter takes it
    /// for dead and marks the lease last, so the pair switches or refuses as the empty account
    /// says (the dead refill's block, already taken from the account, is lost with it; see
    /// RELIABILITY.md). A refill that was only stalled that long finds the lease last when it
    /// lands and gives its block back.
    #[cold]
    #[inline(never)]
    fn await_refill(&self, word: Word, side: Side, seen: Word, env: &impl Accounts) {
        let epoch = epoch_of(word);
        let cell = self.lease_word(epoch as usize & 1, side);
        let settling = Lease::unpack(seen).settling;
        #[cfg(not(loom))]
        let started = std::time::Instant::now();
        let mut round = 0u32;
        // Acquire: see `lease`.
        while cell.load(Ordering::Acquire) == seen {
            if settling {
                self.finish_publish(env);
            }
            crate::sync::wait_turn(round);
            round = round.saturating_add(1);
            #[cfg(not(loom))]
            if round.is_multiple_of(64) && started.elapsed() >= REFILL_GIVE_UP {
                if settling {
                    // The old generation never drained: a refill of it died mid-flight.
                    self.settle(epoch, side, env);
                    return;
                }
                let lease = Lease::unpack(seen);

                let ended = Lease {
                    last: true,
                    settling: false,
                    refilling: 0,
                    ..lease
                };
                // Release on success: as a landing refill's CAS. Nothing to do on failure: the
                // lease moved, which is what we waited for.
                let _ =
                    cell.compare_exchange(seen, ended.pack(), Ordering::Release, Ordering::Relaxed);
                return;
            }
        }
    }

    /// Moves the cursor from `word` by `granted`, switching to the reserve when the grant runs
    /// past the Active lease. On a lost race returns the cursor's current word.
    #[inline(always)]
    fn advance(
        &self,
        word: Word,
        granted: u64,
        w: Window,
        events: &impl PairEvents,
    ) -> Result<(), Word> {
        let after = offset_of(word) + granted;
        // A grant that ends the Active key exactly switches too: the reserve takes over the
        // instant the Active key is used up, not at the next request.
        if after < w.split {
            return self.move_cursor(word, granted);
        }
        self.switch_on_exhaustion(word, after - w.split, events)
    }

    /// The grant's CAS: moves the cursor from `word` by `granted`, or returns the current word.
    #[inline(always)]
    fn move_cursor(&self, word: Word, granted: u64) -> Result<(), Word> {
        // Relaxed on success: the cursor is the only datum a grant publishes. Acquire on failure:
        // the retry reads the limits of whatever epoch the current word carries.
        self.cursor
            .compare_exchange_weak(
                word,
                word + Word::from(granted),
                Ordering::Relaxed,
                Ordering::Acquire,
            )
            .map(drop)
    }

    /// The grant that ends the Active lease and starts the reserve with `into_reserve` bytes:
    /// one CAS that sets the switched and exhausted flags; the caller whose CAS it is reports
    /// the switch.
    #[cold]
    #[inline(never)]
    fn switch_on_exhaustion(
        &self,
        word: Word,
        into_reserve: u64,
        events: &impl PairEvents,
    ) -> Result<(), Word> {
        let keys = self.key_rows(word);
        let new = Cursor {
            epoch: epoch_of(word),
            switched: true,
            exhausted: true,
            offset: into_reserve,
        }
        .pack();
        // Relaxed on success: the Active key's final use is its lease's end, which is last and
        // so no longer changes; nothing else is published. Acquire on failure: as in
        // `move_cursor`. The key ids were Acquire-loaded before, so this CAS validates them.
        self.cursor
            .compare_exchange(word, new, Ordering::Relaxed, Ordering::Acquire)?;
        report_switch(events, keys, SwitchReason::Exhausted);
        Ok(())
    }

    /// The key rows of the generation `word` names (valid once a CAS from `word` succeeds).
    fn key_rows(&self, word: Word) -> KeyRows {
        let meta = &self.meta[epoch_of(word) as usize & 1];
        // Acquire (both): pairs with the Release stores that published a generation's key ids;
        // one of a later generation orders the validating CAS after its epoch bump (see
        // `window`).
        KeyRows {
            active: meta.active_key.load(Ordering::Acquire),
            reserve: meta.reserve_key.load(Ordering::Acquire),
        }
    }

    /// Switches an expired Active key to the reserve: records where the Active key stopped, then
    /// moves the cursor to the reserve with the switched flag, then gives the unused Active
    /// lease back. Returns the new word if this caller made the switch, the current word
    /// otherwise.
    #[cold]
    #[inline(never)]
    fn switch_on_expiry(
        &self,
        word: Word,
        env: &(impl PairEvents + Accounts),
    ) -> Result<Word, Word> {
        let cursor = Cursor::unpack(word);
        let keys = self.key_rows(word);
        self.raise_mark(cursor.epoch, cursor.offset);
        let new = Cursor {
            epoch: cursor.epoch,
            switched: true,
            exhausted: false,
            offset: 0,
        }
        .pack();
        // Release on success: publishes the expiry mark raised just above to whoever Acquire-loads
        // a cursor with the flag. Acquire on failure: the caller re-reads the limits. The key
        // ids were Acquire-loaded before, so this CAS validates them.
        self.cursor
            .compare_exchange(word, new, Ordering::Release, Ordering::Acquire)?;
        report_switch(env, keys, SwitchReason::Expired);
        self.seal(cursor.epoch, Side::Active, cursor.offset, env);
        Ok(new)
    }

    /// Seals the lease of `side` of generation `epoch` unless it is sealed already, and gives
    /// back what it holds beyond `used`. Exactly one sealer gives back, so a block is never
    /// returned twice; a refill that lands later finds the seal and returns its own block.
    /// While the sealer gives back, the sealed lease carries `settling` ("returning"), so
    /// [`Self::finish_publish`] knows the account is not whole yet.
    fn seal(&self, epoch: u64, side: Side, used: u64, env: &impl Accounts) {
        let slot = epoch as usize & 1;
        let cell = self.lease_word(slot, side);
        let mut current = self.lease(slot, side);
        while current.live_in(epoch) {
            let sealed = Lease {
                sealed: true,
                settling: true,
                ..current
            };
            // AcqRel: Acquire keeps the account read below after the lease read; Release orders
            // the seal before the give-back for whoever sees it.
            match cell.compare_exchange_weak(
                current.pack(),
                sealed.pack(),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    if let Some(account) = self.account_of(slot, side, env) {
                        account.give_back(current.end.saturating_sub(used));
                    }
                    self.update_sealed(epoch, side, |lease| Lease {
                        settling: false,
                        ..lease
                    });
                    return;
                }
                Err(now) => current = Lease::unpack(now),
            }
        }
    }

    /// Applies `change` to the sealed lease of `side` of generation `epoch`, unless the slot
    /// moved on to a later generation.
    fn update_sealed(&self, epoch: u64, side: Side, change: impl Fn(Lease) -> Lease) {
        let slot = epoch as usize & 1;
        let cell = self.lease_word(slot, side);
        let mut current = self.lease(slot, side);
        while current.epoch == epoch && current.sealed {
            // Release on success: orders the give-back before it for `finish_publish`, which
            // Acquire-loads the lease. Acquire on failure: the retry reads the lease as it is.
            match cell.compare_exchange_weak(
                current.pack(),
                change(current).pack(),
                Ordering::Release,
                Ordering::Acquire,
            ) {
                Ok(_) => return,
                Err(now) => current = Lease::unpack(now),
            }
        }
    }

    /// Whether every byte the lease of `side` held in generation `epoch` is back in its account:
    /// it is sealed, its sealer has given back, and no refill of it is still landing (or the
    /// slot has moved on).
    fn drained(&self, epoch: u64, side: Side) -> bool {
        let lease = self.lease(epoch as usize & 1, side);
        lease.epoch != epoch || (lease.sealed && !lease.settling && lease.refilling == 0)
    }

    /// Raises the expiry mark of `epoch` to at least `offset`. The mark is `[epoch:64 |
    /// offset:64]`; a mark of an older epoch is replaced, one of a newer epoch means this caller
    /// is stale and leaves it alone (its cursor CAS fails too). A running maximum is exact for a
    /// data-volume pair: within one epoch its offset only grows, so the switch's own word carries
    /// the largest offset any switcher of the epoch read.
    fn raise_mark(&self, epoch: u64, offset: u64) {
        let wanted = (Word::from(epoch) << 64) | Word::from(offset);
        // Relaxed (load and CAS): the mark is read only after an Acquire load of a cursor whose
        // switched flag was set by a Release CAS sequenced after this raise.
        let mut mark = self.expiry_mark.load(Ordering::Relaxed);
        loop {
            let tag = (mark >> 64) as u64;
            if tag > epoch || (tag == epoch && mark as u64 >= offset) {
                return;
            }
            match self.expiry_mark.compare_exchange_weak(
                mark,
                wanted,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return,
                Err(current) => mark = current,
            }
        }
    }

    /// Where the Active key of `epoch` stopped when it expired, if a switcher recorded it.
    fn expiry_mark_of(&self, epoch: u64) -> Option<u64> {
        // Relaxed: read after an Acquire load of a cursor whose flag a Release CAS set after the
        // mark was raised.
        let mark = self.expiry_mark.load(Ordering::Relaxed);
        ((mark >> 64) as u64 == epoch).then_some(mark as u64)
    }

    /// Reports a refusal once per generation and returns its error. Only for a refusal validated
    /// by [`Self::confirm`] (or by a successful CAS).
    #[cold]
    #[inline(never)]
    fn refuse(
        &self,
        word: Word,
        requested: u64,
        refusal: Refusal,
        events: &impl PairEvents,
    ) -> Error {
        let tag = epoch_of(word) + 1;
        // Relaxed: the tag publishes nothing else; the swap makes "first refusal of the
        // generation" exact, the load only skips the write when it is already reported.
        if self.refused_epoch.load(Ordering::Relaxed) != tag
            && self.refused_epoch.swap(tag, Ordering::Relaxed) != tag
        {
            if let Refusal::GraceOver(side) = refusal {
                let keys = self.key_rows(word);
                let key = match side {
                    Side::Active => keys.active,
                    Side::Reserve => keys.reserve,
                };
                events.emit(PairEvent::GraceEnded { key });
            }
            let reason = match refusal {
                Refusal::Exhausted { .. } | Refusal::NoSeats { .. } => RefusalReason::Exhausted,
                Refusal::Expired | Refusal::GraceOver(_) => RefusalReason::Expired,
                Refusal::NoActiveKey | Refusal::Damaged => RefusalReason::NoActiveKey,
            };
            events.emit(PairEvent::Refused { reason });
        }
        match refusal {
            Refusal::Exhausted { remaining } => Error::Exhausted {
                requested,
                remaining,
            },
            Refusal::NoSeats { available } => Error::SeatsExhausted {
                requested,
                available,
            },
            Refusal::Expired | Refusal::GraceOver(_) => Error::Expired,
            Refusal::NoActiveKey => Error::NoActiveKey,
            Refusal::Damaged => Error::CorruptState {
                path: std::path::PathBuf::from(crate::files::HOT_FILE),
                reason: "a slot pair's lease does not belong to its live generation".into(),
            },
        }
    }

    /// The pair's logical content. Retries only while an admin change is publishing.
    pub(crate) fn state(&self) -> PairState {
        loop {
            // Acquire: pairs with the Release CAS that published the generation read below.
            let word = self.cursor.load(Ordering::Acquire);
            let state = self.state_at(word);
            // Acquire: as above; an unchanged epoch and flag prove the generation read was whole.
            let again = Cursor::unpack(self.cursor.load(Ordering::Acquire));
            let first = Cursor::unpack(word);
            if again.epoch == first.epoch && again.switched == first.switched {
                return state;
            }
        }
    }

    fn state_at(&self, word: Word) -> PairState {
        let cursor = Cursor::unpack(word);
        let i = cursor.epoch as usize & 1;
        let (limits, meta, leases) = (&self.limits[i], &self.meta[i], &self.leases[i]);
        // Acquire (all loads below): pair with the admin's Release stores of this generation.
        let active_limit = limits.active_limit.load(Ordering::Acquire);
        let reserve_limit = limits.reserve_limit.load(Ordering::Acquire);
        let account = |side: usize| leases.accounts[side].load(Ordering::Acquire);
        let grace = Grace(leases.grace.load(Ordering::Acquire));
        let active = LiveKey {
            key: meta.active_key.load(Ordering::Acquire),
            account: account(0),
            limit: active_limit,
            used: cursor.offset,
            expiry: limits.active_expiry.load(Ordering::Acquire),
            grace_days: grace.days(Side::Active),
        };
        let reserve = LiveKey {
            key: meta.reserve_key.load(Ordering::Acquire),
            account: account(1),
            limit: reserve_limit,
            used: 0,
            expiry: limits.reserve_expiry.load(Ordering::Acquire),
            grace_days: grace.days(Side::Reserve),
        };
        let switches_before = meta.switches_before.load(Ordering::Acquire);
        let retired_key = meta.retired_key.load(Ordering::Acquire);
        let published_retired =
            (retired_key != 0).then(|| (retired_key, meta.retired_used.load(Ordering::Acquire)));
        let mut state = PairState {
            epoch: cursor.epoch,
            active: None,
            reserve: None,
            switched_out: None,
            switch_reason: None,
            published_retired,
            switches: switches_before,
        };
        if active_limit == 0 {
            return state;
        }
        if self.metering() == Metering::Seats {
            return seat::state(cursor, state, active, reserve);
        }
        if cursor.switched {
            let stopped_at = if cursor.exhausted {
                self.lease(i, Side::Active).end
            } else {
                self.expiry_mark_of(cursor.epoch)
                    .unwrap_or_else(|| self.lease(i, Side::Active).end)
            };
            state.switched_out = Some((active.key, stopped_at));
            state.switch_reason = Some(if cursor.exhausted {
                SwitchReason::Exhausted
            } else {
                SwitchReason::Expired
            });
            state.active = Some(LiveKey {
                used: cursor.offset,
                ..reserve
            });
            state.switches += 1;
        } else {
            state.active = Some(active);
            state.reserve = (reserve_limit > 0).then_some(reserve);
        }
        state
    }

    /// Publishes the next generation that `plan` derives from the current state, and returns the
    /// state it was derived from with the generation published. Only one admin may publish at a
    /// time (the engine's admin lock); consumers are never blocked and simply retry. Afterwards
    /// the old generation's leases are sealed and their unused parts given back.
    pub(crate) fn publish<E>(
        &self,
        env: &impl Accounts,
        mut plan: impl FnMut(&PairState) -> Result<NextGen, E>,
    ) -> Result<(PairState, NextGen), E> {
        let volume = self.metering() == Metering::Volume;
        if volume {
            // The last publish must be finished (its old generation's leases given back and no
            // refill of them still landing) before we overwrite that generation's slot; a
            // publisher that died after its CAS left that to us.
            self.settle_live(env);
        }
        // Acquire: pairs with the Release CAS of the previous publish.
        let mut word = self.cursor.load(Ordering::Acquire);
        loop {
            let state = self.state_at(word);
            let next = plan(&state)?;
            let epoch = state.epoch + 1;
            let offset = match self.metering() {
                Metering::Volume => next.active.map_or(0, |a| a.used),
                // Seats stay held across admin changes: the gauge carries over unchanged.
                Metering::Seats => seat::held(offset_of(word)),
            };
            // Seats carried onto the new Active key count in its account from before the CAS
            // (a moment of over-counting only refuses) and leave the old bounding key's after.
            let carried = self.seat_carry(word, next.active, offset, env);
            self.write_generation(epoch, &next, offset, volume);
            // Release: published by the cursor CAS below with the generation; read by
            // `finish_publish` after an Acquire load of the cursor.
            self.replaced.store(word, Ordering::Release);
            let new = Cursor {
                epoch,
                switched: false,
                exhausted: false,
                offset,
            }
            .pack();
            // AcqRel: Release publishes the generation just written; Acquire lets a retry read
            // the limits of the epoch it finds.
            match self
                .cursor
                .compare_exchange(word, new, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => {
                    self.raise_mark(epoch, 0);
                    if volume {
                        self.finish_publish(env);
                    }
                    if let Some(from) = carried.0 {
                        from.return_seats(offset);
                    }
                    return Ok((state, next));
                }
                Err(current) => {
                    if let Some(to) = carried.1 {
                        to.return_seats(offset);
                    }
                    word = current;
                }
            }
        }
    }

    /// Finishes the last publish of a data-volume pair: seals the leases of the generation it
    /// replaced, giving their unused part back to the accounts, then clears `settling` on the
    /// live generation's leases so refills may take from the accounts again. Idempotent and
    /// safe to run from any thread: the publisher runs it after its CAS, a refill that finds its
    /// lease settling runs it to help (so a publisher descheduled or killed after its CAS stops
    /// nobody), and the next publish runs it before overwriting the old generation's slot.
    pub(crate) fn finish_publish(&self, env: &impl Accounts) {
        // Acquire (both): pair with the publish's Release store of `replaced` and its Release
        // CAS, so `replaced` is at least the word the live generation's publish replaced.
        let live = self.cursor.load(Ordering::Acquire);
        let replaced = self.replaced.load(Ordering::Acquire);
        let epoch = epoch_of(live);
        if epoch_of(replaced).wrapping_add(1) != epoch {
            return;
        }
        self.seal_generation(replaced, env);
        let old = epoch_of(replaced);
        if self.drained(old, Side::Active) && self.drained(old, Side::Reserve) {
            for side in [Side::Active, Side::Reserve] {
                self.settle(epoch, side, env);
            }
        }
    }

    /// Whether the live generation's leases may take from their accounts (not settling).
    fn settled(&self) -> bool {
        let epoch = epoch_of(self.load_cursor());
        [Side::Active, Side::Reserve]
            .into_iter()
            .all(|side| !self.lease(epoch as usize & 1, side).settling)
    }

    /// Waits (admin side, before a publish overwrites the slot of the generation before the
    /// live one) until the live generation is settled, helping it. Refills of the old
    /// generation still landing are what it waits for; one whose process died is given up
    /// after [`REFILL_GIVE_UP`] and its block is lost with it.
    fn settle_live(&self, env: &impl Accounts) {
        #[cfg(not(loom))]
        let started = std::time::Instant::now();
        let mut round = 0u32;
        loop {
            self.finish_publish(env);
            if self.settled() {
                return;
            }
            crate::sync::wait_turn(round);
            round = round.saturating_add(1);
            #[cfg(not(loom))]
            if round.is_multiple_of(64) && started.elapsed() >= REFILL_GIVE_UP {
                let epoch = epoch_of(self.load_cursor());
                for side in [Side::Active, Side::Reserve] {
                    self.settle(epoch, side, env);
                }
                return;
            }
        }
    }

    /// Whether the key of `side` in generation slot `slot` may draw into its overage: only with
    /// no reserve held to take over at its limit, so for the reserve's own key, or an Active
    /// key alone in its pair.
    fn may_use_overage(&self, slot: usize, side: Side) -> bool {
        // Acquire: as the limits' loads in `window`; a later generation's value is caught by
        // the lease CAS that follows (its epoch tag).
        side == Side::Reserve || self.limits[slot].reserve_limit.load(Ordering::Acquire) == 0
    }

    /// Clears `settling` on the lease of `side` in generation `epoch`, marking it last if its
    /// account is empty (no refill can have registered while it was settling).
    fn settle(&self, epoch: u64, side: Side, env: &impl Accounts) {
        let slot = epoch as usize & 1;
        let cell = self.lease_word(slot, side);
        let account = self.account_of(slot, side, env);
        let ceiling = account.map(|a| a.ceiling(self.may_use_overage(slot, side)));
        let mut current = self.lease(slot, side);
        while current.live_in(epoch) && current.settling {
            let next = Lease {
                settling: false,
                last: current.refilling == 0
                    && account.zip(ceiling).is_some_and(|(a, c)| a.taken() >= c),
                ..current
            };
            // Release on success: as a landing refill's CAS (`last` is decided from the
            // account). Acquire on failure: the retry reads the lease as it is.
            match cell.compare_exchange_weak(
                current.pack(),
                next.pack(),
                Ordering::Release,
                Ordering::Acquire,
            ) {
                Ok(_) => return,
                Err(now) => current = Lease::unpack(now),
            }
        }
    }

    /// Seals both leases of the generation `word` ended, giving back what they hold beyond what
    /// the pair used of each key.
    fn seal_generation(&self, word: Word, env: &impl Accounts) {
        let cursor = Cursor::unpack(word);
        let slot = cursor.epoch as usize & 1;
        let (active_used, reserve_used) = if !cursor.switched {
            (cursor.offset, 0)
        } else if cursor.exhausted {
            (self.lease(slot, Side::Active).end, cursor.offset)
        } else {
            let stopped = self
                .expiry_mark_of(cursor.epoch)
                .unwrap_or_else(|| self.lease(slot, Side::Active).end);
            (stopped, cursor.offset)
        };
        self.seal(cursor.epoch, Side::Active, active_used, env);
        self.seal(cursor.epoch, Side::Reserve, reserve_used, env);
    }

    /// Writes generation `epoch` into its slot; with `settling` (a data-volume pair) its leases
    /// wait for [`Self::finish_publish`] before any refill.
    fn write_generation(&self, epoch: u64, next: &NextGen, offset: u64, settling: bool) {
        let i = epoch as usize & 1;
        let (limits, meta, leases) = (&self.limits[i], &self.meta[i], &self.leases[i]);
        let none = LiveKey {
            key: 0,
            account: 0,
            limit: 0,
            used: 0,
            expiry: crate::clock::NEVER,
            grace_days: 0,
        };
        let active = next.active.unwrap_or(none);
        let reserve = next.reserve.unwrap_or(none);
        let (retired_key, retired_used) = next.retired.unwrap_or((0, 0));
        // Release (every store): pairs with the consumers' Acquire loads; see `window`.
        limits.active_limit.store(active.limit, Ordering::Release);
        limits.reserve_limit.store(reserve.limit, Ordering::Release);
        limits.active_expiry.store(active.expiry, Ordering::Release);
        limits
            .reserve_expiry
            .store(reserve.expiry, Ordering::Release);
        meta.active_key.store(active.key, Ordering::Release);
        meta.reserve_key.store(reserve.key, Ordering::Release);
        meta.switches_before.store(next.switches, Ordering::Release);
        meta.retired_key.store(retired_key, Ordering::Release);
        meta.retired_used.store(retired_used, Ordering::Release);
        leases.accounts[0].store(active.account, Ordering::Release);
        leases.accounts[1].store(reserve.account, Ordering::Release);
        let grace = Grace::new(epoch, active.grace_days, reserve.grace_days);
        leases.grace.store(grace.0, Ordering::Release);
        // The new leases are empty: the first grant of the generation takes a block.
        let empty = |end| {
            Lease {
                epoch,
                sealed: false,
                last: false,
                settling,
                refilling: 0,
                end,
            }
            .pack()
        };
        leases.leases[0].store(empty(offset), Ordering::Release);
        leases.leases[1].store(empty(0), Ordering::Release);
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

    /// The pair's content as a state written before key accounts (format version 2) meant it:
    /// one cursor over both keys' whole limits, the Active key covering `[0, active_limit)`
    /// and the reserve the next range, an exhaustion switch implied by the offset. Only for
    /// converting such a state at open (see `Engine::open`), with no grant running.
    pub(crate) fn legacy_state(&self) -> PairState {
        // Acquire: pairs with the last publish of the build that wrote the state.
        let word = self.cursor.load(Ordering::Acquire);
        let cursor = Cursor::unpack(word);
        let mut state = self.state_at(word);
        let slot = cursor.epoch as usize & 1;
        let (limits, meta) = (&self.limits[slot], &self.meta[slot]);
        // Acquire (all): as above.
        let active_limit = limits.active_limit.load(Ordering::Acquire);
        let reserve_limit = limits.reserve_limit.load(Ordering::Acquire);
        let active = LiveKey {
            key: meta.active_key.load(Ordering::Acquire),
            account: 0,
            limit: active_limit,
            used: cursor.offset.min(active_limit),
            expiry: limits.active_expiry.load(Ordering::Acquire),
            // A state of format 2 had no grace.
            grace_days: 0,
        };
        let reserve = LiveKey {
            key: meta.reserve_key.load(Ordering::Acquire),
            account: 0,
            limit: reserve_limit,
            used: cursor.offset.saturating_sub(active_limit),
            expiry: limits.reserve_expiry.load(Ordering::Acquire),
            grace_days: 0,
        };
        let switches = meta.switches_before.load(Ordering::Acquire);
        state.switches = switches;
        state.switched_out = None;
        state.switch_reason = None;
        if active_limit == 0 {
            return state;
        }
        if reserve_limit > 0 && (cursor.switched || cursor.offset >= active_limit) {
            let stopped_at = if cursor.switched {
                self.expiry_mark_of(cursor.epoch).unwrap_or(active_limit)
            } else {
                active_limit
            };
            state.switched_out = Some((active.key, stopped_at.min(active_limit)));
            state.switch_reason = Some(if cursor.switched {
                SwitchReason::Expired
            } else {
                SwitchReason::Exhausted
            });
            state.active = Some(reserve);
            state.reserve = None;
            state.switches = switches + 1;
        } else {
            state.active = Some(active);
            state.reserve = (reserve_limit > 0).then_some(LiveKey { used: 0, ..reserve });
        }
        state
    }

    /// Whether the live generation of a data-volume pair predates key accounts (a key with no
    /// account): such a state is converted at open before any grant (see `Engine::open`).
    pub(crate) fn needs_accounts(&self) -> bool {
        let state = self.state();
        [state.active, state.reserve]
            .into_iter()
            .flatten()
            .any(|key| key.account == 0)
    }

    /// Checks the record's internal consistency; a violation means the file was damaged.
    pub(crate) fn check(&self) -> Result<(), String> {
        // Acquire: pairs with the last publish.
        let cursor = Cursor::unpack(self.cursor.load(Ordering::Acquire));
        let slot = cursor.epoch as usize & 1;
        let limits = &self.limits[slot];
        let active = limits.active_limit.load(Ordering::Acquire);
        let reserve = limits.reserve_limit.load(Ordering::Acquire);
        if active > crate::key::MAX_LIMIT_BYTES || reserve > crate::key::MAX_LIMIT_BYTES {
            return Err(format!("limit {} beyond the maximum", active.max(reserve)));
        }
        if self.metering() == Metering::Seats {
            return seat::check(cursor);
        }
        if active == 0 {
            return Ok(());
        }
        let side = if cursor.switched {
            Side::Reserve
        } else {
            Side::Active
        };
        let lease = self.lease(slot, side);
        if cursor.switched && reserve == 0 {
            return Err("switched to a reserve the generation does not hold".into());
        }
        if lease.epoch != cursor.epoch && !self.needs_accounts() {
            return Err(format!(
                "lease of generation {} under the cursor of generation {}",
                lease.epoch, cursor.epoch
            ));
        }
        if lease.epoch == cursor.epoch && cursor.offset > lease.end {
            return Err(format!(
                "cursor {} beyond its lease's end {}",
                cursor.offset, lease.end
            ));
        }
        Ok(())
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
