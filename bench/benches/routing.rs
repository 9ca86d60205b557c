//! Routing micro-benchmarks (docs/benchmarks.md#workload-routing): the per-batch cost of routing 10K documents
//! (S = 64, 3 nodes) and of building a search's covering set. Target: ≤ 100 µs per 10K docs.
//!
//! Run: `cargo bench -p miroir-bench --bench routing` (short measurement settings below, so it
//! is cheap enough to run on a shared machine). After the criterion groups, an interleaved
//! on-CPU A/B of the 10K-document routing (see [`on_cpu`]) prints numbers that survive a
//! loaded machine better than criterion's wall clock.

use criterion::{Criterion, Throughput};
use miroir_core::documents::{prepare_batch, BatchOptions, PayloadFormat};
use miroir_core::routing::{covering_set_available, shard_for_key, xxh64, ShardMap};
use miroir_core::topology::{Node, NodeStatus, Topology};
use miroir_core::{GroupId, NodeId, ShardId};
use std::hint::black_box;
use std::time::{Duration, Instant};

const SHARDS: u32 = 64;
const DOCS: usize = 10_000;

fn topology(rf: u32) -> Topology {
    let nodes = (0..3).map(|i| Node {
        id: NodeId::new(format!("meili-{i}")),
        address: format!("http://127.0.0.1:{}", 7710 + i),
        replica_group: GroupId(0),
        status: NodeStatus::Active,
    });
    Topology::new(rf, 1, nodes).expect("valid topology")
}

fn keys() -> Vec<String> {
    (0..DOCS).map(|i| format!("doc-{i:05}")).collect()
}

/// What the data plane does per write batch: hash every key (with `shard_of`), then resolve
/// the write targets once per distinct shard and group them by node. The `ShardMap` is cached
/// per snapshot by the data plane, so it is built outside the measurement (and measured
/// below).
fn route_batch(
    keys: &[String],
    map: &ShardMap,
    shard_of: impl Fn(&str) -> ShardId,
) -> Vec<(NodeId, Vec<ShardId>)> {
    let mut per_shard = [0u32; SHARDS as usize];
    for k in keys {
        per_shard[shard_of(black_box(k)).0 as usize] += 1;
    }
    let present = (0..SHARDS)
        .filter(|&s| per_shard[s as usize] > 0)
        .map(ShardId);
    map.writes_by_node("movies", present, &[])
}

/// The shard count as the data plane has it: a runtime value (a constant would let the
/// compiler fold `% 64` into a mask and hide the cost of a real division).
fn shards() -> u32 {
    black_box(SHARDS)
}

/// The shard formula as first written (`xxh64 % S`, a 64-bit division per key): the "before"
/// of the on-CPU A/B; `shard_for_key` masks instead when S is a power of two.
fn shard_by_division(k: &str, shards: u32) -> ShardId {
    ShardId((xxh64(k.as_bytes()) % u64::from(shards)) as u32)
}

