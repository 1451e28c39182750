//! `weft-load`: parse the command line, run a scenario against a node, print
//! its figures (progress on stderr, a markdown row on stdout, JSON with `--out`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand, ValueEnum};
use serde::Serialize;
use weft_loadtest::centrifugo::Centrifugo;
use weft_loadtest::history::{self, History, HistoryReport};
use weft_loadtest::idle::{Idle, IdleReport};
use weft_loadtest::launch::Launched;
use weft_loadtest::proc::Watched;
use weft_loadtest::soak::{Soak, SoakReport};
use weft_loadtest::storm::{Storm, StormReport};
use weft_loadtest::versus;
use weft_loadtest::webhooks::{self, Webhooks, WebhooksReport};
use weft_loadtest::{Dm, Fanout, Load, Node, Report, Timing, report};

/// Load generator for weft's real-time delivery (loopback nodes only).
#[derive(Parser)]
#[command(name = "weft-load", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// One chat: every member has a receiving socket; some also send.
    Fanout {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        chat: OneChat,
    },
    /// Fan-out across a cluster: senders on the first node of --spread,
    /// receivers on the others, so every delivery crosses nodes.
    Cluster {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        chat: OneChat,
    },
    /// Direct chats: pairs of users, each side sending to the other.
    Dm {
        #[command(flatten)]
        common: Common,
        /// Pairs of users (two sockets each).
        #[arg(long, default_value_t = 1000)]
        pairs: usize,
    },
    /// Webhooks: chats of one sender each, a webhook for `message.created` at a
    /// receiver inside the generator; events/s, missing, duplicates, order, and the
    /// latency from each message's `sent_at` to its webhook. The node must accept
    /// http:// loopback webhooks (WEFT_WEBHOOKS_ALLOW_HTTP=true WEFT_WEBHOOKS_ALLOW_PRIVATE=true).
    Webhooks {
        #[command(flatten)]
        common: Common,
        /// Chats, each with its own sender (the node delivers chats in parallel, each in order).
        #[arg(long, default_value_t = 16)]
        chats: usize,
        /// Register no webhook: the same sends alone (the node CPU they cost without webhooks).
        #[arg(long)]
        baseline: bool,
    },
    /// Many idle connections: the node's memory and CPU per connection.
    Idle {
        /// The node, e.g. http://127.0.0.1:8080 (loopback only).
        #[arg(long)]
        url: String,
        /// The node's admin key, if it has one (application, and /metrics).
        #[arg(long)]
        admin_key: Option<String>,
        /// The node's metrics token, if /metrics needs one other than the admin key.
        #[arg(long)]
        metrics_token: Option<String>,
        /// Connections to open and hold.
        #[arg(long, default_value_t = 1000)]
        connections: usize,
        /// Seconds to hold them (CPU is measured over this window).
        #[arg(long, default_value_t = 10)]
        hold_secs: u64,
        /// Loopback source addresses to spread over (127.0.0.2 upwards).
        #[arg(long, default_value_t = 4)]
        sources: u8,
        /// Generator processes (this one included; each holds a share).
        #[arg(long, default_value_t = 1)]
        processes: usize,
        /// Handshakes in flight at once, per process.
        #[arg(long, default_value_t = 200)]
        concurrency: usize,
        /// Write the results as JSON to this file.
        #[arg(long)]
        out: Option<PathBuf>,
        #[command(flatten)]
        against: Against,
    },
    /// Clients spread over a cluster, one node killed: time to recover, loss, duplicates.
    Storm {
        /// A node that survives: REST goes here (loopback only).
        #[arg(long)]
        url: String,
        /// Every node; clients start on each in turn and fall back to the next.
        #[arg(long, value_delimiter = ',', required = true)]
        spread: Vec<String>,
        /// The node's admin key, if it has one.
        #[arg(long)]
        admin_key: Option<String>,
        /// The pid of the node to kill (not the --url one).
        #[arg(long)]
        kill_pid: u32,
        /// Clients, one socket each.
        #[arg(long, default_value_t = 300)]
        clients: usize,
        /// Chats the clients are spread over.
        #[arg(long, default_value_t = 30)]
        chats: usize,
        /// Messages per second posted into the chats.
        #[arg(long, default_value_t = 50.0)]
        rate: f64,
        /// Seconds of traffic before the kill.
        #[arg(long, default_value_t = 3)]
        before_secs: u64,
        /// Seconds of traffic after the kill.
        #[arg(long, default_value_t = 5)]
        after_secs: u64,
        /// Seconds the clients may take to hold everything once the traffic stopped.
        #[arg(long, default_value_t = 30)]
        settle_secs: u64,
        /// Write the results as JSON to this file.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// History reads over REST: old pages (from the store), then the newest page.
    History(HistoryArgs),
    /// Random sessions: many clients sending a seeded random mix of valid and invalid
    /// frames; the node must stay ready, answer every bad frame as documented, keep every
    /// acked send in history once, and keep its memory flat. Exits 1 on any failure.
    Soak(SoakArgs),
    /// (Internal) one generator process of `idle --processes N`.
    #[command(hide = true)]
    IdleWorker {
        #[arg(long)]
        sources: u8,
        #[arg(long)]
        index: usize,
        #[arg(long)]
        concurrency: usize,
    },
    /// The median of several runs' `--out` files, as one markdown row (a row per phase for history).
    Median {
        /// JSON results of runs of one scenario.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// The side-by-side rows of one load: weft's and Centrifugo's medians and their
    /// ratios (fanout/cluster runs, or idle runs).
    Versus {
        /// The load, as the first cell of the rows.
        #[arg(long)]
        load: String,
        /// weft's runs (`--out` files).
        #[arg(long, num_args = 1.., required = true)]
        weft: Vec<PathBuf>,
        /// Centrifugo's runs of the same load.
        #[arg(long, num_args = 1.., required = true)]
        centrifugo: Vec<PathBuf>,
    },
    /// The side-by-side rows of two sets of runs of one load (e.g. fanout with and without
    /// `--webhook`): each set's medians and their ratios (the first over the second).
    Compare {
        /// The load, as the first cell of the rows.
        #[arg(long)]
        load: String,
        /// The first set's label.
        #[arg(long, default_value = "webhook")]
        label: String,
        /// The first set's runs (`--out` files).
        #[arg(long, num_args = 1.., required = true)]
        runs: Vec<PathBuf>,
        /// The second set's label.
        #[arg(long, default_value = "no webhook")]
        base_label: String,
        /// The second set's runs.
        #[arg(long, num_args = 1.., required = true)]
        base: Vec<PathBuf>,
    },
    /// Exit 0 if the runs of one offered rate sustained it: nothing missing, duplicated or
    /// failed, the median sent rate ≥ 95 % of the offered one and the median p99 ≤ the bound.
    Sustained {
        /// The bound on the median p99, in ms.
        #[arg(long, default_value_t = 250.0)]
        max_p99_ms: f64,
        /// The runs (`--out` files).
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// The header of the markdown table the rows belong to.
    Header {
        /// The scenario of the rows: fanout, cluster and dm share one table.
        #[arg(long, value_enum, default_value_t = Table::Fanout)]
        scenario: Table,
    },
}

/// The scenarios `weft-load header` knows the table of.
#[derive(Clone, Copy, ValueEnum)]
enum Table {
    Fanout,
    Cluster,
    Dm,
    History,
    Webhooks,
    /// `versus` rows of fanout and cluster runs.
    Versus,
    /// `versus` rows of idle runs.
    VersusIdle,
}

/// The kinds of server `weft-load` drives.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ServerKind {
    Weft,
    Centrifugo,
}

/// Which server is under test.
#[derive(Args)]
struct Against {
    /// The server under test: weft, or Centrifugo (its JSON protocol over
    /// /connection/websocket; fanout, cluster and idle only).
    #[arg(long, value_enum, default_value_t = ServerKind::Weft)]
    target: ServerKind,
    /// Centrifugo's client.token.hmac_secret_key, to sign the HS256 connection tokens.
    #[arg(long, required_if_eq("target", "centrifugo"))]
    hmac_secret: Option<String>,
    /// The Centrifugo channel of the chat.
    #[arg(long, default_value = "weft-load")]
    channel: String,
}

impl Against {
    fn centrifugo(&self) -> Option<Centrifugo> {
        (self.target == ServerKind::Centrifugo).then(|| Centrifugo {
            secret: self.hmac_secret.clone().unwrap_or_default(),
            channel: self.channel.clone(),
        })
    }
}

#[derive(Args)]
struct HistoryArgs {
    /// The node, e.g. http://127.0.0.1:8080 (loopback only).
    #[arg(long)]
    url: String,
    /// The node's admin key, if it has one (to create the application).
    #[arg(long)]
    admin_key: Option<String>,
    /// Messages posted into the chat before the reads.
    #[arg(long, default_value_t = 2000)]
    messages: u64,
    /// Messages per page (the node serves at most 500).
    #[arg(long, default_value_t = 50)]
    per_page: u64,
    /// Readers, each with one read in flight at a time.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// REST posts in flight at once while seeding the chat (the seed's posts/s is reported).
    #[arg(long, default_value_t = 32)]
    seed_concurrency: usize,
    /// Size of each message body, in bytes.
    #[arg(long, default_value_t = 64)]
    body_bytes: usize,
    /// Seconds measured per phase, after its warm-up.
    #[arg(long, default_value_t = 10)]
    duration_secs: u64,
    /// Seconds of reads before each phase's measured window.
    #[arg(long, default_value_t = 2)]
    warmup_secs: u64,
    /// Write the results as JSON to this file.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Fail (exit 1) if any read failed or was answered wrongly.
    #[arg(long)]
    check: bool,
}

impl HistoryArgs {
    fn run(self) -> anyhow::Result<()> {
        let node = Node::new(&self.url, self.admin_key)?;
        let history = History {
            messages: self.messages,
            per_page: self.per_page,
            concurrency: self.concurrency,
            seed_concurrency: self.seed_concurrency,
            body_bytes: self.body_bytes,
            warmup: Duration::from_secs(self.warmup_secs),
            measure: Duration::from_secs(self.duration_secs),
        };
        let report = runtime()?.block_on(history.run(&node))?;
        write_out(self.out.as_ref(), &report)?;
        eprintln!(
            "weft-load: history: {} store and {} newest reads measured, {} errors",
            report.store.requests,
            report.newest.requests,
            report.errors()
        );
        print!("{}", HistoryReport::HEADER);
        println!("{}", report.rows());
        if self.check {
            anyhow::ensure!(report.errors() == 0, "check failed: {} reads failed", report.errors());
        }
        Ok(())
    }
}

#[derive(Args)]
struct SoakArgs {
    /// A running node, e.g. http://127.0.0.1:8080 (loopback only); without it, the
    /// generator starts one (the embedded default, a temporary data directory).
    #[arg(long)]
    url: Option<String>,
    /// The node's admin key, if it has one.
    #[arg(long)]
    admin_key: Option<String>,
    /// The process of the --url node, for its RSS (and the memory verdict).
    #[arg(long)]
    server_pid: Option<u32>,
    /// The weft binary to start without --url (default: `weft` beside this program).
    #[arg(long)]
    weft_bin: Option<PathBuf>,
    /// Clients, one socket at a time each.
    #[arg(long, default_value_t = 200)]
    clients: usize,
    /// Chats the clients are spread over (default: one per 10 clients).
    #[arg(long)]
    chats: Option<usize>,
    /// Seconds the clients run.
    #[arg(long, default_value_t = 60)]
    secs: u64,
    /// Seconds after the clients leave before the settled RSS is read.
    #[arg(long, default_value_t = 10)]
    settle_secs: u64,
    /// The seed of the clients' random choices.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Write the results as JSON to this file.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Keep the started node's log here.
    #[arg(long)]
    node_log: Option<PathBuf>,
}

impl SoakArgs {
    fn run(self) -> anyhow::Result<()> {
        runtime()?.block_on(async {
            let mut launched = match &self.url {
                Some(_) => None,
                None => {
                    let bin = match &self.weft_bin {
                        Some(bin) => bin.clone(),
                        None => std::env::current_exe()?.with_file_name("weft"),
                    };
                    // The per-user send limit raised (each client sends about once a
                    // second, more than the default allows over a minute); the per-session
                    // frame budget and the flood limit stay as they are: the soak hits them.
                    let env = [
                        ("WEFT_GATEWAY_SEND_RATE_PER_SEC", "1000000".to_owned()),
                        ("WEFT_GATEWAY_SEND_BURST", "1000000".to_owned()),
                        ("WEFT_SERVER_SHUTDOWN_GRACE_MS", "5000".to_owned()),
                    ];
                    Some(Launched::start(&bin, &env).await?)
                }
            };
            let url =
                launched.as_ref().map_or_else(|| self.url.clone().unwrap_or_default(), |l| l.url.clone());
            let pid = launched.as_ref().map(Launched::pid).or(self.server_pid);
            let node = Node::new(&url, self.admin_key.clone())?;
            let soak = Soak {
                clients: self.clients,
                chats: self.chats.unwrap_or(self.clients.div_ceil(10)).max(1),
                duration: Duration::from_secs(self.secs),
                settle: Duration::from_secs(self.settle_secs),
                seed: self.seed,
                pid,
            };
            let result = soak.run(&node).await;
            let mut node_failures = Vec::new();
            if let Some(l) = launched.as_mut() {
                if let Some(status) = l.exited() {
                    node_failures.push(format!("the node exited during the run ({status})"));
                }
                let panics = l.log_lines("panicked");
                if panics > 0 {
                    node_failures
                        .push(format!("the node's log holds {panics} panic lines ({})", l.log().display()));
                }
            }
            if let Some(l) = launched {
                l.stop(self.node_log.as_deref());
            }
            let mut report: SoakReport = result?;
            report.failures.extend(node_failures);
            write_out(self.out.as_ref(), &report)?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            print!("{}", SoakReport::HEADER);
            println!("{}", report.row());
            anyhow::ensure!(report.failures.is_empty(), "soak failed: {}", report.failures.join("; "));
            Ok(())
        })
    }
}

/// The chat of the fan-out scenarios.
#[derive(Args)]
struct OneChat {
    /// Members of the chat, each with a receiving socket.
    #[arg(long, default_value_t = 100)]
    members: usize,
    /// Members that also send, each from a second socket.
    #[arg(long, default_value_t = 1)]
    senders: usize,
}

impl OneChat {
    fn fanout(&self, apart: bool) -> Fanout {
        Fanout { members: self.members, senders: self.senders, apart }
    }
}

#[derive(Args)]
struct Common {
    /// The node, e.g. http://127.0.0.1:8080 (loopback only).
    #[arg(long)]
    url: String,
    /// Spread the WebSockets over these nodes in turn (a cluster; REST uses --url).
    #[arg(long, value_delimiter = ',')]
    spread: Vec<String>,
    /// The node's admin key, if it has one (to create the application).
    #[arg(long)]
    admin_key: Option<String>,
    /// Target sends per second over all senders; 0 sends as fast as acks allow.
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    /// Seconds measured, after the warm-up.
    #[arg(long, default_value_t = 10)]
    duration_secs: u64,
    /// Seconds of sending before the measured window.
    #[arg(long, default_value_t = 2)]
    warmup_secs: u64,
    /// Seconds to wait at most, after sending stops, for answers and deliveries.
    #[arg(long, default_value_t = 10)]
    drain_secs: u64,
    /// Unacknowledged sends per sending socket at most.
    #[arg(long, default_value_t = 32)]
    window: usize,
    /// Size of each message body, in bytes.
    #[arg(long, default_value_t = 64)]
    body_bytes: usize,
    /// WebSocket handshakes in flight at once.
    #[arg(long, default_value_t = 200)]
    connect_concurrency: usize,
    /// weft: open sessions with `?batch=1`, so that frames the node writes together
    /// share a WebSocket frame, a line each (as Centrifugo's JSON protocol always does).
    #[arg(long)]
    batch: bool,
    /// Write the results as JSON to this file.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Fail (exit 1) if any message was missing or duplicated, or any request failed.
    #[arg(long)]
    check: bool,
    /// The server's node processes: the CPU they use in the measured window is reported.
    #[arg(long, value_delimiter = ',')]
    server_pid: Vec<u32>,
    /// Services the nodes use (Redis, Cassandra): their CPU is reported apart.
    #[arg(long, value_delimiter = ',')]
    service_pid: Vec<u32>,
    /// fanout, cluster, dm: register a webhook for every event (`["*"]`) at a receiver
    /// inside the generator (it answers 200 and counts) just before the run. The node must
    /// accept http:// loopback webhooks (WEFT_WEBHOOKS_ALLOW_HTTP=true WEFT_WEBHOOKS_ALLOW_PRIVATE=true).
    #[arg(long)]
    webhook: bool,
    /// With a webhook: seconds to wait at most, after the drain of the acks, for the
    /// acknowledged messages' `message.created` events.
    #[arg(long, default_value_t = 60)]
    webhook_drain_secs: u64,
    #[command(flatten)]
    against: Against,
}

impl Common {
    fn load(&self) -> anyhow::Result<Load> {
        anyhow::ensure!(self.rate >= 0.0 && self.rate.is_finite(), "--rate must be 0 or more");
        anyhow::ensure!(self.window >= 1, "--window must be at least 1");
        anyhow::ensure!(self.duration_secs >= 1, "--duration-secs must be at least 1");
        Ok(Load {
            node: Node::new(&self.url, self.admin_key.clone())?
                .spread_over(&self.spread)?
                .batched(self.batch),
            rate: self.rate,
            window: self.window,
            body_bytes: self.body_bytes,
            connect_concurrency: self.connect_concurrency,
            timing: Timing {
                warmup: Duration::from_secs(self.warmup_secs),
                measure: Duration::from_secs(self.duration_secs),
                drain: Duration::from_secs(self.drain_secs),
            },
            centrifugo: self.against.centrifugo(),
            watched: Watched { nodes: self.server_pid.clone(), services: self.service_pid.clone() },
            webhook: self.webhook,
            webhook_drain: Duration::from_secs(self.webhook_drain_secs),
        })
    }
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("weft-load: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let (common, report) = match cli.command {
        Command::Header { scenario } => {
            match scenario {
                Table::Fanout | Table::Cluster | Table::Dm => print!("{}", report::HEADER),
                Table::History => print!("{}", HistoryReport::HEADER),
                Table::Webhooks => print!("{}", webhooks::HEADER),
                Table::Versus => print!("{}", versus::HEADER),
                Table::VersusIdle => print!("{}", versus::IDLE_HEADER),
            }
            return Ok(());
        }
        Command::Versus { load, weft, centrifugo } => {
            println!("{}", side_by_side(&load, &weft, &centrifugo)?);
            return Ok(());
        }
        Command::Compare { load, label, runs, base_label, base } => {
            let delivery =
                |files: &[PathBuf]| files.iter().map(read_delivery).collect::<anyhow::Result<Vec<_>>>();
            println!(
                "{}",
                versus::labelled_rows(&load, (&label, &delivery(&runs)?), (&base_label, &delivery(&base)?))?
            );
            return Ok(());
        }
        Command::Webhooks { common, chats, baseline } => {
            let load = common.load()?;
            let report = runtime()?.block_on(Webhooks { chats, baseline }.run(&load))?;
            let w = &report.webhook;
            eprintln!(
                "weft-load: webhooks: {} acked, {} events ({:.0}/s in the window), {} missing, {} duplicates, {} out of order, errors {:?}",
                report.acked_total,
                w.posts,
                w.events_per_sec,
                w.missing,
                w.duplicates,
                w.out_of_order,
                report.errors
            );
            write_out(common.out.as_ref(), &report)?;
            println!("{}", report.row());
            if common.check {
                anyhow::ensure!(
                    w.missing == 0 && w.duplicates == 0 && w.out_of_order == 0 && report.error_count() == 0,
                    "check failed: {} missing, {} duplicates, {} out of order, {} errors",
                    w.missing,
                    w.duplicates,
                    w.out_of_order,
                    report.error_count()
                );
            }
            return Ok(());
        }
        Command::Sustained { max_p99_ms, files } => {
            let runs = files.iter().map(read_delivery).collect::<anyhow::Result<Vec<_>>>()?;
            if let Err(why) = versus::sustained(&runs, max_p99_ms)? {
                anyhow::bail!("not sustained: {why}");
            }
            return Ok(());
        }
        Command::Median { files } => {
            let results = files.iter().map(read).collect::<anyhow::Result<Vec<_>>>()?;
            println!("{}", median(results)?);
            return Ok(());
        }
        Command::History(args) => return args.run(),
        Command::Soak(args) => return args.run(),
        Command::Idle {
            url,
            admin_key,
            metrics_token,
            connections,
            hold_secs,
            sources,
            processes,
            concurrency,
            out,
            against,
        } => {
            let node = Node::new(&url, admin_key)?;
            let idle = Idle {
                connections,
                hold: Duration::from_secs(hold_secs),
                sources,
                processes,
                concurrency,
                metrics_token,
                centrifugo: against.centrifugo(),
            };
            let report = runtime()?.block_on(idle.run(&node))?;
            write_out(out.as_ref(), &report)?;
            eprintln!("weft-load: idle: {} held, {} failed", report.connections, report.failed);
            print!("{}", IdleReport::HEADER);
            println!("{}", report.row());
            anyhow::ensure!(report.failed == 0, "{} connections failed to open", report.failed);
            return Ok(());
        }
        Command::Storm {
            url,
            spread,
            admin_key,
            kill_pid,
            clients,
            chats,
            rate,
            before_secs,
            after_secs,
            settle_secs,
            out,
        } => {
            let node = Node::new(&url, admin_key)?;
            let storm = Storm {
                clients,
                chats,
                rate,
                kill_pid,
                before: Duration::from_secs(before_secs),
                after: Duration::from_secs(after_secs),
                settle: Duration::from_secs(settle_secs),
            };
            let report = runtime()?.block_on(storm.run(&node, &spread))?;
            write_out(out.as_ref(), &report)?;
            print!("{}", StormReport::HEADER);
            println!("{}", report.row());
            anyhow::ensure!(
                report.lost == 0 && report.duplicates == 0,
                "{} lost and {} duplicated messages",
                report.lost,
                report.duplicates
            );
            return Ok(());
        }
        Command::IdleWorker { sources, index, concurrency } => {
            return runtime()?.block_on(weft_loadtest::idle::worker(sources, index, concurrency));
        }
        Command::Fanout { common, chat } => {
            let load = common.load()?;
            let report = runtime()?.block_on(chat.fanout(false).run(&load))?;
            (common, report)
        }
        Command::Cluster { common, chat } => {
            let load = common.load()?;
            let report = runtime()?.block_on(chat.fanout(true).run(&load))?;
            (common, report)
        }
        Command::Dm { common, pairs } => {
            let load = common.load()?;
            let report = runtime()?.block_on(Dm { pairs }.run(&load))?;
            (common, report)
        }
    };
    eprintln!(
        "weft-load: {} acked, {} missing, {} duplicates, {} unexpected deliveries, errors {:?}",
        report.acked_total, report.missing, report.duplicates, report.unexpected_deliveries, report.errors
    );
    write_out(common.out.as_ref(), &report)?;
    println!("{}", report.row());
    if common.check {
        let errors: u64 = report.errors.values().sum();
        anyhow::ensure!(
            report.missing == 0 && report.duplicates == 0 && report.unexpected_deliveries == 0 && errors == 0,
            "check failed: {} missing, {} duplicates, {} unexpected, {errors} errors",
            report.missing,
            report.duplicates,
            report.unexpected_deliveries
        );
    }
    Ok(())
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread().enable_all().build()?)
}

