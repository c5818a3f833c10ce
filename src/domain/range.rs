//! The half-open export window `[start, end)`.

use super::Timestamp;

/// A validated download window: `start <= t < end`, so consecutive windows
/// never count an event twice. Constructed only through [`DateRange::new`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateRange {
    start: Timestamp,
    end: Timestamp,
}

/// The only way two valid instants fail to form a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("end must be later than start")]
pub struct RangeError;

impl DateRange {
    /// Builds the window, refusing empty and inverted ones.
    pub fn new(start: Timestamp, end: Timestamp) -> Result<Self, RangeError> {
        if start < end {
            Ok(Self { start, end })
        } else {
            Err(RangeError)
        }
    }

    /// Inclusive lower bound.
    pub fn start(&self) -> Timestamp {
        self.start
    }

    /// Exclusive upper bound.
    pub fn end(&self) -> Timestamp {
        self.end
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_its_bounds_and_refuses_empty_windows() {
        let a = Timestamp::from_millis(10);
        let b = Timestamp::from_millis(20);
        let r = DateRange::new(a, b).unwrap();
        assert_eq!((r.start(), r.end()), (a, b));
        assert_eq!(DateRange::new(a, a), Err(RangeError));
        assert_eq!(DateRange::new(b, a), Err(RangeError));
    }
}