fn routing(c: &mut Criterion) {
    let topo = topology(1);
    let keys = keys();
    let mut g = c.benchmark_group("routing");
    g.throughput(Throughput::Elements(DOCS as u64));

    let map = ShardMap::new(&topo, SHARDS);
    g.bench_function("shard_for_key+write_targets/10k_docs_s64_3nodes", |b| {
        b.iter(|| {
            let s = shards();
            black_box(route_batch(&keys, &map, |k| shard_for_key(k, s)))
        })
    });

    // The same with a target lookup per document (no grouping): shows the per-doc cost.
    g.bench_function("per_doc_owner_lookup/10k_docs_s64_3nodes", |b| {
        b.iter(|| {
            let mut n = 0usize;
            for k in &keys {
                let shard = shard_for_key(black_box(k), shards());
                n += map.owners(GroupId(0), shard).len();
            }
            black_box(n)
        })
    });
    g.finish();

    let mut g = c.benchmark_group("shard_map");
    g.bench_function("new/s64_3nodes_rf1", |b| {
        b.iter(|| black_box(ShardMap::new(&topo, SHARDS)))
    });
    g.finish();

    let mut g = c.benchmark_group("covering_set");
    let topo2 = topology(2);
    let map2 = ShardMap::new(&topo2, SHARDS);
    let mut rotation = 0u64;
    g.bench_function("search_plan/s64_3nodes_rf2_cached_map", |b| {
        b.iter(|| {
            rotation = rotation.wrapping_add(1);
            black_box(map2.search_plan(GroupId(0), rotation, |_| true))
        })
    });
    g.bench_function("covering_set_available/s64_3nodes_rf2_from_topology", |b| {
        b.iter(|| {
            rotation = rotation.wrapping_add(1);
            black_box(covering_set_available(
                &topo2,
                GroupId(0),
                SHARDS,
                rotation,
                |_| true,
            ))
        })
    });
    g.finish();

    // Preparing a write batch (parse, validate, inject, group) for reference.
    let body = serde_json::to_vec(
        &(0..DOCS)
            .map(|i| serde_json::json!({"id": format!("doc-{i:05}"), "title": "A title", "year": 1999}))
            .collect::<Vec<_>>(),
    )
    .expect("serialisable");
    let mut g = c.benchmark_group("documents");
    g.throughput(Throughput::Elements(DOCS as u64));
    g.bench_function("prepare_batch/json_10k_docs_s64", |b| {
        b.iter(|| {
            black_box(
                prepare_batch(
                    black_box(&body),
                    PayloadFormat::Json,
                    &BatchOptions::new(SHARDS),
                )
                .expect("valid batch"),
            )
        })
    });
    g.finish();
}

fn short() -> Criterion {
    Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
}

/// On-CPU time of this thread in ns (`/proc/thread-self/schedstat`, first field); `None`
/// elsewhere (then wall-clock time is used).
fn thread_cpu_ns() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    s.split_whitespace().next()?.parse().ok()
}

/// Mean µs per run over a batch of `n` runs (on-CPU when available).
fn time_us(n: usize, mut f: impl FnMut()) -> f64 {
    let (t, c) = (Instant::now(), thread_cpu_ns());
    for _ in 0..n {
        f();
    }
    match (c, thread_cpu_ns()) {
        (Some(a), Some(b)) => (b - a) as f64 / 1e3 / n as f64,
        _ => t.elapsed().as_secs_f64() * 1e6 / n as f64,
    }
}

fn min_med_max(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    (v[0], v[v.len() / 2], v[v.len() - 1])
}

/// Interleaved A/B (11 rounds of ≈ 100 ms batches each, `shard_for_key` then the division
/// formula): on-CPU µs per 10K-document batch, min/median/max.
fn on_cpu() {
    let map = ShardMap::new(&topology(1), SHARDS);
    let keys = keys();
    let fast = || {
        let s = shards();
        black_box(route_batch(&keys, &map, |k| shard_for_key(k, s)))
    };
    let div = || {
        let s = shards();
        black_box(route_batch(&keys, &map, |k| shard_by_division(k, s)))
    };
    let t = Instant::now();
    let mut n = 0usize;
    while t.elapsed() < Duration::from_millis(20) {
        fast();
        n += 1;
    }
    let runs = ((100_000.0 / (t.elapsed().as_secs_f64() * 1e6 / n as f64)) as usize).max(3);
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for _ in 0..11 {
        a.push(time_us(runs, || {
            fast();
        }));
        b.push(time_us(runs, || {
            div();
        }));
    }
    let clock = if thread_cpu_ns().is_some() {
        "on-CPU"
    } else {
        "wall-clock"
    };
    for (name, v) in [("shard_for_key (mask)", a), ("xxh64 % S (division)", b)] {
        let (lo, med, hi) = min_med_max(v);
        println!(
            "routing 10k_docs_s64_3nodes, {name}: {lo:.1} / {med:.1} / {hi:.1} µs ({clock}, min/med/max of 11)"
        );
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    // `cargo test --benches` runs each benchmark once as a smoke test; skip the A/B rounds
    // there and in criterion's profiling mode.
    let benching =
        args.iter().any(|a| a == "--bench") && !args.iter().any(|a| a == "--profile-time");
    let mut c = short().configure_from_args();
    routing(&mut c);
    if benching {
        on_cpu();
    }
    c.final_summary();
}
