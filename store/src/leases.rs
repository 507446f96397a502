//! The lease protocol: take, renew, settle, reclaim, write off.
//!
//! A lease is a block of a key account that one host holds for a while. Its figures only grow,
//! and always satisfy `reported <= drawn <= granted`:
//!
//! - `granted`: charged to the account's `leased` when taken, in one statement that refuses to
//!   take more than is free, so no interleaving of hosts can over-grant;
//! - `drawn`: how much of the block the host may grant from. It starts at 0 and rises only by
//!   an acknowledged renewal, so the store always knows a bound on what the host may have
//!   granted. (A seat lease is drawn whole when taken.)
//! - `reported`: what the host said it granted, moved from `leased` to `used` at each renewal.
//!
//! Renewals carry a sequence number, one more each time: a repeated number is a retry and
//! changes nothing, an older one is stale, a skipped one is out of order. A host settles a
//! lease once with its final usage; the unused part returns to the account.
//!
//! A lease not renewed in time expires on the server's clock, and the reclaimer closes it:
//! `granted - drawn` (never drawn, so never granted) returns to the account at once, and
//! `drawn - reported` (perhaps granted, not reported) stays *in doubt* until the host comes back
//! and settles from its own ledger, or an operator writes it off. A seat has nothing in doubt:
//! a host holds it only until its deadline, which comes before the expiry.

use std::fmt;
use std::time::{Instant, SystemTime};

use postgres::error::SqlState;
use postgres::{Row, Transaction};

use crate::accounts::AccountKind;
use crate::error::{self, Error, Result};
use crate::Store;

/// A lease's id, given by the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LeaseId(pub i64);

impl fmt::Display for LeaseId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// Where a lease is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseState {
    /// Held by its host: renewable until it expires.
    Open,
    /// Expired and closed by the reclaimer; its in-doubt part awaits a settle or a write-off.
    Reclaimed,
    /// Closed by its host's settle, exactly.
    Settled,
    /// Reclaimed, then its in-doubt part written off by an operator.
    WrittenOff,
}

impl LeaseState {
    fn parse(state: &str) -> LeaseState {
        match state {
            "open" => LeaseState::Open,
            "reclaimed" => LeaseState::Reclaimed,
            "settled" => LeaseState::Settled,
            _ => LeaseState::WrittenOff,
        }
    }
}

impl fmt::Display for LeaseState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LeaseState::Open => "open",
            LeaseState::Reclaimed => "reclaimed",
            LeaseState::Settled => "settled",
            LeaseState::WrittenOff => "written off",
        })
    }
}

/// A lease as its host holds it.
#[derive(Debug, Clone)]
pub struct Lease {
    /// The store's id for it.
    pub id: LeaseId,
    /// The key account it draws on.
    pub key: String,
    /// The host holding it.
    pub host: String,
    /// The block's size, charged to the account when taken.
    pub granted: u64,
    /// How much of the block the host may grant from (raised by [`Store::renew`]).
    pub drawn: u64,
    /// The usage last acknowledged by the store.
    pub reported: u64,
    /// The last renewal the store applied (0 after the take).
    pub seq: u64,
    /// What the account had free after this lease's take: the input of block sizing.
    pub free_after_take: u64,
    /// When the store may reclaim it (server clock, for display).
    pub expires_at: SystemTime,
    /// When the host must stop granting from it, on the host's monotonic clock: the time the
    /// host sent the take or the applied renewal, plus the TTL, minus the margin
    /// ([`crate::LeaseTerms`]). Always earlier than `expires_at`.
    pub deadline: Instant,
    /// The renewal in flight whose outcome is unknown, and when it was first sent: a retry of
    /// it, once acknowledged, extends the deadline from that first sending, not from the retry.
    pending: Option<(u64, Instant)>,
}

impl Lease {
    /// The sequence number of the next new renewal.
    pub fn next_seq(&self) -> u64 {
        self.seq + 1
    }

    /// Whether the host may still grant from this lease now.
    pub fn is_live(&self) -> bool {
        Instant::now() < self.deadline
    }
}

