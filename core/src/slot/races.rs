//! Stress tests of the races between admin publishes and the hot path that loom cannot reach:
//! loom 0.7 skips interleavings where a thread loads a location before storing to it
//! (tokio-rs/loom#166), which is exactly how a publish reads the live generation and writes the
//! next. Each test runs a publisher that hammers generations while consumers grant, refuse and
//! report, and asserts exact totals, zero false refusals and events naming charged keys.

use super::testing::{accounts_field, TestAccounts};
use super::*;
use crate::clock::NEVER;
use std::sync::atomic::{AtomicBool, AtomicU64 as Counter, Ordering as Std};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long each stress test hammers (the publisher stops at the first of this and its count).
const RUN_FOR: Duration = Duration::from_millis(1500);
/// Most publishes a stress test makes.
const MAX_PUBLISHES: u64 = 4_000_000;
const CONSUMERS: usize = 2;
const TERA: u64 = 1_000_000_000_000;

/// Counts refusals and keeps every other event.
#[derive(Default)]
struct Log {
    refusals: Counter,
    events: Mutex<Vec<PairEvent>>,
    accounts: TestAccounts,
}

accounts_field!(Log);

impl Log {
    /// A log with `count` accounts.
    fn with_accounts(count: usize) -> Log {
        Log {
            accounts: TestAccounts::with_count(count),
            ..Log::default()
        }
    }

    /// Publishes `next`, opening the accounts it names; returns the state it replaced.
    fn publish(&self, record: &PairRecord, next: NextGen) -> PairState {
        self.accounts.open_for(&next);
        record.publish::<()>(self, |_| Ok(next)).unwrap().0
    }
}

impl PairEvents for Log {
    fn emit(&self, event: PairEvent) {
        if matches!(event, PairEvent::Refused { .. }) {
            self.refusals.fetch_add(1, Std::Relaxed);
        } else {
            self.events.lock().unwrap().push(event);
        }
    }
}

/// A key whose account id is its row.
fn live(key: u32, limit: u64, used: u64, expiry: u32) -> LiveKey {
    LiveKey {
        key,
        account: key,
        limit,
        used,
        expiry,
        grace_days: 0,
    }
}

/// Everything a state says was charged in its generation (data volume), checking that it stayed
/// on the Active key.
fn used(state: &PairState) -> u64 {
    assert_eq!(state.switched_out, None, "{state:?}");
    state.active.map_or(0, |a| a.used) + state.reserve.map_or(0, |r| r.used)
}

/// Publishes a first generation, then runs `consume` on [`CONSUMERS`] threads while `publish`
/// runs on this one until [`RUN_FOR`] or `max` publishes; returns the publishes made and the sum
/// of what the consumers returned.
fn hammer(
    max: u64,
    mut publish: impl FnMut(u64),
    consume: impl Fn(&AtomicBool) -> u64 + Sync,
) -> (u64, u64) {
    let stop = AtomicBool::new(false);
    publish(0);
    std::thread::scope(|scope| {
        let consumers: Vec<_> = (0..CONSUMERS)
            .map(|_| scope.spawn(|| consume(&stop)))
            .collect();
        let started = Instant::now();
        let mut publishes = 1;
        while publishes < max && started.elapsed() < RUN_FOR {
            publish(publishes);
            publishes += 1;
        }
        stop.store(true, Std::Relaxed);
        let consumed = consumers.into_iter().map(|c| c.join().unwrap()).sum();
        (publishes, consumed)
    })
}

