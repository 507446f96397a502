//! Seats on per-machine, per-core and per-instance pairs (rules R16 and R17 in docs/rules.md): the
//! handle the hot path uses, and reclaiming the seats of processes that are gone (see `holders`).

use super::mapped_record;
use crate::mapped::Mapped;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use super::{metering_of, owner_tag, project_row, Engine, Inner};
use crate::catalog::Catalog;
use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::event::EventKind;
use crate::events::HotQueue;
use crate::holders::{HolderEntry, Holders, Process, Reclaimed};
use crate::key::LicenseClass;
use crate::refusal::Refusal;
use crate::slot::{AccountRecord, Accounts, Metering, PairEvent, PairEvents, PairRecord};
use crate::state_file::StateFile;
use crate::worker::Worker;

/// The seats of one pair, as [`SeatHandle::usage`] reads them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SeatUsage {
    /// Seats held now, by every process and the operator together.
    pub held: u64,
    /// The Active key's amount (machines, cores or instances); 0 without a key.
    pub limit: u64,
    /// The Reserved key's amount; 0 without one.
    pub reserved_limit: u64,
    /// Whether a Reserved key is present.
    pub has_reserved: bool,
    /// How many Active→Reserved switches the pair has made.
    pub switches: u64,
}

/// Seats taken back from a process that ended without releasing them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SeatsReclaimed {
    /// The project.
    pub project: String,
    /// The pair's license class.
    pub class: String,
    /// The process that held them.
    pub pid: u32,
    /// How many seats.
    pub units: u64,
}

/// The pid the operator's entries carry: seats taken from the command line belong to no
/// process and stay held until released (the holder table never reclaims them).
const OPERATOR: Process = Process::operator();

impl Engine {
    /// A handle for taking and giving back seats on `project`'s pair of `class` (a seat class:
    /// server or desktop machines, cores, instances). The seats it takes belong to this process:
    /// if the process ends without releasing them, they are reclaimed (see [`Engine::reclaim_seats`]).
    /// A pair without a key yet is created empty, so the handle refuses with `NoActiveKey`
    /// until a key arrives.
    pub fn seats(&self, project: &str, class: LicenseClass) -> Result<SeatHandle> {
        self.seat_handle(project, class, self.inner.me)
    }

    /// Like [`Engine::seats`], but the seats belong to the operator, not to this process: they
    /// stay held after the process ends, until an operator releases them. This is what the
    /// command line's `seat acquire` uses.
    ///
    /// Refused on a fleet host (`InvalidArgument`): its seats are leases the host renews only
    /// while one of its processes runs, so a seat no process holds would expire in the store
    /// and be leased to another host while this one still counted it.
    pub fn operator_seats(&self, project: &str, class: LicenseClass) -> Result<SeatHandle> {
        if self.inner.in_fleet() {
            return Err(Error::InvalidArgument {
                field: "operator seats",
                reason: "a fleet host holds seats only for its running processes".into(),
            });
        }
        self.seat_handle(project, class, OPERATOR)
    }

    fn seat_handle(
        &self,
        project: &str,
        class: LicenseClass,
        owner: Process,
    ) -> Result<SeatHandle> {
        if metering_of(class) != Metering::Seats {
            return Err(Error::Unsupported {
                operation: "taking seats",
                class: class.to_string(),
            });
        }
        let admin = self.admin()?;
        let project = project_row(&admin.catalog, project)?;
        let record = match admin.catalog.pair(project.id, class)? {
            Some(pair) => pair.record,
            None => {
                let tx = admin.catalog.begin()?;
                let record = self.allocate_pair(&tx, project.id, class)?;
                tx.commit().map_err(Error::store("commit new pair"))?;
                self.inner
                    .state
                    .record(record)
                    .claim(owner_tag(project.id), Metering::Seats);
                record
            }
        };
        let (entry, reclaimed) = self.inner.holders.claim(record, owner, &self.inner.state)?;
        log_reclaimed(&admin.catalog, &reclaimed)?;
        Ok(SeatHandle {
            record: mapped_record(&self.inner.state, record),
            // SAFETY: `Holders::claim` bounds-checked the entry in the table that
            // `inner.holders` maps for as long as it lives; an entry is all atomics.
            entry: unsafe { Mapped::new(entry, self.inner.holders.clone()) },
            index: record,
            clock: self.inner.clock.clone(),
            class,
            name: Arc::from(project.name.as_str()),
            inner: Arc::clone(&self.inner),
        })
    }

