//! The command line: every command and option, with the help text a person learns from.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{Date, OffsetDateTime};
use tollgate_core::{
    Delivery, Edition, KeyKind, MachineOs, Period, DEFAULT_CAPACITY, MAX_CAPACITY,
};

use crate::size::parse_size;

mod activation;
mod lease;
mod pipe;
mod pools;
mod serve;

pub use activation::{ActivateArgs, RenewArgs, ServeActivationArgs, ServiceArgs};
pub use lease::LeaseCommand;
pub use pipe::PipeArgs;
pub use pools::{
    BuyArgs, GroupCommand, InstanceCommand, ListArgs, PoolCommand, ReserveTarget, SeatArgs,
    SeatCommand,
};
pub use serve::{ConsoleArgs, MetricsArgs};

/// The state directory used when neither `--state` nor `$TOLLGATE_HOME` is given.
pub const DEFAULT_STATE_DIR: &str = "./tollgate-state";

/// Operate the Tollgate license-metering engine: projects, license keys, usage and the audit
/// log of a state directory.
#[derive(Debug, Parser)]
#[command(
    name = "tollgate",
    version,
    after_help = "Exit status: 0 on success, 1 when Tollgate refuses the operation (the message \
says which rule), 2 on a usage error, 3 when `tollgate pipe` stops because no key covers the \
next bytes.\n\nFirst time here? Run `tollgate demo`."
)]
pub struct Cli {
    /// State directory, shared by every process that meters the same projects; created on
    /// first use [default: $TOLLGATE_HOME, else ./tollgate-state]
    #[arg(long, global = true, env = "TOLLGATE_HOME", value_name = "DIR")]
    pub state: Option<PathBuf>,

    /// Print JSON instead of text: one document per command, one line per event when streaming
    #[arg(long, global = true)]
    pub json: bool,

    /// The fleet store: a PostgreSQL connection URL (`postgresql://…`) or `key=value`
    /// parameters. `lease …` uses it alone; with --host, `project …`, `key
    /// add|add-reserve|replace|remove-reserve|list`, `group …`, `pool …`, `instance
    /// add|assign|unassign|list`, `usage`, `events` and `pipe` run in fleet mode (admin changes
    /// through the store, on every host); every other command refuses it
    #[arg(
        long,
        global = true,
        env = "TOLLGATE_STORE",
        value_name = "URL",
        hide_env_values = true
    )]
    pub store: Option<String>,

    /// This host's name in the fleet store: with --store, the commands that run in fleet mode
    /// (see --store) run as this host; `lease list` shows only its leases; every other command
    /// refuses it
    #[arg(long, global = true, env = "TOLLGATE_HOST", value_name = "NAME")]
    pub host: Option<String>,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a new state directory; refused if one already exists there
    Init {
        /// How many slot pairs the state holds; each project uses one per license class
        /// (data volume, server machines, desktop machines, cores, instance). Fixed at creation
        #[arg(long, value_name = "N", default_value_t = DEFAULT_CAPACITY,
              value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_CAPACITY)))]
        capacity: u32,
    },
    /// Create, list and show projects
    #[command(subcommand)]
    Project(ProjectCommand),
    /// Add, replace, remove and list license keys
    #[command(subcommand)]
    Key(KeyCommand),
    /// Show data-volume usage: a table of every project, or one project in detail
    Usage {
        /// Show only this project, in detail
        project: Option<String>,
    },
    /// Show the audit log: key changes, switches, thresholds, refusals
    Events(EventsArgs),
    /// Buy license pools, list them, and work out how many more to buy
    #[command(subcommand)]
    Pool(PoolCommand),
    /// Register instances and assign them pool licenses; check one the way a backup job does
    #[command(subcommand)]
    Instance(InstanceCommand),
    /// Group projects (a cluster of SVMs) for `key add-reserve --group`
    #[command(subcommand)]
    Group(GroupCommand),
    /// Take and give back seats of per-machine, per-core and per-instance keys
    #[command(subcommand)]
    Seat(SeatCommand),
    /// Run a simulated multi-threaded migration and watch the Active key run out and the
    /// Reserved key take over, on a fresh temporary state (or the --state given on the line)
    Demo(DemoArgs),
    /// The vendor's side of signed offline licenses: make a vendor key pair, sign keys, check
    /// license files. Uses no state directory
    #[command(subcommand)]
    License(LicenseCommand),
    /// Run the vendor's online activation service in the foreground, until Ctrl-C or SIGTERM:
    /// it activates codes and renews online keys with signed licenses. Uses no state directory
    ServeActivation(ServeActivationArgs),
    /// The vendor public keys this state trusts: once it trusts one, every key added, offline
    /// or online, must be a license file signed by a trusted key (`key add PROJECT --file
    /// KEY.lic`)
    #[command(subcommand)]
    Trust(TrustCommand),
    /// Operator decisions about the state itself
    #[command(subcommand)]
    State(StateCommand),
    /// Copy standard input to standard output and charge every byte to a project's
    /// data-volume keys: `pg_dump src | tollgate pipe --project P | psql dst`. Exit status 3
    /// when no key covers the next bytes
    Pipe(PipeArgs),
    /// Print every data-volume key's usage, the switches, refusals and seats in the
    /// Prometheus text format, or serve them at /metrics with --listen
    Metrics(MetricsArgs),
    /// Serve the web management console: projects and their license cards (live), the
    /// license pools with filters and purchases, instances, the activation task and the
    /// audit log. Loopback only unless --token; serves until Ctrl-C or SIGTERM
    Console(ConsoleArgs),
    /// The fleet store's leases, for the operator: list them, reclaim expired ones, write off
    /// what stays in doubt. Needs --store URL (or $TOLLGATE_STORE); uses no state directory
    #[command(subcommand)]
    Lease(LeaseCommand),
    /// Print the shell completion script for SHELL (e.g. `tollgate completions bash >
    /// /etc/bash_completion.d/tollgate`). Uses no state directory
    Completions {
        /// The shell
        shell: clap_complete::Shell,
    },
    /// Write the man pages into DIR: tollgate.1 and one per command (tollgate-project-create.1,
    /// …). Uses no state directory
    Man {
        /// Where to write them (created if missing)
        dir: PathBuf,
    },
}

