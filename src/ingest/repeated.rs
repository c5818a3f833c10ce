//! Repeated keys in JSON objects (DESIGN §3.1). serde_json keeps the last
//! of two equal keys without a word, and typed structs ignore repeats of
//! fields they do not know, so `{"organizationId":"a","organizationId":"b"}`
//! would be read as organization `b`. This pass walks a document once,
//! without building values, and names every repeated key by its path.
//!
//! Hand-written because no maintained crate reports repeated keys with
//! their paths; it is a `serde` visitor over serde_json's own parser, so
//! syntax, depth limits and escapes are serde_json's.

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;

/// Objects with more keys than this are checked through a hash set; the
/// small objects of an event are checked by a linear scan.
const LINEAR_KEYS: usize = 16;

/// The path of every repeated key in `json`, each under `root` (e.g.
/// `events[3]`, or empty for a whole body): `events[0].organizationId`.
/// `Err` when `json` is not one valid JSON value.
pub fn repeated_keys(json: &[u8], root: &str) -> Result<Vec<String>, serde_json::Error> {
    let mut walk = Walk {
        path: Vec::new(),
        repeated: Vec::new(),
        root,
    };
    let mut de = serde_json::Deserializer::from_slice(json);
    Node(&mut walk).deserialize(&mut de)?;
    de.end()?;
    Ok(walk.repeated)
}

/// One step of a JSON path.
enum Step<'de> {
    Key(Cow<'de, str>),
    Index(usize),
}

/// Where the walk is, and what it found.
struct Walk<'r, 'de> {
    path: Vec<Step<'de>>,
    repeated: Vec<String>,
    root: &'r str,
}

impl Walk<'_, '_> {
    fn render(&self) -> String {
        let mut out = self.root.to_owned();
        for step in &self.path {
            match step {
                Step::Key(k) if out.is_empty() => out.push_str(k),
                Step::Key(k) => {
                    out.push('.');
                    out.push_str(k);
                }
                Step::Index(i) => out.push_str(&format!("[{i}]")),
            }
        }
        out
    }
}

/// The keys seen in one object so far.
#[derive(Default)]
struct Seen<'de> {
    few: Vec<Cow<'de, str>>,
    many: HashSet<Cow<'de, str>>,
}

impl<'de> Seen<'de> {
    /// Records `key`; `false` when it was seen before.
    fn insert(&mut self, key: Cow<'de, str>) -> bool {
        if !self.many.is_empty() {
            return self.many.insert(key);
        }
        if self.few.contains(&key) {
            return false;
        }
        self.few.push(key);
        if self.few.len() > LINEAR_KEYS {
            self.many.extend(self.few.drain(..));
        }
        true
    }
}

/// Any JSON value, walked.
struct Node<'w, 'r, 'de>(&'w mut Walk<'r, 'de>);

impl<'de> DeserializeSeed<'de> for Node<'_, '_, 'de> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Node<'_, '_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut i = 0;
        loop {
            self.0.path.push(Step::Index(i));
            let more = seq.next_element_seed(Node(&mut *self.0))?;
            self.0.path.pop();
            if more.is_none() {
                return Ok(());
            }
            i += 1;
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = Seen::default();
        while let Some(key) = map.next_key_seed(KeySeed)? {
            let first = seen.insert(key.clone());
            self.0.path.push(Step::Key(key));
            if !first {
                let path = self.0.render();
                self.0.repeated.push(path);
            }
            map.next_value_seed(Node(&mut *self.0))?;
            self.0.path.pop();
        }
        Ok(())
    }
}

/// An object key, borrowed from the input unless it has escapes.
struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(s))
    }

    fn visit_str<E>(self, s: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::repeated_keys;

    #[test]
    fn names_every_repeated_key_by_its_path() {
        let cases: [(&str, &str, Vec<&str>); 7] = [
            (r#"{"a":1,"b":2}"#, "", vec![]),
            (r#"{"a":1,"a":2}"#, "", vec!["a"]),
            (
                r#"{"events":[{"id":1},{"organizationId":"x","organizationId":"y"}]}"#,
                "",
                vec!["events[1].organizationId"],
            ),
            (
                r#"{"component":{"catalogs":[{"id":"k","id":"k"}]}}"#,
                "events[4]",
                vec!["events[4].component.catalogs[0].id"],
            ),
            // Escapes are decoded before comparing.
            (r#"{"id":1,"\u0069d":2}"#, "events[0]", vec!["events[0].id"]),
            (r#"{"x":{"y":1,"y":2,"y":3}}"#, "", vec!["x.y", "x.y"]),
            (r#"[1,{"k":[]}]"#, "", vec![]),
        ];
        for (json, root, expected) in cases {
            assert_eq!(
                repeated_keys(json.as_bytes(), root).ok(),
                Some(expected.iter().map(|s| s.to_string()).collect()),
                "{json}"
            );
        }
        let many: String = (0..40).map(|i| format!("\"k{i}\":0,")).collect();
        let json = format!("{{{many}\"k7\":1}}");
        assert_eq!(
            repeated_keys(json.as_bytes(), "").ok(),
            Some(vec!["k7".to_owned()])
        );
        assert!(repeated_keys(b"{\"a\":", "").is_err());
        assert!(repeated_keys(b"{} x", "").is_err());
    }
}
