//! The `idle` scenario: open many WebSockets, hold them, and read what they
//! cost the node (resident memory and CPU per connection, from its own
//! `/metrics`).
//!
//! One process may hold only so many sockets (its open-file limit), and one
//! source address only so many ports: the connections are spread over
//! `--sources` loopback addresses (127.0.0.2, 127.0.0.3, …) and over
//! `--processes` generator processes. The first process sets up the
//! application and the user tokens, starts the others (`weft-load idle
//! --worker`, tokens on their stdin), opens its own share, and measures once
//! every process has reported its sockets open.

use std::io::{BufRead as _, Write as _};
use std::net::{Ipv4Addr, SocketAddr};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use futures::{SinkExt as _, StreamExt as _};
use serde::{Deserialize, Serialize};
use tokio::net::TcpSocket;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::centrifugo::{self, Centrifugo};
use crate::node::Node;
use crate::socket::await_reply;

/// Users the connections are spread over (each holds several sessions).
const USERS: usize = 1000;

/// What to open and for how long.
#[derive(Clone, Debug)]
pub struct Idle {
    /// Connections in all, over every process.
    pub connections: usize,
    /// Seconds to hold them once all are open (CPU is measured over this window).
    pub hold: Duration,
    /// Loopback source addresses to spread over (127.0.0.2 upwards).
    pub sources: u8,
    /// Generator processes (this one included).
    pub processes: usize,
    /// Handshakes in flight at once, per process.
    pub concurrency: usize,
    /// Bearer token for the node's `/metrics` (its metrics token or admin key).
    pub metrics_token: Option<String>,
    /// The node is Centrifugo: each connection sends a `connect` with a token of its
    /// own (no subscription) and answers pings.
    pub centrifugo: Option<Centrifugo>,
}

/// The figures of an idle run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct IdleReport {
    /// The server under test: `weft` or `centrifugo`.
    #[serde(default = "weft")]
    pub server: String,
    /// Sessions held open.
    pub connections: usize,
    /// Sessions the node counted (`weft_connections`).
    pub node_connections: f64,
    /// The node's resident memory before any connection, in bytes.
    pub rss_before: f64,
    /// … and with every connection open.
    pub rss_after: f64,
    /// (after − before) / connections.
    pub rss_bytes_per_connection: f64,
    /// The node's CPU over the hold window, as a fraction of one core.
    pub cpu_cores: f64,
    /// Seconds the opening took.
    pub open_secs: f64,
    /// Connections that failed to open.
    pub failed: usize,
}

fn weft() -> String {
    "weft".to_owned()
}

impl IdleReport {
    /// The markdown table header of idle rows.
    pub const HEADER: &'static str = "| connections | node RSS before | RSS after | per connection | CPU while idle | opened in |\n|---|---|---|---|---|---|\n";

    /// One markdown row.
    pub fn row(&self) -> String {
        format!(
            "| {} | {:.1} MiB | {:.1} MiB | {:.2} KiB | {:.1} % of a core | {:.1} s |",
            self.connections,
            self.rss_before / 1_048_576.0,
            self.rss_after / 1_048_576.0,
            self.rss_bytes_per_connection / 1024.0,
            self.cpu_cores * 100.0,
            self.open_secs
        )
    }
}

/// One value of the node's `/metrics`.
async fn metric(node: &Node, token: Option<&str>, name: &str) -> anyhow::Result<f64> {
    let text = node.metrics(token).await?;
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .with_context(|| format!("the node's /metrics has no {name}"))
}

