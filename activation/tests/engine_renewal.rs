//! The engine renewing its online keys through the real service on loopback (rule R21 in
//! docs/rules.md): the successor arrives as the reserve ahead of expiry and takes over at expiry; a
//! license signed by another vendor, a service that is down or silent, and a code with no renewals
//! left each end in a `renewal_failed` event with the manual-renewal message, and change no key.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{dead_address, fast, FakeService, Reply, Vendor};
use tollgate_activation::{ActivationClient, ClientOptions};
use tollgate_core::{
    Clock, Engine, Error, Event, EventKind, Key, KeyStatus, Options, Refusal, Renewal,
    RenewalState, Role, VendorPublic,
};

const DAY: u32 = 24 * 60 * 60;
const MANUAL: &str = "): start the activation task manually to renew the license";

fn secs(key: &Key) -> u32 {
    u32::try_from(key.expires_at.unwrap().unix_timestamp()).unwrap()
}

/// An engine on a manual clock at `now`, trusting `trusted`, renewing through `client` a week
/// ahead and checking every 20 ms (or never in the background, with `background` false, for
/// `renew_now`), with project "P".
struct Customer {
    engine: Engine,
    clock: Clock,
    _dir: tempfile::TempDir,
}

impl Customer {
    fn new(
        client: ActivationClient,
        now: u32,
        trusted: Vec<VendorPublic>,
        background: bool,
    ) -> Customer {
        let dir = tempfile::tempdir().unwrap();
        let clock = Clock::manual(now);
        let renewal = Renewal {
            lead: if background {
                Duration::from_secs(7 * u64::from(DAY))
            } else {
                Duration::ZERO
            },
            retry: Duration::from_secs(3600),
            // Without the background pass, the worker must not race `renew_now` for an expired
            // key (a lead of zero still covers it): it looks once an hour, i.e. never here.
            check_every: if background {
                Duration::from_millis(20)
            } else {
                Duration::from_secs(3600)
            },
            ..Renewal::new(Arc::new(client))
        };
        let engine = Engine::open_with(
            dir.path(),
            Options {
                clock: clock.clone(),
                trusted_keys: trusted,
                renewal: Some(renewal),
                // The test's own installation, never the real one under $HOME.
                installation_dir: Some(dir.path().join("installation")),
                ..Options::default()
            },
        )
        .unwrap();
        engine.create_project("P").unwrap();
        Customer {
            engine,
            clock,
            _dir: dir,
        }
    }

    fn keys(&self) -> Vec<(String, KeyStatus)> {
        self.engine
            .keys("P")
            .unwrap()
            .into_iter()
            .map(|k| (k.key.id, k.status))
            .collect()
    }

