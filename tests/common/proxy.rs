//! A TCP forwarder on a loopback port, to take a real service away from a
//! node and give it back (the service keeps running for every other test).

use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::task::JoinSet;

/// Forwards `127.0.0.1:<port>` to `upstream` while up.
pub struct Proxy {
    addr: SocketAddr,
    upstream: String,
    tasks: Option<JoinSet<()>>,
}

impl Proxy {
    /// Starts forwarding to `upstream` (`host:port`) on a free port.
    pub async fn start(upstream: &str) -> Proxy {
        let mut proxy =
            Proxy { addr: "127.0.0.1:0".parse().unwrap(), upstream: upstream.to_owned(), tasks: None };
        proxy.up().await;
        proxy
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops listening and cuts every open connection: the service is gone.
    pub fn down(&mut self) {
        if let Some(mut tasks) = self.tasks.take() {
            tasks.abort_all();
        }
    }

    /// Listens again on the same port.
    pub async fn up(&mut self) {
        let socket = TcpSocket::new_v4().unwrap();
        socket.set_reuseaddr(true).unwrap();
        socket.bind(self.addr).unwrap();
        let listener = socket.listen(128).unwrap();
        self.addr = listener.local_addr().unwrap();
        let mut tasks = JoinSet::new();
        let upstream = self.upstream.clone();
        tasks.spawn(accept(listener, upstream));
        self.tasks = Some(tasks);
    }
}

async fn accept(listener: TcpListener, upstream: String) {
    let mut connections = JoinSet::new();
    while let Ok((mut client, _)) = listener.accept().await {
        let upstream = upstream.clone();
        connections.spawn(async move {
            if let Ok(mut server) = TcpStream::connect(&upstream).await {
                let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
            }
        });
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.down();
    }
}
