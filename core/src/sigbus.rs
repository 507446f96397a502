//! Survives a mapped file (the state file, the seat-holder table) that another process
//! truncates while it is mapped.
//!
//! Touching a mapped page beyond the end of a shrunk file raises `SIGBUS`, which would kill the
//! host program. Every mapping is registered here; a process-wide handler that finds the
//! faulting address inside one maps a zero page over it, marks the mapping as damaged and lets
//! the instruction retry. A zeroed record reads as empty, so metering refuses, and the engine
//! then reports `CorruptState`.
//!
//! Every other `SIGBUS` (a fault elsewhere, or one sent with `kill`, `raise` or `sigqueue`)
//! goes where it would have gone without us, every time: to the handler that was installed
//! before ours, called with its own flags (`SA_SIGINFO` or not, `SA_NODEFER`, `SA_RESETHAND`)
//! and its own mask; or, when that was the default action, to the default action (the process
//! ends by `SIGBUS`); or, when it was `SIG_IGN`, nowhere for a sent signal, while a real fault,
//! which cannot be ignored, ends the process as the kernel would. The previous handler runs on
//! the stack our handler runs on: its `SA_ONSTACK` is not honoured.
//!
//! Ours is installed once, when the first engine opens, and never removed or reinstalled. A
//! host that installs its own `SIGBUS` handler after that replaces ours: a truncated file then
//! raises `SIGBUS` into the host's handler. If that handler chains to the action it replaced
//! (as `sigaction` lets it), the fault reaches us and the engine reports `CorruptState` as
//! before; if it does not, the host decides what a truncated file does (with the default
//! action, the process ends). A host that wants both installs its handler before opening an
//! engine, or chains.
//!
//! The handler only does what is safe in a signal handler: atomic loads and stores, `mmap`,
//! `sigaction`, `pthread_sigmask` and `raise`; the page size is read when the handler is
//! installed, because `sysconf` is not async-signal-safe.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Once, OnceLock};

/// How many mappings can be watched at once (two per open engine).
const SLOTS: usize = 256;

struct Region {
    start: AtomicUsize,
    len: AtomicUsize,
    damaged: AtomicBool,
}

static REGIONS: [Region; SLOTS] = [const {
    Region {
        start: AtomicUsize::new(0),
        len: AtomicUsize::new(0),
        damaged: AtomicBool::new(false),
    }
}; SLOTS];

/// The action `SIGBUS` had before ours; set before ours is installed, so the handler always
/// finds it.
static PREVIOUS: OnceLock<libc::sigaction> = OnceLock::new();

/// Set once a previous handler installed with `SA_RESETHAND` has run: from then on the previous
/// action is the default one, as the kernel would have made it.
static PREVIOUS_RESET: AtomicBool = AtomicBool::new(false);

/// The page size, read at install time.
static PAGE: AtomicUsize = AtomicUsize::new(0);

static INSTALL: Once = Once::new();

/// A registered mapping; unregisters on drop.
pub(crate) struct Watch {
    slot: Option<usize>,
}

