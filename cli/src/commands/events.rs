//! `tollgate events [--follow] [--since SEQ|WHEN] [--project NAME]`: the audit log.

use std::io::Write;
use std::time::Duration;

use tollgate_core::{Engine, Event};

use super::Context;
use crate::args::{EventsArgs, Since};
use crate::failure::Failure;
use crate::output::{json_document, json_line};
use crate::render::event_line;

/// Events read from the log per query.
const PAGE: usize = 1_000;

/// How often `--follow` looks for new events.
const POLL: Duration = Duration::from_millis(200);

/// Prints the audit log; with `--follow`, keeps printing new events until interrupted.
pub fn run(ctx: &Context, args: &EventsArgs, out: &mut dyn Write) -> Result<(), Failure> {
    let engine = ctx.existing_engine()?;
    if let Some(project) = &args.project {
        // Name a missing project now rather than print an empty log forever.
        engine.project(project)?;
    }
    let mut cursor = Cursor {
        after: match args.since {
            Some(Since::Seq(seq)) => seq,
            _ => 0,
        },
        args,
    };
    if !args.follow {
        let mut events = Vec::new();
        cursor.read(&engine, |event| events.push(event))?;
        if ctx.json {
            json_document(out, &events)?;
        } else if events.is_empty() {
            writeln!(out, "No events.")?;
        } else {
            for event in &events {
                writeln!(out, "{}", event_line(event))?;
            }
        }
        return Ok(());
    }
    loop {
        let mut written = Ok(());
        cursor.read(&engine, |event| {
            if written.is_ok() {
                written = if ctx.json {
                    json_line(out, &event)
                } else {
                    writeln!(out, "{}", event_line(&event)).and_then(|()| out.flush())
                };
            }
        })?;
        written?;
        std::thread::sleep(POLL);
    }
}

/// Where the reader is in the log, and which events it keeps.
struct Cursor<'a> {
    after: u64,
    args: &'a EventsArgs,
}

impl Cursor<'_> {
    /// Hands every kept event after the cursor to `keep`, oldest first, and moves past them.
    fn read(&mut self, engine: &Engine, mut keep: impl FnMut(Event)) -> Result<(), Failure> {
        loop {
            let page = engine.events_after(self.after, PAGE)?;
            let full = page.len() == PAGE;
            for event in page {
                self.after = event.seq;
                if self.wanted(&event) {
                    keep(event);
                }
            }
            if !full {
                return Ok(());
            }
        }
    }

    fn wanted(&self, event: &Event) -> bool {
        let recent = match self.args.since {
            Some(Since::Time(at)) => event.at >= at,
            _ => true,
        };
        let project = self
            .args
            .project
            .as_ref()
            .is_none_or(|name| *name == event.project);
        recent && project
    }
}