impl Idle {
    /// Runs the scenario from the first process.
    pub async fn run(&self, node: &Node) -> anyhow::Result<IdleReport> {
        ensure!(self.connections >= 1, "--connections must be at least 1");
        ensure!(self.processes >= 1, "--processes must be at least 1");
        ensure!(self.sources >= 1, "--sources must be at least 1");
        let token = self.metrics_token.as_deref();
        let connections_metric =
            if self.centrifugo.is_some() { "centrifugo_node_num_clients" } else { "weft_connections" };
        let rss_before = metric(node, token, "process_resident_memory_bytes").await?;
        let base_connections = metric(node, token, connections_metric).await?;

        let users = USERS.min(self.connections);
        eprintln!("weft-load: idle setup: {users} user tokens for {} connections", self.connections);
        // One line per connection: its URL, and for Centrifugo its token after a space.
        let urls: Vec<String> = if let Some(centrifugo) = &self.centrifugo {
            let tokens = (0..users)
                .map(|i| centrifugo.token(&format!("idle{i}")))
                .collect::<anyhow::Result<Vec<_>>>()?;
            (0..self.connections)
                .map(|i| Ok(format!("{} {}", node.centrifugo_url()?, tokens[i % users])))
                .collect::<anyhow::Result<_>>()?
        } else {
            let app = node.create_app("weft-load idle").await?;
            let jwts: Vec<String> = futures::stream::iter(0..users)
                .map(|i| {
                    let app = &app;
                    async move { node.user_token(app, &format!("idle{i}")).await }
                })
                .buffered(32)
                .collect::<Vec<_>>()
                .await
                .into_iter()
                .collect::<anyhow::Result<_>>()?;
            (0..self.connections).map(|i| node.ws_url(&jwts[i % users])).collect::<anyhow::Result<_>>()?
        };

        let started = Instant::now();
        // Shares: process p takes every processes-th URL from p.
        let share = |p: usize| urls.iter().skip(p).step_by(self.processes).cloned().collect::<Vec<_>>();
        let mut children = Vec::new();
        for p in 1..self.processes {
            children.push(Worker::spawn(&share(p), self.sources, p, self.concurrency)?);
        }
        let mine = hold_open(&share(0), self.sources, 0, self.concurrency).await;
        let mut failed = mine.failed;
        for child in &mut children {
            failed += child.wait_ready().await?;
        }
        let open_secs = started.elapsed().as_secs_f64();
        eprintln!(
            "weft-load: {} open ({failed} failed) in {open_secs:.1} s; holding",
            self.connections - failed
        );

        // Let allocations settle, then measure over the hold window.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let cpu_before = metric(node, token, "process_cpu_seconds_total").await?;
        let window = Instant::now();
        tokio::time::sleep(self.hold).await;
        let cpu_after = metric(node, token, "process_cpu_seconds_total").await?;
        let cpu_cores = (cpu_after - cpu_before) / window.elapsed().as_secs_f64();
        let rss_after = metric(node, token, "process_resident_memory_bytes").await?;
        let node_connections = metric(node, token, connections_metric).await? - base_connections;
        drop(mine);
        for child in children {
            child.stop();
        }
        let held = self.connections - failed;
        Ok(IdleReport {
            server: if self.centrifugo.is_some() { "centrifugo" } else { "weft" }.to_owned(),
            connections: held,
            node_connections,
            rss_before,
            rss_after,
            rss_bytes_per_connection: (rss_after - rss_before) / held.max(1) as f64,
            cpu_cores,
            open_secs,
            failed,
        })
    }
}

/// Sockets held open; closed when dropped.
pub struct Held {
    sockets: Vec<tokio::task::JoinHandle<()>>,
    /// Connections that could not be opened.
    pub failed: usize,
}

impl Drop for Held {
    fn drop(&mut self) {
        for task in &self.sockets {
            task.abort();
        }
    }
}

/// Opens `urls` from source addresses 127.0.0.2.. (connection `i` of process
/// `p` from address `(i + p) % sources`), each past its `welcome`, and keeps
/// them answering pings until dropped.
pub async fn hold_open(urls: &[String], sources: u8, p: usize, concurrency: usize) -> Held {
    let opened: Vec<anyhow::Result<tokio::task::JoinHandle<()>>> =
        futures::stream::iter(urls.iter().enumerate())
            .map(|(i, url)| {
                let source = Ipv4Addr::new(127, 0, 0, 2 + ((i + p) % usize::from(sources)) as u8);
                async move { open_from(url, source).await }
            })
            .buffer_unordered(concurrency.max(1))
            .collect()
            .await;
    let mut held = Held { sockets: Vec::with_capacity(opened.len()), failed: 0 };
    for result in opened {
        match result {
            Ok(task) => held.sockets.push(task),
            Err(e) => {
                if held.failed == 0 {
                    eprintln!("weft-load: a connection failed: {e:#}");
                }
                held.failed += 1;
            }
        }
    }
    held
}

