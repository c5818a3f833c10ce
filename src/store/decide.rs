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
//!   ([`supersedes`]): by event time, never arrival order, so a late old
//!   event cannot rename things backwards.
//!
//! Maps are ordered by (organization, natural key) in byte order, so every
//! backend touches rows in one global order (PostgreSQL transactions then
//! never deadlock on each other's dimension rows).

use super::facts::Fingerprint;
use super::IngestOutcome;
use crate::domain::{Component, Event, EventId, Name, OpaqueId, OrgId, Timestamp, UserId};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// The separator of [`catalog_signature`]: a control character that ids
/// cannot contain.
const SIGNATURE_SEPARATOR: char = '\u{1f}';

/// A dimension row's natural key: its organization and its external id.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key<'a, T> {
    /// Owning organization.
    pub org: &'a OrgId,
    /// External id (component, catalog, user) or name.
    pub id: &'a T,
}

// By hand: derived impls would demand `T: Copy`, but only references are copied.
impl<T> Clone for Key<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for Key<'_, T> {}

/// Stored values per organization and natural key, as a backend reads them.
#[derive(Debug)]
pub struct ByOrg<V>(HashMap<OrgId, HashMap<String, V>>);

impl<V> Default for ByOrg<V> {
    fn default() -> Self {
        Self(HashMap::new())
    }
}

impl<V> ByOrg<V> {
    /// Records the stored value of (`org`, `id`).
    pub fn insert(&mut self, org: OrgId, id: String, value: V) {
        self.0.entry(org).or_default().insert(id, value);
    }

    /// The stored value of (`org`, `id`), if any.
    pub fn get(&self, org: &OrgId, id: &str) -> Option<&V> {
        self.0.get(org)?.get(id)
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

/// What a store holds for a batch: the read step's result. It need only
/// cover the batch's event ids and the dimension rows its events name.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// Already stored event ids with their facts; `None` for events stored
    /// before fingerprints were kept (a re-send of those is a duplicate).
    pub events: HashMap<EventId, Option<Fingerprint>>,
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
/// stream of events after what a store already holds.
pub struct Occurrences<'s> {
    stored: &'s HashMap<EventId, Option<Fingerprint>>,
    earlier: HashMap<EventId, Fingerprint>,
}

impl<'s> Occurrences<'s> {
    /// Starts after `stored` (empty: only repeats within the stream count).
    pub fn after(stored: &'s HashMap<EventId, Option<Fingerprint>>) -> Self {
        Self {
            stored,
            earlier: HashMap::new(),
        }
    }

    /// Classifies the next event, whose facts are `facts`.
    pub fn classify(&mut self, id: EventId, facts: Fingerprint) -> Verdict {
        let first = match self.earlier.get(&id) {
            Some(f) => Some(*f),
            None => match self.stored.get(&id) {
                Some(stored) => *stored,
                None => {
                    self.earlier.insert(id, facts);
                    return Verdict::New;
                }
            },
        };
        match first {
            Some(f) if f != facts => Verdict::Conflict,
            _ => Verdict::Duplicate,
        }
    }
}

/// Whether a version set at `newer` replaces one set at `older` that
/// arrived before it: the newest event wins, and a tie goes to the later
/// arrival. The only place that rule is written.
pub fn supersedes(newer: Timestamp, older: Timestamp) -> bool {
    newer >= older
}

/// An event to store, with its facts' fingerprint.
#[derive(Debug, Clone, Copy)]
pub struct NewEvent<'a> {
    /// The event.
    pub event: &'a Event,
    /// Its facts, stored beside its id.
    pub facts: Fingerprint,
}

/// What a dimension row becomes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change<V> {
    /// Not stored yet: insert this version.
    Insert(V),
    /// Stored, and this version supersedes it: update.
    Update(V),
    /// Stored and current: no write (the row's key is still needed).
    Keep,
}

