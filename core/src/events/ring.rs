//! The bounded ring that hands hot-path events to the dispatcher: many producers, any number of
//! consumers, and a `push` that never waits for another thread.
//!
//! It is Dmitry Vyukov's bounded MPMC queue. Each slot carries a sequence number that says
//! whose turn it is: `pos` when the slot is free for the producer of position `pos`, `pos + 1`
//! once that producer has written it, `pos + capacity` once the consumer has read it out
//! (free for the producer of the next lap). A producer claims a position by one CAS of the
//! tail, writes the value, and publishes it by storing the sequence.
//!
//! Why not `crossbeam::queue::ArrayQueue`: its `push` spins (with backoff) while the slot it
//! wants is being read out by a consumer that has claimed it but not yet released it, so a hot
//! path stalled behind a descheduled dispatcher. Here a slot that is not free for this lap, full
//! or mid-pop alike, makes `push` return the value at once: the caller drops and counts it. The
//! only retries are a lost CAS (another producer took the position, so the ring made progress)
//! and a stale tail (another producer already moved it): lock-free, never waiting on a thread
//! that is part-way through an operation.

use std::mem::MaybeUninit;

use crate::sync::{AtomicUsize, Ordering, UnsafeCell};

/// One position of the ring.
struct Slot<T> {
    /// Whose turn the slot is (see the module documentation).
    seq: AtomicUsize,
    value: UnsafeCell<MaybeUninit<T>>,
}

/// Keeps the producers' and the consumer's counters off each other's cache line.
#[repr(align(64))]
struct Padded(AtomicUsize);

/// A bounded queue whose `push` and `pop` never wait for another thread.
///
/// Values are `Copy`: the ring never drops one, so none is dropped twice or leaked.
pub(crate) struct Ring<T> {
    slots: Box<[Slot<T>]>,
    /// Capacity minus one; the capacity is a power of two.
    mask: usize,
    /// The next position to read.
    head: Padded,
    /// The next position to write.
    tail: Padded,
}

// SAFETY: a value moves between threads through the ring, which is what `T: Send` allows; a
// slot's value is only accessed by the one thread that owns its position (see `push`, `pop`).
unsafe impl<T: Send> Send for Ring<T> {}
// SAFETY: as above; all shared state besides the values is atomic.
unsafe impl<T: Send> Sync for Ring<T> {}

impl<T: Copy> Ring<T> {
    /// A ring of at least `capacity` slots (rounded up to a power of two, at least 2).
    pub(crate) fn new(capacity: usize) -> Ring<T> {
        let capacity = capacity.max(2).next_power_of_two();
        let slots = (0..capacity)
            .map(|i| Slot {
                seq: AtomicUsize::new(i),
                value: UnsafeCell::new(MaybeUninit::uninit()),
            })
            .collect();
        Ring {
            slots,
            mask: capacity - 1,
            head: Padded(AtomicUsize::new(0)),
            tail: Padded(AtomicUsize::new(0)),
        }
    }

    /// Appends `value`, or gives it back when the slot for the next position is not free: the
    /// ring is full, or the consumer of that slot's previous lap is still reading it out.
    #[inline]
    pub(crate) fn push(&self, value: T) -> Result<(), T> {
        // Relaxed: a guess at the position; the slot's sequence decides.
        let mut pos = self.tail.0.load(Ordering::Relaxed);
        loop {
            let slot = &self.slots[pos & self.mask];
            // Acquire: pairs with the Release in `pop`, so the previous lap's read of the value
            // happens before this write.
            let seq = slot.seq.load(Ordering::Acquire);
            match (seq.wrapping_sub(pos) as isize).signum() {
                0 => {
                    // Relaxed: the CAS only hands out the position; the value is published by
                    // the Release store of the sequence below.
                    match self.tail.0.compare_exchange_weak(
                        pos,
                        pos.wrapping_add(1),
                        Ordering::Relaxed,
                        Ordering::Relaxed,
                    ) {
                        Ok(_) => {
                            // SAFETY: winning the CAS for `pos` while the slot's sequence is
                            // `pos` makes this thread its only user until the store below.
                            slot.value
                                .with_mut(|p| unsafe { p.write(MaybeUninit::new(value)) });
                            // Release: the consumer that Acquire-loads `pos + 1` sees the value.
                            slot.seq.store(pos.wrapping_add(1), Ordering::Release);
                            return Ok(());
                        }
                        Err(now) => pos = now,
                    }
                }
                // Not free for this lap: full, or being read out. Never wait for it.
                -1 => return Err(value),
                // Relaxed: another producer already took `pos`, so the tail has moved on.
                _ => pos = self.tail.0.load(Ordering::Relaxed),
            }
        }
    }

    /// Takes the oldest value, or `None` when there is none ready: the ring is empty, or the
    /// producer of the oldest position has not finished writing it.
    pub(crate) fn pop(&self) -> Option<T> {
        // Relaxed: a guess at the position; the slot's sequence decides.
        let mut pos = self.head.0.load(Ordering::Relaxed);
        loop {
            let slot = &self.slots[pos & self.mask];
            // Acquire: pairs with the Release in `push`, so the value written is visible.
            let seq = slot.seq.load(Ordering::Acquire);
            match (seq.wrapping_sub(pos.wrapping_add(1)) as isize).signum() {
                0 => {
                    // Relaxed: as in `push`; the slot is handed back by the Release below.
                    match self.head.0.compare_exchange_weak(
                        pos,
                        pos.wrapping_add(1),
                        Ordering::Relaxed,
                        Ordering::Relaxed,
                    ) {
                        Ok(_) => {
                            // SAFETY: the sequence `pos + 1` says the producer wrote the value
                            // and released it; winning the CAS makes this thread its only
                            // reader; `T: Copy`, so reading it out leaves nothing to drop.
                            let value = slot.value.with(|p| unsafe { p.read().assume_init() });
                            // Release: the producer of the next lap, which Acquire-loads this,
                            // writes only after the read above.
                            slot.seq
                                .store(pos.wrapping_add(self.mask + 1), Ordering::Release);
                            return Some(value);
                        }
                        Err(now) => pos = now,
                    }
                }
                -1 => return None,
                // Relaxed: another consumer already took `pos`, so the head has moved on.
                _ => pos = self.head.0.load(Ordering::Relaxed),
            }
        }
    }

