//! The service's HTTP protocol, shared by the server and the client so that the two cannot
//! drift apart.
//!
//! Every request is a `POST` with a JSON object body; every answer is a JSON object:
//!
//! | request | body | success (200) |
//! | --- | --- | --- |
//! | [`ACTIVATE_PATH`] | `{"code": "ACT-1"}` | `{"license": "<license file text>"}` |
//! | [`RENEW_PATH`] | `{"code": "ACT-1", "key_id": "ACT-1-1"}` | `{"license": "<license file text>"}` |
//!
//! A refusal is a 4xx status with `{"error": "<code>", "message": "<text>"}`, the codes being
//! the constants below; a 5xx has the same body when the service itself wrote it. The license
//! text is a `tollgate-license-1` file (`tollgate_license::SignedLicense::to_json`).

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
/// 400: the body is not the JSON object the path expects.
pub const MALFORMED_REQUEST: &str = "malformed_request";
/// 404: no such path.
pub const NOT_FOUND: &str = "not_found";
/// 405: the path is answered, but only to `POST`.
pub const METHOD_NOT_ALLOWED: &str = "method_not_allowed";
/// 500: the service could not record the change, so it made none.
pub const STORAGE_FAILED: &str = "storage_failed";
/// 500: the service failed in a way it did not expect.
pub const INTERNAL: &str = "internal";

/// The body of an activation request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ActivateRequest {
    /// The activation code the customer was given.
    pub code: String,
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
