//! Opening many WebSockets at once, with a bound on handshakes in flight.

use std::time::Duration;

use anyhow::{Context as _, bail};
use futures::{StreamExt as _, TryStreamExt as _};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async_with_config};

/// A client WebSocket.
pub type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How long one handshake, and then its `welcome`, may take.
const OPEN_TIMEOUT: Duration = Duration::from_secs(30);

/// Opens a socket per URL, at most `concurrency` handshakes at a time, in the
/// order given. Each has read its `welcome`, so the node has registered the
/// session and will deliver to it.
pub async fn open_all(urls: Vec<String>, concurrency: usize) -> anyhow::Result<Vec<Socket>> {
    futures::stream::iter(urls).map(open).buffered(concurrency.max(1)).try_collect().await
}

/// Opens one WebSocket (the handshake only), Nagle off: frames are small and
/// latency is what is measured. The read buffer is small because tungstenite
/// zeroes its free space before every read: with the 128 KiB default that was a
/// fifth of the generator's CPU in a fan-out run.
pub async fn connect(
    url: &str,
) -> tokio_tungstenite::tungstenite::Result<(
    Socket,
    tokio_tungstenite::tungstenite::handshake::client::Response,
)> {
    let config = WebSocketConfig::default().read_buffer_size(8 * 1024);
    connect_async_with_config(url, Some(config), true).await
}

async fn open(url: String) -> anyhow::Result<Socket> {
    let opening = async {
        let (mut socket, _) = connect(&url).await?;
        loop {
            match socket.next().await {
                Some(Ok(Message::Text(text))) if text.contains("\"welcome\"") => return Ok(socket),
                Some(Ok(Message::Close(frame))) => bail!("closed before welcome: {frame:?}"),
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e.into()),
                None => bail!("closed before welcome"),
            }
        }
    };
    tokio::time::timeout(OPEN_TIMEOUT, opening)
        .await
        .context("no welcome within 30 s")?
        .context("cannot open a WebSocket session")
}