/// A renewal's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Renewal {
    /// Applied now: the TTL was extended and the usage recorded.
    Applied,
    /// This sequence number had already been applied with the same figures: nothing changed.
    AlreadyApplied,
}

/// A settle's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settlement {
    /// False when the lease had already been settled with the same usage: nothing changed.
    pub applied: bool,
    /// The lease's final usage, now counted in the account's `used`.
    pub used: u64,
    /// What this settle gave back to the account (0 when not applied).
    pub returned: u64,
}

/// One lease closed by [`Store::reclaim_expired`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reclaimed {
    /// The lease.
    pub lease: LeaseId,
    /// Its key account.
    pub key: String,
    /// Its host.
    pub host: String,
    /// Given back to the account: the part never drawn.
    pub returned: u64,
    /// Drawn but not reported: held in doubt until a settle or a write-off.
    pub in_doubt: u64,
}

/// A lease as the operator sees it ([`Store::list_leases`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseRecord {
    /// The lease.
    pub id: LeaseId,
    /// Its key account.
    pub key: String,
    /// Its host.
    pub host: String,
    /// Its state.
    pub state: LeaseState,
    /// The block's size.
    pub granted: u64,
    /// The part the host may grant from.
    pub drawn: u64,
    /// The usage reported by renewals.
    pub reported: u64,
    /// The last renewal applied.
    pub seq: u64,
    /// The part in doubt (reclaimed leases only).
    pub in_doubt: u64,
    /// The final usage (settled leases only).
    pub settled: Option<u64>,
    /// When it was taken (server clock).
    pub taken_at: SystemTime,
    /// When it expires or expired (server clock).
    pub expires_at: SystemTime,
}

/// The lock that serialises reclaimers, so two of them never update the same accounts in
/// different orders.
const RECLAIM_LOCK: i64 = 0x746f_6c6c_7265_636c;

/// One statement: charge the account with what is wanted, or all that is free when less, and
/// insert the lease. The account row's lock orders concurrent takes; `last_grant` carries the
/// amount from the UPDATE (whose SET sees the row before it) to the INSERT.
const TAKE: &str = "
WITH taken AS (
    UPDATE tollgate_key_account
       SET last_grant = least($3::bigint, amount - leased - used - in_doubt - written_off),
           leased = leased + least($3::bigint, amount - leased - used - in_doubt - written_off)
     WHERE id = $2::text AND kind = $5::text
       AND amount - leased - used - in_doubt - written_off >= $6::bigint
 RETURNING id, last_grant, amount - leased - used - in_doubt - written_off AS free
), lease AS (
    INSERT INTO tollgate_lease (account, host, granted, drawn, ttl_ms, expires_at)
    SELECT id, $1::text, last_grant, CASE WHEN $5::text = 'seats' THEN last_grant ELSE 0 END,
           $4::bigint, now() + $4::bigint * interval '1 millisecond'
      FROM taken
 RETURNING id, granted, drawn, expires_at
)
SELECT lease.id, lease.granted, lease.drawn, lease.expires_at, taken.free FROM lease, taken";

/// One statement (after the reclaimers' lock): close every expired open lease, give back its
/// never-drawn part and hold its drawn-but-unreported part in doubt. All lease rows are locked
/// before any account row (the aggregate needs every lease first), the order renew and settle
/// use too, so no deadlock.
const RECLAIM: &str = "
WITH expired AS (
    UPDATE tollgate_lease l
       SET state = 'reclaimed', closed_at = now(),
           in_doubt = CASE WHEN a.kind = 'seats' THEN 0 ELSE l.drawn - l.reported END
      FROM tollgate_key_account a
     WHERE a.id = l.account AND l.state = 'open' AND l.expires_at < now()
 RETURNING l.id, l.account, l.host, l.granted - l.reported AS outstanding, l.in_doubt
), accounts AS (
    UPDATE tollgate_key_account a
       SET leased = a.leased - e.outstanding, in_doubt = a.in_doubt + e.in_doubt
      FROM (SELECT account, sum(outstanding)::bigint AS outstanding,
                   sum(in_doubt)::bigint AS in_doubt
              FROM expired GROUP BY account) e
     WHERE a.id = e.account
)
SELECT id, account, host, outstanding - in_doubt, in_doubt FROM expired ORDER BY id";

