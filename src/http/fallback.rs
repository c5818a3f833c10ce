//! Answers for everything outside the routes, in the error envelope.

use crate::error::ApiError;

/// Any unknown path.
pub async fn not_found() -> ApiError {
    ApiError::NotFound
}
