//! The ingestion decision, written once for every backend.
//!
//! Ingestion runs in three steps. *Read*: the backend loads what it holds
//! for the batch's event ids and dimension rows, as a [`Snapshot`] in
//! natural keys. *Decide*: [`decide`], a pure function, says which events
//! are new, duplicates or conflicts and what each dimension row becomes.
//! *Write*: the backend carries out that [`Plan`]. Only this module knows
//! the rules:
//!
//! - **The first occurrence of an id is the event** ([`Occurrences`]); a
//!   later one with the same facts is a duplicate, with other facts a
//!   conflict, and neither is stored.
//! - **Names come only from stored events**: duplicates and conflicts
//!   never rename anything.
//! - **The newest event wins names, ties go to the later arrival**
//!   ([`supersedes`], applied by `wins`): by event time, never arrival
//!   order, so a late old event cannot rename things backwards.
//!
//! Maps are ordered by (organization key, natural key in byte order), so
//! every backend touches rows in one global order (PostgreSQL transactions
//! then never deadlock on each other's dimension rows).

use super::facts::Fingerprint;
use super::IngestOutcome;
use crate::domain::{Component, Event, EventId, Name, Timestamp};
use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// The hasher of the maps ingestion builds per transaction: foldhash, a
/// few times faster than std's SipHash on short string keys (SipHash was
/// about a tenth of the import writer's time), seeded at random per
/// process, which gives the minimal resistance to crafted collisions that
/// maps living for one transaction need.
pub type FastHash = foldhash::fast::RandomState;

/// A map with [`FastHash`].
pub type FastMap<K, V> = HashMap<K, V, FastHash>;

/// The separator of [`catalog_signature`]: a control character that ids
/// cannot contain.
const SIGNATURE_SEPARATOR: &str = "\u{1f}";

/// A row of one organization, by its organization's key (organizations
/// are resolved first, by the read step): a dimension row's natural key
/// ([`Key`]) or surrogate key (`InOrg<i64>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct InOrg<Id> {
    /// Organization key.
    pub org: i64,
    /// External id or name, or surrogate key.
    pub id: Id,
}

/// A dimension row's natural key: its organization and its external id
/// (component, catalog, user, project) or name (category, manufacturer,
/// application).
pub type Key<'a> = InOrg<&'a str>;

impl<'a> Key<'a> {
    /// The key of `id` in organization `org`.
    pub fn new(org: i64, id: &'a impl AsRef<str>) -> Self {
        let id = id.as_ref();
        Self { org, id }
    }
}

/// Stored values per organization and natural key, as a backend reads them.
#[derive(Debug, Clone)]
pub struct ByOrg<V>(FastMap<i64, FastMap<String, V>>);

impl<V> Default for ByOrg<V> {
    fn default() -> Self {
        Self(FastMap::default())
    }
}

impl<V> ByOrg<V> {
    /// Records the stored value of `key`.
    pub fn insert(&mut self, key: Key<'_>, value: V) {
        let ids = self.0.entry(key.org).or_default();
        ids.insert(key.id.to_owned(), value);
    }

    /// The stored value of `key`, if any.
    pub fn get(&self, key: Key<'_>) -> Option<&V> {
        self.0.get(&key.org)?.get(key.id)
    }
}

/// A stored component version, with its names resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredComponent {
    /// Display name.
    pub name: String,
    /// Category name.
    pub category: Option<String>,
    /// Manufacturer name.
    pub manufacturer: Option<String>,
    /// [`catalog_signature`] of its membership.
    pub catalog_ids: String,
    /// Timestamp of the event that set this version.
    pub name_ts: Timestamp,
}

/// A stored catalog name or user email.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredName {
    /// The name (or email).
    pub name: String,
    /// Timestamp of the event that set it.
    pub name_ts: Timestamp,
}

/// The facts of stored event ids; `None` for events stored before
/// fingerprints were kept (a re-send of those is a duplicate).
pub type StoredEvents = HashMap<EventId, Option<Fingerprint>>;

