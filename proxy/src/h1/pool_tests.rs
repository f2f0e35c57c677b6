use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

use super::*;

#[tokio::test]
async fn a_connection_comes_back_and_a_closed_one_does_not() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let pool = UpstreamPool::new(Duration::from_secs(5), None);

    let first = pool
        .connect(&Backend::new("a", addr))
        .await
        .expect("connect");
    let (mut accepted, _) = listener.accept().await.expect("accept");
    pool.put(addr, first);
    assert_eq!(pool.idle(), 1);
    let again = pool.take(addr).expect("the idle connection");
    assert!(again.buf.is_empty());
    assert!(pool.take(addr).is_none());

    // The other side closes it while it is idle: it is not handed out.
    pool.put(addr, again);
    accepted.shutdown().await.expect("shutdown");
    drop(accepted);
    let closed = loop {
        let idle = pool.take(addr);
        match idle {
            Some(stream) => {
                // Not seen as closed yet: wait until it is readable, then put it back.
                stream.stream.tcp().readable().await.expect("readable");
                pool.put(addr, stream);
            }
            None => break true,
        }
    };
    assert!(closed);
    assert_eq!(pool.idle(), 0);
}

#[tokio::test]
async fn a_connection_that_cannot_be_made_fails() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    let pool = UpstreamPool::new(Duration::from_secs(5), None);
    assert!(pool.connect(&Backend::new("a", addr)).await.is_err());
}

#[tokio::test]
async fn another_node_is_not_reached_without_a_node_certificate() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let pool = UpstreamPool::new(Duration::from_secs(5), None);
    let peer = Backend::new("b", addr).with_tls_name("b.node.reef");
    let error = pool.get(&peer, false).await.expect_err("refused");
    assert!(error.to_string().contains("no node certificate"), "{error}");
}
