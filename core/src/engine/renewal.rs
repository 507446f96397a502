//! Online renewal (rule R21 in docs/rules.md): an online Active key with an activation code is
//! renewed by the vendor's activation service before it expires, off the hot path; when that fails
//! the operator is told that manual renewal is needed, and nothing else changes. [`Renewal`] says
//! what the engine does; this module is the background thread, the bookkeeping of attempts,
//! and the installation of a renewed key through the path every key takes.

use std::collections::HashMap;
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde::Serialize;
use serde_json::Value;
use time::OffsetDateTime;

use super::{key_of, project_row, Admin, Engine, Inner};
use crate::catalog::Catalog;
use crate::clock::NEVER;
use crate::error::{Error, Result};
use crate::event::EventKind;
use crate::key::{Delivery, Key, KeyKind};
use crate::license::{KeyOrLicense, SignedLicense};
use crate::view::Role;
use crate::worker::{Stop, Worker};

/// The default [`Renewal::lead`]: renewal starts a week before the Active key expires.
pub const DEFAULT_RENEWAL_LEAD: Duration = Duration::from_secs(7 * 24 * 60 * 60);
/// The default [`Renewal::retry`]: a failed renewal is tried again an hour later.
pub const DEFAULT_RENEWAL_RETRY: Duration = Duration::from_secs(60 * 60);
/// The default [`Renewal::check_every`]: the renewal thread looks at the keys once a minute.
pub const DEFAULT_RENEWAL_CHECK: Duration = Duration::from_secs(60);

/// Asks the vendor's activation service for the successor of an online key
/// (`tollgate_activation::ActivationClient` is one).
pub trait Renewer: Send + Sync {
    /// Renews `key`, an online key with an activation code: the text of the signed license
    /// file of its successor, or why there is none, in words. The engine verifies the license
    /// like any other, and wraps a reason into the manual-renewal message
    /// ([`manual_renewal_message`](crate::error::manual_renewal_message)).
    ///
    /// Blocking, and called with no lock held, from the engine's renewal thread or from
    /// [`Engine::renew_now`], never on the hot path. Transient failures are the renewer's to
    /// retry: an error ends this attempt, and the next comes after [`Renewal::retry`].
    fn renew(&self, key: &Key) -> std::result::Result<String, String>;
}

/// How an engine renews online keys ([`Options::renewal`](super::Options::renewal),
/// [`Engine::enable_renewal`]).
///
/// A background thread of the engine looks every `check_every` for pairs whose Active key is
/// online, has an activation code and no reserve, and expires within `lead` (or has expired).
/// For each it asks the [`Renewer`] — with no lock held and no strong reference to the engine,
/// since the service may take its time — and adds the signed license it gets as the pair's
/// reserve, verified like any key, so the state's trust applies. The hot path then switches to
/// it at expiry as to any reserve, with no caller waiting; when the Active key has already
/// expired, the new key becomes Active at once. A subscription key takes no reserve (rule
/// R20 in docs/rules.md): it is renewed once it has expired, by replacing it.
///
/// A failure — the service down, slow, refusing, answering garbage, or its license refused by
/// the engine (a bad signature, say) — changes no key. A
/// [`RenewalFailed`](crate::EventKind::RenewalFailed) event carries the manual-renewal message,
/// once per key until a renewal of it succeeds, and the thread asks again after `retry`.
/// [`Engine::renewal_status`] is what a user interface shows.
///
/// The thread holds a weak reference to the engine, so it never keeps a state open, and it is
/// not waited for when the engine is dropped: a renewal in flight may take as long as the
/// renewer's own timeouts allow. It ends at its next wake-up.
#[derive(Clone)]
pub struct Renewal {
    /// Who asks the activation service.
    pub renewer: Arc<dyn Renewer>,
    /// How long before the Active key expires its renewal starts, so that its successor waits
    /// as the reserve when it expires.
    pub lead: Duration,
    /// How long after a failed renewal it is tried again.
    pub retry: Duration,
    /// How often the renewal thread looks for keys to renew. Renewal is judged by the engine's
    /// clock, the thread's pace by real time.
    pub check_every: Duration,
}

impl Renewal {
    /// Renewal through `renewer` with the default lead (7 days), retry (1 hour) and check
    /// interval (1 minute).
    pub fn new(renewer: Arc<dyn Renewer>) -> Renewal {
        Renewal {
            renewer,
            lead: DEFAULT_RENEWAL_LEAD,
            retry: DEFAULT_RENEWAL_RETRY,
            check_every: DEFAULT_RENEWAL_CHECK,
        }
    }
}

