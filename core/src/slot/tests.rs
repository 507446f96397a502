//! Unit tests of the slot pair's grant, switch, publish, grace and overage.

use super::testing::{accounts_field, TestAccounts};
use super::*;
use crate::clock::NEVER;
use std::sync::Mutex;

#[derive(Default)]
struct Recorder {
    events: Mutex<Vec<PairEvent>>,
    accounts: TestAccounts,
}

impl PairEvents for Recorder {
    fn emit(&self, event: PairEvent) {
        self.events.lock().unwrap().push(event);
    }
}

accounts_field!(Recorder);

impl Recorder {
    fn take(&self) -> Vec<PairEvent> {
        std::mem::take(&mut self.events.lock().unwrap())
    }

    /// Publishes `next`, opening the accounts it names.
    fn publish(&self, record: &PairRecord, plan: impl Fn(&PairState) -> NextGen) {
        record
            .publish::<()>(self, |state| {
                let next = plan(state);
                self.accounts.open_for(&next);
                Ok(next)
            })
            .unwrap();
    }
}

/// A key whose account id is its row.
fn key(row: u32, limit: u64, expiry: u32) -> LiveKey {
    LiveKey {
        key: row,
        account: row,
        limit,
        used: 0,
        expiry,
        grace_days: 0,
    }
}

fn pair(events: &Recorder, active: LiveKey, reserve: Option<LiveKey>) -> PairRecord {
    let record = PairRecord::new();
    events.publish(&record, |_| NextGen {
        active: Some(active),
        reserve,
        retired: None,
        switches: 0,
    });
    record
}

#[test]
fn cursor_packs_and_unpacks() {
    for c in [
        Cursor {
            epoch: 0,
            switched: false,
            exhausted: false,
            offset: 0,
        },
        Cursor {
            epoch: (1 << 62) - 1,
            switched: true,
            exhausted: true,
            offset: u64::MAX,
        },
        Cursor {
            epoch: 7,
            switched: true,
            exhausted: false,
            offset: 12345,
        },
    ] {
        assert_eq!(Cursor::unpack(c.pack()), c);
    }
}

#[test]
fn a_grant_that_uses_up_the_active_key_switches_at_once() {
    let events = Recorder::default();
    let record = pair(&events, key(1, 1, NEVER), Some(key(2, 1, NEVER)));
    assert_eq!(record.grant(1, Mode::Partial, 0, &events).unwrap(), 1);
    let state = record.state();
    assert_eq!(state.switched_out, Some((1, 1)), "{state:?}");
    assert_eq!(state.active.unwrap().key, 2);
    assert_eq!(state.active.unwrap().used, 0);
    assert_eq!(state.reserve, None);
    assert!(events.take().contains(&PairEvent::Switched {
        from: 1,
        to: 2,
        reason: SwitchReason::Exhausted
    }));
}

#[test]
fn empty_pair_refuses_with_no_active_key() {
    let record = PairRecord::new();
    let events = Recorder::default();
    assert!(matches!(
        record.grant(1, Mode::AllOrNothing, 0, &events),
        Err(Refusal::NoActiveKey)
    ));
    assert_eq!(
        events.take(),
        vec![PairEvent::Refused {
            reason: RefusalReason::NoActiveKey
        }]
    );
}

#[test]
fn grant_splits_across_the_switch_and_reports_it_once() {
    let events = Recorder::default();
    let record = pair(&events, key(1, 100, NEVER), Some(key(2, 50, NEVER)));
    assert_eq!(
        record.grant(70, Mode::AllOrNothing, 0, &events).unwrap(),
        70
    );
    assert_eq!(events.take(), vec![]);
    assert_eq!(
        record.grant(40, Mode::AllOrNothing, 0, &events).unwrap(),
        40
    );
    let seen = events.take();
    assert!(seen.contains(&PairEvent::Switched {
        from: 1,
        to: 2,
        reason: SwitchReason::Exhausted
    }));
    for percent in [80, 90, 100] {
        assert!(seen.contains(&PairEvent::Threshold { key: 1, percent }));
    }
    let state = record.state();
    assert_eq!(state.active.unwrap().key, 2);
    assert_eq!(state.active.unwrap().used, 10);
    assert_eq!(state.switched_out, Some((1, 100)));
    assert_eq!(state.switches, 1);
    assert!(matches!(
        record.grant(41, Mode::AllOrNothing, 0, &events),
        Err(Refusal::Exhausted {
            requested: 41,
            remaining: 40
        })
    ));
    assert_eq!(record.grant(41, Mode::Partial, 0, &events).unwrap(), 40);
    assert!(matches!(
        record.grant(1, Mode::Partial, 0, &events),
        Err(Refusal::Exhausted {
            requested: 1,
            remaining: 0
        })
    ));
}

