//! Online renewal through the engine (rule R21 in docs/rules.md), with a renewer in the test's
//! hands instead of a service: when it starts, what it installs and where, how failures are
//! reported and retried, trust, races with the operator, and the thread's end.
//! `tollgate-activation` tests the same against the real service on loopback.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::await_that;
use time::OffsetDateTime;
use tollgate_core::{
    Clock, Engine, Error, Event, EventKind, Key, KeyKind, KeyOrLicense, KeyStatus, LicenseClass,
    Options, Refusal, Renewal, RenewalState, Renewed, Renewer, Role, Scheme, VendorPublic,
};
use tollgate_license::{sign, VendorSecret};

const NOW: u32 = 1_800_000_000;
const DAY: u32 = 24 * 60 * 60;

/// An online data-volume key of 1 GiB with activation code "ACT", expiring `days` after NOW.
fn online(id: &str, days: u32) -> Key {
    Key {
        activation_code: Some("ACT".into()),
        expires_at: Some(at(NOW + days * DAY)),
        ..Key::data_volume(id, 1 << 30)
    }
}

fn vendor() -> Arc<VendorSecret> {
    Arc::new(VendorSecret::generate().unwrap())
}

fn at(secs: u32) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(i64::from(secs)).unwrap()
}

/// The successor the service issues for `key`: the next id (`ACT-1` → `ACT-2`), a term of 365
/// days from the old expiry, signed by `vendor`.
fn successor(vendor: &VendorSecret, key: &Key) -> String {
    let (code, n) = key.id.rsplit_once('-').unwrap();
    let next = Key {
        id: format!("{code}-{}", n.parse::<u32>().unwrap() + 1),
        expires_at: key.expires_at.map(|e| e + time::Duration::days(365)),
        ..key.clone()
    };
    sign(vendor, &next).to_json()
}

type Answer = dyn Fn(&Key) -> Result<String, String> + Send + Sync;

/// A renewer that counts its calls and answers as the test says.
struct Fake {
    calls: AtomicUsize,
    answer: Box<Answer>,
}

impl Fake {
    fn new(answer: impl Fn(&Key) -> Result<String, String> + Send + Sync + 'static) -> Arc<Fake> {
        Arc::new(Fake {
            calls: AtomicUsize::new(0),
            answer: Box::new(answer),
        })
    }

    /// A service that renews every key, signing with `vendor`.
    fn service(vendor: Arc<VendorSecret>) -> Arc<Fake> {
        Fake::new(move |key| Ok(successor(&vendor, key)))
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

impl Renewer for Fake {
    fn renew(&self, key: &Key) -> Result<String, String> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        (self.answer)(key)
    }
}

/// Renewal through `renewer`, a week ahead, checking every 20 ms, retrying after `retry`.
fn renewal(renewer: Arc<Fake>, retry: Duration) -> Renewal {
    Renewal {
        lead: Duration::from_secs(7 * u64::from(DAY)),
        retry,
        check_every: Duration::from_millis(20),
        ..Renewal::new(renewer)
    }
}

struct Fixture {
    engine: Engine,
    clock: Clock,
    _dir: tempfile::TempDir,
}

/// An engine on a manual clock at NOW with `renewal` and `trusted_keys`, project "P" holding
/// `active` as its Active key.
fn fixture(
    renewal: Option<Renewal>,
    trusted_keys: Vec<VendorPublic>,
    active: impl Into<KeyOrLicense>,
) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let clock = Clock::manual(NOW);
    let engine = Engine::open_with(
        dir.path(),
        Options {
            clock: clock.clone(),
            renewal,
            trusted_keys,
            ..common::options(dir.path())
        },
    )
    .unwrap();
    engine.create_project("P").unwrap();
    assert_eq!(engine.add_key("P", active).unwrap().role, Role::Active);
    Fixture {
        engine,
        clock,
        _dir: dir,
    }
}

impl Fixture {
    fn keys(&self) -> Vec<(String, KeyStatus)> {
        self.engine
            .keys("P")
            .unwrap()
            .into_iter()
            .map(|k| (k.key.id, k.status))
            .collect()
    }

