//! Why a command failed, which exit status that is, and how it is told to the operator.

use std::io::{self, Write};

use serde::Serialize;
use tollgate_core::{Error, Refusal};

/// Exit status of a refused or failed operation (clap uses 2 for usage errors).
pub const EXIT_REFUSED: u8 = 1;

/// Exit status of a usage error found after the command line parsed (clap's own is 2 too).
pub const EXIT_USAGE: u8 = 2;

/// Exit status of `tollgate pipe` when no key covers the next bytes: everything granted was
/// forwarded, and the stream stopped there.
pub const EXIT_NOT_COVERED: u8 = 3;

/// A command that did not succeed.
#[derive(Debug)]
pub enum Failure {
    /// Tollgate refused the operation, or could not do it: exit status 1.
    Refused {
        /// A stable upper-case code naming the rule or condition, e.g. `TYPE_MISMATCH`.
        code: &'static str,
        /// What happened, naming the values at fault.
        message: String,
        /// The rule that refused it, in words, when there is one.
        rule: Option<&'static str>,
    },
    /// A check failed whose evidence the output already shows (the demo's invariants): exit
    /// status 1, with the message on standard error only so `--json` output stays one document.
    Shown {
        /// What did not hold.
        message: String,
    },
    /// The options parsed but cannot be used together (e.g. `console --listen` beyond
    /// loopback without `--token`): exit status 2, like clap's usage errors.
    Usage {
        /// What is wrong and how to fix it.
        message: String,
    },
    /// Writing the output failed; a closed pipe (`| head`) is not an error.
    Output(io::Error),
    /// `tollgate pipe` stopped because no key covers the next bytes (`EXHAUSTED`, `EXPIRED`,
    /// `NO_ACTIVE_KEY`): exit status 3. Told on standard error only, even with `--json`, since
    /// standard output carries the data.
    NotCovered {
        /// The refusal's code.
        code: &'static str,
        /// What happened.
        message: String,
        /// The rule that refused it.
        rule: Option<&'static str>,
    },
}

impl Failure {
    /// A refusal that comes from the command line tool itself rather than the engine.
    pub fn refused(
        code: &'static str,
        message: impl Into<String>,
        rule: Option<&'static str>,
    ) -> Self {
        Failure::Refused {
            code,
            message: message.into(),
            rule,
        }
    }
}

impl Failure {
    /// The hot-path refusal that stopped `tollgate pipe`, for exit status 3. An exhausted pair
    /// gets the rule `pipe` follows rather than `consume`'s all-or-nothing one.
    pub fn not_covered(refusal: Refusal) -> Self {
        let error = Error::from(refusal);
        let (code, rule) = match describe(&error) {
            (code @ "EXHAUSTED", _) => (code, Some("pipe forwards exactly the bytes the Active and Reserved keys still grant, then stops: add a key (`tollgate key add-reserve`) to meter more")),
            described => described,
        };
        Failure::NotCovered {
            code,
            message: error.to_string(),
            rule,
        }
    }
}

impl From<Error> for Failure {
    fn from(error: Error) -> Failure {
        let (code, rule) = describe(&error);
        Failure::Refused {
            code,
            message: error.to_string(),
            rule,
        }
    }
}

impl From<Refusal> for Failure {
    fn from(refusal: Refusal) -> Failure {
        Error::from(refusal).into()
    }
}

impl From<tollgate_store::Error> for Failure {
    fn from(error: tollgate_store::Error) -> Failure {
        let (code, rule) = describe_store(&error);
        Failure::Refused {
            code,
            message: error.to_string(),
            rule,
        }
    }
}

impl From<io::Error> for Failure {
    fn from(error: io::Error) -> Failure {
        Failure::Output(error)
    }
}

