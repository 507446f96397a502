//! Pools, instances and assignment (rules R22–R26 in docs/rules.md), and the lock-free instance
//! check.
//!
//! An instance is a project with an OS and an optional company. Assigning installs the pool
//! license as a `per_instance` key in the instance's pair, so the check a backup job makes is a
//! read of that pair in the shared state file: the same record, events and audit as every key.
//! Each assignment installs a key of its own, `<license>#<serial>`, so a license that goes back
//! to its pool and out again is never confused with its earlier installation.
//!
//! Crash safety: the license row is marked assigned before the key is published, and a key is
//! removed before its license row is cleared. A crash in between leaves a license marked
//! assigned whose key is not in a slot; [`repair_assignments`] returns it to its pool at the
//! next open. A license is therefore never in two instances' slots, and never lost.

use super::mapped_record;
use crate::mapped::Mapped;
use std::sync::Arc;

use time::OffsetDateTime;

use super::{
    key_of, metering_of, now_text, owner_tag, project_row, Admin, Engine, Inner, ProjectRow,
    Vetted, When,
};
use crate::catalog::{Catalog, LicenseRow};
use crate::clock::Clock;
use crate::error::{Corruption, Error, Result};
use crate::event::EventKind;
use crate::key::{check_name, Delivery, Edition, Key, KeyKind, LicenseClass, Scheme};
use crate::pool::{
    Assignment, Instance, InstanceOs, LicenseFilter, LicenseType, Need, NeedReason, PaymentMode,
    PoolKind, PoolLicense, Purchase, Shortfall, TypeListing, TypeShortfall, NOT_PURCHASED,
};
use crate::refusal::Refusal;
use crate::slot::{AccountRecord, Accounts, Metering, NextGen, PairEvent, PairEvents, PairRecord};

const DAY: i64 = 86_400;

impl Engine {
    /// Buys licenses into the global pool or a company's pool and returns their ids. The first
    /// purchase fixes the payment mode; a later purchase with the other mode is refused with
    /// `PaymentModeMismatch` and changes nothing. A fleet engine buys them through the fleet
    /// store's admin log, on every host (see `engine::fleet_admin`).
    pub fn buy_licenses(&self, purchase: &Purchase) -> Result<Vec<String>> {
        purchase.validate(self.now())?;
        let admin = self.admin()?;
        #[cfg(not(loom))]
        if self.inner.in_fleet() {
            return self.fleet_buy(&admin, purchase);
        }
        self.buy_locked(&admin, purchase, None, &now_text())
    }

    /// `PaymentModeMismatch` when `purchase` has the other mode than the first purchase's.
    pub(super) fn check_payment_mode(&self, admin: &Admin, purchase: &Purchase) -> Result<()> {
        match admin.catalog.payment_mode()? {
            Some(chosen) if chosen != purchase.payment_mode => Err(Error::PaymentModeMismatch {
                chosen: chosen.as_str(),
                requested: purchase.payment_mode.as_str(),
            }),
            _ => Ok(()),
        }
    }

    /// [`Engine::buy_licenses`] for a caller that holds the admin lock, `purchase` validated:
    /// bought `at`, as purchase `number` (the catalog's next one when `None`).
    pub(super) fn buy_locked(
        &self,
        admin: &Admin,
        purchase: &Purchase,
        number: Option<i64>,
        at: &str,
    ) -> Result<Vec<String>> {
        self.check_payment_mode(admin, purchase)?;
        let tx = admin.catalog.begin()?;
        let ids = Catalog::insert_purchase(&tx, purchase, number, at)?;
        let event = EventKind::LicensesPurchased {
            license_type: purchase.license_type,
            license_kind: purchase.kind,
            quantity: purchase.quantity,
            company: purchase.company.clone(),
            first: ids.first().cloned().unwrap_or_default(),
            last: ids.last().cloned().unwrap_or_default(),
        };
        let events = Catalog::append_events_in(&tx, &[(String::new(), event)])?;
        tx.commit().map_err(Error::store("commit purchase"))?;
        self.inner.subscribers.broadcast(&events);
        Ok(ids)
    }

