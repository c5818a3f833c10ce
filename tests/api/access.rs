//! 403: authenticated callers without a role or permission in their
//! organization; 200 for each role and the permission.

use crate::helpers::*;
use catalytics::domain::{Grant, Role};
use serde_json::json;

async fn refuses_users_without_a_grant_in_their_organization() {
    let app = spawn_app().await;
    app.make_admin("org-b", "bob").await; // admin elsewhere
    let no_org = {
        let mut c = claims("org-a", "bob", "itwin-platform");
        c.as_object_mut().unwrap().remove("org");
        app.token_with(&c)
    };
    let empty_org = app.token_with(&{
        let mut c = claims("", "bob", "itwin-platform");
        c["org"] = json!("");
        c
    });
    let cases = [
        (
            "no role at all",
            app.token("org-a", "carol", "itwin-platform"),
        ),
        (
            "role in a different organization",
            app.token("org-a", "bob", "itwin-platform"),
        ),
        ("no organization claim", no_org),
        ("empty organization claim", empty_org),
    ];
    for (case, token) in cases {
        let response = app
            .get_download(Some(&format!("Bearer {token}")), &wide())
            .await;
        assert_eq!(response.status(), 403, "{case}");
        assert_eq!(
            json_of(response).await,
            insufficient_permissions(),
            "{case}"
        );
    }
}

async fn allows_each_administrator_role_and_view_analytics() {
    let app = spawn_app().await;
    let grants = [
        Grant::Role(Role::AccountAdministrator),
        Grant::Role(Role::CoAdministrator),
        Grant::Role(Role::ConnectServicesAdministrator),
        view_analytics(),
    ];
    for (i, grant) in grants.into_iter().enumerate() {
        let user = format!("user-{i}");
        app.grant("org-a", &user, grant).await;
        let token = app.token("org-a", &user, "itwin-platform");
        let response = app
            .get_download(Some(&format!("Bearer {token}")), &wide())
            .await;
        assert_eq!(response.status(), 200, "{grant}");
    }
}

async fn a_revoked_grant_no_longer_allows() {
    let app = spawn_app().await;
    app.grant("org-a", "dave", view_analytics()).await;
    let bearer = format!("Bearer {}", app.token("org-a", "dave", "itwin-platform"));
    assert_eq!(app.get_download(Some(&bearer), &wide()).await.status(), 200);
    let g = catalytics::domain::AccessGrant {
        org: catalytics::domain::OrgId::parse("org-a").unwrap(),
        user: catalytics::domain::UserId::parse("dave").unwrap(),
        grant: view_analytics(),
    };
    assert!(app.store.revoke(&g).await.unwrap());
    assert_eq!(app.get_download(Some(&bearer), &wide()).await.status(), 403);
}

crate::both_backends!(
    refuses_users_without_a_grant_in_their_organization,
    allows_each_administrator_role_and_view_analytics,
    a_revoked_grant_no_longer_allows,
);