    /// Takes back the seats of every process that ended without releasing them, and returns
    /// what was reclaimed (each also goes to the audit log).
    pub fn reclaim_seats(&self) -> Result<Vec<SeatsReclaimed>> {
        let admin = self.admin()?;
        let reclaimed = self.inner.holders.reclaim_dead(&self.inner.state);
        log_reclaimed(&admin.catalog, &reclaimed)?;
        reclaimed
            .iter()
            .map(|r| {
                let (project, class) = admin.catalog.pair_of_record(r.record)?;
                Ok(SeatsReclaimed {
                    project,
                    class: class.to_string(),
                    pid: r.pid,
                    units: r.units,
                })
            })
            .collect()
    }
}

/// Appends an audit entry per reclaimed holder.
pub(super) fn log_reclaimed(catalog: &Catalog, reclaimed: &[Reclaimed]) -> Result<()> {
    if reclaimed.is_empty() {
        return Ok(());
    }
    let mut events = Vec::new();
    for r in reclaimed {
        let (project, _) = catalog.pair_of_record(r.record)?;
        events.push((
            project,
            EventKind::SeatsReclaimed {
                pid: r.pid,
                units: r.units,
            },
        ));
    }
    let tx = catalog.begin()?;
    Catalog::append_events_in(&tx, &events)?;
    tx.commit()
        .map_err(Error::store("commit reclaimed seats"))?;
    Ok(())
}

/// A handle on one pair's seats for one owner (this process, or the operator), looked up once:
/// `acquire` and `release` take no lock, make no syscall and allocate nothing. `Clone` is
/// cheap; valid while any clone of its [`Engine`] lives. A handle belongs to the process that
/// made it: after `fork`, the child opens the engine again.
#[derive(Clone)]
pub struct SeatHandle {
    record: Mapped<PairRecord>,
    entry: Mapped<HolderEntry>,
    index: u32,
    clock: Clock,
    class: LicenseClass,
    name: Arc<str>,
    inner: Arc<Inner>,
}

impl SeatHandle {
    /// The project's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The pair's license class.
    pub fn class(&self) -> LicenseClass {
        self.class
    }

    #[inline]
    fn pair(&self) -> &PairRecord {
        self.record.get()
    }

    #[inline]
    fn entry(&self) -> &HolderEntry {
        self.entry.get()
    }

    /// Takes `units` seats, all or nothing: refused with `SeatsExhausted` when the Active key
    /// has fewer free, `Expired` when no valid key covers the pair, `NoActiveKey` without a key.
    /// An expired Active key is switched to the reserve on the way. A refusal for lack of seats
    /// also asks the engine's reclaimer thread to take back the seats of processes that are gone
    /// (a flag, no syscall), so a retry a moment later can succeed.
    ///
    /// On a fleet host the seats are leased from the fleet store one at a time by the engine's
    /// fleet thread: a host with none free refuses `Unavailable` while the store may have more
    /// (its thread leases them within a few milliseconds: retry), and `SeatsExhausted` when
    /// every seat of the key is held across the fleet.
    #[inline]
    pub fn acquire(&self, units: u64) -> Result<(), Refusal> {
        match self.pair().acquire(units, self.clock.now(), self) {
            Ok(_) => {
                // The gauge first, this owner's entry second: a death in between leaves the
                // seats counted as held, never free twice (see `holders`).
                self.entry().add(units);
                // The entry may have been truncated away under us (see `sigbus`): then `add`
                // wrote to this process's zero page, not to the table, so both steps are undone.
                if self.inner.holders.truncated_in_use() {
                    return Err(self.undo_acquire(units));
                }
                Ok(())
            }
            Err(refusal) => Err(self.refused(refusal)),
        }
    }

