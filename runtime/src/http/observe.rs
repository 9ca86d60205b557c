//! What the transport reports about its work, as traits: the server and the client call them
//! and know no metrics implementation, so `http/` depends on nothing above it. The data plane
//! implements both on its per-core metrics; the server and client are generic over them, so
//! each call is static (no dynamic dispatch on the request path).
//!
//! Every method is called on the core that owns the connection, in program order: an
//! implementation may use `Cell`/`RefCell` state freely.

use std::time::Duration;

/// Server-side events (one accept loop and its connections).
pub trait ServerMetrics {
    /// A connection was accepted and is being served.
    fn connection_opened(&self);
    /// A served connection closed (always after `connection_opened`).
    fn connection_closed(&self);
    /// A connection was refused at once (over `max_connections`).
    fn connection_refused(&self);
    /// A request was rejected by the transport (bad framing, limits, timeouts) with `status`;
    /// it never reached the handler.
    fn request_rejected(&self, status: u16);
    /// A request was handed to the handler.
    fn request_started(&self);
    /// The handler answered `status` after `elapsed` (`route` is the handler's label).
    fn request_finished(&self, route: &'static str, status: u16, elapsed: Duration);
}

/// Client-side events (calls to upstreams).
pub trait ClientMetrics {
    /// One call, labelled by upstream address; `error` is the failure kind (`connect`,
    /// `timeout`, `protocol`, `io`, `too_large`) or `None` for an answer of any status.
    fn upstream_result(&self, upstream: &str, elapsed: Duration, error: Option<&'static str>);
    /// A stale pooled connection was replaced and the request sent again.
    fn upstream_retry(&self);
}