    /// The payment mode the first purchase fixed, if any.
    pub fn payment_mode(&self) -> Result<Option<PaymentMode>> {
        self.inner.admin.lock().catalog.payment_mode()
    }

    /// Every company named by a purchase or an instance, sorted.
    pub fn companies(&self) -> Result<Vec<String>> {
        self.inner.admin.lock().catalog.companies()
    }

    /// Registers an instance: a new project licensed per instance, with its OS and company. A
    /// fleet engine registers it through the fleet store's admin log, on every host (see
    /// `engine::fleet_admin`).
    pub fn add_instance(&self, name: &str, os: InstanceOs, company: Option<&str>) -> Result<()> {
        check_name("instance name", name)?;
        if let Some(company) = company {
            check_name("company name", company)?;
        }
        let admin = self.admin()?;
        #[cfg(not(loom))]
        if self.inner.in_fleet() {
            return self.fleet_add_instance(&admin, name, os, company);
        }
        self.add_instance_locked(&admin, name, os, company, &now_text())
    }

    /// [`Engine::add_instance`] for a caller that holds the admin lock, its names checked;
    /// created `at`.
    pub(super) fn add_instance_locked(
        &self,
        admin: &Admin,
        name: &str,
        os: InstanceOs,
        company: Option<&str>,
        at: &str,
    ) -> Result<()> {
        if admin.catalog.project(name)?.is_some() {
            return Err(Error::ProjectExists { name: name.into() });
        }
        let tx = admin.catalog.begin()?;
        let id = Catalog::insert_project(&tx, name, at)?;
        let record = self.allocate_pair(&tx, id, LicenseClass::Instance)?;
        Catalog::insert_instance(&tx, id, os, company)?;
        let event = EventKind::InstanceAdded {
            os,
            company: company.map(str::to_owned),
        };
        let events = Catalog::append_events_in(&tx, &[(name.to_owned(), event)])?;
        tx.commit().map_err(Error::store("commit new instance"))?;
        self.inner
            .state
            .record(record)
            .claim(owner_tag(id), metering_of(LicenseClass::Instance));
        self.inner.subscribers.broadcast(&events);
        Ok(())
    }

    /// Every instance with its OS, company and license, by name: the pool license assigned to
    /// it, else the vendor-signed per-instance key in its pair. The list reads the pair that
    /// [`Engine::check_instance`] reads, so the two agree.
    pub fn instances(&self) -> Result<Vec<Instance>> {
        let admin = self.inner.admin.lock();
        let licenses = admin.catalog.licenses()?;
        admin
            .catalog
            .instances()?
            .into_iter()
            .map(|(project, row)| {
                let license = match license_of(&licenses, project.id) {
                    Some(l) => Some(l.id.clone()),
                    None => self
                        .instance_keys(&admin.catalog, &project)?
                        .into_iter()
                        .next()
                        .map(|k| k.id),
                };
                Ok(Instance {
                    license,
                    name: project.name,
                    os: row.os,
                    company: row.company,
                })
            })
            .collect()
    }

    /// The keys in an instance's pair, Active first then Reserved: what its check reads. A
    /// pool assignment's key is one of them; any other is a vendor-signed per-instance key.
    fn instance_keys(&self, catalog: &Catalog, project: &ProjectRow) -> Result<Vec<Key>> {
        let Some(pair) = catalog.pair(project.id, LicenseClass::Instance)? else {
            return Ok(Vec::new());
        };
        let state = self.inner.state.record(pair.record).state();
        let keys = catalog.keys_of(pair.record)?;
        [state.active, state.reserve]
            .into_iter()
            .flatten()
            .map(|live| key_of(&keys, live.key).cloned())
            .collect()
    }

