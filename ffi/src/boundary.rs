//! The C boundary: the macro every exported body runs in, the thread-local last error, and the
//! helpers that turn C arguments into Rust values and Rust values into owned C pointers.
//!
//! # The last error and the hot path
//! `tg_consume` and friends must not allocate, lock or make a syscall, even when they refuse.
//! So the last error is kept in two thread-locals:
//! - [`LAST`], a `Cell` of a `Copy` value with no destructor: what failed, kept as plain data
//!   (a hot-path refusal, or which argument was NULL). Writing it is a plain store into this
//!   thread's TLS block; it registers no destructor and allocates nothing.
//! - [`MESSAGE`], a byte buffer, written only off the hot path: by admin calls when they fail
//!   (they allocate anyway) and by `tg_last_error_message` when it renders a refusal to text.
//!
//! A successful call touches neither.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::ffi::{c_char, CStr, CString};
use std::fmt::{self, Write as _};
use std::marker::PhantomData;
use std::ptr::NonNull;

use serde::Serialize;
use tollgate_core::{Error, Refusal};

use crate::status::tg_status;

/// Runs an exported function's body inside `catch_unwind`, so that no panic crosses into C.
///
/// The body is a block yielding an [`Exit`]: `Result<(), tg_status>` for functions returning a
/// status (`Ok(())` is `TG_OK`; `Err` carries a status whose message is already recorded, so
/// `?` works on core results and on the argument macros), or the C return value itself for
/// functions that cannot fail. A panic becomes the return type's [`PanicValue`]: `TG_PANIC` with
/// a message naming the function, or a harmless default.
///
/// When nothing panics, `catch_unwind` costs nothing: the body is inlined and the unwinding
/// landing pad is never entered.
macro_rules! boundary {
    ($body:block) => {{
        fn here() {}
        // AssertUnwindSafe: after a panic the body's captures are dropped, not reused; what the
        // caller can still reach (engine, project handles) is atomics in the mapped state and a
        // non-poisoning mutex, which a panic leaves consistent.
        match ::std::panic::catch_unwind(::std::panic::AssertUnwindSafe(|| $body)) {
            Ok(exit) => $crate::boundary::Exit::into_c(exit),
            Err(payload) => $crate::boundary::PanicValue::after_panic(
                $crate::boundary::function_name(here),
                payload,
            ),
        }
    }};
}

/// `&T` from a handle argument (`*const T` or `*mut T`), or return `TG_INVALID_ARGUMENT` naming
/// it. Only shared references are made: the same handle may be used from many threads at once.
macro_rules! borrow {
    ($ptr:ident) => {
        // SAFETY: every exported function documents that a handle or struct argument is NULL or
        // a valid pointer (for handles: from the matching `_open`, not yet closed); the helper
        // rejects NULL.
        unsafe { $crate::boundary::borrow($ptr, stringify!($ptr)) }?
    };
}

/// The engine of a `tg_engine *` argument for the length of one call (a clone: one reference
/// count), or return `TG_INVALID_ARGUMENT` for NULL. An event the call raises may reach a
/// callback on the listener thread that closes this very handle while the call still runs
/// (`tg_engine_close` allows it from the callback); the call then works on its own reference,
/// never on the freed handle.
macro_rules! held {
    ($ptr:ident) => {
        $crate::boundary::Held {
            core: borrow!($ptr).core.clone(),
        }
    };
}

/// What [`held!`] gives: the engine, under the field name of `tg_engine`.
pub(crate) struct Held {
    /// The engine.
    pub(crate) core: tollgate_core::Engine,
}

/// `&str` from a `const char *` argument, or return `TG_INVALID_ARGUMENT` naming it.
macro_rules! text {
    ($ptr:ident) => {
        // SAFETY: every exported function documents that a string argument is NULL or a
        // NUL-terminated string that stays unchanged for the call; the helper rejects NULL.
        unsafe { $crate::boundary::text($ptr, stringify!($ptr)) }?
    };
}

/// `Option<&str>` from a `const char *` argument where NULL means "none", or return
/// `TG_INVALID_ARGUMENT` naming it when it is not UTF-8.
macro_rules! optional_text {
    ($ptr:ident) => {
        // SAFETY: every exported function documents that this string argument is NULL or a
        // NUL-terminated string that stays unchanged for the call.
        unsafe { $crate::boundary::optional_text($ptr, stringify!($ptr)) }?
    };
}

