//! One organization's names, rendered as CSV cells once.
//!
//! The narrow event rows carry integer keys; the [`Dictionary`] maps each
//! key to its cells, already formula-guarded and quoted, so writing a row is
//! copying a few byte ranges. Raw values are kept too, for
//! [`Dictionary::resolve`] (tests and tools that want columns, not CSV).

use super::cell::push_cell;
use crate::store::{EventRow, ExportRow};
use rustc_hash::FxHashMap;

/// A byte range in one of the dictionary's arenas.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Span {
    start: u32,
    len: u32,
}

/// The names of one component, as stored.
#[derive(Debug, Clone, Copy)]
pub struct ComponentNames<'a> {
    /// `Component Id`
    pub id: &'a str,
    /// `Component Name`
    pub name: &'a str,
    /// `Catalogs`, already sorted and joined by the store.
    pub catalogs: Option<&'a str>,
    /// `Category`
    pub category: Option<&'a str>,
    /// `Manufacturer`
    pub manufacturer: Option<&'a str>,
}

#[derive(Debug, Clone, Copy)]
struct Component {
    /// `id,name,catalogs,category,manufacturer` rendered.
    cells: Span,
    id: Span,
    name: Span,
    catalogs: Option<Span>,
    category: Option<Span>,
    manufacturer: Option<Span>,
}

#[derive(Debug, Clone, Copy)]
struct User {
    /// `id,email` rendered.
    cells: Span,
    id: Span,
    email: Span,
}

#[derive(Debug, Clone, Copy)]
struct Single {
    cell: Span,
    raw: Span,
}

/// The rendered cells of one organization's dimensions, keyed by the
/// store's surrogate keys.
#[derive(Debug, Default)]
pub struct Dictionary {
    cells: Vec<u8>,
    raw: Vec<u8>,
    components: FxHashMap<i64, Component>,
    users: FxHashMap<i64, User>,
    applications: FxHashMap<i64, Single>,
    projects: FxHashMap<i64, Single>,
}

/// A row referred to a key the dictionary does not hold: the store handed
/// out a dictionary older than its rows, which its snapshot rules exclude.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("event row refers to a {0} key missing from the export dictionary")]
pub struct UnknownKey(pub &'static str);

/// Fills a [`Dictionary`], one dimension row at a time.
#[derive(Debug, Default)]
pub struct DictionaryBuilder {
    dictionary: Dictionary,
}

impl DictionaryBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the component stored under `key`.
    pub fn component(&mut self, key: i64, names: ComponentNames<'_>) {
        let d = &mut self.dictionary;
        let start = d.cells.len();
        push_cell(&mut d.cells, names.id);
        for value in [
            Some(names.name),
            names.catalogs,
            names.category,
            names.manufacturer,
        ] {
            d.cells.push(b',');
            push_cell(&mut d.cells, value.unwrap_or(""));
        }
        let cells = span_from(start, d.cells.len());
        let entry = Component {
            cells,
            id: raw(&mut d.raw, names.id),
            name: raw(&mut d.raw, names.name),
            catalogs: names.catalogs.map(|v| raw(&mut d.raw, v)),
            category: names.category.map(|v| raw(&mut d.raw, v)),
            manufacturer: names.manufacturer.map(|v| raw(&mut d.raw, v)),
        };
        d.components.insert(key, entry);
    }

    /// Adds the user stored under `key`.
    pub fn user(&mut self, key: i64, id: &str, email: &str) {
        let d = &mut self.dictionary;
        let start = d.cells.len();
        push_cell(&mut d.cells, id);
        d.cells.push(b',');
        push_cell(&mut d.cells, email);
        let entry = User {
            cells: span_from(start, d.cells.len()),
            id: raw(&mut d.raw, id),
            email: raw(&mut d.raw, email),
        };
        d.users.insert(key, entry);
    }

    /// Adds the application stored under `key`.
    pub fn application(&mut self, key: i64, name: &str) {
        let entry = self.single(name);
        self.dictionary.applications.insert(key, entry);
    }

    /// Adds the project stored under `key`.
    pub fn project(&mut self, key: i64, id: &str) {
        let entry = self.single(id);
        self.dictionary.projects.insert(key, entry);
    }

    fn single(&mut self, value: &str) -> Single {
        let d = &mut self.dictionary;
        let start = d.cells.len();
        push_cell(&mut d.cells, value);
        Single {
            cell: span_from(start, d.cells.len()),
            raw: raw(&mut d.raw, value),
        }
    }

    /// The finished dictionary.
    pub fn build(mut self) -> Dictionary {
        let d = &mut self.dictionary;
        d.cells.shrink_to_fit();
        d.raw.shrink_to_fit();
        self.dictionary
    }
}

