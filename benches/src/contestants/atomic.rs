//! The physical floors: a bare `AtomicU64::fetch_add` on a counter in its own cache line, the
//! bare compare-and-swap loop that any design checking a limit before charging needs, and the
//! same loop on a 128-bit word (the width of Tollgate's cursor, whose epoch never wraps).

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::Contestant;
use crate::fixture::BenchResult;
use crate::harness::{Calls, Sharing, Worker};

/// A counter alone in a 128-byte block, so per-thread counters never share a line (nor the
/// adjacent line the prefetcher pairs with it).
#[repr(align(128))]
#[derive(Default)]
pub struct Padded(pub AtomicU64);

/// `fetch_add(1)` with no limit check: what any metering must at least cost.
pub struct BareAtomic;

impl Contestant for BareAtomic {
    fn name(&self) -> &'static str {
        "atomic"
    }

    fn op(&self) -> &'static str {
        "AtomicU64::fetch_add(1)"
    }

    fn workers(&self, threads: usize, sharing: Sharing) -> BenchResult<Vec<Box<dyn Worker>>> {
        let counters: Arc<[Padded]> = (0..threads).map(|_| Padded::default()).collect();
        Ok((0..threads)
            .map(|t| {
                let counters = Arc::clone(&counters);
                let slot = sharing.slot(t);
                Box::new(Calls(move || {
                    // Relaxed: the counter is the only datum, as in a metering fast path.
                    black_box(counters[slot].0.fetch_add(1, Ordering::Relaxed));
                })) as Box<dyn Worker>
            })
            .collect())
    }
}

/// `load` + `compare_exchange_weak(v, v + 1)` until it succeeds, with no limit check: the floor
/// of a design that must see the counter before it charges (as a limit check does). Under
/// contention a CAS can fail and retry, which `fetch_add` never does.
pub struct BareCas;

impl Contestant for BareCas {
    fn name(&self) -> &'static str {
        "cas_loop"
    }

    fn op(&self) -> &'static str {
        "AtomicU64 load + CAS(v, v+1) loop"
    }

    fn workers(&self, threads: usize, sharing: Sharing) -> BenchResult<Vec<Box<dyn Worker>>> {
        let counters: Arc<[Padded]> = (0..threads).map(|_| Padded::default()).collect();
        Ok((0..threads)
            .map(|t| {
                let counters = Arc::clone(&counters);
                let slot = sharing.slot(t);
                Box::new(Calls(move || {
                    let counter = &counters[slot].0;
                    // Relaxed: as for `BareAtomic`; the failure value feeds the retry.
                    let mut seen = counter.load(Ordering::Relaxed);
                    while let Err(now) = counter.compare_exchange_weak(
                        seen,
                        seen + 1,
                        Ordering::Relaxed,
                        Ordering::Relaxed,
                    ) {
                        seen = now;
                    }
                    black_box(seen);
                })) as Box<dyn Worker>
            })
            .collect())
    }
}

/// A 128-bit word alone in a 128-byte block.
#[repr(align(128))]
#[derive(Default)]
pub struct Padded128(pub portable_atomic::AtomicU128);

/// [`BareCas`] on a 128-bit word (cmpxchg16b on x86_64): the floor of Tollgate's cursor, which
/// packs a 63-bit epoch beside a 64-bit offset. Its ratio to `cas_loop` is the cost of a cursor
/// that cannot wrap (see `core/src/slot.rs`).
pub struct BareCas128;

impl Contestant for BareCas128 {
    fn name(&self) -> &'static str {
        "cas128_loop"
    }

    fn op(&self) -> &'static str {
        "AtomicU128 load + CAS(v, v+1) loop"
    }

    fn workers(&self, threads: usize, sharing: Sharing) -> BenchResult<Vec<Box<dyn Worker>>> {
        let words: Arc<[Padded128]> = (0..threads).map(|_| Padded128::default()).collect();
        Ok((0..threads)
            .map(|t| {
                let words = Arc::clone(&words);
                let slot = sharing.slot(t);
                Box::new(Calls(move || {
                    let word = &words[slot].0;
                    // Relaxed: as for `BareCas`.
                    let mut seen = word.load(Ordering::Relaxed);
                    while let Err(now) = word.compare_exchange_weak(
                        seen,
                        seen + 1,
                        Ordering::Relaxed,
                        Ordering::Relaxed,
                    ) {
                        seen = now;
                    }
                    black_box(seen);
                })) as Box<dyn Worker>
            })
            .collect())
    }
}