/// An [`Out`] for an out-pointer argument, or return `TG_INVALID_ARGUMENT` naming it.
macro_rules! out {
    ($ptr:ident) => {
        // SAFETY: every exported function documents that an out-pointer is NULL or valid for
        // writing one value of its type; the helper rejects NULL.
        unsafe { $crate::boundary::out($ptr, stringify!($ptr)) }?
    };
}

/// What an exported body yields, and how it becomes the C return value.
pub(crate) trait Exit {
    /// The C return type.
    type C: PanicValue;
    /// Converts to the C return value.
    fn into_c(self) -> Self::C;
}

impl Exit for Result<(), tg_status> {
    type C = tg_status;
    #[inline(always)]
    fn into_c(self) -> tg_status {
        match self {
            Ok(()) => tg_status::TG_OK,
            Err(status) => status,
        }
    }
}

impl Exit for () {
    type C = ();
    #[inline(always)]
    fn into_c(self) {}
}

impl Exit for u32 {
    type C = u32;
    #[inline(always)]
    fn into_c(self) -> u32 {
        self
    }
}

impl Exit for *const c_char {
    type C = *const c_char;
    #[inline(always)]
    fn into_c(self) -> *const c_char {
        self
    }
}

/// What a function returns when its body panicked. Every implementation records the panic as
/// the thread's last error first.
pub(crate) trait PanicValue {
    /// Records the panic and returns the value C gets instead.
    fn after_panic(function: &str, payload: Box<dyn Any + Send>) -> Self;
}

impl PanicValue for tg_status {
    #[cold]
    fn after_panic(function: &str, payload: Box<dyn Any + Send>) -> tg_status {
        record_panic(function, payload.as_ref());
        tg_status::TG_PANIC
    }
}

impl PanicValue for () {
    #[cold]
    fn after_panic(function: &str, payload: Box<dyn Any + Send>) {
        record_panic(function, payload.as_ref());
    }
}

impl PanicValue for u32 {
    #[cold]
    fn after_panic(function: &str, payload: Box<dyn Any + Send>) -> u32 {
        record_panic(function, payload.as_ref());
        0
    }
}

impl PanicValue for *const c_char {
    #[cold]
    fn after_panic(function: &str, payload: Box<dyn Any + Send>) -> *const c_char {
        record_panic(function, payload.as_ref());
        c"".as_ptr()
    }
}

/// The name of the exported function a [`boundary!`] expansion sits in, from the type name of
/// the marker function it defines (`tollgate::project::tg_consume::here`).
pub(crate) fn function_name<F>(_marker: F) -> &'static str {
    let path = std::any::type_name::<F>();
    let path = path.strip_suffix("::here").unwrap_or(path);
    path.rsplit("::").next().unwrap_or(path)
}

/// Converting a core error into a status records it as this thread's last error, rendered: an
/// error comes only from a call off the hot path, which allocates anyway.
impl From<Error> for tg_status {
    #[cold]
    fn from(error: Error) -> tg_status {
        let status = tg_status::from(&error);
        record_message(format_args!("{error}"));
        status
    }
}

/// Converting a hot-path refusal into a status records it as this thread's last error as it
/// is, plain data: no allocation. It is rendered only when `tg_last_error_message` asks.
impl From<Refusal> for tg_status {
    #[inline]
    fn from(refusal: Refusal) -> tg_status {
        set_last(Last::Refusal(refusal));
        tg_status::from(&refusal)
    }
}

/// This thread's last error, as plain data.
#[derive(Clone, Copy)]
enum Last {
    /// No call on this thread has failed yet.
    None,
    /// An argument was unusable.
    Argument {
        name: &'static str,
        problem: ArgumentProblem,
    },
    /// A hot-path refusal, rendered by the core's `Display` only when asked for.
    Refusal(Refusal),
    /// The message is already in [`MESSAGE`].
    Rendered,
}

/// What was wrong with an argument.
#[derive(Clone, Copy)]
enum ArgumentProblem {
    Null,
    NotUtf8,
    Misaligned,
}

