//! License pools and per-instance licensing (rules R22–R26 in docs/rules.md): what a purchase is,
//! which license types fit which operating system, the order assignment takes licenses in, and the
//! listing filters. The engine applies these under its admin lock (see `engine::pools`).

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::error::{Error, Result};
use crate::key::check_name;

/// The status rule R26 in docs/rules.md reports for a license type that was never purchased.
pub const NOT_PURCHASED: &str = "You have not purchased licenses of this type";

/// Most licenses one purchase may buy.
pub const MAX_QUANTITY: u32 = 100_000;

/// A license type sold into pools.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LicenseType {
    /// Server license: fits every operating system.
    Server,
    /// Desktop license: fits every operating system.
    Desktop,
    /// Workstation license: Windows only (rule R25 in docs/rules.md: "macOS & Linux requires a
    /// Desktop/Server license").
    Workstation,
}

impl LicenseType {
    /// Every type, in listing order.
    pub const ALL: [LicenseType; 3] = [
        LicenseType::Server,
        LicenseType::Desktop,
        LicenseType::Workstation,
    ];

    /// Lower-case name, as in JSON and the catalog.
    pub fn as_str(self) -> &'static str {
        match self {
            LicenseType::Server => "server",
            LicenseType::Desktop => "desktop",
            LicenseType::Workstation => "workstation",
        }
    }

    /// Parses [`LicenseType::as_str`]'s output.
    pub fn parse(s: &str) -> Option<LicenseType> {
        LicenseType::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// Whether a license of this type may license an instance running `os`.
    pub fn fits(self, os: InstanceOs) -> bool {
        self != LicenseType::Workstation || os == InstanceOs::Windows
    }
}

/// Operating system of a backed-up instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InstanceOs {
    /// Microsoft Windows.
    Windows,
    /// Apple macOS.
    Macos,
    /// Linux.
    Linux,
}

impl InstanceOs {
    /// Lower-case name, as in JSON and the catalog.
    pub fn as_str(self) -> &'static str {
        match self {
            InstanceOs::Windows => "windows",
            InstanceOs::Macos => "macos",
            InstanceOs::Linux => "linux",
        }
    }

    /// Parses [`InstanceOs::as_str`]'s output.
    pub fn parse(s: &str) -> Option<InstanceOs> {
        [InstanceOs::Windows, InstanceOs::Macos, InstanceOs::Linux]
            .into_iter()
            .find(|o| o.as_str() == s)
    }

    /// The types that fit, in the order assignment prefers them: the narrowest first, so a
    /// Windows machine does not use up a license a Linux machine could need.
    pub fn preferred_types(self) -> &'static [LicenseType] {
        match self {
            InstanceOs::Windows => &[
                LicenseType::Workstation,
                LicenseType::Desktop,
                LicenseType::Server,
            ],
            InstanceOs::Macos | InstanceOs::Linux => &[LicenseType::Desktop, LicenseType::Server],
        }
    }
}

/// Commercial or trial (pool licenses are never subscriptions).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PoolKind {
    /// Bought.
    Commercial,
    /// Evaluation.
    Trial,
}

impl PoolKind {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            PoolKind::Commercial => "commercial",
            PoolKind::Trial => "trial",
        }
    }

    /// Parses [`PoolKind::as_str`]'s output.
    pub fn parse(s: &str) -> Option<PoolKind> {
        [PoolKind::Commercial, PoolKind::Trial]
            .into_iter()
            .find(|k| k.as_str() == s)
    }
}

/// How purchases are paid: chosen at the first purchase, fixed afterwards (rule R22 in
/// docs/rules.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentMode {
    /// Paid monthly.
    Monthly,
    /// Paid yearly.
    Annual,
}

impl PaymentMode {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            PaymentMode::Monthly => "monthly",
            PaymentMode::Annual => "annual",
        }
    }

    /// Parses [`PaymentMode::as_str`]'s output.
    pub fn parse(s: &str) -> Option<PaymentMode> {
        [PaymentMode::Monthly, PaymentMode::Annual]
            .into_iter()
            .find(|m| m.as_str() == s)
    }
}

