//! Opening, flushing and closing a state directory.

use std::ffi::c_char;
use std::path::PathBuf;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tollgate_core::{Engine, FleetConfig, Options, VendorPublic, DEFAULT_CAPACITY};

use crate::boundary::{drop_handle, invalid_value, new_handle, refused};
use crate::events::Listener;
use crate::status::tg_status;

/// An open state directory. Opaque: made by `tg_engine_open`, released by `tg_engine_close`.
/// One engine may be used from any number of threads at once.
#[allow(non_camel_case_types)]
pub struct tg_engine {
    /// The engine itself.
    pub(crate) core: Engine,
    /// The thread calling the `tg_engine_on_event` callback, if one is set.
    pub(crate) listener: Listener,
}

impl tg_engine {
    /// Hands `core` to C as an engine handle.
    pub(crate) fn handle(core: Engine) -> *mut tg_engine {
        new_handle(tg_engine {
            core,
            listener: Listener::default(),
        })
    }
}

/// How to open a state directory (`tg_engine_open_with`). Superseded by `tg_engine_options`,
/// which can grow without changing a layout and holds every option; kept as it is.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct tg_open_options {
    /// Number of slot-pair records when the state is created (a project uses one per license
    /// class it holds); 0 means the default (65536). Ignored when the state already exists.
    pub capacity: u32,
    /// If not 0, a background thread makes the state durable against an operating-system crash
    /// (as `tg_engine_flush` does) every this many milliseconds; 0 means no background flush.
    pub flush_interval_ms: u64,
}

impl From<tg_open_options> for Options {
    fn from(options: tg_open_options) -> Options {
        Options {
            capacity: match options.capacity {
                0 => DEFAULT_CAPACITY,
                n => n,
            },
            flush_interval: (options.flush_interval_ms > 0)
                .then(|| Duration::from_millis(options.flush_interval_ms)),
            ..Options::default()
        }
    }
}

/// Opens (creating if needed) the state directory `state_dir` with default options and stores
/// the engine in `*out` (NULL on failure). A damaged or foreign state is refused with
/// `TG_CORRUPT_STATE` and left untouched.
///
/// Blocks while another process makes an admin change to the state (it waits for the admin
/// lock); `tg_engine_open_with_options` can bound the wait.
///
/// # Safety
/// `state_dir` is NULL or a NUL-terminated string; `out` is NULL or valid for writing a pointer.
#[no_mangle]
pub unsafe extern "C" fn tg_engine_open(
    state_dir: *const c_char,
    out: *mut *mut tg_engine,
) -> tg_status {
    boundary!({
        let mut out = out!(out);
        out.write(std::ptr::null_mut());
        let state_dir = text!(state_dir);
        out.write(tg_engine::handle(Engine::open(state_dir)?));
        Ok(())
    })
}

/// Opens (creating if needed) the state directory `state_dir` with `options` and stores the
/// engine in `*out` (NULL on failure).
///
/// Blocks while another process makes an admin change to the state (it waits for the admin
/// lock); `tg_engine_open_with_options` can bound the wait.
///
/// # Safety
/// `state_dir` is NULL or a NUL-terminated string; `options` is NULL or points to a
/// `tg_open_options`; `out` is NULL or valid for writing a pointer.
#[no_mangle]
pub unsafe extern "C" fn tg_engine_open_with(
    state_dir: *const c_char,
    options: *const tg_open_options,
    out: *mut *mut tg_engine,
) -> tg_status {
    boundary!({
        let mut out = out!(out);
        out.write(std::ptr::null_mut());
        let state_dir = text!(state_dir);
        let options = *borrow!(options);
        out.write(tg_engine::handle(Engine::open_with(
            state_dir,
            options.into(),
        )?));
        Ok(())
    })
}

/// Closes an engine. Project handles opened from it stay valid until they are closed
/// themselves: each keeps the state open. Events the hot path queued are written to the audit
/// log before the last of them goes. The event callback (`tg_engine_on_event`) is not called
/// after this returns; if a call to it is in progress on another thread, this waits for it to
/// return. Called from inside the callback, it returns at once and the callback is not called
/// again. NULL is a no-op.
///
/// In a child of `fork()`, closing an engine the parent opened frees nothing and touches
/// nothing the parent uses: no thread is joined, no lock released, nothing written (see "Fork"
/// in the header's preamble).
///
/// # Safety
/// `engine` is NULL or from `tg_engine_open`, not closed yet, and no other thread is using it.
#[no_mangle]
pub unsafe extern "C" fn tg_engine_close(engine: *mut tg_engine) {
    boundary!({
        // SAFETY: the caller hands back a handle from `tg_engine_open`, used by no one else.
        unsafe { drop_handle(engine) }
    })
}

