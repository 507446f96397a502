//! Signed keys (issues 9 and 14) through the engine: a state that trusts a vendor key takes a
//! key, offline or online, only as a license file signed by that key and unchanged since,
//! refuses every other with `BadSignature` and its exact reason, and changes nothing;
//! development mode, pool assignments and a reopening without the option keep their rules.
//! Licenses are signed the way a vendor signs them, with `tollgate-license`.

mod common;

use tollgate_core::license::FORMAT;
use tollgate_core::{
    BulkTarget, Delivery, Engine, Error, EventKind, InstanceOs, Key, KeyOrLicense, KeyUsage,
    LicenseType, Options, PaymentMode, ProjectView, Purchase, Refusal, Role, Scheme, VendorPublic,
};
use tollgate_license::{sign, VendorSecret};

const UNSIGNED: &str = "it is unsigned, and this state trusts vendor keys: an offline key must come as a license file signed by one of them";
const UNSIGNED_ONLINE: &str = "it is unsigned, and this state trusts vendor keys: an online key must come from the activation service or as a license file signed by one of them";
const ALTERED: &str = "the signature does not match the key: the key was altered after signing, or the signature is damaged";

/// An offline, commercial, standard data-volume key of 1 GiB.
fn offline(id: &str) -> Key {
    Key {
        delivery: Delivery::Offline,
        ..Key::data_volume(id, 1 << 30)
    }
}

fn open(dir: &std::path::Path, trusted_keys: Vec<VendorPublic>) -> Engine {
    Engine::open_with(
        dir,
        Options {
            trusted_keys,
            ..common::options(dir)
        },
    )
    .unwrap()
}

/// The vendor the state trusts, a stranger with a key pair of their own, and an engine that
/// trusts the vendor, with project "P" holding the signed offline key "A" as Active.
struct Fixture {
    vendor: VendorSecret,
    stranger: VendorSecret,
    engine: Engine,
    _dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let vendor = VendorSecret::generate().unwrap();
        let engine = open(dir.path(), vec![vendor.public()]);
        engine.create_project("P").unwrap();
        let added = engine.add_key("P", sign(&vendor, &offline("A"))).unwrap();
        assert_eq!(added.role, Role::Active);
        Fixture {
            vendor,
            stranger: VendorSecret::generate().unwrap(),
            engine,
            _dir: dir,
        }
    }

    /// What a refusal must leave exactly as it was: the keys, the view and the audit log.
    fn snapshot(&self) -> (Vec<KeyUsage>, ProjectView, usize) {
        let events = self.engine.events_after(0, 10_000).unwrap().len();
        (
            self.engine.keys("P").unwrap(),
            self.engine.view("P").unwrap(),
            events,
        )
    }
}

fn text_of(key: &Key) -> String {
    key.to_json()
}

/// Each way a key can lack a valid signature, as the text a caller passes (the C ABI and the
/// CLI's `--file` read text the same way), with the exact reason it is refused for.
fn refused_documents(f: &Fixture) -> Vec<(&'static str, String, String)> {
    let license = sign(&f.vendor, &offline("R")).to_json();
    vec![
        (
            "altered: limit raised",
            license.replace("1073741824", "2147483648"),
            ALTERED.to_owned(),
        ),
        (
            "re-signed by another vendor key",
            sign(&f.stranger, &offline("R")).to_json(),
            format!(
                "it is signed by {}, which is not a trusted vendor key",
                f.stranger.public().fingerprint()
            ),
        ),
        (
            "unsigned offline key",
            text_of(&offline("R")),
            UNSIGNED.to_owned(),
        ),
        (
            "malformed license",
            license.replace(FORMAT, "tollgate-license-3"),
            "malformed license: the format is \"tollgate-license-3\", not \"tollgate-license-2\" or \"tollgate-license-1\""
                .to_owned(),
        ),
    ]
}

type Change = fn(&Engine, KeyOrLicense) -> Result<(), Error>;

/// Every call that brings a key from outside into a project.
const CHANGES: [(&str, Change); 4] = [
    ("add_key", |e, k| e.add_key("P", k).map(drop)),
    ("add_reserve", |e, k| e.add_reserve("P", k).map(drop)),
    ("replace_active_key", |e, k| {
        e.replace_active_key("P", k).map(drop)
    }),
    ("add_reserve_bulk", |e, k| {
        e.add_reserve_bulk(&BulkTarget::All, k).map(drop)
    }),
];

