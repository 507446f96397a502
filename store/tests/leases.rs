//! The lease protocol against a real server: renewals applied once, stale and skipped
//! sequence numbers refused, expired leases reclaimed with their drawn part in doubt, late
//! settles exact and once, write-offs once, seats exact.

#[allow(dead_code)]
mod common;

use std::thread::sleep;
use std::time::{Duration, Instant};

use tollgate_store::{AccountKind, Error, LeaseState, LeaseTerms, Renewal, Store};

/// Terms whose leases expire quickly, for the reclaim tests.
const SHORT: LeaseTerms = LeaseTerms {
    ttl: Duration::from_millis(300),
    margin: Duration::from_millis(50),
};

fn bytes_fleet(test: &str, terms: LeaseTerms, amount: u64) -> Option<(common::Server, Store)> {
    let (server, mut store) = common::fleet(test, terms)?;
    store
        .create_account("K-1", AccountKind::Bytes, amount)
        .unwrap();
    store.register_host("host-a").unwrap();
    Some((server, store))
}

/// A key account's parts: `[leased, used, in_doubt, written_off, free]`.
fn parts(store: &mut Store, key: &str) -> [u64; 5] {
    let a = store.account(key).unwrap();
    [a.leased, a.used, a.in_doubt, a.written_off, a.free()]
}

#[test]
fn take_grants_what_is_free_and_refuses_when_nothing_is() {
    let Some((_server, mut store)) = bytes_fleet("take_grants", LeaseTerms::default(), 1000) else {
        return;
    };
    assert!(matches!(
        store.take("nobody", "K-1", 1),
        Err(Error::HostNotFound { host }) if host == "nobody"
    ));
    let before = Instant::now();
    let a = store.take("host-a", "K-1", 600).unwrap();
    assert_eq!(
        (a.granted, a.drawn, a.seq, a.free_after_take),
        (600, 0, 0, 400)
    );
    assert!(a.deadline <= before + Duration::from_secs(55) + Duration::from_millis(500));
    assert!(a.is_live());
    let b = store.take("host-a", "K-1", 600).unwrap();
    assert_eq!(
        (b.granted, b.free_after_take),
        (400, 0),
        "the rest, not more"
    );
    assert!(matches!(
        store.take("host-a", "K-1", 1),
        Err(Error::Exhausted { key }) if key == "K-1"
    ));
    assert_eq!(parts(&mut store, "K-1"), [1000, 0, 0, 0, 0]);

    assert!(matches!(
        store.take("host-a", "K-9", 1),
        Err(Error::AccountNotFound { .. })
    ));
    assert!(matches!(
        store.take("host-a", "K-1", 0),
        Err(Error::InvalidArgument { .. })
    ));
    assert!(matches!(
        store.take_seat("host-a", "K-1"),
        Err(Error::WrongKind {
            expected: "seats",
            ..
        })
    ));
    assert!(matches!(
        store.create_account("K-1", AccountKind::Bytes, 999),
        Err(Error::AccountConflict { .. })
    ));

    // Settling returns the unused part; the account is exact.
    let settled = store.settle(a.id, 0).unwrap();
    assert_eq!((settled.applied, settled.returned), (true, 600));
    assert_eq!(parts(&mut store, "K-1"), [400, 0, 0, 0, 600]);
}

#[test]
fn a_retried_renewal_is_applied_once() {
    let Some((_server, mut store)) = bytes_fleet("retried_renewal", LeaseTerms::default(), 1000)
    else {
        return;
    };
    let mut lease = store.take("host-a", "K-1", 500).unwrap();
    let seq = lease.next_seq();
    assert_eq!(
        store.renew(&mut lease, seq, 0, 500).unwrap(),
        Renewal::Applied
    );
    let seq = lease.next_seq();
    assert_eq!(seq, 2);
    assert_eq!(
        store.renew(&mut lease, seq, 120, 500).unwrap(),
        Renewal::Applied
    );
    // The answer was lost, say: the host sends the same renewal again.
    assert_eq!(
        store.renew(&mut lease, seq, 120, 500).unwrap(),
        Renewal::AlreadyApplied
    );
    assert_eq!(
        store.renew(&mut lease, seq, 120, 500).unwrap(),
        Renewal::AlreadyApplied
    );
    assert_eq!(
        parts(&mut store, "K-1"),
        [380, 120, 0, 0, 500],
        "the usage moved once"
    );
    let record = &store.list_leases().unwrap()[0];
    assert_eq!((record.seq, record.reported, record.drawn), (2, 120, 500));

    // The same number with other figures is not a retry.
    assert!(matches!(
        store.renew(&mut lease, seq, 130, 500),
        Err(Error::StaleSequence {
            seq: 2,
            current: 2,
            ..
        })
    ));
    // Usage cannot go back, nor pass the draw.
    assert!(matches!(
        store.renew(&mut lease, 3, 100, 500),
        Err(Error::OutOfRange { what: "used", .. })
    ));
    assert!(matches!(
        store.renew(&mut lease, 3, 120, 501),
        Err(Error::OutOfRange { what: "drawn", .. })
    ));

    let settled = store.settle(lease.id, 300).unwrap();
    assert_eq!(
        (settled.applied, settled.used, settled.returned),
        (true, 300, 200)
    );
    let again = store.settle(lease.id, 300).unwrap();
    assert!(!again.applied, "a repeated settle changes nothing");
    assert!(matches!(
        store.settle(lease.id, 301),
        Err(Error::SettleConflict {
            settled: 300,
            asked: 301,
            ..
        })
    ));
    assert!(matches!(
        store.renew(&mut lease, 3, 300, 500),
        Err(Error::LeaseClosed {
            state: LeaseState::Settled,
            ..
        })
    ));
    assert_eq!(parts(&mut store, "K-1"), [0, 300, 0, 0, 700]);
}