/// One purchase of licenses (the console's "Buy New Licenses", rule R22 in docs/rules.md). JSON
/// form: `{"license_type": "server", "quantity": 5, "payment_mode": "annual", "kind": "commercial",
/// "company": "Acme", "expires_at": "2027-12-31T00:00:00Z", "auto_renew": true,
/// "premium_support": false, "onboarding": false}`; all but the first three are optional.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Purchase {
    /// The type bought.
    pub license_type: LicenseType,
    /// How many licenses, 1..=[`MAX_QUANTITY`].
    pub quantity: u32,
    /// Monthly or annual; must match the first purchase's.
    pub payment_mode: PaymentMode,
    /// Commercial (default) or trial.
    #[serde(default = "commercial")]
    pub kind: PoolKind,
    /// The company the licenses are matched to; `None` buys into the global pool.
    #[serde(default)]
    pub company: Option<String>,
    /// End of the term (UTC); `None` never expires.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
    /// Whether the licenses renew automatically at the end of the term.
    #[serde(default)]
    pub auto_renew: bool,
    /// The Premium Support add-on service.
    #[serde(default)]
    pub premium_support: bool,
    /// The Onboarding add-on service.
    #[serde(default)]
    pub onboarding: bool,
}

fn commercial() -> PoolKind {
    PoolKind::Commercial
}

impl Purchase {
    /// A commercial purchase into the global pool, never expiring, with no add-ons.
    pub fn new(license_type: LicenseType, quantity: u32, payment_mode: PaymentMode) -> Purchase {
        Purchase {
            license_type,
            quantity,
            payment_mode,
            kind: PoolKind::Commercial,
            company: None,
            expires_at: None,
            auto_renew: false,
            premium_support: false,
            onboarding: false,
        }
    }

    /// Parses the JSON form.
    pub fn from_json(json: &str) -> Result<Purchase> {
        serde_json::from_str(json).map_err(|e| Error::invalid("purchase", e.to_string()))
    }

    /// Checks the fields that do not depend on the state: quantity, company name, term.
    pub fn validate(&self, now: i64) -> Result<()> {
        if self.quantity == 0 || self.quantity > MAX_QUANTITY {
            return Err(Error::invalid(
                "quantity",
                format!("{} is outside 1..={MAX_QUANTITY}", self.quantity),
            ));
        }
        if let Some(company) = &self.company {
            check_name("company name", company)?;
        }
        if let Some(expires) = self.expires_at {
            if expires.unix_timestamp() <= now {
                return Err(Error::invalid(
                    "expires_at",
                    format!("{} is already past", crate::key::rfc3339(expires)),
                ));
            }
        }
        Ok(())
    }
}

/// One pool license, as [`crate::Engine::list_licenses`] shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PoolLicense {
    /// The license id (`<type>-<purchase>-<n>`).
    pub id: String,
    /// Its type.
    pub license_type: LicenseType,
    /// Commercial or trial.
    pub kind: PoolKind,
    /// The company pool it belongs to; `None` for the global pool.
    pub company: Option<String>,
    /// End of term.
    #[serde(with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
    /// Whether it is still valid now.
    pub valid: bool,
    /// Auto-renew.
    pub auto_renew: bool,
    /// The instance it is assigned to.
    pub assigned_to: Option<String>,
    /// That instance's company: a global-pool license assigned to a company's instance is one
    /// "used for" that company (the Company filter of rule R26 in docs/rules.md).
    pub assigned_company: Option<String>,
    /// The purchase it came from.
    pub purchase: u64,
    /// The purchase's payment mode.
    pub payment_mode: PaymentMode,
    /// The purchase carried Premium Support.
    pub premium_support: bool,
    /// The purchase carried Onboarding.
    pub onboarding: bool,
}

