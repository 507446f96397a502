//! The engine's one error type.

use std::path::PathBuf;

mod corruption;
mod signature;
mod tampering;

pub use corruption::{Corruption, RecordDamage};
pub use signature::SignatureRefusal;
pub use tampering::{AccountTerm, EditedTerms, Rollback, SlotTerm, Tampering};

/// Every way a Tollgate operation can fail. Each variant is one rule or condition the caller can
/// match on; the message names the value at fault.
///
/// The hot-path handles refuse with the `Copy` [`Refusal`](crate::Refusal) instead, which
/// converts into the variant here that says the same (`Exhausted`, `SeatsExhausted`,
/// `NotHeld`, `Expired`, `NoActiveKey`, `Unavailable`, `CorruptState`), so `?` carries a refusal
/// into this type.
///
/// Exhaustive, so a caller that maps every variant (the C ABI's status codes, the CLI's exit
/// statuses) is told by the compiler when one is added, instead of falling back on a default.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An argument is malformed: empty or over-long name, NUL byte, limit out of range, bad JSON.
    #[error("invalid {field}: {reason}")]
    InvalidArgument {
        /// Which argument or field is at fault.
        field: &'static str,
        /// Why it was refused.
        reason: String,
    },
    /// No project of that name exists.
    #[error("project \"{name}\" does not exist")]
    ProjectNotFound {
        /// The name asked for.
        name: String,
    },
    /// No key of that id is in the named role.
    #[error("project \"{project}\" has no reserve key \"{key}\"")]
    ReserveNotFound {
        /// The project.
        project: String,
        /// The key id asked for.
        key: String,
    },
    /// A project of that name already exists.
    #[error("project \"{name}\" already exists")]
    ProjectExists {
        /// The name.
        name: String,
    },
    /// The request needs more bytes than the Active and Reserved keys have left. Nothing was charged.
    #[error("license exhausted: {requested} bytes requested but only {remaining} remain on the active and reserved keys")]
    Exhausted {
        /// Bytes asked for.
        requested: u64,
        /// Bytes still grantable at the moment of refusal.
        remaining: u64,
    },
    /// An `acquire` asked for more seats than the Active key has free. Nothing was taken.
    #[error("no free seats: {requested} requested but only {available} of the active key's seats are free in all the projects that hold it")]
    SeatsExhausted {
        /// Seats asked for.
        requested: u64,
        /// Seats free at the moment of refusal.
        available: u64,
    },
    /// A `release` gave back more seats than the caller holds. Nothing was released.
    #[error("cannot release {requested} seats: only {held} are held")]
    NotHeld {
        /// Seats the caller tried to release.
        requested: u64,
        /// Seats the caller holds.
        held: u64,
    },
    /// Every key that could cover the request has expired. Nothing was charged. The message
    /// gives the next step of rule R28 in docs/rules.md; it is a static text, so the hot path still
    /// allocates nothing.
    #[error(
        "license expired: the active key has expired and no unexpired reserve key can take over; request a new license key or contact your vendor"
    )]
    Expired,
    /// A fleet host's stock of the key is spent and the fleet store cannot be reached (or has
    /// not answered yet) to lease more: nothing was granted. Not a license decision — the store
    /// may well have more; try again. Also what a fleet host answers when it cannot reach the
    /// store to learn what it does not hold yet. Allocates nothing.
    #[error("the fleet store is unavailable: this host's leases of the key are spent and no more could be leased yet; nothing was granted, try again")]
    Unavailable,
    /// The slot pair has no Active key (metering refused, or a reserve added to an empty pair).
    #[error("no active license key: add a key before metering or adding a reserve")]
    NoActiveKey,
    /// The pair already holds a Reserved key: one additional key per pair.
    #[error("project \"{project}\" already has reserve key \"{reserve}\": only one additional key per pair")]
    ReserveOccupied {
        /// The project.
        project: String,
        /// The reserve key already present.
        reserve: String,
    },
    /// The Active key, or the new key, is a subscription key: subscriptions take no reserve.
    #[error(
        "key \"{key}\" is a subscription key: a reserve key cannot be added under a subscription"
    )]
    Subscription {
        /// The subscription key.
        key: String,
    },
    /// The reserve's delivery (online/offline) differs from the Active key's.
    #[error("reserve key \"{reserve}\" is {reserve_delivery} but the active key \"{active}\" is {active_delivery}")]
    TypeMismatch {
        /// The key being added.
        reserve: String,
        /// Its delivery.
        reserve_delivery: &'static str,
        /// The Active key.
        active: String,
        /// Its delivery.
        active_delivery: &'static str,
    },
    /// The reserve's edition differs from the Active key's.
    #[error("reserve key \"{reserve}\" is {reserve_edition} edition but the active key \"{active}\" is {active_edition}")]
    EditionMismatch {
        /// The key being added.
        reserve: String,
        /// Its edition.
        reserve_edition: &'static str,
        /// The Active key.
        active: String,
        /// Its edition.
        active_edition: &'static str,
    },
    /// The reserve limits something else than the Active key (scheme or class).
    #[error("reserve key \"{reserve}\" is a {reserve_class} key but the active key \"{active}\" is a {active_class} key")]
    SchemeMismatch {
        /// The key being added.
        reserve: String,
        /// Its license class.
        reserve_class: String,
        /// The Active key.
        active: String,
        /// Its license class.
        active_class: String,
    },
    /// The key id is already used somewhere in this state.
    #[error("key id \"{id}\" is already used")]
    DuplicateKey {
        /// The id.
        id: String,
    },
    /// The key being added or used as a replacement has already expired.
    #[error(
        "key \"{id}\" expired at {expired_at}: request a new license key or contact your vendor"
    )]
    KeyExpired {
        /// The key.
        id: String,
        /// Its expiry, RFC 3339.
        expired_at: String,
    },
    /// The state file or store is damaged, truncated or of another format; it was not modified.
    #[error("corrupt state at {}: {reason}", path.display())]
    CorruptState {
        /// The file at fault.
        path: PathBuf,
        /// What is wrong with it; its `Display` is the reason in words.
        reason: Corruption,
    },
    /// An operating-system I/O error.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The embedded cold store failed.
    #[error("{context}: {source}")]
    Store {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: StoreError,
    },
    /// The record table of the state file is full: each project uses one record (a slot pair)
    /// per license class it holds, and each data-volume key ever added one (its account).
    #[error("the state file holds its maximum of {capacity} records (slot pairs and key accounts): no room for another project, license class or key")]
    Capacity {
        /// The table's capacity, fixed at creation.
        capacity: u32,
    },
    /// The process table of seat holders (`seats.tgs`) is full.
    #[error("the seat-holder table holds its maximum of {capacity} (process, pair) entries")]
    HoldersFull {
        /// The table's capacity.
        capacity: u32,
    },
    /// The lease-slot table (`slots.tgs`) has no free slot: every one is held by a live thread
    /// handle.
    #[error("the lease-slot table holds its maximum of {capacity} thread handles")]
    SlotsFull {
        /// The table's capacity.
        capacity: u32,
    },
    /// A purchase chose another payment mode than the first purchase (rule R22 in docs/rules.md:
    /// the mode is selected within the first purchase only).
    #[error("payment mode {requested} refused: the payment mode was fixed to {chosen} at the first purchase")]
    PaymentModeMismatch {
        /// The mode of the first purchase.
        chosen: &'static str,
        /// The mode asked for.
        requested: &'static str,
    },
    /// No valid, unassigned license of a fitting type is in the instance's company pool or the
    /// global pool.
    #[error("no license available for instance \"{instance}\": {detail}")]
    NoLicenseAvailable {
        /// The instance.
        instance: String,
        /// What was looked for, and where.
        detail: String,
    },
    /// The license type asked for does not fit the instance's operating system.
    #[error("a {license_type} license cannot license a {os} instance: macOS and Linux need a desktop or server license")]
    LicenseTypeUnfit {
        /// The type asked for.
        license_type: &'static str,
        /// The instance's OS.
        os: &'static str,
    },
    /// The instance already holds a valid license.
    #[error("instance \"{instance}\" already holds license \"{license}\"")]
    AlreadyAssigned {
        /// The instance.
        instance: String,
        /// Its license.
        license: String,
    },
    /// The instance holds no pool license.
    #[error("instance \"{instance}\" holds no pool license")]
    NotAssigned {
        /// The instance.
        instance: String,
    },
    /// No instance of that name exists (a project that is not an instance included).
    #[error("instance \"{name}\" does not exist")]
    InstanceNotFound {
        /// The name asked for.
        name: String,
    },
    /// No group of that name exists.
    #[error("group \"{name}\" does not exist")]
    GroupNotFound {
        /// The name asked for.
        name: String,
    },
    /// The state directory was rolled back, or its ratchets, time or license terms edited
    /// (see docs/tampering.md); the reason says whether an operator can accept it with
    /// `Engine::accept_rollback`.
    #[error("state refused: {reason}")]
    Tampered {
        /// What was found.
        reason: Tampering,
    },
    /// The state's last ratchet was made by another installation than the one it was opened
    /// with (its installation directory holds the MAC key of the ratchets): a program that
    /// forgot to set the installation directory, or a state moved from another machine or
    /// user. Refused like [`Error::Tampered`]; nothing changed. Open it with the installation
    /// directory that made it ([`Options::installation_dir`](crate::Options::installation_dir)
    /// or `TOLLGATE_INSTALLATION`). `Engine::accept_rollback`, with the installation it is
    /// opened with, accepts it as it accepts a rollback.
    #[error(
        "state directory {} was made by another installation than the installation directory {} it was opened with: open it with the installation directory that made it (Options::installation_dir, tg_engine_options_set_installation_dir or TOLLGATE_INSTALLATION)",
        .state.display(),
        .installation.display()
    )]
    InstallationMismatch {
        /// The state directory.
        state: PathBuf,
        /// The installation directory it was opened with.
        installation: PathBuf,
        /// The ratchet that does not verify with this installation's key.
        ratchet: u64,
    },
    /// A key was refused for want of a valid vendor signature: an unsigned offline key while the
    /// state trusts vendor keys, a license altered after signing, one signed by a key the state
    /// does not trust, or a malformed license file. Nothing changed.
    #[error("{}", signature_refusal(.key, .reason))]
    BadSignature {
        /// The key's id (read from the license before verification; empty when not even that
        /// could be read).
        key: String,
        /// Which it was: unsigned, malformed, signed by an untrusted key, or a signature that
        /// does not verify; its `Display` is the reason in words.
        reason: SignatureRefusal,
    },
    /// The automatic renewal of an online key failed (rule R21 in docs/rules.md): the activation
    /// service was unreachable, slow, refused or answered garbage, or the engine refused its
    /// license. Nothing changed; the message says that manual renewal is needed.
    #[error("{}", manual_renewal_message(.key, .reason))]
    RenewalFailed {
        /// The project.
        project: String,
        /// The key that was to be renewed.
        key: String,
        /// Why it failed, in words.
        reason: String,
    },
    /// An activation code could not be activated: the activation service was unreachable,
    /// slow, refused it (unknown, no activations left) or answered with something that is not
    /// a license for the code. Nothing changed.
    #[error("activation code \"{code}\" was not activated: {reason}")]
    ActivationFailed {
        /// The activation code.
        code: String,
        /// Why, in words: the service's refusal or the failure to reach it.
        reason: String,
    },
    /// The state's admin lock stayed held, by another process or another thread of this one,
    /// for all of [`Options::admin_lock_timeout`](crate::Options::admin_lock_timeout). Nothing
    /// changed.
    #[error("the admin lock {} is still held by another process or thread after {waited_ms} ms", .path.display())]
    AdminLockBusy {
        /// The lock file.
        path: PathBuf,
        /// How long the call waited, in milliseconds.
        waited_ms: u64,
    },
    /// This operation is not available for the key's license class yet.
    #[error("{operation} is not supported for {class} keys")]
    Unsupported {
        /// What was asked.
        operation: &'static str,
        /// The license class.
        class: String,
    },
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        Error::InvalidArgument {
            field,
            reason: reason.into(),
        }
    }

    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    pub(crate) fn store(context: impl Into<String>) -> impl FnOnce(rusqlite::Error) -> Self {
        let context = context.into();
        move |source| Error::Store {
            context,
            source: StoreError(source),
        }
    }
}

