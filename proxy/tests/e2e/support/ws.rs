//! A WebSocket echo backend (it answers each text message with
//! `<name>: <message>`), and a client that connects through the proxy.

use std::net::SocketAddr;

use futures::{SinkExt, StreamExt};
use reef_proxy::Backend;
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;
use tokio_util::sync::CancellationToken;

use super::within;

/// A WebSocket echo instance on 127.0.0.1.
pub struct WsBackend {
    pub name: String,
    pub addr: SocketAddr,
    stop: CancellationToken,
}

impl WsBackend {
    /// Starts an echo backend named `name` on a free port.
    pub async fn start(name: &str) -> Self {
        let listener = within(TcpListener::bind("127.0.0.1:0"))
            .await
            .expect("bind a WebSocket backend");
        let addr = listener.local_addr().expect("address");
        let stop = CancellationToken::new();
        tokio::spawn(accept_loop(listener, name.to_owned(), stop.clone()));
        Self {
            name: name.to_owned(),
            addr,
            stop,
        }
    }

    /// This instance as the proxy knows it.
    pub fn backend(&self) -> Backend {
        Backend::new(self.name.clone(), self.addr)
    }
}

impl Drop for WsBackend {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn accept_loop(listener: TcpListener, name: String, stop: CancellationToken) {
    loop {
        let stream = tokio::select! {
            () = stop.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(_) => continue,
            },
        };
        let name = name.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            tokio::select! {
                () = echo(stream, &name) => {}
                () = stop.cancelled() => {}
            }
        });
    }
}

async fn echo(stream: TcpStream, name: &str) {
    let Ok(mut socket) = tokio_tungstenite::accept_async(stream).await else {
        return;
    };
    while let Some(Ok(message)) = socket.next().await {
        let reply = match message {
            Message::Text(text) => Message::text(format!("{name}: {}", text.as_str())),
            Message::Close(_) => break,
            _ => continue,
        };
        if socket.send(reply).await.is_err() {
            return;
        }
    }
    let _ = socket.close(None).await;
}

/// A WebSocket client connection.
pub type WsClient = WebSocketStream<TcpStream>;

/// Opens a WebSocket to `ws://host/ws` through the proxy at `proxy`.
pub async fn ws_connect(proxy: SocketAddr, host: &str) -> WsClient {
    let tcp = within(TcpStream::connect(proxy)).await.expect("connect");
    let (socket, response) = within(tokio_tungstenite::client_async(
        format!("ws://{host}/ws"),
        tcp,
    ))
    .await
    .expect("WebSocket handshake through the proxy");
    assert_eq!(response.status(), 101);
    socket
}

/// Sends `text` and returns the answer.
pub async fn ws_ask(socket: &mut WsClient, text: &str) -> String {
    within(socket.send(Message::text(text)))
        .await
        .expect("send");
    loop {
        match within(socket.next()).await {
            Some(Ok(Message::Text(answer))) => return answer.as_str().to_owned(),
            Some(Ok(_)) => continue,
            other => panic!("no answer: {other:?}"),
        }
    }
}

/// Closes `socket` and waits until the close is complete.
pub async fn ws_close(mut socket: WsClient) {
    within(socket.close(None)).await.expect("close");
    while let Some(Ok(_)) = within(socket.next()).await {}
}
