//! Survives a state file that another process truncates while it is mapped.
//!
//! Touching a mapped page beyond the end of a shrunk file raises `SIGBUS`, which would kill the
//! host program. Every state-file mapping is registered here; a process-wide handler that finds
//! the faulting address inside one maps a zero page over it, marks the mapping as damaged and
//! lets the instruction retry. A zeroed record reads as an empty pair, so metering refuses, and
//! the engine then reports `CorruptState`. Faults elsewhere go to the handler that was installed
//! before, or to the default action.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::OnceLock;

/// How many mappings can be watched at once (one per open engine).
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

/// The handler that was installed before ours.
static PREVIOUS: OnceLock<libc::sigaction> = OnceLock::new();

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
                // Release: the handler that Acquire-loads `start` sees `len` and `damaged`.
                region.start.store(start as usize, Ordering::Release);
                return Watch { slot: Some(i) };
            }
        }
        Watch { slot: None }
    }

    /// Whether a fault inside this mapping was absorbed: the file shrank under it.
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
    PREVIOUS.get_or_init(|| {
        // SAFETY: `sigaction` structs are plain data for which all-zero is a valid value; the
        // handler has the SA_SIGINFO signature; sigaction only reads `new` and writes `old`.
        unsafe {
            let mut new: libc::sigaction = std::mem::zeroed();
            new.sa_sigaction = on_sigbus as *const () as usize;
            new.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
            libc::sigemptyset(&mut new.sa_mask);
            let mut old: libc::sigaction = std::mem::zeroed();
            libc::sigaction(libc::SIGBUS, &new, &mut old);
            old
        }
    });
}

extern "C" fn on_sigbus(
    signal: libc::c_int,
    info: *mut libc::siginfo_t,
    context: *mut libc::c_void,
) {
    // SAFETY: the kernel passes a valid siginfo for an SA_SIGINFO handler.
    let addr = unsafe { (*info).si_addr() } as usize;
    for region in &REGIONS {
        // Acquire: pairs with the Release in `register`.
        let start = region.start.load(Ordering::Acquire);
        let len = region.len.load(Ordering::Acquire);
        if start != 0 && addr >= start && addr < start + len {
            // SAFETY: sysconf is async-signal-safe.
            let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize;
            let at = addr & !(page - 1);
            // SAFETY: `at` is a page inside a mapping this process owns; replacing it with a
            // private zero page is what makes the retried access succeed. mmap is a plain
            // system call on Linux, safe to make from a signal handler.
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
                return;
            }
        }
    }
    forward(signal, info, context);
}

/// Hands a fault that is not ours to the previous handler, or to the default action.
fn forward(signal: libc::c_int, info: *mut libc::siginfo_t, context: *mut libc::c_void) {
    let Some(previous) = PREVIOUS.get() else {
        return;
    };
    let handler = previous.sa_sigaction;
    if handler == libc::SIG_DFL || handler == libc::SIG_IGN {
        // SAFETY: restoring the default action and returning makes the faulting instruction
        // fault again, now with the default action (terminate), as if we had never been here.
        unsafe { libc::signal(signal, libc::SIG_DFL) };
    } else if previous.sa_flags & libc::SA_SIGINFO != 0 {
        // SAFETY: the previous handler was installed with this signature (SA_SIGINFO).
        let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
            unsafe { std::mem::transmute(handler) };
        f(signal, info, context);
    } else {
        // SAFETY: without SA_SIGINFO the previous handler takes only the signal number.
        let f: extern "C" fn(libc::c_int) = unsafe { std::mem::transmute(handler) };
        f(signal);
    }
}
