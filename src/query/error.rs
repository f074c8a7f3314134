//! What can go wrong in a query call, and the one place that turns it into a gRPC [`Status`].
//!
//! Status messages are for the auditor's client: they name sequence numbers and sizes, never subject
//! ids or justifications (those stay in the log, where they belong).

use crate::ingest::AppendError;
use crate::log::store::StoreError;
use tonic::{Code, Status};

/// Why a query call did not (fully) succeed.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// No client certificate reached the service, or it could not be read as X.509.
    #[error("a client certificate is required: {0}")]
    Unauthenticated(String),
    /// The certificate is valid but matches no auditor in the `[query]` configuration.
    #[error("this certificate does not belong to a configured auditor")]
    NotAnAuditor,
    /// The call's purpose, case reference or arguments are missing or malformed.
    #[error("{0}")]
    InvalidArgument(String),
    /// Something asked for does not exist, e.g. no checkpoint was signed at that size.
    #[error("{0}")]
    NotFound(String),
    /// The arguments are well formed but lie beyond the log as it stands.
    #[error("{0}")]
    OutOfRange(String),
    /// The audit-query (or denied) entry could not be made durable, so nothing is returned.
    #[error("the audit log could not record this query, so nothing is returned: {0}")]
    LogUnavailable(#[source] AppendError),
    /// Reading the store failed.
    #[error("reading the log failed: {0}")]
    Store(#[from] StoreError),
    /// Stored data contradicts itself (an entry that does not decode, an index record that points
    /// at an entry that does not match it, a missing tree node).
    #[error("the stored log is inconsistent ({0}); run `s62 verify`")]
    Inconsistent(String),
    /// A worker task panicked or was cancelled.
    #[error("internal error: {0}")]
    Internal(String),
    /// The caller is an auditor, but their role may not make this call (`[query.roles]`).
    #[error("the {role} role may not call {call}")]
    RoleNotAllowed {
        role: &'static str,
        call: &'static str,
    },
    /// The caller's role may make this call, but not for the purpose stated (`[query.roles]`).
    #[error("the {role} role may not use the log for the purpose {purpose}")]
    PurposeNotAllowedForRole {
        role: &'static str,
        purpose: &'static str,
    },
    /// Well formed, but the log's state does not allow it (too many matches for one redaction,
    /// a format-1 log).
    #[error("{0}")]
    FailedPrecondition(String),
}

impl QueryError {
    /// The gRPC code for this error (also recorded on the call's closing audit entry).
    pub fn code(&self) -> Code {
        match self {
            QueryError::Unauthenticated(_) => Code::Unauthenticated,
            QueryError::NotAnAuditor => Code::PermissionDenied,
            QueryError::InvalidArgument(_) => Code::InvalidArgument,
            QueryError::NotFound(_) => Code::NotFound,
            QueryError::OutOfRange(_) => Code::OutOfRange,
            QueryError::LogUnavailable(_) => Code::Unavailable,
            QueryError::Store(StoreError::Backend(_)) => Code::Unavailable,
            QueryError::Store(StoreError::Corrupt(_)) => Code::DataLoss,
            QueryError::Inconsistent(_) => Code::DataLoss,
            QueryError::Internal(_) => Code::Internal,
            QueryError::RoleNotAllowed { .. } => Code::PermissionDenied,
            QueryError::PurposeNotAllowedForRole { .. } => Code::PermissionDenied,
            QueryError::FailedPrecondition(_) => Code::FailedPrecondition,
        }
    }

    /// A short machine-readable name, for the closing audit entry's `outcome.error`.
    pub fn reason(&self) -> &'static str {
        match self {
            QueryError::Unauthenticated(_) => "unauthenticated",
            QueryError::NotAnAuditor => "not_an_auditor",
            QueryError::InvalidArgument(_) => "invalid_argument",
            QueryError::NotFound(_) => "not_found",
            QueryError::OutOfRange(_) => "out_of_range",
            QueryError::LogUnavailable(_) => "log_unavailable",
            QueryError::Store(_) => "store_error",
            QueryError::Inconsistent(_) => "inconsistent_log",
            QueryError::Internal(_) => "internal",
            QueryError::RoleNotAllowed { .. } => "role_not_allowed",
            QueryError::PurposeNotAllowedForRole { .. } => "purpose_not_allowed_for_role",
            QueryError::FailedPrecondition(_) => "failed_precondition",
        }
    }
}

/// The one mapping from query errors to gRPC status.
pub fn to_status(e: &QueryError) -> Status {
    Status::new(e.code(), e.to_string())
}

impl From<super::plan::PlanError> for QueryError {
    fn from(e: super::plan::PlanError) -> Self {
        match e {
            super::plan::PlanError::Store(e) => QueryError::Store(e),
            e @ super::plan::PlanError::Inconsistent { .. } => {
                QueryError::Inconsistent(e.to_string())
            }
        }
    }
}

impl From<super::auth::RoleRefusal> for QueryError {
    fn from(r: super::auth::RoleRefusal) -> Self {
        match r {
            super::auth::RoleRefusal::CallNotGranted { role, call } => QueryError::RoleNotAllowed {
                role: role.label(),
                call: call.name(),
            },
            super::auth::RoleRefusal::PurposeNotGranted { role, purpose } => {
                QueryError::PurposeNotAllowedForRole {
                    role: role.label(),
                    purpose: purpose.label(),
                }
            }
        }
    }
}

impl From<QueryError> for Status {
    fn from(e: QueryError) -> Status {
        to_status(&e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_map_to_the_codes_clients_expect() {
        assert_eq!(
            to_status(&QueryError::Unauthenticated("none".into())).code(),
            Code::Unauthenticated
        );
        assert_eq!(
            to_status(&QueryError::NotAnAuditor).code(),
            Code::PermissionDenied
        );
        assert_eq!(
            to_status(&QueryError::LogUnavailable(AppendError::Closed)).code(),
            Code::Unavailable
        );
        assert_eq!(
            to_status(&QueryError::Store(StoreError::Corrupt("x".into()))).code(),
            Code::DataLoss
        );
    }
}
