//! Events (rule R29 in docs/rules.md): how the hot path hands them off without waiting, and how
//! they reach the durable audit log and in-process subscribers (what they say is `event`).
//!
//! The hot path only pushes a 16-byte [`RawEvent`] into a bounded ring (`ring`) whose push never
//! waits for another thread; a full ring, or a slot still being read out, drops and counts. A dispatcher thread resolves names, appends the events to the audit log and
//! offers each to every subscriber with `try_send`; a full subscriber drops and counts too.
//! Admin changes write their events in the same transaction as the change.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crossbeam::channel::{Receiver, Sender, TrySendError};
use parking_lot::Mutex;

use crate::catalog::{Catalog, HotEvent};
use crate::event::{Event, EventKind};
use crate::key::rfc3339_secs;
use crate::slot::{PairEvent, RefusalReason, SwitchReason};
use crate::worker::Worker;
use ring::Ring;

mod ring;

/// The record of events about the whole state, not one pair.
pub(crate) const NO_RECORD: u32 = u32::MAX;

/// A hot-path event before names are resolved.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RawEvent {
    record: u32,
    event: PairEvent,
}

/// The bounded hand-off from the hot path to the dispatcher; pushing never waits.
pub(crate) struct HotQueue {
    queue: Ring<RawEvent>,
    dropped: AtomicU64,
}

impl HotQueue {
    pub(crate) fn new(capacity: usize) -> HotQueue {
        HotQueue {
            queue: Ring::new(capacity),
            dropped: AtomicU64::new(0),
        }
    }

    pub(crate) fn dropped(&self) -> u64 {
        // Relaxed: a statistic; nothing is published with it.
        self.dropped.load(Ordering::Relaxed)
    }