thread_local! {
    /// What failed last on this thread. `Copy` with a `const` initialiser: no destructor, so
    /// setting it never registers one nor allocates.
    static LAST: Cell<Last> = const { Cell::new(Last::None) };
    /// The rendered message, NUL-terminated; only touched off the hot path.
    static MESSAGE: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

#[inline]
fn set_last(last: Last) {
    LAST.with(|cell| cell.set(last));
}

/// Renders `message` into [`MESSAGE`] (a NUL inside it is written as `\0`) and makes it the
/// last error.
#[cold]
fn record_message(message: fmt::Arguments<'_>) {
    MESSAGE.with_borrow_mut(|buffer| {
        buffer.clear();
        let _ = NulEscaped(buffer).write_fmt(message);
        buffer.push(0);
    });
    set_last(Last::Rendered);
}

#[cold]
fn record_panic(function: &str, payload: &(dyn Any + Send)) {
    let what = payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("a non-string payload");
    record_message(format_args!(
        "panic in {function}: {what} (caught at the C boundary; report this as a bug)"
    ));
}

/// Writes text into a C string buffer, spelling NUL bytes out so that the string is not cut.
struct NulEscaped<'a>(&'a mut Vec<u8>);

impl fmt::Write for NulEscaped<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for (i, part) in s.split('\0').enumerate() {
            if i > 0 {
                self.0.extend_from_slice(b"\\0");
            }
            self.0.extend_from_slice(part.as_bytes());
        }
        Ok(())
    }
}

/// Records an unusable argument and returns the status for it.
#[cold]
fn bad_argument(name: &'static str, problem: ArgumentProblem) -> tg_status {
    set_last(Last::Argument { name, problem });
    tg_status::TG_INVALID_ARGUMENT
}

/// The text of this thread's last error: `""` when no call has failed on this thread. The
/// pointer stays valid until the next Tollgate call on the same thread.
pub(crate) fn last_error_message() -> *const c_char {
    match LAST.with(Cell::get) {
        Last::None => return c"".as_ptr(),
        Last::Rendered => {}
        Last::Argument { name, problem } => {
            let problem = match problem {
                ArgumentProblem::Null => "is NULL",
                ArgumentProblem::NotUtf8 => "is not valid UTF-8",
                ArgumentProblem::Misaligned => "is not aligned for its element type",
            };
            record_message(format_args!("argument `{name}` {problem}"));
        }
        Last::Refusal(refusal) => record_message(format_args!("{refusal}")),
    }
    MESSAGE.with_borrow(|buffer| buffer.as_ptr().cast())
}

/// Borrows the value behind a handle or struct argument.
///
/// # Safety
/// `ptr` is NULL or valid for shared reads of a `T` for `'a`, with no `&mut` to it meanwhile.
#[inline(always)]
pub(crate) unsafe fn borrow<'a, T>(ptr: *const T, name: &'static str) -> Result<&'a T, tg_status> {
    // SAFETY: the caller guarantees `ptr` is NULL or valid for `'a`; `as_ref` checks NULL.
    match unsafe { ptr.as_ref() } {
        Some(value) => Ok(value),
        None => Err(bad_argument(name, ArgumentProblem::Null)),
    }
}

/// Borrows a NUL-terminated UTF-8 string argument.
///
/// # Safety
/// `ptr` is NULL or points to a NUL-terminated string that is not changed during `'a`.
pub(crate) unsafe fn text<'a>(
    ptr: *const c_char,
    name: &'static str,
) -> Result<&'a str, tg_status> {
    if ptr.is_null() {
        return Err(bad_argument(name, ArgumentProblem::Null));
    }
    // SAFETY: non-NULL here; the caller guarantees a NUL-terminated string alive for `'a`.
    let text = unsafe { CStr::from_ptr(ptr) };
    text.to_str()
        .map_err(|_| bad_argument(name, ArgumentProblem::NotUtf8))
}

