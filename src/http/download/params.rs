//! The download's query string → a [`DateRange`], or every problem found;
//! and [`DownloadWindow`], the extractor that answers 422 with them.

use crate::domain::Problem;
use crate::domain::{DateRange, Timestamp};
use crate::error::ApiError;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;

/// The download's window, parsed from the query (422 with every problem
/// otherwise). Taken after the caller's extractors, so 401 and 403 come
/// first.
pub struct DownloadWindow(pub DateRange);

impl<S: Send + Sync> FromRequestParts<S> for DownloadWindow {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parse(parts.uri.query())
            .map(Self)
            .map_err(ApiError::InvalidDownload)
    }
}

const START: &str = "startDate";
const END: &str = "endDate";

/// What one parameter turned out to be.
enum Param {
    Missing,
    Invalid,
    Valid(Timestamp),
}

/// Parses `startDate` and `endDate` from the raw (still percent-encoded)
/// query. Names are case-sensitive, unknown parameters ignored, a repeated
/// parameter is invalid. Details are ordered as the Library API orders them:
/// missing parameters first, then invalid ones, each in parameter order.
pub fn parse(query: Option<&str>) -> Result<DateRange, Vec<Problem>> {
    let mut start: Vec<String> = Vec::new();
    let mut end: Vec<String> = Vec::new();
    for (name, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        match name.as_ref() {
            START => start.push(value.into_owned()),
            END => end.push(value.into_owned()),
            _ => {}
        }
    }
    let (start, end) = (classify(&start), classify(&end));
    let mut details = Vec::new();
    for (name, param) in [(START, &start), (END, &end)] {
        if matches!(param, Param::Missing) {
            details.push(Problem {
                code: "MissingRequiredParameter",
                message: "Required parameter is missing.".into(),
                target: name.into(),
            });
        }
    }
    for (name, param) in [(START, &start), (END, &end)] {
        if matches!(param, Param::Invalid) {
            details.push(Problem {
                code: "InvalidValue",
                message: format!("Parameter '{name}' format is incorrect, valid format is yyyy-MM-dd'T'HH:mm:ss.fff'Z'."),
                target: name.into(),
            });
        }
    }
    match (start, end) {
        (Param::Valid(s), Param::Valid(e)) => DateRange::new(s, e).map_err(|_| {
            vec![Problem {
                code: "InvalidValue",
                message: "Parameter 'endDate' must be later than 'startDate'.".into(),
                target: END.into(),
            }]
        }),
        _ => Err(details),
    }
}

fn classify(values: &[String]) -> Param {
    match single(values) {
        Ok(None) => Param::Missing,
        Ok(Some(v)) => Timestamp::parse(v).map_or(Param::Invalid, Param::Valid),
        Err(Repeated) => Param::Invalid,
    }
}

/// A parameter given more than once.
pub(in crate::http) struct Repeated;

/// The one value of a parameter from all its occurrences: `None` when it
/// is absent or empty, [`Repeated`] when given more than once. The rule of
/// every parameter of the analytics reads.
pub(in crate::http) fn single(values: &[String]) -> Result<Option<&str>, Repeated> {
    match values {
        [] => Ok(None),
        [v] if v.is_empty() => Ok(None),
        [v] => Ok(Some(v)),
        _ => Err(Repeated),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn targets(q: &str) -> Vec<(&'static str, String)> {
        parse(Some(q))
            .unwrap_err()
            .into_iter()
            .map(|d| (d.code, d.target))
            .collect()
    }

    #[test]
    fn accepts_a_valid_window_with_encoded_colons() {
        let r = parse(Some(
            "startDate=2024-01-01T00%3A00%3A00.000Z&endDate=2024-02-01T00:00:00.000Z&x=1",
        ))
        .unwrap();
        assert_eq!(r.start().to_wire(), "2024-01-01T00:00:00.000Z");
    }

    #[test]
    fn reports_every_problem_in_order() {
        assert_eq!(
            targets("endDate=bad&startdate=2024-01-01T00:00:00.000Z"),
            vec![
                ("MissingRequiredParameter", "startDate".into()),
                ("InvalidValue", "endDate".into())
            ]
        );
        assert_eq!(
            targets(
                "startDate=2024-01-01T00:00:00.000Z&startDate=2024-01-01T00:00:00.000Z&endDate="
            ),
            vec![
                ("MissingRequiredParameter", "endDate".into()),
                ("InvalidValue", "startDate".into())
            ]
        );
        assert_eq!(
            targets("startDate=2024-01-01T00:00:00.000Z&endDate=2024-01-01T00:00:00.000Z"),
            vec![("InvalidValue", "endDate".into())]
        );
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    /// Every message the download's 422 may carry (DESIGN §2).
    fn documented(d: &Problem) -> bool {
        let format = |name: &str| {
            format!("Parameter '{name}' format is incorrect, valid format is yyyy-MM-dd'T'HH:mm:ss.fff'Z'.")
        };
        match (d.code, d.target.as_str()) {
            ("MissingRequiredParameter", START | END) => {
                d.message == "Required parameter is missing."
            }
            ("InvalidValue", START) => d.message == format(START),
            ("InvalidValue", END) => {
                d.message == format(END)
                    || d.message == "Parameter 'endDate' must be later than 'startDate'."
            }
            _ => false,
        }
    }

    /// Query strings made of the parameters' own pieces, so that valid,
    /// almost valid and repeated values all come up.
    fn query() -> impl Strategy<Value = String> {
        let name = prop::sample::select(vec!["startDate", "endDate", "startdate", "x", ""]);
        let value = prop_oneof![
            Just("2024-01-01T00:00:00.000Z".to_owned()),
            Just("2024-02-01T00%3A00%3A00.000Z".to_owned()),
            Just("2023-02-29T00:00:00.000Z".to_owned()),
            "[0-9TZ:.%+&=-]{0,30}",
            any::<String>(),
        ];
        prop::collection::vec((name, value), 0..5).prop_map(|pairs| {
            pairs
                .iter()
                .map(|(n, v)| format!("{n}={v}"))
                .collect::<Vec<_>>()
                .join("&")
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1024))]

        #[test]
        fn any_query_gives_a_window_or_documented_problems(q in prop_oneof![query(), any::<String>()]) {
            match parse(Some(&q)) {
                Ok(range) => prop_assert!(range.start() < range.end()),
                Err(details) => {
                    prop_assert!(!details.is_empty() && details.len() <= 2, "{details:?}");
                    for d in &details {
                        prop_assert!(documented(d), "{d:?}");
                    }
                }
            }
        }
    }
}