    /// Waits up to 5 s for the key list to become `expected`.
    fn await_keys(&self, expected: &[(&str, KeyStatus)]) {
        let expected: Vec<(String, KeyStatus)> =
            expected.iter().map(|(id, s)| ((*id).into(), *s)).collect();
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.keys() != expected {
            assert!(
                Instant::now() < deadline,
                "keys {:?}, expected {expected:?}",
                self.keys()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits up to 5 s for the renewal status to say the key is renewed (it is recorded just
    /// after the successor enters its slot).
    fn await_renewed(&self) {
        await_that("the renewal status", || {
            self.engine
                .renewal_status()
                .unwrap()
                .first()
                .is_some_and(|s| s.state == RenewalState::Renewed)
        });
    }

    fn failures(&self) -> Vec<Event> {
        self.engine
            .events_after(0, 10_000)
            .unwrap()
            .into_iter()
            .filter(|e| matches!(e.kind, EventKind::RenewalFailed { .. }))
            .collect()
    }

    /// Waits up to 5 s for `n` `renewal_failed` events.
    fn await_failures(&self, n: usize) -> Vec<Event> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let failures = self.failures();
            if failures.len() >= n {
                return failures;
            }
            assert!(
                Instant::now() < deadline,
                "{} failures, expected {n}",
                failures.len()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

fn manual(key: &str, reason: &str) -> String {
    format!(
        "automatic renewal of key \"{key}\" failed ({reason}): start the activation task manually to renew the license"
    )
}

#[test]
fn a_key_due_for_renewal_gets_its_successor_as_reserve_and_switches_to_it_at_expiry() {
    let renewer = Fake::service(vendor());
    let f = fixture(
        Some(renewal(Arc::clone(&renewer), Duration::from_secs(3600))),
        vec![],
        online("ACT-1", 2),
    );
    f.await_keys(&[("ACT-1", KeyStatus::Active), ("ACT-2", KeyStatus::Reserved)]);
    f.await_renewed();
    let status = f.engine.renewal_status().unwrap();
    assert_eq!(status.len(), 1);
    assert_eq!(
        (
            status[0].key.as_str(),
            status[0].state,
            status[0].successor.as_deref()
        ),
        ("ACT-1", RenewalState::Renewed, Some("ACT-2"))
    );
    assert_eq!(status[0].expires_at, at(NOW + 2 * DAY));
    // Renewed once: a pair with a reserve wants nothing more.
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(renewer.calls(), 1);

    // At expiry the hot path switches to the successor, as to any reserve.
    let project = f.engine.project("P").unwrap();
    project.consume(10).unwrap();
    f.clock.set(NOW + 2 * DAY);
    project.consume(10).unwrap();
    assert_eq!(project.usage().switches, 1);
    assert_eq!(
        f.keys(),
        [
            ("ACT-1".into(), KeyStatus::Retired),
            ("ACT-2".into(), KeyStatus::Active)
        ]
    );
    // The successor's own expiry is a year away: nothing is due any more.
    assert_eq!(f.engine.renewal_status().unwrap(), []);
    assert!(f.failures().is_empty());
}

#[test]
fn renewal_waits_until_the_key_is_within_the_lead() {
    let renewer = Fake::service(vendor());
    let f = fixture(
        Some(renewal(Arc::clone(&renewer), Duration::from_secs(3600))),
        vec![],
        online("ACT-1", 30),
    );
    std::thread::sleep(Duration::from_millis(150));
    assert_eq!(renewer.calls(), 0);
    assert_eq!(f.engine.renewal_status().unwrap(), []);
    // Eight days before expiry: still not; six days before: renewed.
    f.clock.set(NOW + 22 * DAY);
    std::thread::sleep(Duration::from_millis(150));
    assert_eq!(renewer.calls(), 0);
    f.clock.set(NOW + 24 * DAY);
    f.await_keys(&[("ACT-1", KeyStatus::Active), ("ACT-2", KeyStatus::Reserved)]);
}

#[test]
fn an_expired_key_is_renewed_and_its_successor_becomes_active_at_once() {
    let renewer = Fake::service(vendor());
    // No renewal thread yet: the key expires unrenewed first.
    let f = fixture(None, vec![], online("ACT-1", 1));
    f.clock.set(NOW + 2 * DAY);
    let project = f.engine.project("P").unwrap();
    assert!(matches!(project.consume(1), Err(Refusal::Expired)));

    f.engine
        .enable_renewal(renewal(Arc::clone(&renewer), Duration::from_secs(3600)))
        .unwrap();
    f.await_keys(&[("ACT-1", KeyStatus::Retired), ("ACT-2", KeyStatus::Active)]);
    project.consume(1).unwrap();
    let switched = f
        .engine
        .events_after(0, 1000)
        .unwrap()
        .into_iter()
        .any(|e| matches!(e.kind, EventKind::Switched { ref from, ref to, .. } if from == "ACT-1" && to == "ACT-2"));
    assert!(switched);
}

#[test]
fn a_failure_changes_nothing_is_reported_once_and_is_retried_after_the_delay() {
    let vendor = VendorSecret::generate().unwrap();
    let up = Arc::new(AtomicBool::new(false));
    let service_up = Arc::clone(&up);
    let renewer = Fake::new(move |key| {
        if service_up.load(Ordering::SeqCst) {
            Ok(successor(&vendor, key))
        } else {
            Err("the activation service at http://127.0.0.1:9 is unreachable".into())
        }
    });
    let f = fixture(
        Some(renewal(Arc::clone(&renewer), Duration::from_millis(200))),
        vec![],
        online("ACT-1", 2),
    );
    let before = f.engine.view("P").unwrap();
    let failures = f.await_failures(1);
    let message = manual(
        "ACT-1",
        "the activation service at http://127.0.0.1:9 is unreachable",
    );
    assert_eq!(failures[0].project, "P");
    assert_eq!(
        failures[0].kind,
        EventKind::RenewalFailed {
            key: "ACT-1".into(),
            reason: message.clone()
        }
    );
    let status = f.engine.renewal_status().unwrap();
    assert_eq!(status[0].state, RenewalState::Failed);
    assert_eq!(status[0].message.as_deref(), Some(message.as_str()));
    // Nothing changed (rule R21 in docs/rules.md).
    assert_eq!(f.keys(), [("ACT-1".into(), KeyStatus::Active)]);
    assert_eq!(f.engine.view("P").unwrap(), before);

    // Retried after the delay, not on every check; reported once per episode.
    let first = Instant::now();
    await_that("a retry", || renewer.calls() >= 3);
    assert!(first.elapsed() >= Duration::from_millis(300));
    assert_eq!(f.failures().len(), 1);

    // The service is back: the next retry renews, and the failure is forgotten.
    up.store(true, Ordering::SeqCst);
    f.await_keys(&[("ACT-1", KeyStatus::Active), ("ACT-2", KeyStatus::Reserved)]);
    f.await_renewed();
    assert_eq!(f.failures().len(), 1);
}

#[test]
fn renew_now_renews_whatever_the_expiry_and_says_what_it_did() {
    let renewer = Fake::service(vendor());
    let mut config = renewal(Arc::clone(&renewer), Duration::from_secs(3600));
    // The background thread never finds this key due.
    config.lead = Duration::ZERO;
    let f = fixture(Some(config), vec![], online("ACT-1", 100));
    assert_eq!(
        f.engine.renew_now("P").unwrap(),
        [Renewed {
            project: "P".into(),
            old: "ACT-1".into(),
            new: "ACT-2".into(),
            role: Role::Reserved,
        }]
    );
    assert_eq!(
        f.keys(),
        [
            ("ACT-1".into(), KeyStatus::Active),
            ("ACT-2".into(), KeyStatus::Reserved)
        ]
    );
    // The pair has its reserve: nothing more to renew, and the service is not asked.
    assert_eq!(f.engine.renew_now("P").unwrap(), []);
    assert_eq!(renewer.calls(), 1);
    assert!(matches!(
        f.engine.renew_now("nope"),
        Err(Error::ProjectNotFound { .. })
    ));
}

#[test]
fn renew_now_fails_with_the_manual_renewal_message_and_changes_nothing() {
    let renewer = Fake::new(|_| {
        Err("the activation service refused the request (409 no_renewals_left): activation code \"ACT\" has no renewals left".into())
    });
    let mut config = renewal(Arc::clone(&renewer), Duration::from_secs(3600));
    config.lead = Duration::ZERO;
    let f = fixture(Some(config), vec![], online("ACT-1", 100));
    for _ in 0..2 {
        let error = f.engine.renew_now("P").unwrap_err();
        let Error::RenewalFailed {
            project,
            key,
            reason,
        } = &error
        else {
            panic!("{error:?}");
        };
        assert_eq!((project.as_str(), key.as_str()), ("P", "ACT-1"));
        assert!(reason.contains("no renewals left"), "{reason}");
        assert_eq!(error.to_string(), manual("ACT-1", reason));
    }
    assert_eq!(renewer.calls(), 2);
    assert_eq!(f.failures().len(), 1, "one event per failure episode");
    assert_eq!(f.keys(), [("ACT-1".into(), KeyStatus::Active)]);

    // Without an activation service, a key to renew is a failure too.
    let alone = fixture(None, vec![], online("ACT-1", 100));
    assert_eq!(
        alone.engine.renew_now("P").unwrap_err().to_string(),
        manual("ACT-1", "this engine has no activation service to ask")
    );
    assert_eq!(alone.engine.renewal_status().unwrap(), []);
}

/// The renewal of "ACT-1" on a state that trusts `trusted` with `renewer`, run now.
fn renew_trusting(
    trusted: &VendorSecret,
    renewer: Arc<Fake>,
) -> (Fixture, Result<Vec<Renewed>, Error>) {
    let mut config = renewal(renewer, Duration::from_secs(3600));
    config.lead = Duration::ZERO;
    // A state that trusts vendor keys takes an online key only signed, as the service issues it.
    let active = sign(trusted, &online("ACT-1", 100));
    let f = fixture(Some(config), vec![trusted.public()], active);
    let outcome = f.engine.renew_now("P");
    (f, outcome)
}

#[test]
fn renewed_licenses_are_verified_against_the_trusted_keys() {
    let vendor = vendor();
    let (f, outcome) = renew_trusting(&vendor, Fake::service(Arc::clone(&vendor)));
    assert_eq!(outcome.unwrap()[0].new, "ACT-2");
    assert_eq!(f.keys()[1], ("ACT-2".into(), KeyStatus::Reserved));

    // Signed by another vendor.
    let stranger = self::vendor();
    let stranger_fingerprint = stranger.public().fingerprint();
    let (f, outcome) = renew_trusting(&vendor, Fake::service(stranger));
    let error = outcome.unwrap_err();
    assert_eq!(
        error.to_string(),
        manual(
            "ACT-1",
            &format!("key \"ACT-2\" refused: it is signed by {stranger_fingerprint}, which is not a trusted vendor key")
        )
    );
    assert_eq!(f.keys(), [("ACT-1".into(), KeyStatus::Active)]);
    assert!(
        matches!(&f.failures()[0].kind, EventKind::RenewalFailed { reason, .. } if reason.contains("not a trusted vendor key"))
    );

    // Altered after signing: a term of ten years instead of one.
    let signer = Arc::clone(&vendor);
    let altered = Fake::new(move |key| {
        let text = successor(&signer, key);
        let year = at(NOW + 465 * DAY).year();
        Ok(text.replace(&format!("\"{year}-"), &format!("\"{}-", year + 9)))
    });
    let (f, outcome) = renew_trusting(&vendor, altered);
    assert!(outcome
        .unwrap_err()
        .to_string()
        .contains("the key was altered after signing"),);
    assert_eq!(f.keys(), [("ACT-1".into(), KeyStatus::Active)]);

    // Not a license at all: plain key JSON is not taken from a renewer, even for an online key.
    let plain = Fake::new(|key| {
        Ok(Key {
            id: "ACT-2".into(),
            ..key.clone()
        }
        .to_json())
    });
    let (f, outcome) = renew_trusting(&vendor, plain);
    assert!(
        matches!(&outcome, Err(Error::RenewalFailed { reason, .. }) if reason.contains("malformed license") || reason.contains("unsigned")),
        "{outcome:?}"
    );
    assert_eq!(f.keys(), [("ACT-1".into(), KeyStatus::Active)]);
}

#[test]
fn a_license_for_another_activation_code_is_refused() {
    let vendor = VendorSecret::generate().unwrap();
    let renewer = Fake::new(move |key| {
        let stranger = Key {
            activation_code: Some("OTHER".into()),
            ..key.clone()
        };
        Ok(successor(&vendor, &stranger))
    });
    let mut config = renewal(renewer, Duration::from_secs(3600));
    config.lead = Duration::ZERO;
    let f = fixture(Some(config), vec![], online("ACT-1", 100));
    let error = f.engine.renew_now("P").unwrap_err();
    assert_eq!(
        error.to_string(),
        manual(
            "ACT-1",
            "the license is for activation code \"OTHER\", not \"ACT\""
        )
    );
    assert_eq!(f.keys(), [("ACT-1".into(), KeyStatus::Active)]);
}

#[test]
fn a_subscription_key_is_replaced_once_it_has_expired() {
    let renewer = Fake::service(vendor());
    let subscription = Key {
        kind: KeyKind::Subscription,
        ..online("ACT-1", 2)
    };
    let f = fixture(
        Some(renewal(Arc::clone(&renewer), Duration::from_secs(3600))),
        vec![],
        subscription,
    );
    // Within the lead, but a subscription takes no reserve: it waits for the expiry.
    std::thread::sleep(Duration::from_millis(150));
    assert_eq!(renewer.calls(), 0);
    assert_eq!(
        f.engine.renewal_status().unwrap()[0].state,
        RenewalState::Pending
    );
    f.clock.set(NOW + 2 * DAY);
    f.await_keys(&[("ACT-1", KeyStatus::Retired), ("ACT-2", KeyStatus::Active)]);
    let replaced = f
        .engine
        .events_after(0, 1000)
        .unwrap()
        .into_iter()
        .any(|e| {
            e.kind
                == EventKind::KeyReplaced {
                    old: "ACT-1".into(),
                    new: "ACT-2".into(),
                }
        });
    assert!(replaced);
    f.engine.project("P").unwrap().consume(1).unwrap();
}

#[test]
fn seat_pairs_are_renewed_too() {
    let renewer = Fake::service(vendor());
    let cores = Key {
        scheme: Scheme::PerCore { max_cores: 8 },
        ..online("ACT-1", 2)
    };
    let f = fixture(
        Some(renewal(renewer, Duration::from_secs(3600))),
        vec![],
        cores,
    );
    f.await_keys(&[("ACT-1", KeyStatus::Active), ("ACT-2", KeyStatus::Reserved)]);
    let seats = f.engine.seats("P", LicenseClass::Cores).unwrap();
    assert!(seats.usage().has_reserved);
}

#[test]
fn keys_the_service_cannot_renew_are_left_alone() {
    let renewer = Fake::service(vendor());
    for key in [
        Key {
            activation_code: None,
            ..online("ACT-1", 2)
        },
        Key {
            expires_at: None,
            ..online("ACT-1", 2)
        },
    ] {
        let f = fixture(
            Some(renewal(Arc::clone(&renewer), Duration::from_secs(3600))),
            vec![],
            key,
        );
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(f.engine.renew_now("P").unwrap(), []);
        assert_eq!(f.engine.renewal_status().unwrap(), []);
    }
    assert_eq!(renewer.calls(), 0);
}

#[test]
fn a_reserve_the_operator_added_meanwhile_wins_and_is_no_failure() {
    let vendor = VendorSecret::generate().unwrap();
    let (asked, wait) = (mpsc::channel::<()>(), mpsc::channel::<()>());
    let (asked_tx, asked_rx) = asked;
    let (go_tx, go_rx) = wait;
    let (asked_tx, go_rx) = (Mutex::new(asked_tx), Mutex::new(go_rx));
    let renewer = Fake::new(move |key| {
        asked_tx.lock().unwrap().send(()).unwrap();
        go_rx.lock().unwrap().recv().unwrap();
        Ok(successor(&vendor, key))
    });
    let mut config = renewal(renewer, Duration::from_secs(3600));
    config.lead = Duration::ZERO;
    let f = fixture(Some(config), vec![], online("ACT-1", 100));
    std::thread::scope(|scope| {
        let renewing = scope.spawn(|| f.engine.renew_now("P"));
        asked_rx.recv().unwrap();
        // The service is being asked, with no lock held: the operator is not kept waiting.
        f.engine.add_reserve("P", online("MANUAL-1", 200)).unwrap();
        go_tx.send(()).unwrap();
        assert_eq!(renewing.join().unwrap().unwrap(), []);
    });
    assert_eq!(
        f.keys(),
        [
            ("ACT-1".into(), KeyStatus::Active),
            ("MANUAL-1".into(), KeyStatus::Reserved)
        ]
    );
    assert!(f.failures().is_empty());
}

#[test]
fn a_panicking_renewer_is_a_failure_and_the_thread_goes_on() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&calls);
    let renewer = Fake::new(move |_| {
        counted.fetch_add(1, Ordering::SeqCst);
        panic!("vendor bug")
    });
    let f = fixture(
        Some(renewal(renewer, Duration::from_millis(50))),
        vec![],
        online("ACT-1", 2),
    );
    let failures = f.await_failures(1);
    assert!(
        matches!(&failures[0].kind, EventKind::RenewalFailed { reason, .. } if reason.contains("the renewer panicked"))
    );
    await_that("a retry after the panic", || {
        calls.load(Ordering::SeqCst) >= 2
    });
}

#[test]
fn dropping_the_engine_stops_the_renewal_thread() {
    let renewer = Fake::service(vendor());
    let f = fixture(
        Some(renewal(Arc::clone(&renewer), Duration::from_secs(3600))),
        vec![],
        online("ACT-1", 30),
    );
    // Held by the engine and by its thread.
    assert!(Arc::strong_count(&renewer) > 1);
    drop(f);
    await_that("the renewal thread to end", || {
        Arc::strong_count(&renewer) == 1
    });
}

#[test]
fn enabling_renewal_again_replaces_the_renewer() {
    let first = Fake::new(|_| Err("first".into()));
    let second = Fake::service(vendor());
    let mut config = renewal(Arc::clone(&first), Duration::from_secs(3600));
    config.lead = Duration::ZERO;
    let f = fixture(Some(config.clone()), vec![], online("ACT-1", 100));
    config.renewer = second.clone();
    f.engine.enable_renewal(config).unwrap();
    assert_eq!(f.engine.renew_now("P").unwrap()[0].new, "ACT-2");
    assert_eq!((first.calls(), second.calls()), (0, 1));
    await_that("the first renewal thread to end", || {
        Arc::strong_count(&first) == 1
    });
}

#[test]
fn a_reserve_added_by_hand_ends_a_failure_episode() {
    let renewer = Fake::new(|_| Err("down".into()));
    let f = fixture(
        Some(renewal(Arc::clone(&renewer), Duration::from_millis(50))),
        vec![],
        online("ACT-1", 2),
    );
    f.await_failures(1);
    // The operator renews by hand: nothing is due, and the failure is over.
    f.engine.add_reserve("P", online("MANUAL-1", 200)).unwrap();
    assert_eq!(f.engine.renewal_status().unwrap(), []);
    let calls = renewer.calls();
    std::thread::sleep(Duration::from_millis(150));
    assert_eq!(renewer.calls(), calls);
    // Without the reserve again, the next failure is a new episode, reported anew.
    f.engine.remove_reserve("P", "MANUAL-1").unwrap();
    f.await_failures(2);
}
