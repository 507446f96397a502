//! A fleet host's stock of seats: the seats of a seat key's store account that this host holds
//! leases of (`supply`, a gauge here, where a data-volume account's is cumulative), bounding the
//! seats its pairs hold (`taken`). The fleet thread (`engine::fleet_seats`) raises the stock one
//! leased seat at a time and lowers it when seats sit idle, so that another host can lease them.
//!
//! Lowering the stock races the acquires that raise `taken`, on two words. Both sides change
//! their word, then a `SeqCst` fence, then read the other word: Dekker's pattern. The fences
//! are in one total order; whichever side's fence comes second reads the other side's change
//! (C++20 [atomics.fences]: a load after the later fence sees the store before the earlier
//! one), so at least one side sees that the two together went over and undoes its own change.
//! An acquire that undoes reports the seats as not free; a withdrawal that undoes keeps the
//! seat. Neither is ever acknowledged beyond the stock. (Fences rather than `SeqCst`
//! accesses: loom models `SeqCst` fences, so `slot::loom_models` checks this very code.)

use super::{AccountRecord, Ordering, FLEET};
use crate::sync::fence;

/// The bit of `fleet` that makes a fleet account a seat key's (its stock a gauge).
pub(super) const SEATS: u64 = 1 << 2;

impl AccountRecord {
    /// Makes this account a fleet seat account with no seats leased yet (admin, before any
    /// pair names it): its pairs hold only seats the fleet thread leased from the store.
    pub(crate) fn make_fleet_seats(&self) {
        // Relaxed: ordered before the flag by the Release `fetch_or` below.
        self.supply.store(0, Ordering::Relaxed);
        // Release: see `fleet_flags`. Keeps DRY as it was.
        self.fleet.fetch_or(FLEET | SEATS, Ordering::Release);
    }

    /// Whether this is a fleet seat account.
    pub(crate) fn is_fleet_seats(&self) -> bool {
        self.fleet_flags() & (FLEET | SEATS) == FLEET | SEATS
    }

    /// Takes `units` seats of a fleet seat account if this host's stock has them free, else
    /// returns how many are free (see the module doc for the race with a withdrawal).
    pub(super) fn take_fleet_seats(&self, units: u64) -> Result<(), u64> {
        // Relaxed (every access here): the `SeqCst` fence orders the pair (module doc); the
        // words guard no other data.
        let mut taken = self.taken.load(Ordering::Relaxed);
        loop {
            let free = self.supply.load(Ordering::Relaxed).saturating_sub(taken);
            if units > free {
                return Err(free);
            }
            if let Err(current) = self.taken.compare_exchange_weak(
                taken,
                taken + units,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                taken = current;
                continue;
            }
            fence(Ordering::SeqCst);
            if taken + units <= self.supply.load(Ordering::Relaxed) {
                return Ok(());
            }
            // A withdrawal came first and the two together went over: undo, look again.
            self.return_seats(units);
            taken = self.taken.load(Ordering::Relaxed);
        }
    }

    /// Seats of this host's stock no pair holds.
    // Used by the fleet thread, which loom builds leave out (and by the loom models).
    #[cfg_attr(loom, allow(dead_code))]
    pub(crate) fn free_seats(&self) -> u64 {
        // Relaxed (both): a hint for the fleet thread; `withdraw_seat` decides.
        let supply = self.supply.load(Ordering::Relaxed);
        supply.saturating_sub(self.taken.load(Ordering::Relaxed))
    }

    /// The seats this host holds leases of.
    // Used by the fleet thread, which loom builds leave out (and by the loom models).
    #[cfg_attr(loom, allow(dead_code))]
    pub(crate) fn seat_stock(&self) -> u64 {
        // Relaxed: only the fleet thread changes it (and `take_fleet_seats` reads it).
        self.supply.load(Ordering::Relaxed)
    }

    /// Adds one seat the store leased to this host (once the ledger records its lease).
    // Used by the fleet thread, which loom builds leave out (and by the loom models).
    #[cfg_attr(loom, allow(dead_code))]
    pub(crate) fn add_seat(&self) {
        // Relaxed: raising the stock only lets acquires take more; the seat's lease was
        // acknowledged by the store before, and it guards no data here.
        self.supply.fetch_add(1, Ordering::Relaxed);
    }

    /// Takes one free seat out of the stock, so that its lease can go back to the store; false
    /// when none is free (a pair took it meanwhile).
    // Used by the fleet thread, which loom builds leave out (and by the loom models).
    #[cfg_attr(loom, allow(dead_code))]
    pub(crate) fn withdraw_seat(&self) -> bool {
        // Relaxed (every access here): the `SeqCst` fence orders the pair (module doc).
        let lowered = self
            .supply
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |s| s.checked_sub(1));
        let Ok(before) = lowered else {
            return false;
        };
        fence(Ordering::SeqCst);
        if self.taken.load(Ordering::Relaxed) < before {
            return true;
        }
        // An acquire came first and the two together went over: keep the seat.
        self.supply.fetch_add(1, Ordering::Relaxed);
        false
    }

    /// Takes out of the stock a seat whose lease the store no longer holds for this host (it
    /// expired while the host was paused): pairs holding it keep it, and acquires are refused
    /// until enough are released.
    // Used by the fleet thread, which loom builds leave out (and by the loom models).
    #[cfg_attr(loom, allow(dead_code))]
    pub(crate) fn lose_seat(&self) {
        // Relaxed: lowering the stock only refuses acquires, which read it after their CAS
        // (module doc); saturates (a stock already at zero lost nothing more).
        let _ = self
            .supply
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |s| s.checked_sub(1));
    }

    /// Sets the stock to the seats whose leases the fleet thread confirmed with the store (when
    /// it starts running the host's leases).
    // Used by the fleet thread, which loom builds leave out (and by the loom models).
    #[cfg_attr(loom, allow(dead_code))]
    pub(crate) fn set_seat_stock(&self, seats: u64) {
        // Relaxed: as in `lose_seat` when it lowers the stock, as in `add_seat` when it raises
        // it; a stock set below `taken` refuses acquires until enough seats are released.
        self.supply.store(seats, Ordering::Relaxed);
    }
}
