//! The client as the engine's [`Renewer`] and [`Activator`]: an engine given an
//! [`ActivationClient`] in its `Options::renewal` renews its online keys through this service,
//! and `Engine::activate_with` activates codes through it.

use tollgate_core::{Activator, Key, Renewer};

use crate::ActivationClient;

impl Renewer for ActivationClient {
    /// Renews `key` ([`ActivationClient::renew`], retries included) and returns the license
    /// text as the service sent it; the engine verifies it against the vendor keys it trusts.
    /// An error is returned in words: the engine wraps it into the manual-renewal message
    /// ([`RenewalError::manual_renewal_message`](crate::RenewalError::manual_renewal_message)).
    fn renew(&self, key: &Key) -> Result<String, String> {
        ActivationClient::renew(self, key)
            .map(|issued| issued.text)
            .map_err(|e| e.to_string())
    }
}

impl Activator for ActivationClient {
    /// Activates `code` on `machine` ([`ActivationClient::activate`], retries included) and
    /// returns the license text as the service sent it; the engine verifies it like any key.
    fn activate(&self, code: &str, machine: &str) -> Result<String, String> {
        ActivationClient::activate(self, code, machine)
            .map(|issued| issued.text)
            .map_err(|e| e.to_string())
    }
}
