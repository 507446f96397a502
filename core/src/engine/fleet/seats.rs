//! The fleet thread's side of a seat key (per-machine and per-core): seats are leased from the
//! store one at a time (`Store::take_seat`, drawn whole), so the seats held across the fleet
//! never exceed the key's amount, exactly.
//!
//! - A seat acquire that finds the host's stock short notes how many it wants and is refused
//!   `Unavailable` (the store has seats free) or `SeatsExhausted` (it had none at the last
//!   look); `SeatHandle::acquire` waits a little for the thread in the first case.
//! - Each round the thread leases what the pairs hold plus what they want, one seat per
//!   statement; the ledger records each lease before the stock counts it.
//! - A seat free in the stock for [`IDLE`] goes back to the store (withdrawn from the stock
//!   first, see `AccountRecord::withdraw_seat`), so that another host can lease it.
//! - Leases are renewed every third of their TTL. One the store expired (the host was paused
//!   past it) is lost: the stock shrinks; pairs holding the seat keep it, and acquires are
//!   refused until enough are released.
//! - At an engine's close the free seats go back; seats still held (other processes of the
//!   host) keep their leases for the process that runs the thread next.

use std::time::{Duration, Instant};

use tollgate_store::{AccountKind, LeaseId, Store};

use super::{hold, resume, Held, KeyStock, Later};
use crate::catalog::Catalog;
use crate::slot::AccountRecord;

/// How long a seat stays free in the stock before it goes back to the store.
const IDLE: Duration = Duration::from_secs(1);

/// How often a host whose pairs want seats asks a store that had none free.
const DRY_RETRY: Duration = Duration::from_millis(100);

/// The fleet thread's memory of one seat key, beside its leases.
#[derive(Default)]
pub(super) struct Tending {
    /// Whether the stock was set from the confirmed leases since the thread started.
    known: bool,
    /// Since when seats have sat free in the stock.
    idle_since: Option<Instant>,
    /// When the store last had no seat free.
    asked: Option<Instant>,
}

/// Keeps one seat key's stock at what the host's pairs hold and want.
pub(super) fn tend(
    store: &mut Store,
    catalog: &Catalog,
    host: &str,
    key: &str,
    stock: &mut KeyStock,
    account: &AccountRecord,
) -> Result<(), Later> {
    if !stock.created {
        store.create_account(key, AccountKind::Seats, account.limit())?;
        stock.created = true;
    }
    resume(store, catalog, key, stock, account)?;
    drop_lapsed(store, catalog, stock)?;
    if !stock.seats.known {
        // The leases the ledger holds and the store confirmed are the stock, whatever the
        // mapped state said when the last process that ran the thread stopped.
        account.set_seat_stock(stock.leases.iter().filter(|h| counts(h)).count() as u64);
        stock.seats.known = true;
    }
    give_back_withdrawn(store, catalog, stock)?;
    renew_due(store, catalog, key, stock, account)?;
    lease_wanted(store, catalog, host, key, stock, account)?;
    return_idle(store, catalog, key, stock, account)
}

/// Whether a held seat lease counts in the stock: live, and not withdrawn to go back.
fn counts(held: &Held) -> bool {
    !held.entry.lapsed && held.entry.returned == 0
}

/// Closes in the store, and forgets, the seat leases it expired (found so when the thread
/// starts, or lost at a renewal, which took them out of the stock then).
fn drop_lapsed(store: &mut Store, catalog: &Catalog, stock: &mut KeyStock) -> Result<(), Later> {
    return_where(store, catalog, stock, |held| held.entry.lapsed)
}

/// Returns to the store the seats already withdrawn from the stock whose return did not get
/// through (the store was out of reach, or the process stopped in between).
fn give_back_withdrawn(
    store: &mut Store,
    catalog: &Catalog,
    stock: &mut KeyStock,
) -> Result<(), Later> {
    return_where(store, catalog, stock, |held| held.entry.returned > 0)
}

