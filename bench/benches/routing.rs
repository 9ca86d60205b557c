//! Routing micro-benchmarks (BENCHMARKS.md §5): the per-batch cost of routing 10K documents
//! (S = 64, 3 nodes) and of building a search's covering set. Target: ≤ 100 µs per 10K docs.
//!
//! Run: `cargo bench -p miroir-bench --bench routing` (short measurement settings below, so it
//! is cheap enough to run on a shared machine).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use miroir_core::documents::{prepare_batch, BatchOptions, PayloadFormat};
use miroir_core::routing::{covering_set_available, shard_for_key, ShardMap};
use miroir_core::topology::{Node, NodeStatus, Topology};
use miroir_core::{GroupId, NodeId, ShardId};
use std::hint::black_box;
use std::time::Duration;

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

fn routing(c: &mut Criterion) {
    let topo = topology(1);
    let keys = keys();
    let mut g = c.benchmark_group("routing");
    g.throughput(Throughput::Elements(DOCS as u64));

    // What the data plane does per write batch: hash every key, then resolve the write
    // targets once per distinct shard and group them by node. The `ShardMap` is cached per
    // snapshot by the data plane, so it is built outside the measurement (and measured below).
    let map = ShardMap::new(&topo, SHARDS);
    g.bench_function("shard_for_key+write_targets/10k_docs_s64_3nodes", |b| {
        b.iter(|| {
            let mut per_shard = [0u32; SHARDS as usize];
            for k in &keys {
                per_shard[shard_for_key(black_box(k), SHARDS).0 as usize] += 1;
            }
            let present = (0..SHARDS)
                .filter(|&s| per_shard[s as usize] > 0)
                .map(ShardId);
            black_box(map.writes_by_node("movies", present, &[]))
        })
    });

    // The same with a target lookup per document (no grouping): shows the per-doc cost.
    g.bench_function("per_doc_owner_lookup/10k_docs_s64_3nodes", |b| {
        b.iter(|| {
            let mut n = 0usize;
            for k in &keys {
                let shard = shard_for_key(black_box(k), SHARDS);
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

criterion_group! {
    name = benches;
    config = short();
    targets = routing
}
criterion_main!(benches);