/// The lease row and its account's kind, locked for a renew, settle or write-off.
struct Locked {
    kind: AccountKind,
    account: String,
    state: LeaseState,
    granted: u64,
    drawn: u64,
    reported: u64,
    seq: u64,
    in_doubt: u64,
    settled: Option<u64>,
    expired: bool,
}

fn lock(tx: &mut Transaction<'_>, lease: LeaseId) -> Result<Locked> {
    let row = tx
        .query_opt(
            "SELECT a.kind, l.account, l.state, l.granted, l.drawn, l.reported, l.seq,
                    l.in_doubt, l.settled, l.expires_at < now()
               FROM tollgate_lease l JOIN tollgate_key_account a ON a.id = l.account
              WHERE l.id = $1 FOR UPDATE OF l",
            &[&lease.0],
        )?
        .ok_or(Error::LeaseNotFound(lease))?;
    let n = |i: usize| row.get::<_, i64>(i) as u64;
    Ok(Locked {
        kind: if row.get::<_, &str>(0) == "seats" {
            AccountKind::Seats
        } else {
            AccountKind::Bytes
        },
        account: row.get(1),
        state: LeaseState::parse(row.get(2)),
        granted: n(3),
        drawn: n(4),
        reported: n(5),
        seq: n(6),
        in_doubt: n(7),
        settled: row.get::<_, Option<i64>>(8).map(|v| v as u64),
        expired: row.get(9),
    })
}

/// Checks that `value` lies in `min..=max`.
fn within(lease: LeaseId, what: &'static str, value: u64, min: u64, max: u64) -> Result<()> {
    if value < min || value > max {
        return Err(Error::OutOfRange {
            lease,
            what,
            value,
            min,
            max,
        });
    }
    Ok(())
}

fn record(row: &Row) -> LeaseRecord {
    let n = |i: usize| row.get::<_, i64>(i) as u64;
    LeaseRecord {
        id: LeaseId(row.get(0)),
        key: row.get(1),
        host: row.get(2),
        state: LeaseState::parse(row.get(3)),
        granted: n(4),
        drawn: n(5),
        reported: n(6),
        seq: n(7),
        in_doubt: n(8),
        settled: row.get::<_, Option<i64>>(9).map(|v| v as u64),
        taken_at: row.get(10),
        expires_at: row.get(11),
    }
}

impl Store {
    /// Takes a block of `want` bytes of a key's account for `host`, or all that is free when
    /// less, in one statement; [`Error::Exhausted`] when nothing is free. The lease starts
    /// undrawn: the host grants from it only after a renewal drew it.
    pub fn take(&mut self, host: &str, key: &str, want: u64) -> Result<Lease> {
        let want = error::amount("lease size", want, true)?;
        self.take_kind(host, key, AccountKind::Bytes, want, 1)
    }

    /// Takes one seat of a seat account for `host`, drawn at once; [`Error::Exhausted`] when
    /// every seat is held. Give it back with [`Store::return_seat`].
    pub fn take_seat(&mut self, host: &str, key: &str) -> Result<Lease> {
        self.take_kind(host, key, AccountKind::Seats, 1, 1)
    }

    /// Gives a seat back (a settle with nothing used); repeating it changes nothing.
    pub fn return_seat(&mut self, lease: LeaseId) -> Result<Settlement> {
        self.settle(lease, 0)
    }