/// One idle session from `source`, its reader task answering pings. `line` is
/// the URL, or (Centrifugo) the URL and the connection token after a space.
async fn open_from(line: &str, source: Ipv4Addr) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let (url, token) = match line.split_once(' ') {
        Some((url, token)) => (url, Some(token)),
        None => (line, None),
    };
    let parsed = reqwest::Url::parse(url)?;
    let port = parsed.port_or_known_default().context("no port")?;
    let host: Ipv4Addr = parsed.host_str().unwrap_or_default().parse().context("an IPv4 loopback host")?;
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::from((source, 0))).with_context(|| format!("cannot bind {source}"))?;
    let stream = socket.connect(SocketAddr::from((host, port))).await?;
    stream.set_nodelay(true)?;
    // Small buffers: the generator holds thousands of these.
    let config = WebSocketConfig::default().read_buffer_size(4096).write_buffer_size(0);
    let opening = tokio_tungstenite::client_async_with_config(url, stream, Some(config));
    let (mut ws, _) =
        tokio::time::timeout(Duration::from_secs(30), opening).await.context("handshake timeout")??;
    if let Some(token) = token {
        ws.send(Message::text(centrifugo::connect_command(token))).await?;
        tokio::time::timeout(Duration::from_secs(30), await_reply(&mut ws, 1))
            .await
            .context("no connect reply")??;
    } else {
        loop {
            match tokio::time::timeout(Duration::from_secs(30), ws.next()).await.context("no welcome")? {
                Some(Ok(Message::Text(text))) if text.contains("\"welcome\"") => break,
                Some(Ok(Message::Close(frame))) => bail!("closed before welcome: {frame:?}"),
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e.into()),
                None => bail!("closed before welcome"),
            }
        }
    }
    Ok(tokio::spawn(async move {
        // Reading answers the node's pings (tungstenite queues the pong).
        while let Some(Ok(message)) = ws.next().await {
            match message {
                Message::Ping(_) => {
                    let _ = ws.flush().await;
                }
                // Centrifugo's ping: an empty object, answered with one.
                Message::Text(text) if centrifugo::has_ping(&text) => {
                    let _ = ws.send(Message::text("{}")).await;
                }
                _ => {}
            }
        }
    }))
}

/// Another generator process holding a share of the connections.
struct Worker {
    child: Child,
    lines: tokio::sync::mpsc::UnboundedReceiver<String>,
}

impl Worker {
    fn spawn(urls: &[String], sources: u8, p: usize, concurrency: usize) -> anyhow::Result<Worker> {
        let exe = std::env::current_exe()?;
        let mut child = Command::new(exe)
            .args(["idle-worker", "--sources", &sources.to_string(), "--index", &p.to_string()])
            .args(["--concurrency", &concurrency.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .context("cannot start a generator process")?;
        let mut stdin = child.stdin.take().context("no stdin")?;
        for url in urls {
            writeln!(stdin, "{url}")?;
        }
        // Closing stdin ends the list; the worker then opens its sockets.
        drop(stdin);
        let stdout = child.stdout.take().context("no stdout")?;
        let (tx, lines) = tokio::sync::mpsc::unbounded_channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        Ok(Worker { child, lines })
    }

    /// Waits for the worker's "ready <failed>" line.
    async fn wait_ready(&mut self) -> anyhow::Result<usize> {
        while let Some(line) = self.lines.recv().await {
            if let Some(failed) = line.strip_prefix("ready ") {
                return Ok(failed.trim().parse()?);
            }
        }
        bail!("a generator process ended before its sockets were open")
    }

    fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The worker's side: reads URLs from stdin, opens them, says "ready <failed>",
/// then holds them until killed (at most an hour).
pub async fn worker(sources: u8, index: usize, concurrency: usize) -> anyhow::Result<()> {
    let urls: Vec<String> =
        std::io::stdin().lines().map_while(Result::ok).filter(|l| !l.is_empty()).collect();
    let held = hold_open(&urls, sources, index, concurrency).await;
    println!("ready {}", held.failed);
    std::io::stdout().flush()?;
    tokio::time::sleep(Duration::from_secs(3600)).await;
    drop(held);
    Ok(())
}
