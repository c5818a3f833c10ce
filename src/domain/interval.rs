//! Summary buckets: the interval a window is cut into, and where each
//! bucket starts. All UTC; weeks are ISO weeks (starting Monday).

use super::{DateRange, Timestamp};
use std::fmt;
use std::str::FromStr;
use time::{Date, Month, OffsetDateTime};

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;
const WEEK_MS: i64 = 7 * DAY_MS;
/// 1970-01-01 was a Thursday; the Monday before it starts ISO week zero.
const MONDAY_ORIGIN_MS: i64 = -3 * DAY_MS;

/// Most buckets one summary may have: keeps the answer small enough for a
/// chart and the work bounded whatever window is asked for.
pub const MAX_BUCKETS: usize = 5000;

/// The width of a summary bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Interval {
    /// One UTC hour.
    Hour,
    /// One UTC day (the default).
    #[default]
    Day,
    /// One ISO week, Monday 00:00 UTC to the next Monday.
    Week,
    /// One calendar month in UTC.
    Month,
}

/// A fixed-width grid that a store can group by with integer arithmetic:
/// group `g` covers `[origin + g·width, origin + (g+1)·width)`. Every group
/// lies inside exactly one bucket of its interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grid {
    /// Start of group 0, at or before the window's start.
    pub origin: i64,
    /// Group width in milliseconds.
    pub width: i64,
}

impl Interval {
    /// Every interval, shortest first.
    pub const ALL: [Interval; 4] = [
        Interval::Hour,
        Interval::Day,
        Interval::Week,
        Interval::Month,
    ];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Interval::Hour => "hour",
            Interval::Day => "day",
            Interval::Week => "week",
            Interval::Month => "month",
        }
    }

    /// Start of the bucket holding `t`.
    pub fn floor(self, t: Timestamp) -> Timestamp {
        let ms = t.millis();
        let fixed = |origin: i64, width: i64| origin + (ms - origin).div_euclid(width) * width;
        Timestamp::from_millis(match self {
            Interval::Hour => fixed(0, HOUR_MS),
            Interval::Day => fixed(0, DAY_MS),
            Interval::Week => fixed(MONDAY_ORIGIN_MS, WEEK_MS),
            Interval::Month => {
                let day = fixed(0, DAY_MS);
                match date_of(day) {
                    Some(d) => day - i64::from(d.day() - 1) * DAY_MS,
                    None => day,
                }
            }
        })
    }

    /// Start of the bucket after the one starting at `start` (an aligned
    /// start); `None` past the last representable month.
    pub fn next(self, start: Timestamp) -> Option<Timestamp> {
        let ms = start.millis();
        let fixed = |width: i64| ms.checked_add(width).map(Timestamp::from_millis);
        match self {
            Interval::Hour => fixed(HOUR_MS),
            Interval::Day => fixed(DAY_MS),
            Interval::Week => fixed(WEEK_MS),
            Interval::Month => {
                let d = date_of(ms)?;
                let (year, month) = match d.month() {
                    Month::December => (d.year() + 1, Month::January),
                    m => (d.year(), m.next()),
                };
                let first = Date::from_calendar_date(year, month, 1).ok()?;
                let secs = first.midnight().assume_utc().unix_timestamp();
                Some(Timestamp::from_millis(secs * 1000))
            }
        }
    }

    /// The grid a store groups by for this interval: the interval itself
    /// when its width is fixed, days for months (a day never straddles two
    /// months).
    pub fn grid(self, range: DateRange) -> Grid {
        let (interval, width) = match self {
            Interval::Hour => (Interval::Hour, HOUR_MS),
            Interval::Day | Interval::Month => (Interval::Day, DAY_MS),
            Interval::Week => (Interval::Week, WEEK_MS),
        };
        Grid {
            origin: interval.floor(range.start()).millis(),
            width,
        }
    }
}

fn date_of(ms: i64) -> Option<Date> {
    OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
        .ok()
        .map(OffsetDateTime::date)
}

/// Not one of `hour`, `day`, `week`, `month` (case-sensitive).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("interval must be hour, day, week or month")]
pub struct InvalidInterval;

impl FromStr for Interval {
    type Err = InvalidInterval;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|i| i.as_str() == s)
            .ok_or(InvalidInterval)
    }
}

impl fmt::Display for Interval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A window cut into aligned, gapless buckets: the first starts at the
/// window's start rounded down, the last is the one holding the instant
/// just before the end. At most [`MAX_BUCKETS`]; built only by
/// [`Buckets::new`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Buckets {
    range: DateRange,
    interval: Interval,
    starts: Vec<Timestamp>,
}

