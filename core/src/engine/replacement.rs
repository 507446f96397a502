//! Replacing the Active key (a renewal) and removing a reserve before it is used.

use super::*;

impl Engine {
    /// Replaces the Active key of the new key's class (a renewal). A reserve that expires before
    /// the new key's term ends is removed (rule R19 in docs/rules.md); the old key's usage becomes
    /// final.
    ///
    /// The pair must still satisfy rule R6 in docs/rules.md afterwards: when the reserve it keeps
    /// is not of the new key's delivery or edition, or the new key is a subscription key, the
    /// replacement is refused with that rule's error ([`Error::TypeMismatch`],
    /// [`Error::EditionMismatch`], [`Error::Subscription`]) and nothing changes. Remove the reserve
    /// first ([`Engine::remove_reserve`]) to replace anyway. A fleet engine replaces it through
    /// the fleet store's admin log, on every host (see `engine::fleet_admin`).
    pub fn replace_active_key(
        &self,
        project: &str,
        key: impl Into<KeyOrLicense>,
    ) -> Result<KeyReplaced> {
        let admin = self.admin()?;
        #[cfg(not(loom))]
        if self.inner.in_fleet() {
            return self.fleet_replace(&admin, project, key.into());
        }
        let key = self.vet(&admin, key.into())?;
        self.replace_locked(&admin, project, key, &self.when())
    }

    /// Checks a replacement of `project`'s Active key by `key` at `now`, writing nothing: the
    /// rules [`Engine::replace_locked`] applies.
    #[cfg(not(loom))]
    pub(super) fn check_replacement(
        &self,
        admin: &Admin,
        project: &str,
        key: &Key,
        now: i64,
    ) -> Result<()> {
        let project = project_row(&admin.catalog, project)?;
        let Some(pair) = admin.catalog.pair(project.id, key.scheme.class())? else {
            return Err(self.no_pair_for(admin, &project, key)?);
        };
        let taken = id_taken_for(&admin.catalog, key, &admin.catalog.pairs(project.id)?)?;
        let keys = admin.catalog.keys_of(pair.record)?;
        let state = self.inner.state.record(pair.record).state();
        replacement_kept(&state, &keys, key, now, taken).map(drop)
    }

    /// [`Engine::replace_active_key`] for a caller that holds the admin lock, at `when`.
    pub(super) fn replace_locked(
        &self,
        admin: &Admin,
        project: &str,
        key: Vetted,
        when: &When,
    ) -> Result<KeyReplaced> {
        let now = when.now;
        let key = key.into_key();
        let project = project_row(&admin.catalog, project)?;
        let class = key.scheme.class();
        let Some(pair) = admin.catalog.pair(project.id, class)? else {
            return Err(self.no_pair_for(admin, &project, &key)?);
        };
        let taken = id_taken_for(&admin.catalog, &key, &admin.catalog.pairs(project.id)?)?;
        let plan = |state: &PairState, keys: &HashMap<u32, KeyRow>, row: u32| {
            let kept = replacement_kept(state, keys, &key, now, taken)?;
            Ok(NextGen {
                active: Some(live_key(row, &key)),
                reserve: state.reserve.filter(|_| kept),
                retired: state.active.map(|active| (active.key, active.used)),
                switches: state.switches,
            })
        };
        let (before, next, _) = self.change_pair(admin, &project, pair, &key, &when.at, plan)?;
        let keys = admin.catalog.keys_of(pair.record)?;
        let old = key_of(&keys, before.active.expect("checked by the plan").key)?
            .id
            .clone();
        let mut events = vec![(
            project.name.clone(),
            EventKind::KeyReplaced {
                old: old.clone(),
                new: key.id.clone(),
            },
        )];
        let mut removed = Vec::new();
        let mut removed_reserve = None;
        if let (Some(reserve), None) = (before.reserve, next.reserve) {
            let id = key_of(&keys, reserve.key)?.id.clone();
            events.push((
                project.name.clone(),
                EventKind::ReserveRemoved {
                    key: id.clone(),
                    reason: RemovalReason::ExpiresBeforeNewTerm,
                },
            ));
            removed.push(reserve.key);
            removed_reserve = Some(id);
        }
        self.finish_change(admin, pair.record, &removed, &events, &when.at)?;
        self.refresh_holders(admin, &key.id, pair.record)?;
        self.refresh_holders(admin, &old, pair.record)?;
        if let Some(reserve) = &removed_reserve {
            self.refresh_holders(admin, reserve, pair.record)?;
        }
        Ok(KeyReplaced {
            old,
            removed_reserve,
        })
    }

    /// Removes the Reserved key `key_id` from its slot before it is used. A fleet engine removes
    /// it through the fleet store's admin log, on every host (see `engine::fleet_admin`).
    pub fn remove_reserve(&self, project: &str, key_id: &str) -> Result<()> {
        let admin = self.admin()?;
        #[cfg(not(loom))]
        if self.inner.in_fleet() {
            return self.fleet_remove_reserve(&admin, project, key_id);
        }
        self.remove_reserve_locked(&admin, project, key_id, &now_text())
    }

    /// The pair of `project` whose Reserved key is `key_id`, with that key's row, or
    /// `ReserveNotFound`.
    pub(super) fn reserve_pair(
        &self,
        admin: &Admin,
        project: &ProjectRow,
        key_id: &str,
    ) -> Result<(PairRow, u32)> {
        for pair in admin.catalog.pairs(project.id)? {
            sync_pair(&self.inner.state, &admin.catalog, project, pair)?;
            let keys = admin.catalog.keys_of(pair.record)?;
            let Some(reserve) = self.inner.state.record(pair.record).state().reserve else {
                continue;
            };
            if key_of(&keys, reserve.key)?.id == key_id {
                return Ok((pair, reserve.key));
            }
        }
        Err(reserve_not_found(project, key_id))
    }

    /// [`Engine::remove_reserve`] for a caller that holds the admin lock; `at` is the time the
    /// catalog records.
    pub(super) fn remove_reserve_locked(
        &self,
        admin: &Admin,
        project: &str,
        key_id: &str,
        at: &str,
    ) -> Result<()> {
        let project = project_row(&admin.catalog, project)?;
        let (pair, row) = self.reserve_pair(admin, &project, key_id)?;
        let record = self.inner.state.record(pair.record);
        record.publish(&*self.inner.state, |state| match state.reserve {
            Some(r) if r.key == row => Ok(NextGen {
                active: state.active,
                reserve: None,
                retired: None,
                switches: state.switches,
            }),
            _ => Err(reserve_not_found(&project, key_id)),
        })?;
        let event = EventKind::ReserveRemoved {
            key: key_id.to_owned(),
            reason: RemovalReason::Requested,
        };
        self.finish_change(
            admin,
            pair.record,
            &[row],
            &[(project.name.clone(), event)],
            at,
        )?;
        self.refresh_holders(admin, key_id, pair.record)
    }
}

/// Whether a replacement of `state`'s Active key by `key` keeps the reserve (rule R19), or the
/// rule it breaks.
fn replacement_kept(
    state: &PairState,
    keys: &HashMap<u32, KeyRow>,
    key: &Key,
    now: i64,
    taken: bool,
) -> Result<bool> {
    let active = state.active.ok_or(Error::NoActiveKey)?;
    let reserve = state.reserve.map(|r| key_of(keys, r.key)).transpose()?;
    rules::admit_replacement(key_of(keys, active.key)?, reserve, key, now, taken)
}

fn reserve_not_found(project: &ProjectRow, key_id: &str) -> Error {
    Error::ReserveNotFound {
        project: project.name.clone(),
        key: key_id.to_owned(),
    }
}
