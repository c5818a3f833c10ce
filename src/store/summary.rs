//! The usage summary of a window: what every backend computes with SQL
//! `GROUP BY`s, and the one place their grouped rows become buckets.

use super::StoreError;
use crate::domain::{Buckets, EventKind, Grid, Timestamp};
use rustc_hash::FxHashMap;

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
    let mut counts = Counts::new(buckets);
    for g in groups {
        // The group's first instant inside the window decides its bucket.
        let group_start = grid.origin + g.group * grid.width;
        let first = group_start.max(buckets.range().start().millis());
        counts.add(buckets, first, g.kind, count(g.events))?;
    }
    Ok((counts.buckets, counts.totals))
}

/// Per-bucket and total counts while they are being summed.
struct Counts {
    buckets: Vec<BucketCounts>,
    totals: KindCounts,
}

impl Counts {
    fn new(buckets: &Buckets) -> Self {
        Self {
            buckets: buckets
                .starts()
                .iter()
                .map(|&start| BucketCounts {
                    start,
                    counts: KindCounts::default(),
                })
                .collect(),
            totals: KindCounts::default(),
        }
    }

    /// Counts `events` of stored kind `kind` at instant `at` (ms).
    fn add(
        &mut self,
        buckets: &Buckets,
        at: i64,
        kind: i64,
        events: u64,
    ) -> Result<(), StoreError> {
        let kind = EventKind::from_code(kind)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown event kind code {kind}")))?;
        let index = buckets
            .index_of(Timestamp::from_millis(at))
            .ok_or_else(|| {
                StoreError::Backend(format!("summary row at {at} lies outside the window"))
            })?;
        self.buckets[index].counts.add(kind, events);
        self.totals.add(kind, events);
        Ok(())
    }
}

/// Sums a window's events one by one, for a backend that scans the window
/// once instead of grouping it several times (see `store::sqlite::summary`):
/// buckets and totals, and events per component and per user by surrogate
/// key.
pub struct Tally {
    counts: Counts,
    per_component: FxHashMap<i64, u64>,
    per_user: FxHashMap<i64, u64>,
}

/// Keys of the components or users that may make a top list, with their
/// events, and how many distinct keys there were.
pub struct Candidates {
    /// Every key with at least as many events as the [`TOP_N`]th, so that
    /// ties at the cut can be broken by id once ids are known.
    pub keys: Vec<(i64, u64)>,
    /// Distinct keys in the window.
    pub distinct: usize,
}

impl Tally {
    /// An empty tally for the window's buckets.
    pub fn new(buckets: &Buckets) -> Self {
        Self {
            counts: Counts::new(buckets),
            per_component: FxHashMap::default(),
            per_user: FxHashMap::default(),
        }
    }

    /// Counts one event.
    pub fn add(
        &mut self,
        buckets: &Buckets,
        at: i64,
        kind: i64,
        component_key: i64,
        user_key: i64,
    ) -> Result<(), StoreError> {
        self.counts.add(buckets, at, kind, 1)?;
        *self.per_component.entry(component_key).or_default() += 1;
        *self.per_user.entry(user_key).or_default() += 1;
        Ok(())
    }

    /// The buckets and totals, and the top-list candidates of components
    /// and of users.
    pub fn finish(self) -> ((Vec<BucketCounts>, KindCounts), Candidates, Candidates) {
        (
            (self.counts.buckets, self.counts.totals),
            candidates(self.per_component),
            candidates(self.per_user),
        )
    }
}

/// The keys that may make a top list, from events per key.
pub fn candidates(per_key: FxHashMap<i64, u64>) -> Candidates {
    let distinct = per_key.len();
    let mut keys: Vec<(i64, u64)> = per_key.into_iter().collect();
    keys.sort_unstable_by_key(|&(_, events)| std::cmp::Reverse(events));
    let cut = usize::try_from(TOP_N).unwrap_or(usize::MAX);
    if let Some(&(_, least)) = keys.get(cut.saturating_sub(1)) {
        keys.retain(|&(_, events)| events >= least);
    }
    Candidates { keys, distinct }
}

/// The top list from candidates whose ids and labels are now known: events
/// descending, then id ascending (bytewise), at most [`TOP_N`]; with the
/// candidates' count of distinct keys.
pub fn rank(mut named: Vec<Ranked>, distinct: usize) -> Ranking {
    named.sort_by(|a, b| b.events.cmp(&a.events).then_with(|| a.id.cmp(&b.id)));
    named.truncate(usize::try_from(TOP_N).unwrap_or(usize::MAX));
    Ranking {
        top: named,
        distinct: u64::try_from(distinct).unwrap_or(u64::MAX),
    }
}