    fn take_kind(
        &mut self,
        host: &str,
        key: &str,
        kind: AccountKind,
        want: i64,
        at_least: i64,
    ) -> Result<Lease> {
        error::name("host name", host)?;
        error::name("key id", key)?;
        let terms = self.terms;
        let ttl_ms = terms.ttl.as_millis() as i64;
        // Read before the statement is sent, so the server's now() is later (see LeaseTerms).
        let sent = Instant::now();
        let client = self.client()?;
        let result = client.query_opt(
            TAKE,
            &[&host, &key, &want, &ttl_ms, &kind.as_str(), &at_least],
        );
        let row = match result {
            Ok(Some(row)) => row,
            Ok(None) => {
                let refusal = self.why_not_taken(key, kind);
                return self.check(Err(refusal));
            }
            Err(e) if e.code() == Some(&SqlState::FOREIGN_KEY_VIOLATION) => {
                return Err(Error::HostNotFound {
                    host: host.to_owned(),
                })
            }
            Err(e) => return self.check(Err(e.into())),
        };
        Ok(Lease {
            id: LeaseId(row.get(0)),
            key: key.to_owned(),
            host: host.to_owned(),
            granted: row.get::<_, i64>(1) as u64,
            drawn: row.get::<_, i64>(2) as u64,
            reported: 0,
            seq: 0,
            expires_at: row.get(3),
            free_after_take: row.get::<_, i64>(4) as u64,
            deadline: sent + terms.ttl - terms.margin,
            pending: None,
        })
    }

    /// Why a take found no row to update: no such account, the other kind, or nothing free.
    fn why_not_taken(&mut self, key: &str, kind: AccountKind) -> Error {
        match self.account(key) {
            Ok(account) if account.kind != kind => Error::WrongKind {
                key: key.to_owned(),
                expected: kind.as_str(),
            },
            Ok(_) => Error::Exhausted {
                key: key.to_owned(),
            },
            Err(e) => e,
        }
    }

    /// Renews a lease: records `used` (what the host has granted from it so far), raises its
    /// draw to `drawn`, and extends its TTL from now on the server's clock.
    ///
    /// `seq` must be `lease.next_seq()` for a new report. To retry a renewal whose outcome is
    /// unknown (an [`Error::Unavailable`]), send the same `seq` and figures again: if the first
    /// was applied the answer is [`Renewal::AlreadyApplied`] and nothing changes twice. An
    /// older `seq` is [`Error::StaleSequence`], a skipped one [`Error::OutOfOrder`]. A lease
    /// past its expiry is [`Error::LeaseExpired`]: settle it instead.
    ///
    /// The host may grant from a higher draw only once this returns; on success `lease` is
    /// updated, its deadline measured from when this renewal was first sent.
    pub fn renew(&mut self, lease: &mut Lease, seq: u64, used: u64, drawn: u64) -> Result<Renewal> {
        let (sent, retry) = match lease.pending {
            Some((pending, first)) if pending == seq => (first, true),
            _ => (Instant::now(), false),
        };
        lease.pending = Some((seq, sent));
        let client = self.client()?;
        let result = (|| {
            let mut tx = client.transaction()?;
            let outcome = renew(&mut tx, lease.id, seq, used, drawn)?;
            tx.commit()?;
            Ok(outcome)
        })();
        let result = self.check(result);
        match &result {
            Ok(outcome) => {
                lease.pending = None;
                lease.seq = seq;
                lease.reported = used;
                lease.drawn = drawn;
                if let Some(expires_at) = outcome {
                    lease.expires_at = *expires_at;
                }
                // A repeat was applied by an earlier attempt: only when that attempt is the
                // one this lease sent first (`retry`) is its sending time known to precede it.
                if outcome.is_some() || retry {
                    lease.deadline = sent + self.terms.ttl - self.terms.margin;
                }
            }
            Err(Error::Unavailable(_)) => {}
            Err(_) => lease.pending = None,
        }
        result.map(|outcome| match outcome {
            Some(_) => Renewal::Applied,
            None => Renewal::AlreadyApplied,
        })
    }

    /// Settles a lease with its final usage: moves `used` to the account's `used` and gives the
    /// rest back, exactly once. `used` lies between what was reported and what was drawn.
    ///
    /// Works on an open lease (a clean close) and on a reclaimed one (the host came back after
    /// its lease expired and settles from its own ledger: the in-doubt part is resolved
    /// exactly). Repeating a settle with the same usage changes nothing and says so
    /// (`applied: false`); with another usage it is [`Error::SettleConflict`].
    pub fn settle(&mut self, lease: LeaseId, used: u64) -> Result<Settlement> {
        let client = self.client()?;
        let result = (|| {
            let mut tx = client.transaction()?;
            let settlement = settle(&mut tx, lease, used)?;
            tx.commit()?;
            Ok(settlement)
        })();
        self.check(result)
    }

