//! The server stopped at once (`pg_ctl stop -m immediate`) under load, then restarted: every
//! call during the outage is `Unavailable` (no panic), the same `Store` works again after the
//! restart, retries of statements whose outcome was lost apply once, and the totals are exact.

#[allow(dead_code)]
mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use tollgate_store::{AccountKind, Error, Lease, LeaseTerms, Renewal, Store};

const TERMS: LeaseTerms = LeaseTerms {
    ttl: Duration::from_secs(3),
    margin: Duration::from_millis(500),
};
const KEY: &str = "K-OUT";

/// Repeats `op` while the store is unavailable; any other error fails the test.
fn retry<T>(what: &str, mut op: impl FnMut() -> Result<T, Error>) -> T {
    loop {
        match op() {
            Ok(value) => return value,
            Err(Error::Unavailable(_)) => thread::sleep(Duration::from_millis(20)),
            Err(e) => panic!("{what}: {e}"),
        }
    }
}

/// One host until `stop`: take, draw and report half, settle with all of it; each step retried
/// through the outage. Returns what it used and how many calls were refused as unavailable.
fn work(params: &str, host: &str, stop: &AtomicBool) -> (u64, u64) {
    let mut store = Store::connect_with(params, TERMS).unwrap();
    store.register_host(host).unwrap();
    let (mut used, mut refused) = (0, 0);
    // Relaxed: the flag orders nothing else; a late look only runs one more round.
    while !stop.load(Ordering::Relaxed) {
        let mut lease: Lease = match store.take(host, KEY, 1_000) {
            Ok(lease) => lease,
            Err(Error::Unavailable(_)) => {
                // Perhaps taken and the answer lost: that lease stays undrawn, and its
                // reclaim gives all of it back.
                refused += 1;
                thread::sleep(Duration::from_millis(20));
                continue;
            }
            Err(e) => panic!("{host}: take: {e}"),
        };
        let granted = lease.granted;
        let renewed = retry("renew", || {
            let outcome = store.renew(&mut lease, 1, granted / 2, granted);
            refused += u64::from(matches!(outcome, Err(Error::Unavailable(_))));
            match outcome {
                Err(Error::LeaseExpired(_)) => Ok(None),
                other => other.map(Some),
            }
        });
        // Expired during the outage before the draw was acknowledged: nothing was granted.
        let final_use = match renewed {
            Some(Renewal::Applied | Renewal::AlreadyApplied) => granted,
            None => 0,
        };
        let settled = retry("settle", || {
            let outcome = store.settle(lease.id, final_use);
            refused += u64::from(matches!(outcome, Err(Error::Unavailable(_))));
            outcome
        });
        assert_eq!(settled.used, final_use);
        used += final_use;
    }
    (used, refused)
}

