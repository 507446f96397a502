//! The service's HTTP protocol, shared by the server and the client so that the two cannot
//! drift apart.
//!
//! Every request is a `POST` with a JSON object body; every answer is a JSON object:
//!
//! | request | body | success (200) |
//! | --- | --- | --- |
//! | [`ACTIVATE_PATH`] | `{"code": "ACT-1", "machine": "<machine id>"}` | `{"license": "<license file text>"}` |
//! | [`RENEW_PATH`] | `{"code": "ACT-1", "key_id": "ACT-1-1"}` | `{"license": "<license file text>"}` |
//!
//! A refusal is a 4xx status with `{"error": "<code>", "message": "<text>"}`, the codes being
//! the constants below; a 5xx has the same body when the service itself wrote it. The license
//! text is a license file of the current format (`tollgate_license::SignedLicense::to_json`).

use serde::{Deserialize, Serialize};

/// Activates a code: a new key, signed.
pub const ACTIVATE_PATH: &str = "/v1/activate";
/// Renews a key issued for a code: its successor, signed.
pub const RENEW_PATH: &str = "/v1/renew";

/// 404: no such activation code.
pub const UNKNOWN_CODE: &str = "unknown_code";
/// 404: the key was not issued for that code.
pub const UNKNOWN_KEY: &str = "unknown_key";
/// 409: the code has no renewals left.
pub const NO_RENEWALS_LEFT: &str = "no_renewals_left";
/// 409: every activation the code allows is taken by another machine.
pub const NO_ACTIVATIONS_LEFT: &str = "no_activations_left";
/// 400: the body is not the JSON object the path expects, or a field of it is out of bounds
/// (see [`MAX_CODE`], [`MAX_KEY_ID`], [`MAX_MACHINE`]).
pub const MALFORMED_REQUEST: &str = "malformed_request";
/// 413: the body is longer than [`MAX_BODY`].
pub const BODY_TOO_LARGE: &str = "body_too_large";
/// 408: the request was not received and answered within the service's request timeout.
pub const REQUEST_TIMEOUT: &str = "request_timeout";
/// 404: no such path.
pub const NOT_FOUND: &str = "not_found";
/// 405: the path is answered, but only to `POST`.
pub const METHOD_NOT_ALLOWED: &str = "method_not_allowed";
/// 500: the service could not record the change, so it made none.
pub const STORAGE_FAILED: &str = "storage_failed";
/// 500: the service failed in a way it did not expect.
pub const INTERNAL: &str = "internal";

/// The longest request body the service reads, in bytes: a request is a few short strings.
pub const MAX_BODY: usize = 4096;
/// The longest activation code, in bytes: a key id (`CODE-N`) is at most 64.
pub const MAX_CODE: usize = 64;
/// The longest key id, in bytes.
pub const MAX_KEY_ID: usize = 64;
/// The longest machine identity, in bytes.
pub const MAX_MACHINE: usize = 128;

/// The body of an activation request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ActivateRequest {
    /// The activation code the customer was given.
    pub code: String,
    /// Who asks: the engine's machine identity (`Engine::machine_id`), 1 to [`MAX_MACHINE`]
    /// bytes. The service records it with the activation: a code activates on as many machines
    /// as its `activations` allow, and a machine that asks again gets the key it already has.
    pub machine: String,
}

/// The body of a renewal request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RenewRequest {
    /// The activation code of the key.
    pub code: String,
    /// The id of the key to renew.
    pub key_id: String,
}

/// The body of a successful answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LicenseResponse {
    /// The signed license file's text.
    pub license: String,
}

/// The body of a refusal or a failure.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorResponse {
    /// One of the codes above: stable, for programs.
    pub error: String,
    /// What happened, for people.
    pub message: String,
}