/// Makes the state durable against an operating-system crash: writes the hot file's dirty pages
/// (`msync`) and checkpoints the catalog. Without it, every acknowledged grant still survives
/// the death of the process.
///
/// Blocks while another process, or another thread, makes an admin change to the state (it
/// waits for the admin lock), at most the engine's admin-lock timeout (`TG_BUSY`).
///
/// # Safety
/// `engine` is NULL or an open engine.
#[no_mangle]
pub unsafe extern "C" fn tg_engine_flush(engine: *mut tg_engine) -> tg_status {
    boundary!({
        let engine = held!(engine);
        engine.core.flush()?;
        Ok(())
    })
}

/// How to open a state directory, built up by setters: made by `tg_engine_options_new`, used by
/// `tg_engine_open_with_options` (as often as wanted), freed by `tg_engine_options_free`.
/// Opaque, so that options can be added without changing any layout. Unlike `tg_open_options`,
/// it also names the installation directory, refuses to create a missing state, bounds the wait
/// for the admin lock, and carries the vendor keys to trust. Setters may be called from one
/// thread at a time per object.
#[allow(non_camel_case_types)]
pub struct tg_engine_options(Mutex<Settings>);

/// What a `tg_engine_options` holds.
#[derive(Default)]
struct Settings {
    core: Options,
    open_existing: bool,
    /// The lease TTL of `tg_engine_options_set_fleet_lease_ttl_ms`, kept apart so that it
    /// holds whichever of the two fleet setters is called first.
    fleet_lease_ttl: Option<Duration>,
}

impl tg_engine_options {
    /// Changes the settings; a lock poisoned by a panic in another setter still holds whole
    /// values.
    fn update(&self, change: impl FnOnce(&mut Settings)) {
        change(&mut self.0.lock().unwrap_or_else(PoisonError::into_inner));
    }
}

/// Makes options with every default: the state is created if missing, 65536 records, no
/// background flush, the installation directory of `$TOLLGATE_INSTALLATION` (else
/// `$XDG_STATE_HOME/tollgate`, else `~/.local/state/tollgate`), no limit on the wait for the
/// admin lock, no vendor key trusted beyond those the state already trusts, embedded (no fleet
/// store: `tg_engine_options_set_fleet`). Stores them in `*out` (NULL on failure); free them
/// with `tg_engine_options_free`.
///
/// # Safety
/// `out` is NULL or valid for writing a pointer.
#[no_mangle]
pub unsafe extern "C" fn tg_engine_options_new(out: *mut *mut tg_engine_options) -> tg_status {
    boundary!({
        let mut out = out!(out);
        out.write(new_handle(tg_engine_options(Mutex::default())));
        Ok(())
    })
}

/// Frees options. An engine opened with them does not need them any more. NULL is a no-op.
///
/// # Safety
/// `options` is NULL or from `tg_engine_options_new`, not freed yet, and no other thread is
/// using it.
#[no_mangle]
pub unsafe extern "C" fn tg_engine_options_free(options: *mut tg_engine_options) {
    boundary!({
        // SAFETY: the caller hands back options from `tg_engine_options_new`, used by no one
        // else.
        unsafe { drop_handle(options) }
    })
}

/// Sets the number of slot-pair records of a state created by the open (one per project and
/// license class it holds), at most 16777216; 0 means the default (65536). Ignored when the
/// state already exists.
///
/// # Safety
/// `options` is NULL or live options.
#[no_mangle]
pub unsafe extern "C" fn tg_engine_options_set_capacity(
    options: *mut tg_engine_options,
    capacity: u32,
) -> tg_status {
    boundary!({
        let options = borrow!(options);
        options.update(|s| {
            s.core.capacity = match capacity {
                0 => DEFAULT_CAPACITY,
                n => n,
            }
        });
        Ok(())
    })
}

