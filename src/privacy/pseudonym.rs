//! Pseudonyms for erased users: `erased-<16 hex>`, the first 64 bits of
//! HMAC-SHA256 over the organization and user ids, keyed with a random
//! per-deployment secret kept in the store.
//!
//! Keyed, not a plain hash: user ids are often guessable (UUIDs from a
//! directory, employee numbers), and a plain hash of a guess would undo the
//! erasure. Stable per (organization, user), so the erased user's events
//! stay countable as one user, and a later event for that user can be
//! recognized by computing its pseudonym: the store never keeps the real id.

use crate::domain::{Event, Name, OrgId, User, UserId};
use ring::hmac;
use std::borrow::Cow;
use std::collections::{BTreeSet, HashMap};

/// Every pseudonym starts with this.
pub const PSEUDONYM_PREFIX: &str = "erased-";
/// Bytes of the per-deployment secret.
pub const SECRET_LEN: usize = 32;
/// Hex digits of the pseudonym: 64 bits make a collision among one
/// organization's users vanishingly unlikely.
const PSEUDONYM_HEX: usize = 16;

/// Computes pseudonyms with the deployment's secret.
#[derive(Clone)]
pub struct Pseudonymizer {
    key: hmac::Key,
}

impl std::fmt::Debug for Pseudonymizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pseudonymizer(<secret>)")
    }
}

/// A new random secret, for a store that has none yet.
pub fn new_secret() -> [u8; SECRET_LEN] {
    rand::random()
}

impl Pseudonymizer {
    /// Uses `secret` (as stored) as the HMAC key.
    pub fn new(secret: &[u8]) -> Self {
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret),
        }
    }

    /// The pseudonym of `user` in `org`.
    pub fn pseudonym(&self, org: &OrgId, user: &UserId) -> UserId {
        let mut ctx = hmac::Context::with_key(&self.key);
        // Length-prefixed, so ("ab", "c") and ("a", "bc") differ.
        for part in [org.as_str(), user.as_str()] {
            ctx.update(&(part.len() as u64).to_be_bytes());
            ctx.update(part.as_bytes());
        }
        let tag = ctx.sign();
        let mut out = String::with_capacity(PSEUDONYM_PREFIX.len() + PSEUDONYM_HEX);
        out.push_str(PSEUDONYM_PREFIX);
        for b in &tag.as_ref()[..PSEUDONYM_HEX / 2] {
            out.push_str(&format!("{b:02x}"));
        }
        // ASCII, non-empty and far below the length limit.
        UserId::parse(out).unwrap_or_else(|_| unreachable_pseudonym())
    }

    /// Every distinct user of a batch with the pseudonym it would have if
    /// erased: a store looks the pseudonyms up to find which users are.
    pub fn candidates<'a>(&self, events: impl IntoIterator<Item = &'a Event>) -> Vec<Candidate> {
        let users: BTreeSet<(&OrgId, &UserId)> = events
            .into_iter()
            .map(|e| (&e.organization, &e.user.id))
            .collect();
        users
            .into_iter()
            .map(|(org, user)| Candidate {
                org: org.clone(),
                user: user.clone(),
                pseudonym: self.pseudonym(org, user),
            })
            .collect()
    }
}

/// A user of a batch and their would-be pseudonym.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// The organization.
    pub org: OrgId,
    /// The id the events carry.
    pub user: UserId,
    /// What it becomes once erased.
    pub pseudonym: UserId,
}

#[cold]
fn unreachable_pseudonym() -> UserId {
    // The only way here is a broken UserId rule; fail closed rather than
    // keep the real id.
    panic!("a pseudonym is always a valid user id")
}

