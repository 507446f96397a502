//! The command line of license pools, instances, groups and seats (rules R8, R16, R17 and R22–R26
//! in docs/rules.md).

use clap::{Args, Subcommand, ValueEnum};
use time::OffsetDateTime;
use tollgate_core::{
    InstanceOs, LicenseClass, LicenseFilter, LicenseType, PaymentMode, PoolKind, MAX_QUANTITY,
};

use super::parse_instant;

/// `tollgate pool …`
#[derive(Debug, Subcommand)]
pub enum PoolCommand {
    /// Buy licenses into the global pool, or into a company's pool with --company. The first
    /// purchase fixes the payment mode: a later purchase with the other mode is refused
    Buy(BuyArgs),
    /// List pool licenses grouped by type, with counts; filters combine. A type never
    /// purchased says "You have not purchased licenses of this type"
    List(ListArgs),
    /// How many licenses of each type to buy so every instance stays licensed for the next
    /// DAYS days: instances without a valid license, plus licenses that expire within DAYS
    /// without auto-renew, less what unassigned licenses in the pools already cover
    Shortfall {
        /// The horizon, in days
        #[arg(long, value_name = "DAYS", default_value_t = 30)]
        days: u32,
    },
}

/// `tollgate pool buy …`
#[derive(Debug, Args)]
pub struct BuyArgs {
    /// The license type: server and desktop fit every OS, workstation fits Windows only
    #[arg(long = "type", value_enum, value_name = "TYPE")]
    pub license_type: LicenseTypeArg,

    /// How many licenses
    #[arg(long, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_QUANTITY)))]
    pub quantity: u32,

    /// How purchases are paid; fixed by the first purchase
    #[arg(long, value_enum)]
    pub mode: PaymentModeArg,

    /// Buy into this company's pool instead of the global pool
    #[arg(long)]
    pub company: Option<String>,

    /// Trial licenses instead of commercial ones
    #[arg(long)]
    pub trial: bool,

    /// End of the term: a date (2027-12-31, meaning 00:00 UTC) or an RFC 3339 instant
    /// [default: never]
    #[arg(long, value_name = "WHEN", value_parser = parse_instant)]
    pub expires: Option<OffsetDateTime>,

    /// The licenses renew automatically at the end of the term
    #[arg(long)]
    pub auto_renew: bool,

    /// Add the Premium Support service to the purchase
    #[arg(long)]
    pub premium_support: bool,

    /// Add the Onboarding service to the purchase
    #[arg(long)]
    pub onboarding: bool,
}

/// `tollgate pool list …`
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only this type
    #[arg(long = "type", value_enum, value_name = "TYPE")]
    pub license_type: Option<LicenseTypeArg>,

    /// Only licenses used for this company: its pool and the licenses assigned to its instances
    #[arg(long)]
    pub company: Option<String>,

    /// Only commercial licenses
    #[arg(long, conflicts_with = "trial")]
    pub commercial: bool,

    /// Only trial licenses
    #[arg(long)]
    pub trial: bool,

    /// Only licenses valid now
    #[arg(long, conflicts_with = "expired")]
    pub valid: bool,

    /// Only expired licenses
    #[arg(long)]
    pub expired: bool,

    /// Only assigned licenses (commercial licenses only: trials are left out)
    #[arg(long, conflicts_with = "unused")]
    pub used: bool,

    /// Only unassigned licenses (commercial licenses only: trials are left out)
    #[arg(long)]
    pub unused: bool,

    /// Only licenses that renew automatically
    #[arg(long)]
    pub auto_renew: bool,

    /// Only licenses whose id, type, company or instance contains TEXT (ignoring case)
    #[arg(long, value_name = "TEXT")]
    pub search: Option<String>,
}

impl ListArgs {
    /// The engine's filter for these flags.
    pub fn filter(&self) -> LicenseFilter {
        let either = |yes: bool, no: bool| match (yes, no) {
            (true, _) => Some(true),
            (_, true) => Some(false),
            _ => None,
        };
        LicenseFilter {
            license_type: self.license_type.map(Into::into),
            company: self.company.clone(),
            kind: match (self.commercial, self.trial) {
                (true, _) => Some(PoolKind::Commercial),
                (_, true) => Some(PoolKind::Trial),
                _ => None,
            },
            valid: either(self.valid, self.expired),
            used: either(self.used, self.unused),
            auto_renew_only: self.auto_renew,
            search: self.search.clone(),
        }
    }
}