/// Writes the results as JSON to `out`, if given.
fn write_out(out: Option<&PathBuf>, report: &impl Serialize) -> anyhow::Result<()> {
    if let Some(out) = out {
        let json = serde_json::to_string_pretty(report)?;
        std::fs::write(out, json + "\n").with_context(|| format!("cannot write {}", out.display()))?;
    }
    Ok(())
}

/// A `--out` file of a delivery run (fanout, cluster, dm).
fn read_delivery(file: &PathBuf) -> anyhow::Result<Report> {
    match read(file)? {
        Results::Delivery(report) => Ok(report),
        Results::History(_) | Results::Webhooks(_) => {
            anyhow::bail!("{} is not a delivery run", file.display())
        }
    }
}

/// The `versus` rows of weft's and Centrifugo's runs of one load (delivery or idle).
fn side_by_side(load: &str, weft: &[PathBuf], centrifugo: &[PathBuf]) -> anyhow::Result<String> {
    let is_idle = |file: &PathBuf| -> anyhow::Result<bool> {
        let text =
            std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
        let value: serde_json::Value = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a weft-load result", file.display()))?;
        Ok(value.get("rss_bytes_per_connection").is_some())
    };
    if weft.iter().chain(centrifugo).map(is_idle).collect::<anyhow::Result<Vec<_>>>()?.into_iter().all(|i| i)
    {
        let idle = |files: &[PathBuf]| -> anyhow::Result<Vec<IdleReport>> {
            files.iter().map(|f| Ok(serde_json::from_str(&std::fs::read_to_string(f)?)?)).collect()
        };
        return versus::idle_rows(load, &idle(weft)?, &idle(centrifugo)?);
    }
    let delivery = |files: &[PathBuf]| files.iter().map(read_delivery).collect::<anyhow::Result<Vec<_>>>();
    versus::rows(load, &delivery(weft)?, &delivery(centrifugo)?)
}