impl fmt::Debug for Renewal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Renewal")
            .field("lead", &self.lead)
            .field("retry", &self.retry)
            .field("check_every", &self.check_every)
            .finish_non_exhaustive()
    }
}

/// A key renewed: its successor entered the pair.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Renewed {
    /// The project.
    pub project: String,
    /// The key renewed, the Active key when the renewal began.
    pub old: String,
    /// Its successor.
    pub new: String,
    /// The slot the successor took: `Reserved`, or `Active` when the old key had expired (or
    /// was a subscription key, which is replaced).
    pub role: Role,
}

/// Where the renewal of a key stands, for [`RenewalStatus`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RenewalState {
    /// Due, and not renewed yet: the next check asks the service (a subscription key, at its
    /// expiry).
    Pending,
    /// Renewed: the successor waits as the reserve.
    Renewed,
    /// The last attempt failed: manual renewal is needed, unless a later attempt succeeds.
    Failed,
}

/// The renewal of one key that is due, as [`Engine::renewal_status`] lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RenewalStatus {
    /// The project.
    pub project: String,
    /// The Active key to renew.
    pub key: String,
    /// When it expires.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    /// Where its renewal stands.
    pub state: RenewalState,
    /// The successor, once renewed.
    pub successor: Option<String>,
    /// When failed: the manual-renewal message of the last attempt.
    pub message: Option<String>,
}

/// An engine's renewal: its configuration, what it remembers between attempts, and its thread,
/// which stops once this is dropped (with the engine, or replaced by
/// [`Engine::enable_renewal`]).
pub(super) struct Renewals {
    config: Renewal,
    memory: Arc<Mutex<Memory>>,
    /// Not joined when dropped: it may be waiting on the service (see the module
    /// documentation); it ends once it looks at its stop.
    _worker: Worker,
}

/// A key by project and id.
type KeyName = (String, String);

/// What this process remembers of its renewals, for the retry delay, reporting a failure once,
/// and [`Engine::renewal_status`]. Only keys still watched are kept.
#[derive(Default)]
struct Memory {
    failed: HashMap<KeyName, Failure>,
    /// Each renewed key's successor.
    renewed: HashMap<KeyName, String>,
}

struct Failure {
    message: String,
    at: Instant,
    /// Whether the `renewal_failed` event of this episode is in the audit log.
    reported: bool,
}

impl Memory {
    /// Forgets the keys that are no longer watched (renewed and switched, replaced, removed),
    /// and the failures of keys that got a reserve some other way: a later failure of theirs
    /// is a new episode. Failures recorded at or after `since` (when `watched` was read) are
    /// kept whatever it says: it may predate their key.
    fn keep_only(&mut self, watched: &[Watched], since: Instant) {
        let names: Vec<KeyName> = watched.iter().map(Watched::name).collect();
        let unreserved: Vec<KeyName> = watched
            .iter()
            .filter(|w| w.reserve.is_none())
            .map(Watched::name)
            .collect();
        self.failed
            .retain(|name, failure| failure.at >= since || unreserved.contains(name));
        self.renewed.retain(|name, _| names.contains(name));
    }

    /// Whether `key` may be tried now: never failed, or failed at least `retry` ago.
    fn may_try(&self, key: &Watched, retry: Duration) -> bool {
        self.failed
            .get(&key.name())
            .is_none_or(|f| f.at.elapsed() >= retry)
    }

    fn status(&self, watched: Watched) -> Option<RenewalStatus> {
        let name = watched.name();
        let (state, successor, message) = match &watched.reserve {
            // A reserve this engine did not fetch is the operator's business, not a renewal.
            Some(reserve) if self.renewed.get(&name) == Some(reserve) => {
                (RenewalState::Renewed, Some(reserve.clone()), None)
            }
            Some(_) => return None,
            None => match self.failed.get(&name) {
                Some(failure) => (RenewalState::Failed, None, Some(failure.message.clone())),
                None => (RenewalState::Pending, None, None),
            },
        };
        Some(RenewalStatus {
            project: watched.project,
            expires_at: watched.key.expires_at?,
            key: watched.key.id,
            state,
            successor,
            message,
        })
    }
}

