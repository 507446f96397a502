//! The command lines that reach the vendor's activation service (`key activate`, `key renew`)
//! and the one that runs it (`serve-activation`).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;

use super::ReserveTarget;

/// `tollgate key activate …`
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  tollgate key activate warehouse --code ACT-123 \
--activation-url https://activation.example.com\n  tollgate key activate --group cluster-1 \
--code ACT-123 --activation-url http://127.0.0.1:8470\n\nThe service counts a code's \
activations by machine: this installation is one machine (its identity is derived from the \
installation key, see `Engine::machine_id`), whatever projects or states it activates the code \
for. Activating the same code again from this machine gets the same key and spends no other \
activation; the bulk forms activate once and add the one key as the Reserved key of every \
project. The license is verified like any key: a state that trusts vendor keys takes it only \
signed by one of them."
)]
pub struct ActivateArgs {
    /// Where the key goes: one PROJECT (Active if the project has no key of its class yet,
    /// else Reserved), or as the Reserved key of --all projects, a --group or one --project
    #[command(flatten)]
    pub target: ReserveTarget,

    /// The activation code the vendor gave
    #[arg(long, value_name = "CODE")]
    pub code: String,

    /// Add the key to PROJECT as the Reserved key only, never as the Active key
    #[arg(long, conflicts_with_all = ["all", "group", "only"])]
    pub reserve: bool,

    /// The activation service
    #[command(flatten)]
    pub service: ServiceArgs,
}

/// `tollgate key renew …`
#[derive(Debug, Args)]
#[command(after_help = "Example: tollgate key renew warehouse --activation-url \
http://127.0.0.1:8470\n\nThe activation service is `tollgate serve-activation`, or the vendor's. \
The license it sends is verified like any key: a state that trusts vendor keys takes it only \
signed by one of them.")]
pub struct RenewArgs {
    /// The project
    pub project: String,

    /// The activation service
    #[command(flatten)]
    pub service: ServiceArgs,
}

/// How to reach the vendor's activation service: `key renew` and `key activate`.
#[derive(Debug, Args)]
pub struct ServiceArgs {
    /// The vendor's activation service: http://HOST:PORT, as `tollgate serve-activation`
    /// prints it, or https://…
    #[arg(long, value_name = "URL", env = "TOLLGATE_ACTIVATION_URL")]
    pub activation_url: String,

    /// Trust for https only the certificates in this PEM file, instead of the public
    /// certificate authorities: the vendor's own authority, or the service's self-signed
    /// certificate
    #[arg(long, value_name = "FILE", env = "TOLLGATE_ACTIVATION_CA")]
    pub activation_ca: Option<PathBuf>,

    /// The longest one request to the service may take, in seconds
    #[arg(long, value_name = "SECONDS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout: u64,

    /// How many requests to make at most, with growing pauses between them, before the
    /// renewal counts as failed
    #[arg(long, value_name = "N", default_value_t = 5,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub attempts: u32,
}

/// `tollgate serve-activation …`
#[derive(Debug, Args)]
#[command(
    after_help = "The first line of output is `listening on http://ADDRESS:PORT` (https:// with \
--tls-cert; with --json, {\"listening\": \"http://ADDRESS:PORT\"}), so that a script can start \
the service on port 0 and read where it is.\n\nThe service answers POST /v1/activate \
{\"code\": …, \"machine\": …} and POST /v1/renew {\"code\": …, \"key_id\": …} with \
{\"license\": \"<signed license file>\"}, and refusals with {\"error\": …, \"message\": …}: 404 \
for an unknown code or key, 409 when a code has no renewals or no activations left, 400 for a \
malformed request, 413 for a body over 4096 bytes, 408 for a request not received within \
10 s. A connection that sends no request head for 10 s is closed; at most 256 are served at \
once."
)]
pub struct ServeActivationArgs {
    /// The catalog of activation codes, {"codes": [{"code": "ACT-123", "key": {…key JSON
    /// template…}, "term_days": 365, "renewals_left": 5, "activations": 3}, …]}: a code
    /// activates on "activations" machines (default 1). The service records in it every key it
    /// issues, the machine of every activation and every renewal spent, before it answers
    #[arg(long, value_name = "CODES.json")]
    pub codes: PathBuf,

    /// The vendor's secret key, written by `tollgate license keygen`, that signs the licenses
    #[arg(long, value_name = "DIR/vendor.key")]
    pub key: PathBuf,

    /// The address to listen on; port 0 picks a free port. On loopback by default; plain HTTP
    /// unless --tls-cert and --tls-key are given
    #[arg(long, value_name = "ADDRESS:PORT", default_value = "127.0.0.1:8470")]
    pub listen: SocketAddr,

    /// Serve HTTPS with this certificate chain (PEM, the service's certificate first), so that
    /// the service can face customers on the internet without a proxy
    #[arg(long, value_name = "CERT.pem", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// The private key of --tls-cert (PEM)
    #[arg(long, value_name = "KEY.pem", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
}
