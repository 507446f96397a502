//! `tollgate pipe`: copies standard input to standard output and charges every byte to a
//! project's data-volume keys, so that any pipeline is metered without a code change:
//! `pg_dump src | tollgate pipe --project P | psql dst`.
//!
//! # The charging rule
//!
//! The copy goes in *pieces*. Before a piece moves, pipe charges it with one
//! `consume_partial`, and then it moves exactly what was granted: no byte reaches standard
//! output uncharged. A piece is at most `--chunk` bytes, and never more than standard input
//! holds at that moment and — when standard output is a pipe — than that pipe has room for
//! (its capacity, grown to a chunk where the system allows, less the bytes queued in it, in
//! whole pages, see [`room`]). So a piece is taken by the output in full without waiting for
//! the reader, and a reader that closes its end is seen (`POLLERR`) before the next piece is
//! charged, not after.
//!
//! What that guarantees, and what pipe reports on standard error when the reader closes early:
//! - bytes charged == bytes written to standard output (taken by write(2)/splice(2)), except in
//!   one case: the reader closes in the moment between a piece's charge and its move, or while
//!   a piece waits for room the estimate promised. The bytes of that one piece that were not
//!   taken were charged and are reported as such ("N of them charged but not written"); a
//!   refund would need the engine's hot path to give bytes back, which it never does.
//! - the reader got at most the bytes written; those still queued in the pipe when it closed
//!   (at most the pipe's capacity) were written and charged but never read.
//!
//! When a grant comes back short (no key covers the whole piece), the part granted is written
//! and the next charge is refused: pipe then prints the refusal and its rule and exits with
//! status 3. Standard input and output are moved with splice(2), without copying through this
//! process, when both are pipes; with read(2)/write(2) through one chunk-sized buffer otherwise.

mod io;
mod progress;

use std::io::ErrorKind;
use std::os::fd::RawFd;
use std::time::Duration;

use tollgate_core::{Engine, Error, ProjectHandle, Refusal};

use self::io::{STDIN, STDOUT};
use self::progress::{KeyIds, Progress};
use super::Context;
use crate::args::PipeArgs;
use crate::failure::Failure;

/// How the copy ended.
enum End {
    /// Standard input ended.
    Eof,
    /// The reader closed standard output; `unwritten` bytes of the last piece were charged
    /// but not taken.
    ReaderClosed {
        /// Charged, not written.
        unwritten: u64,
    },
    /// No key covers the next bytes.
    NotCovered(Refusal),
}

/// How long `pipe` waits for a fleet host to lease more before it stops with `UNAVAILABLE`.
const UNAVAILABLE_PATIENCE: Duration = Duration::from_secs(30);

/// The project being charged, what was charged and written, and what is shown of it.
struct Meter<'e> {
    engine: &'e Engine,
    project: ProjectHandle,
    keys: KeyIds,
    switches: u64,
    charged: u64,
    written: u64,
    progress: Progress,
}

impl Meter<'_> {
    /// Charges up to `want` bytes and returns what was granted, or the refusal when nothing was.
    /// In fleet mode a spent stock (`UNAVAILABLE`) holds the data back while the host leases
    /// more, for [`UNAVAILABLE_PATIENCE`] at most: a pipe waits rather than stops, and never
    /// forwards a byte unmetered.
    fn charge(&mut self, want: usize) -> Result<usize, Refusal> {
        let mut waited = Duration::ZERO;
        let granted = loop {
            match self.project.consume_partial(want as u64) {
                Err(Refusal::Unavailable) if waited < UNAVAILABLE_PATIENCE => {
                    let pause =
                        (waited / 4).clamp(Duration::from_millis(1), Duration::from_millis(100));
                    std::thread::sleep(pause);
                    waited += pause;
                }
                granted => break granted?,
            }
        };
        self.charged += granted;
        let switches = self.project.usage().switches;
        if switches != self.switches {
            self.switched(switches);
        }
        // A grant is never more than asked, so it fits the usize it came from.
        Ok(granted as usize)
    }

    /// Tells of the switch the last charge made (or several, from other processes too).
    fn switched(&mut self, switches: u64) {
        let from = self.keys.active.take();
        self.keys = key_ids(self.engine, self.project.name()).unwrap_or_default();
        let name = |id: &Option<String>| id.as_deref().unwrap_or("—").to_owned();
        self.progress.note(&format!(
            "tollgate pipe: project \"{}\" switched from key \"{}\" to key \"{}\" ({} bytes charged by this pipe so far)",
            self.project.name(),
            name(&from),
            name(&self.keys.active),
            self.charged
        ));
        if switches > self.switches + 1 {
            self.progress.note(&format!(
                "tollgate pipe: {} switches in all since the last piece",
                switches - self.switches
            ));
        }
        self.switches = switches;
    }

    /// Counts `n` bytes taken by standard output.
    fn wrote(&mut self, n: usize) {
        self.written += n as u64;
        if self.progress.shown() {
            self.progress
                .update(self.written, &self.project.usage(), &self.keys);
        }
    }
}

