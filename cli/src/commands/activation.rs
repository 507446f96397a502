//! `tollgate serve-activation`: the vendor's online activation service, in the foreground. It
//! opens no state directory.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;
use serde::Serialize;
use tollgate_activation::{Server, ServiceError};
use tollgate_license::VendorSecret;

use super::Context;
use crate::failure::Failure;
use crate::output::json_line;

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

#[derive(Serialize)]
struct Listening {
    listening: String,
}

/// Serves activation requests until SIGINT (Ctrl-C) or SIGTERM.
pub fn serve(
    ctx: &Context,
    args: &ServeActivationArgs,
    out: &mut dyn Write,
) -> Result<(), Failure> {
    let secret = VendorSecret::read(&args.key).map_err(|e| refusal(e.into()))?;
    let mut server = Server::bind(&args.codes, secret, args.listen).map_err(refusal)?;
    if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
        server = server.with_tls(cert, key).map_err(refusal)?;
    }
    if ctx.json {
        json_line(
            out,
            &Listening {
                listening: server.url(),
            },
        )?;
    } else {
        writeln!(out, "listening on {}", server.url())?;
        // Whoever started the service waits for this line before sending it requests.
        out.flush()?;
    }
    server.run_until_signal().map_err(refusal)
}

/// The code of a service error.
fn refusal(error: ServiceError) -> Failure {
    let code = match &error {
        ServiceError::Catalog { .. } => "CATALOG",
        ServiceError::VendorKey(_) => "VENDOR_KEY",
        ServiceError::Listen { .. } => "LISTEN",
        ServiceError::Tls { .. } => "TLS",
        _ => "IO",
    };
    Failure::refused(code, error.to_string(), None)
}
