//! The command lines of the two servers over a state directory: `console` and `metrics`.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;

/// `tollgate console …`
#[derive(Debug, Args)]
#[command(
    after_help = "Pages: / (projects), /projects/NAME (License Information), /licenses \
(pools; filters company, kind, validity, use, auto_renew, q), /instances, /activation (the \
activation task), /events.\n\nThe first line of output is `console on http://ADDRESS:PORT/` \
(with --json, {\"listening\": …}), so a script can serve on port 0 and read where; it serves \
until Ctrl-C or SIGTERM."
)]
pub struct ConsoleArgs {
    /// Where to serve; port 0 picks a free port. An address that is not loopback needs
    /// --token
    #[arg(long, value_name = "ADDRESS:PORT", default_value = "127.0.0.1:8480")]
    pub listen: SocketAddr,

    /// Every request must carry this token: `Authorization: Bearer TOKEN`, or the cookie
    /// that opening /?token=TOKEN once sets. Printable ASCII without spaces, `;`, `,` or quotes
    #[arg(
        long,
        value_name = "TOKEN",
        env = "TOLLGATE_CONSOLE_TOKEN",
        hide_env_values = true
    )]
    pub token: Option<String>,

    /// The vendor's activation service, for activation codes (online keys): http://HOST:PORT,
    /// as `tollgate serve-activation` prints it, or https://…. Without it only license files
    /// (offline keys) can be added
    #[arg(long, value_name = "URL", env = "TOLLGATE_ACTIVATION_URL")]
    pub activation_url: Option<String>,

    /// Trust for https only the certificates in this PEM file
    #[arg(
        long,
        value_name = "FILE",
        env = "TOLLGATE_ACTIVATION_CA",
        requires = "activation_url"
    )]
    pub activation_ca: Option<PathBuf>,
}

/// `tollgate metrics …`
#[derive(Debug, Args)]
#[command(
    after_help = "Metrics: tollgate_key_used_bytes, tollgate_key_limit_bytes and \
tollgate_key_overage_bytes {project, key, role} for every data-volume key a project ever held \
(role active, reserved, retired or removed); tollgate_switches_total {project}; \
tollgate_refusals_total {project, reason} (reason exhausted, expired or no_active_key; the \
refusals the audit log records, the first of each key generation); tollgate_seats_held \
{project, class} (class server, desktop, cores or instance, as `seat --class` names them); \
tollgate_events_dropped_total, this process's.\n\nWith --listen the first \
line of output is `listening on http://ADDRESS:PORT/metrics` (with --json, {\"listening\": \
…}), so a script can serve on port 0 and read where; it serves until Ctrl-C or SIGTERM."
)]
pub struct MetricsArgs {
    /// Serve the metrics at http://ADDRESS:PORT/metrics instead of printing them once; port 0
    /// picks a free port. Loopback only unless --allow-remote
    #[arg(long, value_name = "ADDRESS:PORT")]
    pub listen: Option<SocketAddr>,

    /// Allow a --listen address that is not loopback: the metrics name projects and keys
    #[arg(long, requires = "listen")]
    pub allow_remote: bool,
}
