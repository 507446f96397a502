//! Groups of projects (a cluster of SVMs) and bulk reserve activation (rule R8 in docs/rules.md,
//! the application activation task).

use serde::Serialize;

use super::{project_row, Admin, Engine, KeyAdded};
use crate::catalog::Catalog;
use crate::error::{Error, Result};
use crate::event::EventKind;
use crate::key::check_name;
use crate::license::KeyOrLicense;

/// A named group and its projects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Group {
    /// The group's name.
    pub name: String,
    /// Its projects, sorted.
    pub projects: Vec<String>,
}

/// Which projects a bulk reserve addition targets (rule R8: "all SVMs, the SVMs of one KSC
/// cluster, or an individual SVM").
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BulkTarget {
    /// Every project.
    All,
    /// The projects of one group.
    Group(String),
    /// One project.
    Project(String),
}

/// What a bulk addition did on one project.
#[derive(Debug)]
pub struct BulkOutcome {
    /// The project.
    pub project: String,
    /// The key's new slot, or the rule it broke there.
    pub result: Result<KeyAdded>,
}

impl Engine {
    /// Adds `projects` to group `group` (creating it); a project already in it stays once.
    /// Every project must exist, else nothing changes. A fleet engine adds them through the
    /// fleet store's admin log, on every host (see `engine::fleet_admin`).
    pub fn add_to_group(&self, group: &str, projects: &[&str]) -> Result<()> {
        check_name("group name", group)?;
        if projects.is_empty() {
            return Err(Error::invalid(
                "projects",
                "a group needs at least one project",
            ));
        }
        let admin = self.admin()?;
        #[cfg(not(loom))]
        if self.inner.in_fleet() {
            return self.fleet_add_to_group(&admin, group, projects);
        }
        self.add_to_group_locked(&admin, group, projects)
    }

    /// [`Engine::add_to_group`] for a caller that holds the admin lock, its arguments checked.
    pub(super) fn add_to_group_locked(
        &self,
        admin: &Admin,
        group: &str,
        projects: &[&str],
    ) -> Result<()> {
        let rows = projects
            .iter()
            .map(|p| project_row(&admin.catalog, p))
            .collect::<Result<Vec<_>>>()?;
        let tx = admin.catalog.begin()?;
        let mut events = Vec::new();
        for row in rows {
            if Catalog::join_group(&tx, group, row.id)? {
                events.push((
                    row.name,
                    EventKind::GroupJoined {
                        group: group.to_owned(),
                    },
                ));
            }
        }
        let events = Catalog::append_events_in(&tx, &events)?;
        tx.commit().map_err(Error::store("commit group"))?;
        self.inner.subscribers.broadcast(&events);
        Ok(())
    }

    /// Every group with its projects, by name.
    pub fn groups(&self) -> Result<Vec<Group>> {
        let admin = self.inner.admin.lock();
        let mut groups: Vec<Group> = Vec::new();
        for (name, project) in admin.catalog.groups()? {
            match groups.last_mut() {
                Some(g) if g.name == name => g.projects.push(project.name),
                _ => groups.push(Group {
                    name,
                    projects: vec![project.name],
                }),
            }
        }
        Ok(groups)
    }

    /// Adds `key` as the reserve of every targeted project (the activation task of rule R8, with
    /// "use the license key as a reserve key"). Each project is checked on its own under
    /// rule R6 in docs/rules.md: it takes the key only where an Active key of the key's class
    /// exists, and a refusal on one project never stops the others. Returns one outcome per
    /// project, by name. The whole call fails only when the target itself does not exist, or the
    /// key is malformed or refused by the state's trust ([`Engine::trust`]).
    pub fn add_reserve_bulk(
        &self,
        target: &BulkTarget,
        key: impl Into<KeyOrLicense>,
    ) -> Result<Vec<BulkOutcome>> {
        let admin = self.admin()?;
        let when = self.when();
        let document = key.into();
        #[cfg(not(loom))]
        let text = self
            .inner
            .in_fleet()
            .then(|| super::fleet_admin::document_text(&document));
        let key = self.vet(&admin, document)?;
        let projects: Vec<String> = match target {
            BulkTarget::All => admin
                .catalog
                .projects()?
                .into_iter()
                .map(|p| p.name)
                .collect(),
            BulkTarget::Group(name) => {
                let members: Vec<String> = admin
                    .catalog
                    .groups()?
                    .into_iter()
                    .filter(|(group, _)| group == name)
                    .map(|(_, p)| p.name)
                    .collect();
                if members.is_empty() {
                    return Err(Error::GroupNotFound { name: name.clone() });
                }
                members
            }
            BulkTarget::Project(name) => vec![project_row(&admin.catalog, name)?.name],
        };
        // In fleet mode, one change of the admin log per project, applied on every host.
        #[cfg(not(loom))]
        if let Some(text) = text {
            return Ok(projects
                .into_iter()
                .map(|project| {
                    let result = self.fleet_add_key(&admin, &project, text.clone(), true);
                    BulkOutcome { project, result }
                })
                .collect());
        }
        Ok(projects
            .into_iter()
            .map(|project| {
                let result = self.admit_locked(&admin, &project, key.clone(), true, &when);
                BulkOutcome { project, result }
            })
            .collect())
    }
}
