//! Loom models of the slot pair: every interleaving of consumers, refills and publishes.

use super::testing::{accounts_field, live, TestAccounts};
use super::*;
use crate::clock::NEVER;
use loom::sync::atomic::AtomicUsize;
use loom::sync::Arc;
use loom::thread;

#[derive(Default)]
struct Switches {
    count: AtomicUsize,
    accounts: TestAccounts,
}

impl PairEvents for Switches {
    fn emit(&self, event: PairEvent) {
        if matches!(event, PairEvent::Switched { .. }) {
            self.count.fetch_add(1, Ordering::Relaxed);
        }
    }
}

accounts_field!(Switches);

impl Switches {
    fn switches(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }
}

fn publish(record: &PairRecord, env: &Switches, next: NextGen) {
    env.accounts.open_for(&next);
    record.publish::<()>(env, |_| Ok(next)).unwrap();
}

fn setup(active: LiveKey, reserve: Option<LiveKey>) -> (Arc<PairRecord>, Arc<Switches>) {
    let record = Arc::new(PairRecord::new());
    let env = Arc::new(Switches::default());
    let next = NextGen {
        active: Some(active),
        reserve,
        retired: None,
        switches: 0,
    };
    publish(&record, &env, next);
    (record, env)
}

/// Publishes a generation that keeps the Active key (and its use) and adds `reserve`.
fn add_reserve(record: &PairRecord, env: &Switches, reserve: LiveKey) {
    env.accounts.open_for(&NextGen {
        active: None,
        reserve: Some(reserve),
        retired: None,
        switches: 0,
    });
    record
        .publish::<()>(env, |state| {
            Ok(NextGen {
                active: state.active,
                reserve: Some(reserve),
                retired: None,
                switches: state.switches,
            })
        })
        .unwrap();
}

/// Everything a state says this pair used, across both keys.
fn charged(state: &PairState) -> u64 {
    state.active.map_or(0, |a| a.used)
        + state.reserve.map_or(0, |r| r.used)
        + state.switched_out.map_or(0, |(_, u)| u)
}

fn bounded(preemptions: usize) -> loom::model::Builder {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(preemptions);
    builder
}

/// Two threads drain Active + Reserved through refills of both accounts: every byte granted
/// is charged, none beyond the limits, and the switch is reported exactly once.
#[test]
fn switch_under_two_consumers() {
    bounded(3).check(|| {
        let (record, env) = setup(live(1, 3, NEVER), Some(live(2, 2, NEVER)));
        let handles: Vec<_> = (0..2)
            .map(|_| {
                let (record, env) = (record.clone(), env.clone());
                thread::spawn(move || {
                    let mut granted = 0;
                    while let Ok(g) = record.grant(2, Mode::Partial, 0, &*env) {
                        granted += g;
                    }
                    granted
                })
            })
            .collect();
        let total: u64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
        assert_eq!(total, 5);
        let state = record.state();
        assert_eq!(state.switched_out, Some((1, 3)));
        assert_eq!(state.active.unwrap().used, 2);
        assert_eq!(env.switches(), 1);
        assert_eq!(env.accounts.get(1).taken(), 3);
        assert_eq!(env.accounts.get(2).taken(), 2);
    });
}

/// An expired Active key is switched exactly once while two threads consume, the usage it
/// stopped at is exact, and its unused lease goes back to its account.
#[test]
fn expiry_switch_is_exact() {
    bounded(3).check(|| {
        let (record, env) = setup(live(1, 10, 5), Some(live(2, 10, NEVER)));
        record.grant(1, Mode::AllOrNothing, 0, &*env).unwrap();
        let stale = {
            let (record, env) = (record.clone(), env.clone());
            // A thread whose clock has not yet seen the expiry.
            thread::spawn(move || record.grant(1, Mode::AllOrNothing, 4, &*env).is_ok())
        };
        let fresh = record.grant(1, Mode::AllOrNothing, 5, &*env).is_ok();
        let stale_ok = stale.join().unwrap();
        assert!(fresh && stale_ok);
        let state = record.state();
        let (_, stopped) = state.switched_out.unwrap();
        let active_now = state.active.unwrap().used;
        assert_eq!(stopped + active_now, 3);
        assert_eq!(env.switches(), 1);
        assert_eq!(env.accounts.get(1).taken(), stopped);
    });
}

