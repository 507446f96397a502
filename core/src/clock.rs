//! A coarse wall clock the hot path can read with one relaxed load.
//!
//! Expiry is judged in whole seconds. Reading the time with a syscall (or even the vDSO) on every
//! `consume` would cost more than the grant itself, so a ticker thread stores the current Unix
//! second in an atomic a few times a second and the hot path only loads it.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The hot state's "never expires" value.
pub(crate) const NEVER: u32 = u32::MAX;

/// How often the system ticker refreshes the time: expiry is seen at most this late.
const TICK: Duration = Duration::from_millis(100);

/// A source of "now" in Unix seconds, cheap enough to read on every grant.
///
/// The time it gives never goes backwards: it is the latest second its source (the system
/// clock, or [`Clock::set`]) has shown, so a clock set back cannot revive an expired key. How
/// far the source is behind that latest second is [`Clock::rolled_back`]; the engine reports a
/// rollback beyond its tolerance as an event (issue: clock tampering).
#[derive(Clone, Debug)]
pub struct Clock(Arc<Seconds>);

#[derive(Debug)]
struct Seconds {
    /// The latest second seen: what expiry is judged by.
    latest: AtomicU32,
    /// The source's last reading, which may be behind `latest` after a rollback.
    source: AtomicU32,
}

impl Seconds {
    fn new(now: u32) -> Arc<Seconds> {
        Arc::new(Seconds {
            latest: AtomicU32::new(now),
            source: AtomicU32::new(now),
        })
    }

    fn observe(&self, now: u32) {
        // Relaxed (both): each second is self-contained; readers need no other memory.
        self.source.store(now, Ordering::Relaxed);
        self.latest.fetch_max(now, Ordering::Relaxed);
    }
}

impl Clock {
    /// The process-wide system clock, refreshed every 100 ms by one background thread.
    pub fn system() -> Clock {
        static SYSTEM: OnceLock<Clock> = OnceLock::new();
        SYSTEM
            .get_or_init(|| {
                let cell = Seconds::new(system_secs());
                let ticker = Arc::clone(&cell);
                std::thread::Builder::new()
                    .name("tollgate-clock".into())
                    .spawn(move || loop {
                        std::thread::sleep(TICK);
                        ticker.observe(system_secs());
                    })
                    .expect("spawn the tollgate clock thread");
                Clock(cell)
            })
            .clone()
    }

    /// A clock that only moves when told to, for tests and simulations.
    pub fn manual(unix_secs: u32) -> Clock {
        Clock(Seconds::new(unix_secs))
    }

    /// Sets the source of a manual clock (also works on the system clock until its next tick).
    /// Setting it back models a clock rollback: [`Clock::now`] stays at the latest second seen.
    pub fn set(&self, unix_secs: u32) {
        self.0.observe(unix_secs);
    }

    /// The latest Unix second seen: what expiry is judged by.
    #[inline]
    pub fn now(&self) -> u32 {
        // Relaxed: a stale second only delays an expiry by one tick, which the coarse clock allows.
        self.0.latest.load(Ordering::Relaxed)
    }

    /// The word [`Clock::now`] loads, for a thread handle's inlined block path.
    #[cfg(not(loom))]
    pub(crate) fn latest_word(&self) -> &AtomicU32 {
        &self.0.latest
    }

    /// The source's own reading, which a rollback puts behind [`Clock::now`].
    pub fn source(&self) -> u32 {
        // Relaxed: as in `now`.
        self.0.source.load(Ordering::Relaxed)
    }

    /// How many seconds the source is behind the latest second seen (0 without a rollback).
    pub fn rolled_back(&self) -> u32 {
        self.now().saturating_sub(self.source())
    }

    /// Moves the latest second seen up to `unix_secs` (a time this state saw before, read back
    /// from its catalog), never down.
    pub(crate) fn advance_to(&self, unix_secs: u32) {
        // Relaxed: as in `Seconds::observe`.
        self.0.latest.fetch_max(unix_secs, Ordering::Relaxed);
    }
}

fn system_secs() -> u32 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs().min(u64::from(NEVER - 1)) as u32)
        .unwrap_or(0)
}

/// `CLOCK_MONOTONIC` in nanoseconds, the clock `std::time::Instant` reads on Linux: the same in
/// every process of the machine, so a deadline stored in the mapped state means the same to
/// all of them. Read through the vDSO, no syscall; for cold paths (a fleet stock's deadline is
/// checked once per pair block).
#[cfg(not(loom))]
pub(crate) fn monotonic_ns() -> u64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid, writable `timespec`; CLOCK_MONOTONIC is always supported on
    // Linux, so the call cannot fail (and a failure would leave the zeros: an early deadline).
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    now.tv_sec as u64 * 1_000_000_000 + now.tv_nsec as u64
}

/// `at` on the [`monotonic_ns`] clock (1 for an instant already past, so that it is never
/// 0, which means "no deadline").
#[cfg(not(loom))]
pub(crate) fn monotonic_at(at: std::time::Instant) -> u64 {
    let now = std::time::Instant::now();
    match at.checked_duration_since(now) {
        Some(ahead) => monotonic_ns().saturating_add(ahead.as_nanos() as u64),
        None => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_clock_tracks_the_wall_clock() {
        let clock = Clock::system();
        let wall = system_secs();
        assert!(clock.now().abs_diff(wall) <= 1);
    }

    #[test]
    fn manual_clock_moves_only_when_set() {
        let clock = Clock::manual(100);
        assert_eq!(clock.now(), 100);
        clock.set(200);
        assert_eq!(clock.now(), 200);
    }

    #[test]
    fn a_clock_set_back_keeps_the_latest_second_and_says_by_how_much() {
        let clock = Clock::manual(1_000);
        clock.set(400);
        assert_eq!(
            (clock.now(), clock.source(), clock.rolled_back()),
            (1_000, 400, 600)
        );
        clock.advance_to(1_500);
        clock.advance_to(1_200);
        assert_eq!((clock.now(), clock.rolled_back()), (1_500, 1_100));
        clock.set(1_600);
        assert_eq!((clock.now(), clock.rolled_back()), (1_600, 0));
    }
}