impl<V> Change<V> {
    /// The version to write, if any.
    pub fn version(&self) -> Option<&V> {
        match self {
            Change::Insert(v) | Change::Update(v) => Some(v),
            Change::Keep => None,
        }
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

/// The decision: what the write step does, and what each batch answers.
#[derive(Debug, Default)]
pub struct Plan<'a> {
    /// One outcome per batch, in order.
    pub outcomes: Vec<IngestOutcome>,
    /// Events to store, in arrival order.
    pub new_events: Vec<NewEvent<'a>>,
    /// Organizations of the new events.
    pub orgs: BTreeSet<&'a OrgId>,
    /// Category names of written component versions.
    pub categories: BTreeSet<Key<'a, Name>>,
    /// Manufacturer names of written component versions.
    pub manufacturers: BTreeSet<Key<'a, Name>>,
    /// Application names of new events.
    pub applications: BTreeSet<Key<'a, Name>>,
    /// Project ids of new events.
    pub projects: BTreeSet<Key<'a, OpaqueId>>,
    /// Every catalog the new events name.
    pub catalogs: BTreeMap<Key<'a, OpaqueId>, Change<NameVersion<'a>>>,
    /// Every user of a new event.
    pub users: BTreeMap<Key<'a, UserId>, Change<NameVersion<'a>>>,
    /// Every component of a new event.
    pub components: BTreeMap<Key<'a, OpaqueId>, Change<ComponentVersion<'a>>>,
}

impl Plan<'_> {
    /// Whether any row is written at all.
    pub fn is_empty(&self) -> bool {
        self.new_events.is_empty()
    }
}

/// The newest candidate of one dimension row among the new events.
struct Latest<V> {
    ts: Timestamp,
    value: V,
}

fn keep_latest<K: Ord, V>(map: &mut BTreeMap<K, Latest<V>>, key: K, ts: Timestamp, value: V) {
    match map.get(&key) {
        Some(current) if !supersedes(ts, current.ts) => {}
        _ => {
            map.insert(key, Latest { ts, value });
        }
    }
}

/// Decides a group of batches (committed together, in order) against what
/// the store holds. Pure: no I/O, the same answer on every backend.
pub fn decide<'a>(batches: impl IntoIterator<Item = &'a [Event]>, stored: &Snapshot) -> Plan<'a> {
    let fingerprinted = batches
        .into_iter()
        .map(|batch| batch.iter().map(|e| (e, Fingerprint::of(e))));
    decide_fingerprinted(fingerprinted, stored)
}

/// [`decide`] for events whose facts the caller has fingerprinted already
/// (a backend that needed them before reading), so no event is hashed twice.
pub fn decide_fingerprinted<'a, B>(
    batches: impl IntoIterator<Item = B>,
    stored: &Snapshot,
) -> Plan<'a>
where
    B: IntoIterator<Item = (&'a Event, Fingerprint)>,
{
    let mut plan = Plan::default();
    let mut occurrences = Occurrences::after(&stored.events);
    for batch in batches {
        let mut outcome = IngestOutcome::default();
        for (event, facts) in batch {
            match occurrences.classify(event.id, facts) {
                Verdict::New => {
                    outcome.accepted += 1;
                    plan.new_events.push(NewEvent { event, facts });
                }
                Verdict::Duplicate => outcome.duplicates += 1,
                Verdict::Conflict => outcome.add_conflict(event.id),
            }
        }
        plan.outcomes.push(outcome);
    }
    plan_dimensions(&mut plan, stored);
    plan
}

/// The dimension rows of the plan's new events (and of nothing else): the
/// newest version of each among them, weighed against the stored one.
fn plan_dimensions<'a>(plan: &mut Plan<'a>, stored: &Snapshot) {
    let mut components = BTreeMap::new();
    let mut catalogs = BTreeMap::new();
    let mut users = BTreeMap::new();
    for &NewEvent { event: e, .. } in &plan.new_events {
        let org = &e.organization;
        plan.orgs.insert(org);
        let c = &e.component;
        keep_latest(&mut components, Key { org, id: &c.id }, e.timestamp, c);
        for catalog in &c.catalogs {
            let key = Key {
                org,
                id: &catalog.id,
            };
            keep_latest(&mut catalogs, key, e.timestamp, &catalog.display_name);
        }
        let user = Key {
            org,
            id: &e.user.id,
        };
        keep_latest(&mut users, user, e.timestamp, &e.user.email);
        if let Some(id) = &e.application {
            plan.applications.insert(Key { org, id });
        }
        if let Some(id) = &e.project_id {
            plan.projects.insert(Key { org, id });
        }
    }
    plan.catalogs = catalogs
        .into_iter()
        .map(|(key, latest)| {
            (
                key,
                name_change(latest, stored.catalogs.get(key.org, key.id.as_str())),
            )
        })
        .collect();
    plan.users = users
        .into_iter()
        .map(|(key, latest)| {
            (
                key,
                name_change(latest, stored.users.get(key.org, key.id.as_str())),
            )
        })
        .collect();
    for (key, latest) in components {
        let change = component_change(latest, stored.components.get(key.org, key.id.as_str()));
        if let Some(v) = change.version() {
            if let Some(id) = &v.component.category {
                plan.categories.insert(Key { org: key.org, id });
            }
            if let Some(id) = &v.component.manufacturer {
                plan.manufacturers.insert(Key { org: key.org, id });
            }
        }
        plan.components.insert(key, change);
    }
}