/// What [`crate::Engine::list_licenses`] shows: every filter is optional and they combine.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LicenseFilter {
    /// Only this type (the listing then has that one group, with [`NOT_PURCHASED`] if empty).
    pub license_type: Option<LicenseType>,
    /// Only licenses of this company: those of its pool, and those of the global pool assigned
    /// to its instances (rule R26: "displays the licenses used for selected company").
    pub company: Option<String>,
    /// Only commercial or only trial licenses.
    pub kind: Option<PoolKind>,
    /// `Some(true)` only valid ones, `Some(false)` only expired ones.
    pub valid: Option<bool>,
    /// `Some(true)` only assigned, `Some(false)` only unassigned; applies to commercial
    /// licenses only (rule R26), so setting it leaves trials out.
    pub used: Option<bool>,
    /// Only licenses with auto-renew.
    pub auto_renew_only: bool,
    /// Case-insensitive text that the id, type, company or assigned instance must contain.
    pub search: Option<String>,
}

impl LicenseFilter {
    /// Parses the JSON form (the field names above; all optional).
    pub fn from_json(json: &str) -> Result<LicenseFilter> {
        serde_json::from_str(json).map_err(|e| Error::invalid("filter", e.to_string()))
    }

    /// Whether `license` passes every filter.
    pub fn matches(&self, license: &PoolLicense) -> bool {
        let text = self.search.as_deref().map(str::to_lowercase);
        self.license_type.is_none_or(|t| t == license.license_type)
            && self.company.as_ref().is_none_or(|c| {
                license.company.as_ref() == Some(c) || license.assigned_company.as_ref() == Some(c)
            })
            && self.kind.is_none_or(|k| k == license.kind)
            && self.valid.is_none_or(|v| v == license.valid)
            && self.used.is_none_or(|used| {
                license.kind == PoolKind::Commercial && used == license.assigned_to.is_some()
            })
            && (!self.auto_renew_only || license.auto_renew)
            && text.is_none_or(|text| {
                [
                    Some(license.id.as_str()),
                    Some(license.license_type.as_str()),
                    license.company.as_deref(),
                    license.assigned_to.as_deref(),
                ]
                .into_iter()
                .flatten()
                .any(|field| field.to_lowercase().contains(&text))
            })
    }
}

/// One license type in a listing: its matching licenses, or the status of rule R26 when none of
/// that type was ever purchased.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TypeListing {
    /// The type.
    pub license_type: LicenseType,
    /// How many licenses of this type match the filter.
    pub count: usize,
    /// Of those, how many are assigned.
    pub used: usize,
    /// The matching licenses.
    pub licenses: Vec<PoolLicense>,
    /// [`NOT_PURCHASED`] when no license of this type was ever bought, or none of the kind the
    /// filter asks for.
    pub message: Option<String>,
}

/// An instance: a project licensed per instance, with its OS and company.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Instance {
    /// The instance (project) name.
    pub name: String,
    /// Its operating system.
    pub os: InstanceOs,
    /// Its company, if any.
    pub company: Option<String>,
    /// The pool license assigned to it, else the id of the vendor-signed per-instance key that
    /// licenses it (the key [`crate::Engine::check_instance`] reads).
    pub license: Option<String>,
}

/// The result of [`crate::Engine::assign`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Assignment {
    /// The instance.
    pub instance: String,
    /// The license it got.
    pub license: String,
    /// Its type.
    pub license_type: LicenseType,
    /// Whether it came from the company's pool (else the global pool).
    pub from_company_pool: bool,
    /// An expired license the instance held before, now returned to its pool.
    pub replaced_expired: Option<String>,
}

/// Why an instance needs a license it does not have (see [`Shortfall`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NeedReason {
    /// It has no valid license now.
    Unlicensed,
    /// Its license expires within the horizon and does not renew automatically.
    ExpiresSoon,
}

/// One instance that will need a license within the horizon.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Need {
    /// The instance.
    pub instance: String,
    /// Why.
    pub reason: NeedReason,
    /// The type to buy for it: the type it holds for a renewal, else the narrowest that fits.
    pub license_type: LicenseType,
    /// Its company (licenses to buy for it can be matched to that company).
    pub company: Option<String>,
    /// The unassigned license that already covers it, if the pools hold one.
    pub covered_by: Option<String>,
}

/// How many licenses of one type to buy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TypeShortfall {
    /// The type.
    pub license_type: LicenseType,
    /// Instances of this type that need a license.
    pub needed: usize,
    /// Of those, how many unassigned licenses already in the pools cover.
    pub covered: usize,
    /// How many to buy.
    pub to_buy: usize,
}