    /// Waits up to 8 s for `condition`.
    fn wait(&self, what: &str, condition: impl Fn(&Customer) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(8);
        while !condition(self) {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; keys {:?}",
                self.keys()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn failures(&self) -> Vec<Event> {
        self.engine
            .events_after(0, 10_000)
            .unwrap()
            .into_iter()
            .filter(|e| matches!(e.kind, EventKind::RenewalFailed { .. }))
            .collect()
    }

    /// Waits for the first `renewal_failed` event and returns its reason.
    fn failure(&self) -> String {
        self.wait("a renewal_failed event", |c| !c.failures().is_empty());
        match &self.failures()[0].kind {
            EventKind::RenewalFailed { reason, .. } => reason.clone(),
            _ => unreachable!(),
        }
    }
}

fn client(url: &str) -> ActivationClient {
    ActivationClient::new(url, fast(1)).unwrap()
}

#[test]
fn the_successor_arrives_as_the_reserve_ahead_of_expiry_and_takes_over_at_expiry() {
    let vendor = Vendor::new(&[("ACT-1", 30, 5)]);
    let service = vendor.start();
    let issued = client(&service.url()).activate("ACT-1", "M-1").unwrap();
    let first = vendor.verify(&issued);
    let expiry = secs(&first);

    // Two days before expiry, trusting the vendor: the activated license is added as it came.
    let customer = Customer::new(
        client(&service.url()),
        expiry - 2 * DAY,
        vec![vendor.public],
        true,
    );
    let added = customer.engine.add_key("P", issued.license).unwrap();
    assert_eq!(added.role, Role::Active);
    customer.wait("the successor", |c| {
        c.keys()
            == [
                ("ACT-1-1".into(), KeyStatus::Active),
                ("ACT-1-2".into(), KeyStatus::Reserved),
            ]
    });
    let successor = &customer.engine.keys("P").unwrap()[1].key;
    assert_eq!(secs(successor), expiry + 30 * DAY);
    assert_eq!(vendor.catalog()["codes"][0]["renewals_left"], 4);
    customer.wait("the renewed status", |c| {
        c.engine.renewal_status().unwrap()[0].state == RenewalState::Renewed
    });
    // Renewed once: one activation and one renewal reached the service.
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(service.requests_served(), 2);

    let project = customer.engine.project("P").unwrap();
    project.consume(1 << 20).unwrap();
    customer.clock.set(expiry);
    project.consume(1 << 20).unwrap();
    assert_eq!(project.usage().switches, 1);
    assert_eq!(
        customer.keys(),
        [
            ("ACT-1-1".into(), KeyStatus::Retired),
            ("ACT-1-2".into(), KeyStatus::Active),
        ]
    );
    assert!(customer.failures().is_empty());
}

#[test]
fn an_expired_key_is_renewed_from_the_service_and_active_at_once() {
    let vendor = Vendor::new(&[("ACT-1", 30, 5)]);
    let service = vendor.start();
    let issued = client(&service.url()).activate("ACT-1", "M-1").unwrap();
    let expiry = secs(&vendor.verify(&issued));
    let customer = Customer::new(client(&service.url()), expiry - DAY, vec![], false);
    customer.engine.add_key("P", issued.license).unwrap();
    customer.clock.set(expiry + DAY);
    let project = customer.engine.project("P").unwrap();
    assert!(matches!(project.consume(1), Err(Refusal::Expired)));

    let renewed = customer.engine.renew_now("P").unwrap();
    assert_eq!(
        (renewed[0].new.as_str(), renewed[0].role),
        ("ACT-1-2", Role::Active)
    );
    project.consume(1).unwrap();
}

#[test]
fn a_license_signed_by_another_vendor_is_refused_and_nothing_changes() {
    let trusted = Vendor::new(&[]);
    let impostor = Vendor::new(&[("ACT-1", 30, 5)]);
    let service = impostor.start();
    let key = impostor.verify(&client(&service.url()).activate("ACT-1", "M-1").unwrap());
    let customer = Customer::new(
        client(&service.url()),
        secs(&key) - 2 * DAY,
        vec![trusted.public],
        true,
    );
    // The first key is signed by the trusted vendor, as every key of a trusting state must be;
    // its renewal must be signed by a trusted key too.
    let secret = tollgate_license::VendorSecret::read(&trusted.secret_path()).unwrap();
    customer
        .engine
        .add_key("P", tollgate_license::sign(&secret, &key))
        .unwrap();
    let reason = customer.failure();
    assert!(
        reason.starts_with(
            "automatic renewal of key \"ACT-1-1\" failed (key \"ACT-1-2\" refused: it is signed by "
        ) && reason.contains("which is not a trusted vendor key")
            && reason.ends_with(MANUAL),
        "{reason}"
    );
    assert_eq!(customer.keys(), [("ACT-1-1".into(), KeyStatus::Active)]);
    let status = customer.engine.renewal_status().unwrap();
    assert_eq!(status[0].state, RenewalState::Failed);
    assert_eq!(status[0].message.as_deref(), Some(reason.as_str()));
}

#[test]
fn a_service_that_is_down_means_manual_renewal_and_the_key_expires() {
    let now = 1_800_000_000;
    let key = Key {
        activation_code: Some("ACT-1".into()),
        expires_at: Some(
            time::OffsetDateTime::from_unix_timestamp(i64::from(now + 2 * DAY)).unwrap(),
        ),
        ..Key::data_volume("ACT-1-1", 1 << 30)
    };
    let url = format!("http://{}", dead_address());
    let customer = Customer::new(client(&url), now, vec![], true);
    customer.engine.add_key("P", key).unwrap();
    let reason = customer.failure();
    assert!(
        reason.starts_with(&format!(
            "automatic renewal of key \"ACT-1-1\" failed (the activation service at {url} is unreachable (2 attempts)"
        )) && reason.ends_with(MANUAL),
        "{reason}"
    );
    // Nothing changed, and once the key expires it meters nothing.
    assert_eq!(customer.keys(), [("ACT-1-1".into(), KeyStatus::Active)]);
    let project = customer.engine.project("P").unwrap();
    project.consume(1).unwrap();
    customer.clock.set(now + 2 * DAY);
    assert!(matches!(project.consume(1), Err(Refusal::Expired)));
    assert_eq!(customer.keys(), [("ACT-1-1".into(), KeyStatus::Active)]);
    assert_eq!(customer.failures().len(), 1);
}

#[test]
fn a_code_with_no_renewals_left_is_refused_with_the_manual_renewal_message() {
    let vendor = Vendor::new(&[("ACT-1", 30, 0)]);
    let service = vendor.start();
    let issued = client(&service.url()).activate("ACT-1", "M-1").unwrap();
    let expiry = secs(&vendor.verify(&issued));
    let customer = Customer::new(client(&service.url()), expiry - DAY, vec![], false);
    customer.engine.add_key("P", issued.license).unwrap();
    let error = customer.engine.renew_now("P").unwrap_err();
    assert!(matches!(error, Error::RenewalFailed { .. }), "{error:?}");
    assert_eq!(
        error.to_string(),
        "automatic renewal of key \"ACT-1-1\" failed (the activation service refused the request \
(409 no_renewals_left): activation code \"ACT-1\" has no renewals left): start the activation \
task manually to renew the license"
    );
    assert_eq!(customer.failures().len(), 1);
    assert_eq!(customer.keys(), [("ACT-1-1".into(), KeyStatus::Active)]);
}

#[test]
fn a_service_that_never_answers_times_out_and_nothing_changes() {
    let silent = FakeService::start(vec![Reply::Silent]);
    let options = ClientOptions {
        timeout: Duration::from_millis(200),
        ..fast(1)
    };
    let key = Key {
        activation_code: Some("ACT-1".into()),
        expires_at: Some(time::macros::datetime!(2030-01-01 00:00:00 UTC)),
        ..Key::data_volume("ACT-1-1", 1 << 30)
    };
    let customer = Customer::new(
        ActivationClient::new(&silent.url(), options).unwrap(),
        1_800_000_000,
        vec![],
        false,
    );
    customer.engine.add_key("P", key).unwrap();
    let started = Instant::now();
    let error = customer.engine.renew_now("P").unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(
        error
            .to_string()
            .contains("did not answer within 200 ms (2 attempts)"),
        "{error}"
    );
    assert_eq!(silent.requests(), 2);
    assert_eq!(customer.keys(), [("ACT-1-1".into(), KeyStatus::Active)]);
}