/// The window would need more than [`MAX_BUCKETS`] buckets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("more than {MAX_BUCKETS} buckets")]
pub struct TooManyBuckets;

impl Buckets {
    /// Cuts `range` by `interval`, refusing more than [`MAX_BUCKETS`].
    pub fn new(range: DateRange, interval: Interval) -> Result<Self, TooManyBuckets> {
        let mut starts = vec![interval.floor(range.start())];
        while let Some(next) = starts.last().and_then(|&s| interval.next(s)) {
            if next >= range.end() {
                break;
            }
            if starts.len() == MAX_BUCKETS {
                return Err(TooManyBuckets);
            }
            starts.push(next);
        }
        Ok(Self {
            range,
            interval,
            starts,
        })
    }

    /// The window.
    pub fn range(&self) -> DateRange {
        self.range
    }

    /// The interval.
    pub fn interval(&self) -> Interval {
        self.interval
    }

    /// Bucket starts, ascending.
    pub fn starts(&self) -> &[Timestamp] {
        &self.starts
    }

    /// Index of the bucket holding `t`, if `t` lies inside the window.
    pub fn index_of(&self, t: Timestamp) -> Option<usize> {
        if t < self.range.start() || t >= self.range.end() {
            return None;
        }
        self.starts.partition_point(|&s| s <= t).checked_sub(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        Timestamp::parse(s).unwrap()
    }

    fn window(a: &str, b: &str) -> DateRange {
        DateRange::new(ts(a), ts(b)).unwrap()
    }

    #[test]
    fn floor_aligns_to_utc_hours_days_iso_weeks_and_months() {
        for (interval, t, expected) in [
            (
                Interval::Hour,
                "2024-03-10T12:34:56.789Z",
                "2024-03-10T12:00:00.000Z",
            ),
            (
                Interval::Hour,
                "2024-03-10T12:00:00.000Z",
                "2024-03-10T12:00:00.000Z",
            ),
            (
                Interval::Day,
                "2024-03-10T23:59:59.999Z",
                "2024-03-10T00:00:00.000Z",
            ),
            (
                Interval::Day,
                "1969-12-31T12:00:00.000Z",
                "1969-12-31T00:00:00.000Z",
            ),
            // 2024-03-10 is a Sunday: its ISO week began Monday the 4th.
            (
                Interval::Week,
                "2024-03-10T23:59:59.999Z",
                "2024-03-04T00:00:00.000Z",
            ),
            (
                Interval::Week,
                "2024-03-11T00:00:00.000Z",
                "2024-03-11T00:00:00.000Z",
            ),
            // A week that straddles the new year.
            (
                Interval::Week,
                "2025-01-01T08:00:00.000Z",
                "2024-12-30T00:00:00.000Z",
            ),
            (
                Interval::Week,
                "1970-01-01T00:00:00.000Z",
                "1969-12-29T00:00:00.000Z",
            ),
            (
                Interval::Month,
                "2024-02-29T18:00:00.000Z",
                "2024-02-01T00:00:00.000Z",
            ),
            (
                Interval::Month,
                "2024-12-31T23:59:59.999Z",
                "2024-12-01T00:00:00.000Z",
            ),
            (
                Interval::Month,
                "2024-03-01T00:00:00.000Z",
                "2024-03-01T00:00:00.000Z",
            ),
        ] {
            assert_eq!(interval.floor(ts(t)), ts(expected), "{interval} {t}");
        }
    }

    #[test]
    fn next_steps_one_bucket_including_uneven_months() {
        for (interval, start, expected) in [
            (
                Interval::Hour,
                "2024-03-10T23:00:00.000Z",
                "2024-03-11T00:00:00.000Z",
            ),
            (
                Interval::Day,
                "2024-02-28T00:00:00.000Z",
                "2024-02-29T00:00:00.000Z",
            ),
            (
                Interval::Week,
                "2024-12-30T00:00:00.000Z",
                "2025-01-06T00:00:00.000Z",
            ),
            (
                Interval::Month,
                "2024-01-01T00:00:00.000Z",
                "2024-02-01T00:00:00.000Z",
            ),
            (
                Interval::Month,
                "2024-02-01T00:00:00.000Z",
                "2024-03-01T00:00:00.000Z",
            ),
            (
                Interval::Month,
                "2024-12-01T00:00:00.000Z",
                "2025-01-01T00:00:00.000Z",
            ),
        ] {
            assert_eq!(interval.next(ts(start)), Some(ts(expected)), "{interval}");
        }
        assert_eq!(Interval::Month.next(ts("9999-12-01T00:00:00.000Z")), None);
    }

    #[test]
    fn parses_exact_names_only() {
        for i in Interval::ALL {
            assert_eq!(i.as_str().parse::<Interval>(), Ok(i));
        }
        for bad in ["", "Day", "DAY", "days", "quarter", " day"] {
            assert_eq!(bad.parse::<Interval>(), Err(InvalidInterval), "{bad:?}");
        }
    }

    #[test]
    fn buckets_cover_the_window_from_its_rounded_down_start() {
        for (range, interval, expected) in [
            (
                window("2024-03-10T10:30:00.000Z", "2024-03-12T00:00:00.000Z"),
                Interval::Day,
                vec!["2024-03-10T00:00:00.000Z", "2024-03-11T00:00:00.000Z"],
            ),
            (
                window("2024-03-10T10:30:00.000Z", "2024-03-12T00:00:00.001Z"),
                Interval::Day,
                vec![
                    "2024-03-10T00:00:00.000Z",
                    "2024-03-11T00:00:00.000Z",
                    "2024-03-12T00:00:00.000Z",
                ],
            ),
            (
                window("2024-01-31T00:00:00.000Z", "2024-03-01T00:00:00.000Z"),
                Interval::Month,
                vec!["2024-01-01T00:00:00.000Z", "2024-02-01T00:00:00.000Z"],
            ),
            (
                window("2024-03-10T00:00:00.000Z", "2024-03-19T00:00:00.000Z"),
                Interval::Week,
                vec![
                    "2024-03-04T00:00:00.000Z",
                    "2024-03-11T00:00:00.000Z",
                    "2024-03-18T00:00:00.000Z",
                ],
            ),
            (
                window("2024-03-10T10:00:00.000Z", "2024-03-10T10:00:00.001Z"),
                Interval::Hour,
                vec!["2024-03-10T10:00:00.000Z"],
            ),
        ] {
            let b = Buckets::new(range, interval).unwrap();
            let starts: Vec<String> = b.starts().iter().map(|t| t.to_wire()).collect();
            assert_eq!(starts, expected, "{interval}");
        }
    }

    #[test]
    fn refuses_more_than_the_bucket_limit() {
        let start = ts("2024-01-01T00:00:00.000Z");
        let at = |hours: i64| Timestamp::from_millis(start.millis() + hours * HOUR_MS);
        let exactly = DateRange::new(start, at(MAX_BUCKETS as i64)).unwrap();
        assert_eq!(
            Buckets::new(exactly, Interval::Hour)
                .unwrap()
                .starts()
                .len(),
            MAX_BUCKETS
        );
        let one_more = DateRange::new(start, at(MAX_BUCKETS as i64 + 1)).unwrap();
        assert_eq!(Buckets::new(one_more, Interval::Hour), Err(TooManyBuckets));
        let wide = window("0001-01-01T00:00:00.000Z", "9999-12-31T23:59:59.999Z");
        assert_eq!(Buckets::new(wide, Interval::Month), Err(TooManyBuckets));
        assert_eq!(Buckets::new(wide, Interval::Hour), Err(TooManyBuckets));
    }

    #[test]
    fn index_of_finds_the_holding_bucket_inside_the_window_only() {
        let b = Buckets::new(
            window("2024-01-15T00:00:00.000Z", "2024-03-10T00:00:00.000Z"),
            Interval::Month,
        )
        .unwrap();
        for (t, expected) in [
            ("2024-01-14T23:59:59.999Z", None),
            ("2024-01-15T00:00:00.000Z", Some(0)),
            ("2024-02-01T00:00:00.000Z", Some(1)),
            ("2024-03-09T23:59:59.999Z", Some(2)),
            ("2024-03-10T00:00:00.000Z", None),
        ] {
            assert_eq!(b.index_of(ts(t)), expected, "{t}");
        }
    }

    #[test]
    fn grid_groups_never_straddle_buckets() {
        let range = window("2024-01-15T05:00:00.000Z", "2024-03-10T00:00:00.000Z");
        for interval in Interval::ALL {
            let grid = interval.grid(range);
            assert!(grid.origin <= range.start().millis(), "{interval}");
            let mut g = grid.origin;
            while g < range.end().millis() {
                let first = interval.floor(Timestamp::from_millis(g));
                let last = interval.floor(Timestamp::from_millis(g + grid.width - 1));
                assert_eq!(first, last, "{interval} group at {g}");
                g += grid.width;
            }
        }
    }
}
