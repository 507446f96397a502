//! Key accounts: one row per key, the amount every host of the fleet shares.
//!
//! An account's amount is split, at every instant, into parts that never overlap:
//! `leased` (held by open leases and not yet reported used), `used` (reported by hosts),
//! `in_doubt` (drawn by a host whose lease expired before it reported), `written_off` (in-doubt
//! parts an operator gave up on) and the free rest. The server's CHECK constraint
//! `tollgate_no_over_grant` refuses any statement after which their sum exceeds the amount.

use postgres::Row;

use crate::error::{self, Error, Result};
use crate::Store;

/// What an account's amount counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountKind {
    /// Cumulative bytes (`data_volume` keys): hosts lease blocks and report what they used.
    Bytes,
    /// Concurrent seats (machines, cores, instances): a lease holds exactly one seat, and
    /// giving it back returns it whole.
    Seats,
}

impl AccountKind {
    /// The name stored in the `kind` column.
    pub fn as_str(self) -> &'static str {
        match self {
            AccountKind::Bytes => "bytes",
            AccountKind::Seats => "seats",
        }
    }

    fn parse(kind: &str) -> AccountKind {
        if kind == "seats" {
            AccountKind::Seats
        } else {
            AccountKind::Bytes
        }
    }
}

/// A key account as the store holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// The key's id.
    pub id: String,
    /// Bytes or seats.
    pub kind: AccountKind,
    /// The key's whole amount.
    pub amount: u64,
    /// Held by open leases and not yet reported used.
    pub leased: u64,
    /// Reported used by hosts (for seats, always 0: a seat is held, not spent).
    pub used: u64,
    /// Drawn by hosts whose leases expired before they reported it: perhaps granted.
    pub in_doubt: u64,
    /// In-doubt parts an operator wrote off: never leased again.
    pub written_off: u64,
}

impl Account {
    /// What is left to lease.
    pub fn free(&self) -> u64 {
        self.amount - self.leased - self.used - self.in_doubt - self.written_off
    }
}

const COLUMNS: &str = "id, kind, amount, leased, used, in_doubt, written_off";

fn account(row: &Row) -> Account {
    let n = |i: usize| row.get::<_, i64>(i) as u64;
    Account {
        id: row.get(0),
        kind: AccountKind::parse(row.get(1)),
        amount: n(2),
        leased: n(3),
        used: n(4),
        in_doubt: n(5),
        written_off: n(6),
    }
}

impl Store {
    /// Creates the account of a key, or returns it when it exists with the same kind and
    /// amount (so every host may create the keys it was given); another kind or amount is
    /// [`Error::AccountConflict`].
    pub fn create_account(&mut self, key: &str, kind: AccountKind, amount: u64) -> Result<Account> {
        error::name("key id", key)?;
        let amount = error::amount("account amount", amount, false)?;
        let client = self.client()?;
        let result = (|| {
            client.execute(
                "INSERT INTO tollgate_key_account (id, kind, amount) VALUES ($1, $2, $3)
                 ON CONFLICT (id) DO NOTHING",
                &[&key, &kind.as_str(), &amount],
            )?;
            let row = client.query_one(
                &format!("SELECT {COLUMNS} FROM tollgate_key_account WHERE id = $1"),
                &[&key],
            )?;
            let found = account(&row);
            if found.kind != kind || found.amount != amount as u64 {
                return Err(Error::AccountConflict {
                    key: key.to_owned(),
                });
            }
            Ok(found)
        })();
        self.check(result)
    }

    /// The account of a key.
    pub fn account(&mut self, key: &str) -> Result<Account> {
        let client = self.client()?;
        let result = client
            .query_opt(
                &format!("SELECT {COLUMNS} FROM tollgate_key_account WHERE id = $1"),
                &[&key],
            )
            .map_err(Error::from)
            .and_then(|row| {
                row.map(|row| account(&row))
                    .ok_or_else(|| Error::AccountNotFound {
                        key: key.to_owned(),
                    })
            });
        self.check(result)
    }

    /// Claims, for the fleet, the thresholds of `percents` (each below 32, say 80, 90, 100: bit
    /// `i` of the account's `reported` for `percents[i]`) that the account's committed part
    /// (`leased + used + in_doubt + written_off`) reached and no host claimed before; returns
    /// them. One transaction with the account row locked, so each is claimed exactly once
    /// across the fleet. A seat account is [`Error::WrongKind`].
    pub fn claim_thresholds(&mut self, key: &str, percents: &[u8]) -> Result<Vec<u8>> {
        let client = self.client()?;
        let result = (|| {
            let mut tx = client.transaction()?;
            let row = tx
                .query_opt(
                    "SELECT amount, leased + used + in_doubt + written_off, reported, kind
                       FROM tollgate_key_account WHERE id = $1 FOR UPDATE",
                    &[&key],
                )?
                .ok_or_else(|| Error::AccountNotFound {
                    key: key.to_owned(),
                })?;
            if AccountKind::parse(row.get(3)) != AccountKind::Bytes {
                return Err(Error::WrongKind {
                    key: key.to_owned(),
                    expected: AccountKind::Bytes.as_str(),
                });
            }
            let (amount, committed) = (row.get::<_, i64>(0) as u128, row.get::<_, i64>(1) as u128);
            let reported: i32 = row.get(2);
            let claimed: Vec<(usize, u8)> = percents
                .iter()
                .enumerate()
                .filter(|&(i, &p)| {
                    reported & (1 << i) == 0 && committed * 100 >= amount * u128::from(p)
                })
                .map(|(i, &p)| (i, p))
                .collect();
            if !claimed.is_empty() {
                let bits = claimed.iter().fold(reported, |b, &(i, _)| b | 1 << i);
                tx.execute(
                    "UPDATE tollgate_key_account SET reported = $2 WHERE id = $1",
                    &[&key, &bits],
                )?;
            }
            tx.commit()?;
            Ok(claimed.into_iter().map(|(_, p)| p).collect())
        })();
        self.check(result)
    }

    /// Every account, by key id.
    pub fn accounts(&mut self) -> Result<Vec<Account>> {
        let client = self.client()?;
        let result = client
            .query(
                &format!("SELECT {COLUMNS} FROM tollgate_key_account ORDER BY id"),
                &[],
            )
            .map(|rows| rows.iter().map(account).collect())
            .map_err(Error::from);
        self.check(result)
    }
}