/// What a store holds for a batch: the read step's result. It need only
/// cover the batch's event ids and the dimension rows its events name.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Already stored event ids with their facts.
    pub events: StoredEvents,
    /// Stored components.
    pub components: ByOrg<StoredComponent>,
    /// Stored catalogs.
    pub catalogs: ByOrg<StoredName>,
    /// Stored users.
    pub users: ByOrg<StoredName>,
}

/// What happens to one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// First occurrence of its id: stored.
    New,
    /// Same facts as the stored (or earlier) event: ignored.
    Duplicate,
    /// Other facts than the stored (or earlier) event: ignored and reported.
    Conflict,
}

/// The rule "the first occurrence of an id is the event", applied to a
/// stream of events after what a store already holds (by default nothing:
/// only repeats within the stream count).
#[derive(Debug, Default)]
pub struct Occurrences(StoredEvents);

impl Occurrences {
    /// Classifies the next event, whose facts are `facts`.
    pub fn classify(&mut self, id: EventId, facts: Fingerprint) -> Verdict {
        match self.0.entry(id) {
            Entry::Vacant(first) => {
                first.insert(Some(facts));
                Verdict::New
            }
            Entry::Occupied(first) if first.get().is_some_and(|f| f != facts) => Verdict::Conflict,
            Entry::Occupied(_) => Verdict::Duplicate,
        }
    }
}

/// Whether a version set at `newer` replaces one set at `older` that
/// arrived before it: the newest event wins, and a tie goes to the later
/// arrival. The only place that rule is written.
pub fn supersedes(newer: Timestamp, older: Timestamp) -> bool {
    newer >= older
}

/// An event as ingestion takes it: with its facts' fingerprint, hashed
/// once per ingestion, and its organization's key.
#[derive(Debug, Clone, Copy)]
pub struct Fingerprinted<'a> {
    /// The event.
    pub event: &'a Event,
    /// Its facts, stored beside its id.
    pub facts: Fingerprint,
    /// Its organization's key.
    pub org: i64,
}

impl<'a> Fingerprinted<'a> {
    /// Fingerprints `event`'s facts; `org` is its organization's key.
    pub fn of(event: &'a Event, org: i64) -> Self {
        let facts = Fingerprint::of(event);
        Self { event, facts, org }
    }
}

/// A catalog name or user email to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameVersion<'a> {
    /// The new name.
    pub name: &'a Name,
    /// Timestamp of the event that carries it.
    pub ts: Timestamp,
    /// Whether the visible name differs from the stored one (a renamed
    /// catalog's components need new labels).
    pub renamed: bool,
}

/// A component version to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComponentVersion<'a> {
    /// The version, as the winning event carries it.
    pub component: &'a Component,
    /// Timestamp of that event.
    pub ts: Timestamp,
    /// [`catalog_signature`] of its membership.
    pub catalog_ids: String,
    /// Whether its catalog membership must be (re)written.
    pub membership_changed: bool,
}

/// The versions to write of one kind of dimension row, in locking order:
/// inserted where the store holds no row (the read step found no key),
/// else updated. Rows whose stored version stands are not listed.
pub type Writes<'a, V> = BTreeMap<Key<'a>, V>;

/// The decision: what the write step does, and what each batch answers.
#[derive(Debug, Default)]
pub struct Plan<'a> {
    /// One outcome per batch, in order.
    pub outcomes: Vec<IngestOutcome>,
    /// Events to store, in arrival order.
    pub new_events: Vec<Fingerprinted<'a>>,
    /// Category names of written component versions.
    pub categories: BTreeSet<Key<'a>>,
    /// Manufacturer names of written component versions.
    pub manufacturers: BTreeSet<Key<'a>>,
    /// Application names of new events.
    pub applications: BTreeSet<Key<'a>>,
    /// Project ids of new events.
    pub projects: BTreeSet<Key<'a>>,
    /// Every catalog the new events name.
    pub catalogs: Writes<'a, NameVersion<'a>>,
    /// Every user of a new event.
    pub users: Writes<'a, NameVersion<'a>>,
    /// Every component of a new event.
    pub components: Writes<'a, ComponentVersion<'a>>,
}

/// The newest candidate of one dimension row among the new events.
struct Latest<V> {
    ts: Timestamp,
    value: V,
}