/// `tollgate state …`
#[derive(Debug, Subcommand)]
pub enum StateCommand {
    /// Accept a state the engine refuses as restored from an older copy or edited
    /// (`TAMPERED`): it opens from now on, and the acceptance is recorded in the audit log
    AcceptRollback,
    /// Lower the latest time seen to the system clock's, after the clock was once set in the
    /// future and keys expiring before that time expired for good; the decision is recorded in
    /// the audit log. Stop the programs using the state first
    AcceptClock,
}

/// `tollgate project …`
#[derive(Debug, Subcommand)]
pub enum ProjectCommand {
    /// Create a project (UTF-8 name, 1 to 64 bytes)
    Create {
        /// The project name
        name: String,
    },
    /// List every project with its Active and Reserved keys
    List,
    /// Show a project's license cards: status, type, expiry, usage and the Add License action
    Show {
        /// The project name
        name: String,
    },
}

/// `tollgate key …`
#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Add a key: the first key of a project becomes Active, a second one Reserved
    Add {
        /// The project
        project: String,
        /// The key
        #[command(flatten)]
        key: KeyArgs,
    },
    /// Add a key as the Reserved key only, where a project has an Active key of the key's
    /// class: to one PROJECT, or in bulk to --all projects, a --group or one --project
    ///
    /// The bulk forms print one line per project, "PROJECT: added as reserve" or
    /// "PROJECT: RULE_CODE message"; a refusal on one project never stops the others. Exit
    /// status: 0 when every project took the key, 1 when any refused it.
    #[command(after_help = "Example: tollgate key add-reserve --group cluster-1 --file KEY.json")]
    AddReserve {
        /// Where the key goes
        #[command(flatten)]
        target: ReserveTarget,
        /// The key
        #[command(flatten)]
        key: KeyArgs,
    },
    /// Replace the Active key (renewal); a Reserved key that expires before the new key's
    /// term ends is removed
    Replace {
        /// The project
        project: String,
        /// The new Active key
        #[command(flatten)]
        key: KeyArgs,
    },
    /// Remove the Reserved key before it is used
    RemoveReserve {
        /// The project
        project: String,
        /// The id of the Reserved key
        key_id: String,
    },
    /// List every key a project ever held, with its status and usage
    List {
        /// The project
        project: String,
    },
    /// List the closed usage periods of a key with a reset (`--reset`), oldest first: when
    /// each started and ended, and what it used over every project holding the key
    Periods {
        /// The key id
        key_id: String,
    },
    /// Renew a project's online keys now through the vendor's activation service: each
    /// online Active key with an activation code and no Reserved key gets its successor as the
    /// Reserved key (or as the Active key, once it has expired). Exit status 1, with the
    /// manual-renewal message, when the service cannot renew a key; nothing changes then
    Renew(RenewArgs),
    /// Activate an activation code through the vendor's activation service and add the online
    /// key it issues for this machine: to one PROJECT, or as the Reserved key of --all
    /// projects, a --group or one --project. Exit status 1, with the service's reason, when
    /// the code cannot be activated (unknown, no activations left, service unreachable);
    /// nothing changes then
    Activate(ActivateArgs),
}

