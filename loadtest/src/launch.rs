//! A weft node started by the generator itself (`soak` without `--url`): the
//! embedded default on a free loopback port, in a fresh temporary data
//! directory, stopped and removed again when dropped.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

/// A running node process.
pub struct Launched {
    child: Child,
    dir: PathBuf,
    /// `http://127.0.0.1:<port>`.
    pub url: String,
}

impl Launched {
    /// Starts `bin serve` with `env` on top of a loopback listener and a
    /// temporary data directory; waits (60 s at most) for `/readyz`.
    pub async fn start(bin: &std::path::Path, env: &[(&str, String)]) -> anyhow::Result<Launched> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let dir = std::env::temp_dir().join(format!("weft-soak-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let log = std::fs::File::create(dir.join("node.log"))?;
        let mut command = Command::new(bin);
        command
            .arg("serve")
            .env("WEFT_SERVER_LISTEN", format!("127.0.0.1:{port}"))
            .env("WEFT_STORE_DATA_DIR", dir.join("data"))
            .env("WEFT_LOG_LEVEL", "warn")
            .env("WEFT_LOG_FORMAT", "json")
            .stdout(Stdio::null())
            .stderr(log);
        for (key, value) in env {
            command.env(key, value);
        }
        let child = command.spawn().with_context(|| format!("cannot start {}", bin.display()))?;
        let mut launched = Launched { child, dir, url: format!("http://127.0.0.1:{port}") };
        let http = reqwest::Client::builder().timeout(Duration::from_secs(2)).build()?;
        let started = Instant::now();
        loop {
            if let Ok(response) = http.get(format!("{}/readyz", launched.url)).send().await
                && response.status().is_success()
            {
                return Ok(launched);
            }
            if let Some(status) = launched.child.try_wait()? {
                bail!(
                    "the node exited ({status}) before it was ready; its log: {}",
                    launched.log().display()
                );
            }
            if started.elapsed() > Duration::from_secs(60) {
                bail!("the node was not ready within 60 s; its log: {}", launched.log().display());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The node's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The node's log file.
    pub fn log(&self) -> PathBuf {
        self.dir.join("node.log")
    }

    /// `None` while the node runs, else how it ended.
    pub fn exited(&mut self) -> Option<String> {
        match self.child.try_wait() {
            Ok(None) => None,
            Ok(Some(status)) => Some(status.to_string()),
            Err(e) => Some(e.to_string()),
        }
    }

    /// Counts the log's lines of `level` ("WARN", "ERROR") and any panic.
    pub fn log_lines(&self, needle: &str) -> usize {
        std::fs::read_to_string(self.log())
            .map(|log| log.lines().filter(|l| l.contains(needle)).count())
            .unwrap_or(0)
    }

    /// Stops the node (SIGTERM, then SIGKILL after 15 s) and keeps its log in `keep`
    /// if given; removes the data directory.
    pub fn stop(mut self, keep: Option<&std::path::Path>) {
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let started = Instant::now();
        while self.exited().is_none() && started.elapsed() < Duration::from_secs(15) {
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(keep) = keep {
            let _ = std::fs::copy(self.log(), keep);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