    /// Looks an instance up once and returns the handle a backup job checks on its hot path.
    pub fn instance(&self, name: &str) -> Result<InstanceHandle> {
        self.inner.state.intact()?;
        let admin = self.inner.admin.lock();
        let (project, _) = instance_row(&admin.catalog, name)?;
        let pair = admin
            .catalog
            .pair(project.id, LicenseClass::Instance)?
            .ok_or_else(|| {
                admin.catalog.corrupt(Corruption::NoInstancePair {
                    instance: name.to_owned(),
                })
            })?;
        Ok(InstanceHandle {
            record: mapped_record(&self.inner.state, pair.record),
            index: pair.record,
            clock: self.inner.clock.clone(),
            name: Arc::from(name),
            inner: Arc::clone(&self.inner),
        })
    }

    /// Assigns a valid, unassigned license to `instance` (rule R24 in docs/rules.md): from the
    /// company's pool first, then the global pool; only types that fit the OS (macOS and Linux need
    /// desktop or server); with `license_type`, only that type. Among candidates it takes the
    /// narrowest type first (workstation, desktop, server), commercial before trial, and the
    /// soonest expiry first. An instance whose license expired gets a new one and the old one goes
    /// back.
    ///
    /// A fleet engine assigns through the fleet store's admin log: every host applies the
    /// assignments in the log's order and picks by the same rules from the same pool, so a
    /// license is assigned once fleet-wide; of two hosts racing for the last one, the later
    /// change is refused `NoLicenseAvailable` on every host (see `engine::fleet_admin`).
    pub fn assign(&self, instance: &str, license_type: Option<LicenseType>) -> Result<Assignment> {
        let now = self.now();
        let admin = self.admin()?;
        #[cfg(not(loom))]
        if self.inner.in_fleet() {
            return self.fleet_assign(&admin, instance, license_type, now);
        }
        let when = When {
            now,
            at: now_text(),
        };
        self.assign_locked(&admin, instance, license_type, &when, None)
    }