/// `tollgate license …`
#[derive(Debug, Subcommand)]
pub enum LicenseCommand {
    /// Create a vendor key pair: DIR/vendor.key, the secret signing key (readable by you only),
    /// and DIR/vendor.pub, the public key customers' engines trust. Refused if either exists
    Keygen {
        /// Directory for the two files; created if missing
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
    /// Sign a key with the vendor's secret key and print the license file (KEY.lic) on
    /// standard output
    Sign {
        /// The vendor's secret key, written by `tollgate license keygen`
        #[arg(long, value_name = "DIR/vendor.key")]
        key: PathBuf,
        /// The key JSON to sign ("-" for standard input), the form `key add --file` reads
        #[arg(value_name = "KEY.json")]
        file: PathBuf,
    },
    /// Check a license file: exit 0 when a trusted vendor key signed it and it is unchanged
    /// since; 1, with the reason, when it is unsigned, altered, signed by another key or
    /// malformed
    Verify {
        /// A trusted vendor public key; repeat for several
        #[arg(long = "pub", value_name = "DIR/vendor.pub", required = true)]
        public: Vec<PathBuf>,
        /// The license file ("-" for standard input)
        #[arg(value_name = "KEY.lic")]
        file: PathBuf,
    },
}

/// `tollgate trust …`
#[derive(Debug, Subcommand)]
pub enum TrustCommand {
    /// Trust a vendor public key in this state, for good: from now on every key added, offline
    /// or online, must be signed by a trusted vendor key. A state cannot be made to forget a
    /// key it trusts
    Add {
        /// The vendor's public key, written by `tollgate license keygen`
        #[arg(value_name = "DIR/vendor.pub")]
        public: PathBuf,
    },
    /// List the vendor public keys this state trusts; none means development mode, where
    /// unsigned keys are accepted
    List,
}

/// A license key, from a JSON file or from flags.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("scheme").args(["limit", "machines", "cores", "per_instance"])))]
pub struct KeyArgs {
    /// Read the key from a file ("-" for standard input): key JSON, {"id": …, "delivery": …,
    /// "kind": …, "edition": …, "scheme": {"data_volume": {"limit_bytes": …}}, …}, the form of
    /// the "key" objects `key list --json` prints; or a signed license file (KEY.lic), which a
    /// state that trusts a vendor key requires for every key
    #[arg(long, value_name = "KEY.json|KEY.lic", conflicts_with_all = [
        "id", "delivery", "kind", "edition", "limit", "machines", "os", "cores",
        "per_instance", "expires", "auto_renew", "company", "activation_code", "grace_days",
        "overage_percent", "reset",
    ])]
    pub file: Option<PathBuf>,

    /// Unique key id (1 to 64 bytes)
    #[arg(long, required_unless_present = "file")]
    pub id: Option<String>,

    /// How the key is delivered: the card's Type field. Both keys of a project must match
    #[arg(long, value_enum, required_unless_present = "file")]
    pub delivery: Option<DeliveryArg>,

    /// Commercial nature [default: commercial]
    #[arg(long, value_enum)]
    pub kind: Option<KindArg>,

    /// Product edition [default: standard]
    #[arg(long, value_enum)]
    pub edition: Option<EditionArg>,

    /// Data-volume limit: bytes, or a number with B/KB/MB/GB/TB (powers of 1000) or
    /// KiB/MiB/GiB/TiB (powers of 1024)
    #[arg(long, value_name = "SIZE", value_parser = parse_size,
          required_unless_present_any = ["file", "machines", "cores", "per_instance"])]
    pub limit: Option<u64>,

    /// Per-machine key: how many protected machines at once (needs --os)
    #[arg(long, value_name = "N", requires = "os")]
    pub machines: Option<u32>,

    /// Per-machine key: which operating systems it covers
    #[arg(long, value_enum, requires = "machines")]
    pub os: Option<OsArg>,

    /// Per-core key: how many processor cores at once
    #[arg(long, value_name = "N")]
    pub cores: Option<u32>,

    /// Per-instance key: one instance
    #[arg(long)]
    pub per_instance: bool,

    /// Expiry: a date (2027-01-01, meaning 00:00 UTC) or an RFC 3339 instant
    /// (2027-01-01T12:00:00+02:00) [default: never]
    #[arg(long, value_name = "WHEN", value_parser = parse_instant)]
    pub expires: Option<OffsetDateTime>,

    /// The vendor renews the key automatically
    #[arg(long)]
    pub auto_renew: bool,

    /// The company that owns the key
    #[arg(long)]
    pub company: Option<String>,

    /// Code that lets an online key be renewed by the activation service
    #[arg(long, value_name = "CODE")]
    pub activation_code: Option<String>,

    /// Days an expired data-volume key keeps granting while no valid reserve can take over
    /// (1 to 365; needs --expires)
    #[arg(long, value_name = "DAYS", requires = "expires")]
    pub grace_days: Option<u32>,

    /// How far past its limit a data-volume key may be used once no Reserved key is held, in
    /// percent of the limit (1 to 100)
    #[arg(long, value_name = "PERCENT")]
    pub overage_percent: Option<u32>,

    /// When a data-volume key's usage returns to 0: at 00:00 UTC every day, every Monday, on
    /// the first of every month or of every year. Each closed period's usage is kept (`key
    /// periods`)
    #[arg(long, value_enum, value_name = "PERIOD")]
    pub reset: Option<ResetArg>,
}

