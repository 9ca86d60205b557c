//! Wiring into the transport: [`Proxy`] over the per-core [`UpstreamClient`], implementing
//! the server's [`Handler`]. This file is the only place that knows the transport's types
//! beyond the request/response seam.

use crate::http::client::{SendOptions, Upstream};
use crate::http::server::{Handler, RequestMeta};
use crate::http::types::{Method, Request, Response, UpstreamError};
use crate::metrics::CoreMetrics;
use crate::proxy::upstream::Upstreams;
use crate::proxy::Proxy;
use crate::reactor::{CoreContext, UpstreamClient};
use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::rc::Rc;
use std::time::Duration;

/// The production [`Upstreams`]: this core's keep-alive client, the admin's control socket.
pub struct ClientUpstreams {
    client: Rc<UpstreamClient>,
    metrics: Rc<CoreMetrics>,
    admin: Upstream,
    /// Parsed node addresses (`http://host:port` → `Upstream`), per address string.
    nodes: RefCell<HashMap<String, Upstream>>,
}

impl ClientUpstreams {
    pub fn new(
        client: Rc<UpstreamClient>,
        metrics: Rc<CoreMetrics>,
        control_socket: &std::path::Path,
    ) -> Self {
        ClientUpstreams {
            client,
            metrics,
            admin: Upstream::unix(control_socket),
            nodes: RefCell::new(HashMap::new()),
        }
    }

    fn upstream(&self, address: &str) -> Result<Upstream, UpstreamError> {
        if let Some(u) = self.nodes.borrow().get(address) {
            return Ok(u.clone());
        }
        let u = Upstream::from_url(address).map_err(UpstreamError::Connect)?;
        self.nodes
            .borrow_mut()
            .insert(address.to_owned(), u.clone());
        Ok(u)
    }
}

/// Read-only POSTs may be replayed on a fresh connection when a pooled one turns out stale.
fn replayable(req: &Request) -> bool {
    match req.method {
        Method::Get | Method::Head | Method::Options => true,
        Method::Post => [
            "/search",
            "/facet-search",
            "/documents/fetch",
            "/multi-search",
        ]
        .iter()
        .any(|s| req.path.ends_with(s)),
        _ => false,
    }
}

impl Upstreams for ClientUpstreams {
    fn node(
        &self,
        address: &str,
        req: Request,
        timeout: Duration,
    ) -> impl Future<Output = Result<Response, UpstreamError>> {
        let target = self.upstream(address);
        let opts = SendOptions::new(timeout).replayable(replayable(&req));
        async move { self.client.send_with(&target?, req, opts).await }
    }

    fn admin(
        &self,
        req: Request,
        timeout: Duration,
    ) -> impl Future<Output = Result<Response, UpstreamError>> {
        let opts = SendOptions::new(timeout).replayable(matches!(req.method, Method::Get));
        self.client.send_with(&self.admin, req, opts)
    }

    fn record_fan_out(&self, nodes: usize) {
        self.metrics.record_fan_out(nodes);
    }

    fn record_partial(&self) {
        self.metrics.record_partial();
    }

    fn record_coalesced(&self) {
        self.metrics.count(
            "miroir_coalesced_searches_total",
            "Searches answered by an identical search in flight on the same core.",
            "",
            1,
        );
    }
}

impl Proxy<ClientUpstreams> {
    /// The factory the reactor calls once per core.
    pub fn from_core(ctx: CoreContext) -> Self {
        let config = Rc::new((*ctx.config).clone());
        let up = ClientUpstreams::new(
            ctx.client.clone(),
            ctx.metrics.clone(),
            &config.control_socket_path(),
        );
        let snapshot = ctx.snapshot.clone();
        let metrics = ctx.metrics.clone();
        Proxy::new(
            up,
            config,
            Box::new(move || snapshot.current()),
            Some(Box::new(move || metrics.render_prometheus())),
        )
    }
}

impl Handler for Proxy<ClientUpstreams> {
    fn route_template(&self, req: &Request) -> &'static str {
        Proxy::route_template(self, req)
    }

    fn admit(&self, head: &Request) -> Result<(), Response> {
        Proxy::admit(self, head)
    }

    async fn handle(&self, req: Request, meta: RequestMeta) -> Response {
        Proxy::handle(self, req, &meta.request_id).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replayable_reads_only() {
        let mk = |m, p: &str| Request {
            method: m,
            path: p.into(),
            query: String::new(),
            headers: vec![],
            body: vec![],
        };
        assert!(replayable(&mk(Method::Post, "/indexes/a/search")));
        assert!(replayable(&mk(Method::Get, "/indexes/a/documents/1")));
        assert!(!replayable(&mk(Method::Post, "/indexes/a/documents")));
        assert!(!replayable(&mk(Method::Delete, "/indexes/a/documents/1")));
    }
}
