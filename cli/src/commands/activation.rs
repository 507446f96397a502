//! `tollgate serve-activation`: the vendor's online activation service, in the foreground. It
//! opens no state directory.

use std::io::Write;

use serde::Serialize;
use tollgate_activation::{Server, ServiceError};
use tollgate_license::VendorSecret;

use super::Context;
use crate::args::ServeActivationArgs;
use crate::failure::Failure;
use crate::output::json_line;

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
