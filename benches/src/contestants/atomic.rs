//! The physical floors: a bare `AtomicU64::fetch_add` on a counter in its own cache line, the
//! bare compare-and-swap loop that any design checking a limit before charging needs, and the
//! same loop on a 128-bit word (the width of Tollgate's cursor, whose epoch never wraps).

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use portable_atomic::AtomicU128;

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

/// A word a CAS loop can increment: `AtomicU64`, or the 128-bit word of Tollgate's cursor.
pub trait CasWord: Default + Send + Sync + 'static {
    /// The contestant's name in the tables.
    const NAME: &'static str;
    /// What one call does, in the tables.
    const OP: &'static str;
    /// `load` + `compare_exchange_weak(v, v + 1)` until it succeeds.
    fn increment(&self);
}

/// Implements [`CasWord`] for an atomic integer type (the two differ only in width).
macro_rules! cas_word {
    ($atomic:ty, $name:literal, $op:literal) => {
        impl CasWord for $atomic {
            const NAME: &'static str = $name;
            const OP: &'static str = $op;

            fn increment(&self) {
                // Relaxed: as for `BareAtomic`; the failure value feeds the retry.
                let mut seen = self.load(Ordering::Relaxed);
                while let Err(now) =
                    self.compare_exchange_weak(seen, seen + 1, Ordering::Relaxed, Ordering::Relaxed)
                {
                    seen = now;
                }
                black_box(seen);
            }
        }
    };
}

cas_word!(AtomicU64, "cas_loop", "AtomicU64 load + CAS(v, v+1) loop");
cas_word!(
    AtomicU128,
    "cas128_loop",
    "AtomicU128 load + CAS(v, v+1) loop"
);

/// A word alone in a 128-byte block.
#[repr(align(128))]
#[derive(Default)]
struct PaddedWord<W>(W);

/// `load` + `compare_exchange_weak(v, v + 1)` until it succeeds, with no limit check: the floor
/// of a design that must see the counter before it charges (as a limit check does). Under
/// contention a CAS can fail and retry, which `fetch_add` never does. On a 128-bit word (the
/// width of Tollgate's cursor, whose epoch never wraps) its ratio to the 64-bit loop is what a
/// cursor that cannot wrap costs (see `core/src/slot.rs`).
pub struct BareCas<W>(std::marker::PhantomData<W>);

impl<W> Default for BareCas<W> {
    fn default() -> BareCas<W> {
        BareCas(std::marker::PhantomData)
    }
}

impl<W: CasWord> Contestant for BareCas<W> {
    fn name(&self) -> &'static str {
        W::NAME
    }

    fn op(&self) -> &'static str {
        W::OP
    }

    fn workers(&self, threads: usize, sharing: Sharing) -> BenchResult<Vec<Box<dyn Worker>>> {
        let words: Arc<[PaddedWord<W>]> = (0..threads).map(|_| PaddedWord::default()).collect();
        Ok((0..threads)
            .map(|t| {
                let words = Arc::clone(&words);
                let slot = sharing.slot(t);
                Box::new(Calls(move || words[slot].0.increment())) as Box<dyn Worker>
            })
            .collect())
    }
}
