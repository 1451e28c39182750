//! A TCP relay that listens inside a fault network's host namespace and
//! connects to a real service in the test's own namespace (the shared Redis,
//! the shared Cassandra): the nodes reach the service only across the host's
//! link, so taking that link down is a real network outage for them, and the
//! relay can add latency (a delay line: every chunk is held for the delay,
//! in order, without slowing the chunks behind it).

use std::net::SocketAddr;
use std::os::fd::AsFd as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::netns::Host;

/// A relay to one upstream service.
pub struct Relay {
    /// Where the nodes connect (the host's address).
    pub addr: SocketAddr,
    delay_ms: Arc<AtomicU64>,
    tasks: JoinSet<()>,
}

impl Relay {
    /// Listens on `host`'s address at `port` and relays to `upstream` (`ip:port`).
    pub fn start(host: &Host, port: u16, upstream: &str) -> Relay {
        Relay::start_at(&host.ns, SocketAddr::from((host.ip, port)), upstream)
    }

    /// Listens on `addr` in namespace `ns` and relays to `upstream` (`ip:port`).
    pub fn start_at(ns: &str, addr: SocketAddr, upstream: &str) -> Relay {
        let listener = listen_in(ns, addr);
        let delay_ms = Arc::new(AtomicU64::new(0));
        let mut tasks = JoinSet::new();
        tasks.spawn(accept(listener, upstream.to_owned(), Arc::clone(&delay_ms)));
        Relay { addr, delay_ms, tasks }
    }

    /// Holds every chunk, both ways, for `delay` from now on.
    pub fn set_delay(&self, delay: Duration) {
        self.delay_ms.store(delay.as_millis() as u64, Ordering::Relaxed);
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.tasks.abort_all();
    }
}

/// A listening socket made in namespace `ns` (a thread that moves into it,
/// binds and ends; the socket stays in that namespace).
fn listen_in(ns: &str, addr: SocketAddr) -> TcpListener {
    let path = format!("/run/netns/{ns}");
    let std_listener = std::thread::spawn(move || {
        let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        rustix::thread::move_into_link_name_space(
            file.as_fd(),
            Some(rustix::thread::LinkNameSpaceType::Network),
        )
        .unwrap_or_else(|e| panic!("setns into {path} refused: {e} (the fault tests need root)"));
        let listener =
            std::net::TcpListener::bind(addr).unwrap_or_else(|e| panic!("bind {addr} in {path}: {e}"));
        listener.set_nonblocking(true).unwrap();
        listener
    })
    .join()
    .unwrap();
    TcpListener::from_std(std_listener).unwrap()
}

async fn accept(listener: TcpListener, upstream: String, delay_ms: Arc<AtomicU64>) {
    let mut connections = JoinSet::new();
    while let Ok((client, _)) = listener.accept().await {
        let (upstream, delay_ms) = (upstream.clone(), Arc::clone(&delay_ms));
        connections.spawn(async move {
            let Ok(server) = TcpStream::connect(&upstream).await else { return };
            let _ = client.set_nodelay(true);
            let _ = server.set_nodelay(true);
            let (client_read, client_write) = client.into_split();
            let (server_read, server_write) = server.into_split();
            tokio::select! {
                () = pipe(client_read, server_write, Arc::clone(&delay_ms)) => {}
                () = pipe(server_read, client_write, delay_ms) => {}
            }
        });
    }
}

/// Copies `from` to `to`, each chunk released `delay` after it was read.
async fn pipe(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, delay_ms: Arc<AtomicU64>) {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<(Instant, Bytes)>(4096);
    let writer = async move {
        while let Some((due, chunk)) = rx.recv().await {
            tokio::time::sleep_until(due).await;
            if to.write_all(&chunk).await.is_err() {
                return;
            }
        }
        let _ = to.shutdown().await;
    };
    let reader = async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match from.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    let due = Instant::now() + Duration::from_millis(delay_ms.load(Ordering::Relaxed));
                    if tx.send((due, Bytes::copy_from_slice(&buf[..n]))).await.is_err() {
                        return;
                    }
                }
            }
        }
    };
    tokio::join!(reader, writer);
}
