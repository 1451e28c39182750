//! Property tests of configuration reading (`weft::Config::from_toml`, which
//! `Config::load` shares its checks with): any value for any key of
//! `config/default.toml`, alone or several at once, on the single-node
//! defaults or on `config/cluster.toml`, gives a valid config or an error
//! naming a key — never a panic.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod props_support;

use std::collections::BTreeSet;
use std::sync::LazyLock;

use proptest::collection::vec;
use proptest::prelude::*;
use weft::{Config, ConfigError};

/// `(section, key, default value as written)` for every key of the default file,
/// the commented-out optional ones too.
static KEYS: LazyLock<Vec<(String, String, String)>> = LazyLock::new(|| {
    let text = read("default.toml");
    let mut section = String::new();
    let mut keys = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.to_owned();
            continue;
        }
        let line = line.strip_prefix("# ").unwrap_or(line);
        let Some((key, value)) = line.split_once(" = ") else { continue };
        if !section.is_empty()
            && key.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            keys.push((section.clone(), key.to_owned(), value.to_owned()));
        }
    }
    assert!(keys.len() > 100, "read the keys of config/default.toml: {keys:?}");
    keys
});

/// Every `section.key` an error may name.
static NAMES: LazyLock<BTreeSet<String>> =
    LazyLock::new(|| KEYS.iter().map(|(s, k, _)| format!("{s}.{k}")).collect());