    /// Gives back `units` seats this owner holds; refused with `NotHeld` (nothing changed) when
    /// it holds fewer. Releasing never depends on the keys' validity.
    #[inline]
    pub fn release(&self, units: u64) -> Result<(), Refusal> {
        // This owner's entry first, the gauge second (see `acquire`).
        self.entry().take(units).map_err(|r| self.refused(r))?;
        if let Err(r) = self.pair().release(units, self) {
            // Only a damaged state holds fewer seats on the gauge than in an entry: put the
            // entry back and say so.
            self.entry().add(units);
            return Err(self.refused(r));
        }
        Ok(())
    }

    /// Seats this owner holds on the pair.
    pub fn held(&self) -> u64 {
        self.entry().held()
    }

    /// The pair's seats and keys now.
    pub fn usage(&self) -> SeatUsage {
        let state = self.pair().state();
        SeatUsage {
            held: state.active.map_or(0, |a| a.used),
            limit: state.active.map_or(0, |a| a.limit),
            reserved_limit: state.reserve.map_or(0, |r| r.limit),
            has_reserved: state.reserve.is_some(),
            switches: u64::from(state.switches),
        }
    }

    #[cold]
    #[inline(never)]
    fn refused(&self, refusal: Refusal) -> Refusal {
        if matches!(refusal, Refusal::SeatsExhausted { .. }) {
            self.inner.reclaimer.request();
        }
        self.inner.refusal(refusal)
    }

    /// Undoes an acquire whose entry went to a truncated table, and refuses it.
    #[cold]
    #[inline(never)]
    fn undo_acquire(&self, units: u64) -> Refusal {
        let _ = self.entry().take(units);
        let _ = self.pair().release(units, self);
        Refusal::SeatTableTruncated
    }
}

impl Accounts for SeatHandle {
    #[inline]
    fn account(&self, id: u32) -> Option<&AccountRecord> {
        self.inner.state.account(id)
    }
}

impl PairEvents for SeatHandle {
    #[inline]
    fn emit(&self, event: PairEvent) {
        self.inner.hot_events.push(self.index, event);
    }
}

/// How often the reclaimer thread looks for a request.
const RECLAIM_POLL: Duration = Duration::from_millis(50);

/// The engine's seat reclaimer: takes back the seats of processes that are gone when a seat
/// refusal asks for it, off the hot path (reading `/proc` is syscalls and allocation).
pub(super) struct Reclaimer {
    wanted: Arc<AtomicBool>,
    _worker: Worker,
}

impl Reclaimer {
    pub(super) fn start(
        state: Arc<StateFile>,
        holders: Arc<Holders>,
        events: Arc<HotQueue>,
    ) -> std::io::Result<Reclaimer> {
        let wanted = Arc::new(AtomicBool::new(false));
        let want = Arc::clone(&wanted);
        let worker = Worker::spawn("tollgate-reclaim", move |stop| {
            while !stop.requested() {
                stop.wait(RECLAIM_POLL);
                // Relaxed: the flag carries no data; the seats reclaimed are published by the
                // gauge's own CAS.
                if want.swap(false, Ordering::Relaxed) {
                    for r in holders.reclaim_dead(&state) {
                        events.push(
                            r.record,
                            PairEvent::Reclaimed {
                                pid: r.pid,
                                units: u32::try_from(r.units).unwrap_or(u32::MAX),
                            },
                        );
                    }
                }
            }
        })?;
        Ok(Reclaimer {
            wanted,
            _worker: worker,
        })
    }

    /// Asks for a reclaim pass; never blocks, no syscall.
    #[inline]
    pub(super) fn request(&self) {
        // Relaxed: see the thread's loop.
        if !self.wanted.load(Ordering::Relaxed) {
            self.wanted.store(true, Ordering::Relaxed);
        }
    }
}