/// Sets the interval of a background thread that makes the state durable against an
/// operating-system crash (as `tg_engine_flush` does); 0, the default, starts no such thread.
///
/// # Safety
/// `options` is NULL or live options.
#[no_mangle]
pub unsafe extern "C" fn tg_engine_options_set_flush_interval_ms(
    options: *mut tg_engine_options,
    interval_ms: u64,
) -> tg_status {
    boundary!({
        let options = borrow!(options);
        options.update(|s| {
            s.core.flush_interval = (interval_ms > 0).then(|| Duration::from_millis(interval_ms))
        });
        Ok(())
    })
}

/// Sets the installation directory: where this installation keeps the key of its usage
/// ratchets and the anchors that detect a state restored from a copy. Every program opening
/// the same state must name the same one (a state opened with another is refused as
/// `TG_TAMPERED`); the default comes from the environment (see `tg_engine_options_new`). NULL
/// goes back to the default. The directory is created, private to this user, if missing.
///
/// # Safety
/// `options` is NULL or live options; `dir` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn tg_engine_options_set_installation_dir(
    options: *mut tg_engine_options,
    dir: *const c_char,
) -> tg_status {
    boundary!({
        let options = borrow!(options);
        let dir = optional_text!(dir).map(PathBuf::from);
        options.update(|s| s.core.installation_dir = dir);
        Ok(())
    })
}

/// With `open_existing`, the open refuses a directory that holds no Tollgate state with
/// `TG_NOT_FOUND` and creates nothing, so a misspelt path is an error rather than a new, empty
/// state. Without it (the default), a missing state is created with its parent directories.
///
/// # Safety
/// `options` is NULL or live options.
#[no_mangle]
pub unsafe extern "C" fn tg_engine_options_set_open_existing(
    options: *mut tg_engine_options,
    open_existing: bool,
) -> tg_status {
    boundary!({
        let options = borrow!(options);
        options.update(|s| s.open_existing = open_existing);
        Ok(())
    })
}

/// Bounds the wait for the state's admin lock, which a process holds while it makes an admin
/// change (creating a project, adding, replacing or removing a key, activating, buying,
/// assigning, trusting) and while it opens the state. The open and each admin call of the
/// engine then wait at most `timeout_ms` milliseconds (0: not at all) and fail with `TG_BUSY`,
/// having changed nothing. The default waits as long as it takes. Metering and the usage calls
/// never take the lock.
///
/// # Safety
/// `options` is NULL or live options.
#[no_mangle]
pub unsafe extern "C" fn tg_engine_options_set_admin_lock_timeout_ms(
    options: *mut tg_engine_options,
    timeout_ms: u64,
) -> tg_status {
    boundary!({
        let options = borrow!(options);
        options.update(|s| s.core.admin_lock_timeout = Some(Duration::from_millis(timeout_ms)));
        Ok(())
    })
}

/// Opens the state in fleet mode: many hosts meter one license through the fleet store, a
/// PostgreSQL database, each host with its own state directory. `store` is the store's
/// connection parameters, a `postgresql://` URL or `key=value` pairs (no TLS: a Unix socket or
/// loopback), for example `host=/run/postgresql user=tollgate dbname=fleet`; `host` is this
/// host's name in the fleet, 1 to 64 bytes, its identity across restarts.
///
/// The state's data-volume keys are then metered from blocks leased from the store by one
/// background thread per host (one process per state directory runs it; the others draw from
/// the same mapped stock), which connects, creates the schema and the keys' accounts in the
/// store as needed, renews the leases every third of their TTL and settles them at the close.
/// The hot path never waits for the store: a consume that finds this host's stock spent while
/// the store is out of reach (or slow to answer) is refused `TG_UNAVAILABLE`, never granted
/// unmetered; retry it a moment later. `TG_EXHAUSTED` means the whole fleet used the key up.
///
/// A state directory is embedded or a fleet host's for its whole life: a fleet host starts
/// from an empty state directory, and the open refuses with `TG_INVALID_ARGUMENT` an embedded
/// state opened with these options, a fleet state opened without them, and a fleet state
/// opened with another host's name. `TG_INVALID_ARGUMENT` here if either argument is NULL or
/// not UTF-8. Leases last 60 seconds unless `tg_engine_options_set_fleet_lease_ttl_ms` says
/// otherwise. See docs/fleet-store.md.
///
/// # Safety
/// `options` is NULL or live options; `store` and `host` are NULL or NUL-terminated strings.
#[no_mangle]
pub unsafe extern "C" fn tg_engine_options_set_fleet(
    options: *mut tg_engine_options,
    store: *const c_char,
    host: *const c_char,
) -> tg_status {
    boundary!({
        let options = borrow!(options);
        let store = text!(store);
        let host = text!(host);
        let mut config = FleetConfig::new(store, host);
        options.update(|s| {
            if let Some(ttl) = s.fleet_lease_ttl {
                config.lease_ttl = ttl;
            }
            s.core.fleet = Some(config);
        });
        Ok(())
    })
}

