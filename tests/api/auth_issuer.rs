//! Issuer mode: tokens signed by keys this test owns, published from a JWKS
//! this test serves, found through OpenID discovery.

use crate::helpers::*;
use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, Ed25519KeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

const AUDIENCE: &str = "catalytics-api";

/// A signing key owned by the test and its public JWK.
struct TestKey {
    alg: Algorithm,
    kid: String,
    encoding: EncodingKey,
    jwk: Value,
}

fn ed25519(kid: &str) -> TestKey {
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
    let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
    TestKey {
        alg: Algorithm::EdDSA,
        kid: kid.into(),
        encoding: EncodingKey::from_ed_der(pkcs8.as_ref()),
        jwk: json!({"kty": "OKP", "crv": "Ed25519", "x": URL_SAFE_NO_PAD.encode(pair.public_key()), "kid": kid, "alg": "EdDSA", "use": "sig"}),
    }
}

fn es256(kid: &str) -> TestKey {
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let pair =
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng).unwrap();
    let point = pair.public_key().as_ref(); // 0x04 || x || y
    TestKey {
        alg: Algorithm::ES256,
        kid: kid.into(),
        encoding: EncodingKey::from_ec_der(pkcs8.as_ref()),
        jwk: json!({"kty": "EC", "crv": "P-256", "x": URL_SAFE_NO_PAD.encode(&point[1..33]), "y": URL_SAFE_NO_PAD.encode(&point[33..]), "kid": kid, "alg": "ES256", "use": "sig"}),
    }
}

fn rs256(kid: &str) -> TestKey {
    let pem = include_bytes!("../fixtures/rsa-test-key.pem");
    let public: Value =
        serde_json::from_str(include_str!("../fixtures/rsa-test-key.jwk.json")).unwrap();
    TestKey {
        alg: Algorithm::RS256,
        kid: kid.into(),
        encoding: EncodingKey::from_rsa_pem(pem).unwrap(),
        jwk: json!({"kty": "RSA", "n": public["n"], "e": public["e"], "kid": kid, "alg": "RS256", "use": "sig"}),
    }
}

impl TestKey {
    fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(self.alg);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding).unwrap()
    }
}

/// The test's identity provider: discovery document and a mutable JWKS.
#[derive(Clone)]
struct Idp {
    issuer: String,
    keys: Arc<RwLock<Vec<Value>>>,
    jwks_fetches: Arc<AtomicUsize>,
}

impl Idp {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let issuer = format!("http://{}", listener.local_addr().unwrap());
        let idp = Idp {
            issuer,
            keys: Arc::default(),
            jwks_fetches: Arc::default(),
        };
        let router = Router::new()
            .route(
                "/.well-known/openid-configuration",
                get(|State(idp): State<Idp>| async move {
                    Json(json!({"issuer": idp.issuer, "jwks_uri": format!("{}/keys", idp.issuer)}))
                }),
            )
            .route(
                "/keys",
                get(|State(idp): State<Idp>| async move {
                    idp.jwks_fetches.fetch_add(1, Ordering::SeqCst);
                    Json(json!({"keys": *idp.keys.read().unwrap()}))
                }),
            )
            .with_state(idp.clone());
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        idp
    }

    fn publish(&self, key: &TestKey) {
        self.keys.write().unwrap().push(key.jwk.clone());
    }

    fn claims(&self, org: &str, user: &str) -> Value {
        let now = now_secs();
        json!({"iss": self.issuer, "aud": AUDIENCE, "sub": user, "org": org, "email": "a@example.com",
               "scope": "openid itwin-platform", "iat": now, "exp": now + 600})
    }
}

async fn spawn_issuer_app(idp: &Idp, refresh_secs: u64) -> TestApp {
    let issuer = idp.issuer.clone();
    spawn_app_with(AppOptions {
        settings: Box::new(move |s| {
            s.auth.issuer = Some(issuer);
            s.auth.audience = Some(AUDIENCE.into());
            s.auth.jwks_refresh_interval_secs = refresh_secs;
        }),
        ..Default::default()
    })
    .await
}

