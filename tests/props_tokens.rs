//! Property tests of user tokens (`weft::auth`): a minted token verifies as
//! its user, for its application only; an expired one is refused as expired;
//! any text, and any change to a valid token, is refused — never a panic.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod props_support;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use proptest::prelude::*;
use serde_json::{Value, json};
use weft::auth::{SigningSecret, TokenError, inspect, mint, verify};
use weft::ids::{AppId, Timestamp, UserId};

fn user() -> impl Strategy<Value = UserId> {
    "[A-Za-z0-9_.@:-]{1,128}".prop_map(|u| UserId::parse(&u).unwrap())
}

fn secret() -> impl Strategy<Value = SigningSecret> {
    "[A-Za-z0-9_-]{1,64}".prop_map(SigningSecret::new)
}

fn app() -> impl Strategy<Value = AppId> {
    "[A-Za-z0-9_-]{1,32}".prop_map(AppId::new)
}

fn now_secs() -> i64 {
    Timestamp::now().millis() / 1000
}

/// One change to a token's text.
#[derive(Clone, Debug)]
enum Change {
    /// The character at this position becomes another.
    Replace(prop::sample::Index, char),
    /// The character at this position goes.
    Remove(prop::sample::Index),
    /// A character comes in at this position.
    Insert(prop::sample::Index, char),
    /// Two of the three parts trade places.
    Swap(usize, usize),
    /// A part goes.
    DropPart(usize),
}

fn change() -> impl Strategy<Value = Change> {
    let c = prop_oneof![
        prop::char::ranges(vec!['A'..='Z', 'a'..='z', '0'..='9'].into()),
        Just('-'),
        Just('_'),
        Just('.'),
        Just('='),
        any::<char>()
    ];
    prop_oneof![
        (any::<prop::sample::Index>(), c.clone()).prop_map(|(i, c)| Change::Replace(i, c)),
        any::<prop::sample::Index>().prop_map(Change::Remove),
        (any::<prop::sample::Index>(), c).prop_map(|(i, c)| Change::Insert(i, c)),
        (0..3usize, 0..3usize).prop_map(|(a, b)| Change::Swap(a, b)),
        (0..3usize).prop_map(Change::DropPart),
    ]
}

fn apply(token: &str, change: &Change) -> String {
    let mut chars: Vec<char> = token.chars().collect();
    match change {
        Change::Replace(i, c) => {
            let i = i.index(chars.len());
            chars[i] = *c;
        }
        Change::Remove(i) => {
            chars.remove(i.index(chars.len()));
        }
        Change::Insert(i, c) => chars.insert(i.index(chars.len() + 1), *c),
        Change::Swap(a, b) => {
            let mut parts: Vec<&str> = token.split('.').collect();
            if parts.len() == 3 {
                parts.swap(*a, *b);
            }
            return parts.join(".");
        }
        Change::DropPart(n) => {
            let parts: Vec<&str> =
                token.split('.').enumerate().filter(|(i, _)| i != n).map(|(_, p)| p).collect();
            return parts.join(".");
        }
    }
    chars.into_iter().collect()
}

/// A token with these claims, signed with `secret` under `alg`.
fn signed(alg: Algorithm, claims: &Value, secret: &SigningSecret) -> String {
    let key = EncodingKey::from_secret(secret.expose().as_bytes());
    jsonwebtoken::encode(&Header::new(alg), claims, &key).unwrap()
}