/// `tollgate instance …`
#[derive(Debug, Subcommand)]
pub enum InstanceCommand {
    /// Register an instance (a machine whose backups are licensed per instance)
    Add {
        /// The instance name (1 to 64 bytes; a project of that name must not exist)
        name: String,
        /// Its operating system: macOS and Linux need a desktop or server license
        #[arg(long, value_enum)]
        os: OsKindArg,
        /// Its company: assignment takes from that company's pool first
        #[arg(long)]
        company: Option<String>,
    },
    /// Assign a valid, unassigned license: from the company's pool first, then the global
    /// pool, of a type that fits the OS (the narrowest first). Exit 1, naming the rule, when
    /// none fits
    Assign {
        /// The instance
        name: String,
        /// Only this type
        #[arg(long = "type", value_enum, value_name = "TYPE")]
        license_type: Option<LicenseTypeArg>,
    },
    /// The check a backup job makes: exit 0 when a valid license covers the instance, 1 with
    /// the reason when not
    Check {
        /// The instance
        name: String,
    },
    /// Return the instance's license to its pool
    Unassign {
        /// The instance
        name: String,
    },
    /// List instances with their OS, company and license
    List,
}

/// `tollgate group …`
#[derive(Debug, Subcommand)]
pub enum GroupCommand {
    /// Add projects to a group (created on first use); every project must exist, else
    /// nothing changes
    Add {
        /// The group name
        group: String,
        /// The projects
        #[arg(required = true)]
        projects: Vec<String>,
    },
    /// List groups with their projects
    List,
}

/// `tollgate seat …`
#[derive(Debug, Subcommand)]
pub enum SeatCommand {
    /// Take seats, all or nothing. Seats taken here belong to the operator, not to this
    /// command's process: they stay held until `seat release`
    Acquire(SeatArgs),
    /// Give back seats the operator holds; refused when it holds fewer
    Release(SeatArgs),
    /// Show a pair's seats: held, the Active key's limit, the reserve
    Status {
        /// The project
        project: String,
        /// The seat class
        #[arg(long, value_enum)]
        class: SeatClassArg,
    },
    /// Take back the seats of processes that ended without releasing them
    Reclaim,
}

/// What `seat acquire` and `seat release` take.
#[derive(Debug, Args)]
pub struct SeatArgs {
    /// The project
    pub project: String,
    /// The seat class: server or desktop machines (per-machine keys), cores, or an instance
    #[arg(long, value_enum)]
    pub class: SeatClassArg,
    /// How many seats
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub units: u64,
}

/// Which projects `key add-reserve` adds the key to: one project (the single form), or the
/// bulk forms that report one line per project.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct ReserveTarget {
    /// One project: prints the pop-up text, as `key add` does
    pub project: Option<String>,
    /// Every project (bulk)
    #[arg(long)]
    pub all: bool,
    /// The projects of this group (bulk)
    #[arg(long, value_name = "GROUP")]
    pub group: Option<String>,
    /// One project, reported as the bulk forms report
    #[arg(long = "project", value_name = "PROJECT")]
    pub only: Option<String>,
}

/// A pool license type.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LicenseTypeArg {
    /// Fits every OS
    Server,
    /// Fits every OS
    Desktop,
    /// Fits Windows only
    Workstation,
}

/// Monthly or annual payment.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum PaymentModeArg {
    /// Paid monthly
    Monthly,
    /// Paid yearly
    Annual,
}

/// An instance's operating system.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum OsKindArg {
    /// Microsoft Windows
    Windows,
    /// Apple macOS
    Macos,
    /// Linux
    Linux,
}

/// A seat class.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum SeatClassArg {
    /// Server machines
    Server,
    /// Desktop machines
    Desktop,
    /// Processor cores
    Cores,
    /// An instance
    Instance,
}

impl From<LicenseTypeArg> for LicenseType {
    fn from(arg: LicenseTypeArg) -> LicenseType {
        match arg {
            LicenseTypeArg::Server => LicenseType::Server,
            LicenseTypeArg::Desktop => LicenseType::Desktop,
            LicenseTypeArg::Workstation => LicenseType::Workstation,
        }
    }
}

impl From<PaymentModeArg> for PaymentMode {
    fn from(arg: PaymentModeArg) -> PaymentMode {
        match arg {
            PaymentModeArg::Monthly => PaymentMode::Monthly,
            PaymentModeArg::Annual => PaymentMode::Annual,
        }
    }
}

impl From<OsKindArg> for InstanceOs {
    fn from(arg: OsKindArg) -> InstanceOs {
        match arg {
            OsKindArg::Windows => InstanceOs::Windows,
            OsKindArg::Macos => InstanceOs::Macos,
            OsKindArg::Linux => InstanceOs::Linux,
        }
    }
}

impl From<SeatClassArg> for LicenseClass {
    fn from(arg: SeatClassArg) -> LicenseClass {
        match arg {
            SeatClassArg::Server => LicenseClass::ServerMachines,
            SeatClassArg::Desktop => LicenseClass::DesktopMachines,
            SeatClassArg::Cores => LicenseClass::Cores,
            SeatClassArg::Instance => LicenseClass::Instance,
        }
    }
}