/// `tollgate events …`
#[derive(Debug, Args)]
pub struct EventsArgs {
    /// Keep running and print new events as they are recorded, until interrupted (Ctrl-C)
    #[arg(long, short)]
    pub follow: bool,

    /// Start after this point: an event sequence number (events after it), or a date or
    /// RFC 3339 instant (events at or after it)
    #[arg(long, value_name = "SEQ|WHEN", value_parser = parse_since)]
    pub since: Option<Since>,

    /// Only events of this project
    #[arg(long)]
    pub project: Option<String>,
}

/// `tollgate demo …`
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Limit of each of the two keys; the migration moves twice this in total
    #[arg(long, value_name = "SIZE", value_parser = parse_size, default_value = "2GiB")]
    pub volume: u64,

    /// Migration threads calling `consume` concurrently
    #[arg(long, value_name = "N", default_value_t = 4,
          value_parser = clap::value_parser!(u16).range(1..=64))]
    pub threads: u16,

    /// Roughly how long the simulated copy takes, in seconds; 0 runs it unpaced, as fast as
    /// the threads can call
    #[arg(long, value_name = "SECONDS", default_value_t = 3.0, value_parser = parse_pace)]
    pub pace: f64,
}

/// Where `tollgate events` starts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Since {
    /// After this sequence number.
    Seq(u64),
    /// At or after this instant.
    Time(OffsetDateTime),
}