/// Borrows a NUL-terminated UTF-8 string argument that may be NULL, meaning "none".
///
/// # Safety
/// `ptr` is NULL or points to a NUL-terminated string that is not changed during `'a`.
pub(crate) unsafe fn optional_text<'a>(
    ptr: *const c_char,
    name: &'static str,
) -> Result<Option<&'a str>, tg_status> {
    if ptr.is_null() {
        return Ok(None);
    }
    // SAFETY: non-NULL here; the caller's guarantee is passed on unchanged.
    unsafe { text(ptr, name) }.map(Some)
}

/// Borrows a C array argument: `len` elements at `ptr`, which may be NULL only when `len` is 0.
///
/// # Safety
/// If `len > 0`, `ptr` is NULL or valid for reading `len` elements of `T` during `'a`.
#[inline(always)]
pub(crate) unsafe fn slice<'a, T>(
    ptr: *const T,
    len: usize,
    name: &'static str,
) -> Result<&'a [T], tg_status> {
    if len == 0 {
        return Ok(&[]);
    }
    if ptr.is_null() {
        return Err(bad_argument(name, ArgumentProblem::Null));
    }
    if !ptr.is_aligned() {
        return Err(bad_argument(name, ArgumentProblem::Misaligned));
    }
    // SAFETY: non-NULL and aligned (checked); the caller guarantees `len` readable elements.
    Ok(unsafe { std::slice::from_raw_parts(ptr, len) })
}

/// An out-pointer argument: a place the function writes its result to. It is only written,
/// never read, so C may pass uninitialised memory.
pub(crate) struct Out<'a, T> {
    ptr: NonNull<T>,
    _place: PhantomData<&'a mut T>,
}

impl<T> Out<'_, T> {
    /// Stores `value`, overwriting without dropping what was there (C owns that memory).
    #[inline(always)]
    pub(crate) fn write(&mut self, value: T) {
        // SAFETY: `out` made this from a pointer the caller guarantees valid for writing a `T`;
        // `write` neither reads nor drops the old contents.
        unsafe { self.ptr.as_ptr().write(value) }
    }
}

/// Checks an out-pointer argument.
///
/// # Safety
/// `ptr` is NULL or valid and aligned for writing a `T` during `'a`.
#[inline(always)]
pub(crate) unsafe fn out<'a, T>(ptr: *mut T, name: &'static str) -> Result<Out<'a, T>, tg_status> {
    match NonNull::new(ptr) {
        Some(ptr) => Ok(Out {
            ptr,
            _place: PhantomData,
        }),
        None => Err(bad_argument(name, ArgumentProblem::Null)),
    }
}

/// A handle as C holds it: the value, then the process that made it. `repr(C)` puts `value` at
/// offset 0, so the pointer C holds is a valid `*mut T` for [`borrow`]; only [`drop_handle`]
/// looks at `process`.
#[repr(C)]
struct Owned<T> {
    value: T,
    process: u32,
}

/// Moves `value` to the heap and hands ownership to C; [`drop_handle`] takes it back.
pub(crate) fn new_handle<T>(value: T) -> *mut T {
    let owned = Box::into_raw(Box::new(Owned {
        value,
        process: std::process::id(),
    }));
    owned.cast()
}

/// Takes back and drops a handle made by [`new_handle`]; NULL is a no-op.
///
/// # Fork
/// In a child of `fork()`, a handle the parent made is left alone: dropping it would join
/// threads that exist only in the parent (a panic, then an abort), release locks and write
/// ratchets on the parent's behalf. Its memory stays allocated in the child, and the parent's
/// threads, locks and files are untouched. A handle the child made itself is dropped as usual.
///
/// # Safety
/// `ptr` is NULL or came from [`new_handle`] with the same `T` and has not been dropped yet, and
/// no other thread is using it.
pub(crate) unsafe fn drop_handle<T>(ptr: *mut T) {
    if ptr.is_null() {
        return;
    }
    let owned = ptr.cast::<Owned<T>>();
    // SAFETY: the caller guarantees `ptr` came from `new_handle::<T>`, so it points to a live
    // `Owned<T>` (the cast back undoes the one there), which nobody else uses now.
    if unsafe { (*owned).process } != std::process::id() {
        return;
    }
    // SAFETY: as above: a live `Box<Owned<T>>` given out by `new_handle`, dropped once.
    drop(unsafe { Box::from_raw(owned) });
}

