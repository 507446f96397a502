//! The changes of the fleet's admin log: what each admin call appends in fleet mode, what its
//! caller checks before appending it, and how every host applies it.

use serde::{Deserialize, Serialize};

use super::*;
use crate::license::KeyOrLicense;
use crate::pool::{Assignment, InstanceOs, LicenseType, Purchase};

/// One change of the admin log, as the engine writes it (JSON, tagged by `op`). It carries every
/// value the embedded call would make up when it runs, so each host applies the same.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub(super) enum Change {
    /// `Engine::create_project`.
    CreateProject {
        /// The project.
        project: String,
        /// When it was created.
        at: String,
    },
    /// `Engine::add_key`, or with `reserve_only` `Engine::add_reserve`.
    AddKey {
        /// The project.
        project: String,
        /// The key's JSON or the license file's text, as the caller gave it.
        key: String,
        /// Whether it may only become the reserve.
        reserve_only: bool,
        /// When it was added: the rules judge the key's expiry at this time on every host.
        when: When,
    },
    /// `Engine::replace_active_key`.
    ReplaceKey {
        /// The project.
        project: String,
        /// The new key's JSON or the license file's text.
        key: String,
        /// When it was replaced.
        when: When,
    },
    /// `Engine::remove_reserve`.
    RemoveReserve {
        /// The project.
        project: String,
        /// The reserve's key id.
        key: String,
        /// When it was removed.
        at: String,
    },
    /// `Engine::add_to_group`.
    AddToGroup {
        /// The group.
        group: String,
        /// The projects it gains.
        projects: Vec<String>,
    },
    /// `Engine::buy_licenses`.
    BuyLicenses {
        /// What was bought.
        purchase: Purchase,
        /// The purchase's number, from the store (its licenses are `<type>-<number>-<n>`).
        number: i64,
        /// When it was bought.
        at: String,
    },
    /// `Engine::add_instance`.
    AddInstance {
        /// The instance.
        name: String,
        /// Its operating system.
        os: InstanceOs,
        /// Its company.
        company: Option<String>,
        /// When it was registered.
        at: String,
    },
    /// `Engine::assign`: the license is picked where the change is applied, by the rules of
    /// `assign`, from a pool every host holds alike, so every host picks the same one.
    Assign {
        /// The instance.
        instance: String,
        /// The type asked for, if any.
        license_type: Option<LicenseType>,
        /// When it was assigned: which licenses are valid.
        when: When,
        /// The assignment's serial, from the store (its key is `<license>#<serial>`).
        serial: i64,
    },
    /// `Engine::unassign`.
    Unassign {
        /// The instance.
        instance: String,
        /// When its license was taken off.
        at: String,
    },
}

/// What applying one change did: its caller's result.
#[derive(Debug)]
pub(in crate::engine) enum Outcome {
    /// A change that returns nothing.
    Done,
    /// A key's placement.
    KeyAdded(KeyAdded),
    /// A replacement's result.
    KeyReplaced(KeyReplaced),
    /// The ids of the licenses bought.
    Purchased(Vec<String>),
    /// An assignment.
    Assigned(Assignment),
    /// The license taken off an instance.
    Unassigned(String),
}

impl Outcome {
    /// A change whose outcome is not its kind's: a bug of this module, never a refusal.
    fn unexpected<T>(self, change: &str) -> T {
        unreachable!("a {change} change's outcome is {self:?}")
    }
}

