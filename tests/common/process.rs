//! The `weft` binary as a separate process: for what one process cannot show
//! about another (its memory, a kill -9, a drain, its logs).

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

/// A `weft` command with none of this process's `WEFT_*` variables (or
/// `RUST_LOG`), so that only what the test sets reaches the node.
pub fn weft_command() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_weft"));
    for (key, _) in std::env::vars() {
        if key.starts_with("WEFT_") || key == "RUST_LOG" {
            cmd.env_remove(key);
        }
    }
    cmd
}

/// Starts `weft serve` from `cmd` (which must log JSON: `WEFT_LOG_FORMAT=json`)
/// and waits for its "serving" line; returns the child and the address it serves on.
/// The rest of its log is read and dropped.
pub fn serve(mut cmd: Command) -> (Child, String) {
    let mut child = cmd.arg("serve").stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Ok(v) = serde_json::from_str::<Value>(&line)
                && v["fields"]["message"] == "serving"
            {
                let _ = tx.send(v["fields"]["addr"].as_str().unwrap_or_default().to_owned());
            }
        }
    });
    let addr = rx.recv_timeout(Duration::from_secs(60)).expect("the node did not start serving");
    (child, addr)
}

/// Every JSON line a node has logged so far (shared with the thread reading them).
pub type LogLines = std::sync::Arc<std::sync::Mutex<Vec<Value>>>;

/// Like [`serve`], but keeps every JSON line the node logs, for a test to look for one.
pub fn serve_logged(mut cmd: Command) -> (Child, String, LogLines) {
    let mut child = cmd.arg("serve").stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let lines = LogLines::default();
    let kept = lines.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let Ok(v) = serde_json::from_str::<Value>(&line) else { continue };
            if v["fields"]["message"] == "serving" {
                let _ = tx.send(v["fields"]["addr"].as_str().unwrap_or_default().to_owned());
            }
            kept.lock().unwrap().push(v);
        }
    });
    let addr = rx.recv_timeout(Duration::from_secs(60)).expect("the node did not start serving");
    (child, addr, lines)
}

/// A process's resident memory, in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}