/// A pair whose Active key is online, has an activation code and an expiry.
#[derive(Debug, Clone)]
struct Watched {
    project: String,
    key: Key,
    /// The id of the pair's Reserved key, if it has one.
    reserve: Option<String>,
    expired: bool,
}

impl Watched {
    fn name(&self) -> KeyName {
        (self.project.clone(), self.key.id.clone())
    }

    /// A subscription key takes no reserve: it is renewed by replacing it.
    fn replaces(&self) -> bool {
        self.key.kind == KeyKind::Subscription
    }

    /// Whether a renewal is wanted now: the pair has no reserve, and a subscription key has
    /// expired.
    fn wanted(&self) -> bool {
        self.reserve.is_none() && (self.expired || !self.replaces())
    }
}

/// The background thread's side.
struct RenewalLoop {
    engine: Weak<Inner>,
    config: Renewal,
    memory: Arc<Mutex<Memory>>,
    stop: Stop,
}

impl RenewalLoop {
    fn run(self) {
        while !self.stopped() {
            let Some(due) = self.engine().map(|e| e.due(&self.config, &self.memory)) else {
                return;
            };
            // A state that cannot be read now (refused, damaged) is looked at again next time.
            for watched in due.unwrap_or_default() {
                if self.stopped() {
                    return;
                }
                let answer = ask(self.config.renewer.as_ref(), &watched.key);
                let Some(engine) = self.engine() else {
                    return;
                };
                // The outcome is in the memory, the audit log and the key list.
                let _ = engine.settle(&watched, answer, &self.memory);
            }
            self.stop.wait(self.config.check_every);
        }
    }

    fn stopped(&self) -> bool {
        self.stop.requested()
    }

    /// The engine, while it is open; held only for a scan or an installation, never while the
    /// service is asked.
    fn engine(&self) -> Option<Engine> {
        self.engine.upgrade().map(|inner| Engine { inner })
    }
}

/// The renewer of an engine given no activation service: [`Engine::renew_now`] still finds
/// the keys due, and each is a failure that says manual renewal is needed.
struct NoService;

impl Renewer for NoService {
    fn renew(&self, _: &Key) -> std::result::Result<String, String> {
        Err("this engine has no activation service to ask".to_owned())
    }
}

/// Asks `renewer`, turning a panic in it (vendor code) into a failure instead of losing the
/// renewal thread.
fn ask(renewer: &dyn Renewer, key: &Key) -> std::result::Result<String, String> {
    catch_unwind(AssertUnwindSafe(|| renewer.renew(key)))
        .unwrap_or_else(|_| Err("the renewer panicked".to_owned()))
}

impl Engine {
    /// Starts renewing online keys as [`Renewal`] describes: what
    /// [`Options::renewal`](super::Options::renewal) does at open, for an engine opened
    /// without it. A renewal enabled before is replaced, and forgets its failures.
    pub fn enable_renewal(&self, renewal: Renewal) -> Result<()> {
        let memory = Arc::new(Mutex::new(Memory::default()));
        let (engine, config, shared) = (
            Arc::downgrade(&self.inner),
            renewal.clone(),
            Arc::clone(&memory),
        );
        let worker = Worker::spawn_unjoined("tollgate-renewal", move |stop| {
            RenewalLoop {
                engine,
                config,
                memory: shared,
                stop,
            }
            .run()
        })
        .map_err(|e| Error::io("start the renewal thread", e))?;
        *self.inner.renewal.lock() = Some(Renewals {
            config: renewal,
            memory,
            _worker: worker,
        });
        Ok(())
    }

    /// Renews `project`'s online Active keys with an activation code now, whatever their
    /// expiry, through the engine's renewer ([`Engine::enable_renewal`]), and waits for the
    /// service: each pair's key that has no reserve (a subscription key only once expired).
    /// Returns what was renewed, empty when nothing needed it.
    ///
    /// A failure changes nothing for that key, and is [`Error::RenewalFailed`] with the
    /// manual-renewal message (also in the audit log, as the background renewal reports it);
    /// the project's other pairs are still renewed, and the first failure is returned. An
    /// engine without a renewer fails so for every key it would renew.
    pub fn renew_now(&self, project: &str) -> Result<Vec<Renewed>> {
        let renewer = self
            .inner
            .renewal
            .lock()
            .as_ref()
            .map(|r| Arc::clone(&r.config.renewer));
        match renewer {
            Some(renewer) => self.renew_now_with(project, renewer.as_ref()),
            None => self.renew_now_with(project, &NoService),
        }
    }

