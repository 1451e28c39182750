//! The `weft` binary: parse the command line, load the config, call the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;
use weft::config::{Backend, Config, LogFormat};

/// A horizontally clustered chat server.
#[derive(Parser)]
#[command(name = "weft", version)]
struct Cli {
    /// A TOML config file (defaults: config/default.toml's values, which are built in).
    #[arg(long, short, global = true, env = "WEFT_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run a node (the default).
    Serve,
    /// Create or upgrade the CQL schema, then exit.
    Migrate,
    /// Print the version.
    Version,
    /// Rebuild the search index from the store (resumable: run it again to go on).
    /// On the embedded index, stop the node first (one process holds the index).
    Reindex {
        /// Only this application (its token). Tokens are base64url, so one in
        /// 64 starts with `-`: taken as the value, not as a flag.
        #[arg(long, allow_hyphen_values = true)]
        app: Option<String>,
        /// Only this chat of `--app`.
        #[arg(long, requires = "app")]
        chat: Option<u64>,
        /// Where the run records how far it got (removed when it finishes).
        #[arg(long, default_value = "weft-reindex.checkpoint")]
        checkpoint: PathBuf,
    },
    /// Write one application as JSON lines (docs/operations.md): its settings and
    /// signing secret, chats, members, messages, receipts, webhooks, devices.
    /// On the embedded store, stop the node first (or export from a restored backup).
    Export {
        /// The application's token.
        #[arg(long, allow_hyphen_values = true)]
        app: String,
        /// Where to write (default: standard output). Holds the application's secrets.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Read an export into the store this config names. Refused when the store
    /// already holds the application; a bad line is refused before anything is written.
    Import {
        /// The export (default: standard input).
        #[arg(long = "in")]
        input: Option<PathBuf>,
    },
    /// Fetch a consistent copy of a serving node's embedded store (needs the admin key).
    Backup {
        /// Where to write it (readable by its owner only: it holds every secret).
        #[arg(long)]
        out: PathBuf,
        /// The node's base URL (default: the config's `server.listen`).
        #[arg(long)]
        node: Option<String>,
    },
    /// Put a backup in place as the store of this config's data directory (node stopped).
    Restore {
        /// The backup file.
        #[arg(long = "in")]
        input: PathBuf,
        /// Replace the store the data directory holds.
        #[arg(long)]
        force: bool,
    },
    /// Write a development cluster CA and node certificates (mutual TLS between nodes).
    ClusterCa {
        /// Directory to write into (created if missing).
        #[arg(long)]
        out: PathBuf,
        /// One certificate per node name (`<name>.pem`, `<name>.key`); default: one
        /// pair, `node.pem` and `node.key`, shared by every node.
        #[arg(long, value_delimiter = ',')]
        names: Vec<String>,
        /// Replace an existing CA (nodes holding certificates from the old one are locked out).
        #[arg(long)]
        force: bool,
    },
}

/// Exit code for a configuration error (EX_USAGE).
const EXIT_CONFIG: u8 = 64;

fn main() -> ExitCode {
    // Two rustls providers are compiled in (ring, and aws-lc-rs through the CQL
    // driver's TLS), so rustls picks no default by itself: every command uses ring.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    let command = cli.command.unwrap_or(Command::Serve);
    match command {
        Command::Version => {
            println!("weft {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Command::ClusterCa { out, names, force } => return cluster_ca(&out, &names, force),
        Command::Serve
        | Command::Migrate
        | Command::Reindex { .. }
        | Command::Export { .. }
        | Command::Import { .. }
        | Command::Backup { .. }
        | Command::Restore { .. } => {}
    }
    let config = match Config::load(cli.config.as_deref()) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("weft: configuration error: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    init_tracing(&config);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("weft: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match command {
            Command::Migrate => migrate(&config).await,
            Command::Reindex { app, chat, checkpoint } => {
                reindex(&config, weft::ReindexScope { app, chat }, &checkpoint).await
            }
            Command::Export { app, out } => export(&config, &app, out.as_deref()).await,
            Command::Import { input } => import(&config, input.as_deref()).await,
            Command::Backup { out, node } => {
                let bytes = weft::backup(&config, node.as_deref(), &out).await?;
                println!("backup written: {} ({bytes} bytes)", out.display());
                Ok(())
            }
            Command::Restore { input, force } => {
                let store = weft::restore(&config, &input, force)?;
                println!("restored into {}", store.display());
                Ok(())
            }
            _ => serve(&config).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "weft failed");
            ExitCode::FAILURE
        }
    }
}

/// `weft cluster-ca`: needs no config, so it runs before any is loaded.
fn cluster_ca(out: &std::path::Path, names: &[String], force: bool) -> ExitCode {
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    match weft::cluster::tls::generate(out, &names, force) {
        Ok(generated) => {
            println!("ca certificate: {}", generated.ca_cert.display());
            println!("ca key:         {} (keep it off the nodes)", generated.ca_key.display());
            for (name, paths) in &generated.nodes {
                println!("{name}: {} {}", paths.node_cert.display(), paths.node_key.display());
            }
            ExitCode::SUCCESS
        }
        Err(e @ weft::cluster::tls::TlsError::Exists { .. }) => {
            eprintln!("weft: {e} (pass --force to replace it)");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("weft: {e}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing(config: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&config.log.level));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match config.log.format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

async fn migrate(config: &Config) -> anyhow::Result<()> {
    if config.store.backend == Backend::Embedded {
        tracing::info!("the embedded store creates its tables itself: nothing to migrate");
        return Ok(());
    }
    let version = weft::CqlStore::migrate(&config.cql).await?;
    tracing::info!(version, keyspace = %config.cql.keyspace, "schema is current");
    Ok(())
}

async fn reindex(
    config: &Config,
    scope: weft::ReindexScope,
    checkpoint: &std::path::Path,
) -> anyhow::Result<()> {
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:40} {pos}/{len} messages ({per_sec}, {eta} left) {msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let done = weft::reindex(config, scope, checkpoint, |p| {
        bar.set_length(p.total);
        bar.set_position(p.indexed + p.resumed);
    })
    .await?;
    bar.finish();
    println!("reindexed {} messages ({} done by an earlier run)", done.indexed, done.resumed);
    Ok(())
}

async fn export(config: &Config, app: &str, out: Option<&std::path::Path>) -> anyhow::Result<()> {
    let token = weft::ids::AppToken::new(app);
    let done = match out {
        Some(path) => weft::export_file(config, &token, path).await?,
        None => weft::export(config, &token, &mut std::io::BufWriter::new(std::io::stdout())).await?,
    };
    eprintln!("exported {} chats, {} messages ({} records)", done.chats, done.messages, done.records);
    Ok(())
}

async fn import(config: &Config, input: Option<&std::path::Path>) -> anyhow::Result<()> {
    let done = weft::import(config, input).await?;
    println!("imported {} chats, {} messages ({} records)", done.chats, done.messages, done.records);
    Ok(())
}

async fn serve(config: &Config) -> anyhow::Result<()> {
    let node = weft::Node::start(config).await?;
    let listener = tokio::net::TcpListener::bind(config.server.listen).await?;
    let shutdown = CancellationToken::new();
    tokio::spawn(stop_on_signal(shutdown.clone()));
    weft::run(listener, node, shutdown).await?;
    Ok(())
}

async fn stop_on_signal(shutdown: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {},
                    _ = term.recv() => {},
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("shutdown requested");
    shutdown.cancel();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reindex_takes_an_app_token_that_starts_with_a_hyphen() {
        let cli = Cli::try_parse_from(["weft", "reindex", "--app", "-Asb2OSdq", "--chat", "1"]);
        match cli.map(|c| c.command) {
            Ok(Some(Command::Reindex { app, chat, .. })) => {
                assert_eq!(app.as_deref(), Some("-Asb2OSdq"));
                assert_eq!(chat, Some(1));
            }
            Ok(_) => panic!("not the reindex command"),
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn export_takes_an_app_token_that_starts_with_a_hyphen() {
        let cli = Cli::try_parse_from(["weft", "export", "--app", "-Asb2OSdq", "--out", "app.jsonl"]);
        match cli.map(|c| c.command) {
            Ok(Some(Command::Export { app, out })) => {
                assert_eq!(app, "-Asb2OSdq");
                assert_eq!(out, Some(PathBuf::from("app.jsonl")));
            }
            Ok(_) => panic!("not the export command"),
            Err(e) => panic!("{e}"),
        }
    }
}