/// Gives back to the store, and forgets, every seat lease `which` picks (a repeat of a return
/// that got through changes nothing: the store settles a lease once).
fn return_where(
    store: &mut Store,
    catalog: &Catalog,
    stock: &mut KeyStock,
    which: impl Fn(&Held) -> bool,
) -> Result<(), Later> {
    while let Some(at) = stock.leases.iter().position(&which) {
        let id = stock.leases[at].entry.id;
        store.return_seat(LeaseId(id))?;
        catalog.drop_fleet_lease(id)?;
        stock.leases.remove(at);
    }
    Ok(())
}

/// Renews the seat leases a third of their TTL old; one the store expired is lost.
fn renew_due(
    store: &mut Store,
    catalog: &Catalog,
    key: &str,
    stock: &mut KeyStock,
    account: &AccountRecord,
) -> Result<(), Later> {
    let every = store.terms().ttl / 3;
    for held in stock.leases.iter_mut().filter(|h| counts(h)) {
        let Some(lease) = held.lease.as_mut() else {
            continue;
        };
        if lease.is_live() && held.renewed.elapsed() < every && held.entry.seq > 0 {
            continue;
        }
        let seq = held.entry.seq + 1;
        match store.renew(lease, seq, 0, 1) {
            Ok(_) => {
                held.entry.seq = seq;
                held.renewed = Instant::now();
            }
            Err(
                tollgate_store::Error::LeaseExpired { .. }
                | tollgate_store::Error::LeaseClosed { .. },
            ) => {
                // Closed in the store and forgotten at the next round (`drop_lapsed`).
                held.entry.lapsed = true;
                account.lose_seat();
            }
            Err(e) => return Err(e.into()),
        }
        catalog.put_fleet_lease(key, &held.entry)?;
    }
    Ok(())
}

/// Leases seats until the stock covers what the pairs hold and want.
fn lease_wanted(
    store: &mut Store,
    catalog: &Catalog,
    host: &str,
    key: &str,
    stock: &mut KeyStock,
    account: &AccountRecord,
) -> Result<(), Later> {
    let wanted = account.take_wanted();
    let short = (account.taken() + wanted).saturating_sub(account.seat_stock());
    if short == 0 {
        return Ok(());
    }
    if account.is_dry() && stock.seats.asked.is_some_and(|at| at.elapsed() < DRY_RETRY) {
        // Asked lately and none was free: keep the want for the next look.
        account.want(wanted);
        return Ok(());
    }
    for _ in 0..short {
        let lease = match store.take_seat(host, key) {
            Ok(lease) => lease,
            Err(tollgate_store::Error::Exhausted { .. }) => {
                // The want is dropped: acquires refused from now on note theirs again, so a
                // want no caller repeats does not lease the next seat freed.
                account.set_dry(true);
                stock.seats.asked = Some(Instant::now());
                return Ok(());
            }
            Err(e) => {
                account.want(wanted);
                return Err(e.into());
            }
        };
        // The ledger first: a process killed before the stock counts the seat finds the
        // lease there when the thread starts again, and counts it then.
        hold(catalog, key, stock, lease, 0)?;
        account.add_seat();
    }
    account.set_dry(false);
    Ok(())
}

/// Gives back to the store the seats free in the stock for [`IDLE`].
fn return_idle(
    store: &mut Store,
    catalog: &Catalog,
    key: &str,
    stock: &mut KeyStock,
    account: &AccountRecord,
) -> Result<(), Later> {
    if account.free_seats() == 0 {
        stock.seats.idle_since = None;
        return Ok(());
    }
    let since = *stock.seats.idle_since.get_or_insert_with(Instant::now);
    if since.elapsed() < IDLE {
        return Ok(());
    }
    give_back_free(store, catalog, key, stock, account)
}

/// Withdraws every free seat from the stock and gives its lease back to the store.
pub(super) fn give_back_free(
    store: &mut Store,
    catalog: &Catalog,
    key: &str,
    stock: &mut KeyStock,
    account: &AccountRecord,
) -> Result<(), Later> {
    while account.free_seats() > 0 {
        let Some(held) = stock.leases.iter_mut().rev().find(|h| counts(h)) else {
            break;
        };
        if !account.withdraw_seat() {
            break;
        }
        // Recorded before the store hears of it: a return cut off is retried from here.
        held.entry.returned = 1;
        catalog.put_fleet_lease(key, &held.entry)?;
    }
    give_back_withdrawn(store, catalog, stock)
}
