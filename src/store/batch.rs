//! Backend-independent preparation of an ingestion batch: which dimension
//! rows it touches and which version of each wins.
//!
//! "Most recent" means the event with the latest *event timestamp*, not the
//! one that arrived last: a late, older event never overwrites a name. Within
//! a batch, ties go to the later event in the batch. Maps are ordered so that
//! every backend touches rows in the same order, which keeps concurrent
//! PostgreSQL transactions from deadlocking each other.

use crate::domain::{Component, Event, Name, OpaqueId, OrgId, Timestamp, UserId};
use std::collections::{BTreeMap, BTreeSet};

/// The separator of [`catalog_signature`]: a control character that ids
/// cannot contain.
const SIGNATURE_SEPARATOR: char = '\u{1f}';

/// Dimension rows a batch touches, each with its winning version.
#[derive(Debug, Default)]
pub struct BatchPlan<'a> {
    /// Distinct organizations.
    pub orgs: BTreeSet<&'a OrgId>,
    /// Latest version of each component.
    pub components: BTreeMap<(&'a OrgId, &'a OpaqueId), (Timestamp, &'a Component)>,
    /// Latest name of each catalog.
    pub catalogs: BTreeMap<(&'a OrgId, &'a OpaqueId), (Timestamp, &'a Name)>,
    /// Latest email of each user.
    pub users: BTreeMap<(&'a OrgId, &'a UserId), (Timestamp, &'a Name)>,
    /// Category names used by winning component versions.
    pub categories: BTreeSet<(&'a OrgId, &'a Name)>,
    /// Manufacturer names used by winning component versions.
    pub manufacturers: BTreeSet<(&'a OrgId, &'a Name)>,
    /// Application names used by any event.
    pub applications: BTreeSet<(&'a OrgId, &'a Name)>,
    /// Project ids used by any event.
    pub projects: BTreeSet<(&'a OrgId, &'a OpaqueId)>,
}

fn keep_latest<K: Ord, V>(map: &mut BTreeMap<K, (Timestamp, V)>, key: K, ts: Timestamp, value: V) {
    match map.get(&key) {
        Some((existing, _)) if *existing > ts => {}
        _ => {
            map.insert(key, (ts, value));
        }
    }
}

impl<'a> BatchPlan<'a> {
    /// Collects the dimension rows of `events` (one batch, or several
    /// committed together).
    pub fn new(events: impl IntoIterator<Item = &'a Event>) -> Self {
        let mut plan = Self::default();
        for e in events {
            let org = &e.organization;
            plan.orgs.insert(org);
            keep_latest(
                &mut plan.components,
                (org, &e.component.id),
                e.timestamp,
                &e.component,
            );
            for c in &e.component.catalogs {
                keep_latest(
                    &mut plan.catalogs,
                    (org, &c.id),
                    e.timestamp,
                    &c.display_name,
                );
            }
            keep_latest(
                &mut plan.users,
                (org, &e.user.id),
                e.timestamp,
                &e.user.email,
            );
            if let Some(app) = &e.application {
                plan.applications.insert((org, app));
            }
            if let Some(p) = &e.project_id {
                plan.projects.insert((org, p));
            }
        }
        for ((org, _), (_, component)) in &plan.components {
            if let Some(c) = &component.category {
                plan.categories.insert((org, c));
            }
            if let Some(m) = &component.manufacturer {
                plan.manufacturers.insert((org, m));
            }
        }
        plan
    }
}

/// The component's catalog ids, sorted and deduplicated, as one string:
/// stored beside the component so a backend can tell cheaply whether its
/// membership changed.
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
