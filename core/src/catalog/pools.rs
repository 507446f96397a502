//! The catalog tables of groups, companies, purchases, pool licenses and instances.

use rusqlite::{params, OptionalExtension, Transaction};
use time::OffsetDateTime;

use super::{Catalog, ProjectRow};
use crate::error::{Corruption, Error, Result};
use crate::pool::{InstanceOs, LicenseType, PaymentMode, PoolKind, Purchase};

/// A purchase as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PurchaseRow {
    pub id: i64,
    pub license_type: LicenseType,
    pub kind: PoolKind,
    pub expires_at: Option<OffsetDateTime>,
    pub auto_renew: bool,
    pub payment_mode: PaymentMode,
    pub premium_support: bool,
    pub onboarding: bool,
}

impl PurchaseRow {
    /// Whether licenses of this purchase are valid at `at` (Unix seconds).
    pub(crate) fn valid_at(&self, at: i64) -> bool {
        self.expires_at.is_none_or(|e| e.unix_timestamp() > at)
    }
}

/// A pool license as stored, with its purchase, company and instance.
#[derive(Debug, Clone)]
pub(crate) struct LicenseRow {
    pub id: String,
    pub purchase: PurchaseRow,
    pub company: Option<String>,
    /// The instance (project) it is assigned to.
    pub instance: Option<ProjectRow>,
    /// That instance's company.
    pub instance_company: Option<String>,
    /// The key id its assignment installed in the instance's pair.
    pub key_id: Option<String>,
}

/// An instance row: its OS and company.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct InstanceRow {
    pub os: InstanceOs,
    pub company: Option<String>,
}

fn parse<T>(what: &str, text: String, parse: impl Fn(&str) -> Option<T>) -> rusqlite::Result<T> {
    parse(&text).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            0,
            rusqlite::types::Type::Text,
            format!("unknown {what} {text:?}").into(),
        )
    })
}

fn timestamp(text: Option<String>) -> rusqlite::Result<Option<OffsetDateTime>> {
    text.map(|t| {
        OffsetDateTime::parse(&t, &time::format_description::well_known::Rfc3339).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, e.into())
        })
    })
    .transpose()
}

impl Catalog {
    /// The payment mode fixed by the first purchase, if any purchase was made.
    pub(crate) fn payment_mode(&self) -> Result<Option<PaymentMode>> {
        self.conn
            .query_row(
                "SELECT payment_mode FROM purchases ORDER BY id LIMIT 1",
                [],
                |r| parse("payment mode", r.get(0)?, PaymentMode::parse),
            )
            .optional()
            .map_err(Error::store("read payment mode"))
    }

    /// The id of company `name`, creating it when `create` is set.
    pub(crate) fn company_id(tx: &Transaction<'_>, name: &str) -> Result<i64> {
        tx.execute("INSERT OR IGNORE INTO companies (name) VALUES (?1)", [name])
            .map_err(Error::store("insert company"))?;
        tx.query_row("SELECT id FROM companies WHERE name = ?1", [name], |r| {
            r.get(0)
        })
        .map_err(Error::store("look up company"))
    }