proptest! {
    #![proptest_config(props_support::budget(256))]

    /// mint → verify → the same user; inspect reads the application and expiry back.
    #[test]
    fn minted_tokens_round_trip(secret in secret(), app in app(), user in user(), ttl in 10u64..10_000_000) {
        let (token, expires) = mint(&secret, &app, &user, Timestamp::now(), ttl).unwrap();
        prop_assert_eq!(verify(&token, &app, &secret).unwrap(), user);
        let seen = inspect(&token).unwrap();
        prop_assert_eq!(seen.app, app.clone());
        prop_assert!(seen.hmac);
        prop_assert_eq!(seen.exp.map(|e| e * 1000), Some(expires.millis()));
        // For its application only, with its secret only.
        let other = AppId::new(format!("{}x", app.as_str()));
        prop_assert!(matches!(verify(&token, &other, &secret), Err(TokenError::WrongApplication)));
        let wrong = SigningSecret::new(format!("{}x", secret.expose()));
        prop_assert!(matches!(verify(&token, &app, &wrong), Err(TokenError::Invalid(_))));
    }

    /// A token past its `exp` (beyond the leeway) is refused as expired.
    #[test]
    fn expired_tokens_are_refused(secret in secret(), app in app(), user in user(), ago in 10i64..100_000_000, ttl in 0u64..5) {
        let issued = Timestamp((now_secs() - ago - 10) * 1000);
        let (token, _) = mint(&secret, &app, &user, issued, ttl).unwrap();
        prop_assert!(matches!(verify(&token, &app, &secret), Err(TokenError::Expired)));
    }

    /// Any change to a valid token's text makes it invalid (or, when the
    /// change undoes itself, the same token).
    #[test]
    fn changed_tokens_never_verify(
        secret in secret(),
        app in app(),
        user in user(),
        changes in prop::collection::vec(change(), 1..4),
    ) {
        let (token, _) = mint(&secret, &app, &user, Timestamp::now(), 3600).unwrap();
        let changed = changes.iter().fold(token.clone(), |t, c| apply(&t, c));
        let _ = inspect(&changed);
        match verify(&changed, &app, &secret) {
            Ok(verified) => {
                prop_assert_eq!(&changed, &token, "a changed token verified");
                prop_assert_eq!(verified, user);
            }
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }

    /// Any text as a token: refused, never a panic.
    #[test]
    fn any_text_is_refused(
        text in "\\PC{0,80}|[A-Za-z0-9_-]{0,30}\\.[A-Za-z0-9_-]{0,60}\\.[A-Za-z0-9_-]{0,43}",
        secret in secret(),
        app in app(),
    ) {
        let _ = inspect(&text);
        prop_assert!(verify(&text, &app, &secret).is_err());
    }

    /// Well-formed JWTs with claims of any shape: headers, payloads and
    /// algorithms a forger would try are refused unless signed correctly with
    /// HS256 and carrying a valid `sub`, `app`, `iat` and unexpired `exp`.
    #[test]
    fn forged_claims_are_refused(
        secret in secret(),
        app in app(),
        sub in prop_oneof![Just(Value::from("alice")), "\\PC{0,8}".prop_map(Value::from), any::<i64>().prop_map(Value::from)],
        // Seconds from now, clear of the leeway (5 s) either side.
        exp in proptest::option::of(prop_oneof![-100_000i64..-10, 10i64..100_000, any::<i64>()].prop_filter("clear of now", |e| e.abs() >= 10)),
        iat in proptest::option::of(any::<i64>()),
        alg in prop::sample::select(vec![Algorithm::HS256, Algorithm::HS384, Algorithm::HS512]),
        right_secret in any::<bool>(),
        payload in proptest::option::of("[A-Za-z0-9_-]{0,40}"),
    ) {
        let mut claims = json!({"sub": sub, "app": app.as_str()});
        if let Some(exp) = exp {
            claims["exp"] = json!(now_secs().saturating_add(exp));
        }
        if let Some(iat) = iat {
            claims["iat"] = json!(iat);
        }
        let key = if right_secret { secret.clone() } else { SigningSecret::new(format!("{}!", secret.expose())) };
        let mut token = signed(alg, &claims, &key);
        if let Some(payload) = &payload {
            // Another payload under the same signature.
            let parts: Vec<&str> = token.split('.').collect();
            token = format!("{}.{payload}.{}", parts[0], parts[2]);
        }
        let _ = inspect(&token);
        let verdict = verify(&token, &app, &secret);
        let valid_sub = sub.as_str().is_some_and(|s| UserId::parse(s).is_ok());
        let signed_right = right_secret && alg == Algorithm::HS256 && payload.is_none();
        let should_pass = signed_right && valid_sub && iat.is_some() && exp.is_some_and(|e| e > 0);
        prop_assert_eq!(verdict.is_ok(), should_pass, "{} for {}: {:?}", token, claims, verdict);
        match verdict {
            Ok(user) => prop_assert_eq!(Some(user.as_str()), sub.as_str()),
            Err(TokenError::Expired) => prop_assert!(exp.is_some_and(|e| e < 0)),
            Err(TokenError::BadSubject) => prop_assert!(signed_right && !valid_sub),
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }
}

#[test]
fn an_unsigned_token_is_refused() {
    let (secret, app) = (SigningSecret::new("s"), AppId::new("a"));
    let (token, _) = mint(&secret, &app, &UserId::parse("bob").unwrap(), Timestamp::now(), 60).unwrap();
    let payload = token.split('.').nth(1).unwrap();
    let none = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    for forged in [format!("{none}.{payload}."), format!("{none}.{payload}"), format!(".{payload}.")] {
        assert!(verify(&forged, &app, &secret).is_err(), "{forged}");
    }
}
