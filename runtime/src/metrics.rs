//! Per-core metrics, aggregated into Prometheus text only when scraped.
//!
//! Each core records into its own [`CoreMetrics`] (plain `RefCell` state: no atomics, no locks
//! on the request path). Once a second, and when shutting down, the core copies its state into
//! its slot of the shared [`MetricsRegistry`] (one uncontended mutex per core per second). A
//! scrape merges the slots — hdrhistograms add exactly — and renders Prometheus text; the
//! scraping core publishes its own state first, so with one worker a scrape is always current
//! and with N workers other cores' numbers are at most a second old.
//!
//! Durations are recorded in microseconds in hdrhistograms (2 significant digits, 1 µs–60 s)
//! and exported as Prometheus histograms with fixed `le` buckets in seconds.

use crate::http::observe::{ClientMetrics, ServerMetrics};
use crate::http::server::{Handler, RequestMeta};
use crate::http::types::{Method, Request, Response};
use hdrhistogram::Histogram;
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// `le` buckets of the duration histograms, in seconds.
const DURATION_BUCKETS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];
/// `le` buckets of the fan-out size histogram (nodes asked per request).
const FAN_OUT_BUCKETS: [f64; 10] = [1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0, 32.0, 64.0];

/// A histogram plus the exact sum Prometheus wants (hdr only keeps bucketed values).
#[derive(Clone)]
struct Hist {
    h: Histogram<u64>,
    sum: u64,
}

impl Hist {
    fn micros() -> Self {
        Hist {
            h: Histogram::new_with_bounds(1, 60_000_000, 2).expect("static bounds"),
            sum: 0,
        }
    }

    fn small() -> Self {
        Hist {
            h: Histogram::new_with_bounds(1, 100_000, 2).expect("static bounds"),
            sum: 0,
        }
    }

    fn record(&mut self, v: u64) {
        self.h.saturating_record(v.max(1));
        self.sum = self.sum.saturating_add(v);
    }

    fn merge(&mut self, other: &Hist) {
        // Same bounds by construction, so adding cannot fail.
        let _ = self.h.add(&other.h);
        self.sum = self.sum.saturating_add(other.sum);
    }

    /// Cumulative counts at each `le` (values scaled by `unit`: 1e6 for seconds from µs).
    fn cumulative(&self, les: &[f64], unit: f64) -> Vec<u64> {
        let mut out = vec![0u64; les.len()];
        for v in self.h.iter_recorded() {
            // The highest value equivalent to the bucket is what was recorded, at hdr's precision.
            let x = self.h.highest_equivalent(v.value_iterated_to()) as f64 / unit;
            let n = v.count_at_value();
            for (i, le) in les.iter().enumerate() {
                if x <= *le {
                    out[i] += n;
                }
            }
        }
        out
    }
}

#[derive(Clone, Default)]
struct NodeStats {
    latency: Option<Hist>,
    errors: BTreeMap<&'static str, u64>,
}

impl NodeStats {
    fn merge(&mut self, o: &NodeStats) {
        if let Some(l) = &o.latency {
            self.latency.get_or_insert_with(Hist::micros).merge(l);
        }
        for (k, v) in &o.errors {
            *self.errors.entry(k).or_default() += v;
        }
    }
}

/// Everything one core counts. Cloned into the registry once a second.
#[derive(Clone, Default)]
pub struct CoreStats {
    requests: HashMap<(&'static str, u16), Hist>,
    in_flight: i64,
    rejected: BTreeMap<u16, u64>,
    connections_open: i64,
    connections_accepted: u64,
    connections_refused: u64,
    fan_out: Option<Hist>,
    partial: u64,
    retries: u64,
    upstreams: HashMap<String, NodeStats>,
    nodes: HashMap<String, NodeStats>,
    counters: BTreeMap<(&'static str, String), (u64, &'static str)>,
}

impl CoreStats {
    fn merge(&mut self, o: &CoreStats) {
        for (k, h) in &o.requests {
            self.requests
                .entry(*k)
                .or_insert_with(Hist::micros)
                .merge(h);
        }
        self.in_flight += o.in_flight;
        for (k, v) in &o.rejected {
            *self.rejected.entry(*k).or_default() += v;
        }
        self.connections_open += o.connections_open;
        self.connections_accepted += o.connections_accepted;
        self.connections_refused += o.connections_refused;
        if let Some(f) = &o.fan_out {
            self.fan_out.get_or_insert_with(Hist::small).merge(f);
        }
        self.partial += o.partial;
        self.retries += o.retries;
        for (k, s) in &o.upstreams {
            self.upstreams.entry(k.clone()).or_default().merge(s);
        }
        for (k, s) in &o.nodes {
            self.nodes.entry(k.clone()).or_default().merge(s);
        }
        for (k, (v, help)) in &o.counters {
            self.counters.entry(k.clone()).or_insert((0, help)).0 += v;
        }
    }
}

/// The process-wide side: one slot per core.
pub struct MetricsRegistry {
    slots: Vec<Mutex<Option<CoreStats>>>,
    io_backend: &'static str,
}

impl MetricsRegistry {
    pub fn new(cores: usize, io_backend: &'static str) -> Arc<Self> {
        Arc::new(MetricsRegistry {
            slots: (0..cores).map(|_| Mutex::new(None)).collect(),
            io_backend,
        })
    }

