//! The `Timestamp` column, fast: rows arrive in time order, so the date part
//! (`yyyy-MM-ddT`) is rendered once per day and only the time of day per row.

use crate::domain::Timestamp;

const MILLIS_PER_DAY: i64 = 86_400_000;

/// Renders timestamps in the wire form, caching the current day's prefix.
#[derive(Debug, Clone)]
pub struct TimestampCells {
    day: i64,
    date: [u8; 11],
}

impl Default for TimestampCells {
    fn default() -> Self {
        Self::new()
    }
}

impl TimestampCells {
    /// A formatter with nothing cached yet.
    pub fn new() -> Self {
        Self {
            day: i64::MIN,
            date: [0; 11],
        }
    }

    /// `ts` as `yyyy-MM-ddTHH:mm:ss.fffZ`.
    #[inline]
    pub fn render(&mut self, ts: Timestamp) -> [u8; Timestamp::WIRE_LEN] {
        let millis = ts.millis();
        let day = millis.div_euclid(MILLIS_PER_DAY);
        if day != self.day {
            let mut full = Vec::with_capacity(Timestamp::WIRE_LEN);
            Timestamp::from_millis(day * MILLIS_PER_DAY).write_wire(&mut full);
            self.date.copy_from_slice(&full[..11]);
            self.day = day;
        }
        let ms = millis.rem_euclid(MILLIS_PER_DAY) as u32;
        let (secs, milli) = (ms / 1000, ms % 1000);
        let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
        let mut out = [0u8; Timestamp::WIRE_LEN];
        out[..11].copy_from_slice(&self.date);
        out[11..].copy_from_slice(&[
            b'0' + (h / 10) as u8,
            b'0' + (h % 10) as u8,
            b':',
            b'0' + (m / 10) as u8,
            b'0' + (m % 10) as u8,
            b':',
            b'0' + (s / 10) as u8,
            b'0' + (s % 10) as u8,
            b'.',
            b'0' + (milli / 100) as u8,
            b'0' + (milli / 10 % 10) as u8,
            b'0' + (milli % 10) as u8,
            b'Z',
        ]);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_wire_form_across_days_and_out_of_order() {
        let mut cells = TimestampCells::new();
        for millis in [
            0,
            1,
            999,
            86_399_999,
            86_400_000,
            1_700_000_000_123,
            951_782_400_000, // 2000-02-29
            1_700_000_000_122,
            253_402_300_799_999, // 9999-12-31T23:59:59.999Z
        ] {
            let ts = Timestamp::from_millis(millis);
            let out = cells.render(ts);
            assert_eq!(std::str::from_utf8(&out).unwrap(), ts.to_wire(), "{millis}");
        }
    }
}