fn name_change<'a>(
    latest: Latest<&'a Name>,
    stored: Option<&StoredName>,
) -> Change<NameVersion<'a>> {
    let Latest { ts, value: name } = latest;
    match stored {
        None => Change::Insert(NameVersion {
            name,
            ts,
            renamed: false,
        }),
        Some(s) => {
            let renamed = s.name != name.as_str();
            if supersedes(ts, s.name_ts) && (renamed || ts != s.name_ts) {
                Change::Update(NameVersion { name, ts, renamed })
            } else {
                Change::Keep
            }
        }
    }
}

fn component_change<'a>(
    latest: Latest<&'a Component>,
    stored: Option<&StoredComponent>,
) -> Change<ComponentVersion<'a>> {
    let Latest {
        ts,
        value: component,
    } = latest;
    let catalog_ids = catalog_signature(component);
    let Some(s) = stored else {
        return Change::Insert(ComponentVersion {
            membership_changed: !component.catalogs.is_empty(),
            component,
            ts,
            catalog_ids,
        });
    };
    let membership_changed = s.catalog_ids != catalog_ids;
    let same = !membership_changed
        && s.name == component.display_name.as_str()
        && s.category.as_deref() == component.category.as_ref().map(Name::as_str)
        && s.manufacturer.as_deref() == component.manufacturer.as_ref().map(Name::as_str);
    if supersedes(ts, s.name_ts) && !(same && ts == s.name_ts) {
        Change::Update(ComponentVersion {
            component,
            ts,
            catalog_ids,
            membership_changed,
        })
    } else {
        Change::Keep
    }
}

