//! The usage summary of a window: what every backend computes with SQL
//! `GROUP BY`s, and the one place their grouped rows become buckets.

use super::StoreError;
use crate::domain::{Buckets, EventKind, Grid, Timestamp};

/// How many entries the top lists hold.
pub const TOP_N: i64 = 10;

/// Events of each kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KindCounts {
    /// `View` events.
    pub view: u64,
    /// `Download` events.
    pub download: u64,
    /// `Place` events.
    pub place: u64,
}

impl KindCounts {
    fn add(&mut self, kind: EventKind, events: u64) {
        match kind {
            EventKind::View => self.view += events,
            EventKind::Download => self.download += events,
            EventKind::Place => self.place += events,
        }
    }
}

/// One bucket of the chart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketCounts {
    /// Aligned start of the bucket.
    pub start: Timestamp,
    /// Events in it by kind (only those inside the window).
    pub counts: KindCounts,
}

/// A component of the top list, with its current name (as the CSV shows it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopComponent {
    /// Component id.
    pub id: String,
    /// Current display name.
    pub name: String,
    /// Events in the window.
    pub events: u64,
}

/// A user of the top list, with their current email (as the CSV shows it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopUser {
    /// User id.
    pub id: String,
    /// Current email.
    pub email: String,
    /// Events in the window.
    pub events: u64,
}

/// Everything `GET …/summary` answers, before encoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Every bucket of the window, zero buckets included.
    pub buckets: Vec<BucketCounts>,
    /// Events by kind over the whole window.
    pub totals: KindCounts,
    /// Distinct users with an event in the window.
    pub users: u64,
    /// Distinct components with an event in the window.
    pub components: u64,
    /// At most [`TOP_N`], by events descending then id ascending (bytewise).
    pub top_components: Vec<TopComponent>,
    /// At most [`TOP_N`], by events descending then id ascending (bytewise).
    pub top_users: Vec<TopUser>,
}

/// One row of a backend's bucket query: events of one kind in grid group
/// `group` (see [`Grid`]).
#[derive(Debug, Clone, Copy)]
pub struct GroupCount {
    /// Group number on the grid.
    pub group: i64,
    /// Stored event kind code.
    pub kind: i64,
    /// Events.
    pub events: i64,
}

/// Folds a backend's grid groups into the window's buckets, summing the
/// totals on the way. Groups the window does not hold would be a query bug
/// and are reported, not dropped.
pub fn fill_buckets(
    buckets: &Buckets,
    grid: Grid,
    groups: impl IntoIterator<Item = GroupCount>,
) -> Result<(Vec<BucketCounts>, KindCounts), StoreError> {
    let mut out: Vec<BucketCounts> = buckets
        .starts()
        .iter()
        .map(|&start| BucketCounts {
            start,
            counts: KindCounts::default(),
        })
        .collect();
    let mut totals = KindCounts::default();
    for g in groups {
        let kind = EventKind::from_code(g.kind)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown event kind code {}", g.kind)))?;
        let events = count(g.events);
        // The group's first instant inside the window decides its bucket.
        let group_start = grid.origin + g.group * grid.width;
        let first = Timestamp::from_millis(group_start.max(buckets.range().start().millis()));
        let index = buckets.index_of(first).ok_or_else(|| {
            StoreError::Backend(format!("summary group {} lies outside the window", g.group))
        })?;
        out[index].counts.add(kind, events);
        totals.add(kind, events);
    }
    Ok((out, totals))
}

/// A top-list row as both backends' queries return it: id, name or email,
/// events, and (on every row) how many distinct ids the window holds.
#[derive(Debug, Clone)]
pub struct Ranked {
    /// Component or user id.
    pub id: String,
    /// Current name or email.
    pub label: String,
    /// Events in the window.
    pub events: i64,
    /// Distinct ids in the window.
    pub distinct: i64,
}

impl Summary {
    /// Puts a backend's query results together.
    pub fn assemble(
        (buckets, totals): (Vec<BucketCounts>, KindCounts),
        components: Vec<Ranked>,
        users: Vec<Ranked>,
    ) -> Self {
        Summary {
            buckets,
            totals,
            users: users.first().map_or(0, |r| count(r.distinct)),
            components: components.first().map_or(0, |r| count(r.distinct)),
            top_components: components
                .into_iter()
                .map(|r| TopComponent {
                    id: r.id,
                    name: r.label,
                    events: count(r.events),
                })
                .collect(),
            top_users: users
                .into_iter()
                .map(|r| TopUser {
                    id: r.id,
                    email: r.label,
                    events: count(r.events),
                })
                .collect(),
        }
    }
}

/// A count read back from SQL as a `u64`.
fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}