/// The newest candidate of each dimension row: hashed, since every new
/// event visits several; only the rows written are put in locking order.
type Candidates<'a, V> = FastMap<Key<'a>, Latest<V>>;

fn keep_latest<'a, V>(map: &mut Candidates<'a, V>, key: Key<'a>, ts: Timestamp, value: V) {
    let latest = Latest { ts, value };
    match map.entry(key) {
        Entry::Vacant(slot) => {
            slot.insert(latest);
        }
        Entry::Occupied(mut old) if supersedes(ts, old.get().ts) => {
            old.insert(latest);
        }
        Entry::Occupied(_) => {}
    }
}

/// Decides a group of batches (committed together, in order) against what
/// the store holds. Pure: no I/O, the same answer on every backend.
pub fn decide<'a, B>(batches: impl IntoIterator<Item = B>, stored: Snapshot) -> Plan<'a>
where
    B: IntoIterator<Item = Fingerprinted<'a>>,
{
    let mut plan = Plan::default();
    let mut occurrences = Occurrences(stored.events);
    for batch in batches {
        let mut outcome = IngestOutcome::default();
        for new in batch {
            match occurrences.classify(new.event.id, new.facts) {
                Verdict::New => {
                    outcome.accepted += 1;
                    plan.new_events.push(new);
                }
                Verdict::Duplicate => outcome.duplicates += 1,
                Verdict::Conflict => outcome.add_conflict(new.event.id),
            }
        }
        plan.outcomes.push(outcome);
    }
    let mut components = Candidates::default();
    let mut catalogs = Candidates::default();
    let mut users = Candidates::default();
    for &Fingerprinted { event: e, org, .. } in &plan.new_events {
        let ts = e.timestamp;
        let c = &e.component;
        keep_latest(&mut components, Key::new(org, &c.id), ts, c);
        for k in &c.catalogs {
            keep_latest(&mut catalogs, Key::new(org, &k.id), ts, &k.display_name);
        }
        keep_latest(&mut users, Key::new(org, &e.user.id), ts, &e.user.email);
        plan.applications
            .extend(e.application.as_ref().map(|a| Key::new(org, a)));
        plan.projects
            .extend(e.project_id.as_ref().map(|p| Key::new(org, p)));
    }
    plan.catalogs = weigh(catalogs, &stored.catalogs, name_change);
    plan.users = weigh(users, &stored.users, name_change);
    plan.components = weigh(components, &stored.components, component_change);
    for (key, &ComponentVersion { component: c, .. }) in &plan.components {
        let named = |name| Key::new(key.org, name);
        plan.categories.extend(c.category.as_ref().map(named));
        plan.manufacturers
            .extend(c.manufacturer.as_ref().map(named));
    }
    plan
}

/// The newest version of each row among the new events, weighed against
/// the stored one by `change`.
fn weigh<'a, V, S, W>(
    latest: Candidates<'a, V>,
    stored: &ByOrg<S>,
    change: fn(Latest<V>, Option<&S>) -> Option<W>,
) -> Writes<'a, W> {
    let weighed = |(key, latest)| Some((key, change(latest, stored.get(key))?));
    latest.into_iter().filter_map(weighed).collect()
}

/// `version`, set at `ts`, if it is to be written over the stored row set
/// at `stored_ts` (`None`: not stored) that holds the `same` values: if it
/// supersedes that row and says something new.
fn wins<W>(version: W, ts: Timestamp, stored_ts: Option<Timestamp>, same: bool) -> Option<W> {
    let wins = stored_ts.is_none_or(|old| supersedes(ts, old) && !(same && ts == old));
    wins.then_some(version)
}

fn name_change<'a>(new: Latest<&'a Name>, stored: Option<&StoredName>) -> Option<NameVersion<'a>> {
    let Latest { ts, value: name } = new;
    let renamed = stored.is_some_and(|s| s.name != name.as_str());
    let version = NameVersion { name, ts, renamed };
    wins(version, ts, stored.map(|s| s.name_ts), !renamed)
}