/// An admin adding a reserve while a consumer drains the Active key: the consumer never
/// charges a key that is not in the generation it used, totals stay exact, and the
/// publish gives back exactly the lease the consumer did not use.
#[test]
fn publish_races_a_consumer() {
    bounded(3).check(|| {
        let (record, env) = setup(live(1, 2, NEVER), None);
        let consumer = {
            let (record, env) = (record.clone(), env.clone());
            thread::spawn(move || {
                let mut granted = 0;
                for _ in 0..2 {
                    if let Ok(g) = record.grant(2, Mode::AllOrNothing, 0, &*env) {
                        granted += g;
                    }
                }
                granted
            })
        };
        add_reserve(&record, &env, live(2, 2, NEVER));
        let granted = consumer.join().unwrap();
        let state = record.state();
        assert_eq!(charged(&state), granted);
        assert!(granted == 2 || granted == 4);
        let leased = env.accounts.get(1).taken() + env.accounts.get(2).taken();
        assert_eq!(leased - record.room(), granted);
    });
}

/// A refill of a shared account racing a grant of the same pair and a publish: the block
/// taken by a refill that lost to the publish's seal goes back to the account exactly once,
/// and the other pair drawing from the account is never over-granted.
#[test]
fn refill_races_a_grant_and_a_publish() {
    bounded(2).check(|| {
        let env = Arc::new(Switches::default());
        let (first, second) = (Arc::new(PairRecord::new()), Arc::new(PairRecord::new()));
        for record in [&first, &second] {
            publish(
                record,
                &env,
                NextGen {
                    active: Some(live(1, 4, NEVER)),
                    reserve: None,
                    retired: None,
                    switches: 0,
                },
            );
        }
        env.accounts.get(1).set_holders(2);
        let consumer = {
            let (first, env) = (first.clone(), env.clone());
            thread::spawn(move || first.grant(1, Mode::Partial, 0, &*env).unwrap_or(0))
        };
        let other = {
            let (second, env) = (second.clone(), env.clone());
            thread::spawn(move || {
                let mut granted = 0;
                while let Ok(g) = second.grant(2, Mode::Partial, 0, &*env) {
                    granted += g;
                }
                granted
            })
        };
        first
            .publish::<()>(&*env, |state| {
                Ok(NextGen {
                    active: state.active,
                    reserve: None,
                    retired: None,
                    switches: state.switches,
                })
            })
            .unwrap();
        let mine = consumer.join().unwrap();
        let theirs = other.join().unwrap();
        let account = env.accounts.get(1);
        let used = charged(&first.state()) + charged(&second.state());
        assert_eq!(used, mine + theirs);
        assert!(used <= 4);
        assert_eq!(account.taken(), used + first.room() + second.room());
    });
}

/// Two grants refill one empty lease at once: the first block taken leaves one byte, the
/// second takes it. Whichever lands first, the lease ends last only once both blocks are in,
/// so the key's three bytes are all granted, and the switch is made by the grant that uses
/// the third, not before.
#[test]
fn two_refills_never_switch_with_a_block_in_flight() {
    bounded(3).check(|| {
        let (record, env) = setup(live(1, 3, NEVER), Some(live(2, 2, NEVER)));
        let other = {
            let (record, env) = (record.clone(), env.clone());
            thread::spawn(move || record.grant(1, Mode::AllOrNothing, 0, &*env).unwrap())
        };
        let mine = record.grant(1, Mode::AllOrNothing, 0, &*env).unwrap();
        assert_eq!(mine + other.join().unwrap(), 2);
        let state = record.state();
        assert_eq!(state.switched_out, None, "{state:?}");
        assert_eq!(state.active.unwrap().used, 2);
        assert_eq!(record.grant(1, Mode::AllOrNothing, 0, &*env).unwrap(), 1);
        let state = record.state();
        assert_eq!(state.switched_out, Some((1, 3)), "{state:?}");
        assert_eq!(state.active.unwrap().used, 0);
        assert_eq!(env.switches(), 1);
        assert_eq!(env.accounts.get(1).taken(), 3);
    });
}