    /// Hands an event of `record` to the dispatcher; never waits, drops and counts when the
    /// ring has no free slot.
    pub(crate) fn push(&self, record: u32, event: PairEvent) {
        if self.queue.push(RawEvent { record, event }).is_err() {
            // Relaxed: a statistic; nothing is published with it.
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The in-process subscribers.
#[derive(Default)]
pub(crate) struct Subscribers {
    senders: Mutex<Vec<Sender<Event>>>,
    dropped: AtomicU64,
}

impl Subscribers {
    pub(crate) fn subscribe(&self, capacity: usize) -> Subscription {
        let (tx, rx) = crossbeam::channel::bounded(capacity.max(1));
        self.senders.lock().push(tx);
        Subscription { receiver: rx }
    }

    /// Offers every event to every subscriber; never blocks.
    pub(crate) fn broadcast(&self, events: &[Event]) {
        if events.is_empty() {
            return;
        }
        let mut senders = self.senders.lock();
        senders.retain(|tx| {
            for event in events {
                match tx.try_send(event.clone()) {
                    Ok(()) => {}
                    Err(TrySendError::Full(_)) => {
                        // Relaxed: a statistic; nothing is published with it.
                        self.dropped.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(TrySendError::Disconnected(_)) => return false,
                }
            }
            true
        });
    }

    pub(crate) fn dropped(&self) -> u64 {
        // Relaxed: a statistic.
        self.dropped.load(Ordering::Relaxed)
    }
}

/// A stream of this process's events. Events of other processes reach the audit log only (see
/// [`Engine::events_after`](crate::Engine::events_after)).
pub struct Subscription {
    receiver: Receiver<Event>,
}

impl Subscription {
    /// The next event, waiting at most `timeout`.
    pub fn recv_timeout(&self, timeout: Duration) -> Option<Event> {
        self.receiver.recv_timeout(timeout).ok()
    }

    /// The next event if one is waiting.
    pub fn try_recv(&self) -> Option<Event> {
        self.receiver.try_recv().ok()
    }

    /// The underlying channel, for `select!`.
    pub fn receiver(&self) -> &Receiver<Event> {
        &self.receiver
    }
}

/// How often the dispatcher looks at the hot queue when it is idle.
const DISPATCH_INTERVAL: Duration = Duration::from_millis(5);

/// The dispatcher thread: hot queue → audit log → subscribers.
pub(crate) struct Dispatcher {
    _worker: Worker,
}

/// Called by the dispatcher's thread after each round, with its catalog and whether the round
/// held an event saying a key was seen expired; it must return quickly when it has nothing to do.
pub(crate) type Tick = Box<dyn FnMut(&Catalog, bool) + Send>;

impl Dispatcher {
    pub(crate) fn start(
        queue: Arc<HotQueue>,
        subscribers: Arc<Subscribers>,
        catalog: Catalog,
        mut tick: Tick,
    ) -> std::io::Result<Dispatcher> {
        let worker = Worker::spawn("tollgate-events", move |stop| {
            let mut names = Names::default();
            let mut pending: Vec<HotEvent> = Vec::new();
            loop {
                // Events pushed before the engine asked to stop are seen (`Stop::requested`).
                let stopping = stop.requested();
                let mut ready = false;
                let mut expired = false;
                while let Some(raw) = queue.queue.pop() {
                    ready = true;
                    expired |= saw_expiry(&raw.event);
                    pending.push(names.resolve(&catalog, raw));
                    if pending.len() >= 1024 {
                        break;
                    }
                }
                if !pending.is_empty() {
                    if let Ok(events) = catalog.append_hot_events(&pending) {
                        subscribers.broadcast(&events);
                        pending.clear();
                    }
                }
                tick(&catalog, expired);
                if stopping && queue.queue.is_empty() {
                    return;
                }
                // Nothing ready: the ring is empty, or a producer is still writing the
                // oldest event; either way look again later rather than spin.
                if pending.is_empty() && !ready {
                    stop.wait(DISPATCH_INTERVAL);
                }
            }
        })?;
        Ok(Dispatcher { _worker: worker })
    }
}

/// Whether a hot-path event says a key was seen expired: the latest time seen is then recorded
/// at once (see `engine::clock_rollback`).
fn saw_expiry(event: &PairEvent) -> bool {
    matches!(
        event,
        PairEvent::Refused {
            reason: RefusalReason::Expired
        } | PairEvent::Switched {
            reason: SwitchReason::Expired,
            ..
        }
    )
}

/// A cache of record → project and key row → key id, filled from the catalog.
#[derive(Default)]
struct Names {
    projects: HashMap<u32, String>,
    keys: HashMap<u32, String>,
}

impl Names {
    /// The event with names, and for a switch the row of the key it moved out.
    fn resolve(&mut self, catalog: &Catalog, raw: RawEvent) -> HotEvent {
        let project = if raw.record == NO_RECORD {
            String::new()
        } else {
            self.projects
                .entry(raw.record)
                .or_insert_with(|| {
                    catalog
                        .project_of_record(raw.record)
                        .unwrap_or_else(|_| format!("#record-{}", raw.record))
                })
                .clone()
        };
        let mut key = |row: u32| -> String {
            self.keys
                .entry(row)
                .or_insert_with(|| {
                    catalog
                        .key_id(row)
                        .unwrap_or_else(|_| format!("#key-{row}"))
                })
                .clone()
        };
        let mut switch = None;
        let kind = match raw.event {
            PairEvent::Switched { from, to, reason } => {
                switch = Some(from);
                EventKind::Switched {
                    from: key(from),
                    to: key(to),
                    reason,
                }
            }
            PairEvent::Threshold { key: row, percent } => EventKind::Threshold {
                key: key(row),
                percent,
            },
            PairEvent::Refused { reason } => EventKind::Refused { reason },
            PairEvent::GraceStarted { key: row, until } => EventKind::GraceStarted {
                key: key(row),
                until: rfc3339_secs(until),
            },
            PairEvent::GraceEnded { key: row } => EventKind::GraceEnded { key: key(row) },
            PairEvent::OverageStarted { key: row } => EventKind::OverageStarted { key: key(row) },
            PairEvent::Reclaimed { pid, units } => EventKind::SeatsReclaimed {
                pid,
                units: u64::from(units),
            },
            PairEvent::ClockRolledBack { behind, latest } => EventKind::ClockRolledBack {
                behind_secs: behind,
                latest_seen: rfc3339_secs(latest),
            },
        };
        (project, kind, switch)
    }
}