#[test]
fn expired_active_switches_at_the_next_call_and_keeps_its_usage() {
    let events = Recorder::default();
    let record = pair(&events, key(1, 100, 1000), Some(key(2, 50, NEVER)));
    record.grant(30, Mode::AllOrNothing, 999, &events).unwrap();
    record.grant(5, Mode::AllOrNothing, 1000, &events).unwrap();
    assert_eq!(
        events.take(),
        vec![PairEvent::Switched {
            from: 1,
            to: 2,
            reason: SwitchReason::Expired
        }]
    );
    let state = record.state();
    assert_eq!(state.switched_out, Some((1, 30)));
    assert_eq!(state.active.unwrap().used, 5);
    assert!(state.reserve.is_none());
}

#[test]
fn expired_keys_without_a_valid_reserve_refuse() {
    let events = Recorder::default();
    let lone = pair(&events, key(1, 100, 1000), None);
    assert!(matches!(
        lone.grant(1, Mode::AllOrNothing, 1000, &events),
        Err(Refusal::Expired)
    ));
    let both = pair(&events, key(1, 100, 1000), Some(key(2, 100, 1000)));
    assert!(matches!(
        both.grant(1, Mode::Partial, 2000, &events),
        Err(Refusal::Expired)
    ));
    assert_eq!(both.state().switches, 0);
}

/// A key with `days` of grace.
fn graced(row: u32, limit: u64, expiry: u32, days: u16) -> LiveKey {
    LiveKey {
        grace_days: days,
        ..key(row, limit, expiry)
    }
}

const DAY: u32 = 86_400;

/// Grace, case by case: what a 1-byte request at `now` gets, and the events it and the
/// requests before it report (thresholds aside).
#[test]
fn grace_rules() {
    struct Case {
        name: &'static str,
        active: LiveKey,
        reserve: Option<LiveKey>,
        /// Requests of 1 byte before the one checked, at these times.
        before: &'static [u32],
        now: u32,
        granted: bool,
        events: Vec<PairEvent>,
    }
    let until = 1000 + 2 * DAY;
    let started = |key| PairEvent::GraceStarted { key, until };
    let refused = PairEvent::Refused {
        reason: RefusalReason::Expired,
    };
    let cases = [
        Case {
            name: "no grace: expired refuses",
            active: key(1, 100, 1000),
            reserve: None,
            before: &[],
            now: 1000,
            granted: false,
            events: vec![refused],
        },
        Case {
            name: "the first request after the expiry grants and reports the grace",
            active: graced(1, 100, 1000, 2),
            reserve: None,
            before: &[],
            now: 1000,
            granted: true,
            events: vec![started(1)],
        },
        Case {
            name: "later requests in the grace report nothing more",
            active: graced(1, 100, 1000, 2),
            reserve: None,
            before: &[1000, 5000],
            now: until - 1,
            granted: true,
            events: vec![started(1)],
        },
        Case {
            name: "the grace ends at expiry plus its days: refused, the end reported",
            active: graced(1, 100, 1000, 2),
            reserve: None,
            before: &[1000],
            now: until,
            granted: false,
            events: vec![started(1), PairEvent::GraceEnded { key: 1 }, refused],
        },
        Case {
            name: "a valid reserve takes over at the expiry: no grace",
            active: graced(1, 100, 1000, 2),
            reserve: Some(key(2, 100, NEVER)),
            before: &[],
            now: 1000,
            granted: true,
            events: vec![PairEvent::Switched {
                from: 1,
                to: 2,
                reason: SwitchReason::Expired,
            }],
        },
        Case {
            name: "an expired reserve does not take over: the Active key's grace holds",
            active: graced(1, 100, 2000, 1),
            reserve: Some(key(2, 100, 1000)),
            before: &[],
            now: 2000,
            granted: true,
            events: vec![PairEvent::GraceStarted {
                key: 1,
                until: 2000 + DAY,
            }],
        },
        Case {
            name: "grace grants up to the key's limit, no further",
            active: graced(1, 1, 1000, 2),
            reserve: None,
            before: &[1000],
            now: 1001,
            granted: false,
            events: vec![
                started(1),
                PairEvent::Refused {
                    reason: RefusalReason::Exhausted,
                },
            ],
        },
        Case {
            name: "a used-up key with an expired reserve in grace: the reserve grants",
            active: key(1, 1, NEVER),
            reserve: Some(graced(2, 100, 1000, 2)),
            before: &[999],
            now: 1000,
            granted: true,
            events: vec![
                PairEvent::Switched {
                    from: 1,
                    to: 2,
                    reason: SwitchReason::Exhausted,
                },
                started(2),
            ],
        },
    ];
    for case in cases {
        let events = Recorder::default();
        let record = pair(&events, case.active, case.reserve);
        for &at in case.before {
            record.grant(1, Mode::AllOrNothing, at, &events).unwrap();
        }
        let result = record.grant(1, Mode::AllOrNothing, case.now, &events);
        assert_eq!(result.is_ok(), case.granted, "{}: {result:?}", case.name);
        if !case.granted {
            assert!(
                matches!(
                    result,
                    Err(Refusal::Expired) | Err(Refusal::Exhausted { .. })
                ),
                "{}",
                case.name
            );
        }
        // The 1-byte keys' thresholds are not what this test is about.
        let mut seen = events.take();
        seen.retain(|e| !matches!(e, PairEvent::Threshold { .. }));
        assert_eq!(seen, case.events, "{}", case.name);
    }
}

