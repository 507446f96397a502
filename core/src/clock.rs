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
#[derive(Clone, Debug)]
pub struct Clock(Arc<AtomicU32>);

impl Clock {
    /// The process-wide system clock, refreshed every 100 ms by one background thread.
    pub fn system() -> Clock {
        static SYSTEM: OnceLock<Clock> = OnceLock::new();
        SYSTEM
            .get_or_init(|| {
                let cell = Arc::new(AtomicU32::new(system_secs()));
                let ticker = Arc::clone(&cell);
                std::thread::Builder::new()
                    .name("tollgate-clock".into())
                    .spawn(move || loop {
                        std::thread::sleep(TICK);
                        // Relaxed: the second is the only datum published; readers need no other memory.
                        ticker.store(system_secs(), Ordering::Relaxed);
                    })
                    .expect("spawn the tollgate clock thread");
                Clock(cell)
            })
            .clone()
    }

    /// A clock that only moves when told to, for tests and simulations.
    pub fn manual(unix_secs: u32) -> Clock {
        Clock(Arc::new(AtomicU32::new(unix_secs)))
    }

    /// Sets a manual clock (also works on the system clock until its next tick).
    pub fn set(&self, unix_secs: u32) {
        // Relaxed: as for the ticker, the value is self-contained.
        self.0.store(unix_secs, Ordering::Relaxed);
    }

    /// The current Unix second.
    #[inline]
    pub fn now(&self) -> u32 {
        // Relaxed: a stale second only delays an expiry by one tick, which the coarse clock allows.
        self.0.load(Ordering::Relaxed)
    }
}

fn system_secs() -> u32 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs().min(u64::from(NEVER - 1)) as u32)
        .unwrap_or(0)
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
}
