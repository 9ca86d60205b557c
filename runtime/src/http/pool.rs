//! Per-core keep-alive pools: for each upstream, a stack of idle connections.
//!
//! A connection is returned after a response was read completely and the upstream allowed
//! keep-alive; it is taken back most-recently-used first (the warmest socket, and the least
//! likely to have been closed by the upstream's own idle timer). Before reuse it is checked
//! with a non-blocking `MSG_PEEK`: an idle HTTP connection must have nothing to read, so EOF
//! or stray bytes mean the upstream closed it (or desynchronised) and it is discarded — this
//! turns most "stale connection" failures into a fresh connect before anything is sent.

use crate::http::conn::{Conn, Upstream};
use std::cell::RefCell;
use std::collections::HashMap;
use std::os::fd::RawFd;
use std::time::{Duration, Instant};

/// An idle connection and its read buffer (kept to avoid reallocating per request).
pub struct PooledConn {
    pub conn: Conn,
    pub buf: Vec<u8>,
    pub idle_since: Instant,
}

pub struct Pool {
    idle: RefCell<HashMap<Upstream, Vec<PooledConn>>>,
    max_idle_per_upstream: usize,
    idle_timeout: Duration,
}

impl Pool {
    pub fn new(max_idle_per_upstream: usize, idle_timeout: Duration) -> Self {
        Pool {
            idle: RefCell::new(HashMap::new()),
            max_idle_per_upstream,
            idle_timeout,
        }
    }

    /// A live idle connection to `upstream`, if any. Expired and dead ones are dropped.
    pub fn take(&self, upstream: &Upstream) -> Option<PooledConn> {
        self.take_trusting(upstream, Duration::ZERO)
    }

    /// [`Pool::take`], except that a connection idle for less than `trust_for` is returned
    /// without the `MSG_PEEK` check (for callers that retry on a stale connection).
    pub fn take_trusting(&self, upstream: &Upstream, trust_for: Duration) -> Option<PooledConn> {
        let mut idle = self.idle.borrow_mut();
        let stack = idle.get_mut(upstream)?;
        while let Some(c) = stack.pop() {
            let idle_for = c.idle_since.elapsed();
            if idle_for < trust_for.min(self.idle_timeout)
                || (idle_for < self.idle_timeout && socket_is_idle(c.conn.raw_fd()))
            {
                return Some(c);
            }
        }
        None
    }

    /// Returns a connection for reuse; beyond the cap the oldest idle one is closed.
    pub fn put(&self, upstream: &Upstream, mut c: PooledConn) {
        if self.max_idle_per_upstream == 0 {
            return;
        }
        c.idle_since = Instant::now();
        let mut idle = self.idle.borrow_mut();
        let stack = match idle.get_mut(upstream) {
            Some(s) => s,
            None => idle.entry(upstream.clone()).or_default(),
        };
        if stack.len() >= self.max_idle_per_upstream {
            stack.remove(0);
        }
        stack.push(c);
    }

    /// Idle connections held for `upstream`.
    pub fn idle_count(&self, upstream: &Upstream) -> usize {
        self.idle.borrow().get(upstream).map_or(0, Vec::len)
    }

    /// Drops every idle connection (e.g. to an upstream that left the topology).
    pub fn clear(&self, upstream: &Upstream) {
        self.idle.borrow_mut().remove(upstream);
    }
}

/// `true` when the socket has nothing to read and is not closed: the only healthy state for an
/// idle HTTP/1.1 client connection.
pub fn socket_is_idle(fd: RawFd) -> bool {
    let mut byte = 0u8;
    // SAFETY: `fd` is an open socket owned by the caller; the buffer is one valid byte.
    let n = unsafe {
        libc::recv(
            fd,
            (&mut byte as *mut u8).cast(),
            1,
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    if n < 0 {
        let err = std::io::Error::last_os_error();
        return err.kind() == std::io::ErrorKind::WouldBlock;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::fd::AsRawFd;

    #[test]
    fn peek_distinguishes_idle_closed_and_unexpected_data() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (mut server, _) = l.accept().unwrap();
        assert!(socket_is_idle(client.as_raw_fd()));
        server.write_all(b"x").unwrap();
        server.flush().unwrap();
        // Wait (without timing assumptions) until the byte is readable.
        let mut b = [0u8; 1];
        client.peek(&mut b).unwrap();
        assert!(!socket_is_idle(client.as_raw_fd()));

        let client2 = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (server2, _) = l.accept().unwrap();
        drop(server2);
        client2.peek(&mut b).unwrap(); // returns 0 at EOF
        assert!(!socket_is_idle(client2.as_raw_fd()));
    }
}