    fn store(&self, core: usize, stats: CoreStats) {
        if let Some(slot) = self.slots.get(core) {
            *slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(stats);
        }
    }

    /// Merges every core's last published stats.
    fn merged(&self) -> CoreStats {
        let mut all = CoreStats::default();
        for slot in &self.slots {
            if let Some(s) = &*slot.lock().unwrap_or_else(|e| e.into_inner()) {
                all.merge(s);
            }
        }
        all
    }
}

/// Renders the whole process's metrics in the Prometheus text exposition format 0.0.4.
pub fn render_prometheus(registry: &MetricsRegistry) -> String {
    let s = registry.merged();
    let mut out = String::with_capacity(8192);
    family(
        &mut out,
        "miroir_io_backend",
        "gauge",
        "I/O backend of the reactors (1 for the active one).",
    );
    let _ = writeln!(
        out,
        "miroir_io_backend{{backend=\"{}\"}} 1",
        registry.io_backend
    );
    family(
        &mut out,
        "miroir_reactor_cores",
        "gauge",
        "Reactor threads serving requests.",
    );
    let _ = writeln!(out, "miroir_reactor_cores {}", registry.slots.len());

    family(
        &mut out,
        "miroir_request_duration_seconds",
        "histogram",
        "Request duration by route template and status.",
    );
    let mut keys: Vec<_> = s.requests.keys().copied().collect();
    keys.sort();
    for (route, status) in keys {
        let labels = format!("route=\"{}\",status=\"{}\"", escape(route), status);
        histogram(
            &mut out,
            "miroir_request_duration_seconds",
            &labels,
            &s.requests[&(route, status)],
            &DURATION_BUCKETS,
            1e6,
        );
    }
    family(
        &mut out,
        "miroir_requests_in_flight",
        "gauge",
        "Requests being handled.",
    );
    let _ = writeln!(out, "miroir_requests_in_flight {}", s.in_flight);
    family(
        &mut out,
        "miroir_requests_rejected_total",
        "counter",
        "Requests refused by the HTTP layer (never reached a handler).",
    );
    for (status, n) in &s.rejected {
        let _ = writeln!(
            out,
            "miroir_requests_rejected_total{{status=\"{status}\"}} {n}"
        );
    }
    family(
        &mut out,
        "miroir_connections_open",
        "gauge",
        "Open client connections.",
    );
    let _ = writeln!(out, "miroir_connections_open {}", s.connections_open);
    family(
        &mut out,
        "miroir_connections_accepted_total",
        "counter",
        "Client connections accepted.",
    );
    let _ = writeln!(
        out,
        "miroir_connections_accepted_total {}",
        s.connections_accepted
    );
    family(
        &mut out,
        "miroir_connections_refused_total",
        "counter",
        "Client connections refused over the per-core cap.",
    );
    let _ = writeln!(
        out,
        "miroir_connections_refused_total {}",
        s.connections_refused
    );

    family(
        &mut out,
        "miroir_scatter_fan_out_size",
        "histogram",
        "Nodes asked per scattered request.",
    );
    if let Some(f) = &s.fan_out {
        histogram(
            &mut out,
            "miroir_scatter_fan_out_size",
            "",
            f,
            &FAN_OUT_BUCKETS,
            1.0,
        );
    }
    family(
        &mut out,
        "miroir_partial_responses_total",
        "counter",
        "Responses answered without some shards (X-Miroir-Degraded).",
    );
    let _ = writeln!(out, "miroir_partial_responses_total {}", s.partial);
    family(
        &mut out,
        "miroir_upstream_retries_total",
        "counter",
        "Upstream requests retried on a fresh connection after a stale pooled one.",
    );
    let _ = writeln!(out, "miroir_upstream_retries_total {}", s.retries);

    node_families(
        &mut out,
        "miroir_upstream",
        "upstream",
        "per upstream address",
        &s.upstreams,
    );
    node_families(&mut out, "miroir_node", "node", "per node id", &s.nodes);

    let mut last = "";
    for ((name, labels), (v, help)) in &s.counters {
        if *name != last {
            family(&mut out, name, "counter", help);
            last = name;
        }
        if labels.is_empty() {
            let _ = writeln!(out, "{name} {v}");
        } else {
            let _ = writeln!(out, "{name}{{{labels}}} {v}");
        }
    }
    out
}

fn node_families(
    out: &mut String,
    prefix: &str,
    label: &str,
    what: &str,
    m: &HashMap<String, NodeStats>,
) {
    let mut names: Vec<&String> = m.keys().collect();
    names.sort();
    let dur = format!("{prefix}_request_duration_seconds");
    family(
        out,
        &dur,
        "histogram",
        &format!("Upstream request duration {what}."),
    );
    for n in &names {
        if let Some(h) = &m[*n].latency {
            histogram(
                out,
                &dur,
                &format!("{label}=\"{}\"", escape(n)),
                h,
                &DURATION_BUCKETS,
                1e6,
            );
        }
    }
    let errs = format!("{prefix}_errors_total");
    family(
        out,
        &errs,
        "counter",
        &format!("Upstream requests that got no response {what}, by error type."),
    );
    for n in &names {
        for (ty, v) in &m[*n].errors {
            let _ = writeln!(
                out,
                "{errs}{{{label}=\"{}\",error_type=\"{ty}\"}} {v}",
                escape(n)
            );
        }
    }
}

fn family(out: &mut String, name: &str, ty: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {ty}");
}

fn histogram(out: &mut String, name: &str, labels: &str, h: &Hist, les: &[f64], unit: f64) {
    let sep = if labels.is_empty() { "" } else { "," };
    for (le, n) in les.iter().zip(h.cumulative(les, unit)) {
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{le}\"}} {n}");
    }
    let total = h.h.len();
    let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {total}");
    let braces = if labels.is_empty() {
        String::new()
    } else {
        format!("{{{labels}}}")
    };
    let _ = writeln!(out, "{name}_sum{braces} {}", h.sum as f64 / unit);
    let _ = writeln!(out, "{name}_count{braces} {total}");
}