impl Watch {
    /// Watches `[start, start + len)`. With every slot taken the mapping is simply not watched.
    pub(crate) fn register(start: *const u8, len: usize) -> Watch {
        install();
        for (i, region) in REGIONS.iter().enumerate() {
            // AcqRel: claims the slot exclusively; the Release store of `start` below publishes
            // the region to the handler.
            if region
                .len
                .compare_exchange(0, len, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
            {
                // Relaxed: the slot is ours alone until `start` is published.
                region.damaged.store(false, Ordering::Relaxed);
                // Release: the handler that Acquire-loads `start` sees `len`, `damaged` and the
                // page size stored by `install`, which returned before this.
                region.start.store(start as usize, Ordering::Release);
                return Watch { slot: Some(i) };
            }
        }
        Watch { slot: None }
    }

    /// Whether a fault inside this mapping was absorbed: the file shrank under it.
    #[inline]
    pub(crate) fn damaged(&self) -> bool {
        // Acquire: pairs with the handler's Release store.
        self.slot
            .is_some_and(|i| REGIONS[i].damaged.load(Ordering::Acquire))
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        if let Some(i) = self.slot {
            // Release (both): the slot is free only after its address is withdrawn.
            REGIONS[i].start.store(0, Ordering::Release);
            REGIONS[i].len.store(0, Ordering::Release);
        }
    }
}

fn install() {
    INSTALL.call_once(|| {
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        // Relaxed: the handler reads it only inside a registered region, whose Release store of
        // `start` in `register` happens after this `call_once` returns.
        PAGE.store(usize::try_from(page).unwrap_or(4096), Ordering::Relaxed);
        // SAFETY: all-zero is a valid `sigaction`; a null `act` only reads the current action.
        let previous = unsafe {
            let mut old: libc::sigaction = std::mem::zeroed();
            libc::sigaction(libc::SIGBUS, std::ptr::null(), &mut old);
            old
        };
        // Recorded before ours is installed: a SIGBUS arriving right after the install finds it
        // (the sigaction system call below orders this store before any delivery to us).
        let _ = PREVIOUS.set(previous);
        // SAFETY: all-zero is a valid `sigaction`; the handler has the SA_SIGINFO signature;
        // sigaction only reads `new`.
        unsafe {
            let mut new: libc::sigaction = std::mem::zeroed();
            new.sa_sigaction = on_sigbus as *const () as usize;
            new.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
            libc::sigemptyset(&mut new.sa_mask);
            libc::sigaction(libc::SIGBUS, &new, std::ptr::null_mut());
        }
    });
}

extern "C" fn on_sigbus(
    signal: libc::c_int,
    info: *mut libc::siginfo_t,
    context: *mut libc::c_void,
) {
    // SAFETY: the kernel passes a valid siginfo for an SA_SIGINFO handler.
    let code = unsafe { (*info).si_code };
    // A positive code is a fault the kernel raised; `kill`, `raise` and `sigqueue` send codes
    // of 0 or below, whose siginfo holds a sender instead of an address.
    let sent = code <= 0;
    if !sent && absorb(info) {
        return;
    }
    forward(signal, info, context, sent);
}

/// Maps a zero page over a fault inside a registered mapping and marks it damaged; `false`
/// when the fault is not inside one.
fn absorb(info: *mut libc::siginfo_t) -> bool {
    // SAFETY: the kernel passes a valid siginfo, and for a fault `si_addr` is its address.
    let addr = unsafe { (*info).si_addr() } as usize;
    for region in &REGIONS {
        // Acquire: pairs with the Release in `register`.
        let start = region.start.load(Ordering::Acquire);
        let len = region.len.load(Ordering::Acquire);
        if start == 0 || addr < start || addr >= start + len {
            continue;
        }
        // Relaxed: ordered by the Acquire load of `start` above (see `install`).
        let page = PAGE.load(Ordering::Relaxed);
        let at = addr & !(page - 1);
        // SAFETY: `at` is a page inside a mapping this process owns; replacing it with a
        // private zero page is what makes the retried access succeed. mmap is a plain system
        // call on Linux, safe to make from a signal handler.
        let mapped = unsafe {
            libc::mmap(
                at as *mut libc::c_void,
                page,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_FIXED | libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if mapped != libc::MAP_FAILED {
            // Release: pairs with the Acquire in `damaged`.
            region.damaged.store(true, Ordering::Release);
            return true;
        }
    }
    false
}

/// Hands a signal that is not ours to the action that was there before ours.
fn forward(
    signal: libc::c_int,
    info: *mut libc::siginfo_t,
    context: *mut libc::c_void,
    sent: bool,
) {
    // Acquire: pairs with the Release in `call_previous`.
    let reset = PREVIOUS_RESET.load(Ordering::Acquire);
    let previous = PREVIOUS.get().filter(|_| !reset);
    match previous.map(|p| (p, p.sa_sigaction)) {
        // Ignored, as the host asked; a fault cannot be ignored (retrying it faults forever).
        Some((_, libc::SIG_IGN)) if sent => {}
        Some((previous, handler)) if handler != libc::SIG_DFL && handler != libc::SIG_IGN => {
            call_previous(previous, signal, info, context, sent)
        }
        _ => default_action(signal, sent),
    }
}

/// Ends the process with `signal`'s default action: the disposition goes back to the default,
/// then a sent signal is raised again (it stays pending while this handler runs and is
/// delivered as it returns) and a fault is retried, faulting again.
fn default_action(signal: libc::c_int, sent: bool) {
    // SAFETY: all-zero is a valid `sigaction` and SIG_DFL is a valid action; sigaction and
    // raise are async-signal-safe.
    unsafe {
        let mut default: libc::sigaction = std::mem::zeroed();
        default.sa_sigaction = libc::SIG_DFL;
        libc::sigemptyset(&mut default.sa_mask);
        libc::sigaction(signal, &default, std::ptr::null_mut());
        if sent {
            libc::raise(signal);
        }
    }
}

/// Calls the previous handler as the kernel would have: with the signature its `SA_SIGINFO`
/// names, under the mask of the interrupted code plus its `sa_mask` plus the signal itself
/// unless `SA_NODEFER`, and once only with `SA_RESETHAND`.
///
/// A handler that declines a signal may reset it to the default action and return, counting on
/// the fault to happen again (Rust's standard library does this with faults outside a stack
/// guard page). A sent signal does not happen again, so it is raised once more, now meeting the
/// default action, instead of being swallowed.
fn call_previous(
    previous: &libc::sigaction,
    signal: libc::c_int,
    info: *mut libc::siginfo_t,
    context: *mut libc::c_void,
    sent: bool,
) {
    if previous.sa_flags & libc::SA_RESETHAND != 0 {
        // Release: a later SIGBUS on any thread sees the handler spent.
        PREVIOUS_RESET.store(true, Ordering::Release);
    }
    // SAFETY: for an SA_SIGINFO handler the kernel passes a valid ucontext_t as `context`; the
    // sigset functions only touch the sets passed to them; they and pthread_sigmask are
    // async-signal-safe.
    let ours = unsafe {
        let mut during = (*context.cast::<libc::ucontext_t>()).uc_sigmask;
        for s in 1..=64 {
            if libc::sigismember(&previous.sa_mask, s) == 1 {
                libc::sigaddset(&mut during, s);
            }
        }
        if previous.sa_flags & libc::SA_NODEFER == 0 {
            libc::sigaddset(&mut during, signal);
        }
        let mut ours: libc::sigset_t = std::mem::zeroed();
        libc::pthread_sigmask(libc::SIG_SETMASK, &during, &mut ours);
        ours
    };
    if previous.sa_flags & libc::SA_SIGINFO != 0 {
        // SAFETY: the previous handler was installed with this signature (SA_SIGINFO).
        let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
            unsafe { std::mem::transmute(previous.sa_sigaction) };
        f(signal, info, context);
    } else {
        // SAFETY: without SA_SIGINFO the previous handler takes only the signal number.
        let f: extern "C" fn(libc::c_int) = unsafe { std::mem::transmute(previous.sa_sigaction) };
        f(signal);
    }
    // SAFETY: restores the mask this handler ran with (the kernel restores the interrupted
    // code's mask when it returns); all-zero is a valid `sigaction`, which a null `act` only
    // fills in; sigaction and raise are async-signal-safe.
    unsafe {
        libc::pthread_sigmask(libc::SIG_SETMASK, &ours, std::ptr::null_mut());
        if sent {
            let mut now: libc::sigaction = std::mem::zeroed();
            libc::sigaction(signal, std::ptr::null(), &mut now);
            if now.sa_sigaction == libc::SIG_DFL {
                libc::raise(signal);
            }
        }
    }
}
