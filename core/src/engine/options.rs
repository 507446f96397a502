//! How an engine opens a state directory: [`Options`] and their defaults.

use super::*;

/// The default [`Options::ratchet_interval`].
pub const DEFAULT_RATCHET_INTERVAL: Duration = Duration::from_secs(60);

/// The default [`Options::clock_tolerance`]: generous enough for any time-sync correction.
pub const DEFAULT_CLOCK_TOLERANCE: Duration = Duration::from_secs(300);

/// How to open a state directory.
#[derive(Debug, Clone)]
pub struct Options {
    /// Number of slot-pair records when the state is created (each project uses one per license
    /// class it holds). Ignored when opening an existing state.
    pub capacity: u32,
    /// If set, a background thread calls [`Engine::flush`] at this interval.
    pub flush_interval: Option<Duration>,
    /// The clock expiry is judged by.
    pub clock: Clock,
    /// How far the clock may be set back before it counts as a rollback: a `clock_rolled_back`
    /// event, at open or while open. Expiry is always judged by the latest time seen, which the
    /// state keeps across restarts.
    pub clock_tolerance: Duration,
    /// Capacity of the hot-path event queue (rounded up to a power of two); an event that finds
    /// no free slot is dropped and counted in [`Engine::dropped_events`], the hot path never
    /// waits for the dispatcher.
    pub event_queue: usize,
    /// Where this installation keeps the key of its ratchet MACs and the anchors that detect
    /// a state directory restored from a copy (see `engine::ratchet`); `None` is
    /// `$TOLLGATE_INSTALLATION`, else `$XDG_STATE_HOME/tollgate`, else `~/.local/state/tollgate`.
    pub installation_dir: Option<PathBuf>,
    /// The least time between two usage ratchets made by [`Engine::flush`] (every open makes
    /// one). A ratchet costs a catalog commit and an anchor write, milliseconds; usage since
    /// the last ratchet is not anchored against a restored copy.
    pub ratchet_interval: Duration,
    /// Vendor public keys to trust, recorded in the state at open (see [`Engine::trust`]): with
    /// any trusted key, every key added, offline or online, must be signed by one. Recorded
    /// keys are kept, so opening later without them trusts them still. Empty is development
    /// mode, unless the state already trusts keys.
    pub trusted_keys: Vec<VendorPublic>,
    /// Online renewal of keys with an activation code, by the vendor's activation service (see
    /// [`Renewal`]); `None`, the default, renews nothing. [`Engine::enable_renewal`] turns it
    /// on after open.
    pub renewal: Option<Renewal>,
    /// Whether the accounts of one group share the state: the directories the engine creates
    /// (the state directory, the installation directory) are then `0770` and their files
    /// `0660`, and an installation directory of one of this user's groups that the group may
    /// write is accepted. `false`, the default, is `0700` and `0600`: the state is this user's
    /// alone. The modes are set whatever the umask; existing files keep theirs.
    pub shared_group: bool,
    /// How long opening the state and each admin change (creating a project, adding a key, …)
    /// wait for the admin lock while another process, or another thread of this one, holds it
    /// for its own change; then they fail with [`Error::AdminLockBusy`] and change nothing.
    /// `None`, the default, waits as long as it takes. Metering never takes the lock.
    pub admin_lock_timeout: Option<Duration>,
    /// Fleet mode: the fleet store and this host's name (see `engine::fleet`). The state's
    /// data-volume keys are then metered from blocks leased from the store by one background
    /// thread per host; a spent stock the store cannot refill is refused
    /// [`Error::Unavailable`]. `None`, the default, is the embedded single-host mode. A state
    /// directory is one or the other for its whole life: a fleet host starts from an empty one.
    pub fleet: Option<FleetConfig>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            capacity: DEFAULT_CAPACITY,
            flush_interval: None,
            clock: Clock::system(),
            clock_tolerance: DEFAULT_CLOCK_TOLERANCE,
            event_queue: 16_384,
            installation_dir: None,
            ratchet_interval: DEFAULT_RATCHET_INTERVAL,
            trusted_keys: Vec::new(),
            renewal: None,
            shared_group: false,
            admin_lock_timeout: None,
            fleet: None,
        }
    }
}

/// Where a fleet engine's store is and which host it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetConfig {
    /// The store: a `postgresql://` URL or `key=value` connection parameters (no TLS: a Unix
    /// socket or loopback).
    pub store: String,
    /// This host's name in the fleet: its identity across restarts (1 to 64 bytes).
    pub host: String,
    /// How long the store keeps a lease after each renewal (renewed every third of it); the
    /// host stops drawing from one a twelfth of it before. 60 s by default.
    pub lease_ttl: Duration,
}

impl FleetConfig {
    /// The store `store` and host `host`, with 60 s leases.
    pub fn new(store: impl Into<String>, host: impl Into<String>) -> FleetConfig {
        FleetConfig {
            store: store.into(),
            host: host.into(),
            lease_ttl: Duration::from_secs(60),
        }
    }
}