    /// Whether no position is claimed beyond the last one read: no value is waiting or being
    /// written.
    pub(crate) fn is_empty(&self) -> bool {
        // Acquire (both): a caller that saw a push or pop complete through other means sees
        // the counters it moved.
        self.head.0.load(Ordering::Acquire) == self.tail.0.load(Ordering::Acquire)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;
    use std::sync::Arc;

    #[test]
    fn a_full_ring_gives_the_value_back_and_wraps_after_a_pop() {
        let ring = Ring::new(3);
        for i in 0..4 {
            ring.push(i).unwrap();
        }
        assert_eq!(ring.push(9), Err(9));
        assert_eq!(ring.pop(), Some(0));
        ring.push(4).unwrap();
        let drained: Vec<_> = std::iter::from_fn(|| ring.pop()).collect();
        assert_eq!(drained, [1, 2, 3, 4]);
        assert!(ring.is_empty());
    }

    /// Producers push tagged values while a consumer pops: every value pushed is popped exactly
    /// once, in each producer's order, and every other was handed back (the caller's drop).
    #[test]
    fn producers_and_a_consumer_lose_nothing_but_counted_drops() {
        const PRODUCERS: u64 = 4;
        const EACH: u64 = 200_000;
        let ring = Arc::new(Ring::<u64>::new(64));
        let dropped = Arc::new(AtomicU64::new(0));
        let done = Arc::new(AtomicU64::new(0));
        let producers: Vec<_> = (0..PRODUCERS)
            .map(|p| {
                let (ring, dropped, done) = (ring.clone(), dropped.clone(), done.clone());
                std::thread::spawn(move || {
                    for i in 0..EACH {
                        if ring.push(p << 32 | i).is_err() {
                            // Relaxed: a counter read after the joins.
                            dropped.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                    }
                    // Release: the consumer's Acquire sees this producer's pushes finished.
                    done.fetch_add(1, std::sync::atomic::Ordering::Release);
                })
            })
            .collect();
        let mut last = vec![None::<u64>; PRODUCERS as usize];
        let mut popped = 0u64;
        loop {
            // Acquire: pairs with the producers' Release; read before the final drain.
            let finished = done.load(std::sync::atomic::Ordering::Acquire) == PRODUCERS;
            while let Some(v) = ring.pop() {
                let (p, i) = ((v >> 32) as usize, v & 0xffff_ffff);
                assert!(
                    last[p].is_none_or(|l| l < i),
                    "producer {p}: {i} after {last:?}"
                );
                last[p] = Some(i);
                popped += 1;
            }
            if finished {
                break;
            }
        }
        for producer in producers {
            producer.join().unwrap();
        }
        assert!(ring.is_empty());
        // Relaxed: the producers were joined.
        let dropped = dropped.load(std::sync::atomic::Ordering::Relaxed);
        assert_eq!(popped + dropped, PRODUCERS * EACH);
        assert!(popped > 0);
    }
}

#[cfg(all(test, loom))]
mod loom_models {
    use super::*;
    use loom::sync::Arc;
    use loom::thread;

    /// Two producers and a consumer on a ring of two: whatever the interleaving, each value is
    /// either popped exactly once or handed back to its producer, and nobody waits (loom
    /// explores every schedule; a push or pop that waited for another thread would not end).
    #[test]
    fn two_producers_and_a_consumer_lose_nothing_but_handed_back_values() {
        loom::model(|| {
            let ring = Arc::new(Ring::<u32>::new(2));
            ring.push(0).unwrap();
            let producers: Vec<_> = (1..=2)
                .map(|v| {
                    let ring = ring.clone();
                    thread::spawn(move || ring.push(v).err())
                })
                .collect();
            let mut seen = Vec::new();
            seen.extend(ring.pop());
            let mut handed_back: Vec<u32> = producers
                .into_iter()
                .filter_map(|p| p.join().unwrap())
                .collect();
            seen.extend(std::iter::from_fn(|| ring.pop()));
            seen.append(&mut handed_back);
            seen.sort_unstable();
            assert_eq!(seen, [0, 1, 2]);
        });
    }

    /// A producer racing a consumer that is reading out the slot the producer needs (the ring
    /// is full): the push is refused or lands after the read, and never overwrites it.
    #[test]
    fn a_push_into_a_slot_being_read_out_is_refused_not_waited_for() {
        loom::model(|| {
            let ring = Arc::new(Ring::<u32>::new(2));
            ring.push(1).unwrap();
            ring.push(2).unwrap();
            let consumer = {
                let ring = ring.clone();
                thread::spawn(move || ring.pop())
            };
            let pushed = ring.push(3);
            assert_eq!(consumer.join().unwrap(), Some(1));
            let rest: Vec<_> = std::iter::from_fn(|| ring.pop()).collect();
            match pushed {
                Ok(()) => assert_eq!(rest, [2, 3]),
                Err(3) => assert_eq!(rest, [2]),
                Err(other) => panic!("handed back {other}"),
            }
        });
    }
}