impl Engine {
    /// Applies one change of the log to this state.
    pub(super) fn apply_change(&self, admin: &Admin, text: &str) -> Result<Outcome> {
        let change: Change = serde_json::from_str(text).map_err(|e| Error::InvalidArgument {
            field: "fleet admin change",
            reason: format!("{e}: {text}"),
        })?;
        Ok(match change {
            Change::CreateProject { project, at } => {
                self.create_project_locked(admin, &project, &at)?;
                Outcome::Done
            }
            Change::AddKey {
                project,
                key,
                reserve_only,
                when,
            } => {
                let key = self.vet(admin, KeyOrLicense::parse(&key)?)?;
                Outcome::KeyAdded(self.admit_locked(admin, &project, key, reserve_only, &when)?)
            }
            Change::ReplaceKey { project, key, when } => {
                let key = self.vet(admin, KeyOrLicense::parse(&key)?)?;
                Outcome::KeyReplaced(self.replace_locked(admin, &project, key, &when)?)
            }
            Change::RemoveReserve { project, key, at } => {
                self.remove_reserve_locked(admin, &project, &key, &at)?;
                Outcome::Done
            }
            Change::AddToGroup { group, projects } => {
                let projects: Vec<&str> = projects.iter().map(String::as_str).collect();
                self.add_to_group_locked(admin, &group, &projects)?;
                Outcome::Done
            }
            Change::BuyLicenses {
                purchase,
                number,
                at,
            } => Outcome::Purchased(self.buy_locked(admin, &purchase, Some(number), &at)?),
            Change::AddInstance {
                name,
                os,
                company,
                at,
            } => {
                self.add_instance_locked(admin, &name, os, company.as_deref(), &at)?;
                Outcome::Done
            }
            Change::Assign {
                instance,
                license_type,
                when,
                serial,
            } => Outcome::Assigned(self.assign_locked(
                admin,
                &instance,
                license_type,
                &when,
                Some(serial),
            )?),
            Change::Unassign { instance, at } => {
                Outcome::Unassigned(self.unassign_locked(admin, &instance, &at)?)
            }
        })
    }

    /// [`Engine::create_project`] in fleet mode.
    pub(in crate::engine) fn fleet_create_project(&self, admin: &Admin, name: &str) -> Result<()> {
        self.submit(admin, |_| {
            refuse_existing(admin, name)?;
            Ok(Change::CreateProject {
                project: name.to_owned(),
                at: now_text(),
            })
        })
        .map(drop)
    }

    /// [`Engine::add_key`] and [`Engine::add_reserve`] in fleet mode.
    pub(in crate::engine) fn fleet_admit(
        &self,
        admin: &Admin,
        project: &str,
        key: KeyOrLicense,
        reserve_only: bool,
    ) -> Result<KeyAdded> {
        let text = document_text(&key);
        // Refused here, never appended: a signature this state does not trust.
        self.vet(admin, key)?;
        self.fleet_add_key(admin, project, text, reserve_only)
    }

    /// Appends the addition of a vetted key document (`text`) to `project` and applies it.
    pub(in crate::engine) fn fleet_add_key(
        &self,
        admin: &Admin,
        project: &str,
        text: String,
        reserve_only: bool,
    ) -> Result<KeyAdded> {
        let outcome = self.submit(admin, |_| {
            // Refused here, never appended: an unknown project.
            project_row(&admin.catalog, project)?;
            Ok(Change::AddKey {
                project: project.to_owned(),
                key: text,
                reserve_only,
                when: self.when(),
            })
        })?;
        match outcome {
            Outcome::KeyAdded(added) => Ok(added),
            other => other.unexpected("add_key"),
        }
    }

    /// [`Engine::replace_active_key`] in fleet mode.
    pub(in crate::engine) fn fleet_replace(
        &self,
        admin: &Admin,
        project: &str,
        key: KeyOrLicense,
    ) -> Result<KeyReplaced> {
        let text = document_text(&key);
        let outcome = self.submit(admin, |_| {
            let when = self.when();
            let key = self.vet(admin, key)?.into_key();
            self.check_replacement(admin, project, &key, when.now)?;
            Ok(Change::ReplaceKey {
                project: project.to_owned(),
                key: text,
                when,
            })
        })?;
        match outcome {
            Outcome::KeyReplaced(replaced) => Ok(replaced),
            other => other.unexpected("replace_key"),
        }
    }