    /// What [`Engine::assign`] would do at `now`, writing nothing: the instance, the license it
    /// holds (expired, else refused `AlreadyAssigned`) and the license it would get, from
    /// `licenses` (the catalog's).
    pub(super) fn assignment_plan<'a>(
        &self,
        admin: &Admin,
        instance: &str,
        license_type: Option<LicenseType>,
        now: i64,
        licenses: &'a [LicenseRow],
    ) -> Result<(ProjectRow, Option<&'a LicenseRow>, &'a LicenseRow)> {
        let (project, row) = instance_row(&admin.catalog, instance)?;
        if let Some(t) = license_type {
            if !t.fits(row.os) {
                return Err(Error::LicenseTypeUnfit {
                    license_type: t.as_str(),
                    os: row.os.as_str(),
                });
            }
        }
        let held = license_of(licenses, project.id);
        if let Some(held) = held.filter(|l| l.purchase.valid_at(now)) {
            return Err(Error::AlreadyAssigned {
                instance: instance.to_owned(),
                license: held.id.clone(),
            });
        }
        let types: Vec<LicenseType> = match license_type {
            Some(t) => vec![t],
            None => row.os.preferred_types().to_vec(),
        };
        let Some(pick) = pick_license(licenses, &types, row.company.as_deref(), now, None) else {
            let names: Vec<&str> = types.iter().map(|t| t.as_str()).collect();
            let pools = match &row.company {
                Some(c) => format!("company \"{c}\"'s pool or the global pool"),
                None => "the global pool".to_owned(),
            };
            return Err(Error::NoLicenseAvailable {
                instance: instance.to_owned(),
                detail: format!(
                    "no valid, unassigned {} license in {pools}",
                    names.join(" or ")
                ),
            });
        };
        Ok((project, held, pick))
    }

    /// [`Engine::assign`] for a caller that holds the admin lock, at `when`; the key installed
    /// gets assignment serial `serial` (the catalog's next one when `None`).
    pub(super) fn assign_locked(
        &self,
        admin: &Admin,
        instance: &str,
        license_type: Option<LicenseType>,
        when: &When,
        serial: Option<i64>,
    ) -> Result<Assignment> {
        let licenses = admin.catalog.licenses()?;
        let (project, held, pick) =
            self.assignment_plan(admin, instance, license_type, when.now, &licenses)?;
        let replaced_expired = match held {
            Some(old) => {
                self.remove_assignment(admin, &project, old, &when.at)?;
                Some(old.id.clone())
            }
            None => None,
        };
        let tx = admin.catalog.begin()?;
        let serial = Catalog::number_assignment(&tx, &pick.id, serial)?;
        let key = assignment_key(pick, serial);
        Catalog::assign_license(&tx, &pick.id, project.id, &key.id, &when.at)?;
        tx.commit().map_err(Error::store("commit assignment"))?;
        // The engine's own key, not a caller's: see `Vetted::issued_by_engine` for why the
        // trust check of offline keys does not apply to it.
        let key = Vetted::issued_by_engine(key);
        if let Err(refusal) = self.admit_locked(admin, &project.name, key, false, when) {
            let tx = admin.catalog.begin()?;
            Catalog::unassign_license(&tx, &pick.id)?;
            tx.commit().map_err(Error::store("undo assignment"))?;
            return Err(refusal);
        }
        let event = EventKind::LicenseAssigned {
            license: pick.id.clone(),
            license_type: pick.purchase.license_type,
        };
        let tx = admin.catalog.begin()?;
        let events = Catalog::append_events_in(&tx, &[(project.name.clone(), event)])?;
        tx.commit()
            .map_err(Error::store("commit assignment event"))?;
        self.inner.subscribers.broadcast(&events);
        Ok(Assignment {
            instance: project.name,
            license: pick.id.clone(),
            license_type: pick.purchase.license_type,
            from_company_pool: pick.company.is_some(),
            replaced_expired,
        })
    }

    /// Takes the pool license off `instance` and returns it to its pool; returns its id. A
    /// fleet engine takes it off through the fleet store's admin log, on every host (see
    /// `engine::fleet_admin`).
    pub fn unassign(&self, instance: &str) -> Result<String> {
        let admin = self.admin()?;
        #[cfg(not(loom))]
        if self.inner.in_fleet() {
            return self.fleet_unassign(&admin, instance);
        }
        self.unassign_locked(&admin, instance, &now_text())
    }

    /// The instance `instance` and the pool license it holds, or `NotAssigned`.
    pub(super) fn assigned_license(
        &self,
        admin: &Admin,
        instance: &str,
    ) -> Result<(ProjectRow, LicenseRow)> {
        let (project, _) = instance_row(&admin.catalog, instance)?;
        let licenses = admin.catalog.licenses()?;
        let held = license_of(&licenses, project.id).ok_or_else(|| Error::NotAssigned {
            instance: instance.to_owned(),
        })?;
        Ok((project, held.clone()))
    }

    /// [`Engine::unassign`] for a caller that holds the admin lock; the key ends `at`.
    pub(super) fn unassign_locked(
        &self,
        admin: &Admin,
        instance: &str,
        at: &str,
    ) -> Result<String> {
        let (project, held) = self.assigned_license(admin, instance)?;
        self.remove_assignment(admin, &project, &held, at)?;
        Ok(held.id)
    }

    /// Removes an assigned license's key from the instance's pair, then clears the license row.
    fn remove_assignment(
        &self,
        admin: &Admin,
        project: &ProjectRow,
        license: &LicenseRow,
        at: &str,
    ) -> Result<()> {
        let pair = admin.catalog.pair(project.id, LicenseClass::Instance)?;
        let mut events = vec![(
            project.name.clone(),
            EventKind::LicenseUnassigned {
                license: license.id.clone(),
            },
        )];
        if let (Some(pair), Some(key_id)) = (pair, license.key_id.as_deref()) {
            super::sync_pair(&self.inner.state, &admin.catalog, project, pair)?;
            let keys = admin.catalog.keys_of(pair.record)?;
            let record = self.inner.state.record(pair.record);
            let mut removed = None;
            record.publish::<Error>(&*self.inner.state, |state| {
                removed = None;
                let mut next = NextGen {
                    active: state.active,
                    reserve: state.reserve,
                    retired: None,
                    switches: state.switches,
                };
                if let Some(active) = state.active {
                    if key_of(&keys, active.key)?.id == key_id {
                        removed = Some(active.key);
                        next.active = state.reserve;
                        next.reserve = None;
                    }
                }
                if let Some(reserve) = state.reserve {
                    if key_of(&keys, reserve.key)?.id == key_id {
                        removed = Some(reserve.key);
                        next.reserve = None;
                    }
                }
                Ok(next)
            })?;
            let removed: Vec<u32> = removed.into_iter().collect();
            self.finish_change(admin, pair.record, &removed, &events, at)?;
            events.clear();
        }
        let tx = admin.catalog.begin()?;
        Catalog::unassign_license(&tx, &license.id)?;
        let events = Catalog::append_events_in(&tx, &events)?;
        tx.commit().map_err(Error::store("commit unassignment"))?;
        self.inner.subscribers.broadcast(&events);
        Ok(())
    }

    /// Whether `instance` may work now: `Ok`, or `NoActiveKey` (no license), `Expired`. The
    /// cold form of [`InstanceHandle::check`].
    pub fn check_instance(&self, instance: &str) -> Result<()> {
        self.instance(instance)?.check().map_err(Error::from)
    }

    /// The pool licenses that pass `filter`, grouped by type in listing order with counts. A
    /// type never purchased carries the [`NOT_PURCHASED`] status of rule R26; with a commercial or
    /// trial filter, a type never purchased as that kind does ("If you have not already
    /// requested a specific trial or commercial license type").
    pub fn list_licenses(&self, filter: &LicenseFilter) -> Result<Vec<TypeListing>> {
        let now = self.now();
        let licenses = self.inner.admin.lock().catalog.licenses()?;
        let types: Vec<LicenseType> = match filter.license_type {
            Some(t) => vec![t],
            None => LicenseType::ALL.to_vec(),
        };
        Ok(types
            .into_iter()
            .map(|license_type| {
                let of_type: Vec<&LicenseRow> = licenses
                    .iter()
                    .filter(|l| l.purchase.license_type == license_type)
                    .collect();
                let shown: Vec<PoolLicense> = of_type
                    .iter()
                    .map(|l| pool_license(l, now))
                    .filter(|l| filter.matches(l))
                    .collect();
                let bought = of_type
                    .iter()
                    .any(|l| filter.kind.is_none_or(|k| k == l.purchase.kind));
                TypeListing {
                    license_type,
                    count: shown.len(),
                    used: shown.iter().filter(|l| l.assigned_to.is_some()).count(),
                    licenses: shown,
                    message: (!bought).then(|| NOT_PURCHASED.to_owned()),
                }
            })
            .collect())
    }

    /// How many licenses of each type to buy so that every instance is licensed for the next
    /// `days` days: instances with no valid license (whose check fails), plus instances whose
    /// license expires within `days` without auto-renew, less what unassigned licenses valid beyond the horizon already
    /// cover (matched as assignment would: company pool first, fitting types only).
    pub fn shortfall(&self, days: u32) -> Result<Shortfall> {
        let now = self.now();
        let horizon = now.saturating_add(i64::from(days) * DAY);
        let admin = self.inner.admin.lock();
        let licenses = admin.catalog.licenses()?;
        let mut taken = Vec::new();
        let mut needs = Vec::new();
        for (project, row) in admin.catalog.instances()? {
            let held = license_of(&licenses, project.id);
            // Judged by the keys the instance's check reads (a pool license's key carries its
            // expiry and auto-renewal), so a need here is a check that fails or will fail.
            let keys = self.instance_keys(&admin.catalog, &project)?;
            let valid_at = |at| keys.iter().any(|k| !k.is_expired_at(at));
            let reason = if !valid_at(now) {
                NeedReason::Unlicensed
            } else if !valid_at(horizon) && !keys.iter().any(|k| k.auto_renew) {
                NeedReason::ExpiresSoon
            } else {
                continue;
            };
            let license_type = held
                .map(|l| l.purchase.license_type)
                .filter(|t| t.fits(row.os))
                .unwrap_or(row.os.preferred_types()[0]);
            let cover = pick_license(
                &licenses,
                row.os.preferred_types(),
                row.company.as_deref(),
                horizon,
                Some(&taken),
            )
            .map(|l| l.id.clone());
            if let Some(id) = &cover {
                taken.push(id.clone());
            }
            needs.push(Need {
                instance: project.name,
                reason,
                license_type,
                company: row.company,
                covered_by: cover,
            });
        }
        let types = LicenseType::ALL
            .into_iter()
            .map(|license_type| {
                let of_type = needs.iter().filter(|n| n.license_type == license_type);
                let needed = of_type.clone().count();
                let covered = of_type.filter(|n| n.covered_by.is_some()).count();
                TypeShortfall {
                    license_type,
                    needed,
                    covered,
                    to_buy: needed - covered,
                }
            })
            .collect();
        Ok(Shortfall { days, types, needs })
    }
}