#[test]
fn an_out_of_order_renewal_is_refused() {
    let Some((_server, mut store)) = bytes_fleet("out_of_order", LeaseTerms::default(), 1000)
    else {
        return;
    };
    let mut lease = store.take("host-a", "K-1", 500).unwrap();
    assert!(matches!(
        store.renew(&mut lease, 2, 10, 100),
        Err(Error::OutOfOrder {
            seq: 2,
            expected: 1,
            ..
        })
    ));
    assert!(matches!(
        store.renew(&mut lease, 0, 10, 100),
        Err(Error::StaleSequence {
            seq: 0,
            current: 0,
            ..
        })
    ));
    assert_eq!(
        store.renew(&mut lease, 1, 10, 100).unwrap(),
        Renewal::Applied
    );
    assert_eq!(
        store.renew(&mut lease, 2, 20, 100).unwrap(),
        Renewal::Applied
    );
    // Renewal 1 arriving late, after 2, is stale and changes nothing.
    assert!(matches!(
        store.renew(&mut lease, 1, 10, 100),
        Err(Error::StaleSequence {
            seq: 1,
            current: 2,
            ..
        })
    ));
    let record = &store.list_leases().unwrap()[0];
    assert_eq!((record.seq, record.reported, record.drawn), (2, 20, 100));
    assert_eq!(parts(&mut store, "K-1"), [480, 20, 0, 0, 500]);
}

#[test]
fn an_expired_lease_is_reclaimed_and_its_late_settle_is_exact_once() {
    let Some((_server, mut store)) = bytes_fleet("expired_lease", SHORT, 1000) else {
        return;
    };
    store.register_host("host-b").unwrap();
    let mut dead = store.take("host-a", "K-1", 600).unwrap();
    // The host draws 400 of its 600 and reports 100 used, then dies.
    store.renew(&mut dead, 1, 100, 400).unwrap();
    let live = store.take("host-b", "K-1", 100).unwrap();
    assert!(
        store.reclaim_expired().unwrap().is_empty(),
        "nothing expired yet"
    );

    sleep(SHORT.ttl + Duration::from_millis(100));
    assert!(
        !dead.is_live(),
        "the host's deadline passed before the expiry"
    );
    let mut live = live;
    assert!(matches!(
        store.renew(&mut live, 1, 0, 100),
        Err(Error::LeaseExpired(_))
    ));
    store.settle(live.id, 0).unwrap();

    let reclaimed = store.reclaim_expired().unwrap();
    assert_eq!(reclaimed.len(), 1);
    assert_eq!(reclaimed[0].lease, dead.id);
    assert_eq!(
        (reclaimed[0].returned, reclaimed[0].in_doubt),
        (200, 300),
        "never drawn returns; drawn and unreported stays in doubt"
    );
    assert!(
        store.reclaim_expired().unwrap().is_empty(),
        "reclaimed once"
    );
    assert_eq!(parts(&mut store, "K-1"), [0, 100, 300, 0, 600]);
    // The in-doubt part is not leased again.
    let other = store.take("host-b", "K-1", 1000).unwrap();
    assert_eq!(other.granted, 600);
    store.settle(other.id, 0).unwrap();

    // The host comes back and settles from its ledger: it had granted 250 in all.
    assert!(matches!(
        store.renew(&mut dead, 2, 250, 400),
        Err(Error::LeaseClosed {
            state: LeaseState::Reclaimed,
            ..
        })
    ));
    assert!(matches!(
        store.settle(dead.id, 401),
        Err(Error::OutOfRange {
            what: "used",
            max: 400,
            ..
        })
    ));
    let settled = store.settle(dead.id, 250).unwrap();
    assert_eq!((settled.applied, settled.returned), (true, 150));
    assert!(!store.settle(dead.id, 250).unwrap().applied, "once");
    assert_eq!(parts(&mut store, "K-1"), [0, 250, 0, 0, 750]);
    assert!(matches!(
        store.write_off(dead.id),
        Err(Error::LeaseClosed {
            state: LeaseState::Settled,
            ..
        })
    ));
}

