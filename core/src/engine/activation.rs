//! Activation by code (rule R9 in docs/rules.md): the
//! customer has an activation code, the vendor's activation service turns it into a signed
//! online key, and the engine adds that key like any other — verified against the vendor keys
//! the state trusts, under rules R5–R7 in docs/rules.md.
//!
//! The service counts a code's activations by **machine**, and the engine says which machine
//! asks with [`Engine::machine_id`]: an identity derived one-way from the installation's key
//! (`installation.key` in [`Options::installation_dir`](super::Options)), so every engine,
//! process and tool of one installation is one machine, whatever state directory it opens, and
//! asking again from it gets the same key back without spending another activation. The bulk
//! form activates once and adds the one key as the reserve of every project it targets: one
//! machine, one activation, however many projects (rule R7 in docs/rules.md: one key document may
//! be held by many pairs, all drawing from its one account).

use std::panic::{catch_unwind, AssertUnwindSafe};

use serde::Serialize;

use super::{project_row, Engine};
use crate::error::{Error, Result};
use crate::license::{KeyOrLicense, SignedLicense};
use crate::{BulkOutcome, BulkTarget, KeyAdded};

/// The longest activation code, in bytes: the service's key ids (`CODE-N`) are at most 64.
pub const MAX_ACTIVATION_CODE: usize = 64;

/// Asks the vendor's activation service for the key of an activation code
/// (`tollgate_activation::ActivationClient` is one).
pub trait Activator: Send + Sync {
    /// Activates `code` on `machine` ([`Engine::machine_id`]): the text of the signed license
    /// file the service issued, or why there is none, in words. Blocking; called with no lock
    /// held, never on the hot path.
    fn activate(&self, code: &str, machine: &str) -> std::result::Result<String, String>;
}

/// Which slot an activated key may take in its project.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActivationSlot {
    /// Active in an empty pair, else Reserved ([`Engine::add_key`]).
    Any,
    /// Reserved only ([`Engine::add_reserve`]).
    Reserve,
}

/// A code activated and its key added to one project.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Activated {
    /// The id of the key the service issued.
    pub key: String,
    /// Where it went.
    #[serde(flatten)]
    pub added: KeyAdded,
}

/// A code activated and its key added as the reserve of every targeted project.
#[derive(Debug)]
pub struct ActivatedBulk {
    /// The id of the key the service issued.
    pub key: String,
    /// One outcome per project, as [`Engine::add_reserve_bulk`] gives them.
    pub outcomes: Vec<BulkOutcome>,
}

impl Engine {
    /// This installation's identity for the activation service: 64 hex digits derived one-way
    /// from the installation key, so it tells the service nothing else, and stays the same for
    /// every engine of the installation. A new installation directory is a new machine.
    pub fn machine_id(&self) -> String {
        self.inner.installation.machine_id()
    }

    /// Activates `code` through `activator` and adds the key it brings to `project`, in `slot`:
    /// verified like any key, so a state that trusts vendor keys takes it only signed by one.
    /// A project that does not exist is refused before the service is asked. A failure of the
    /// service is [`Error::ActivationFailed`]; any refusal changes nothing in the state (the
    /// service keeps the activation, and gives the same key to this machine again).
    pub fn activate_with(
        &self,
        project: &str,
        code: &str,
        slot: ActivationSlot,
        activator: &dyn Activator,
    ) -> Result<Activated> {
        project_row(&self.admin()?.catalog, project)?;
        let license = self.fetch_activation(code, activator)?;
        let key = license.id().to_owned();
        let added = match slot {
            ActivationSlot::Any => self.add_key(project, license)?,
            ActivationSlot::Reserve => self.add_reserve(project, license)?,
        };
        Ok(Activated { key, added })
    }

    /// Activates `code` through `activator` once and adds its key as the reserve of every
    /// project `target` names, as [`Engine::add_reserve_bulk`] does (the activation task
    /// of rule R8). A target that does not exist is refused before the service is asked.
    pub fn activate_bulk_with(
        &self,
        target: &BulkTarget,
        code: &str,
        activator: &dyn Activator,
    ) -> Result<ActivatedBulk> {
        match target {
            BulkTarget::All => {}
            BulkTarget::Group(name) => {
                if !self.groups()?.iter().any(|g| &g.name == name) {
                    return Err(Error::GroupNotFound { name: name.clone() });
                }
            }
            BulkTarget::Project(name) => {
                project_row(&self.admin()?.catalog, name)?;
            }
        }
        let license = self.fetch_activation(code, activator)?;
        let key = license.id().to_owned();
        let outcomes = self.add_reserve_bulk(target, license)?;
        Ok(ActivatedBulk { key, outcomes })
    }

    /// Asks `activator` for the license of `code`, which must be a license file of a key for
    /// that very code; verifying its signature is the adding's part.
    fn fetch_activation(&self, code: &str, activator: &dyn Activator) -> Result<KeyOrLicense> {
        if code.is_empty() || code.len() > MAX_ACTIVATION_CODE {
            return Err(Error::invalid(
                "activation code",
                format!(
                    "the code is {} bytes long; an activation code is 1 to {MAX_ACTIVATION_CODE} bytes",
                    code.len()
                ),
            ));
        }
        let failed = |reason: String| Error::ActivationFailed {
            code: code.to_owned(),
            reason,
        };
        let machine = self.machine_id();
        let text = catch_unwind(AssertUnwindSafe(|| activator.activate(code, &machine)))
            .unwrap_or_else(|_| Err("the activator panicked".to_owned()))
            .map_err(failed)?;
        let license = SignedLicense::from_json(&text)
            .map_err(|e| failed(format!("the service's answer is not a license: {e}")))?;
        let issued_for = super::renewal::issued_for(&text);
        if issued_for.as_deref() != Some(code) {
            return Err(failed(format!(
                "the license is for activation code {}, not \"{code}\"",
                issued_for.map_or("none".into(), |c| format!("\"{c}\""))
            )));
        }
        Ok(KeyOrLicense::from(license))
    }
}