#[test]
fn with_a_trusted_vendor_key_every_unsigned_altered_resigned_or_malformed_key_is_refused() {
    let f = Fixture::new();
    for (case, text, reason) in refused_documents(&f) {
        for (change, call) in CHANGES {
            let before = f.snapshot();
            let result = KeyOrLicense::parse(&text).and_then(|doc| call(&f.engine, doc));
            match result {
                Err(Error::BadSignature { key, reason: got }) => {
                    assert_eq!(key, "R", "{case} / {change}");
                    assert_eq!(got.to_string(), reason, "{case} / {change}");
                }
                other => panic!("{case} / {change}: expected BadSignature, got {other:?}"),
            }
            assert_eq!(
                f.snapshot(),
                before,
                "{case} / {change} changed the project"
            );
        }
    }
    // The message names the key and says why.
    let refusal = f.engine.add_key("P", offline("R")).unwrap_err();
    assert_eq!(
        refusal.to_string(),
        format!("key \"R\" refused: {UNSIGNED}")
    );
}

#[test]
fn a_valid_signed_offline_key_is_added_by_every_call() {
    let f = Fixture::new();
    let added = f
        .engine
        .add_key("P", sign(&f.vendor, &offline("R")))
        .unwrap();
    assert_eq!(added.role, Role::Reserved);
    // From text, as the C ABI and the CLI pass it.
    let text = sign(&f.vendor, &offline("N")).to_json();
    let replaced = f
        .engine
        .replace_active_key("P", KeyOrLicense::parse(&text).unwrap())
        .unwrap();
    assert_eq!(replaced.old, "A");
    f.engine.create_project("Q").unwrap();
    f.engine
        .add_key("Q", sign(&f.vendor, &offline("Q-A")))
        .unwrap();
    let bulk = f
        .engine
        .add_reserve_bulk(
            &BulkTarget::Project("Q".into()),
            sign(&f.vendor, &offline("Q-R")),
        )
        .unwrap();
    assert_eq!(bulk[0].result.as_ref().unwrap().role, Role::Reserved);
    let ids: Vec<String> = f
        .engine
        .keys("P")
        .unwrap()
        .into_iter()
        .map(|k| k.key.id)
        .collect();
    assert_eq!(ids, ["A", "R", "N"]);
}

#[test]
fn forged_online_key_under_trust_is_refused() {
    // Regression: after `trust add`, a home-made online key of 64 TiB less one byte, and
    // a per-core key of four billion cores, were taken unsigned.
    let f = Fixture::new();
    f.engine.create_project("Q").unwrap();
    let before = f.snapshot();
    let forged = [
        Key::data_volume("FORGED", 70_368_744_177_663),
        Key {
            scheme: Scheme::PerCore {
                max_cores: 4_000_000_000,
            },
            ..Key::data_volume("CORES", 1)
        },
    ];
    for key in forged {
        assert_eq!(key.delivery, Delivery::Online);
        let id = key.id.clone();
        for (call, change) in CHANGES {
            for document in [
                KeyOrLicense::from(key.clone()),
                KeyOrLicense::parse(&text_of(&key)).unwrap(),
            ] {
                match change(&f.engine, document) {
                    Err(Error::BadSignature { key, reason }) => {
                        assert_eq!(
                            (key.as_str(), reason.to_string().as_str()),
                            (id.as_str(), UNSIGNED_ONLINE)
                        )
                    }
                    other => panic!("{call} {id}: {other:?}"),
                }
            }
        }
        for project in ["P", "Q"] {
            assert!(f
                .engine
                .keys(project)
                .unwrap()
                .iter()
                .all(|k| k.key.id != id));
        }
    }
    assert_eq!(f.snapshot(), before);
    assert!(matches!(
        f.engine.project("Q").unwrap().consume(1),
        Err(Refusal::NoActiveKey)
    ));
    // What the activation service issues is signed, and is taken; a signed online key that
    // was altered is refused all the same.
    let issued = sign(&f.vendor, &Key::data_volume("ON-1", 1 << 30));
    assert_eq!(f.engine.add_key("Q", issued).unwrap().role, Role::Active);
    let altered = sign(&f.vendor, &Key::data_volume("ON-3", 1))
        .to_json()
        .replace("\"limit_bytes\": 1", "\"limit_bytes\": 2");
    assert!(matches!(
        KeyOrLicense::parse(&altered).and_then(|doc| f.engine.replace_active_key("Q", doc)),
        Err(Error::BadSignature { reason, .. }) if reason.to_string() == ALTERED
    ));
}

