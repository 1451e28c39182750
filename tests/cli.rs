//! The `weft` binary: config errors exit 64 before binding, an old schema is refused,
//! `migrate` brings it up to date, and `serve` then answers.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::server::{cql_nodes, redis_url};

fn weft() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_weft"));
    // Only what each test sets: no WEFT_* from the caller's environment.
    for (key, _) in std::env::vars() {
        if key.starts_with("WEFT_") {
            cmd.env_remove(key);
        }
    }
    cmd.env("RUST_LOG", "info");
    cmd
}

fn config_file(text: &str) -> tempfile::NamedTempFile {
    let mut file = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
    file.write_all(text.as_bytes()).unwrap();
    file
}

#[test]
fn version_prints_the_version() {
    let out = weft().arg("version").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("weft "));
}

#[test]
fn migrate_on_the_embedded_default_is_a_no_op() {
    let out = weft().arg("migrate").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn config_errors_exit_64_naming_the_key() {
    // Port 1 is privileged: had the node tried to bind, the error would differ.
    let cases = [
        ("[server]\nlisten = \"127.0.0.1:1\"\nlisen = 5\n", "lisen"),
        ("[server]\nlisten = \"not an address\"\n", "listen"),
        ("[batch]\nmax_messages = 0\n", "batch.max_messages"),
        ("[sequence]\nclaim_abandon_ms = 10\n", "sequence.claim_abandon_ms"),
        ("[store]\nbackend = \"mongo\"\n", "backend"),
        ("[cql]\nreplication_factor = \"three\"\n", "replication_factor"),
        ("[surprise]\nx = 1\n", "surprise"),
    ];
    for (text, key) in cases {
        let file = config_file(text);
        let out = weft().arg("--config").arg(file.path()).arg("serve").output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "{text}: {stderr}");
        assert!(stderr.contains(key), "{text}: the error does not name `{key}`: {stderr}");
    }
    let out = weft().env("WEFT_SERVER_MAX_BODY_BYTES", "lots").output().unwrap();
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).to_lowercase().contains("max_body_bytes"));
    let out = weft().env("WEFT_SERVER_LISTN", "127.0.0.1:0").output().unwrap();
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).to_lowercase().contains("listn"));
    let out = weft().args(["--config", "/nonexistent/weft.toml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(64));
}

#[test]
fn an_old_schema_is_refused_until_migrate_runs() {
    let keyspace = common::test_keyspace("cli");
    let nodes = cql_nodes().join("\", \"");
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n[store]\nbackend = \"cql\"\n\
         [cql]\nnodes = [\"{nodes}\"]\nkeyspace = \"{keyspace}\"\nrequest_timeout_ms = 30000\n\
         [redis]\nurl = \"{}\"\n",
        redis_url()
    );
    let file = config_file(&text);

    let out = weft().arg("--config").arg(file.path()).arg("serve").output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "served on a keyspace without schema");
    assert!(stderr.contains("weft migrate"), "the refusal does not say what to do: {stderr}");

    let out = weft().arg("--config").arg(file.path()).arg("migrate").output().unwrap();
    assert!(out.status.success(), "migrate failed: {}", String::from_utf8_lossy(&out.stderr));
    let again = weft().arg("--config").arg(file.path()).arg("migrate").output().unwrap();
    assert!(again.status.success(), "a second migrate failed");

    // Now it serves: start it, wait for the log line with its address, stop it.
    let mut child =
        weft().arg("--config").arg(file.path()).arg("serve").stderr(Stdio::piped()).spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let line = rx.recv_timeout(Duration::from_secs(60)).expect("weft serve printed nothing");
        if line.contains("serving") {
            break;
        }
        assert!(Instant::now() < deadline, "weft serve did not start");
    }
    Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "weft did not exit cleanly on SIGTERM: {status:?}");
}
