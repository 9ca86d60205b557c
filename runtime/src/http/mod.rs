//! HTTP/1.1 transport: server (on `httparse`), client and per-core upstream pools.
pub mod types;
pub use types::{Method, Request, Response, UpstreamError};