/// The instance named `name` with its row, or `InstanceNotFound`.
fn instance_row(
    catalog: &Catalog,
    name: &str,
) -> Result<(ProjectRow, crate::catalog::InstanceRow)> {
    let not_found = || Error::InstanceNotFound {
        name: name.to_owned(),
    };
    let project = project_row(catalog, name).map_err(|e| match e {
        Error::ProjectNotFound { .. } => not_found(),
        other => other,
    })?;
    let row = catalog.instance(project.id)?.ok_or_else(not_found)?;
    Ok((project, row))
}

/// The license assigned to the instance whose project id is `project`, if any.
fn license_of(licenses: &[LicenseRow], project: i64) -> Option<&LicenseRow> {
    licenses
        .iter()
        .find(|l| l.instance.as_ref().is_some_and(|i| i.id == project))
}

/// The best unassigned license of `types` valid beyond `valid_at` in the company's pool, else
/// the global pool; never another company's. `skip` lists licenses already spoken for.
fn pick_license<'a>(
    licenses: &'a [LicenseRow],
    types: &[LicenseType],
    company: Option<&str>,
    valid_at: i64,
    skip: Option<&[String]>,
) -> Option<&'a LicenseRow> {
    licenses
        .iter()
        .filter(|l| l.instance.is_none() && l.purchase.valid_at(valid_at))
        .filter(|l| l.company.is_none() || l.company.as_deref() == company)
        .filter(|l| skip.is_none_or(|s| !s.contains(&l.id)))
        .filter_map(|l| {
            let rank = types.iter().position(|t| *t == l.purchase.license_type)?;
            let expiry = l
                .purchase
                .expires_at
                .map_or(i64::MAX, OffsetDateTime::unix_timestamp);
            Some((
                (
                    l.company.is_none(),
                    rank,
                    l.purchase.kind == PoolKind::Trial,
                    expiry,
                ),
                l,
            ))
        })
        .min_by(|a, b| a.0.cmp(&b.0))
        .map(|(_, l)| l)
}