/// Online or offline delivery.
/// `--reset`: a key's usage period.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ResetArg {
    Daily,
    Weekly,
    Monthly,
    Yearly,
}

impl From<ResetArg> for Period {
    fn from(arg: ResetArg) -> Period {
        match arg {
            ResetArg::Daily => Period::Daily,
            ResetArg::Weekly => Period::Weekly,
            ResetArg::Monthly => Period::Monthly,
            ResetArg::Yearly => Period::Yearly,
        }
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum DeliveryArg {
    /// Activated against the vendor's service
    Online,
    /// Activated from a license file
    Offline,
}

/// Commercial, trial or subscription.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum KindArg {
    /// Bought outright
    Commercial,
    /// Evaluation
    Trial,
    /// Paid per period; takes no Reserved key
    Subscription,
}

/// Standard or enterprise.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum EditionArg {
    /// Standard edition
    Standard,
    /// Enterprise edition
    Enterprise,
}

/// Server or desktop machines.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum OsArg {
    /// Server operating systems
    Server,
    /// Desktop operating systems
    Desktop,
}

impl From<DeliveryArg> for Delivery {
    fn from(arg: DeliveryArg) -> Delivery {
        match arg {
            DeliveryArg::Online => Delivery::Online,
            DeliveryArg::Offline => Delivery::Offline,
        }
    }
}

impl From<KindArg> for KeyKind {
    fn from(arg: KindArg) -> KeyKind {
        match arg {
            KindArg::Commercial => KeyKind::Commercial,
            KindArg::Trial => KeyKind::Trial,
            KindArg::Subscription => KeyKind::Subscription,
        }
    }
}

impl From<EditionArg> for Edition {
    fn from(arg: EditionArg) -> Edition {
        match arg {
            EditionArg::Standard => Edition::Standard,
            EditionArg::Enterprise => Edition::Enterprise,
        }
    }
}

impl From<OsArg> for MachineOs {
    fn from(arg: OsArg) -> MachineOs {
        match arg {
            OsArg::Server => MachineOs::Server,
            OsArg::Desktop => MachineOs::Desktop,
        }
    }
}

/// Parses an RFC 3339 instant, or a plain date meaning 00:00 UTC that day.
pub fn parse_instant(text: &str) -> Result<OffsetDateTime, String> {
    let text = text.trim();
    if let Ok(at) = OffsetDateTime::parse(text, &Rfc3339) {
        return Ok(at);
    }
    Date::parse(text, format_description!("[year]-[month]-[day]"))
        .map(|date| date.midnight().assume_utc())
        .map_err(|_| {
            format!("\"{text}\" is neither a date like 2027-01-01 nor an RFC 3339 instant like 2027-01-01T12:00:00Z")
        })
}

fn parse_since(text: &str) -> Result<Since, String> {
    match text.trim().parse::<u64>() {
        Ok(seq) => Ok(Since::Seq(seq)),
        Err(_) => parse_instant(text)
            .map(Since::Time)
            .map_err(|e| format!("{e}, nor a sequence number")),
    }
}

fn parse_pace(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(secs) if (0.0..=600.0).contains(&secs) => Ok(secs),
        _ => Err(format!(
            "\"{text}\" is not a number of seconds from 0 to 600"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn instants_parse_as_dates_or_rfc3339() {
        assert_eq!(
            parse_instant("2027-01-01").unwrap().unix_timestamp(),
            1_798_761_600
        );
        assert_eq!(
            parse_instant("2027-01-01T02:00:00+02:00")
                .unwrap()
                .unix_timestamp(),
            1_798_761_600
        );
        assert!(parse_instant("next tuesday").is_err());
    }

    #[test]
    fn since_is_a_sequence_or_an_instant() {
        assert_eq!(parse_since("42"), Ok(Since::Seq(42)));
        assert!(matches!(parse_since("2027-01-01"), Ok(Since::Time(_))));
        assert!(parse_since("soon").unwrap_err().contains("sequence number"));
    }
}