/// The shortfall of rule R26 in docs/rules.md: "check their expire dates / renewal status to
/// identify the required license quantity", done for the operator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Shortfall {
    /// The horizon, in days.
    pub days: u32,
    /// Per type, in listing order.
    pub types: Vec<TypeShortfall>,
    /// Every instance counted, with its reason.
    pub needs: Vec<Need>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_desktop_and_server_licenses_fit_macos_and_linux() {
        use InstanceOs::*;
        use LicenseType::*;
        let table = [
            (Windows, Server, true),
            (Windows, Desktop, true),
            (Windows, Workstation, true),
            (Macos, Server, true),
            (Macos, Desktop, true),
            (Macos, Workstation, false),
            (Linux, Server, true),
            (Linux, Desktop, true),
            (Linux, Workstation, false),
        ];
        for (os, license_type, fits) in table {
            assert_eq!(license_type.fits(os), fits, "{license_type:?} on {os:?}");
            assert_eq!(
                os.preferred_types().contains(&license_type),
                fits,
                "{os:?} preference list"
            );
        }
    }

    fn license(kind: PoolKind, assigned: bool) -> PoolLicense {
        PoolLicense {
            id: "server-1-1".into(),
            license_type: LicenseType::Server,
            kind,
            company: Some("Acme".into()),
            expires_at: None,
            valid: true,
            auto_renew: false,
            assigned_to: assigned.then(|| "web-01".into()),
            assigned_company: assigned.then(|| "Acme".into()),
            purchase: 1,
            payment_mode: PaymentMode::Annual,
            premium_support: false,
            onboarding: false,
        }
    }

    #[test]
    fn the_used_filter_applies_to_commercial_licenses_only() {
        let used = LicenseFilter {
            used: Some(true),
            ..LicenseFilter::default()
        };
        let unused = LicenseFilter {
            used: Some(false),
            ..LicenseFilter::default()
        };
        assert!(used.matches(&license(PoolKind::Commercial, true)));
        assert!(!used.matches(&license(PoolKind::Commercial, false)));
        assert!(unused.matches(&license(PoolKind::Commercial, false)));
        assert!(!used.matches(&license(PoolKind::Trial, true)));
        assert!(!unused.matches(&license(PoolKind::Trial, false)));
    }

    #[test]
    fn search_looks_at_id_type_company_and_instance_ignoring_case() {
        let l = license(PoolKind::Commercial, true);
        for (text, hit) in [
            ("SERVER-1", true),
            ("acme", true),
            ("WEB-0", true),
            ("server", true),
            ("globex", false),
        ] {
            let filter = LicenseFilter {
                search: Some(text.into()),
                ..LicenseFilter::default()
            };
            assert_eq!(filter.matches(&l), hit, "{text}");
        }
    }

    #[test]
    fn purchases_are_validated_with_the_field_at_fault() {
        let now = 1_800_000_000;
        let mut p = Purchase::new(LicenseType::Server, 0, PaymentMode::Annual);
        let field = |p: &Purchase| match p.validate(now) {
            Err(Error::InvalidArgument { field, .. }) => field,
            other => panic!("{other:?}"),
        };
        assert_eq!(field(&p), "quantity");
        p.quantity = MAX_QUANTITY + 1;
        assert_eq!(field(&p), "quantity");
        p.quantity = 3;
        p.company = Some(String::new());
        assert_eq!(field(&p), "company name");
        p.company = None;
        p.expires_at = Some(OffsetDateTime::from_unix_timestamp(now).unwrap());
        assert_eq!(field(&p), "expires_at");
        p.expires_at = None;
        p.validate(now).unwrap();
        let json = r#"{"license_type": "desktop", "quantity": 2, "payment_mode": "monthly",
            "kind": "trial", "company": "Acme", "premium_support": true}"#;
        let parsed = Purchase::from_json(json).unwrap();
        assert_eq!(
            (parsed.kind, parsed.premium_support, parsed.onboarding),
            (PoolKind::Trial, true, false)
        );
        assert!(Purchase::from_json(r#"{"license_type": "laptop"}"#).is_err());
    }
}
