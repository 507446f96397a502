//! Creating projects.

use super::*;

impl Engine {
    /// Creates a project with an empty data-volume slot pair. A fleet engine creates it
    /// through the fleet store's admin log, on every host (see `engine::fleet_admin`).
    pub fn create_project(&self, name: &str) -> Result<()> {
        check_name("project name", name)?;
        let admin = self.admin()?;
        #[cfg(not(loom))]
        if self.inner.in_fleet() {
            return self.fleet_create_project(&admin, name);
        }
        self.create_project_locked(&admin, name, &now_text())
    }

    /// Creates a project in this state only, for a caller holding the admin lock:
    /// [`Engine::create_project`], or a change of the fleet's admin log applied here; created
    /// `at`.
    pub(super) fn create_project_locked(&self, admin: &Admin, name: &str, at: &str) -> Result<()> {
        if admin.catalog.project(name)?.is_some() {
            return Err(Error::ProjectExists { name: name.into() });
        }
        let tx = admin.catalog.begin()?;
        let id = Catalog::insert_project(&tx, name, at)?;
        let record = self.allocate_pair(&tx, id, LicenseClass::DataVolume)?;
        let events =
            Catalog::append_events_in(&tx, &[(name.to_owned(), EventKind::ProjectCreated)])?;
        tx.commit().map_err(Error::store("commit new project"))?;
        self.inner
            .state
            .record(record)
            .claim(owner_tag(id), Metering::Volume);
        self.inner.subscribers.broadcast(&events);
        Ok(())
    }
}