#[test]
fn write_off_gives_up_an_in_doubt_part_once() {
    let Some((_server, mut store)) = bytes_fleet("write_off", SHORT, 1000) else {
        return;
    };
    let mut lease = store.take("host-a", "K-1", 500).unwrap();
    store.renew(&mut lease, 1, 50, 300).unwrap();
    assert!(matches!(
        store.write_off(lease.id),
        Err(Error::LeaseClosed {
            state: LeaseState::Open,
            ..
        })
    ));
    sleep(SHORT.ttl + Duration::from_millis(100));
    let reclaimed = store.reclaim_expired().unwrap();
    assert_eq!((reclaimed[0].returned, reclaimed[0].in_doubt), (200, 250));

    assert_eq!(store.write_off(lease.id).unwrap(), 250);
    assert!(matches!(
        store.write_off(lease.id),
        Err(Error::LeaseClosed {
            state: LeaseState::WrittenOff,
            ..
        })
    ));
    assert!(matches!(
        store.settle(lease.id, 50),
        Err(Error::LeaseClosed {
            state: LeaseState::WrittenOff,
            ..
        })
    ));
    assert_eq!(parts(&mut store, "K-1"), [0, 50, 0, 250, 700]);
    let record = &store.list_leases().unwrap()[0];
    assert_eq!(record.state, LeaseState::WrittenOff);
}

#[test]
fn seats_lease_exactly() {
    let Some((_server, mut store)) = common::fleet("seats", SHORT) else {
        return;
    };
    store.create_account("S-1", AccountKind::Seats, 2).unwrap();
    store.register_host("host-a").unwrap();
    let first = store.take_seat("host-a", "S-1").unwrap();
    let mut second = store.take_seat("host-a", "S-1").unwrap();
    assert_eq!(
        (first.granted, first.drawn),
        (1, 1),
        "a seat is drawn at once"
    );
    assert!(matches!(
        store.take_seat("host-a", "S-1"),
        Err(Error::Exhausted { .. })
    ));
    assert!(matches!(
        store.take("host-a", "S-1", 1),
        Err(Error::WrongKind {
            expected: "bytes",
            ..
        })
    ));
    assert_eq!(store.renew(&mut second, 1, 0, 1).unwrap(), Renewal::Applied);
    assert!(matches!(
        store.renew(&mut second, 2, 1, 1),
        Err(Error::OutOfRange {
            what: "used",
            max: 0,
            ..
        })
    ));
    let returned = store.return_seat(first.id).unwrap();
    assert_eq!((returned.applied, returned.returned), (true, 1));
    assert!(!store.return_seat(first.id).unwrap().applied);
    let third = store.take_seat("host-a", "S-1").unwrap();

    // An expired seat comes back whole: its host stopped holding it at its deadline.
    sleep(SHORT.ttl + Duration::from_millis(100));
    let reclaimed = store.reclaim_expired().unwrap();
    assert_eq!(reclaimed.len(), 2);
    assert!(reclaimed.iter().all(|r| (r.returned, r.in_doubt) == (1, 0)));
    assert_eq!(parts(&mut store, "S-1"), [0, 0, 0, 0, 2]);
    // A late return of a reclaimed seat is harmless and exact.
    assert_eq!(store.return_seat(third.id).unwrap().returned, 0);
    assert_eq!(parts(&mut store, "S-1"), [0, 0, 0, 0, 2]);
}

/// Thresholds are claimed once across every connection, when the committed part (leased, used,
/// in doubt, written off) reaches them; a seat account or an unknown key is refused.
#[test]
fn thresholds_are_claimed_once_across_the_fleet() {
    let Some((server, mut store)) = bytes_fleet("thresholds_claimed", LeaseTerms::default(), 100)
    else {
        return;
    };
    let mut other = Store::connect(&server.params()).unwrap();
    let percents = [80, 90, 100];
    store.take("host-a", "K-1", 79).unwrap();
    assert_eq!(store.claim_thresholds("K-1", &percents).unwrap(), []);
    store.take("host-a", "K-1", 2).unwrap();
    assert_eq!(other.claim_thresholds("K-1", &percents).unwrap(), [80]);
    assert_eq!(store.claim_thresholds("K-1", &percents).unwrap(), []);
    store.take("host-a", "K-1", 19).unwrap();
    assert_eq!(store.claim_thresholds("K-1", &percents).unwrap(), [90, 100]);
    assert_eq!(other.claim_thresholds("K-1", &percents).unwrap(), []);
    store.create_account("S-1", AccountKind::Seats, 10).unwrap();
    assert!(matches!(
        store.claim_thresholds("S-1", &percents),
        Err(Error::WrongKind { .. })
    ));
    assert!(matches!(
        store.claim_thresholds("NONE", &percents),
        Err(Error::AccountNotFound { .. })
    ));
}