/// The ids of a project's data-volume keys now.
fn key_ids(engine: &Engine, project: &str) -> Result<KeyIds, Error> {
    let (active, reserved) = super::usage::data_volume_keys(&engine.view(project)?);
    Ok(KeyIds { active, reserved })
}

/// Standard output: how much it takes now without waiting.
struct Output {
    /// The capacity of standard output's pipe; `None` when it is not a pipe.
    pipe_capacity: Option<usize>,
}

impl Output {
    /// How many bytes, at most `limit`, standard output takes now without waiting for its
    /// reader; `None` when the reader has closed it. Waits until there is room for some.
    fn room(&self, limit: usize) -> std::io::Result<Option<usize>> {
        let Some(capacity) = self.pipe_capacity else {
            return Ok(Some(limit));
        };
        let events = io::wait(STDOUT, libc::POLLOUT)?;
        if events & libc::POLLERR != 0 {
            return Ok(None);
        }
        Ok(Some(room(capacity, io::queued(STDOUT)?).min(limit)))
    }
}

/// The bytes a pipe of `capacity` holding `queued` takes without waiting. A pipe counts
/// pages, not bytes: the page its reader is partway through holds fewer bytes than a page
/// and no more can go in it, so a pipe that is not empty is given a page less; and a room
/// of whole pages keeps pieces page-aligned, so that a piece spliced from a pipe of full
/// pages fills whole pages of the next. POLLOUT promises one free page, whatever the bytes
/// say.
fn room(capacity: usize, queued: usize) -> usize {
    let slack = if queued > 0 { PAGE } else { 0 };
    let bytes = capacity.saturating_sub(queued + slack);
    (bytes / PAGE * PAGE).max(PAGE)
}

/// A pipe's unit of room: what POLLOUT promises, and what one buffer of a pipe holds.
const PAGE: usize = 4096;

/// Copies standard input to standard output, charging every byte to `--project`.
pub fn run(ctx: &Context, args: &PipeArgs) -> Result<(), Failure> {
    let engine = ctx.existing_engine()?;
    let project = engine.project(&args.project)?;
    let chunk = usize::try_from(args.chunk).expect("a chunk is at most 1 GiB");
    let mut meter = Meter {
        keys: key_ids(&engine, &args.project)?,
        switches: project.usage().switches,
        engine: &engine,
        project,
        charged: 0,
        written: 0,
        progress: Progress::new(args.progress),
    };
    let output = Output {
        pipe_capacity: if io::is_pipe(STDOUT)? {
            Some(io::grow_pipe(STDOUT, chunk)?)
        } else {
            None
        },
    };
    let input_is_pipe = io::is_pipe(STDIN)?;
    if input_is_pipe {
        // A larger input pipe lets the writer run further ahead: bigger pieces, fewer calls.
        io::grow_pipe(STDIN, chunk)?;
    }
    let end = if output.pipe_capacity.is_some() && input_is_pipe {
        splice_all(&mut meter, &output, chunk)?
    } else {
        copy_all(&mut meter, &output, chunk)?
    };
    finish(&meter, end)
}