/// The code and rule of an engine error. The codes are those rule R6 in docs/rules.md names, where
/// it names one.
pub fn describe(error: &Error) -> (&'static str, Option<&'static str>) {
    match error {
        Error::InvalidArgument { .. } => ("INVALID_ARGUMENT", None),
        Error::ProjectNotFound { .. } => ("PROJECT_NOT_FOUND", None),
        Error::ReserveNotFound { .. } => ("RESERVE_NOT_FOUND", None),
        Error::ProjectExists { .. } => ("PROJECT_EXISTS", Some("project names are unique within a state")),
        Error::Exhausted { .. } => ("EXHAUSTED", Some("a grant is all or nothing: nothing was charged")),
        Error::Expired => ("EXPIRED", Some("an expired key meters nothing; a Reserved key that has not expired takes over")),
        Error::Unavailable => ("UNAVAILABLE", Some("a fleet host grants only from what it leased from the store; never unmetered")),
        Error::NoActiveKey => ("NO_ACTIVE_KEY", Some("a Reserved key backs up an Active key: add the Active key first")),
        Error::ReserveOccupied { .. } => ("RESERVE_OCCUPIED", Some("a project holds one Active and at most one Reserved key: you can add only one additional key per project")),
        Error::Subscription { .. } => ("SUBSCRIPTION", Some("subscription keys take no Reserved key, and cannot be one")),
        Error::TypeMismatch { .. } => ("TYPE_MISMATCH", Some("both keys must be of the same type (both Online or both Offline)")),
        Error::EditionMismatch { .. } => ("EDITION_MISMATCH", Some("both keys must be of the same edition")),
        Error::SchemeMismatch { .. } => ("SCHEME_MISMATCH", Some("both keys must limit the same thing: data volume, server machines, desktop machines, cores or an instance")),
        Error::DuplicateKey { .. } => ("DUPLICATE_KEY", Some("a key id is used once in a state")),
        Error::KeyExpired { .. } => ("EXPIRED", Some("an expired key cannot be added")),
        Error::CorruptState { .. } => ("CORRUPT_STATE", Some("a damaged state is refused, never silently reinitialised")),
        Error::Capacity { .. } => ("CAPACITY", Some("the number of slot pairs is fixed by `tollgate init --capacity N`")),
        Error::SeatsExhausted { .. } => ("SEATS_EXHAUSTED", Some("a seat grant is all or nothing: the Active key's amount bounds the seats held at once in all the projects that hold it, and nothing was taken")),
        Error::NotHeld { .. } => ("NOT_HELD", Some("only seats you hold can be given back: nothing was released")),
        Error::SlotsFull { .. } => ("SLOTS_FULL", Some("one lease slot per live thread handle: close handles, or end processes that hold them")),
        Error::HoldersFull { .. } => ("HOLDERS_FULL", Some("the seat-holder table has one entry per process and pair: `tollgate seat reclaim` frees those of ended processes")),
        Error::PaymentModeMismatch { .. } => ("PAYMENT_MODE_MISMATCH", Some("the payment mode is chosen at the first purchase and fixed for every later one")),
        Error::NoLicenseAvailable { .. } => ("NO_LICENSE_AVAILABLE", Some("an instance takes a valid, unassigned license of a type that fits its OS (macOS and Linux need Desktop or Server) from its company's pool first, then the global pool")),
        Error::LicenseTypeUnfit { .. } => ("LICENSE_TYPE_UNFIT", Some("Workstation licenses fit Windows only: macOS and Linux need a Desktop or Server license")),
        Error::AlreadyAssigned { .. } => ("ALREADY_ASSIGNED", Some("an instance holds one valid license at a time: unassign it first")),
        Error::NotAssigned { .. } => ("NOT_ASSIGNED", None),
        Error::InstanceNotFound { .. } => ("INSTANCE_NOT_FOUND", None),
        Error::GroupNotFound { .. } => ("GROUP_NOT_FOUND", None),
        Error::Unsupported { .. } => ("UNSUPPORTED", None),
        Error::BadSignature { .. } => ("BAD_SIGNATURE", Some("once a state trusts a vendor key, every key, offline or online, must come as a license file signed by a trusted key and unchanged since: ask the vendor for one (`tollgate trust list` shows the trusted keys)")),
        Error::RenewalFailed { .. } => ("RENEWAL_FAILED", Some("an online key with an activation code is renewed by the vendor's activation service; when it cannot be, nothing changes and the license must be renewed by hand: add the new key with `tollgate key add-reserve`")),
        Error::ActivationFailed { .. } => ("ACTIVATION_FAILED", Some("an activation code is turned into a key by the vendor's activation service, which activates each code on as many machines as the vendor sold: ask the vendor for another code or more activations, or check --activation-url")),
        Error::Tampered { .. } => ("TAMPERED", Some("a state restored from an older copy, or with edited checkpoints or time, is refused until an operator runs `tollgate state accept-rollback`; edited license terms are never accepted")),
        Error::InstallationMismatch { .. } => ("INSTALLATION_MISMATCH", Some("a state's checkpoints are verified with the key of the installation that made them: give the same installation directory (`TOLLGATE_INSTALLATION`) to every program that opens the state")),
        Error::AdminLockBusy { .. } => ("BUSY", Some("another process was making an admin change to this state for longer than the timeout: try again once it is done")),
        Error::Io { .. } => ("IO", None),
        Error::Store { .. } => ("STORE", None),
    }
}