    /// Closes every open lease past its expiry on the server's clock: gives back what was
    /// never drawn and holds what was drawn but not reported in doubt. Safe to run from any
    /// number of hosts or operators at once; each lease is reclaimed once.
    pub fn reclaim_expired(&mut self) -> Result<Vec<Reclaimed>> {
        let client = self.client()?;
        let result = (|| {
            let mut tx = client.transaction()?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&RECLAIM_LOCK])?;
            let rows = tx.query(RECLAIM, &[])?;
            tx.commit()?;
            Ok(rows
                .iter()
                .map(|row| Reclaimed {
                    lease: LeaseId(row.get(0)),
                    key: row.get(1),
                    host: row.get(2),
                    returned: row.get::<_, i64>(3) as u64,
                    in_doubt: row.get::<_, i64>(4) as u64,
                })
                .collect())
        })();
        self.check(result)
    }

    /// An operator gives up on a reclaimed lease's in-doubt part: it moves to the account's
    /// `written_off` and is never leased again (it may have been granted, so returning it
    /// could over-grant). Returns the amount written off; a second write-off, or one of a
    /// lease that is not reclaimed, is [`Error::LeaseClosed`].
    pub fn write_off(&mut self, lease: LeaseId) -> Result<u64> {
        let client = self.client()?;
        let result = (|| {
            let mut tx = client.transaction()?;
            let locked = lock(&mut tx, lease)?;
            if locked.state != LeaseState::Reclaimed {
                return Err(Error::LeaseClosed {
                    lease,
                    state: locked.state,
                });
            }
            let amount = locked.in_doubt as i64;
            tx.execute(
                "UPDATE tollgate_key_account
                    SET in_doubt = in_doubt - $2, written_off = written_off + $2
                  WHERE id = $1",
                &[&locked.account, &amount],
            )?;
            tx.execute(
                "UPDATE tollgate_lease SET state = 'written_off', closed_at = now() WHERE id = $1",
                &[&lease.0],
            )?;
            tx.commit()?;
            Ok(locked.in_doubt)
        })();
        self.check(result)
    }

    /// One lease as the store has it.
    pub fn lease(&mut self, id: LeaseId) -> Result<LeaseRecord> {
        let client = self.client()?;
        let result = client
            .query_opt(
                "SELECT id, account, host, state, granted, drawn, reported, seq, in_doubt,
                        settled, taken_at, expires_at
                   FROM tollgate_lease WHERE id = $1",
                &[&id.0],
            )
            .map_err(Error::from)
            .and_then(|row| row.as_ref().map(record).ok_or(Error::LeaseNotFound(id)));
        self.check(result)
    }

    /// A lease its host held before it restarted, as the store has it, to renew or settle
    /// again. Its deadline is now: the host grants nothing more from its undrawn part until a
    /// renewal is acknowledged (what it drew before is its own to grant; the store holds it
    /// as drawn, and in doubt if the lease expired meanwhile).
    pub fn resume(&mut self, id: LeaseId) -> Result<Lease> {
        let record = self.lease(id)?;
        Ok(Lease {
            id: record.id,
            key: record.key,
            host: record.host,
            granted: record.granted,
            drawn: record.drawn,
            reported: record.reported,
            seq: record.seq,
            free_after_take: 0,
            expires_at: record.expires_at,
            deadline: Instant::now(),
            pending: None,
        })
    }

    /// Every lease, oldest first: the operator's view.
    pub fn list_leases(&mut self) -> Result<Vec<LeaseRecord>> {
        let client = self.client()?;
        let result = client
            .query(
                "SELECT id, account, host, state, granted, drawn, reported, seq, in_doubt,
                        settled, taken_at, expires_at
                   FROM tollgate_lease ORDER BY id",
                &[],
            )
            .map(|rows| rows.iter().map(record).collect())
            .map_err(Error::from);
        self.check(result)
    }
}

