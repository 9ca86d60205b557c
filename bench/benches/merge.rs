//! Merge micro-benchmark (docs/benchmarks.md#workload-merge): K = 3 shard responses × H = 20 / 100 / 1000
//! hits of realistic ~1 KiB hit bodies, merged into the global top H, fast merge
//! (`miroir_merge::merge_search`) vs the naive `serde_json::Value` merge
//! (`miroir_merge::reference::merge_search`). Targets: 3×1000 ≤ 100 µs and ≥ 10× faster.
//! The fast merge also runs with its SIMD hit scan off (`Level::Scalar`, the scalar scanner
//! alone, as on CPUs without SSE2/AVX2/AVX-512BW), to show what the SIMD path buys.
//!
//! Two parts, both in one run:
//! 1. criterion groups `merge/3xH` with `fast`, `fast_scalar` and `naive` (short measurement
//!    settings);
//! 2. an interleaved A/B run (docs/benchmarks.md#rules: fast, scalar, naive, fast, scalar, naive,
//!    … over ≥ 5 rounds) printing min/median/max of each and of the ratio fast ÷ naive. When
//!    `MIROIR_BENCH_JSON=<path>` is set, those rows are written there in the
//!    `bench/results/<workload>.json` row format (plus the scalar median).
//!
//! Run: `cargo bench -p miroir-bench --bench merge` (add `-- --quick` for the short version).

use criterion::{BenchmarkId, Criterion, Throughput};
use miroir_merge::samples::body;
use miroir_merge::{
    merge_search, merge_search_with_level, reference, Bump, FacetOrder, Level, Pagination,
    SearchMergeRequest, ShardInput,
};
use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

const K: usize = 3;
const SIZES: [usize; 3] = [20, 100, 1000];

struct Case {
    name: String,
    bodies: Vec<Vec<u8>>,
    sort: bool,
    limit: usize,
}

fn cases() -> Vec<Case> {
    let mut v: Vec<Case> = SIZES
        .iter()
        .map(|&h| Case {
            name: format!("{K}x{h}"),
            bodies: (0..K).map(|s| body(s, h, false)).collect(),
            sort: false,
            limit: h,
        })
        .collect();
    v.push(Case {
        name: format!("{K}x1000_sort"),
        bodies: (0..K).map(|s| body(s, 1000, true)).collect(),
        sort: true,
        limit: 1000,
    });
    v
}

fn request<'a>(c: &Case, by: &'a BTreeMap<String, FacetOrder>) -> SearchMergeRequest<'a> {
    SearchMergeRequest {
        pagination: Pagination::OffsetLimit {
            offset: 0,
            limit: c.limit,
        },
        sort_requested: c.sort,
        want_ranking_score: false,
        want_ranking_score_details: false,
        max_values_per_facet: 100,
        sort_facet_values_by: by,
        max_total_hits: 1000,
        reserved_prefix: "_miroir_",
        query: None,
        distinct: None,
        drop: &[],
    }
}

fn inputs(c: &Case) -> Vec<ShardInput<'_>> {
    c.bodies.iter().map(|b| ShardInput::Ok(b)).collect()
}

/// One fast merge with a reused arena and output buffer (as the data plane runs it).
fn run_fast(req: &SearchMergeRequest, shards: &[ShardInput], arena: &mut Bump, out: &mut Vec<u8>) {
    out.clear();
    arena.reset();
    merge_search(req, shards, arena, out).expect("valid bodies");
    black_box(&out);
}

/// [`run_fast`] with the SIMD hit scan off.
fn run_scalar(
    req: &SearchMergeRequest,
    shards: &[ShardInput],
    arena: &mut Bump,
    out: &mut Vec<u8>,
) {
    out.clear();
    arena.reset();
    merge_search_with_level(req, shards, arena, out, Level::Scalar).expect("valid bodies");
    black_box(&out);
}

fn run_naive(req: &SearchMergeRequest, shards: &[ShardInput]) {
    black_box(reference::merge_search(req, shards).expect("valid bodies"));
}

fn criterion_part(c: &mut Criterion) {
    let by = BTreeMap::new();
    for case in cases() {
        let req = request(&case, &by);
        let shards = inputs(&case);
        let bytes: usize = case.bodies.iter().map(Vec::len).sum();
        let mut g = c.benchmark_group("merge");
        g.throughput(Throughput::Bytes(bytes as u64));
        let mut arena = Bump::new();
        let mut out = Vec::new();
        g.bench_function(BenchmarkId::new("fast", &case.name), |b| {
            b.iter(|| run_fast(&req, &shards, &mut arena, &mut out))
        });
        g.bench_function(BenchmarkId::new("fast_scalar", &case.name), |b| {
            b.iter(|| run_scalar(&req, &shards, &mut arena, &mut out))
        });
        g.bench_function(BenchmarkId::new("naive", &case.name), |b| {
            b.iter(|| run_naive(&req, &shards))
        });
        g.finish();
    }
}

/// On-CPU time of this thread in ns (`/proc/thread-self/schedstat`, first field), so that
/// the A/B numbers mean something on a shared, oversubscribed machine; `None` elsewhere.
fn thread_cpu_ns() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    s.split_whitespace().next()?.parse().ok()
}