/// The code and rule of a fleet store error (`tollgate-store`, docs/fleet-store.md).
pub fn describe_store(error: &tollgate_store::Error) -> (&'static str, Option<&'static str>) {
    use tollgate_store::Error as E;
    match error {
        E::Unavailable(_) => ("UNAVAILABLE", Some("the fleet store must be reachable: start it or check --store; every lease operation is safe to run again, and one cut off is applied at most once")),
        E::Database(_) => ("STORE", None),
        E::SchemaTooNew { .. } => ("SCHEMA_TOO_NEW", Some("a fleet store migrated by a newer Tollgate is refused by an older one: upgrade this program")),
        E::Exhausted { .. } => ("EXHAUSTED", Some("a key account never leases more than its amount")),
        E::AccountNotFound { .. } => ("ACCOUNT_NOT_FOUND", None),
        E::AccountConflict { .. } => ("ACCOUNT_CONFLICT", Some("a key account's kind and amount are fixed when it is created")),
        E::WrongKind { .. } => ("WRONG_KIND", None),
        E::HostNotFound { .. } => ("HOST_NOT_FOUND", None),
        E::LeaseNotFound(_) => ("LEASE_NOT_FOUND", None),
        E::StaleSequence { .. } => ("STALE_SEQUENCE", Some("a lease's renewals are applied once each, in order")),
        E::OutOfOrder { .. } => ("OUT_OF_ORDER", Some("a lease's renewals are applied once each, in order")),
        E::LeaseExpired(_) => ("LEASE_EXPIRED", Some("an expired lease cannot be renewed, only settled")),
        E::LeaseClosed { .. } => ("LEASE_CLOSED", Some("a lease's state only moves forward: an open lease is reclaimed or settled, a reclaimed one settled by its host or written off, once; only a reclaimed lease's in-doubt part can be written off")),
        E::OutOfRange { .. } => ("OUT_OF_RANGE", Some("a lease's figures only grow, with reported <= drawn <= granted")),
        E::SettleConflict { .. } => ("SETTLE_CONFLICT", Some("a lease is settled once, with one usage")),
        E::InvalidArgument { .. } => ("INVALID_ARGUMENT", None),
        _ => ("STORE", None),
    }
}

#[derive(Serialize)]
struct ErrorDocument<'a> {
    error: ErrorBody<'a>,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    code: &'a str,
    message: &'a str,
    rule: Option<&'a str>,
}

/// Tells the operator about a failure and returns the exit status. With `--json` the failure
/// is also printed on standard output as `{"error": {"code", "message", "rule"}}`.
pub fn report(failure: &Failure, json: bool) -> u8 {
    match failure {
        Failure::Output(e) if e.kind() == io::ErrorKind::BrokenPipe => 0,
        Failure::Shown { message } => {
            eprintln!("error: {message}");
            EXIT_REFUSED
        }
        Failure::Usage { message } => {
            eprintln!("error: {message}");
            EXIT_USAGE
        }
        Failure::Output(e) => {
            eprintln!("error: cannot write the output: {e}");
            EXIT_REFUSED
        }
        Failure::Refused {
            code,
            message,
            rule,
        } => {
            print_refusal(code, message, *rule);
            if json {
                let document = ErrorDocument {
                    error: ErrorBody {
                        code,
                        message,
                        rule: *rule,
                    },
                };
                let mut stdout = io::stdout().lock();
                // The failure is already on stderr; a closed stdout loses only the copy.
                let _ = serde_json::to_writer_pretty(&mut stdout, &document)
                    .map_err(io::Error::from)
                    .and_then(|()| writeln!(stdout));
            }
            EXIT_REFUSED
        }
        Failure::NotCovered {
            code,
            message,
            rule,
        } => {
            print_refusal(code, message, *rule);
            EXIT_NOT_COVERED
        }
    }
}

fn print_refusal(code: &str, message: &str, rule: Option<&str>) {
    eprintln!("error: {message}");
    if let Some(rule) = rule {
        eprintln!("  rule {code}: {rule}");
    }
}