/// Serialises `value` to JSON and hands the string to C (freed with `tg_string_free`).
pub(crate) fn json_out<T: Serialize + ?Sized>(
    value: &T,
    out: &mut Out<'_, *mut c_char>,
) -> Result<(), tg_status> {
    let json = serde_json::to_string(value).map_err(|e| {
        record_message(format_args!("could not render the result as JSON: {e}"));
        tg_status::TG_IO
    })?;
    // serde_json escapes every control character, NUL included.
    let json = CString::new(json).expect("JSON text has no NUL byte");
    out.write(json.into_raw());
    Ok(())
}

/// Hands a copy of `text` to C (freed with `tg_string_free`).
pub(crate) fn string_out(text: &str, out: &mut Out<'_, *mut c_char>) -> Result<(), tg_status> {
    let text = CString::new(text).map_err(|_| {
        record_message(format_args!("the result {text:?} contains a NUL byte"));
        tg_status::TG_IO
    })?;
    out.write(text.into_raw());
    Ok(())
}

/// Records `message` as this thread's last error and returns `status`, for a refusal the FFI
/// itself makes.
#[cold]
pub(crate) fn refused(status: tg_status, message: fmt::Arguments<'_>) -> tg_status {
    record_message(message);
    status
}

/// Records an argument the core could not parse, naming it as the C caller knows it.
#[cold]
pub(crate) fn invalid_value(name: &'static str, reason: impl fmt::Display) -> tg_status {
    tg_status::from(Error::InvalidArgument {
        field: name,
        reason: reason.to_string(),
    })
}

/// Frees a string that Tollgate returned (the `out_json` of the `_json` functions and the
/// other `char **out_…` results). NULL is a no-op.
///
/// # Safety
/// `s` is NULL or a string returned by Tollgate that has not been freed yet.
#[no_mangle]
pub unsafe extern "C" fn tg_string_free(s: *mut c_char) {
    boundary!({
        if !s.is_null() {
            // SAFETY: the caller guarantees `s` came from `CString::into_raw` in `json_out` and
            // is freed once.
            drop(unsafe { CString::from_raw(s) });
        }
    })
}

/// The message of the last failed call on this thread: it names the argument, rule or value at
/// fault. Never NULL: `""` when no call has failed on this thread. A successful call leaves it
/// unchanged (as with `errno`). The string is owned by Tollgate and stays valid until the next
/// Tollgate call on the same thread; copy it to keep it.
#[no_mangle]
pub extern "C" fn tg_last_error_message() -> *const c_char {
    boundary!({ last_error_message() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message() -> String {
        // SAFETY: `last_error_message` returns a NUL-terminated string valid until the next
        // call on this thread; it is copied at once.
        unsafe { CStr::from_ptr(last_error_message()) }
            .to_string_lossy()
            .into_owned()
    }

    #[test]
    fn a_panic_becomes_tg_panic_naming_the_function() {
        fn tg_explode() -> tg_status {
            boundary!({
                if message().is_empty() {
                    panic!("boom {}", 42);
                }
                Ok(())
            })
        }
        assert_eq!(tg_explode(), tg_status::TG_PANIC);
        assert_eq!(
            message(),
            "panic in tg_explode: boom 42 (caught at the C boundary; report this as a bug)"
        );
    }

    #[test]
    fn functions_that_cannot_fail_return_a_harmless_value_after_a_panic() {
        fn tg_text() -> *const c_char {
            boundary!({
                assert!(std::hint::black_box(false), "static text");
                c"unreachable".as_ptr()
            })
        }
        fn tg_nothing() {
            boundary!({ assert!(std::hint::black_box(false), "in a close") })
        }
        // SAFETY: the panic value is a static empty C string.
        assert_eq!(unsafe { CStr::from_ptr(tg_text()) }, c"");
        assert!(message().starts_with("panic in tg_text: static text"));
        tg_nothing();
        assert!(message().starts_with("panic in tg_nothing: in a close"));
    }

    #[test]
    fn messages_keep_text_after_a_nul_byte() {
        record_message(format_args!("before\0after"));
        assert_eq!(message(), "before\\0after");
    }

    #[test]
    fn no_error_is_an_empty_message() {
        std::thread::spawn(|| assert_eq!(message(), ""))
            .join()
            .unwrap();
    }
}
