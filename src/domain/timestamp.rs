//! The one timestamp format of the contract: `yyyy-MM-ddTHH:mm:ss.fffZ`, UTC.

use std::fmt;
use time::{Date, Month, OffsetDateTime, Time};

/// An instant in UTC with millisecond precision, stored as milliseconds since
/// the Unix epoch so that both stores can index and compare it as an integer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

/// Why a string is not a contract timestamp; callers only need "it is not".
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not a yyyy-MM-ddTHH:mm:ss.fffZ instant")]
pub struct InvalidTimestamp;

impl Timestamp {
    /// The exact length of the wire form, e.g. `2024-01-01T00:00:00.000Z`.
    pub const WIRE_LEN: usize = 24;

    /// Parses the strict wire form. Anything else — other lengths, offsets,
    /// lowercase `t`/`z`, missing or extra fraction digits, impossible dates
    /// such as Feb 29 of a non-leap year, hour 24 or second 60 — is refused.
    pub fn parse(s: &str) -> Result<Self, InvalidTimestamp> {
        let b = s.as_bytes();
        if b.len() != Self::WIRE_LEN {
            return Err(InvalidTimestamp);
        }
        let separators = [
            (4, b'-'),
            (7, b'-'),
            (10, b'T'),
            (13, b':'),
            (16, b':'),
            (19, b'.'),
            (23, b'Z'),
        ];
        if separators.iter().any(|&(i, c)| b[i] != c) {
            return Err(InvalidTimestamp);
        }
        let num = |from: usize, to: usize| -> Result<u32, InvalidTimestamp> {
            b[from..to].iter().try_fold(0u32, |acc, &d| {
                if d.is_ascii_digit() {
                    Ok(acc * 10 + u32::from(d - b'0'))
                } else {
                    Err(InvalidTimestamp)
                }
            })
        };
        let year = i32::try_from(num(0, 4)?).map_err(|_| InvalidTimestamp)?;
        let month = u8::try_from(num(5, 7)?).map_err(|_| InvalidTimestamp)?;
        let month = Month::try_from(month).map_err(|_| InvalidTimestamp)?;
        let day = u8::try_from(num(8, 10)?).map_err(|_| InvalidTimestamp)?;
        let date = Date::from_calendar_date(year, month, day).map_err(|_| InvalidTimestamp)?;
        let hour = u8::try_from(num(11, 13)?).map_err(|_| InvalidTimestamp)?;
        let minute = u8::try_from(num(14, 16)?).map_err(|_| InvalidTimestamp)?;
        let second = u8::try_from(num(17, 19)?).map_err(|_| InvalidTimestamp)?;
        let milli = u16::try_from(num(20, 23)?).map_err(|_| InvalidTimestamp)?;
        let time =
            Time::from_hms_milli(hour, minute, second, milli).map_err(|_| InvalidTimestamp)?;
        let instant = date.with_time(time).assume_utc();
        Ok(Self::from_datetime(instant))
    }

    /// Wraps milliseconds since the epoch, as read back from a store.
    pub fn from_millis(millis: i64) -> Self {
        Self(millis)
    }

    /// Milliseconds since the Unix epoch; the form both stores index.
    pub fn millis(self) -> i64 {
        self.0
    }

    /// The current instant, truncated to milliseconds.
    pub fn now() -> Self {
        Self::from_datetime(OffsetDateTime::now_utc())
    }

    fn from_datetime(dt: OffsetDateTime) -> Self {
        let millis = dt.unix_timestamp_nanos() / 1_000_000;
        // Years 0..=9999 in milliseconds fit in an i64 with room to spare.
        Self(i64::try_from(millis).unwrap_or(i64::MAX))
    }

    /// Writes the wire form into `out` without allocating; the export path
    /// calls this once per row.
    pub fn write_wire(self, out: &mut Vec<u8>) {
        let secs = self.0.div_euclid(1000);
        let milli = self.0.rem_euclid(1000) as u32;
        let days = secs.div_euclid(86_400);
        let sod = secs.rem_euclid(86_400) as u32;
        let (y, m, d) = civil_from_days(days);
        let (hh, mm, ss) = (sod / 3600, (sod / 60) % 60, sod % 60);
        push_digits(out, y.clamp(0, 9999) as u32, 4);
        out.push(b'-');
        push_digits(out, m, 2);
        out.push(b'-');
        push_digits(out, d, 2);
        out.push(b'T');
        push_digits(out, hh, 2);
        out.push(b':');
        push_digits(out, mm, 2);
        out.push(b':');
        push_digits(out, ss, 2);
        out.push(b'.');
        push_digits(out, milli, 3);
        out.push(b'Z');
    }

    /// The wire form as a string, for file names and messages.
    pub fn to_wire(self) -> String {
        let mut v = Vec::with_capacity(Self::WIRE_LEN);
        self.write_wire(&mut v);
        // write_wire only emits ASCII digits and separators.
        String::from_utf8_lossy(&v).into_owned()
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_wire())
    }
}

fn push_digits(out: &mut Vec<u8>, mut n: u32, width: usize) {
    let start = out.len();
    out.resize(start + width, b'0');
    for slot in out[start..].iter_mut().rev() {
        *slot = b'0' + (n % 10) as u8;
        n /= 10;
    }
}

/// Howard Hinnant's days-to-civil algorithm: hand-written because it is the
/// hot loop of the export (one call per row) and `time`'s general-purpose
/// formatting allocates and is several times slower.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_many_instants() {
        for s in [
            "1970-01-01T00:00:00.000Z",
            "2024-02-29T23:59:59.999Z",
            "2000-03-01T12:34:56.789Z",
            "1969-12-31T23:59:59.999Z",
            "0001-01-01T00:00:00.000Z",
            "9999-12-31T23:59:59.999Z",
        ] {
            let t = Timestamp::parse(s).unwrap();
            assert_eq!(t.to_wire(), s);
        }
    }

    #[test]
    fn formatting_agrees_with_time_crate_over_a_wide_span() {
        let mut ms: i64 = -2_000_000_000_000;
        while ms < 8_000_000_000_000 {
            let dt = OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).unwrap();
            let expected = format!(
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
                dt.year(),
                u8::from(dt.month()),
                dt.day(),
                dt.hour(),
                dt.minute(),
                dt.second(),
                dt.millisecond()
            );
            assert_eq!(Timestamp::from_millis(ms).to_wire(), expected);
            ms += 7_777_777_777;
        }
    }

    #[test]
    fn rejects_everything_but_the_strict_form() {
        for s in [
            "",
            "2024-01-01",
            "2024-01-01T00:00:00Z",
            "2024-01-01T00:00:00.00Z",
            "2024-01-01T00:00:00.0000Z",
            "2024-01-01T00:00:00.000+00:00",
            "2024-01-01t00:00:00.000Z",
            "2024-01-01T00:00:00.000z",
            "2024-01-01 00:00:00.000Z",
            "2023-02-29T00:00:00.000Z",
            "2024-01-01T24:00:00.000Z",
            "2024-01-01T00:60:00.000Z",
            "2024-01-01T00:00:60.000Z",
            "2024-13-01T00:00:00.000Z",
            "2024-00-10T00:00:00.000Z",
            "2024-01-00T00:00:00.000Z",
            "+024-01-01T00:00:00.000Z",
            "2024-01-01T00:00:00.-00Z",
            "２024-01-01T00:00:00.000Z",
        ] {
            assert_eq!(Timestamp::parse(s), Err(InvalidTimestamp), "{s:?}");
        }
    }
}