/// Sets how long the fleet store keeps each of this host's leases after its latest renewal:
/// the host renews them every third of it and stops granting from one a twelfth of it before
/// it expires. The leases of a host that dies expire this long after their latest renewal; the
/// reclaim of another host (or `tollgate lease reclaim`) then frees what it never drew. 60000
/// (60 seconds) by default. Used only with `tg_engine_options_set_fleet`, before or after it.
/// `TG_INVALID_ARGUMENT` for 0.
///
/// # Safety
/// `options` is NULL or live options.
#[no_mangle]
pub unsafe extern "C" fn tg_engine_options_set_fleet_lease_ttl_ms(
    options: *mut tg_engine_options,
    ttl_ms: u64,
) -> tg_status {
    boundary!({
        let options = borrow!(options);
        if ttl_ms == 0 {
            return Err(invalid_value("ttl_ms", "a lease lasts 1 ms or more, not 0"));
        }
        let ttl = Duration::from_millis(ttl_ms);
        options.update(|s| {
            s.fleet_lease_ttl = Some(ttl);
            if let Some(fleet) = s.core.fleet.as_mut() {
                fleet.lease_ttl = ttl;
            }
        });
        Ok(())
    })
}

/// Adds a vendor public key (the text of a `vendor.pub` file) for the open to record as trusted
/// in the state, as `tg_engine_open_trusted` does: with any trusted key, every key added must be
/// a license file signed by one. `TG_INVALID_ARGUMENT` if the text is no vendor public key.
///
/// # Safety
/// `options` is NULL or live options; `public_key` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn tg_engine_options_trust(
    options: *mut tg_engine_options,
    public_key: *const c_char,
) -> tg_status {
    boundary!({
        let options = borrow!(options);
        let key =
            VendorPublic::parse(text!(public_key)).map_err(|e| invalid_value("public_key", e))?;
        options.update(|s| s.core.trusted_keys.push(key));
        Ok(())
    })
}

/// Opens the state directory `state_dir` with `options` (NULL: every default) and stores the
/// engine in `*out` (NULL on failure). Creates a missing state unless the options say
/// `open_existing`; waits for another process's admin change to finish, at most the options'
/// admin-lock timeout (`TG_BUSY`). A damaged or foreign state is refused with
/// `TG_CORRUPT_STATE` and left untouched.
///
/// # Safety
/// `state_dir` is NULL or a NUL-terminated string; `options` is NULL or live options; `out` is
/// NULL or valid for writing a pointer.
#[no_mangle]
pub unsafe extern "C" fn tg_engine_open_with_options(
    state_dir: *const c_char,
    options: *const tg_engine_options,
    out: *mut *mut tg_engine,
) -> tg_status {
    boundary!({
        let mut out = out!(out);
        out.write(std::ptr::null_mut());
        let state_dir = text!(state_dir);
        // SAFETY: the caller guarantees `options` is NULL or live options.
        let (core, open_existing) = match unsafe { options.as_ref() } {
            Some(options) => {
                let settings = options.0.lock().unwrap_or_else(PoisonError::into_inner);
                (settings.core.clone(), settings.open_existing)
            }
            None => (Options::default(), false),
        };
        // Checked before the open, which would create the state: a state removed between the
        // two is created again, as without the option.
        if open_existing && !Engine::exists(state_dir) {
            return Err(refused(
                tg_status::TG_NOT_FOUND,
                format_args!(
                    "state directory \"{state_dir}\" holds no Tollgate state, and the options open an existing one only"
                ),
            ));
        }
        out.write(tg_engine::handle(Engine::open_with(state_dir, core)?));
        Ok(())
    })
}
