//! Thread handles: a project handle for one thread, with its own lease slot (issue 20). Within
//! its block `tg_thread_consume` is two loads and a store on the thread's own cache line.
//!
//! The block fast path runs outside the panic boundary: it is `ThreadProject::consume_from_block`,
//! atomics and arithmetic that cannot panic. Everything else (taking a block, the refusals)
//! runs inside it, as every other call does.

use tollgate_core::ThreadProject;

use crate::boundary::{drop_handle, new_handle};
use crate::project::tg_project;
use crate::status::tg_status;

/// A project handle for **one thread at a time**, made from a `tg_project` by
/// `tg_thread_project_open`: it holds a lease slot, a block of the project's bytes taken with
/// one atomic step, and grants from it with no atomic read-modify-write. Use one per thread
/// (never the same one from two threads at once, nor from a child after `fork`). Closing it
/// gives back what its block has left. Opaque.
#[allow(non_camel_case_types)]
pub struct tg_thread_project(ThreadProject);

/// Makes a thread handle on `project`'s pair and stores it in `*out` (NULL on failure).
/// `TG_CAPACITY` when every one of the state's 4,096 lease slots is held by an open thread
/// handle. Close it with `tg_thread_project_close` on the thread that used it last.
///
/// # Safety
/// `project` is NULL or an open project handle; `out` is NULL or valid for writing a pointer.
#[no_mangle]
pub unsafe extern "C" fn tg_thread_project_open(
    project: *const tg_project,
    out: *mut *mut tg_thread_project,
) -> tg_status {
    boundary!({
        let mut out = out!(out);
        out.write(std::ptr::null_mut());
        let project = borrow!(project);
        out.write(new_handle(tg_thread_project(project.0.for_thread()?)));
        Ok(())
    })
}

/// Closes a thread handle, giving back what its block has left. NULL is a no-op.
///
/// # Safety
/// `thread` is NULL or from `tg_thread_project_open`, not closed yet, and no thread is using it.
#[no_mangle]
pub unsafe extern "C" fn tg_thread_project_close(thread: *mut tg_thread_project) {
    boundary!({
        // SAFETY: the caller hands back a handle from `tg_thread_project_open`, used by no one.
        unsafe { drop_handle(thread) }
    })
}

/// As `tg_consume`, through the handle's block: grants and charges all `bytes` (`TG_OK`) or
/// refuses with nothing charged. Within the block: two loads and a store, no atomic
/// read-modify-write, no allocation or syscall; taking the next block is one atomic step.
///
/// # Safety
/// `thread` is NULL or an open thread handle, used by no other thread during the call.
#[no_mangle]
pub unsafe extern "C" fn tg_thread_consume(
    thread: *mut tg_thread_project,
    bytes: u64,
) -> tg_status {
    // SAFETY: the caller passes NULL or an open handle; `as_ref` rejects NULL.
    if let Some(handle) = unsafe { thread.as_ref() } {
        if handle.0.consume_from_block(bytes) {
            return tg_status::TG_OK;
        }
    }
    // SAFETY: as this function's own contract.
    unsafe { thread_consume_slow(thread, bytes) }
}

/// `tg_thread_consume` past the block: out of line, so the block path keeps no stack frame.
///
/// # Safety
/// As `tg_thread_consume`.
#[cold]
#[inline(never)]
unsafe fn thread_consume_slow(thread: *mut tg_thread_project, bytes: u64) -> tg_status {
    boundary!({
        let thread = borrow!(thread);
        thread.0.consume(bytes)?;
        Ok(())
    })
}

/// As `tg_consume_partial`, through the handle's block: grants as much of `bytes` as remains,
/// stores it in `*granted` and returns `TG_OK`; refuses (with `*granted` = 0) only when nothing
/// remains.
///
/// # Safety
/// `thread` is NULL or an open thread handle, used by no other thread during the call;
/// `granted` is NULL or valid for writing.
#[no_mangle]
pub unsafe extern "C" fn tg_thread_consume_partial(
    thread: *mut tg_thread_project,
    bytes: u64,
    granted: *mut u64,
) -> tg_status {
    boundary!({
        let mut granted = out!(granted);
        granted.write(0);
        let thread = borrow!(thread);
        granted.write(thread.0.consume_partial(bytes)?);
        Ok(())
    })
}

/// Where a thread handle's block path reads and writes, for `tg_thread_consume_inline`
/// (`tollgate_inline.h`), which does in the caller what `tg_thread_consume` does within the
/// block. The pointers stay valid until the handle is closed.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct tg_thread_fast {
    /// What the block has left (a 64-bit atomic written only by the handle's thread).
    pub room: *mut u64,
    /// The Unix second from which the block may not be granted from (a 32-bit atomic).
    pub valid_until: *const u32,
    /// The engine's coarse clock, in Unix seconds (a 32-bit atomic).
    pub now: *const u32,
}

/// Fills `*out` with where `thread`'s block path reads and writes (see `tollgate_inline.h`).
///
/// # Safety
/// `thread` is NULL or an open thread handle; `out` is NULL or valid for writing.
#[no_mangle]
pub unsafe extern "C" fn tg_thread_project_fast(
    thread: *const tg_thread_project,
    out: *mut tg_thread_fast,
) -> tg_status {
    boundary!({
        let mut out = out!(out);
        let thread = borrow!(thread);
        let (room, valid_until, now) = thread.0.block_words();
        out.write(tg_thread_fast {
            room: room.as_ptr(),
            valid_until: valid_until.as_ptr(),
            now: now.as_ptr(),
        });
        Ok(())
    })
}

/// Stores in `*room` what the handle's block has left: bytes the project has granted to this
/// handle and the handle has not granted yet (they come back when it closes).
///
/// # Safety
/// `thread` is NULL or an open thread handle; `room` is NULL or valid for writing.
#[no_mangle]
pub unsafe extern "C" fn tg_thread_project_room(
    thread: *const tg_thread_project,
    room: *mut u64,
) -> tg_status {
    boundary!({
        let mut room = out!(room);
        room.write(0);
        let thread = borrow!(thread);
        room.write(thread.0.room());
        Ok(())
    })
}
