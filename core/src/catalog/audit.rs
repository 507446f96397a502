//! The audit log: events appended and read in order, switches claimed once, and the usage
//! ratchets among them.

use super::*;

impl Catalog {
    /// The last ratchet in the audit log, if any.
    pub(crate) fn last_ratchet(&self) -> Result<Option<Ratchet>> {
        let json: Option<String> = self
            .conn
            .query_row(
                "SELECT e.json FROM meta m JOIN events e ON e.seq = m.value
                 WHERE m.name = 'checkpoint_event'",
                [],
                |r| r.get(0),
            )
            .optional()
            .map_err(Error::store("read the last checkpoint"))?;
        let Some(json) = json else {
            return Ok(None);
        };
        match serde_json::from_str(&json) {
            Ok(EventKind::Ratchet {
                seq,
                total_used,
                mac,
                prev_mac,
                format,
                decision,
                keys,
                periods,
            }) => Ok(Some(Ratchet {
                seq,
                total_used,
                mac,
                prev_mac,
                format,
                decision,
                keys,
                periods,
            })),
            _ => Err(Error::Tampered {
                reason: crate::error::Tampering::LastRatchetNotOne,
            }),
        }
    }

    /// The audit entry `seq`, if the log holds it.
    pub(crate) fn event_kind(&self, seq: u64) -> Result<Option<EventKind>> {
        let json: Option<String> = self
            .conn
            .query_row(
                "SELECT json FROM events WHERE seq = ?1",
                [i64::try_from(seq).unwrap_or(i64::MAX)],
                |r| r.get(0),
            )
            .optional()
            .map_err(Error::store("read an audit entry"))?;
        json.map(|json| {
            serde_json::from_str(&json).map_err(|e| {
                self.corrupt(Corruption::UnreadableEvent {
                    seq: i64::try_from(seq).unwrap_or(i64::MAX),
                    error: e.to_string(),
                })
            })
        })
        .transpose()
    }

    /// Whether the state holds any key or any ratchet: a state without a ratchet must be
    /// new, and a new state holds neither.
    pub(crate) fn holds_history(&self) -> Result<bool> {
        self.conn
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM keys)
                     OR EXISTS (SELECT 1 FROM events WHERE json LIKE '{\"kind\":\"checkpoint\"%')",
                [],
                |r| r.get(0),
            )
            .map_err(Error::store("look for keys and checkpoints"))
    }

    /// Points the state at its newest ratchet, the audit entry `seq`.
    pub(crate) fn set_last_ratchet(tx: &Transaction<'_>, seq: u64) -> Result<()> {
        tx.execute(
            "INSERT OR REPLACE INTO meta (name, value) VALUES ('checkpoint_event', ?1)",
            [seq as i64],
        )
        .map(drop)
        .map_err(Error::store("record the last checkpoint"))
    }

    /// Claims the audit entry of the switch that moved key `row` out of its Active slot (a key
    /// leaves it at most once): true for the first caller, false once the hot path's dispatcher
    /// or a repair has logged it.
    pub(crate) fn claim_switch(tx: &Transaction<'_>, row: u32) -> Result<bool> {
        tx.execute(
            "INSERT OR IGNORE INTO switches (key_row) VALUES (?1)",
            [row],
        )
        .map(|inserted| inserted == 1)
        .map_err(Error::store("claim switch"))
    }

    /// Whether the switch that moved key `row` out is in the audit log.
    pub(crate) fn switch_logged(&self, row: u32) -> Result<bool> {
        self.conn
            .query_row("SELECT 1 FROM switches WHERE key_row = ?1", [row], |_| {
                Ok(())
            })
            .optional()
            .map(|found| found.is_some())
            .map_err(Error::store("look up switch"))
    }

    /// Appends hot-path events in one transaction and returns those appended. A switch carries
    /// the row of the key it moved out and is appended only if no one logged it before.
    pub(crate) fn append_hot_events(&self, events: &[HotEvent]) -> Result<Vec<Event>> {
        let tx = self.begin()?;
        let mut fresh = Vec::with_capacity(events.len());
        for (project, kind, switch) in events {
            if let Some(row) = *switch {
                if !Self::claim_switch(&tx, row)? {
                    continue;
                }
            }
            fresh.push((project.clone(), kind.clone()));
        }
        let appended = Self::append_events_in(&tx, &fresh)?;
        tx.commit().map_err(Error::store("commit events"))?;
        Ok(appended)
    }

    /// Appends events inside a caller's transaction.
    pub(crate) fn append_events_in(
        tx: &Transaction<'_>,
        events: &[(String, EventKind)],
    ) -> Result<Vec<Event>> {
        let mut stmt = tx
            .prepare_cached("INSERT INTO events (at, project, json) VALUES (?1, ?2, ?3)")
            .map_err(Error::store("append event"))?;
        let mut out = Vec::with_capacity(events.len());
        for (project, kind) in events {
            let at = OffsetDateTime::now_utc();
            let json = serde_json::to_string(kind).expect("events serialise");
            stmt.execute(params![crate::key::rfc3339(at), project, json])
                .map_err(Error::store("append event"))?;
            out.push(Event {
                seq: tx.last_insert_rowid() as u64,
                at,
                project: project.clone(),
                kind: kind.clone(),
            });
        }
        Ok(out)
    }

    /// Up to `limit` audit events after `seq`, oldest first. Ratchets (integrity records
    /// of `engine::ratchet`) stay in the log but are not events and are skipped.
    pub(crate) fn events_after(&self, seq: u64, limit: usize) -> Result<Vec<Event>> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT seq, at, project, json FROM events
                 WHERE seq > ?1 AND json NOT LIKE '{\"kind\":\"checkpoint\"%'
                 ORDER BY seq LIMIT ?2",
            )
            .map_err(Error::store("read events"))?;
        let rows = stmt
            .query_map(
                params![
                    i64::try_from(seq).unwrap_or(i64::MAX),
                    i64::try_from(limit).unwrap_or(i64::MAX)
                ],
                |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, String>(3)?,
                    ))
                },
            )
            .map_err(Error::store("read events"))?;
        let mut events = Vec::new();
        for row in rows {
            let (seq, at, project, json) = row.map_err(Error::store("read event"))?;
            let at = OffsetDateTime::parse(&at, &time::format_description::well_known::Rfc3339)
                .map_err(|e| {
                    self.corrupt(Corruption::EventTime {
                        seq,
                        error: e.to_string(),
                    })
                })?;
            let kind = serde_json::from_str(&json).map_err(|e| {
                self.corrupt(Corruption::UnreadableEvent {
                    seq,
                    error: e.to_string(),
                })
            })?;
            events.push(Event {
                seq: seq as u64,
                at,
                project,
                kind,
            });
        }
        Ok(events)
    }
}

/// A usage ratchet as the audit log holds it (made and verified by `engine::ratchet`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Ratchet {
    pub seq: u64,
    pub total_used: u64,
    pub mac: String,
    pub prev_mac: String,
    /// What the MAC covers (see `engine::ratchet`); 0 and 1 are format 1.
    pub format: u32,
    /// The audit sequence of the latest operator decision.
    pub decision: Option<u64>,
    /// The data-volume keys in slots, by catalog row (format 2).
    pub keys: Vec<CheckedKey>,
    /// Each key with a reset: its term, current period and closed usage (empty for none).
    pub periods: std::collections::BTreeMap<String, crate::event::PeriodMark>,
}