/// Runs `consume` against two publishes: generation 1 (Active 10 bytes of which 8 used, a
/// reserve of 10) is followed by two generations of an Active key of 4 bytes with a reserve
/// of 2, so the slot generation 1 used is rewritten with keys its offset does not fit.
/// Every generation has room for one byte: `consume` must be granted, and the byte charged to
/// the generation it was granted in.
fn two_publishes_race(consume: fn(&PairRecord, &Switches) -> u64) {
    bounded(3).check(move || {
        let gen = |(a, r): (u32, u32), active, start, reserve| NextGen {
            active: Some(LiveKey {
                used: start,
                ..live(a, active, NEVER)
            }),
            reserve: Some(live(r, reserve, NEVER)),
            retired: None,
            switches: 0,
        };
        let (record, env) = {
            let record = Arc::new(PairRecord::new());
            let env = Arc::new(Switches::default());
            publish(&record, &env, gen((1, 2), 10, 8, 10));
            (record, env)
        };
        let consumer = {
            let (record, env) = (record.clone(), env.clone());
            thread::spawn(move || consume(&record, &env))
        };
        let mut charged = 0;
        let mut base = 8;
        for keys in [(3, 4), (5, 6)] {
            let next = gen(keys, 4, 0, 2);
            env.accounts.open_for(&next);
            let (before, _) = record.publish::<()>(&*env, |_| Ok(next)).unwrap();
            charged += super::loom_models::charged(&before) - base;
            base = 0;
        }
        assert_eq!(consumer.join().unwrap(), 1, "refused while a byte was free");
        charged += super::loom_models::charged(&record.state());
        assert_eq!(charged, 1);
    });
}

/// Defect 1 for `grant`.
#[test]
fn two_publishes_race_a_grant() {
    two_publishes_race(|record, env| record.grant(1, Mode::AllOrNothing, 0, env).unwrap_or(0));
}

/// Defect 1 for `grant_many`.
#[test]
fn two_publishes_race_grant_many() {
    two_publishes_race(|record, env| record.grant_many(&[1], 0, env).0 as u64);
}

/// A fleet host's stock (see `AccountRecord::supply`) filled by the fleet thread while a
/// consumer grants: a spent stock refuses `Unavailable` and never switches; the switch comes
/// once, only after the store said the Active key is dry and its whole stock was used; every
/// byte granted was drawn, and the totals are exact.
#[test]
fn fleet_stock_refills_race_a_consumer() {
    bounded(2).check(|| {
        let (record, env) = setup(live(1, 4, NEVER), Some(live(2, 4, NEVER)));
        for id in [1, 2] {
            env.accounts.get(id).make_fleet();
        }
        let fleet = {
            let env = env.clone();
            thread::spawn(move || {
                let (active, reserve) = (env.accounts.get(1), env.accounts.get(2));
                active.add_supply(2);
                active.add_supply(2);
                active.set_dry(true);
                reserve.add_supply(4);
                reserve.set_dry(true);
            })
        };
        let mut granted = 0;
        for _ in 0..2 {
            match record.grant(2, Mode::AllOrNothing, 0, &*env) {
                Ok(g) => granted += g,
                Err(Refusal::Unavailable) => {}
                Err(e) => panic!("refused {e:?} before the stock was drawn"),
            }
        }
        fleet.join().unwrap();
        let (active, reserve) = (env.accounts.get(1), env.accounts.get(2));
        assert!(active.taken() <= 4 && reserve.taken() <= 4);
        if env.switches() == 1 {
            assert_eq!(record.state().switched_out, Some((1, 4)));
        }
        loop {
            match record.grant(2, Mode::AllOrNothing, 0, &*env) {
                Ok(g) => granted += g,
                Err(Refusal::Exhausted { .. }) => break,
                Err(e) => panic!("refused {e:?} with the whole stock drawn"),
            }
        }
        assert_eq!(granted, 8);
        assert_eq!(charged(&record.state()), 8);
        assert_eq!(env.switches(), 1);
        assert_eq!((active.taken(), reserve.taken()), (4, 4));
    });
}

/// The close's withdrawal of the unused stock racing a consumer's take: one CAS each, so the
/// stock is either granted or withdrawn, never both, and `taken` ends at the stock.
#[test]
fn fleet_withdrawal_races_a_consumer() {
    bounded(3).check(|| {
        let (record, env) = setup(live(1, 8, NEVER), None);
        let active = env.accounts.get(1);
        active.make_fleet();
        active.add_supply(4);
        let consumer = {
            let (record, env) = (record.clone(), env.clone());
            thread::spawn(
                move || match record.grant(3, Mode::AllOrNothing, 0, &*env) {
                    Ok(g) => g,
                    Err(Refusal::Unavailable) => 0,
                    Err(e) => panic!("refused {e:?}"),
                },
            )
        };
        let (withdrawn, _) = env.accounts.get(1).withdraw_stock();
        let granted = consumer.join().unwrap();
        let active = env.accounts.get(1);
        assert_eq!(active.taken(), 4);
        // The pair's block holds what it took beyond the grant: granted + idle + withdrawn.
        assert!(granted + withdrawn <= 4);
        assert_eq!(charged(&record.state()), granted);
    });
}

