//! The command line of `tollgate pipe`.

use clap::Args;

use crate::size::{format_size, parse_size, Units};

/// The smallest `--chunk`: one page.
const MIN_CHUNK: u64 = 4096;
/// The largest `--chunk`: the buffer of the read/write path is allocated at this size.
const MAX_CHUNK: u64 = 1 << 30;

/// `tollgate pipe …`
#[derive(Debug, Args)]
#[command(
    after_help = "Exit status: 0 when standard input ended, or when the reader of \
standard output closed it (the bytes written and charged are then told on standard error); 3 \
when no key covers the next bytes: what could still be granted was written, and the refusal \
and its rule are on standard error; 1 on any other error; 2 on a usage error.\n\nStandard \
output carries the data only: --json changes nothing here."
)]
pub struct PipeArgs {
    /// The project whose data-volume keys are charged for every byte
    #[arg(long)]
    pub project: String,

    /// The most bytes charged and moved at once (4KiB to 1GiB). Standard output's pipe is grown
    /// to a chunk where the system allows, so a reader that keeps up takes whole chunks
    #[arg(long, value_name = "SIZE", value_parser = parse_chunk, default_value = "1MiB")]
    pub chunk: u64,

    /// Print a progress line every second on standard error even when it is not a terminal
    /// (on a terminal a progress bar is always shown)
    #[arg(long)]
    pub progress: bool,
}

fn parse_chunk(text: &str) -> Result<u64, String> {
    let size = parse_size(text)?;
    if (MIN_CHUNK..=MAX_CHUNK).contains(&size) {
        Ok(size)
    } else {
        Err(format!(
            "a chunk is 4KiB to 1GiB, not {}",
            format_size(size, Units::Binary)
        ))
    }
}