/// The per-instance key an assignment installs.
fn assignment_key(license: &LicenseRow, serial: i64) -> Key {
    Key {
        id: format!("{}#{serial}", license.id),
        delivery: Delivery::Offline,
        kind: match license.purchase.kind {
            PoolKind::Commercial => KeyKind::Commercial,
            PoolKind::Trial => KeyKind::Trial,
        },
        edition: Edition::Standard,
        scheme: Scheme::PerInstance,
        expires_at: license.purchase.expires_at,
        auto_renew: license.purchase.auto_renew,
        company: license.company.clone(),
        activation_code: None,
        grace_days: None,
        overage_percent: None,
        reset: None,
    }
}

fn pool_license(l: &LicenseRow, now: i64) -> PoolLicense {
    PoolLicense {
        id: l.id.clone(),
        license_type: l.purchase.license_type,
        kind: l.purchase.kind,
        company: l.company.clone(),
        expires_at: l.purchase.expires_at,
        valid: l.purchase.valid_at(now),
        auto_renew: l.purchase.auto_renew,
        assigned_to: l.instance.as_ref().map(|i| i.name.clone()),
        assigned_company: l.instance_company.clone(),
        purchase: l.purchase.id as u64,
        payment_mode: l.purchase.payment_mode,
        premium_support: l.purchase.premium_support,
        onboarding: l.purchase.onboarding,
    }
}