/// The component's catalog ids, sorted and deduplicated, as one string:
/// stored beside the component so that a changed membership shows without
/// reading the membership rows.
pub fn catalog_signature(component: &Component) -> String {
    let ids: BTreeSet<&str> = component.catalogs.iter().map(|c| c.id.as_str()).collect();
    let mut out = String::new();
    for (i, id) in ids.into_iter().enumerate() {
        if i > 0 {
            out.push(SIGNATURE_SEPARATOR);
        }
        out.push_str(id);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Catalog, EventKind, User};
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

    /// A store holding `events` as they were decided, names included.
    fn holding(events: &[Event]) -> Snapshot {
        let mut s = Snapshot::default();
        for e in events {
            s.events.insert(e.id, Some(Fingerprint::of(e)));
        }
        let plan = decide([events], &Snapshot::default());
        let org = text(OrgId::parse, "org");
        for (k, change) in &plan.components {
            if let Some(v) = change.version() {
                let stored = StoredComponent {
                    name: v.component.display_name.to_string(),
                    category: v.component.category.as_ref().map(ToString::to_string),
                    manufacturer: None,
                    catalog_ids: v.catalog_ids.clone(),
                    name_ts: v.ts,
                };
                s.components.insert(org.clone(), k.id.to_string(), stored);
            }
        }
        for (k, change) in &plan.catalogs {
            if let Some(v) = change.version() {
                let stored = StoredName {
                    name: v.name.to_string(),
                    name_ts: v.ts,
                };
                s.catalogs.insert(org.clone(), k.id.to_string(), stored);
            }
        }
        for (k, change) in &plan.users {
            if let Some(v) = change.version() {
                let stored = StoredName {
                    name: v.name.to_string(),
                    name_ts: v.ts,
                };
                s.users.insert(org.clone(), k.id.to_string(), stored);
            }
        }
        s
    }

    /// What the plan does to component `c`: (name written, whether its
    /// membership is rewritten), or `None` when it is kept or untouched.
    fn component(plan: &Plan<'_>) -> Option<(String, bool)> {
        plan.components
            .values()
            .find_map(Change::version)
            .map(|v| (v.component.display_name.to_string(), v.membership_changed))
    }

    fn email(plan: &Plan<'_>) -> Option<String> {
        plan.users
            .values()
            .find_map(Change::version)
            .map(|v| v.name.to_string())
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
            let plan = decide(batches.iter().map(Vec::as_slice), &legacy);
            assert_eq!(plan.outcomes, outcomes, "{case}");
        }
    }

    #[test]
    fn names_come_only_from_stored_events() {
        let stored = holding(&[ev(1, 100, "A", &["k"], "a@x")]);
        let batch = [ev(1, 100, "=HIJACKED", &["evil"], "evil@x")];
        let plan = decide([&batch[..]], &stored);
        assert!(plan.is_empty());
        assert!(plan.components.is_empty() && plan.catalogs.is_empty() && plan.users.is_empty());
        let conflict = [ev(1, 500, "=HIJACKED", &["evil"], "evil@x")];
        let plan = decide([&conflict[..]], &stored);
        assert!(plan.components.is_empty() && plan.orgs.is_empty());
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
            let plan = decide([&batch[..]], &stored);
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
        let plan = decide([std::slice::from_ref(&renaming)], &stored);
        let catalog = plan
            .catalogs
            .values()
            .next()
            .and_then(Change::version)
            .cloned();
        assert_eq!(
            catalog.map(|v| (v.name.to_string(), v.renamed)),
            Some(("K renamed".into(), true))
        );
        assert_eq!(plan.categories.len(), 1, "the written version's category");
        let late = ev(3, 50, "Old", &["k"], "a@x");
        let plan = decide([std::slice::from_ref(&late)], &stored);
        assert!(
            plan.categories.is_empty(),
            "a losing version's category is not needed"
        );
        assert_eq!(plan.catalogs.values().next(), Some(&Change::Keep));
        let fresh = decide([std::slice::from_ref(&late)], &Snapshot::default());
        assert!(
            matches!(fresh.components.values().next(), Some(Change::Insert(v)) if v.membership_changed)
        );
    }

    #[test]
    fn at_most_a_hundred_conflicts_are_named() {
        let stored: Vec<Event> = (0..150).map(|i| ev(i, 10, "A", &[], "a@x")).collect();
        let snapshot = holding(&stored);
        let moved: Vec<Event> = (0..150).map(|i| ev(i, 11, "A", &[], "a@x")).collect();
        let plan = decide([&moved[..]], &snapshot);
        let expected: Vec<u128> = (0..100).collect();
        let mut want = outcome(0, 0, &expected);
        want.conflicts = 150;
        assert_eq!(plan.outcomes, vec![want]);
        let mut total = plan.outcomes[0].clone();
        total += plan.outcomes[0].clone();
        assert_eq!((total.conflicts, total.conflicting.len()), (300, 100));
    }
}
