//! A problem found while validating input: a bad download parameter, a bad
//! event field. Parsers report these without knowing about HTTP; the error
//! module puts them in the contract's `details` (DESIGN §5).

/// One problem, with what it is about. (Its schema is part of the
/// generated OpenAPI document.)
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[schema(as = ErrorDetail)]
pub struct Problem {
    /// `MissingRequiredParameter`, `InvalidValue`, …
    pub code: &'static str,
    /// Human-readable message.
    pub message: String,
    /// What the problem is about: a parameter name or a JSON path.
    pub target: String,
}

impl Problem {
    /// A problem with `target`.
    pub fn new(code: &'static str, message: impl Into<String>, target: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            target: target.into(),
        }
    }

    /// `InvalidValue`: present but not acceptable.
    pub fn invalid(target: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new("InvalidValue", message, target)
    }
}