    /// [`Engine::remove_reserve`] in fleet mode.
    pub(in crate::engine) fn fleet_remove_reserve(
        &self,
        admin: &Admin,
        project: &str,
        key_id: &str,
    ) -> Result<()> {
        self.submit(admin, |_| {
            let row = project_row(&admin.catalog, project)?;
            self.reserve_pair(admin, &row, key_id)?;
            Ok(Change::RemoveReserve {
                project: project.to_owned(),
                key: key_id.to_owned(),
                at: now_text(),
            })
        })
        .map(drop)
    }

    /// [`Engine::add_to_group`] in fleet mode, its arguments checked.
    pub(in crate::engine) fn fleet_add_to_group(
        &self,
        admin: &Admin,
        group: &str,
        projects: &[&str],
    ) -> Result<()> {
        self.submit(admin, |_| {
            for project in projects {
                project_row(&admin.catalog, project)?;
            }
            Ok(Change::AddToGroup {
                group: group.to_owned(),
                projects: projects.iter().map(|p| (*p).to_owned()).collect(),
            })
        })
        .map(drop)
    }

    /// [`Engine::buy_licenses`] in fleet mode, `purchase` validated.
    pub(in crate::engine) fn fleet_buy(
        &self,
        admin: &Admin,
        purchase: &Purchase,
    ) -> Result<Vec<String>> {
        let outcome = self.submit(admin, |store| {
            self.check_payment_mode(admin, purchase)?;
            Ok(Change::BuyLicenses {
                purchase: purchase.clone(),
                number: store.next_number().map_err(|_| Error::Unavailable)?,
                at: now_text(),
            })
        })?;
        match outcome {
            Outcome::Purchased(ids) => Ok(ids),
            other => other.unexpected("buy_licenses"),
        }
    }

    /// [`Engine::add_instance`] in fleet mode, its names checked.
    pub(in crate::engine) fn fleet_add_instance(
        &self,
        admin: &Admin,
        name: &str,
        os: InstanceOs,
        company: Option<&str>,
    ) -> Result<()> {
        self.submit(admin, |_| {
            refuse_existing(admin, name)?;
            Ok(Change::AddInstance {
                name: name.to_owned(),
                os,
                company: company.map(str::to_owned),
                at: now_text(),
            })
        })
        .map(drop)
    }

    /// [`Engine::assign`] in fleet mode, at `now`.
    pub(in crate::engine) fn fleet_assign(
        &self,
        admin: &Admin,
        instance: &str,
        license_type: Option<LicenseType>,
        now: i64,
    ) -> Result<Assignment> {
        let outcome = self.submit(admin, |store| {
            let licenses = admin.catalog.licenses()?;
            self.assignment_plan(admin, instance, license_type, now, &licenses)?;
            Ok(Change::Assign {
                instance: instance.to_owned(),
                license_type,
                when: When {
                    now,
                    at: now_text(),
                },
                serial: store.next_number().map_err(|_| Error::Unavailable)?,
            })
        })?;
        match outcome {
            Outcome::Assigned(assignment) => Ok(assignment),
            other => other.unexpected("assign"),
        }
    }

    /// [`Engine::unassign`] in fleet mode.
    pub(in crate::engine) fn fleet_unassign(
        &self,
        admin: &Admin,
        instance: &str,
    ) -> Result<String> {
        let outcome = self.submit(admin, |_| {
            self.assigned_license(admin, instance)?;
            Ok(Change::Unassign {
                instance: instance.to_owned(),
                at: now_text(),
            })
        })?;
        match outcome {
            Outcome::Unassigned(license) => Ok(license),
            other => other.unexpected("unassign"),
        }
    }
}

/// `ProjectExists` when this state holds a project (or an instance) named `name`.
fn refuse_existing(admin: &Admin, name: &str) -> Result<()> {
    match admin.catalog.project(name)? {
        Some(_) => Err(Error::ProjectExists { name: name.into() }),
        None => Ok(()),
    }
}

/// The text of a key document as the admin log carries it: the key's JSON, or the license
/// file's.
pub(in crate::engine) fn document_text(document: &KeyOrLicense) -> String {
    match document {
        KeyOrLicense::Key(key) => key.to_json(),
        KeyOrLicense::License(license) => license.to_json(),
    }
}