/// Escapes a Prometheus label value.
pub fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// One core's metrics. `!Send`; shared on the core with `Rc`.
pub struct CoreMetrics {
    core_id: usize,
    registry: Arc<MetricsRegistry>,
    live: RefCell<CoreStats>,
}

impl CoreMetrics {
    pub fn new(core_id: usize, registry: Arc<MetricsRegistry>) -> Rc<Self> {
        Rc::new(CoreMetrics {
            core_id,
            registry,
            live: RefCell::new(CoreStats::default()),
        })
    }

    pub fn registry(&self) -> &Arc<MetricsRegistry> {
        &self.registry
    }

    /// Copies this core's stats into its registry slot.
    pub fn publish(&self) {
        self.registry
            .store(self.core_id, self.live.borrow().clone());
    }

    /// Publishes this core's current stats, then renders the whole process (what
    /// `GET /_miroir/metrics` answers).
    pub fn render_prometheus(&self) -> String {
        self.publish();
        render_prometheus(&self.registry)
    }

    /// Nodes asked for one scattered request.
    pub fn record_fan_out(&self, nodes: usize) {
        self.live
            .borrow_mut()
            .fan_out
            .get_or_insert_with(Hist::small)
            .record(nodes as u64);
    }

    /// A response answered without some shards.
    pub fn record_partial(&self) {
        self.live.borrow_mut().partial += 1;
    }

    /// For the proxy: one call to a node, labelled by node id (`miroir_node_*`).
    pub fn record_node(&self, node: &str, elapsed: Duration, error: Option<&'static str>) {
        let mut s = self.live.borrow_mut();
        let e = match s.nodes.get_mut(node) {
            Some(e) => e,
            None => s.nodes.entry(node.to_string()).or_default(),
        };
        record_node(e, elapsed, error);
    }

    /// A free-form counter for the proxy (`name` must be a valid metric name; `labels` is
    /// pre-rendered, e.g. `index="movies"` — keep cardinality bounded).
    pub fn count(&self, name: &'static str, help: &'static str, labels: &str, by: u64) {
        let mut s = self.live.borrow_mut();
        s.counters
            .entry((name, labels.to_string()))
            .or_insert((0, help))
            .0 += by;
    }
}

/// What the transport's server reports (`http/` calls it through the trait).
impl ServerMetrics for CoreMetrics {
    fn request_started(&self) {
        self.live.borrow_mut().in_flight += 1;
    }

    fn request_finished(&self, route: &'static str, status: u16, elapsed: Duration) {
        let mut s = self.live.borrow_mut();
        s.in_flight -= 1;
        s.requests
            .entry((route, status))
            .or_insert_with(Hist::micros)
            .record(elapsed.as_micros() as u64);
    }

    fn request_rejected(&self, status: u16) {
        *self.live.borrow_mut().rejected.entry(status).or_default() += 1;
    }

    fn connection_opened(&self) {
        let mut s = self.live.borrow_mut();
        s.connections_open += 1;
        s.connections_accepted += 1;
    }