async fn accepts_rs256_es256_and_eddsa_from_the_published_jwks() {
    let idp = Idp::start().await;
    let keys = [rs256("rsa-1"), es256("ec-1"), ed25519("ed-1")];
    keys.iter().for_each(|k| idp.publish(k));
    let app = spawn_issuer_app(&idp, 30).await;
    app.make_admin("org-x", "alice").await;
    for key in &keys {
        let token = key.sign(&idp.claims("org-x", "alice"));
        let response = app
            .get_download(Some(&format!("Bearer {token}")), &wide())
            .await;
        assert_eq!(response.status(), 200, "{:?}", key.alg);
    }
    // No local-mode endpoints in issuer mode.
    assert_eq!(
        app.client
            .get(app.url("/.well-known/jwks.json"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    let redeem = app
        .client
        .post(app.url("/auth/login-link"))
        .header("Content-Type", "application/json")
        .body(r#"{"code":"x"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(redeem.status(), 404, "no login links in issuer mode");
    assert_eq!(
        json_of(redeem).await,
        error_body("NotFound", "The requested resource was not found.")
    );
}

async fn refuses_wrong_issuer_audience_and_unpublished_keys() {
    let idp = Idp::start().await;
    let key = es256("ec-1");
    idp.publish(&key);
    let app = spawn_issuer_app(&idp, 30).await;
    app.make_admin("org-x", "alice").await;
    let good = idp.claims("org-x", "alice");
    let patched = |k: &str, v: Value| {
        let mut c = good.clone();
        if v.is_null() {
            c.as_object_mut().unwrap().remove(k);
        } else {
            c[k] = v;
        }
        c
    };
    let unpublished = ed25519("ed-unpublished");
    let impostor = TestKey {
        kid: "ec-1".into(),
        ..es256("x")
    };
    let local_token = app.token("org-x", "alice", "itwin-platform");
    let cases = [
        (
            "wrong audience",
            key.sign(&patched("aud", json!("someone-else"))),
        ),
        ("no audience", key.sign(&patched("aud", Value::Null))),
        (
            "wrong issuer",
            key.sign(&patched("iss", json!("http://127.0.0.1:1"))),
        ),
        (
            "expired",
            key.sign(&patched("exp", json!(now_secs() - 3600))),
        ),
        (
            "missing scope",
            key.sign(&patched("scope", json!("openid"))),
        ),
        ("unpublished key", unpublished.sign(&good)),
        ("impostor key with published kid", impostor.sign(&good)),
        ("local-mode token", local_token),
    ];
    for (case, token) in cases {
        assert_invalid_token(
            app.get_download(Some(&format!("Bearer {token}")), &wide())
                .await,
            case,
        )
        .await;
    }
    let ok = app
        .get_download(Some(&format!("Bearer {}", key.sign(&good))), &wide())
        .await;
    assert_eq!(ok.status(), 200);
}

async fn picks_up_a_rotated_key_without_restart() {
    let idp = Idp::start().await;
    let old = ed25519("2024-01");
    idp.publish(&old);
    let app = spawn_issuer_app(&idp, 0).await;
    app.make_admin("org-x", "alice").await;
    let new = ed25519("2024-02");
    let token = format!("Bearer {}", new.sign(&idp.claims("org-x", "alice")));
    assert_invalid_token(
        app.get_download(Some(&token), &wide()).await,
        "before publication",
    )
    .await;
    idp.publish(&new);
    assert_eq!(
        app.get_download(Some(&token), &wide()).await.status(),
        200,
        "after publication"
    );
}

async fn unknown_kids_do_not_hammer_the_issuer() {
    let idp = Idp::start().await;
    let key = ed25519("k1");
    idp.publish(&key);
    let app = spawn_issuer_app(&idp, 3600).await;
    let after_start = idp.jwks_fetches.load(Ordering::SeqCst);
    assert_eq!(after_start, 1, "keys are fetched once at start-up");
    for i in 0..10 {
        let forged = ed25519(&format!("made-up-{i}"));
        let token = format!("Bearer {}", forged.sign(&idp.claims("org-x", "alice")));
        assert_invalid_token(app.get_download(Some(&token), &wide()).await, "made-up kid").await;
    }
    assert_eq!(
        idp.jwks_fetches.load(Ordering::SeqCst),
        after_start,
        "no refresh within the interval"
    );
}

async fn claim_names_are_configurable() {
    let idp = Idp::start().await;
    let key = ed25519("k1");
    idp.publish(&key);
    let issuer = idp.issuer.clone();
    let app = spawn_app_with(AppOptions {
        settings: Box::new(move |s| {
            s.auth.issuer = Some(issuer);
            s.auth.user_claim = "oid".into();
            s.auth.org_claim = "tenant".into();
        }),
        ..Default::default()
    })
    .await;
    app.make_admin("org-y", "object-id-7").await;
    let mut claims = idp.claims("ignored", "ignored");
    claims["oid"] = json!("object-id-7");
    claims["tenant"] = json!("org-y");
    let response = app
        .get_download(Some(&format!("Bearer {}", key.sign(&claims))), &wide())
        .await;
    assert_eq!(response.status(), 200);
}

crate::both_backends!(
    accepts_rs256_es256_and_eddsa_from_the_published_jwks,
    refuses_wrong_issuer_audience_and_unpublished_keys,
    picks_up_a_rotated_key_without_restart,
    unknown_kids_do_not_hammer_the_issuer,
    claim_names_are_configurable,
);