#[test]
fn a_stopped_server_is_unavailable_and_totals_stay_exact_after_restart() {
    let Some((server, mut store)) = common::fleet("outage", TERMS) else {
        return;
    };
    store
        .create_account(KEY, AccountKind::Bytes, 1 << 40)
        .unwrap();
    store.register_host("admin").unwrap();
    let mut held = store.take("admin", KEY, 5_000).unwrap();
    store.renew(&mut held, 1, 0, 5_000).unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..3)
        .map(|i| {
            let (params, stop) = (server.params(), Arc::clone(&stop));
            thread::spawn(move || work(&params, &format!("host-{i}"), &stop))
        })
        .collect();
    thread::sleep(Duration::from_millis(300));

    server.stop_immediate();
    for _ in 0..3 {
        assert!(matches!(
            store.take("admin", KEY, 1),
            Err(Error::Unavailable(_))
        ));
    }
    let during = store.renew(&mut held, 2, 1_000, 5_000);
    assert!(matches!(during, Err(Error::Unavailable(_))), "{during:?}");
    assert!(matches!(store.account(KEY), Err(Error::Unavailable(_))));
    let message = store.take("admin", KEY, 1).unwrap_err().to_string();
    assert!(
        message.starts_with("the fleet store is unavailable: "),
        "{message}"
    );
    thread::sleep(Duration::from_millis(300));
    server.start_again();

    // The same store connects again by itself; the renewal retried is applied once.
    assert_eq!(
        store.renew(&mut held, 2, 1_000, 5_000).unwrap(),
        Renewal::Applied
    );
    assert_eq!(
        store.renew(&mut held, 2, 1_000, 5_000).unwrap(),
        Renewal::AlreadyApplied
    );
    thread::sleep(Duration::from_millis(300));
    // Relaxed: see `work`.
    stop.store(true, Ordering::Relaxed);
    let mut used = 0;
    let mut refused = 0;
    for worker in workers {
        let (u, r) = worker.join().unwrap();
        used += u;
        refused += r;
    }
    assert!(refused > 0, "the workers met the outage");
    store.settle(held.id, 1_000).unwrap();
    used += 1_000;

    // Leases whose take answer was lost in the outage were never drawn: once expired, they
    // come back whole, with nothing in doubt.
    thread::sleep(TERMS.ttl + Duration::from_millis(200));
    for reclaimed in store.reclaim_expired().unwrap() {
        assert_eq!(reclaimed.in_doubt, 0, "{reclaimed:?}");
    }
    let account = store.account(KEY).unwrap();
    assert_eq!(
        account.used, used,
        "counted once each, whatever was retried"
    );
    assert_eq!((account.leased, account.in_doubt), (0, 0));
    assert_eq!(account.free(), (1 << 40) - used);
}

#[test]
fn a_renewal_cut_by_pg_terminate_backend_is_retried_and_applied_once() {
    let Some((server, mut store)) = common::fleet("terminate_backend", TERMS) else {
        return;
    };
    store
        .create_account(KEY, AccountKind::Bytes, 1_000)
        .unwrap();
    store.register_host("host-a").unwrap();
    let lease = store.take("host-a", KEY, 500).unwrap();
    let taken_deadline = lease.deadline;

    // An operator's transaction holds the lease row, so the renewal waits inside the server.
    let mut admin = postgres::Client::connect(&server.params(), postgres::NoTls).unwrap();
    let mut hold = admin.transaction().unwrap();
    hold.execute(
        "SELECT 1 FROM tollgate_lease WHERE id = $1 FOR UPDATE",
        &[&lease.id.0],
    )
    .unwrap();
    let params = server.params();
    let host = thread::spawn(move || {
        let mut store = Store::connect_with(&params, TERMS).unwrap();
        let mut lease = lease;
        let cut = store.renew(&mut lease, 1, 100, 500);
        (store, lease, cut)
    });
    // Another connection watches, outside the holding transaction, which would see one
    // snapshot of pg_stat_activity for its whole life.
    let mut watch = postgres::Client::connect(&server.params(), postgres::NoTls).unwrap();
    let mut waiting = None;
    for _ in 0..500 {
        let rows = watch
            .query(
                "SELECT pid FROM pg_stat_activity
                  WHERE wait_event_type = 'Lock' AND pid <> pg_backend_pid()",
                &[],
            )
            .unwrap();
        if let Some(row) = rows.first() {
            waiting = Some(row.get::<_, i32>(0));
            break;
        }
        thread::sleep(Duration::from_millis(10));
    }
    let pid = waiting.expect("the renewal waits on the lease row");
    watch
        .execute("SELECT pg_terminate_backend($1)", &[&pid])
        .unwrap();
    let (mut store, mut lease, cut) = host.join().unwrap();
    assert!(matches!(cut, Err(Error::Unavailable(_))), "{cut:?}");
    hold.rollback().unwrap();

    // The host retries the same renewal: applied now, once.
    assert_eq!(
        store.renew(&mut lease, 1, 100, 500).unwrap(),
        Renewal::Applied
    );
    assert_eq!(
        store.renew(&mut lease, 1, 100, 500).unwrap(),
        Renewal::AlreadyApplied
    );
    assert!(
        lease.deadline > taken_deadline,
        "the renewal extended the deadline"
    );
    let account = store.account(KEY).unwrap();
    assert_eq!((account.leased, account.used), (400, 100));
    assert_eq!(store.settle(lease.id, 100).unwrap().returned, 400);
}
