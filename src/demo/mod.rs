//! Realistic demo data: one organization's component library (building and
//! plant components from real-sounding manufacturers, in several catalogs)
//! and its usage over a period, generated deterministically from a seed.

mod names;

use crate::domain::{
    Catalog, Component, Event, EventId, EventKind, Name, OpaqueId, OrgId, Timestamp, User, UserId,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use uuid::Uuid;

const DAY_MS: i64 = 86_400_000;

/// The demo organization's library and people.
pub struct DemoLibrary {
    /// The organization.
    pub org: OrgId,
    /// Its components.
    pub components: Vec<Component>,
    /// Its users; the first is the administrator.
    pub users: Vec<User>,
    /// Applications that report usage.
    pub applications: Vec<Name>,
    /// Project ids events happen in.
    pub projects: Vec<OpaqueId>,
}

fn uuid_from(rng: &mut StdRng) -> Uuid {
    uuid::Builder::from_random_bytes(rng.random()).into_uuid()
}

fn name(s: impl Into<String>) -> Name {
    // Generated names are short, non-empty literals and combinations of them.
    Name::parse(s).unwrap_or_else(|_| unreachable!("demo names are valid"))
}

fn opaque(u: Uuid) -> OpaqueId {
    OpaqueId::parse(u.to_string()).unwrap_or_else(|_| unreachable!("a UUID is a valid id"))
}

impl DemoLibrary {
    /// Builds a library of about `components` components and `users` users.
    pub fn generate(seed: u64, components: usize, users: usize) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let org = OrgId::parse(uuid_from(&mut rng).to_string())
            .unwrap_or_else(|_| unreachable!("a UUID is a valid id"));
        let catalogs: Vec<Catalog> = names::CATALOGS
            .iter()
            .map(|c| Catalog {
                id: opaque(uuid_from(&mut rng)),
                display_name: name(*c),
            })
            .collect();
        let mut out = Vec::with_capacity(components);
        for i in 0..components {
            let family = &names::FAMILIES[i % names::FAMILIES.len()];
            let maker = family.manufacturers[rng.random_range(0..family.manufacturers.len())];
            let model = family.models[rng.random_range(0..family.models.len())];
            let size = family.sizes[rng.random_range(0..family.sizes.len())];
            let display = format!("{maker} {model} {} {size}", family.noun);
            let mut member: Vec<Catalog> = family
                .catalogs
                .iter()
                .map(|&c| catalogs[c].clone())
                .collect();
            if rng.random_bool(0.15) {
                member.push(catalogs[names::CATALOGS.len() - 1].clone());
            }
            out.push(Component {
                id: opaque(uuid_from(&mut rng)),
                display_name: name(display),
                catalogs: member,
                category: Some(name(family.category)),
                manufacturer: (!rng.random_bool(0.05)).then(|| name(maker)),
            });
        }
        let users = (0..users)
            .map(|i| {
                let first = names::FIRST_NAMES[(i * 7 + 3) % names::FIRST_NAMES.len()];
                let last = names::LAST_NAMES[(i * 11 + 5) % names::LAST_NAMES.len()];
                let email = if i == 0 {
                    "admin@contoso-engineering.com".to_owned()
                } else {
                    format!(
                        "{}.{}{}@contoso-engineering.com",
                        first.to_lowercase(),
                        last.to_lowercase(),
                        i
                    )
                };
                User {
                    id: UserId::parse(uuid_from(&mut rng).to_string())
                        .unwrap_or_else(|_| unreachable!("a UUID is a valid id")),
                    email: name(email),
                }
            })
            .collect();
        let applications = names::APPLICATIONS.iter().map(|a| name(*a)).collect();
        let projects = (0..12).map(|_| opaque(uuid_from(&mut rng))).collect();
        Self {
            org,
            components: out,
            users,
            applications,
            projects,
        }
    }

    /// `count` events spread over the `days` days before `now`, in
    /// chronological order (as a live reporter sends them and as history
    /// exports are sorted), in batches of [`BATCH`].
    pub fn events(&self, seed: u64, count: usize, days: i64, now: Timestamp) -> EventBatches<'_> {
        let end = now.millis() - now.millis().rem_euclid(DAY_MS);
        EventBatches {
            lib: self,
            rng: StdRng::seed_from_u64(seed ^ 0x5eed),
            emitted: 0,
            count,
            start: end - days * DAY_MS,
            span: days * DAY_MS,
        }
    }
}

/// An iterator of event batches, so demo data never sits in memory whole.
pub struct EventBatches<'a> {
    lib: &'a DemoLibrary,
    rng: StdRng,
    emitted: usize,
    count: usize,
    start: i64,
    span: i64,
}

/// Events per generated batch (the HTTP ingestion batch size).
pub const BATCH: usize = 1000;

impl Iterator for EventBatches<'_> {
    type Item = Vec<Event>;

    fn next(&mut self) -> Option<Vec<Event>> {
        let n = (self.count - self.emitted).min(BATCH);
        if n == 0 {
            return None;
        }
        Some((0..n).map(|_| self.one()).collect())
    }
}

impl EventBatches<'_> {
    fn one(&mut self) -> Event {
        let lib = self.lib;
        let rng = &mut self.rng;
        // Evenly through the period, with jitter inside each event's slot.
        let count = self.count.max(1) as i128;
        let slot = |k: usize| (i128::from(self.span) * k as i128 / count) as i64;
        let (from, to) = (slot(self.emitted), slot(self.emitted + 1));
        self.emitted += 1;
        let timestamp =
            Timestamp::from_millis(self.start + from + rng.random_range(0..(to - from).max(1)));
        // A few popular components get most of the use.
        let popular = lib.components.len().clamp(1, 20);
        let component = if rng.random_bool(0.4) {
            rng.random_range(0..popular)
        } else {
            rng.random_range(0..lib.components.len().max(1))
        };
        let kind = match rng.random_range(0..100) {
            0..=59 => EventKind::View,
            60..=84 => EventKind::Download,
            _ => EventKind::Place,
        };
        Event {
            id: EventId::from_uuid(uuid_from(rng)),
            organization: lib.org.clone(),
            timestamp,
            kind,
            component: lib.components[component].clone(),
            user: lib.users[rng.random_range(0..lib.users.len())].clone(),
            application: rng
                .random_bool(0.9)
                .then(|| lib.applications[rng.random_range(0..lib.applications.len())].clone()),
            project_id: (kind == EventKind::Place || rng.random_bool(0.3))
                .then(|| lib.projects[rng.random_range(0..lib.projects.len())].clone()),
        }
    }
}
