//! An event's *facts* (DESIGN §3.1) as a short fingerprint, kept with each
//! stored event id so that a re-sent id can be told apart as a duplicate
//! (same facts) or a conflict (different facts) without reading the event
//! back through its dimension tables.

use crate::domain::Event;
use ring::digest::{Context, SHA256};

/// Bytes kept per event: 128 bits of SHA-256, far beyond any accidental
/// collision between two different sets of facts for one id.
const LEN: usize = 16;

/// Version of the encoding below; part of the hash, so a future change of
/// encoding can never make old and new fingerprints compare equal by chance.
const ENCODING: u8 = 1;

/// The fingerprint of an event's facts: `organizationId`, `timestamp`,
/// `event`, `component.id`, `user.id`, `application` and `projectId`.
/// Names, catalogs, category, manufacturer and email are not facts: they
/// describe the dimensions and may change without the event changing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint([u8; LEN]);

impl Fingerprint {
    /// Fingerprints `e`'s facts. Every field is length-prefixed and every
    /// optional one carries a presence byte, so no two different sets of
    /// facts share an encoding.
    pub fn of(e: &Event) -> Self {
        let mut ctx = Context::new(&SHA256);
        ctx.update(&[ENCODING]);
        let mut text = |s: Option<&str>| match s {
            None => ctx.update(&[0]),
            Some(s) => {
                ctx.update(&[1]);
                ctx.update(&(s.len() as u64).to_le_bytes());
                ctx.update(s.as_bytes());
            }
        };
        text(Some(e.organization.as_str()));
        text(Some(e.component.id.as_str()));
        text(Some(e.user.id.as_str()));
        text(e.application.as_ref().map(|a| a.as_str()));
        text(e.project_id.as_ref().map(|p| p.as_str()));
        ctx.update(&e.timestamp.millis().to_le_bytes());
        ctx.update(&e.kind.code().to_le_bytes());
        let digest = ctx.finish();
        Self(std::array::from_fn(|i| digest.as_ref()[i]))
    }

    /// The stored form.
    pub fn as_bytes(&self) -> &[u8; LEN] {
        &self.0
    }

    /// Reads a stored fingerprint back; `None` for anything that is not one
    /// (a store only ever writes [`Fingerprint::as_bytes`]).
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        Some(Self(bytes.try_into().ok()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{EventKind, Name, OpaqueId, Timestamp};

    fn sample() -> Event {
        crate::demo::DemoLibrary::generate(1, 3, 2)
            .events(1, 1, 1, Timestamp::from_millis(1_700_000_000_000))
            .flatten()
            .next()
            .unwrap_or_else(|| unreachable!("the demo makes events"))
    }

    #[test]
    fn facts_change_the_fingerprint_and_names_do_not() {
        let base = sample();
        let fp = Fingerprint::of(&base);
        let changed: [fn(&mut Event); 8] = [
            |e| {
                e.organization =
                    crate::domain::OrgId::parse("other").unwrap_or_else(|_| unreachable!())
            },
            |e| {
                e.user.id = crate::domain::UserId::parse("other").unwrap_or_else(|_| unreachable!())
            },
            |e| e.timestamp = Timestamp::from_millis(e.timestamp.millis() + 1),
            |e| {
                e.kind = if e.kind == EventKind::View {
                    EventKind::Place
                } else {
                    EventKind::View
                }
            },
            |e| e.component.id = OpaqueId::parse("other").unwrap_or_else(|_| unreachable!()),
            |e| e.application = None,
            |e| e.application = Some(Name::parse("Other 1.0").unwrap_or_else(|_| unreachable!())),
            |e| e.project_id = Some(OpaqueId::parse("p-other").unwrap_or_else(|_| unreachable!())),
        ];
        for change in changed {
            let mut e = base.clone();
            change(&mut e);
            assert_ne!(Fingerprint::of(&e), fp, "{e:?}");
        }
        let mut renamed = base.clone();
        renamed.component.display_name =
            Name::parse("=HIJACKED").unwrap_or_else(|_| unreachable!());
        renamed.component.catalogs.clear();
        renamed.user.email = Name::parse("x@example.com").unwrap_or_else(|_| unreachable!());
        assert_eq!(Fingerprint::of(&renamed), fp);
        assert_eq!(Fingerprint::from_bytes(fp.as_bytes()), Some(fp));
        assert_eq!(Fingerprint::from_bytes(&[1, 2, 3]), None);
    }
}
