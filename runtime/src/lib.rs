//! # miroir-runtime — the data plane (issue 5)
//!
//! Thread-per-core: [`reactor`] starts one pinned monoio reactor per core, each with its own
//! `SO_REUSEPORT` listener, upstream pools ([`http::client`]), metrics ([`metrics`]) and view
//! of the admin's snapshot ([`snapshot_watch`]). Nothing on the request path is shared between
//! cores. [`http`] is the HTTP/1.1 transport; [`proxy`] is what answers requests (routes,
//! scatter-gather, writes, auth) through the [`http::Handler`] seam.
//!
//! Imports point one way, bottom up: [`http`] (depends on nothing in this crate) ←
//! [`metrics`] (implements the transport's metrics traits), [`snapshot_watch`] (independent) ←
//! [`reactor`] (wires a core: client, server, metrics, snapshot view) ← [`proxy`] (builds its
//! per-core handler from the reactor's `CoreContext`).
pub mod http;
pub mod metrics;
pub mod proxy;
pub mod reactor;
pub mod snapshot_watch;
