//! Free loopback ports.

use std::net::{SocketAddr, TcpListener};

/// A free loopback port: bound then released, so another process may take it in between;
/// fixtures whose server reports the port it bound (`--http-addr 127.0.0.1:0`) avoid this.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("binding a loopback port")
        .port()
}

/// `127.0.0.1:<free port>`.
pub fn free_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], free_port()))
}
