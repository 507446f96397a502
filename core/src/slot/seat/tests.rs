//! Unit tests of the seat gauges.

use super::super::testing::TestAccounts;
use super::super::NextGen;
use super::*;
use crate::clock::NEVER;
use std::sync::atomic::AtomicUsize;

#[derive(Default)]
struct Switches(AtomicUsize);

/// Seat pairs of these tests have no accounts (`account: 0`): the pair bounds its gauge.
impl Accounts for Switches {
    fn account(&self, _: u32) -> Option<&AccountRecord> {
        None
    }
}

impl PairEvents for Switches {
    fn emit(&self, event: PairEvent) {
        if matches!(event, PairEvent::Switched { .. }) {
            self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

fn seats(active: (u64, u32), reserve: Option<(u64, u32)>) -> PairRecord {
    let record = PairRecord::new();
    record.set_metering(Metering::Seats);
    let key = |row, (limit, expiry)| LiveKey {
        account: 0,
        key: row,
        limit,
        used: 0,
        expiry,
        grace_days: 0,
    };
    record
        .publish::<()>(&TestAccounts::default(), |_| {
            Ok(NextGen {
                active: Some(key(1, active)),
                reserve: reserve.map(|r| key(2, r)),
                retired: None,
                switches: 0,
            })
        })
        .unwrap();
    record
}

/// Events and the accounts of the account tests below.
#[derive(Default)]
struct Shared {
    accounts: TestAccounts,
}
crate::slot::testing::accounts_field!(Shared);

impl PairEvents for Shared {
    fn emit(&self, _: PairEvent) {}
}

/// A seat pair drawing from accounts: Active key row `active.0` of account `active.1`, with
/// amount `active.2` and expiry `active.3`; the reserve likewise.
fn seats_on(
    env: &Shared,
    active: (u32, u32, u64, u32),
    reserve: Option<(u32, u32, u64, u32)>,
) -> PairRecord {
    let record = PairRecord::new();
    record.set_metering(Metering::Seats);
    let key = |(row, account, limit, expiry)| LiveKey {
        account,
        key: row,
        limit,
        used: 0,
        expiry,
        grace_days: 0,
    };
    let next = NextGen {
        active: Some(key(active)),
        reserve: reserve.map(key),
        retired: None,
        switches: 0,
    };
    for (account, limit) in [Some((active.1, active.2)), reserve.map(|r| (r.1, r.2))]
        .into_iter()
        .flatten()
    {
        let account = env.accounts.get(account);
        if !account.is_account() {
            account.open(limit, 0, 0, 1);
        }
    }
    record.publish::<()>(&env.accounts, |_| Ok(next)).unwrap();
    record
}

#[test]
fn pairs_holding_one_seat_key_share_its_amount() {
    let env = Shared::default();
    let pairs: Vec<PairRecord> = (0..3)
        .map(|_| seats_on(&env, (1, 1, 5, NEVER), None))
        .collect();
    assert_eq!(pairs[0].acquire(2, 0, &env).unwrap(), 2);
    assert_eq!(pairs[1].acquire(2, 0, &env).unwrap(), 2);
    // One seat is left anywhere: the third pair may take it, not two.
    match pairs[2].acquire(2, 0, &env) {
        Err(Refusal::SeatsExhausted { available: 1, .. }) => {}
        other => panic!("expected SeatsExhausted with 1 available, got {other:?}"),
    }
    assert_eq!(pairs[2].acquire(1, 0, &env).unwrap(), 1);
    assert!(matches!(
        pairs[0].acquire(1, 0, &env),
        Err(Refusal::SeatsExhausted { available: 0, .. })
    ));
    // A release on one pair lets another acquire.
    assert_eq!(pairs[1].release(1, &env).unwrap(), 1);
    assert_eq!(pairs[0].acquire(1, 0, &env).unwrap(), 3);
    assert_eq!(env.accounts.get(1).taken(), 5);
    // A probe takes nothing.
    assert_eq!(pairs[1].acquire(0, 0, &env).unwrap(), 1);
    for (pair, held) in pairs.iter().zip([3, 1, 1]) {
        pair.release(held, &env).unwrap();
    }
    assert_eq!(env.accounts.get(1).taken(), 0);
}

#[test]
fn an_expiry_switch_carries_the_seats_onto_the_reserves_account() {
    let env = Shared::default();
    // Pair a: key 1 (account 1, 4 seats, expires at 10), reserve key 2 (account 2, 5
    // seats). Pair b: key 2 Active.
    let a = seats_on(&env, (1, 1, 4, 10), Some((2, 2, 5, NEVER)));
    let b = seats_on(&env, (2, 2, 5, NEVER), None);
    a.acquire(3, 0, &env).unwrap();
    b.acquire(2, 0, &env).unwrap();
    assert_eq!(
        (env.accounts.get(1).taken(), env.accounts.get(2).taken()),
        (3, 2)
    );
    // The switch moves a's 3 seats onto key 2, which is then full.
    a.covers(20, &env).unwrap();
    assert_eq!(
        (env.accounts.get(1).taken(), env.accounts.get(2).taken()),
        (0, 5)
    );
    assert!(matches!(
        b.acquire(1, 20, &env),
        Err(Refusal::SeatsExhausted { available: 0, .. })
    ));
    // A release after the switch gives back to key 2's account.
    a.release(1, &env).unwrap();
    assert_eq!(env.accounts.get(2).taken(), 4);
    assert_eq!(b.acquire(1, 20, &env).unwrap(), 3);
}

#[test]
fn a_publish_carries_the_seats_held_to_the_next_keys_account() {
    let env = Shared::default();
    let record = seats_on(&env, (1, 1, 4, NEVER), None);
    record.acquire(3, 0, &env).unwrap();
    // Replace key 1 by key 2 (account 2): the 3 seats held count against key 2 now.
    env.accounts.get(2).open(6, 0, 0, 1);
    replace_active(&record, &env.accounts, (2, 2, 6));
    assert_eq!(
        (env.accounts.get(1).taken(), env.accounts.get(2).taken()),
        (0, 3)
    );
    assert_eq!(record.reclaim(2, &env), 2);
    assert_eq!(env.accounts.get(2).taken(), 1);
}

#[test]
fn threads_on_three_pairs_never_hold_more_seats_than_the_shared_key_allows() {
    let env = std::sync::Arc::new(Shared::default());
    let pairs: std::sync::Arc<Vec<PairRecord>> = std::sync::Arc::new(
        (0..3)
            .map(|_| seats_on(&env, (1, 1, 16, NEVER), None))
            .collect(),
    );
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let (env, pairs) = (env.clone(), pairs.clone());
            std::thread::spawn(move || {
                let mut mine = [0u64; 3];
                let mut peak = 0;
                for i in 0..20_000usize {
                    let p = (t + i) % 3;
                    if i % 3 == 2 && mine[p] > 0 {
                        pairs[p].release(1, &*env).unwrap();
                        mine[p] -= 1;
                    } else if pairs[p].acquire(1 + i as u64 % 4, 0, &*env).is_ok() {
                        mine[p] += 1 + i as u64 % 4;
                        peak = peak.max(env.accounts.get(1).taken());
                    }
                }
                for (p, held) in mine.into_iter().enumerate() {
                    pairs[p].release(held, &*env).unwrap();
                }
                peak
            })
        })
        .collect();
    let peak = threads.into_iter().map(|t| t.join().unwrap()).max();
    assert!(peak.unwrap() <= 16, "peak {peak:?}");
    assert_eq!(env.accounts.get(1).taken(), 0);
    for pair in pairs.iter() {
        assert_eq!(pair.state().active.unwrap().used, 0);
    }
}

/// Publishes key row `key.0` (account `key.1`, amount `key.2`) as the Active key in place
/// of the current one, as a replacement does.
fn replace_active(record: &PairRecord, env: &impl Accounts, key: (u32, u32, u64)) {
    record
        .publish::<()>(env, |state| {
            Ok(NextGen {
                active: Some(LiveKey {
                    key: key.0,
                    account: key.1,
                    limit: key.2,
                    used: 0,
                    expiry: NEVER,
                    grace_days: 0,
                }),
                reserve: None,
                retired: state.active.map(|a| (a.key, a.used)),
                switches: state.switches,
            })
        })
        .unwrap();
}

#[test]
fn the_gauge_is_bounded_by_the_active_keys_amount_not_the_sum() {
    let record = seats((3, NEVER), Some((5, NEVER)));
    let events = Switches::default();
    assert_eq!(record.acquire(2, 0, &events).unwrap(), 2);
    assert_eq!(record.acquire(1, 0, &events).unwrap(), 3);
    match record.acquire(1, 0, &events) {
        Err(Refusal::SeatsExhausted {
            requested: 1,
            available: 0,
        }) => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(record.release(2, &Switches::default()).unwrap(), 1);
    match record.release(2, &Switches::default()) {
        Err(Refusal::NotHeld {
            requested: 2,
            held: 1,
        }) => {}
        other => panic!("{other:?}"),
    }
    let state = record.state();
    assert_eq!(state.active.unwrap().used, 1);
    assert_eq!(state.reserve.unwrap().used, 0);
    assert_eq!(events.0.load(std::sync::atomic::Ordering::Relaxed), 0);
}

#[test]
fn an_expired_active_key_hands_the_held_seats_to_the_reserve_once() {
    let record = seats((4, 100), Some((2, 1_000)));
    let events = Switches::default();
    record.acquire(3, 50, &events).unwrap();
    // At 100 the Active key has expired: the reserve's 2 seats bound the gauge, 3 are held.
    match record.acquire(1, 100, &events) {
        Err(Refusal::SeatsExhausted {
            requested: 1,
            available: 0,
        }) => {}
        other => panic!("{other:?}"),
    }
    record.covers(100, &events).unwrap();
    record.release(2, &Switches::default()).unwrap();
    assert_eq!(record.acquire(1, 101, &events).unwrap(), 2);
    assert_eq!(events.0.load(std::sync::atomic::Ordering::Relaxed), 1);
    let state = record.state();
    assert_eq!(state.switched_out, Some((1, 3)));
    assert_eq!(state.active.unwrap().key, 2);
    assert_eq!(state.active.unwrap().used, 2);
    assert!(matches!(
        record.covers(1_000, &events),
        Err(Refusal::Expired)
    ));
    assert!(matches!(
        record.acquire(0, 1_000, &events),
        Err(Refusal::Expired)
    ));
    // Releasing never depends on validity.
    assert_eq!(record.release(2, &Switches::default()).unwrap(), 0);
}

#[test]
fn an_empty_pair_has_no_active_key_and_a_publish_keeps_the_gauge() {
    let record = PairRecord::new();
    record.set_metering(Metering::Seats);
    let events = Switches::default();
    assert!(matches!(
        record.acquire(1, 0, &events),
        Err(Refusal::NoActiveKey)
    ));
    assert!(matches!(
        record.covers(0, &events),
        Err(Refusal::NoActiveKey)
    ));
    let record = seats((10, NEVER), None);
    record.acquire(7, 0, &events).unwrap();
    replace_active(&record, &TestAccounts::default(), (9, 0, 8));
    let active = record.state().active.unwrap();
    assert_eq!((active.key, active.used, active.limit), (9, 7, 8));
    assert_eq!(record.reclaim(9, &Switches::default()), 7);
    assert_eq!(record.state().active.unwrap().used, 0);
}

#[test]
fn threads_never_hold_more_seats_than_the_key_allows() {
    let record = std::sync::Arc::new(seats((64, NEVER), None));
    let peak = std::sync::Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let (record, peak) = (record.clone(), peak.clone());
            std::thread::spawn(move || {
                let events = Switches::default();
                let mut mine = 0u64;
                for i in 0..20_000u64 {
                    if i % 3 == 2 && mine > 0 {
                        record.release(1, &Switches::default()).unwrap();
                        mine -= 1;
                    } else if let Ok(held) = record.acquire(1 + i % 5, 0, &events) {
                        mine += 1 + i % 5;
                        peak.fetch_max(held as usize, std::sync::atomic::Ordering::Relaxed);
                    }
                }
                record.release(mine, &Switches::default()).unwrap();
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(record.state().active.unwrap().used, 0);
    assert!(peak.load(std::sync::atomic::Ordering::Relaxed) <= 64);
}