/// Overage, case by case: grants of `grants` bytes in turn from a pair whose Active key
/// (account 1, limit 100) has an overage of 20, beside `reserve` or none; what each got,
/// and the events (thresholds aside).
#[test]
fn overage_rules() {
    struct Case {
        name: &'static str,
        reserve: Option<LiveKey>,
        expiry: u32,
        now: u32,
        grants: &'static [u64],
        got: &'static [Option<u64>],
        events: Vec<PairEvent>,
    }
    let started = PairEvent::OverageStarted { key: 1 };
    let exhausted = PairEvent::Refused {
        reason: RefusalReason::Exhausted,
    };
    let cases = [
        Case {
            name: "alone, the key grants its limit, then its overage, then refuses",
            reserve: None,
            expiry: NEVER,
            now: 0,
            grants: &[100, 15, 6, 5, 1],
            got: &[Some(100), Some(15), None, Some(5), None],
            events: vec![started, exhausted],
        },
        Case {
            name: "a grant across the limit is granted whole, into the overage",
            reserve: None,
            expiry: NEVER,
            now: 0,
            grants: &[90, 20],
            got: &[Some(90), Some(20)],
            events: vec![started],
        },
        Case {
            name: "with a reserve held, the switch happens at the limit: no overage",
            reserve: Some(key(2, 50, NEVER)),
            expiry: NEVER,
            now: 0,
            grants: &[90, 20],
            got: &[Some(90), Some(20)],
            events: vec![PairEvent::Switched {
                from: 1,
                to: 2,
                reason: SwitchReason::Exhausted,
            }],
        },
        Case {
            name: "overage and grace combine: an expired key in its grace draws its overage",
            reserve: None,
            expiry: 10,
            now: 20,
            grants: &[110, 11],
            got: &[Some(110), None],
            events: vec![
                PairEvent::GraceStarted {
                    key: 1,
                    until: 10 + DAY,
                },
                started,
                exhausted,
            ],
        },
    ];
    for case in cases {
        let events = Recorder::default();
        let account = events.accounts.get(1);
        account.open(100, 20, 0, 1);
        account.set_holders(1);
        let record = pair(&events, graced(1, 100, case.expiry, 1), case.reserve);
        let got: Vec<_> = case
            .grants
            .iter()
            .map(|&want| {
                record
                    .grant(want, Mode::AllOrNothing, case.now, &events)
                    .ok()
            })
            .collect();
        assert_eq!(got, case.got, "{}", case.name);
        let mut seen = events.take();
        seen.retain(|e| !matches!(e, PairEvent::Threshold { .. }));
        assert_eq!(seen, case.events, "{}", case.name);
    }
}

/// A reserve added while the Active key is in its overage takes over at the next request,
/// which the Active key no longer covers: the overage is for a key with no reserve left.
#[test]
fn a_reserve_added_in_the_overage_takes_over() {
    let events = Recorder::default();
    let account = events.accounts.get(1);
    account.open(100, 20, 0, 1);
    account.set_holders(1);
    let record = pair(&events, key(1, 100, NEVER), None);
    record.grant(105, Mode::AllOrNothing, 0, &events).unwrap();
    events.publish(&record, |state| NextGen {
        active: state.active,
        reserve: Some(key(2, 50, NEVER)),
        retired: None,
        switches: state.switches,
    });
    record.grant(5, Mode::AllOrNothing, 0, &events).unwrap();
    let state = record.state();
    assert_eq!(state.switched_out, Some((1, 105)));
    assert_eq!(state.active.unwrap().used, 5);
    assert_eq!(
        account.taken(),
        105,
        "the unused overage went back to the account"
    );
}

