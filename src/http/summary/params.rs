//! The summary's query string → [`Buckets`], or every problem found: the
//! download's `startDate`/`endDate` rules, then `interval`.

use super::super::download::params as window;
use crate::domain::Problem;
use crate::domain::{Buckets, Interval, MAX_BUCKETS};

const INTERVAL: &str = "interval";

/// Parses the window (exactly as the download does) and `interval`
/// (`hour`, `day`, `week` or `month`; absent or empty means `day`; a
/// repeated one is invalid). Interval problems follow the window's.
pub fn parse(query: Option<&str>) -> Result<Buckets, Vec<Problem>> {
    let values: Vec<String> = form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .filter(|(name, _)| name == INTERVAL)
        .map(|(_, value)| value.into_owned())
        .collect();
    let interval = match window::single(&values) {
        Ok(None) => Ok(Interval::default()),
        Ok(Some(v)) => v.parse::<Interval>().map_err(|_| unknown_interval()),
        Err(window::Repeated) => Err(unknown_interval()),
    };
    match (window::parse(query), interval) {
        (Ok(range), Ok(interval)) => {
            Buckets::new(range, interval).map_err(|_| vec![too_many_buckets()])
        }
        (Ok(_), Err(detail)) => Err(vec![detail]),
        (Err(details), Ok(_)) => Err(details),
        (Err(mut details), Err(detail)) => {
            details.push(detail);
            Err(details)
        }
    }
}

fn unknown_interval() -> Problem {
    Problem {
        code: "InvalidValue",
        message: "Parameter 'interval' must be one of hour, day, week, month.".into(),
        target: INTERVAL.into(),
    }
}

fn too_many_buckets() -> Problem {
    Problem {
        code: "InvalidValue",
        message: format!(
            "Parameter 'interval' would cut this window into more than {MAX_BUCKETS} buckets; choose a longer interval or a shorter window."
        ),
        target: INTERVAL.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(q: &str) -> Vec<(&'static str, String)> {
        parse(Some(q))
            .unwrap_err()
            .into_iter()
            .map(|d| (d.code, d.target))
            .collect()
    }

    const WINDOW: &str = "startDate=2024-01-01T00:00:00.000Z&endDate=2024-02-01T00:00:00.000Z";

    #[test]
    fn interval_defaults_to_day_and_accepts_every_name() {
        for (q, expected) in [
            (WINDOW.to_owned(), Interval::Day),
            (format!("{WINDOW}&interval="), Interval::Day),
            (format!("{WINDOW}&interval=hour"), Interval::Hour),
            (format!("{WINDOW}&interval=week"), Interval::Week),
            (format!("{WINDOW}&interval=month"), Interval::Month),
        ] {
            assert_eq!(parse(Some(&q)).unwrap().interval(), expected, "{q}");
        }
    }

    #[test]
    fn interval_problems_follow_the_window_problems() {
        let invalid = vec![("InvalidValue", "interval".to_owned())];
        assert_eq!(problems(&format!("{WINDOW}&interval=Day")), invalid);
        assert_eq!(
            problems(&format!("{WINDOW}&interval=day&interval=day")),
            invalid
        );
        assert_eq!(
            problems("endDate=2024-02-01T00:00:00.000Z&interval=year"),
            vec![
                ("MissingRequiredParameter", "startDate".to_owned()),
                ("InvalidValue", "interval".to_owned())
            ]
        );
        assert_eq!(
            problems(
                "startDate=2000-01-01T00:00:00.000Z&endDate=2001-01-01T00:00:00.000Z&interval=hour"
            ),
            invalid
        );
    }
}
