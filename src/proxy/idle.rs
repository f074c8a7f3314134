//! Closing connections that hold a slot and do nothing: an I/O wrapper that fails the read side
//! once no byte has moved in either direction for the idle timeout while no request is in flight
//! on the connection (idle keep-alive, half-open, or never sending anything at all, TLS handshake
//! included since the wrapper sits under TLS).
//!
//! Must not import the log, the writer or the classifier: it knows bytes and a counter only.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// Requests in flight on one connection.
#[derive(Clone, Debug, Default)]
pub struct Busy(Arc<AtomicUsize>);

/// One request in flight, until dropped.
#[derive(Debug)]
pub struct InFlight(Arc<AtomicUsize>);

impl Busy {
    /// Marks a request as started.
    pub fn start(&self) -> InFlight {
        self.0.fetch_add(1, Ordering::SeqCst);
        InFlight(self.0.clone())
    }

    fn idle(&self) -> bool {
        self.0.load(Ordering::SeqCst) == 0
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A connection that times out when idle.
///
/// Moving bytes only notes the time (`last`); the timer is re-armed lazily, when it fires early
/// because bytes moved since it was set. Re-arming it on every read and write would cost a timer
/// wheel update (a lock shared by every connection) twice per request.
pub struct IdleIo<T> {
    inner: T,
    timeout: Duration,
    sleep: Pin<Box<Sleep>>,
    /// When a byte last moved in either direction.
    last: Instant,
    busy: Busy,
}

impl<T> IdleIo<T> {
    pub fn new(inner: T, timeout: Duration, busy: Busy) -> Self {
        IdleIo {
            inner,
            timeout,
            sleep: Box::pin(tokio::time::sleep(timeout)),
            last: Instant::now(),
            busy,
        }
    }

    fn touch(&mut self) {
        self.last = Instant::now();
    }

    /// Polls the idle timer: ready when the connection has been idle (no byte moved, no request
    /// in flight) for the timeout. Otherwise the timer is re-armed for the next possible expiry
    /// and registered with `cx`.
    fn poll_idle(&mut self, cx: &mut Context<'_>) -> bool {
        while self.sleep.as_mut().poll(cx).is_ready() {
            let due = self.last + self.timeout;
            if due <= Instant::now() {
                if self.busy.idle() {
                    return true;
                }
                // A request is in flight (e.g. waiting for the records system): look again one
                // timeout later.
                self.touch();
                self.sleep.as_mut().reset(Instant::now() + self.timeout);
            } else {
                self.sleep.as_mut().reset(due);
            }
        }
        false
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for IdleIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(r) => {
                if buf.filled().len() > before {
                    this.touch();
                }
                Poll::Ready(r)
            }
            Poll::Pending => {
                if this.poll_idle(cx) {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "connection idle for longer than limits.idle_timeout_ms",
                    )));
                }
                Poll::Pending
            }
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for IdleIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let r = Pin::new(&mut this.inner).poll_write(cx, data);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            this.touch();
        }
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let r = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            this.touch();
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn an_idle_connection_times_out_and_a_busy_one_does_not() {
        let (mut client, server) = tokio::io::duplex(64);
        let busy = Busy::default();
        let mut io = IdleIo::new(server, Duration::from_millis(100), busy.clone());
        client.write_all(b"x").await.expect("write");
        let mut buf = [0u8; 8];
        assert_eq!(io.read(&mut buf).await.expect("read"), 1);
        let request = busy.start();
        let pending = tokio::time::timeout(Duration::from_millis(400), io.read(&mut buf)).await;
        assert!(pending.is_err(), "no timeout while a request is in flight");
        drop(request);
        let started = Instant::now();
        let err = io.read(&mut buf).await.expect_err("idle");
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    #[tokio::test]
    async fn bytes_that_keep_moving_keep_the_connection_open_past_the_timeout() {
        let (mut client, server) = tokio::io::duplex(64);
        let mut io = IdleIo::new(server, Duration::from_millis(100), Busy::default());
        let mut buf = [0u8; 8];
        // Five times the timeout in all, never more than 40 ms without a byte, while the
        // connection waits in a read.
        let started = Instant::now();
        let sender = tokio::spawn(async move {
            for _ in 0..12 {
                tokio::time::sleep(Duration::from_millis(40)).await;
                client.write_all(b"x").await.expect("write");
            }
            client
        });
        for _ in 0..12 {
            assert_eq!(io.read(&mut buf).await.expect("still open"), 1);
        }
        let mut client = sender.await.expect("sender");
        assert!(started.elapsed() > Duration::from_millis(400));
        // Writes count as activity too.
        for _ in 0..4 {
            tokio::time::sleep(Duration::from_millis(40)).await;
            io.write_all(b"y").await.expect("write");
            client.read_exact(&mut buf[..1]).await.expect("read");
        }
        client.write_all(b"z").await.expect("write");
        assert_eq!(io.read(&mut buf).await.expect("still open"), 1);
        let quiet = Instant::now();
        let err = io.read(&mut buf).await.expect_err("idle");
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(
            quiet.elapsed() >= Duration::from_millis(90),
            "{:?}",
            quiet.elapsed()
        );
    }
}