/// A `--out` file: a delivery run (fanout, cluster, dm), a history run or a webhooks run.
enum Results {
    Delivery(Report),
    History(HistoryReport),
    Webhooks(WebhooksReport),
}

fn read(file: &PathBuf) -> anyhow::Result<Results> {
    let text = std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let not_ours = || format!("{} is not a weft-load result", file.display());
    let value: serde_json::Value = serde_json::from_str(&text).with_context(not_ours)?;
    Ok(if value["scenario"] == history::SCENARIO {
        Results::History(serde_json::from_value(value).with_context(not_ours)?)
    } else if value["scenario"] == webhooks::SCENARIO {
        Results::Webhooks(serde_json::from_value(value).with_context(not_ours)?)
    } else {
        Results::Delivery(serde_json::from_value(value).with_context(not_ours)?)
    })
}

/// The median row(s) of runs of one scenario.
fn median(results: Vec<Results>) -> anyhow::Result<String> {
    let (mut delivery, mut reads, mut hooks) = (Vec::new(), Vec::new(), Vec::new());
    for result in results {
        match result {
            Results::Delivery(r) => delivery.push(r),
            Results::History(r) => reads.push(r),
            Results::Webhooks(r) => hooks.push(r),
        }
    }
    match (delivery.is_empty(), reads.is_empty(), hooks.is_empty()) {
        (false, true, true) => report::median_row(&delivery),
        (true, false, true) => history::median_rows(&reads),
        (true, true, false) => webhooks::median_row(&hooks),
        _ => anyhow::bail!("the reports are of different scenarios"),
    }
}
