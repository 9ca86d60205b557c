//! Upstream addresses and connected sockets, shared by the client and its pools.

use monoio::buf::{IoBuf, IoBufMut};
use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use monoio::net::{TcpStream, UnixStream};
use std::os::fd::{AsRawFd, RawFd};
use std::path::Path;
use std::sync::Arc;

/// Where a request goes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Upstream {
    /// `host:port` (an IP literal is used as is; a name is resolved off-reactor and cached).
    Tcp(Arc<str>),
    /// A Unix domain socket (the admin's control socket).
    Unix(Arc<Path>),
}

impl Upstream {
    pub fn tcp(host_port: &str) -> Self {
        Upstream::Tcp(Arc::from(host_port))
    }

    pub fn unix(path: impl AsRef<Path>) -> Self {
        Upstream::Unix(Arc::from(path.as_ref()))
    }

    /// `http://host[:port][/]` → `Tcp("host:port")` (port 80 by default);
    /// `unix:/path` or `unix:///path` → `Unix`. TLS upstreams are not supported.
    pub fn from_url(url: &str) -> Result<Self, String> {
        if let Some(path) = url
            .strip_prefix("unix://")
            .or_else(|| url.strip_prefix("unix:"))
        {
            if !path.starts_with('/') {
                return Err(format!("unix socket path must be absolute: {url:?}"));
            }
            return Ok(Upstream::unix(path));
        }
        let Some(rest) = url.strip_prefix("http://") else {
            return Err(format!(
                "upstream URL must start with http:// or unix: — got {url:?}"
            ));
        };
        let authority = rest.split('/').next().unwrap_or("");
        if authority.is_empty() || authority.contains('@') {
            return Err(format!("invalid upstream URL {url:?}"));
        }
        let has_port = match authority.rfind(':') {
            // `[::1]` has colons but no port; `[::1]:7700` has one after the bracket.
            Some(i) => !authority[i..].contains(']'),
            None => false,
        };
        if has_port {
            let port = &authority[authority.rfind(':').unwrap() + 1..];
            if port.parse::<u16>().is_err() {
                return Err(format!("invalid port in upstream URL {url:?}"));
            }
            Ok(Upstream::tcp(authority))
        } else {
            Ok(Upstream::Tcp(Arc::from(format!("{authority}:80"))))
        }
    }

    /// The `Host` header value (and the metrics label).
    pub fn label(&self) -> String {
        match self {
            Upstream::Tcp(hp) => hp.to_string(),
            Upstream::Unix(p) => format!("unix:{}", p.display()),
        }
    }
}

/// A connected socket of either kind.
pub enum Conn {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Conn {
    pub fn raw_fd(&self) -> RawFd {
        match self {
            Conn::Tcp(s) => s.as_raw_fd(),
            Conn::Unix(s) => s.as_raw_fd(),
        }
    }

    pub(super) async fn read<T: IoBufMut + 'static>(
        &mut self,
        buf: T,
    ) -> (std::io::Result<usize>, T) {
        match self {
            Conn::Tcp(s) => s.read(buf).await,
            Conn::Unix(s) => s.read(buf).await,
        }
    }

    pub(super) async fn write_all<T: IoBuf + 'static>(
        &mut self,
        buf: T,
    ) -> (std::io::Result<usize>, T) {
        match self {
            Conn::Tcp(s) => s.write_all(buf).await,
            Conn::Unix(s) => s.write_all(buf).await,
        }
    }
}