/// A fleet seat acquire racing the withdrawal of the one free seat of a host's stock (the
/// Dekker pair of `account::fleet_seats`): never both get it, and the seats held never exceed
/// the stock, whichever order the fences take.
#[test]
fn fleet_seat_withdrawal_races_an_acquire() {
    bounded(3).check(|| {
        let account = Arc::new(AccountRecord::new());
        account.open(4, 0, 0, 1);
        account.make_fleet_seats();
        account.add_seat();
        account.add_seat();
        account.take_seats(1).unwrap();
        let acquirer = {
            let account = account.clone();
            thread::spawn(move || account.take_seats(1).is_ok())
        };
        let withdrawn = account.withdraw_seat();
        let acquired = acquirer.join().unwrap();
        assert!(!(acquired && withdrawn), "one free seat went twice");
        assert_eq!(account.taken(), 1 + u64::from(acquired));
        assert_eq!(account.seat_stock(), 2 - u64::from(withdrawn));
    });
}

/// Grants 1 byte at a time through `slot` until refused, and gives its block back; returns
/// what it granted.
fn drain_through_slot(slot: &LeaseSlot, record: &PairRecord, env: &Switches) -> u64 {
    let mut granted = 0;
    loop {
        if slot.spend(1, 0) {
            granted += 1;
            continue;
        }
        match slot.grant(record, 1, Mode::AllOrNothing, 0, env) {
            Ok(g) => granted += g,
            Err(_) => break,
        }
    }
    slot.give_back(record);
    granted
}

/// A thread granting through its lease slot (blocks of 2 bytes) races a thread granting from
/// the pair directly, through the switch: every byte is granted once and charged once, to the
/// right key, and the switch is reported once.
#[test]
fn a_slot_block_races_the_switch() {
    bounded(3).check(|| {
        let (record, env) = setup(live(1, 3, NEVER), Some(live(2, 3, NEVER)));
        let direct = {
            let (record, env) = (record.clone(), env.clone());
            thread::spawn(move || {
                let mut granted = 0;
                while let Ok(g) = record.grant(1, Mode::AllOrNothing, 0, &*env) {
                    granted += g;
                }
                granted
            })
        };
        let slot = LeaseSlot::new();
        let through_slot = drain_through_slot(&slot, &record, &env);
        let total = through_slot + direct.join().unwrap();
        assert_eq!(total, 6);
        assert_eq!(slot.room(), 0);
        let state = record.state();
        assert_eq!(charged(&state), 6);
        assert_eq!(state.switched_out, Some((1, 3)));
        assert_eq!(env.switches(), 1);
        assert_eq!(env.accounts.get(1).taken(), 3);
        assert_eq!(env.accounts.get(2).taken(), 3);
    });
}

/// An admin adding a reserve while a thread grants through its lease slot: the block taken
/// in the old generation is granted from, or given back once, or (when the generation it was
/// taken in is over) stays charged in the account and the pair alike: they never disagree,
/// and nothing is granted twice.
#[test]
fn a_slot_block_races_a_publish() {
    bounded(3).check(|| {
        let (record, env) = setup(live(1, 4, NEVER), None);
        let consumer = {
            let (record, env) = (record.clone(), env.clone());
            thread::spawn(move || {
                let slot = LeaseSlot::new();
                let mut granted = 0;
                for _ in 0..3 {
                    if slot.spend(1, 0) {
                        granted += 1;
                    } else if let Ok(g) = slot.grant(&record, 1, Mode::AllOrNothing, 0, &*env) {
                        granted += g;
                    }
                }
                let left = slot.room();
                let lost = left - slot.give_back(&record);
                (granted, lost)
            })
        };
        add_reserve(&record, &env, live(2, 2, NEVER));
        let (granted, lost) = consumer.join().unwrap();
        assert_eq!(granted, 3);
        assert_eq!(env.accounts.get(2).taken(), 0);
        // A block left from the generation before stays charged unused (`lost`), in the
        // account and the pair alike; everything else is exact.
        assert_eq!(env.accounts.get(1).taken() - record.room(), granted + lost);
        assert_eq!(charged(&record.state()), granted + lost);
        assert!(lost <= 1);
        // A block that ends the Active key exactly switches to the reserve, as any grant.
        assert!(env.switches() <= 1);
    });
}
