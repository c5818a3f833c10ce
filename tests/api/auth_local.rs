//! 401s in local mode: every malformed, forged or inadequate token.

use crate::helpers::*;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;

fn b64(v: &serde_json::Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
}

async fn missing_header_is_header_not_found_with_exact_body() {
    let app = spawn_app().await;
    let response = app.get_download(None, &wide()).await;
    assert_eq!(response.status(), 401);
    assert_eq!(
        json_of(response).await,
        error_body(
            "HeaderNotFound",
            "Header Authorization was not found in the request. Access denied."
        )
    );
}

async fn every_bad_token_is_invalid_token() {
    let app = spawn_app().await;
    let org = "org-a";
    let bearer = app.admin_bearer(org).await; // makes admin-of-org-a an admin
    let user = "admin-of-org-a";
    let good = bearer.trim_start_matches("Bearer ").to_owned();
    let parts: Vec<&str> = good.split('.').collect();
    let now = now_secs();

    // A payload edited after signing.
    let mut edited_claims = claims(org, user, "itwin-platform");
    edited_claims["sub"] = json!("someone-else");
    let edited = format!("{}.{}.{}", parts[0], b64(&edited_claims), parts[2]);
    // A header whose kid was changed.
    let header: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
    let mut other_kid = header.clone();
    other_kid["kid"] = json!("not-our-key");
    let kid_changed = format!("{}.{}.{}", b64(&other_kid), parts[1], parts[2]);
    // alg: none
    let none = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT"})),
        parts[1]
    );
    // HS256 with an arbitrary secret, and with the public key as the secret.
    let hs_claims = claims(org, user, "itwin-platform");
    let hs256 = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &hs_claims,
        &EncodingKey::from_secret(b"secret"),
    )
    .unwrap();
    let jwk_x = app.issuer().jwks_json()["keys"][0]["x"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut hs_header = Header::new(Algorithm::HS256);
    hs_header.kid = Some(app.issuer().kid().to_owned());
    let hs_confused = jsonwebtoken::encode(
        &hs_header,
        &hs_claims,
        &EncodingKey::from_secret(jwk_x.as_bytes()),
    )
    .unwrap();
    // A key the issuer never published, claiming the published kid.
    let rogue =
        ring::signature::Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new()).unwrap();
    let mut rogue_header = Header::new(Algorithm::EdDSA);
    rogue_header.kid = Some(app.issuer().kid().to_owned());
    let rogue_token = jsonwebtoken::encode(
        &rogue_header,
        &hs_claims,
        &EncodingKey::from_ed_der(rogue.as_ref()),
    )
    .unwrap();
    let mut rogue_header_unknown = Header::new(Algorithm::EdDSA);
    rogue_header_unknown.kid = Some("rogue".into());
    let rogue_unknown = jsonwebtoken::encode(
        &rogue_header_unknown,
        &hs_claims,
        &EncodingKey::from_ed_der(rogue.as_ref()),
    )
    .unwrap();

    let with = |patch: serde_json::Value| {
        let mut c = claims(org, user, "itwin-platform");
        for (k, v) in patch.as_object().unwrap() {
            if v.is_null() {
                c.as_object_mut().unwrap().remove(k);
            } else {
                c[k] = v.clone();
            }
        }
        format!("Bearer {}", app.token_with(&c))
    };

    let cases: Vec<(&str, String)> = vec![
        ("Basic scheme", "Basic dXNlcjpwYXNz".into()),
        ("Bearer with nothing", "Bearer".into()),
        ("Bearer with a space only", "Bearer ".into()),
        ("garbage", "Bearer garbage".into()),
        ("three garbage segments", "Bearer aaa.bbb.ccc".into()),
        ("token without scheme", good.clone()),
        ("alg none", format!("Bearer {none}")),
        ("HS256 with a secret", format!("Bearer {hs256}")),
        (
            "HS256 keyed with the public key",
            format!("Bearer {hs_confused}"),
        ),
        ("payload edited", format!("Bearer {edited}")),
        ("kid changed", format!("Bearer {kid_changed}")),
        (
            "signature stripped",
            format!("Bearer {}.{}.", parts[0], parts[1]),
        ),
        ("expired beyond leeway", with(json!({"exp": now - 120}))),
        ("nbf in the future", with(json!({"nbf": now + 300}))),
        ("no exp", with(json!({"exp": null}))),
        ("wrong issuer", with(json!({"iss": "https://evil.example"}))),
        ("no issuer", with(json!({"iss": null}))),
        ("missing scope", with(json!({"scope": "openid profile"}))),
        ("no scope claim", with(json!({"scope": null}))),
        (
            "ingest scope only",
            with(json!({"scope": "analytics:write"})),
        ),
        ("no sub", with(json!({"sub": null}))),
        (
            "unpublished key, published kid",
            format!("Bearer {rogue_token}"),
        ),
        (
            "unpublished key, unknown kid",
            format!("Bearer {rogue_unknown}"),
        ),
    ];
    for (case, authorization) in cases {
        let response = app.get_download(Some(&authorization), &wide()).await;
        assert_invalid_token(response, case).await;
    }

    // The same claims, properly signed, pass: the cases above fail for the
    // reason they name, not by accident.
    assert_eq!(app.get_download(Some(&bearer), &wide()).await.status(), 200);
    assert_eq!(
        app.get_download(Some(&with(json!({"exp": now - 30}))), &wide())
            .await
            .status(),
        200,
        "within leeway"
    );
    assert_eq!(
        app.get_download(
            Some(&with(
                json!({"scope": null, "scp": ["x", "itwin-platform"]})
            )),
            &wide()
        )
        .await
        .status(),
        200,
        "scp array"
    );
    let lower = format!("bearer {good}");
    assert_eq!(
        app.get_download(Some(&lower), &wide()).await.status(),
        200,
        "scheme is case-insensitive"
    );
}

async fn local_mode_publishes_discovery_and_jwks() {
    let app = spawn_app().await;
    let jwks: serde_json::Value = app
        .client
        .get(app.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(jwks, app.issuer().jwks_json());
    assert_eq!(jwks["keys"][0]["alg"], "EdDSA");
    assert!(
        jwks["keys"][0].get("d").is_none(),
        "no private part is published"
    );
    let discovery: serde_json::Value = app
        .client
        .get(app.url("/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(discovery["issuer"], catalytics::auth::local::LOCAL_ISSUER);
    assert_eq!(
        discovery["jwks_uri"],
        format!("http://{}/.well-known/jwks.json", app.addr)
    );
}

crate::both_backends!(
    missing_header_is_header_not_found_with_exact_body,
    every_bad_token_is_invalid_token,
    local_mode_publishes_discovery_and_jwks,
);