/// Defect 1 for `grant` and `grant_many`: generations alternate in pairs between two shapes, so
/// the slot a stalled consumer read is rewritten two publishes later with limits its offset does
/// not fit. Every generation has at least 0.5 TB free and the consumers take single bytes, so
/// any refusal is false; every byte granted must be charged to the generation it was granted in.
#[test]
fn two_publishes_never_make_a_consumer_refuse_or_lose_a_byte() {
    let record = PairRecord::new();
    let log = Log::default();
    // (active limit, where the generation starts, reserve limit).
    let shapes = [(2 * TERA, 19 * TERA / 10, TERA), (TERA, 0, TERA / 2)];
    let mut base = 0;
    let mut charged = 0;
    let (publishes, granted) = hammer(
        MAX_PUBLISHES,
        |n| {
            let (active, start, reserve) = shapes[(n / 2 % 2) as usize];
            let before = log.publish(
                &record,
                NextGen {
                    active: Some(live(1, active, start, NEVER)),
                    reserve: Some(live(2, reserve, 0, NEVER)),
                    retired: None,
                    switches: 0,
                },
            );
            charged += used(&before) - base;
            base = start;
        },
        |stop| {
            let mut granted = 0;
            let mut turn = 0u64;
            while !stop.load(Std::Relaxed) {
                turn += 1;
                granted += match turn % 3 {
                    0 => record.grant(1, Mode::AllOrNothing, 0, &log).unwrap_or(0),
                    1 => record.grant(1, Mode::Partial, 0, &log).unwrap_or(0),
                    _ => {
                        let (count, _) = record.grant_many(&[1, 1], 0, &log);
                        count as u64
                    }
                };
            }
            granted
        },
    );
    charged += used(&record.state()) - base;
    let refusals = log.refusals.load(Std::Relaxed);
    eprintln!(
        "{publishes} publishes, {granted} bytes granted, {charged} charged, {refusals} refused"
    );
    assert!(publishes > 1_000, "only {publishes} publishes");
    assert_eq!(refusals, 0, "false refusals");
    assert_eq!(granted, charged, "granted != charged");
    assert!(granted > 0);
}

/// Defect 1 for seats: a consumer that read a switched generation (expired flag set) must not
/// judge its gauge by the limits of the generation written two publishes later (no reserve, so
/// a bound of 0). Every generation has 1,000 seats free for two consumers holding one each.
#[test]
fn two_publishes_never_make_a_seat_acquire_refuse() {
    let record = PairRecord::new();
    record.set_metering(Metering::Seats);
    let log = Log::default();
    let now = 100;
    let seat = |key, expiry| LiveKey {
        account: 0,
        ..live(key, 1_000, 0, expiry)
    };
    let (publishes, acquired) = hammer(
        MAX_PUBLISHES,
        |n| {
            // Two generations whose Active key expired at 1 (the first caller switches to the
            // reserve), then two with a valid Active key and no reserve.
            let expired = n / 2 % 2 == 0;
            log.publish(
                &record,
                NextGen {
                    active: Some(seat(1, if expired { 1 } else { NEVER })),
                    reserve: expired.then(|| seat(2, NEVER)),
                    retired: None,
                    switches: 0,
                },
            );
        },
        |stop| {
            let mut acquired = 0;
            while !stop.load(Std::Relaxed) {
                if record.acquire(1, now, &log).is_ok() {
                    record.release(1, &log).unwrap();
                    acquired += 1;
                }
            }
            acquired
        },
    );
    let refusals = log.refusals.load(Std::Relaxed);
    eprintln!("{publishes} publishes, {acquired} seats acquired and released, {refusals} refused");
    assert!(publishes > 1_000, "only {publishes} publishes");
    assert_eq!(refusals, 0, "false refusals");
    assert!(acquired > 0);
    assert_eq!(record.state().active.unwrap().used, 0, "seats left held");
}

/// Most publishes of the events test: each generation has two accounts of its own.
const EVENT_GENERATIONS: u64 = 20_000;