/// A top-list candidate once its id and label are known.
#[derive(Debug, Clone)]
pub struct Ranked {
    /// Component or user id.
    pub id: String,
    /// Current name or email.
    pub label: String,
    /// Events in the window.
    pub events: u64,
}

/// A ranked top list and how many distinct keys the window holds.
#[derive(Debug, Clone, Default)]
pub struct Ranking {
    /// At most [`TOP_N`] entries, in order.
    pub top: Vec<Ranked>,
    /// Distinct components or users in the window.
    pub distinct: u64,
}

impl Summary {
    /// Puts a backend's query results together.
    pub fn assemble(
        (buckets, totals): (Vec<BucketCounts>, KindCounts),
        components: Ranking,
        users: Ranking,
    ) -> Self {
        Summary {
            buckets,
            totals,
            users: users.distinct,
            components: components.distinct,
            top_components: components
                .top
                .into_iter()
                .map(|r| TopComponent {
                    id: r.id,
                    name: r.label,
                    events: r.events,
                })
                .collect(),
            top_users: users
                .top
                .into_iter()
                .map(|r| TopUser {
                    id: r.id,
                    email: r.label,
                    events: r.events,
                })
                .collect(),
        }
    }
}

/// A count read back from SQL as a `u64`.
pub(crate) fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{DateRange, Interval};

    fn ranked(id: &str, events: u64) -> Ranked {
        Ranked {
            id: id.into(),
            label: format!("{id} label"),
            events,
        }
    }

    #[test]
    fn candidates_keep_every_tie_at_the_cut() {
        // Twelve keys: 1..=8 with 10 events, 9..=12 with 5 (four tied at the cut).
        let per_key: FxHashMap<i64, u64> =
            (1..=12).map(|k| (k, if k <= 8 { 10 } else { 5 })).collect();
        let c = candidates(per_key);
        assert_eq!(c.distinct, 12);
        assert_eq!(c.keys.len(), 12);
        let few: FxHashMap<i64, u64> = [(1, 3), (2, 1)].into_iter().collect();
        assert_eq!(candidates(few).keys, vec![(1, 3), (2, 1)]);
        let many: FxHashMap<i64, u64> = (1..=20).map(|k| (k, k as u64)).collect();
        assert_eq!(candidates(many).keys.len(), 10);
    }

    #[test]
    fn rank_orders_by_events_then_id_bytewise_and_cuts_at_ten() {
        let mut named = vec![
            ranked("b", 2),
            ranked("a", 2),
            ranked("Z", 2),
            ranked("c", 9),
        ];
        named.extend((0..10).map(|i| ranked(&format!("x{i}"), 1)));
        let ranking = rank(named, 14);
        assert_eq!(ranking.distinct, 14);
        let ids: Vec<String> = ranking.top.into_iter().map(|r| r.id).collect();
        assert_eq!(
            ids,
            ["c", "Z", "a", "b", "x0", "x1", "x2", "x3", "x4", "x5"]
        );
    }

    #[test]
    fn tally_and_grid_groups_agree() {
        let start = Timestamp::parse("2024-01-31T12:00:00.000Z").unwrap();
        let end = Timestamp::parse("2024-03-02T00:00:00.000Z").unwrap();
        let buckets = Buckets::new(DateRange::new(start, end).unwrap(), Interval::Month).unwrap();
        let day = 86_400_000;
        let events: Vec<(i64, i64)> = (0..30)
            .map(|i| (start.millis() + i * day, 1 + i % 3))
            .collect();
        let mut tally = Tally::new(&buckets);
        for &(at, kind) in &events {
            tally.add(&buckets, at, kind, 7, 8).unwrap();
        }
        let (scanned, components, users) = tally.finish();
        let grid = Interval::Month.grid(buckets.range());
        let groups = events.iter().map(|&(at, kind)| GroupCount {
            group: (at - grid.origin) / grid.width,
            kind,
            events: 1,
        });
        assert_eq!(fill_buckets(&buckets, grid, groups).unwrap(), scanned);
        assert_eq!(scanned.0.len(), 3);
        assert_eq!(scanned.1.view + scanned.1.download + scanned.1.place, 30);
        assert_eq!((components.distinct, users.distinct), (1, 1));
        assert!(tally_rejects_unknown_kinds(&buckets));
    }

    fn tally_rejects_unknown_kinds(buckets: &Buckets) -> bool {
        let at = buckets.range().start().millis();
        matches!(
            Tally::new(buckets).add(buckets, at, 9, 1, 1),
            Err(StoreError::Corrupt(_))
        )
    }
}
