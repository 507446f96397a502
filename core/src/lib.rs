//! # Tollgate
//!
//! A license **metering and enforcement engine**. A data-migration engine asks Tollgate, for
//! every batch it moves, whether the project's license still covers it. Tollgate accounts the
//! bytes per project in a memory-mapped state file shared by every thread and process, switches
//! from the Active key to the Reserved key the instant the Active one is used up or expires —
//! without any caller waiting — and refuses work that no valid key covers.
//!
//! ```
//! use tollgate_core::{Engine, Key, Options, Refusal};
//!
//! let dir = tempfile::tempdir()?;
//! // The installation (the key of the usage ratchets) defaults to ~/.local/state/tollgate.
//! let options = Options {
//!     installation_dir: Some(dir.path().join("installation")),
//!     ..Options::default()
//! };
//! let engine = Engine::open_with(dir.path().join("state"), options)?;
//! engine.create_project("warehouse")?;
//! let key = |id: &str, gb: u64| Key::from_json(&format!(
//!     r#"{{"id": "{id}", "delivery": "online", "kind": "commercial", "edition": "standard",
//!         "scheme": {{"data_volume": {{"limit_bytes": {}}}}}}}"#, gb << 30)).unwrap();
//! engine.add_key("warehouse", key("A-1", 1))?;
//! let added = engine.add_key("warehouse", key("A-2", 1))?;
//! assert!(added.message.unwrap().starts_with("You have added an additional license key"));
//!
//! let project = engine.project("warehouse")?; // look up once, then meter on the hot path
//! for _ in 0..3 {
//!     project.consume(512 << 20)?; // the third batch crosses into the reserve key
//! }
//! let usage = project.usage();
//! assert_eq!((usage.active_used, usage.switches), (512 << 20, 1));
//! assert!(matches!(project.consume(1 << 30), Err(Refusal::Exhausted { .. })));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The pieces: [`Engine`] opens a state directory; [`ProjectHandle`] is the hot path, which
//! refuses with a [`Refusal`] (plain `Copy` data, convertible into [`Error`] with `?`);
//! [`Key`] is the license model, and [`license`] the signed license files that a state trusting
//! a vendor key ([`Engine::trust`]) requires for offline keys; [`ProjectView`] is what a UI
//! shows; [`Event`]s go to the audit log and to [`Subscription`]s.
#![deny(missing_docs)]
#![deny(clippy::undocumented_unsafe_blocks)]

mod catalog;
mod clock;
mod engine;
mod error;
mod event;
mod events;
mod files;
mod holders;
mod key;
mod lease_slots;
pub mod license;
mod mapped;
mod period;
mod pool;
mod refusal;
mod rules;
mod sigbus;
mod slot;
mod state_file;
mod sync;
mod view;
mod worker;

pub use catalog::ClosedPeriod;
pub use clock::Clock;
pub use engine::LifetimeUsage;
pub use engine::TrustedKey;
pub use engine::{
    AccountUsage, BulkOutcome, BulkTarget, Engine, FleetConfig, Group, InstanceHandle, KeyAdded,
    KeyHolder, KeyReplaced, KeyStatus, KeyUsage, Options, ProjectHandle, SeatHandle, SeatUsage,
    SeatsReclaimed, ThreadProject, Usage, DEFAULT_CLOCK_TOLERANCE, DEFAULT_RATCHET_INTERVAL,
};
pub use engine::{Activated, ActivatedBulk, ActivationSlot, Activator, MAX_ACTIVATION_CODE};
pub use engine::{
    Renewal, RenewalState, RenewalStatus, Renewed, Renewer, DEFAULT_RENEWAL_CHECK,
    DEFAULT_RENEWAL_LEAD, DEFAULT_RENEWAL_RETRY,
};
pub use error::manual_renewal_message;
pub use error::{
    AccountTerm, Corruption, EditedTerms, Error, RecordDamage, Result, Rollback, SignatureRefusal,
    SlotTerm, StoreError, Tampering,
};
pub use event::{CheckedKey, Event, EventKind, PeriodMark, RemovalReason};
pub use events::Subscription;
pub use key::{
    check_name, Delivery, Edition, Key, KeyKind, LicenseClass, MachineOs, Scheme, MAX_GRACE_DAYS,
    MAX_LIMIT_BYTES, MAX_NAME_BYTES, MAX_OVERAGE_PERCENT,
};
pub use license::{KeyOrLicense, VendorPublic};
pub use period::Period;
pub use pool::{
    Assignment, Instance, InstanceOs, LicenseFilter, LicenseType, Need, NeedReason, PaymentMode,
    PoolKind, PoolLicense, Purchase, Shortfall, TypeListing, TypeShortfall, MAX_QUANTITY,
    NOT_PURCHASED,
};
pub use refusal::Refusal;
pub use slot::{RefusalReason, SwitchReason};
pub use state_file::{DEFAULT_CAPACITY, FORMAT_VERSION, MAX_CAPACITY};
pub use view::{
    active_tooltip, reserve_added_message, reserved_tooltip, LicenseCard, Overage, PairView,
    ProjectView, Role, RESERVED_TOOLTIP,
};