/// Mean µs per run over one batch of `n` runs: thread CPU time when available (wall time
/// otherwise; see [`thread_cpu_ns`]).
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

/// How many runs of `f` take about `budget_us` of wall time (measured over ≥ 20 ms).
fn runs_for(budget_us: f64, mut f: impl FnMut()) -> usize {
    let t = Instant::now();
    let mut n = 0usize;
    while t.elapsed() < Duration::from_millis(20) {
        f();
        n += 1;
    }
    let per_run = t.elapsed().as_secs_f64() * 1e6 / n as f64;
    ((budget_us / per_run) as usize).max(3)
}

fn stats(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    (v[0], v[v.len() / 2], v[v.len() - 1])
}

/// Interleaved A/B rounds; prints a table and optionally writes JSON rows.
fn interleaved(quick: bool) {
    let rounds = if quick { 5 } else { 11 };
    let by = BTreeMap::new();
    let mut rows = Vec::new();
    println!(
        "\nmerge, interleaved A/B ({rounds} rounds; {} µs per merge; fast = hit scan at SIMD level \
         {:?}, scalar = SIMD off; ratio = fast ÷ naive)",
        if thread_cpu_ns().is_some() {
            "on-CPU"
        } else {
            "wall-clock"
        },
        miroir_merge::scan::simd::detected()
    );
    println!(
        "{:<14} {:>26} {:>26} {:>30} {:>26}",
        "case", "fast min/med/max", "scalar min/med/max", "naive min/med/max", "ratio min/med/max"
    );
    for case in cases() {
        let req = request(&case, &by);
        let shards = inputs(&case);
        let mut arena = Bump::new();
        let mut out = Vec::new();
        // Batches of ~100 ms of CPU (the schedstat clock may lag by a scheduler tick), sized
        // from a wall-clock probe (an upper bound of CPU time, so batches are never huge).
        let n_naive = runs_for(100_000.0, || run_naive(&req, &shards));
        let n_fast = runs_for(100_000.0, || run_fast(&req, &shards, &mut arena, &mut out));
        let n_scalar = runs_for(100_000.0, || {
            run_scalar(&req, &shards, &mut arena, &mut out)
        });
        let (mut fast, mut scalar, mut naive, mut ratio) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for _ in 0..rounds {
            let f = time_us(n_fast, || run_fast(&req, &shards, &mut arena, &mut out));
            let s = time_us(n_scalar, || run_scalar(&req, &shards, &mut arena, &mut out));
            let n = time_us(n_naive, || run_naive(&req, &shards));
            fast.push(f);
            scalar.push(s);
            naive.push(n);
            ratio.push(f / n);
        }
        // Context: copying the merged body's bytes once (a floor no merge can beat).
        run_fast(&req, &shards, &mut arena, &mut out);
        let mut copy = Vec::with_capacity(out.len());
        let n_copy = runs_for(20_000.0, || {
            copy.clear();
            copy.extend_from_slice(black_box(&out));
        });
        let floor = time_us(n_copy, || {
            copy.clear();
            copy.extend_from_slice(black_box(&out));
        });
        println!(
            "{:<14} output {} KiB, input {} KiB, memcpy of the output {:.1} µs",
            case.name,
            out.len() / 1024,
            case.bodies.iter().map(Vec::len).sum::<usize>() / 1024,
            floor
        );
        let (f, s, n, r) = (stats(fast), stats(scalar), stats(naive), stats(ratio));
        println!(
            "{:<14} {:>8.1} {:>8.1} {:>8.1} {:>8.1} {:>8.1} {:>8.1}   {:>9.1} {:>9.1} {:>9.1}   {:>7.4} {:>7.4} {:>7.4}",
            case.name, f.0, f.1, f.2, s.0, s.1, s.2, n.0, n.1, n.2, r.0, r.1, r.2
        );
        rows.push(format!(
            r#"{{"case":"{}","metric":"median_us","miroir":{:.2},"miroir_scalar":{:.2},"comparison_name":"naive serde_json merge","comparison":{:.2},"ratio":{:.5},"ratio_min":{:.5},"ratio_max":{:.5},"rounds":{rounds}}}"#,
            case.name, f.1, s.1, n.1, r.1, r.0, r.2
        ));
    }
    if let Ok(path) = std::env::var("MIROIR_BENCH_JSON") {
        let body = format!("[{}]\n", rows.join(",\n"));
        if let Err(e) = std::fs::write(&path, body) {
            eprintln!("cannot write {path}: {e}");
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    // `--profile-time` (criterion's profiling mode) runs only the selected benchmark.
    let benching =
        args.iter().any(|a| a == "--bench") && !args.iter().any(|a| a == "--profile-time");
    let mut c = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(if quick { 1 } else { 2 }))
        .configure_from_args();
    criterion_part(&mut c);
    // `cargo test --benches` runs each benchmark once as a smoke test; skip the A/B rounds.
    if benching {
        interleaved(quick);
    }
    c.final_summary();
}