    /// [`Engine::renew_now`] through `renewer` rather than the engine's own, for a tool that
    /// renews once and wants no background thread (`tollgate key renew`).
    pub fn renew_now_with(&self, project: &str, renewer: &dyn Renewer) -> Result<Vec<Renewed>> {
        let memory = self
            .inner
            .renewal
            .lock()
            .as_ref()
            .map_or_else(Default::default, |r| Arc::clone(&r.memory));
        let mut renewed = Vec::new();
        let mut failure = None;
        for watched in self.watched(Some(project), None)? {
            if !watched.wanted() {
                continue;
            }
            let answer = ask(renewer, &watched.key);
            match self.settle(&watched, answer, &memory) {
                Ok(Some(done)) => renewed.push(done),
                Ok(None) => {}
                Err(error) => {
                    failure.get_or_insert(error);
                }
            }
        }
        failure.map_or(Ok(renewed), Err)
    }

    /// The renewals that are due: every online Active key with an activation code that expires
    /// within the renewal lead, with where its renewal stands (pending, renewed, or failed with
    /// the manual-renewal message). Empty when the engine renews nothing. What this process
    /// knows: another process renewing the same state keeps its own account.
    pub fn renewal_status(&self) -> Result<Vec<RenewalStatus>> {
        let Some((lead, memory)) = self
            .inner
            .renewal
            .lock()
            .as_ref()
            .map(|r| (r.config.lead, Arc::clone(&r.memory)))
        else {
            return Ok(Vec::new());
        };
        let watched = self.watched(None, Some(lead))?;
        let memory = memory.lock();
        Ok(watched
            .into_iter()
            .filter_map(|w| memory.status(w))
            .collect())
    }

    /// The keys the background thread should renew now, forgetting those no longer watched.
    fn due(&self, config: &Renewal, memory: &Mutex<Memory>) -> Result<Vec<Watched>> {
        // Memory is kept for every key still watched, due or not: a key outside the lead
        // (renewed by hand with `renew_now`, say) keeps its failure episode.
        let since = Instant::now();
        let all = self.watched(None, None)?;
        let due = self.watched(None, Some(config.lead))?;
        let mut memory = memory.lock();
        memory.keep_only(&all, since);
        Ok(due
            .into_iter()
            .filter(|w| w.wanted() && memory.may_try(w, config.retry))
            .collect())
    }

    /// The pairs of `project` (or of all projects) whose Active key is online, has an
    /// activation code and an expiry, within `lead` of now if given.
    fn watched(&self, project: Option<&str>, lead: Option<Duration>) -> Result<Vec<Watched>> {
        self.inner.state.intact()?;
        let now = self.now();
        let horizon =
            lead.map(|lead| now.saturating_add(i64::try_from(lead.as_secs()).unwrap_or(i64::MAX)));
        let admin = self.inner.admin.lock();
        let pairs = match project {
            Some(name) => {
                let row = project_row(&admin.catalog, name)?;
                let pairs = admin.catalog.pairs(row.id)?;
                pairs.into_iter().map(|p| (row.clone(), p)).collect()
            }
            None => admin.catalog.all_pairs(false)?,
        };
        let mut out = Vec::new();
        for (project, pair) in pairs {
            let state = self.inner.state.record(pair.record).state();
            let Some(active) = state.active else {
                continue;
            };
            // The hot state knows the expiry: most pairs are passed over without reading the
            // catalog.
            if active.expiry == NEVER || horizon.is_some_and(|h| i64::from(active.expiry) > h) {
                continue;
            }
            let keys = admin.catalog.keys_of(pair.record)?;
            let key = key_of(&keys, active.key)?;
            let Some(expires_at) = key.expires_at else {
                continue;
            };
            if key.delivery != Delivery::Online
                || key.activation_code.is_none()
                || horizon.is_some_and(|h| expires_at.unix_timestamp() > h)
            {
                continue;
            }
            let reserve = match state.reserve {
                Some(r) => Some(key_of(&keys, r.key)?.id.clone()),
                None => None,
            };
            out.push(Watched {
                project: project.name,
                expired: key.is_expired_at(now),
                key: key.clone(),
                reserve,
            });
        }
        Ok(out)
    }

