//! HTTP/1.1 transport of the data plane: server (on `httparse`), client and per-core upstream
//! pools. Everything here runs on one monoio reactor per core and is `!Send` by design: a
//! connection, its buffers and the pools it borrows from never leave their core.
//!
//! Layout:
//! - [`types`]: the request/response seam shared with `proxy/` (fixed shape); [`body`]: a
//!   body that may start part-way into its buffer (no copy out of a read buffer or behind a
//!   written head).
//! - [`parse`]: pure, incremental request-head and chunked-body parsing with every limit and
//!   anti-smuggling rule; no I/O, so it is unit-, property- and fuzz-tested directly.
//! - [`server`]: the connection loop (keep-alive, pipelining, 100-continue, timeouts) and the
//!   [`server::Handler`] trait the proxy implements.
//! - [`client`] + [`pool`] (+ [`conn`], the sockets both hold): the upstream client (nodes
//!   over TCP, the admin over a Unix socket) with keep-alive pools, deadlines and the one safe
//!   retry.
//! - [`observe`]: the metrics the server and the client report, as traits.
//! - [`shutdown`]: the per-core shutdown flag the accept loop and idle connections await.
//! - [`decode`]: request-body decompression (gzip/deflate/br) with a size cap, for the routes
//!   that must parse bodies.
//! - [`compress`]: response compression for clients sending `Accept-Encoding`.
//! - [`date`]: the cached `Date` header.
//! - [`recycle`]: per-core reuse of large body buffers (node answers, written responses).
//! - [`stream`]: an upstream answer relayed as its body arrives (chat completions' events).
//!
//! **Layering:** this module depends on nothing else in the crate (only on `miroir-core`, for
//! Meilisearch-shaped error bodies and the config its settings are read from, and on external
//! crates), so it could be a crate of its own. What it needs from above comes in as values or
//! trait implementations: the [`server::Handler`], the [`observe`] metrics traits, a
//! [`shutdown::Shutdown`] flag. Check:
//! `grep -rnE 'crate::(metrics|reactor|proxy|snapshot_watch)' runtime/src/http/` is empty.
//!
//! The seam with the layers above, in one place:
//! - the proxy implements [`server::Handler`] (`route_template` for the metrics label,
//!   `handle(Request, RequestMeta) -> Response`); the reactor builds one per core from a
//!   factory and runs it in a [`server::ServerCore`] with that core's metrics and shutdown flag;
//! - the proxy calls nodes and the admin socket with [`client::UpstreamClient::send`] /
//!   [`client::UpstreamClient::send_with`] and fans out with [`client::join_all`];
//! - write routes decompress with [`types::Request::decoded_body`] (see [`decode`]);
//! - the transport owns framing headers and adds `x-request-id`, `date` and `connection`.
pub mod body;
pub mod client;
pub mod compress;
pub mod conn;
pub mod date;
pub mod decode;
pub mod observe;
pub mod parse;
pub mod pool;
pub mod recycle;
pub mod server;
pub mod shutdown;
pub mod stream;
pub mod types;

pub use body::Body;
pub use client::{SendOptions, Upstream, UpstreamClient};
pub use server::{Handler, RequestMeta};
pub use types::{Method, Request, Response, UpstreamError};
