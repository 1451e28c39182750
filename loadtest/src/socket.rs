//! Opening many WebSockets at once, with a bound on handshakes in flight.

use std::time::Duration;

use crate::centrifugo;
use anyhow::{Context as _, bail};
use futures::{SinkExt as _, StreamExt as _, TryStreamExt as _};
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

/// A Centrifugo session to open: its URL, its connection token and the channel to
/// subscribe to (none for a sending socket).
#[derive(Clone, Debug)]
pub struct CentrifugoSession {
    /// `ws://…/connection/websocket`.
    pub url: String,
    /// The HS256 connection token.
    pub token: String,
    /// The channel to subscribe to, if any.
    pub channel: Option<String>,
}

/// Opens a Centrifugo session per entry, at most `concurrency` at a time, in the
/// order given. Each has its `connect` (and `subscribe`) answered, so the node
/// will deliver to it.
pub async fn open_all_centrifugo(
    sessions: Vec<CentrifugoSession>,
    concurrency: usize,
) -> anyhow::Result<Vec<Socket>> {
    futures::stream::iter(sessions).map(open_centrifugo).buffered(concurrency.max(1)).try_collect().await
}

async fn open_centrifugo(session: CentrifugoSession) -> anyhow::Result<Socket> {
    let opening = async {
        let (mut socket, _) = connect(&session.url).await?;
        socket.send(Message::text(centrifugo::connect_command(&session.token))).await?;
        await_reply(&mut socket, 1).await?;
        if let Some(channel) = &session.channel {
            socket.send(Message::text(centrifugo::subscribe_command(channel))).await?;
            await_reply(&mut socket, 2).await?;
        }
        Ok::<_, anyhow::Error>(socket)
    };
    tokio::time::timeout(OPEN_TIMEOUT, opening)
        .await
        .context("no connect reply within 30 s")?
        .context("cannot open a Centrifugo session")
}

/// Reads frames until one holds the reply to request `id` (an error if it is an error reply).
pub(crate) async fn await_reply<S>(socket: &mut WebSocketStream<S>, id: u64) -> anyhow::Result<()>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    loop {
        match socket.next().await {
            Some(Ok(Message::Text(text))) => {
                for line in text.split('\n').filter(|l| !l.trim().is_empty()) {
                    if centrifugo::is_reply_to(line, id)? {
                        return Ok(());
                    }
                }
            }
            Some(Ok(Message::Close(frame))) => bail!("closed before the reply to {id}: {frame:?}"),
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(e.into()),
            None => bail!("closed before the reply to {id}"),
        }
    }
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