    /// Every company name, sorted.
    pub(crate) fn companies(&self) -> Result<Vec<String>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT name FROM companies ORDER BY name")
            .map_err(Error::store("list companies"))?;
        let rows = stmt
            .query_map([], |r| r.get(0))
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<String>>>());
        rows.map_err(Error::store("list companies"))
    }

    /// Records a purchase and its licenses, as purchase `number` (the next one when `None`;
    /// `InvalidArgument` when this state holds it already); returns the license ids.
    pub(crate) fn insert_purchase(
        tx: &Transaction<'_>,
        purchase: &Purchase,
        number: Option<i64>,
        at: &str,
    ) -> Result<Vec<String>> {
        let company = purchase
            .company
            .as_deref()
            .map(|c| Catalog::company_id(tx, c))
            .transpose()?;
        let store = || Error::store("insert purchase");
        let inserted = tx
            .execute(
                "INSERT INTO purchases (license_type, kind, quantity, company_id, expires_at,
                 auto_renew, payment_mode, premium_support, onboarding, bought_at, id)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11) ON CONFLICT DO NOTHING",
                params![
                    purchase.license_type.as_str(),
                    purchase.kind.as_str(),
                    purchase.quantity,
                    company,
                    purchase.expires_at.map(crate::key::rfc3339),
                    purchase.auto_renew,
                    purchase.payment_mode.as_str(),
                    purchase.premium_support,
                    purchase.onboarding,
                    at,
                    number,
                ],
            )
            .map_err(store())?;
        if inserted == 0 {
            return Err(Error::invalid(
                "purchase number",
                format!("purchase {} exists in this state", number.unwrap_or(0)),
            ));
        }
        let id = tx.last_insert_rowid();
        let mut ids = Vec::with_capacity(purchase.quantity as usize);
        let mut stmt = tx
            .prepare_cached("INSERT INTO licenses (id, purchase_id) VALUES (?1, ?2)")
            .map_err(store())?;
        for n in 1..=purchase.quantity {
            let license = format!("{}-{id}-{n}", purchase.license_type.as_str());
            stmt.execute(params![license, id]).map_err(store())?;
            ids.push(license);
        }
        Ok(ids)
    }

    /// Every pool license with its purchase, company and instance, by purchase then number.
    pub(crate) fn licenses(&self) -> Result<Vec<LicenseRow>> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT l.id, p.id, p.license_type, p.kind, p.expires_at, p.auto_renew,
                        p.payment_mode, p.premium_support, p.onboarding, c.name,
                        i.id, i.name, l.key_id, ic.name
                 FROM licenses l
                 JOIN purchases p ON p.id = l.purchase_id
                 LEFT JOIN companies c ON c.id = p.company_id
                 LEFT JOIN projects i ON i.id = l.instance_id
                 LEFT JOIN instances ii ON ii.project_id = l.instance_id
                 LEFT JOIN companies ic ON ic.id = ii.company_id
                 ORDER BY p.id, l.rowid",
            )
            .map_err(Error::store("list licenses"))?;
        let rows = stmt
            .query_map([], |r| {
                let instance = match r.get::<_, Option<i64>>(10)? {
                    Some(id) => Some(ProjectRow {
                        id,
                        name: r.get(11)?,
                    }),
                    None => None,
                };
                Ok(LicenseRow {
                    id: r.get(0)?,
                    purchase: PurchaseRow {
                        id: r.get(1)?,
                        license_type: parse("license type", r.get(2)?, LicenseType::parse)?,
                        kind: parse("license kind", r.get(3)?, PoolKind::parse)?,
                        expires_at: timestamp(r.get(4)?)?,
                        auto_renew: r.get(5)?,
                        payment_mode: parse("payment mode", r.get(6)?, PaymentMode::parse)?,
                        premium_support: r.get(7)?,
                        onboarding: r.get(8)?,
                    },
                    company: r.get(9)?,
                    instance,
                    key_id: r.get(12)?,
                    instance_company: r.get(13)?,
                })
            })
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>());
        rows.map_err(|e| {
            self.corrupt(Corruption::UnreadableLicenseTable {
                error: e.to_string(),
            })
        })
    }

    /// Registers project `project` as an instance.
    pub(crate) fn insert_instance(
        tx: &Transaction<'_>,
        project: i64,
        os: InstanceOs,
        company: Option<&str>,
    ) -> Result<()> {
        let company = company.map(|c| Catalog::company_id(tx, c)).transpose()?;
        tx.execute(
            "INSERT INTO instances (project_id, os, company_id) VALUES (?1, ?2, ?3)",
            params![project, os.as_str(), company],
        )
        .map_err(Error::store("insert instance"))?;
        Ok(())
    }

    /// The instance row of project `project`, if it is an instance.
    pub(crate) fn instance(&self, project: i64) -> Result<Option<InstanceRow>> {
        self.conn
            .query_row(
                "SELECT i.os, c.name FROM instances i LEFT JOIN companies c ON c.id = i.company_id
                 WHERE i.project_id = ?1",
                [project],
                |r| {
                    Ok(InstanceRow {
                        os: parse("OS", r.get(0)?, InstanceOs::parse)?,
                        company: r.get(1)?,
                    })
                },
            )
            .optional()
            .map_err(Error::store("look up instance"))
    }

    /// Every instance with its row, by name.
    pub(crate) fn instances(&self) -> Result<Vec<(ProjectRow, InstanceRow)>> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT p.id, p.name, i.os, c.name FROM instances i
                 JOIN projects p ON p.id = i.project_id
                 LEFT JOIN companies c ON c.id = i.company_id ORDER BY p.name",
            )
            .map_err(Error::store("list instances"))?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    ProjectRow {
                        id: r.get(0)?,
                        name: r.get(1)?,
                    },
                    InstanceRow {
                        os: parse("OS", r.get(2)?, InstanceOs::parse)?,
                        company: r.get(3)?,
                    },
                ))
            })
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>());
        rows.map_err(Error::store("list instances"))
    }

    /// Marks `license` as assigned to `instance` through key `key_id`. The table's unique
    /// instance column and the `instance_id IS NULL` guard make a double assignment fail here
    /// even if a caller got the admin protocol wrong.
    pub(crate) fn assign_license(
        tx: &Transaction<'_>,
        license: &str,
        instance: i64,
        key_id: &str,
        at: &str,
    ) -> Result<()> {
        let changed = tx
            .execute(
                "UPDATE licenses SET instance_id = ?2, key_id = ?3, assigned_at = ?4
                 WHERE id = ?1 AND instance_id IS NULL",
                params![license, instance, key_id, at],
            )
            .map_err(Error::store("assign license"))?;
        if changed != 1 {
            return Err(Error::Store {
                context: format!("assign license {license}"),
                source: crate::error::StoreError::changed_rows(changed),
            });
        }
        Ok(())
    }

    /// Returns `license` to its pool.
    pub(crate) fn unassign_license(tx: &Transaction<'_>, license: &str) -> Result<()> {
        tx.execute(
            "UPDATE licenses SET instance_id = NULL, key_id = NULL, assigned_at = NULL WHERE id = ?1",
            [license],
        )
        .map_err(Error::store("unassign license"))?;
        Ok(())
    }

    /// Records an assignment of `license` as serial `serial` (the next one when `None`;
    /// `InvalidArgument` when this state holds it already) and returns the serial: each
    /// assignment installs a key of its own.
    pub(crate) fn number_assignment(
        tx: &Transaction<'_>,
        license: &str,
        serial: Option<i64>,
    ) -> Result<i64> {
        let inserted = tx
            .execute(
                "INSERT INTO assignments (license_id, serial) VALUES (?1, ?2)
                 ON CONFLICT DO NOTHING",
                params![license, serial],
            )
            .map_err(Error::store("number assignment"))?;
        if inserted == 0 {
            return Err(Error::invalid(
                "assignment serial",
                format!("assignment {} exists in this state", serial.unwrap_or(0)),
            ));
        }
        Ok(tx.last_insert_rowid())
    }

    /// Whether key `id` is live (in a slot) in one of `project`'s pairs.
    pub(crate) fn key_live_in(&self, project: i64, id: &str) -> Result<bool> {
        self.conn
            .query_row(
                "SELECT 1 FROM keys k JOIN pairs r ON r.record = k.record
                 WHERE r.project_id = ?1 AND k.id = ?2 AND k.state IN ('live', 'pending')",
                params![project, id],
                |_| Ok(()),
            )
            .optional()
            .map(|found| found.is_some())
            .map_err(Error::store("look up assigned key"))
    }

    /// Adds projects to group `name` (a project already in it stays once).
    pub(crate) fn join_group(tx: &Transaction<'_>, name: &str, project: i64) -> Result<bool> {
        tx.execute(
            "INSERT OR IGNORE INTO groups (name, project_id) VALUES (?1, ?2)",
            params![name, project],
        )
        .map(|n| n == 1)
        .map_err(Error::store("join group"))
    }

    /// Every group with its projects, by name.
    pub(crate) fn groups(&self) -> Result<Vec<(String, ProjectRow)>> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT g.name, p.id, p.name FROM groups g JOIN projects p ON p.id = g.project_id
                 ORDER BY g.name, p.name",
            )
            .map_err(Error::store("list groups"))?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get(0)?,
                    ProjectRow {
                        id: r.get(1)?,
                        name: r.get(2)?,
                    },
                ))
            })
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>());
        rows.map_err(Error::store("list groups"))
    }
}