fn component_change<'a>(
    latest: Latest<&'a Component>,
    stored: Option<&StoredComponent>,
) -> Option<ComponentVersion<'a>> {
    let Latest { ts, value: c } = latest;
    let catalog_ids = catalog_signature(c);
    let membership_changed =
        stored.map_or(!c.catalogs.is_empty(), |s| s.catalog_ids != catalog_ids);
    let same = stored.is_some_and(|s| {
        !membership_changed
            && s.name == c.display_name.as_str()
            && s.category.as_deref() == c.category.as_ref().map(Name::as_str)
            && s.manufacturer.as_deref() == c.manufacturer.as_ref().map(Name::as_str)
    });
    let version = ComponentVersion {
        component: c,
        ts,
        catalog_ids,
        membership_changed,
    };
    wins(version, ts, stored.map(|s| s.name_ts), same)
}

/// The component's catalog ids, sorted and deduplicated, as one string:
/// stored beside the component so that a changed membership shows without
/// reading the membership rows.
pub fn catalog_signature(component: &Component) -> String {
    let ids: BTreeSet<&str> = component.catalogs.iter().map(|c| c.id.as_str()).collect();
    Vec::from_iter(ids).join(SIGNATURE_SEPARATOR)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Catalog, EventKind, OpaqueId, OrgId, User, UserId};
    use uuid::Uuid;

    fn text<T>(parse: impl Fn(String) -> Result<T, crate::domain::TextError>, s: &str) -> T {
        parse(s.to_owned()).unwrap_or_else(|_| unreachable!("valid test text"))
    }

    /// Event `id` at `ts` about component `c` named `name`, in catalogs
    /// `catalogs` (id = name), by user `u1` with `email`.
    fn ev(id: u128, ts: i64, name: &str, catalogs: &[&str], email: &str) -> Event {
        Event {
            id: EventId::from_uuid(Uuid::from_u128(id)),
            organization: text(OrgId::parse, "org"),
            timestamp: Timestamp::from_millis(ts),
            kind: EventKind::View,
            component: Component {
                id: text(OpaqueId::parse, "c"),
                display_name: text(Name::parse, name),
                catalogs: catalogs
                    .iter()
                    .map(|k| Catalog {
                        id: text(OpaqueId::parse, k),
                        display_name: text(Name::parse, k),
                    })
                    .collect(),
                category: Some(text(Name::parse, &format!("{name} category"))),
                manufacturer: None,
            },
            user: User {
                id: text(UserId::parse, "u1"),
                email: text(Name::parse, email),
            },
            application: None,
            project_id: None,
        }
    }

    fn id(n: u128) -> EventId {
        EventId::from_uuid(Uuid::from_u128(n))
    }

    fn outcome(accepted: u64, duplicates: u64, conflicting: &[u128]) -> IngestOutcome {
        IngestOutcome {
            accepted,
            duplicates,
            conflicts: conflicting.len() as u64,
            conflicting: conflicting.iter().map(|n| id(*n)).collect(),
        }
    }

    /// [`decide`] on unhashed batches.
    fn decided<'a, const N: usize>(batches: [&'a [Event]; N], stored: &Snapshot) -> Plan<'a> {
        let batches = batches.map(|b| b.iter().map(|e| Fingerprinted::of(e, 1)));
        decide(batches, stored.clone())
    }

    /// A store holding `events` as they were decided, names included.
    fn holding(events: &[Event]) -> Snapshot {
        let mut s = Snapshot::default();
        for e in events {
            s.events.insert(e.id, Some(Fingerprint::of(e)));
        }
        let plan = decided([events], &Snapshot::default());
        for (k, v) in &plan.components {
            {
                let stored = StoredComponent {
                    name: v.component.display_name.to_string(),
                    category: v.component.category.as_ref().map(ToString::to_string),
                    manufacturer: None,
                    catalog_ids: v.catalog_ids.clone(),
                    name_ts: v.ts,
                };
                s.components.insert(*k, stored);
            }
        }
        for (k, v) in &plan.catalogs {
            {
                let stored = StoredName {
                    name: v.name.to_string(),
                    name_ts: v.ts,
                };
                s.catalogs.insert(*k, stored);
            }
        }
        for (k, v) in &plan.users {
            {
                let stored = StoredName {
                    name: v.name.to_string(),
                    name_ts: v.ts,
                };
                s.users.insert(*k, stored);
            }
        }
        s
    }

    /// What the plan does to component `c`: (name written, whether its
    /// membership is rewritten), or `None` when it is kept or untouched.
    fn component(plan: &Plan<'_>) -> Option<(String, bool)> {
        plan.components
            .values()
            .next()
            .map(|v| (v.component.display_name.to_string(), v.membership_changed))
    }

    fn email(plan: &Plan<'_>) -> Option<String> {
        plan.users.values().next().map(|v| v.name.to_string())
    }

    /// One row of the classification table.
    struct Classified {
        case: &'static str,
        batches: Vec<Vec<Event>>,
        outcomes: Vec<IngestOutcome>,
    }

    /// One row of the names table: what the plan writes for component `c`
    /// (its name and whether its membership is rewritten) and user `u1`.
    struct Named {
        case: &'static str,
        batch: Vec<Event>,
        component: Option<(&'static str, bool)>,
        email: Option<&'static str>,
    }

    #[test]
    fn events_are_new_duplicates_or_conflicts() {
        let stored = [ev(1, 100, "A", &[], "a@x")];
        let mut legacy = holding(&stored);
        legacy.events.insert(id(9), None);
        let renamed = ev(1, 100, "Renamed", &["k"], "b@x");
        let mut placed = ev(1, 100, "A", &[], "a@x");
        placed.kind = EventKind::Place;
        let cases = vec![
            Classified {
                case: "new",
                batches: vec![vec![ev(2, 50, "B", &[], "a@x")]],
                outcomes: vec![outcome(1, 0, &[])],
            },
            Classified {
                case: "names are not facts",
                batches: vec![vec![renamed.clone()]],
                outcomes: vec![outcome(0, 1, &[])],
            },
            Classified {
                case: "timestamp is a fact",
                batches: vec![vec![ev(1, 101, "A", &[], "a@x")]],
                outcomes: vec![outcome(0, 0, &[1])],
            },
            Classified {
                case: "kind is a fact",
                batches: vec![vec![placed]],
                outcomes: vec![outcome(0, 0, &[1])],
            },
            Classified {
                case: "first occurrence in a batch is the event",
                batches: vec![vec![
                    ev(3, 10, "C", &[], "a@x"),
                    ev(3, 10, "D", &[], "x@x"),
                    ev(3, 11, "C", &[], "a@x"),
                ]],
                outcomes: vec![outcome(1, 1, &[3])],
            },
            Classified {
                case: "a later batch of the group repeats an earlier one",
                batches: vec![
                    vec![ev(4, 10, "C", &[], "a@x")],
                    vec![ev(4, 10, "C", &[], "a@x"), ev(4, 12, "C", &[], "a@x")],
                ],
                outcomes: vec![outcome(1, 0, &[]), outcome(0, 1, &[4])],
            },
            Classified {
                case: "no fingerprint kept: a duplicate",
                batches: vec![vec![ev(9, 1, "Z", &[], "z@x")]],
                outcomes: vec![outcome(0, 1, &[])],
            },
        ];
        for Classified {
            case,
            batches,
            outcomes,
        } in cases
        {
            let plan = decide(
                batches
                    .iter()
                    .map(|b| b.iter().map(|e| Fingerprinted::of(e, 1))),
                legacy.clone(),
            );
            assert_eq!(plan.outcomes, outcomes, "{case}");
        }
    }

    #[test]
    fn names_come_only_from_stored_events() {
        let stored = holding(&[ev(1, 100, "A", &["k"], "a@x")]);
        let batch = [ev(1, 100, "=HIJACKED", &["evil"], "evil@x")];
        let plan = decided([&batch[..]], &stored);
        assert!(plan.new_events.is_empty());
        assert!(plan.components.is_empty() && plan.catalogs.is_empty() && plan.users.is_empty());
        let conflict = [ev(1, 500, "=HIJACKED", &["evil"], "evil@x")];
        let plan = decided([&conflict[..]], &stored);
        assert!(plan.components.is_empty() && plan.new_events.is_empty());
    }

    #[test]
    fn the_newest_event_wins_names_and_ties_go_to_the_later_arrival() {
        let stored = holding(&[ev(1, 100, "A", &["k"], "a@x")]);
        // (case, batch, component written, email written)
        let cases = vec![
            Named {
                case: "newer renames",
                batch: vec![ev(2, 200, "B", &["k"], "b@x")],
                component: Some(("B", false)),
                email: Some("b@x"),
            },
            Named {
                case: "older loses",
                batch: vec![ev(2, 50, "B", &["j"], "b@x")],
                component: None,
                email: None,
            },
            Named {
                case: "a tie goes to the later arrival",
                batch: vec![ev(2, 100, "B", &["k"], "b@x")],
                component: Some(("B", false)),
                email: Some("b@x"),
            },
            Named {
                case: "a tie with the same names writes nothing",
                batch: vec![ev(2, 100, "A", &["k"], "a@x")],
                component: None,
                email: None,
            },
            Named {
                case: "newer with the same names moves the time",
                batch: vec![ev(2, 150, "A", &["k"], "a@x")],
                component: Some(("A", false)),
                email: Some("a@x"),
            },
            Named {
                case: "membership follows the newest",
                batch: vec![ev(2, 200, "A", &["k", "j"], "a@x")],
                component: Some(("A", true)),
                email: Some("a@x"),
            },
            Named {
                case: "in a batch the newest wins wherever it is",
                batch: vec![
                    ev(2, 300, "New", &["k"], "n@x"),
                    ev(3, 200, "Mid", &[], "m@x"),
                ],
                component: Some(("New", false)),
                email: Some("n@x"),
            },
            Named {
                case: "in a batch a tie goes to the later event",
                batch: vec![
                    ev(2, 300, "First", &["k"], "f@x"),
                    ev(3, 300, "Second", &["k"], "s@x"),
                ],
                component: Some(("Second", false)),
                email: Some("s@x"),
            },
        ];
        for Named {
            case,
            batch,
            component: written,
            email: email_written,
        } in cases
        {
            let plan = decided([&batch[..]], &stored);
            let expected = written.map(|(n, m)| (n.to_owned(), m));
            assert_eq!(component(&plan), expected, "{case}");
            assert_eq!(email(&plan).as_deref(), email_written, "{case}");
        }
    }

    #[test]
    fn catalogs_and_names_used_by_written_versions() {
        let stored = holding(&[ev(1, 100, "A", &["k"], "a@x")]);
        let mut renaming = ev(2, 200, "A", &["k"], "a@x");
        renaming.component.catalogs[0].display_name = text(Name::parse, "K renamed");
        let plan = decided([std::slice::from_ref(&renaming)], &stored);
        let catalog = plan.catalogs.values().next().cloned();
        assert_eq!(
            catalog.map(|v| (v.name.to_string(), v.renamed)),
            Some(("K renamed".into(), true))
        );
        assert_eq!(plan.categories.len(), 1, "the written version's category");
        let late = ev(3, 50, "Old", &["k"], "a@x");
        let plan = decided([std::slice::from_ref(&late)], &stored);
        assert!(
            plan.categories.is_empty(),
            "a losing version's category is not needed"
        );
        assert!(plan.catalogs.is_empty(), "the stored name stands");
        let fresh = decided([std::slice::from_ref(&late)], &Snapshot::default());
        assert!(matches!(fresh.components.values().next(), Some(v) if v.membership_changed));
    }

    #[test]
    fn at_most_a_hundred_conflicts_are_named() {
        let stored: Vec<Event> = (0..150).map(|i| ev(i, 10, "A", &[], "a@x")).collect();
        let snapshot = holding(&stored);
        let moved: Vec<Event> = (0..150).map(|i| ev(i, 11, "A", &[], "a@x")).collect();
        let plan = decided([&moved[..]], &snapshot);
        let expected: Vec<u128> = (0..100).collect();
        let mut want = outcome(0, 0, &expected);
        want.conflicts = 150;
        assert_eq!(plan.outcomes, vec![want]);
        let mut total = plan.outcomes[0].clone();
        total += plan.outcomes[0].clone();
        assert_eq!((total.conflicts, total.conflicting.len()), (300, 100));
    }
}