    /// Installs the renewer's answer for `watched`, and records the outcome: the memory, and
    /// on the first failure of an episode the `renewal_failed` event. `None` when another
    /// renewal (another thread or process, or the operator) got there first.
    fn settle(
        &self,
        watched: &Watched,
        answer: std::result::Result<String, String>,
        memory: &Mutex<Memory>,
    ) -> Result<Option<Renewed>> {
        let name = watched.name();
        let reason = match answer.and_then(|text| self.install(watched, &text)) {
            Ok(renewed) => {
                let mut memory = memory.lock();
                memory.failed.remove(&name);
                if let Some(renewed) = &renewed {
                    memory.renewed.insert(name, renewed.new.clone());
                }
                return Ok(renewed);
            }
            Err(reason) => reason,
        };
        let error = Error::RenewalFailed {
            project: watched.project.clone(),
            key: watched.key.id.clone(),
            reason,
        };
        let message = error.to_string();
        let report = {
            let mut memory = memory.lock();
            let failure = memory.failed.entry(name.clone()).or_insert(Failure {
                message: String::new(),
                at: Instant::now(),
                reported: false,
            });
            failure.message.clone_from(&message);
            failure.at = Instant::now();
            !failure.reported
        };
        // Not reported if the audit log cannot be written now: the next failure tries again.
        if report && self.record_failure(watched, message).is_ok() {
            if let Some(failure) = memory.lock().failed.get_mut(&name) {
                failure.reported = true;
            }
        }
        Err(error)
    }

    /// Verifies the license `text` as any key is, and makes its key the reserve of the pair
    /// (or its Active key, see [`Renewed::role`]), if the pair still wants it. Every refusal
    /// is a reason for the manual-renewal message.
    fn install(
        &self,
        watched: &Watched,
        text: &str,
    ) -> std::result::Result<Option<Renewed>, String> {
        let refused = |e: Error| e.to_string();
        let license = SignedLicense::from_json(text).map_err(|e| refused(e.into()))?;
        let code = watched.key.activation_code.as_deref();
        let issued_for = issued_for(text);
        if issued_for.as_deref() != code {
            return Err(format!(
                "the license is for activation code {}, not \"{}\"",
                issued_for.map_or("none".into(), |c| format!("\"{c}\"")),
                code.unwrap_or_default()
            ));
        }
        let license = KeyOrLicense::from(license);
        let new = license.id().to_owned();
        let admin = self.admin().map_err(refused)?;
        if !self.still_wanted(&admin, watched).map_err(refused)? {
            return Ok(None);
        }
        let vetted = self.vet(&admin, license).map_err(refused)?;
        let role = if watched.replaces() {
            self.replace_locked(&admin, &watched.project, vetted, &self.when())
                .map_err(refused)?;
            Role::Active
        } else {
            self.admit_locked(&admin, &watched.project, vetted, true, &self.when())
                .map_err(refused)?
                .role
        };
        Ok(Some(Renewed {
            project: watched.project.clone(),
            old: watched.key.id.clone(),
            new,
            role,
        }))
    }

    /// Whether the key `watched` names is still an Active key of its project with no reserve;
    /// the caller holds the admin lock, so it stays so until the caller's change.
    fn still_wanted(&self, admin: &Admin, watched: &Watched) -> Result<bool> {
        let project = project_row(&admin.catalog, &watched.project)?;
        for pair in admin.catalog.pairs(project.id)? {
            let state = self.inner.state.record(pair.record).state();
            let Some(active) = state.active else {
                continue;
            };
            let keys = admin.catalog.keys_of(pair.record)?;
            if key_of(&keys, active.key)?.id == watched.key.id {
                return Ok(state.reserve.is_none());
            }
        }
        Ok(false)
    }

    /// Appends the `renewal_failed` event to the audit log and tells subscribers.
    fn record_failure(&self, watched: &Watched, message: String) -> Result<()> {
        let admin = self.admin()?;
        let tx = admin.catalog.begin()?;
        let event = EventKind::RenewalFailed {
            key: watched.key.id.clone(),
            reason: message,
        };
        let events = Catalog::append_events_in(&tx, &[(watched.project.clone(), event)])?;
        tx.commit()
            .map_err(Error::store("commit renewal failure"))?;
        self.inner.subscribers.broadcast(&events);
        Ok(())
    }
}

/// The activation code the license's key names, read before verification: verification then
/// checks that the signature covers this very key.
pub(super) fn issued_for(text: &str) -> Option<String> {
    let value: Value = serde_json::from_str(text).ok()?;
    value["key"]["activation_code"].as_str().map(str::to_owned)
}
