//! `tollgate completions` and `tollgate man`: the shell completion scripts and the man pages,
//! generated from the same clap definition as the parser, so they never disagree with it.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::CommandFactory;
use clap_complete::Shell;
use serde::Serialize;

use super::Context;
use crate::args::Cli;
use crate::failure::Failure;
use crate::output::json_document;

/// Prints the completion script for `shell`.
pub fn completions(shell: Shell, out: &mut dyn Write) -> Result<(), Failure> {
    // Rendered into memory first: clap_complete panics on a failed write, and a closed pipe
    // (`| head`) is no failure of ours.
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "tollgate", &mut script);
    out.write_all(&script)?;
    Ok(())
}

#[derive(Serialize)]
struct Written {
    pages: Vec<PathBuf>,
}

/// Writes `tollgate.1` and a page per command, nested ones included, into `dir`.
pub fn man(ctx: &Context, dir: &Path, out: &mut dyn Write) -> Result<(), Failure> {
    std::fs::create_dir_all(dir).map_err(|e| cannot_write(dir, &e))?;
    let mut pages = Vec::new();
    write_pages(Cli::command(), dir, &mut pages)?;
    if ctx.json {
        json_document(out, &Written { pages })?;
    } else {
        writeln!(
            out,
            "Wrote {} man pages into {}",
            pages.len(),
            dir.display()
        )?;
    }
    Ok(())
}

/// Writes the page of `command` (named after its path, `tollgate-key-add`) and those of its
/// subcommands.
fn write_pages(
    command: clap::Command,
    dir: &Path,
    pages: &mut Vec<PathBuf>,
) -> Result<(), Failure> {
    // Built first: it fills in the subcommands' display names (`tollgate-key-add`).
    let command = command.disable_help_subcommand(true);
    let mut built = command.clone();
    built.build();
    let name = built
        .get_display_name()
        .unwrap_or_else(|| built.get_name())
        .to_owned();
    let path = dir.join(format!("{name}.1"));
    let mut page = Vec::new();
    clap_mangen::Man::new(built.clone())
        .source(concat!("tollgate ", env!("CARGO_PKG_VERSION")))
        .manual("Tollgate")
        .render(&mut page)
        .map_err(|e| cannot_write(&path, &e))?;
    std::fs::write(&path, page).map_err(|e| cannot_write(&path, &e))?;
    pages.push(path);
    for sub in built.get_subcommands().filter(|s| !s.is_hide_set()) {
        write_pages(sub.clone(), dir, pages)?;
    }
    Ok(())
}

fn cannot_write(path: &Path, error: &std::io::Error) -> Failure {
    Failure::refused(
        "IO",
        format!("cannot write {}: {error}", path.display()),
        None,
    )
}
