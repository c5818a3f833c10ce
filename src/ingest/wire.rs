//! A domain [`Event`] → its wire JSON: what the demo sends through the
//! parser, and what clients and tests produce.

use crate::domain::Event;
use serde_json::{json, Value};

/// The wire form of `e`, exactly as `POST …/events` accepts it.
pub fn to_wire(e: &Event) -> Value {
    let catalogs: Vec<Value> = e
        .component
        .catalogs
        .iter()
        .map(|c| json!({"id": c.id.as_str(), "displayName": c.display_name.as_str()}))
        .collect();
    let mut component = json!({
        "id": e.component.id.as_str(),
        "displayName": e.component.display_name.as_str(),
        "catalogs": catalogs,
    });
    if let Some(c) = &e.component.category {
        component["category"] = json!(c.as_str());
    }
    if let Some(m) = &e.component.manufacturer {
        component["manufacturer"] = json!(m.as_str());
    }
    let mut out = json!({
        "id": e.id.to_string(),
        "organizationId": e.organization.as_str(),
        "timestamp": e.timestamp.to_wire(),
        "event": e.kind.as_str(),
        "component": component,
        "user": {"id": e.user.id.as_str(), "email": e.user.email.as_str()},
    });
    if let Some(a) = &e.application {
        out["application"] = json!(a.as_str());
    }
    if let Some(p) = &e.project_id {
        out["projectId"] = json!(p.as_str());
    }
    out
}
