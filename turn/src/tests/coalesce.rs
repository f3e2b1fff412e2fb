//! Unit tests of `shell/coalesce.rs`: the write coalescing under TCP and TLS streams.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use tokio::io::AsyncWriteExt;

use super::*;

/// Records each write that reaches the "socket".
#[derive(Default)]
struct Socket {
    writes: Vec<Vec<u8>>,
    flushes: usize,
}

impl AsyncWrite for Socket {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.writes.push(data.to_vec());
        Poll::Ready(Ok(data.len()))
    }
    fn poll_flush(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.flushes += 1;
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[tokio::test]
async fn coalesce_gathers_writes_until_flush_only_when_on() {
    let mut on = Coalesce::new(Socket::default(), true);
    on.write_all(b"one").await.unwrap();
    on.write_all(b"two").await.unwrap();
    let n = on
        .write_vectored(&[std::io::IoSlice::new(b"thr"), std::io::IoSlice::new(b"ee")])
        .await
        .unwrap();
    assert_eq!(n, 5, "a vectored write is taken whole");
    assert!(on.inner.writes.is_empty(), "nothing leaves before flush");
    on.flush().await.unwrap();
    assert_eq!(on.inner.writes, vec![b"onetwothree".to_vec()]);
    assert_eq!(on.inner.flushes, 1);

    // Off (the TLS handshake): every write goes straight through.
    let mut off = Coalesce::new(Socket::default(), false);
    off.write_all(b"hello").await.unwrap();
    off.write_all(b"alert").await.unwrap();
    assert_eq!(off.inner.writes, vec![b"hello".to_vec(), b"alert".to_vec()]);
}

#[tokio::test]
async fn coalesce_writes_out_a_full_buffer_before_taking_more() {
    let mut s = Coalesce::new(Socket::default(), true);
    let chunk = vec![7u8; 16 * 1024];
    for _ in 0..5 {
        s.write_all(&chunk).await.unwrap();
    }
    // 4 × 16 KiB reached the 64 KiB bound: they left together before the fifth was taken.
    assert_eq!(s.inner.writes.len(), 1);
    assert_eq!(s.inner.writes[0].len(), 64 * 1024);
    s.flush().await.unwrap();
    assert_eq!(s.inner.writes.len(), 2);
    assert_eq!(s.inner.writes[1].len(), 16 * 1024);
}
