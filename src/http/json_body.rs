//! Small JSON request bodies of one required string field, such as
//! `{"userId": "…"}` or `{"code": "…"}`: read within a size limit, the
//! field taken out, and every way it can be wrong named once here, so each
//! endpoint only says which 422 detail each problem becomes.

use axum::body::Body;
use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use serde_json::Value;

/// Why a one-field body was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldProblem {
    /// Over the size limit, cut off, not JSON, or not a JSON object.
    Body,
    /// The field is absent, `null` or the empty string.
    Missing,
    /// The field is there but not a string.
    NotAString,
}

/// The whole body, if it is at most `max_bytes` long and arrives intact.
pub async fn read_limited(body: Body, max_bytes: usize) -> Result<Bytes, FieldProblem> {
    Limited::new(body, max_bytes)
        .collect()
        .await
        .map(|collected| collected.to_bytes())
        .map_err(|_| FieldProblem::Body)
}

/// The string `field` of the JSON object in `bytes`; other fields are
/// ignored, as everywhere in the API.
pub fn string_field(bytes: &[u8], field: &str) -> Result<String, FieldProblem> {
    let value: Value = serde_json::from_slice(bytes).map_err(|_| FieldProblem::Body)?;
    let mut object = match value {
        Value::Object(object) => object,
        _ => return Err(FieldProblem::Body),
    };
    match object.remove(field) {
        None | Some(Value::Null) => Err(FieldProblem::Missing),
        Some(Value::String(s)) if s.is_empty() => Err(FieldProblem::Missing),
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(FieldProblem::NotAString),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_string_field_or_one_problem() {
        assert_eq!(string_field(br#"{"f":"v","x":1}"#, "f").as_deref(), Ok("v"));
        let table: [(&[u8], FieldProblem); 9] = [
            (b"", FieldProblem::Body),
            (b"not json", FieldProblem::Body),
            (b"[\"v\"]", FieldProblem::Body),
            (b"\"v\"", FieldProblem::Body),
            (br#"{"f":"v""#, FieldProblem::Body),
            (b"{}", FieldProblem::Missing),
            (br#"{"f":null}"#, FieldProblem::Missing),
            (br#"{"f":""}"#, FieldProblem::Missing),
            (br#"{"f":["v"]}"#, FieldProblem::NotAString),
        ];
        for (body, problem) in table {
            assert_eq!(string_field(body, "f"), Err(problem), "{body:?}");
        }
    }

    #[tokio::test]
    async fn bodies_over_the_limit_are_refused() {
        let at_limit = Body::from(vec![b'x'; 16]);
        assert_eq!(read_limited(at_limit, 16).await.unwrap().len(), 16);
        let over = Body::from(vec![b'x'; 17]);
        assert_eq!(read_limited(over, 16).await, Err(FieldProblem::Body));
    }
}