    fn connection_closed(&self) {
        self.live.borrow_mut().connections_open -= 1;
    }

    fn connection_refused(&self) {
        self.live.borrow_mut().connections_refused += 1;
    }
}

/// What the transport's client reports, for every call (label: the upstream address).
impl ClientMetrics for CoreMetrics {
    fn upstream_retry(&self) {
        self.live.borrow_mut().retries += 1;
    }

    fn upstream_result(&self, upstream: &str, elapsed: Duration, error: Option<&'static str>) {
        let mut s = self.live.borrow_mut();
        let e = match s.upstreams.get_mut(upstream) {
            Some(e) => e,
            None => s.upstreams.entry(upstream.to_string()).or_default(),
        };
        record_node(e, elapsed, error);
    }
}

fn record_node(e: &mut NodeStats, elapsed: Duration, error: Option<&'static str>) {
    match error {
        None => e
            .latency
            .get_or_insert_with(Hist::micros)
            .record(elapsed.as_micros() as u64),
        Some(ty) => *e.errors.entry(ty).or_default() += 1,
    }
}

/// The `server.metrics_port` listener's handler: `GET /metrics` (any path) → Prometheus text.
pub struct MetricsHandler {
    metrics: Rc<CoreMetrics>,
}

impl MetricsHandler {
    pub fn new(metrics: Rc<CoreMetrics>) -> Self {
        MetricsHandler { metrics }
    }
}

impl Handler for MetricsHandler {
    fn route_template(&self, _req: &Request) -> &'static str {
        "metrics_port"
    }

    async fn handle(&self, req: Request, _meta: RequestMeta) -> Response {
        if !matches!(req.method, Method::Get | Method::Head) {
            let e = miroir_core::MeiliError::new(
                miroir_core::ErrorCode::MethodNotAllowed,
                "Only GET is served here.",
            );
            return Response::json(e.status(), e.to_body());
        }
        let mut r = Response::new(200).with_header("content-type", "text/plain; version=0.0.4");
        r.body = self.metrics.render_prometheus().into_bytes().into();
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aggregates_cores_and_renders_prometheus_text() {
        let reg = MetricsRegistry::new(2, "epoll");
        let a = CoreMetrics::new(0, reg.clone());
        let b = CoreMetrics::new(1, reg.clone());
        a.request_started();
        a.request_finished("/indexes/{uid}/search", 200, Duration::from_micros(700));
        b.request_started();
        b.request_finished("/indexes/{uid}/search", 200, Duration::from_millis(30));
        b.request_started(); // still in flight
        b.record_fan_out(3);
        b.record_partial();
        a.upstream_result("127.0.0.1:7701", Duration::from_millis(2), None);
        a.upstream_result("127.0.0.1:7701", Duration::from_millis(2), Some("timeout"));
        a.record_node("meili-\"0\"", Duration::from_millis(2), None);
        a.count("miroir_test_total", "A test counter.", "k=\"v\"", 2);
        b.publish();
        let text = a.render_prometheus();
        let has = |l: &str| assert!(text.lines().any(|x| x == l), "missing {l:?} in\n{text}");
        has("miroir_io_backend{backend=\"epoll\"} 1");
        has("miroir_request_duration_seconds_bucket{route=\"/indexes/{uid}/search\",status=\"200\",le=\"0.001\"} 1");
        has("miroir_request_duration_seconds_bucket{route=\"/indexes/{uid}/search\",status=\"200\",le=\"0.05\"} 2");
        has("miroir_request_duration_seconds_count{route=\"/indexes/{uid}/search\",status=\"200\"} 2");
        has("miroir_request_duration_seconds_sum{route=\"/indexes/{uid}/search\",status=\"200\"} 0.0307");
        has("miroir_requests_in_flight 1");
        has("miroir_scatter_fan_out_size_bucket{le=\"2\"} 0");
        has("miroir_scatter_fan_out_size_bucket{le=\"3\"} 1");
        has("miroir_partial_responses_total 1");
        has("miroir_upstream_errors_total{upstream=\"127.0.0.1:7701\",error_type=\"timeout\"} 1");
        has("miroir_upstream_request_duration_seconds_count{upstream=\"127.0.0.1:7701\"} 1");
        has("miroir_node_request_duration_seconds_count{node=\"meili-\\\"0\\\"\"} 1");
        has("miroir_test_total{k=\"v\"} 2");
    }

    #[test]
    fn unpublished_cores_are_absent_not_zeroed() {
        let reg = MetricsRegistry::new(2, "io_uring");
        let a = CoreMetrics::new(0, reg.clone());
        a.request_rejected(431);
        let text = a.render_prometheus();
        assert!(text.contains("miroir_requests_rejected_total{status=\"431\"} 1"));
        assert!(text.contains("miroir_reactor_cores 2"));
    }
}