#[test]
fn development_mode_accepts_unsigned_keys_but_never_an_altered_license() {
    let dir = tempfile::tempdir().unwrap();
    let engine = common::open(dir.path()).unwrap();
    assert!(engine.trusted_keys().unwrap().is_empty());
    engine.create_project("P").unwrap();
    engine.add_key("P", offline("A")).unwrap();
    // Signed by anyone: nobody is trusted, so the signer is not asked.
    let stranger = VendorSecret::generate().unwrap();
    engine.add_key("P", sign(&stranger, &offline("R"))).unwrap();
    let altered = sign(&stranger, &offline("N"))
        .to_json()
        .replace("1073741824", "2147483648");
    match KeyOrLicense::parse(&altered).and_then(|doc| engine.replace_active_key("P", doc)) {
        Err(Error::BadSignature { key, reason }) => {
            assert_eq!((key.as_str(), reason.to_string().as_str()), ("N", ALTERED))
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_state_that_trusts_a_key_cannot_be_downgraded_by_opening_it_without_the_option() {
    let dir = tempfile::tempdir().unwrap();
    let vendor = VendorSecret::generate().unwrap();
    {
        let engine = open(dir.path(), vec![vendor.public()]);
        engine.create_project("P").unwrap();
    }
    // Reopened as a tool that knows nothing of the vendor would open it.
    let engine = common::open(dir.path()).unwrap();
    let trusted: Vec<VendorPublic> = engine
        .trusted_keys()
        .unwrap()
        .into_iter()
        .map(|t| t.key)
        .collect();
    assert_eq!(trusted, [vendor.public()]);
    match engine.add_key("P", offline("A")) {
        Err(Error::BadSignature { key, reason }) => {
            assert_eq!((key.as_str(), reason.to_string().as_str()), ("A", UNSIGNED))
        }
        other => panic!("an unsigned offline key got in after a reopening: {other:?}"),
    }
    assert!(engine.keys("P").unwrap().is_empty());
    engine.add_key("P", sign(&vendor, &offline("A"))).unwrap();
    drop(engine);
    // Opening with the same key again records nothing new.
    let engine = open(dir.path(), vec![vendor.public()]);
    let trusted_events = engine
        .events_after(0, 1000)
        .unwrap()
        .into_iter()
        .filter(|e| matches!(e.kind, EventKind::VendorKeyTrusted { .. }))
        .count();
    assert_eq!(trusted_events, 1);
}

#[test]
fn trust_records_a_key_once_with_an_audit_event_and_leaves_existing_keys_alone() {
    let dir = tempfile::tempdir().unwrap();
    let engine = common::open(dir.path()).unwrap();
    engine.create_project("P").unwrap();
    engine.add_key("P", offline("OLD")).unwrap();
    let vendor = VendorSecret::generate().unwrap();
    let events = engine.subscribe(16);
    assert!(engine.trust(&vendor.public()).unwrap());
    assert!(!engine.trust(&vendor.public()).unwrap());
    let trusted = engine.trusted_keys().unwrap();
    assert_eq!(trusted.len(), 1);
    assert_eq!(trusted[0].key, vendor.public());
    let event = events
        .recv_timeout(std::time::Duration::from_secs(5))
        .unwrap();
    assert_eq!(
        event.kind,
        EventKind::VendorKeyTrusted {
            public_key: vendor.public().fingerprint()
        }
    );
    assert_eq!(event.project, "");
    // The key added before trust began stays Active; a new unsigned one is refused.
    assert!(matches!(
        engine.add_key("P", offline("NEW")),
        Err(Error::BadSignature { .. })
    ));
    assert_eq!(engine.keys("P").unwrap().len(), 1);
    engine.project("P").unwrap().consume(1).unwrap();
}

#[test]
fn pool_assignments_install_the_engines_own_keys_with_trust_on() {
    let dir = tempfile::tempdir().unwrap();
    let vendor = VendorSecret::generate().unwrap();
    let engine = open(dir.path(), vec![vendor.public()]);
    engine
        .buy_licenses(&Purchase::new(LicenseType::Server, 1, PaymentMode::Annual))
        .unwrap();
    engine
        .add_instance("web-01", InstanceOs::Linux, None)
        .unwrap();
    let assignment = engine.assign("web-01", None).unwrap();
    assert_eq!(assignment.license_type, LicenseType::Server);
    engine.check_instance("web-01").unwrap();
    let keys = engine.keys("web-01").unwrap();
    assert_eq!(keys[0].key.delivery, Delivery::Offline);
    // A caller cannot add such a key by hand: it is an unsigned offline key.
    assert!(matches!(
        engine.add_key(
            "web-01",
            Key {
                id: "X".into(),
                ..keys[0].key.clone()
            }
        ),
        Err(Error::BadSignature { .. })
    ));
}