/// A reserve added during the grace takes over at the next request; the grace's start is
/// reported once per generation, and the new generation's grace starts unreported.
#[test]
fn a_reserve_added_in_the_grace_takes_over() {
    let events = Recorder::default();
    let record = pair(&events, graced(1, 100, 1000, 2), None);
    record.grant(10, Mode::AllOrNothing, 1500, &events).unwrap();
    events.publish(&record, |state| NextGen {
        active: state.active,
        reserve: Some(key(2, 100, NEVER)),
        retired: None,
        switches: state.switches,
    });
    record.grant(5, Mode::AllOrNothing, 1600, &events).unwrap();
    assert_eq!(
        events.take(),
        vec![
            PairEvent::GraceStarted {
                key: 1,
                until: 1000 + 2 * DAY
            },
            PairEvent::Switched {
                from: 1,
                to: 2,
                reason: SwitchReason::Expired
            }
        ]
    );
    let state = record.state();
    assert_eq!(state.switched_out, Some((1, 10)));
    assert_eq!(state.active.unwrap().used, 5);
}

/// Regression (found by the state-machine test): a used-up key answers `Exhausted` whether
/// or not it has also expired, and whether or not it came into the Active slot by a switch.
#[test]
fn used_up_takes_precedence_over_expired() {
    let events = Recorder::default();
    let switched = pair(&events, key(1, 10, NEVER), Some(key(2, 10, 100)));
    switched.grant(20, Mode::AllOrNothing, 0, &events).unwrap();
    let direct = pair(&events, key(3, 10, 100), None);
    direct.grant(10, Mode::AllOrNothing, 0, &events).unwrap();
    for record in [&switched, &direct] {
        assert!(matches!(
            record.grant(1, Mode::Partial, 200, &events),
            Err(Refusal::Exhausted {
                requested: 1,
                remaining: 0
            })
        ));
    }
}

#[test]
fn refusal_is_reported_once_per_generation() {
    let events = Recorder::default();
    let record = pair(&events, key(1, 10, NEVER), None);
    record.grant(10, Mode::AllOrNothing, 0, &events).unwrap();
    events.take();
    for _ in 0..5 {
        assert!(record.grant(1, Mode::AllOrNothing, 0, &events).is_err());
    }
    assert_eq!(
        events.take(),
        vec![PairEvent::Refused {
            reason: RefusalReason::Exhausted
        }]
    );
}

#[test]
fn grant_many_takes_the_longest_prefix_that_fits() {
    let events = Recorder::default();
    let record = pair(&events, key(1, 100, NEVER), Some(key(2, 10, NEVER)));
    let (count, result) = record.grant_many(&[50, 50, 5, 6, 1], 0, &events);
    assert_eq!(count, 3);
    assert!(matches!(
        result,
        Err(Refusal::Exhausted {
            requested: 6,
            remaining: 5
        })
    ));
    assert_eq!(record.state().active.unwrap().used, 5);
    let (count, result) = record.grant_many(&[], 0, &events);
    assert_eq!((count, result.is_ok()), (0, true));
}

#[test]
fn huge_requests_never_overflow() {
    let events = Recorder::default();
    let record = pair(&events, key(1, 100, NEVER), Some(key(2, 100, NEVER)));
    assert!(matches!(
        record.grant(u64::MAX, Mode::AllOrNothing, 0, &events),
        Err(Refusal::Exhausted { remaining: 200, .. })
    ));
    assert_eq!(
        record.grant(u64::MAX, Mode::Partial, 0, &events).unwrap(),
        200
    );
    let record = pair(&events, key(3, 100, NEVER), None);
    let (count, _) = record.grant_many(&[1, u64::MAX, u64::MAX], 0, &events);
    assert_eq!(count, 1);
    assert_eq!(record.state().active.unwrap().used, 1);
}

#[test]
fn publish_rebases_onto_the_new_active_key() {
    let events = Recorder::default();
    let record = pair(&events, key(1, 100, NEVER), Some(key(2, 50, NEVER)));
    record.grant(120, Mode::AllOrNothing, 0, &events).unwrap();
    let before = record.state();
    events.publish(&record, |state| NextGen {
        active: state.active,
        reserve: Some(key(3, 70, NEVER)),
        retired: state.switched_out,
        switches: state.switches,
    });
    assert_eq!(before.switched_out, Some((1, 100)));
    let after = record.state();
    assert_eq!(after.active.unwrap().key, 2);
    assert_eq!(after.active.unwrap().used, 20);
    assert_eq!(after.reserve.unwrap().key, 3);
    assert_eq!(after.published_retired, Some((1, 100)));
    assert_eq!(after.switches, 1);
    assert_eq!(
        record.grant(100, Mode::AllOrNothing, 0, &events).unwrap(),
        100
    );
    assert_eq!(record.state().switches, 2);
    assert!(record.check().is_ok());
}