fn span_from(start: usize, end: usize) -> Span {
    // Arenas stay far below 4 GiB: an organization's names, not its events.
    Span {
        start: start as u32,
        len: (end - start) as u32,
    }
}

fn raw(arena: &mut Vec<u8>, value: &str) -> Span {
    let start = arena.len();
    arena.extend_from_slice(value.as_bytes());
    span_from(start, arena.len())
}

fn text(arena: &[u8], span: Span) -> &[u8] {
    &arena[span.start as usize..(span.start + span.len) as usize]
}

impl Dictionary {
    /// Rendered `Component Id` … `Manufacturer` cells, comma-separated.
    #[inline]
    pub fn component_cells(&self, key: i64) -> Result<&[u8], UnknownKey> {
        self.components
            .get(&key)
            .map(|c| text(&self.cells, c.cells))
            .ok_or(UnknownKey("component"))
    }

    /// Rendered `User Id` and `User Email` cells, comma-separated.
    #[inline]
    pub fn user_cells(&self, key: i64) -> Result<&[u8], UnknownKey> {
        self.users
            .get(&key)
            .map(|u| text(&self.cells, u.cells))
            .ok_or(UnknownKey("user"))
    }

    /// Rendered `Application` cell; empty for none.
    #[inline]
    pub fn application_cell(&self, key: Option<i64>) -> Result<&[u8], UnknownKey> {
        single_cell(&self.cells, &self.applications, key, "application")
    }

    /// Rendered `Project Id` cell; empty for none.
    #[inline]
    pub fn project_cell(&self, key: Option<i64>) -> Result<&[u8], UnknownKey> {
        single_cell(&self.cells, &self.projects, key, "project")
    }

    /// Whether every key `rows` refer to has its names here: a cached
    /// dictionary lacks the dimensions stored after it was read.
    pub fn covers(&self, rows: &[EventRow]) -> bool {
        rows.iter().all(|r| {
            self.components.contains_key(&r.component)
                && self.users.contains_key(&r.user)
                && r.application
                    .is_none_or(|k| self.applications.contains_key(&k))
                && r.project.is_none_or(|k| self.projects.contains_key(&k))
        })
    }

    /// Bytes held, for cache accounting.
    pub fn size_bytes(&self) -> usize {
        let entries = self.components.capacity() * std::mem::size_of::<(i64, Component)>()
            + self.users.capacity() * std::mem::size_of::<(i64, User)>()
            + (self.applications.capacity() + self.projects.capacity())
                * std::mem::size_of::<(i64, Single)>();
        std::mem::size_of::<Self>() + self.cells.capacity() + self.raw.capacity() + entries
    }

    /// The row with every name filled in, column for column.
    pub fn resolve(&self, row: &EventRow) -> Result<ExportRow, UnknownKey> {
        let s = |span: Span| String::from_utf8_lossy(text(&self.raw, span)).into_owned();
        let c = self
            .components
            .get(&row.component)
            .ok_or(UnknownKey("component"))?;
        let u = self.users.get(&row.user).ok_or(UnknownKey("user"))?;
        let single = |map: &FxHashMap<i64, Single>, key: Option<i64>, what| {
            key.map(|k| map.get(&k).map(|e| s(e.raw)).ok_or(UnknownKey(what)))
                .transpose()
        };
        Ok(ExportRow {
            timestamp: row.timestamp,
            kind: row.kind,
            component_id: s(c.id),
            component_name: s(c.name),
            catalogs: c.catalogs.map(s),
            category: c.category.map(s),
            manufacturer: c.manufacturer.map(s),
            application: single(&self.applications, row.application, "application")?,
            project_id: single(&self.projects, row.project, "project")?,
            user_id: s(u.id),
            user_email: s(u.email),
        })
    }
}

fn single_cell<'a>(
    cells: &'a [u8],
    map: &FxHashMap<i64, Single>,
    key: Option<i64>,
    what: &'static str,
) -> Result<&'a [u8], UnknownKey> {
    match key {
        None => Ok(&[]),
        Some(k) => map
            .get(&k)
            .map(|e| text(cells, e.cell))
            .ok_or(UnknownKey(what)),
    }
}
