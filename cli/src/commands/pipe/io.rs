//! Standard input and output as `tollgate pipe` sees them: the few system calls it needs, each
//! retried on `EINTR`, with the error of `errno` otherwise.

use std::io;
use std::mem::MaybeUninit;
use std::os::fd::RawFd;

/// Standard input.
pub const STDIN: RawFd = libc::STDIN_FILENO;
/// Standard output.
pub const STDOUT: RawFd = libc::STDOUT_FILENO;

/// Runs a system call until it is not interrupted by a signal.
fn retry(mut call: impl FnMut() -> isize) -> io::Result<usize> {
    loop {
        let rc = call();
        if let Ok(n) = usize::try_from(rc) {
            return Ok(n);
        }
        let error = io::Error::last_os_error();
        if error.kind() != io::ErrorKind::Interrupted {
            return Err(error);
        }
    }
}

/// Whether `fd` is a pipe (or a FIFO).
pub fn is_pipe(fd: RawFd) -> io::Result<bool> {
    let mut stat = MaybeUninit::<libc::stat>::uninit();
    // SAFETY: `stat` is a writable buffer of the size fstat(2) fills; it is read only after
    // fstat reported success, which means it filled it.
    let stat = unsafe {
        if libc::fstat(fd, stat.as_mut_ptr()) != 0 {
            return Err(io::Error::last_os_error());
        }
        stat.assume_init()
    };
    Ok(stat.st_mode & libc::S_IFMT == libc::S_IFIFO)
}

/// Grows the pipe `fd` to hold at least `bytes` where the system allows it, and returns its
/// capacity in bytes. A pipe that cannot grow (beyond `/proc/sys/fs/pipe-max-size`, or over
/// the user's pipe quota) keeps the capacity it has.
pub fn grow_pipe(fd: RawFd, bytes: usize) -> io::Result<usize> {
    // SAFETY: F_GETPIPE_SZ takes no argument and touches no memory of this process.
    let capacity = unsafe { libc::fcntl(fd, libc::F_GETPIPE_SZ) };
    let capacity = usize::try_from(capacity).map_err(|_| io::Error::last_os_error())?;
    if capacity >= bytes {
        return Ok(capacity);
    }
    let wanted = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
    // SAFETY: F_SETPIPE_SZ takes an int by value and touches no memory of this process.
    let grown = unsafe { libc::fcntl(fd, libc::F_SETPIPE_SZ, wanted) };
    Ok(usize::try_from(grown).unwrap_or(capacity))
}

/// Bytes waiting in the pipe `fd`, whichever end `fd` is.
pub fn queued(fd: RawFd) -> io::Result<usize> {
    let mut bytes: libc::c_int = 0;
    // SAFETY: FIONREAD writes one int through the pointer, which points to `bytes`.
    if unsafe { libc::ioctl(fd, libc::FIONREAD, &mut bytes) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(usize::try_from(bytes).unwrap_or(0))
}

/// Waits until `fd` reports one of `events` (or an error or hang-up, which poll(2) always
/// reports) and returns what it reported.
pub fn wait(fd: RawFd, events: libc::c_short) -> io::Result<libc::c_short> {
    let mut poll = libc::pollfd {
        fd,
        events,
        revents: 0,
    };
    // SAFETY: one valid `pollfd`, and the count says one.
    retry(|| unsafe { libc::poll(&mut poll, 1, -1) } as isize)?;
    Ok(poll.revents)
}

/// Moves up to `len` bytes from the pipe `from` to the pipe `to` without copying them through
/// this process (splice(2)); blocks until some can move.
pub fn splice(from: RawFd, to: RawFd, len: usize) -> io::Result<usize> {
    // SAFETY: null offsets are what splice(2) requires for pipes; it touches no memory of ours.
    retry(|| unsafe {
        libc::splice(
            from,
            std::ptr::null_mut(),
            to,
            std::ptr::null_mut(),
            len,
            libc::SPLICE_F_MOVE,
        )
    })
}

/// read(2) into `buf`: how many bytes arrived, 0 at the end of the input.
pub fn read(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: the pointer and length describe `buf`, which is writable for the whole call.
    retry(|| unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) })
}

/// write(2) from `buf`: how many bytes the output took.
pub fn write(fd: RawFd, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: the pointer and length describe `buf`, which is readable for the whole call.
    retry(|| unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) })
}