/// The message of [`Error::BadSignature`]: the key when its id is known.
fn signature_refusal(key: &str, reason: &SignatureRefusal) -> String {
    if key.is_empty() {
        format!("license refused: {reason}")
    } else {
        format!("key \"{key}\" refused: {reason}")
    }
}

/// The message for the operator when the automatic renewal of `key` failed for `reason`
/// (rule R21 in docs/rules.md): `automatic renewal of key "K-1" failed (REASON): start the
/// activation task manually to renew the license`. [`Error::RenewalFailed`] and the
/// `renewal_failed` event say this.
pub fn manual_renewal_message(key: &str, reason: &dyn std::fmt::Display) -> String {
    format!(
        "automatic renewal of key \"{key}\" failed ({reason}): start the activation task manually \
to renew the license"
    )
}

/// An error of the embedded store, opaque so that the store's own crate is not part of this API.
///
/// It wraps the store's error by value rather than boxed: when the hot path still returned
/// [`Error`], a box made it smaller, which changed the hot path's code and cost `consume(1)`
/// about 0.4 ns (`consume_loop`, 5 runs). The hot path returns [`Refusal`](crate::Refusal) now,
/// so this size no longer reaches it.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct StoreError(rusqlite::Error);

impl StoreError {
    /// The store's error for a write that changed `rows` rows where one was expected.
    pub(crate) fn changed_rows(rows: usize) -> StoreError {
        StoreError(rusqlite::Error::StatementChangedRows(rows))
    }
}