/// Replaces, in `events`, every user of `erased` (the candidates a store
/// found erased) by their pseudonym with an empty email. Borrowed when
/// nothing changes (the common case), so ingestion copies nothing for an
/// organization without erasures.
pub fn apply<'a>(events: &'a [Event], erased: &[Candidate]) -> Cow<'a, [Event]> {
    if erased.is_empty() {
        return Cow::Borrowed(events);
    }
    let by_user: HashMap<(&OrgId, &UserId), &UserId> = erased
        .iter()
        .map(|c| ((&c.org, &c.user), &c.pseudonym))
        .collect();
    let mut out = events.to_vec();
    for e in &mut out {
        if let Some(pseudonym) = by_user.get(&(&e.organization, &e.user.id)) {
            e.user = User {
                id: (*pseudonym).clone(),
                email: Name::erased(),
            };
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Component, EventId, EventKind, OpaqueId, Timestamp};

    fn org(s: &str) -> OrgId {
        OrgId::parse(s).unwrap()
    }
    fn user(s: &str) -> UserId {
        UserId::parse(s).unwrap()
    }
    fn event(o: &str, u: &str) -> Event {
        Event {
            id: EventId::from_uuid(uuid::Uuid::new_v4()),
            organization: org(o),
            timestamp: Timestamp::from_millis(0),
            kind: EventKind::View,
            component: Component {
                id: OpaqueId::parse("c").unwrap(),
                display_name: Name::parse("C").unwrap(),
                catalogs: vec![],
                category: None,
                manufacturer: None,
            },
            user: User {
                id: user(u),
                email: Name::parse(format!("{u}@example.com")).unwrap(),
            },
            application: None,
            project_id: None,
        }
    }

    #[test]
    fn pseudonyms_are_stable_keyed_and_scoped_by_organization() {
        let p = Pseudonymizer::new(b"secret one");
        let a = p.pseudonym(&org("o1"), &user("u1"));
        assert_eq!(a, p.pseudonym(&org("o1"), &user("u1")), "stable");
        assert!(a.as_str().starts_with(PSEUDONYM_PREFIX));
        let hex = &a.as_str()[PSEUDONYM_PREFIX.len()..];
        assert_eq!(hex.len(), 16);
        assert!(hex
            .chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_uppercase()));
        assert_ne!(a, p.pseudonym(&org("o2"), &user("u1")), "per organization");
        assert_ne!(a, p.pseudonym(&org("o1"), &user("u2")), "per user");
        assert_ne!(
            p.pseudonym(&org("ab"), &user("c")),
            p.pseudonym(&org("a"), &user("bc")),
            "parts cannot slide into each other"
        );
        let other = Pseudonymizer::new(b"secret two");
        assert_ne!(a, other.pseudonym(&org("o1"), &user("u1")), "keyed");
    }

    #[test]
    fn only_erased_users_are_replaced() {
        let p = Pseudonymizer::new(b"k");
        let events = vec![
            event("o1", "gone"),
            event("o1", "kept"),
            event("o2", "gone"),
        ];
        let erased: Vec<_> = p
            .candidates(&events)
            .into_iter()
            .filter(|c| c.org == org("o1") && c.user == user("gone"))
            .collect();
        let out = apply(&events, &erased);
        assert_eq!(out[0].user.id, p.pseudonym(&org("o1"), &user("gone")));
        assert_eq!(out[0].user.email.as_str(), "");
        assert_eq!(out[1].user, events[1].user);
        assert_eq!(
            out[2].user, events[2].user,
            "the same id in another organization"
        );
        assert_eq!((out[0].id, out[2].id), (events[0].id, events[2].id));
    }

    #[test]
    fn nothing_erased_borrows() {
        let events = vec![event("o1", "u")];
        assert!(matches!(apply(&events, &[]), Cow::Borrowed(_)));
    }

    #[test]
    fn candidates_are_distinct_users() {
        let p = Pseudonymizer::new(b"k");
        let events = [event("o1", "u"), event("o1", "u"), event("o2", "u")];
        let c = p.candidates(&events);
        assert_eq!(c.len(), 2);
        assert_eq!(c[1].pseudonym, p.pseudonym(&org("o2"), &user("u")));
    }
}