fn read(name: &str) -> String {
    std::fs::read_to_string(format!("{}/config/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

/// A TOML string literal.
fn quoted(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Values of every TOML type, the edges of each and shapes the keys expect
/// (addresses, URLs, filters, keys), written as TOML.
fn value() -> impl Strategy<Value = String> {
    let text = prop_oneof![
        "\\PC{0,24}",
        Just(String::new()),
        Just("127.0.0.1:0".to_owned()),
        Just("[::1]:65535".to_owned()),
        Just("0.0.0.0:99999".to_owned()),
        Just("redis://127.0.0.1:6379/0".to_owned()),
        Just("redis://".to_owned()),
        Just("https://".to_owned()),
        Just("http://[::1".to_owned()),
        Just("smtp://user:pass@127.0.0.1:25".to_owned()),
        Just("weft=debug,info".to_owned()),
        Just("[".to_owned()),
        Just("image/*".to_owned()),
        Just("s3".to_owned()),
        Just("cql".to_owned()),
        Just("opensearch".to_owned()),
        Just("tantivy".to_owned()),
        Just("filesystem".to_owned()),
        Just("json".to_owned()),
        "[a-z0-9_]{1,60}",
        "[A-Za-z0-9_-]{40,48}",
    ];
    let integer = prop_oneof![
        Just(0i64),
        Just(1),
        Just(-1),
        Just(i64::MAX),
        Just(i64::MIN),
        Just(u32::MAX as i64 + 1),
        Just(1 << 53),
        0i64..100_000,
        any::<i64>(),
    ];
    let float = prop_oneof![
        Just("nan".to_owned()),
        Just("inf".to_owned()),
        Just("-inf".to_owned()),
        Just("0.0".to_owned()),
        Just("-1.5".to_owned()),
        Just("1e308".to_owned()),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(|f| format!("{f:?}")),
    ];
    prop_oneof![
        4 => text.clone().prop_map(|s| quoted(&s)),
        4 => integer.prop_map(|i| i.to_string()),
        1 => float,
        1 => any::<bool>().prop_map(|b| b.to_string()),
        1 => vec(text.clone(), 0..3).prop_map(|v| {
            format!("[{}]", v.iter().map(|s| quoted(s)).collect::<Vec<_>>().join(", "))
        }),
        1 => Just("[1, 2]".to_owned()),
        1 => ("[a-z_]{1,10}", text).prop_map(|(k, v)| format!("{{ {k} = {} }}", quoted(&v))),
        1 => Just("1979-05-27T07:32:00Z".to_owned()),
    ]
}

/// Mostly values of the type of `default` (an integer key gets integers,
/// the edges most of all), sometimes any value.
fn value_like(default: &str) -> BoxedStrategy<String> {
    if default.parse::<i64>().is_ok() {
        let edges = prop::sample::select(vec![
            0,
            1,
            u64::MAX,
            u64::MAX / 2,
            i64::MAX as u64,
            u32::MAX as u64 + 1,
            1 << 40,
        ]);
        prop_oneof![
            4 => edges.prop_map(|n: u64| n.min(i64::MAX as u64).to_string()),
            2 => any::<u32>().prop_map(|n| n.to_string()),
            1 => value(),
        ]
        .boxed()
    } else {
        value().boxed()
    }
}

/// `base` with each change: in its section's table (TOML defines a table once),
/// in place of the base's own value of that key (a key twice is an error too).
fn document(base: &str, changes: &[(usize, String)]) -> String {
    let line_of = |(i, value): &(usize, String)| format!("{} = {value}\n", KEYS[*i].1);
    let in_section = |section: &str| {
        changes.iter().filter(move |(i, _)| KEYS[*i].0 == section).map(line_of).collect::<String>()
    };
    let changed =
        |section: &str, key: &str| changes.iter().any(|(i, _)| KEYS[*i].0 == section && KEYS[*i].1 == key);
    let mut section = String::new();
    let mut written = BTreeSet::new();
    let mut text = String::new();
    for line in base.lines() {
        let trimmed = line.trim();
        if let Some(name) = trimmed.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.to_owned();
            text.push_str(line);
            text.push('\n');
            text.push_str(&in_section(name));
            written.insert(name.to_owned());
            continue;
        }
        if let Some((key, _)) = trimmed.split_once(" = ")
            && changed(&section, key)
        {
            continue;
        }
        text.push_str(line);
        text.push('\n');
    }
    for (i, _) in changes {
        let section = &KEYS[*i].0;
        if written.insert(section.clone()) {
            text.push_str(&format!("\n[{section}]\n{}", in_section(section)));
        }
    }
    text
}

/// Reads `text`: a config, or an error that names a key.
fn check(text: &str, changed: &[(usize, String)]) -> Result<(), TestCaseError> {
    match Config::from_toml(text) {
        Ok(config) => prop_assert!(config.validate().is_ok()),
        Err(ConfigError::Invalid { key, reason }) => {
            prop_assert!(
                NAMES.contains(key) || key == "quic",
                "an error names `{key}`, not a key of the file ({reason})"
            );
            prop_assert!(!reason.is_empty());
        }
        Err(e @ ConfigError::Read(_)) => {
            // A type or parse error names the key it is about.
            let message = e.to_string();
            let named = changed.iter().any(|(i, _)| message.contains(KEYS[*i].1.as_str()));
            prop_assert!(named, "`{message}` names none of the changed keys:\n{text}");
        }
    }
    Ok(())
}

fn key() -> impl Strategy<Value = usize> {
    (0..KEYS.len()).boxed()
}

proptest! {
    #![proptest_config(props_support::budget(384))]

    /// One key of the single-node defaults set to any value.
    #[test]
    fn any_value_of_any_key_is_read_or_named(i in key(), value in value()) {
        let changes = [(i, value)];
        check(&document("", &changes), &changes)?;
    }

    /// Several keys at once, on the defaults or on the cluster file (which
    /// reaches the checks that only a cluster makes).
    #[test]
    fn several_values_on_either_file_are_read_or_named(
        cluster in any::<bool>(),
        changes in vec((key(), value()), 1..5),
    ) {
        let base = if cluster { read("cluster.toml") } else { read("default.toml") };
        let mut seen = BTreeSet::new();
        let changes: Vec<_> = changes.into_iter().filter(|(i, _)| seen.insert(*i)).collect();
        check(&document(&base, &changes), &changes)?;
    }

    /// Any text as the file: a config or an error, never a panic.
    #[test]
    fn any_text_as_the_file_is_read_or_refused(text in "\\PC{0,80}|(\\[[a-z]{1,8}\\]\n[a-z_]{1,12} = \\PC{0,12}\n){1,3}") {
        let _ = Config::from_toml(&text);
    }
}

#[test]
fn deeply_nested_values_are_refused_without_overflowing_the_stack() {
    for depth in [100, 1_000, 100_000] {
        for (open, close) in [("[", "]"), ("{a=", "}")] {
            let text = format!("[server]\nadmin_key = {}1{}\n", open.repeat(depth), close.repeat(depth));
            assert!(Config::from_toml(&text).is_err(), "{depth}");
        }
    }
}

#[test]
fn every_key_of_the_default_file_is_read() {
    // The keys the properties draw from are the real ones: each, set to its
    // default, reads back as the defaults (the optional ones need a cluster).
    for (i, (section, key, value)) in KEYS.iter().enumerate() {
        let text = document("", &[(i, value.clone())]);
        match Config::from_toml(&text) {
            Ok(_) => {}
            Err(ConfigError::Invalid { .. }) if section == "cluster" || section == "quic" => {}
            Err(e) => panic!("{section}.{key} = {value}: {e}"),
        }
    }
}

/// The sections an embedded node uses without any service: their keys are
/// the ones a started node is tried with (the others need Redis, a CQL
/// store, peers, an SMTP server or a search service to start at all).
const NODE_SECTIONS: &[&str] = &[
    "server",
    "gateway",
    "cache",
    "batch",
    "sequence",
    "webhooks",
    "notifications",
    "demo",
    "jwks",
    "log",
    "metrics",
    "attachments",
];

/// Panics anywhere in the process (a node's tasks catch their own).
static PANICS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Starts an embedded node with `config`, asks it something over HTTP and
/// stops it; a panic in any of its tasks fails the case.
async fn serve_once(mut config: Config) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    config.server.listen = "127.0.0.1:0".parse().unwrap();
    config.store.data_dir = dir.path().to_path_buf();
    let before = PANICS.load(std::sync::atomic::Ordering::SeqCst);
    let Ok(node) = weft::Node::start(&config).await else { return Ok(()) };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let shutdown = tokio_util::sync::CancellationToken::new();
    let task = tokio::spawn(weft::run(listener, node, shutdown.clone()));
    let http = reqwest::Client::builder().timeout(std::time::Duration::from_secs(5)).build().unwrap();
    let _ = http.get(format!("{base}/readyz")).send().await;
    let _ =
        http.post(format!("{base}/api/v1/applications")).json(&serde_json::json!({"name": "p"})).send().await;
    shutdown.cancel();
    let stopped = tokio::time::timeout(std::time::Duration::from_secs(10), task).await;
    prop_assert!(stopped.is_ok(), "the node did not stop within 10 s");
    prop_assert_eq!(PANICS.load(std::sync::atomic::Ordering::SeqCst), before, "a task of the node panicked");
    Ok(())
}

#[test]
fn a_node_started_with_any_valid_value_serves_and_stops() {
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        PANICS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        default_hook(info);
    }));
    let keys: Vec<usize> = (0..KEYS.len()).filter(|i| NODE_SECTIONS.contains(&KEYS[*i].0.as_str())).collect();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let config = proptest::test_runner::Config { failure_persistence: None, ..props_support::budget(64) };
    let mut runner = proptest::test_runner::TestRunner::new(config);
    // The key's name rides along, so a failure prints it.
    let changed = prop::sample::select(keys)
        .prop_flat_map(|i| (Just(i), Just(format!("{}.{}", KEYS[i].0, KEYS[i].1)), value_like(&KEYS[i].2)));
    let outcome = runner.run(&changed, |(i, _name, value)| {
        let changes = [(i, value)];
        let Ok(config) = Config::from_toml(&document("", &changes)) else { return Ok(()) };
        runtime.block_on(serve_once(config))
    });
    if let Err(e) = outcome {
        panic!("{e}");
    }
}
