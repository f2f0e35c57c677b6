//! A TCP relay that keeps every byte it passes, both ways: what someone on
//! the wire between two processes would see. Its tasks end when it is dropped.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

/// Relays connections made to `listen` on to `target`.
pub struct Wiretap {
    seen: Arc<Mutex<Vec<u8>>>,
    tasks: Arc<Mutex<JoinSet<()>>>,
}

impl Wiretap {
    /// Listens on `listen` (which must be free) and relays to `target`.
    pub async fn start(listen: SocketAddr, target: SocketAddr) -> Self {
        let listener = TcpListener::bind(listen).await.expect("bind the wiretap");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let tasks = Arc::new(Mutex::new(JoinSet::new()));
        let (kept, spawner) = (Arc::clone(&seen), Arc::clone(&tasks));
        lock(&tasks).spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(target).await else {
                    continue;
                };
                let (client_read, client_write) = client.into_split();
                let (server_read, server_write) = server.into_split();
                let mut tasks = lock(&spawner);
                tasks.spawn(copy(client_read, server_write, Arc::clone(&kept)));
                tasks.spawn(copy(server_read, client_write, Arc::clone(&kept)));
            }
        });
        Self { seen, tasks }
    }

    /// Every byte relayed so far, both directions interleaved.
    pub fn seen(&self) -> Vec<u8> {
        lock(&self.seen).clone()
    }
}

impl Drop for Wiretap {
    fn drop(&mut self) {
        lock(&self.tasks).abort_all();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

async fn copy(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    seen: Arc<Mutex<Vec<u8>>>,
) {
    let mut buf = [0u8; 16 * 1024];
    while let Ok(read) = from.read(&mut buf).await {
        if read == 0 {
            break;
        }
        lock(&seen).extend_from_slice(&buf[..read]);
        if to.write_all(&buf[..read]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

/// Whether `needle` occurs in `haystack`.
pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty()
        && haystack
            .windows(needle.len())
            .any(|window| window == needle)
}