/// The pipe-to-pipe path: splice(2) moves pages from standard input's pipe to standard
/// output's without copying them.
fn splice_all(meter: &mut Meter<'_>, output: &Output, chunk: usize) -> Result<End, Failure> {
    loop {
        let available = match input_queued(STDIN)? {
            0 => return Ok(End::Eof),
            n => n,
        };
        let Some(room) = output.room(available.min(chunk))? else {
            return Ok(End::ReaderClosed { unwritten: 0 });
        };
        let granted = match meter.charge(room) {
            Ok(granted) => granted,
            Err(refusal) => return Ok(End::NotCovered(refusal)),
        };
        let mut left = granted;
        while left > 0 {
            match io::splice(STDIN, STDOUT, left) {
                // Only this process reads standard input, and it held `available` bytes.
                Ok(0) => {
                    return Err(Failure::from(std::io::Error::new(
                        ErrorKind::UnexpectedEof,
                        "standard input lost bytes it held",
                    )))
                }
                Ok(n) => {
                    left -= n;
                    meter.wrote(n);
                }
                Err(e) if e.kind() == ErrorKind::BrokenPipe => {
                    return Ok(End::ReaderClosed {
                        unwritten: left as u64,
                    })
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// Bytes waiting in the pipe `fd`, waiting for some; 0 once its writers are gone and it is
/// empty.
fn input_queued(fd: RawFd) -> std::io::Result<usize> {
    loop {
        let queued = io::queued(fd)?;
        if queued > 0 {
            return Ok(queued);
        }
        let events = io::wait(fd, libc::POLLIN)?;
        if events & libc::POLLIN == 0 && events & libc::POLLHUP != 0 {
            return Ok(0);
        }
    }
}

/// The read/write path, for a file, terminal or socket at either end: a chunk is read, then
/// written piece by piece, each charged before it is written.
fn copy_all(meter: &mut Meter<'_>, output: &Output, chunk: usize) -> Result<End, Failure> {
    let mut buf = vec![0u8; chunk];
    loop {
        let filled = io::read(STDIN, &mut buf)?;
        if filled == 0 {
            return Ok(End::Eof);
        }
        let mut sent = 0;
        while sent < filled {
            let Some(room) = output.room(filled - sent)? else {
                return Ok(End::ReaderClosed { unwritten: 0 });
            };
            let granted = match meter.charge(room) {
                Ok(granted) => granted,
                Err(refusal) => return Ok(End::NotCovered(refusal)),
            };
            let piece = &buf[sent..sent + granted];
            let mut done = 0;
            while done < granted {
                match io::write(STDOUT, &piece[done..]) {
                    Ok(n) => {
                        done += n;
                        meter.wrote(n);
                    }
                    Err(e) if e.kind() == ErrorKind::BrokenPipe => {
                        return Ok(End::ReaderClosed {
                            unwritten: (granted - done) as u64,
                        })
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            sent += granted;
        }
    }
}

/// Tells how the copy ended and turns it into the exit status.
fn finish(meter: &Meter<'_>, end: End) -> Result<(), Failure> {
    let usage = meter.project.usage();
    meter.progress.finish(meter.written, &usage, &meter.keys);
    let project = meter.project.name();
    match end {
        End::Eof => Ok(()),
        End::ReaderClosed { unwritten } => {
            let mut text = format!(
                "tollgate pipe: the reader closed standard output: {} bytes written, {} bytes charged to project \"{project}\"",
                meter.written, meter.charged
            );
            if unwritten > 0 {
                text.push_str(&format!(
                    "; {unwritten} of them charged but not written (the reader closed while they were on their way)"
                ));
            }
            meter.progress.note(&text);
            Ok(())
        }
        End::NotCovered(refusal) if !covers_nothing(refusal) => Err(refusal.into()),
        End::NotCovered(refusal) => {
            meter.progress.note(&format!(
                "tollgate pipe: stopped: no key of project \"{project}\" covers more; {} bytes written and charged",
                meter.written
            ));
            Err(Failure::not_covered(refusal))
        }
    }
}

/// Whether a hot-path refusal says that no key covers the bytes (exit status 3), rather than
/// that something else went wrong (a damaged state, or a fleet store out of reach: exit status 1).
fn covers_nothing(refusal: Refusal) -> bool {
    match refusal {
        Refusal::Exhausted { .. } | Refusal::Expired | Refusal::NoActiveKey => true,
        Refusal::SeatsExhausted { .. }
        | Refusal::NotHeld { .. }
        | Refusal::Unavailable
        | Refusal::CorruptLease
        | Refusal::StateTruncated
        | Refusal::SeatTableTruncated => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Room is whole pages, a page less once the reader is partway through one, and never
    /// below the page POLLOUT promises.
    #[test]
    fn room_counts_whole_pages() {
        let mib = 1 << 20;
        // (capacity, queued, room)
        let table = [
            (mib, 0, mib),
            (mib, 1, mib - 2 * PAGE),
            (mib, PAGE, mib - 2 * PAGE),
            (mib, PAGE + 1, mib - 3 * PAGE),
            (mib, mib - PAGE, PAGE),
            (mib, mib, PAGE),
            (64 * 1024, 100, 64 * 1024 - 2 * PAGE),
        ];
        for (capacity, queued, want) in table {
            assert_eq!(room(capacity, queued), want, "{capacity} {queued}");
        }
    }
}