/// Returns to its pool every license marked assigned whose key is in no slot of its instance:
/// an assignment or unassignment that a crash interrupted. Needs the admin lock.
pub(super) fn repair_assignments(catalog: &Catalog) -> Result<()> {
    for license in catalog.licenses()? {
        let (Some(instance), Some(key_id)) = (&license.instance, &license.key_id) else {
            continue;
        };
        if catalog.key_live_in(instance.id, key_id)? {
            continue;
        }
        let tx = catalog.begin()?;
        Catalog::unassign_license(&tx, &license.id)?;
        let detail = format!(
            "license {} returned to its pool: its assignment was interrupted",
            license.id
        );
        Catalog::append_events_in(
            &tx,
            &[(instance.name.clone(), EventKind::Recovered { detail })],
        )?;
        tx.commit()
            .map_err(Error::store("commit assignment repair"))?;
    }
    Ok(())
}

/// A handle on one instance's license, looked up once, for the check a backup job makes before
/// each run: no lock, no syscall, no allocation. `Clone` is cheap; valid while any clone of its
/// [`Engine`] lives.
#[derive(Clone)]
pub struct InstanceHandle {
    record: Mapped<PairRecord>,
    index: u32,
    clock: Clock,
    name: Arc<str>,
    inner: Arc<Inner>,
}

impl InstanceHandle {
    /// The instance's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `Ok` when a valid license covers the instance now; otherwise `NoActiveKey` (none
    /// assigned) or `Expired`. An expired license with a reserve switches to the reserve.
    #[inline]
    pub fn check(&self) -> Result<(), Refusal> {
        let record = self.record.get();
        debug_assert_eq!(record.metering(), Metering::Seats);
        record
            .covers(self.clock.now(), self)
            .map_err(|r| self.inner.refusal(r))
    }
}

impl Accounts for InstanceHandle {
    #[inline]
    fn account(&self, id: u32) -> Option<&AccountRecord> {
        self.inner.state.account(id)
    }
}

impl PairEvents for InstanceHandle {
    #[inline]
    fn emit(&self, event: PairEvent) {
        self.inner.hot_events.push(self.index, event);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_assignment_interrupted_before_its_key_was_published_returns_the_license() {
        let dir = tempfile::tempdir().unwrap();
        let open = || {
            let installation = Some(dir.path().join("installation"));
            Engine::open_with(
                dir.path(),
                crate::Options {
                    installation_dir: installation,
                    ..crate::Options::default()
                },
            )
            .unwrap()
        };
        {
            let e = open();
            e.buy_licenses(&Purchase::new(LicenseType::Server, 1, PaymentMode::Annual))
                .unwrap();
            e.add_instance("web", InstanceOs::Linux, None).unwrap();
            // What `assign` writes before it publishes the key, then a crash.
            let admin = e.admin().unwrap();
            let (project, _) = instance_row(&admin.catalog, "web").unwrap();
            let tx = admin.catalog.begin().unwrap();
            Catalog::assign_license(&tx, "server-1-1", project.id, "server-1-1#1", "now").unwrap();
            tx.commit().unwrap();
        }
        let e = open();
        assert!(e.instances().unwrap()[0].license.is_none());
        assert!(matches!(e.check_instance("web"), Err(Error::NoActiveKey)));
        let recovered = e
            .events_after(0, 100)
            .unwrap()
            .into_iter()
            .filter(|ev| matches!(ev.kind, EventKind::Recovered { .. }))
            .count();
        assert_eq!(recovered, 1);
        // The license is whole again: it can be assigned.
        assert_eq!(e.assign("web", None).unwrap().license, "server-1-1");
        e.check_instance("web").unwrap();
    }
}
