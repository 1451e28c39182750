//! Property tests of identity-provider tokens (`JwksVerifier`, RS256 and
//! ES256 against a JWKS served on a `:0` port with the keys of
//! `tests/fixtures/jwks/`): a signed token verifies as its user, for its
//! application only; an expired one is refused as expired; any change to a
//! token, a key the set does not hold, another algorithm, and any text are
//! refused — never a panic.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod props_support;

use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use proptest::prelude::*;
use proptest::test_runner::TestRunner;
use serde_json::{Value, json};
use weft::auth::{JwksConfig, JwksVerifier, TokenError};
use weft::ids::{AppId, UserId};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/jwks/");

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!("{FIXTURES}{name}")).unwrap()
}

fn now() -> i64 {
    i64::try_from(SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()).unwrap()
}

/// Who signs a token, and how.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Signer {
    /// `rsa-1` of the set, RS256.
    Rsa,
    /// `ec-1` of the set, ES256.
    Ec,
    /// `rsa-2`, a key the set does not hold, claiming to be `rsa-1`.
    Stranger,
    /// HS256 keyed with the RSA key's public modulus (the algorithm-confusion forgery).
    Hmac,
}

fn sign(signer: Signer, claims: &Value) -> String {
    let (alg, kid, key) = match signer {
        Signer::Rsa => (Algorithm::RS256, "rsa-1", EncodingKey::from_rsa_pem(&fixture("rsa-1.pem")).unwrap()),
        Signer::Ec => (Algorithm::ES256, "ec-1", EncodingKey::from_ec_pem(&fixture("ec-1.pem")).unwrap()),
        Signer::Stranger => {
            (Algorithm::RS256, "rsa-1", EncodingKey::from_rsa_pem(&fixture("rsa-2.pem")).unwrap())
        }
        Signer::Hmac => {
            let set: Value = serde_json::from_slice(&fixture("jwks.json")).unwrap();
            let modulus = set["keys"][0]["n"].as_str().unwrap().to_owned();
            (Algorithm::HS256, "rsa-1", EncodingKey::from_secret(modulus.as_bytes()))
        }
    };
    let mut header = Header::new(alg);
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(&header, claims, &key).unwrap()
}

/// One change to a token's text: a character replaced, removed or inserted.
fn change(token: &str, at: prop::sample::Index, what: u8, c: char) -> String {
    let mut chars: Vec<char> = token.chars().collect();
    match what % 3 {
        0 => {
            let i = at.index(chars.len());
            chars[i] = c;
        }
        1 => {
            chars.remove(at.index(chars.len()));
        }
        _ => chars.insert(at.index(chars.len() + 1), c),
    }
    chars.into_iter().collect()
}

/// One case: a token and what is done to it.
#[derive(Clone, Debug)]
struct Case {
    signer: Signer,
    user: String,
    app: String,
    /// Expiry, in seconds from now (clear of the 5 s leeway).
    exp: i64,
    /// Changes to the token's text.
    changes: Vec<(prop::sample::Index, u8, char)>,
    /// Any text to verify as well.
    text: String,
}

fn case() -> impl Strategy<Value = Case> {
    let signer = prop::sample::select(vec![Signer::Rsa, Signer::Ec, Signer::Stranger, Signer::Hmac]);
    let exp = prop_oneof![10i64..100_000, -100_000i64..-10];
    let character = prop_oneof![prop::char::range('A', 'z'), Just('.'), any::<char>()];
    let changes = prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), character), 0..3);
    let text = "\\PC{0,40}|ey[A-Za-z0-9_-]{0,40}\\.[A-Za-z0-9_-]{0,40}\\.[A-Za-z0-9_-]{0,40}";
    (signer, "[A-Za-z0-9_.@:-]{1,40}", "[A-Za-z0-9_-]{1,24}", exp, changes, text)
        .prop_map(|(signer, user, app, exp, changes, text)| Case { signer, user, app, exp, changes, text })
}

async fn check(verifier: &JwksVerifier, url: &str, case: Case) -> Result<(), TestCaseError> {
    let app = AppId::new(case.app.clone());
    let claims = json!({"sub": case.user, "app": case.app, "iat": now(), "exp": now() + case.exp});
    let token = sign(case.signer, &claims);
    let changed = case.changes.iter().fold(token.clone(), |t, (at, what, c)| change(&t, *at, *what, *c));
    let verdict = verifier.verify(url, &changed, &app).await;
    let ours = matches!(case.signer, Signer::Rsa | Signer::Ec);
    match verdict {
        Ok(user) => {
            prop_assert!(ours && changed == token && case.exp > 0, "{:?} verified", case);
            prop_assert_eq!(user, UserId::parse(&case.user).unwrap());
        }
        Err(TokenError::Expired) => prop_assert!(ours && case.exp < 0, "{:?} expired", case),
        Err(e) => {
            prop_assert!(!(ours && changed == token && case.exp > 0), "{:?} refused: {:?}", case, e);
        }
    }
    // For its application only.
    if ours && changed == token && case.exp > 0 {
        let other = AppId::new(format!("{}x", case.app));
        let refused = verifier.verify(url, &token, &other).await;
        prop_assert!(matches!(refused, Err(TokenError::WrongApplication)), "{:?}", refused);
    }
    prop_assert!(verifier.verify(url, &case.text, &app).await.is_err());
    Ok(())
}

#[test]
fn identity_provider_tokens_verify_only_unchanged() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let url = runtime.block_on(async {
        let jwks: Value = serde_json::from_slice(&fixture("jwks.json")).unwrap();
        let app = axum::Router::new()
            .route("/.well-known/jwks.json", axum::routing::get(move || async move { axum::Json(jwks) }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/.well-known/jwks.json", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        url
    });
    let verifier = JwksVerifier::new(JwksConfig {
        allow_http: true,
        allow_private_networks: true,
        ..JwksConfig::default()
    });
    let config = proptest::test_runner::Config { failure_persistence: None, ..props_support::budget(128) };
    let outcome = TestRunner::new(config).run(&case(), |case| runtime.block_on(check(&verifier, &url, case)));
    if let Err(e) = outcome {
        panic!("{e}");
    }
}