/// Applies a renewal in `tx`: the new expiry when applied, `None` when it repeats the last one.
fn renew(
    tx: &mut Transaction<'_>,
    lease: LeaseId,
    seq: u64,
    used: u64,
    drawn: u64,
) -> Result<Option<SystemTime>> {
    let locked = lock(tx, lease)?;
    if locked.state != LeaseState::Open {
        return Err(Error::LeaseClosed {
            lease,
            state: locked.state,
        });
    }
    if seq == locked.seq && seq > 0 && used == locked.reported && drawn == locked.drawn {
        return Ok(None);
    }
    if seq <= locked.seq {
        return Err(Error::StaleSequence {
            lease,
            seq,
            current: locked.seq,
        });
    }
    if seq > locked.seq + 1 {
        return Err(Error::OutOfOrder {
            lease,
            seq,
            expected: locked.seq + 1,
        });
    }
    if locked.expired {
        return Err(Error::LeaseExpired(lease));
    }
    let seq = error::amount("renewal sequence", seq, true)?;
    within(lease, "drawn", drawn, locked.drawn, locked.granted)?;
    let max_used = if locked.kind == AccountKind::Seats {
        0
    } else {
        drawn
    };
    within(lease, "used", used, locked.reported, max_used)?;
    let row = tx.query_one(
        "UPDATE tollgate_lease
            SET seq = $2, reported = $3, drawn = $4,
                expires_at = now() + ttl_ms * interval '1 millisecond'
          WHERE id = $1
      RETURNING expires_at",
        &[&lease.0, &seq, &(used as i64), &(drawn as i64)],
    )?;
    let newly_used = (used - locked.reported) as i64;
    if newly_used > 0 {
        tx.execute(
            "UPDATE tollgate_key_account SET leased = leased - $2, used = used + $2 WHERE id = $1",
            &[&locked.account, &newly_used],
        )?;
    }
    Ok(Some(row.get(0)))
}

/// Applies a settle in `tx`.
fn settle(tx: &mut Transaction<'_>, lease: LeaseId, used: u64) -> Result<Settlement> {
    let locked = lock(tx, lease)?;
    match locked.state {
        LeaseState::Settled => {
            let settled = locked.settled.unwrap_or_default();
            if settled != used {
                return Err(Error::SettleConflict {
                    lease,
                    settled,
                    asked: used,
                });
            }
            return Ok(Settlement {
                applied: false,
                used,
                returned: 0,
            });
        }
        LeaseState::WrittenOff => {
            return Err(Error::LeaseClosed {
                lease,
                state: locked.state,
            })
        }
        LeaseState::Open | LeaseState::Reclaimed => {}
    }
    let max_used = if locked.kind == AccountKind::Seats {
        0
    } else {
        locked.drawn
    };
    within(lease, "used", used, locked.reported, max_used)?;
    let newly_used = used - locked.reported;
    // An open lease still holds granted - reported in `leased`; a reclaimed one holds only its
    // in-doubt part, in `in_doubt`.
    let (from_leased, from_in_doubt) = if locked.state == LeaseState::Open {
        (locked.granted - locked.reported, 0)
    } else {
        (0, locked.in_doubt)
    };
    tx.execute(
        "UPDATE tollgate_key_account
            SET leased = leased - $2, in_doubt = in_doubt - $3, used = used + $4
          WHERE id = $1",
        &[
            &locked.account,
            &(from_leased as i64),
            &(from_in_doubt as i64),
            &(newly_used as i64),
        ],
    )?;
    tx.execute(
        "UPDATE tollgate_lease
            SET state = 'settled', settled = $2, in_doubt = 0, closed_at = now()
          WHERE id = $1",
        &[&lease.0, &(used as i64)],
    )?;
    Ok(Settlement {
        applied: true,
        used,
        returned: from_leased + from_in_doubt - newly_used,
    })
}