/// Defect 2: every switch and threshold event names keys of the generation whose CAS made it
/// true. Generation `g` holds Active key `2g` (100 bytes, starting at 79 used, one byte below
/// its 80 % threshold) and reserve `2g + 1`, each with an account of its own (id = row), so
/// nearly every generation's first grants cross thresholds and the switch. An event naming a
/// key of another generation shows up as a threshold whose key's account was never charged past
/// it, a switch between keys of two generations, or a duplicate.
#[test]
fn events_name_only_keys_their_grant_charged() {
    let record = PairRecord::new();
    let log = Log::with_accounts(2 * EVENT_GENERATIONS as usize + 4);
    // The final usage of each generation's Active key, by key row.
    let mut final_used = std::collections::HashMap::new();
    let (publishes, _) = hammer(
        EVENT_GENERATIONS,
        |n| {
            let gen = n as u32 + 1;
            let before = log.publish(
                &record,
                NextGen {
                    active: Some(live(2 * gen, 100, 79, NEVER)),
                    reserve: Some(live(2 * gen + 1, TERA, 0, NEVER)),
                    retired: None,
                    switches: 0,
                },
            );
            if let Some((key, used)) = before.switched_out {
                final_used.insert(key, used);
            } else if let Some(active) = before.active {
                final_used.insert(active.key, active.used);
            }
        },
        |stop| {
            let mut want = 0;
            while !stop.load(Std::Relaxed) {
                want = want % 7 + 1;
                let _ = record.grant(want, Mode::AllOrNothing, 0, &log);
            }
            0
        },
    );
    let last = record.state();
    if let Some((key, used)) = last.switched_out {
        final_used.insert(key, used);
    } else if let Some(active) = last.active {
        final_used.insert(active.key, active.used);
    }
    assert!(publishes > 1_000, "only {publishes} publishes");
    let events = std::mem::take(&mut *log.events.lock().unwrap());
    eprintln!("{publishes} publishes, {} events checked", events.len());
    let mut seen = std::collections::HashSet::new();
    for event in &events {
        assert!(
            seen.insert(format!("{event:?}")),
            "reported twice: {event:?}"
        );
        match *event {
            PairEvent::Threshold { key, percent } => {
                // A threshold is reported when the block reaching it is leased (see
                // `slot::account`): the account of the key named must be the one that
                // reported it.
                let bit = account::THRESHOLDS
                    .iter()
                    .position(|&p| p == percent)
                    .unwrap();
                assert!(
                    log.accounts.get(key).reported() & (1 << bit) != 0,
                    "{event:?}, but key {key}'s account never reached {percent} %"
                );
            }
            PairEvent::Switched { from, to, .. } => {
                assert_eq!(to, from + 1, "a switch between two generations' keys");
                assert_eq!(final_used.get(&from), Some(&100), "{event:?}");
            }
            _ => {}
        }
    }
    assert!(
        events
            .iter()
            .any(|e| matches!(e, PairEvent::Switched { .. })),
        "no switch happened"
    );
}

/// Defect 3: a consumer stalled between reading a generation and its CAS while 65,536
/// publishes return the cursor word to the very value it read (as a 16-bit epoch would) must
/// fail its CAS, not grant against limits it never read.
#[test]
fn a_consumer_stalled_across_65536_publishes_cannot_grant() {
    let record = PairRecord::new();
    let log = Log::default();
    let key = |row, limit| NextGen {
        active: Some(live(row, limit, 0, NEVER)),
        reserve: None,
        retired: None,
        switches: 0,
    };
    log.publish(&record, key(1, 1_000));
    record.grant(1, Mode::AllOrNothing, 0, &log).unwrap();
    // Acquire: as in `grant`.
    let mut word = record.cursor.load(Ordering::Acquire);
    let window = record.window(&mut word, 0, &log).ok().unwrap();
    for _ in 0..65_536 {
        log.publish(&record, key(2, 10));
    }
    assert!(record.advance(word, 500, window, &log).is_err());
    assert_eq!(record.state().active.unwrap().used, 0);
    assert_eq!(
        log.accounts.get(1).taken(),
        1,
        "the unused lease went back, once"
    );
    assert_eq!(record.grant(500, Mode::AllOrNothing, 0, &log).ok(), None);
}
