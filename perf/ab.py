#!/usr/bin/env python3
"""perf/ab.py DIR_A DIR_B [ROUNDS] [SECONDS] — A/B of two Miroir builds on the proxy-overhead load.

DIR_A and DIR_B each hold a `miroir` and a `miroir-dataplane` binary (e.g. copies of
target/release from two commits). Starts `bench/run proxy-overhead`'s canned test nodes and
nginx, one deployment of each build per K (K = 1 and 3, or `KS=1,3,8`), and runs, per round
and K, nginx → A → B (alternating which build goes first every round) with the same load
generator settings as the bench. Prints each server's CPU time per request (process group
utime + stime ÷ requests answered) and the medians, with B ÷ A per round, so a change is
judged on CPU per request measured in the same conditions (docs/benchmarks.md#proxy-cpu).
Needs target/release/{miroir-testnode,loadgen} (`cargo build --release -p miroir-testnode -p
miroir-bench --bins`).

MALLOCS=1 adds one more run per build and K that counts the server's `malloc` calls per
answered request with a uprobe (`perf probe -x <libc> --add malloc` once, as root; the probe
slows the process, so that run's CPU is not reported).
"""
import importlib.machinery
import importlib.util
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
loader = importlib.machinery.SourceFileLoader("bench_run", os.path.join(ROOT, "bench", "run"))
spec = importlib.util.spec_from_loader("bench_run", loader)
bench = importlib.util.module_from_spec(spec)
loader.exec_module(bench)


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    dirs = {"A": os.path.abspath(sys.argv[1]), "B": os.path.abspath(sys.argv[2])}
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 5
    duration = float(sys.argv[4]) if len(sys.argv) > 4 else 2
    warmup = 0.5
    ks = [int(k) for k in os.environ.get("KS", "1,3").split(",")]
    rel = bench.REL
    server_core, client_core = (0, 1) if (os.cpu_count() or 1) >= 2 else (None, None)
    procs = bench.Procs()
    tmp = tempfile.mkdtemp(prefix="miroir-ab-")
    cpu = {(v, k): [] for v in dirs for k in ks}
    nginx_cpu = []
    mallocs = {}
    try:
        canned = os.path.join(tmp, "canned.json")
        with open(canned, "w") as f:
            json.dump(bench.canned_response(), f, separators=(",", ":"))
        body = os.path.join(tmp, "query.json")
        with open(body, "w") as f:
            json.dump({"q": "movie", "limit": 20}, f)
        node_ports = [bench.free_port() for _ in range(max(ks))]
        for p in node_ports:
            procs.start([os.path.join(rel, "miroir-testnode"), "--http-addr", f"127.0.0.1:{p}",
                         "--master-key", bench.MASTER, "--canned-search", canned], core=server_core)
        for p in node_ports:
            bench.wait_http(f"http://127.0.0.1:{p}/health")
        nginx_port = bench.free_port()
        nginx = procs.start(["nginx", "-c", bench.nginx_conf(tmp, nginx_port, node_ports[0])], core=server_core)
        bench.wait_http(f"http://127.0.0.1:{nginx_port}/health")
        deployments = {}
        for v, d in dirs.items():
            for k in ks:
                bench.REL = d
                try:
                    port = bench.start_miroir(procs, tmp, f"{v}-k{k}", node_ports[:k], server_core, "auto",
                                              f"movies_{v.lower()}{k}")
                finally:
                    bench.REL = rel
                deployments[(v, k)] = (procs.procs[-1].pid, port)
        url = lambda v, k: f"http://127.0.0.1:{deployments[(v, k)][1]}/indexes/movies_{v.lower()}{k}/search"
        for r in range(rounds):
            n = bench.loadgen_cpu(nginx.pid, f"http://127.0.0.1:{nginx_port}/indexes/x/search", body, 32,
                                  duration, warmup, core=client_core)
            nginx_cpu.append(n["cpu_us_per_request"])
            order = ["A", "B"] if r % 2 == 0 else ["B", "A"]
            for k in ks:
                for v in order:
                    m = bench.loadgen_cpu(deployments[(v, k)][0], url(v, k), body, 32, duration, warmup,
                                          core=client_core)
                    cpu[(v, k)].append(m["cpu_us_per_request"])
            print(f"round {r}: nginx {n['cpu_us_per_request']:.1f} us; " + "; ".join(
                f"K={k} A {cpu[('A', k)][-1]:.1f} B {cpu[('B', k)][-1]:.1f} us" for k in ks), flush=True)
        if os.environ.get("MALLOCS") == "1":
            for k in ks:
                for v in dirs:
                    pgid, _ = deployments[(v, k)]
                    mallocs[(v, k)] = count_mallocs(pgid, lambda: bench.loadgen(
                        url(v, k), body, 32, duration, warmup, core=client_core))
    finally:
        procs.stop_all()
        shutil.rmtree(tmp, ignore_errors=True)
    for (v, k), m in sorted(mallocs.items(), key=lambda x: (x[0][1], x[0][0])):
        print(f"K={k} {v}: {m:.1f} malloc calls per request")
    print(f"\nCPU per request, median of {rounds} rounds (µs); nginx K=1 {statistics.median(nginx_cpu):.1f}")
    for k in ks:
        a, b = cpu[("A", k)], cpu[("B", k)]
        ratios = sorted(y / x for x, y in zip(a, b))
        print(f"K={k}: A {statistics.median(a):.1f}  B {statistics.median(b):.1f}  "
              f"B/A median {statistics.median(ratios):.3f} [{ratios[0]:.3f}, {ratios[-1]:.3f}]  "
              f"A/nginx {statistics.median(a) / statistics.median(nginx_cpu):.2f}  "
              f"B/nginx {statistics.median(b) / statistics.median(nginx_cpu):.2f}")


def count_mallocs(pgid, run):
    """`malloc` calls of the process group `pgid` per request answered by `run()` (a loadgen)."""
    pids = subprocess.check_output(["ps", "-o", "pid=", "-g", str(pgid)], text=True).split()
    out = os.path.join(tempfile.mkdtemp(prefix="miroir-mallocs-"), "stat.csv")
    perf = subprocess.Popen(["perf", "stat", "-x", ",", "-o", out, "-e", "probe_libc:malloc", "-p",
                             ",".join(pids)])
    try:
        res = run()
    finally:
        perf.send_signal(2)
        perf.wait()
    with open(out) as f:
        rows = [line.split(",") for line in f if line.strip() and not line.startswith("#")]
    calls = float(next(r[0] for r in rows if "malloc" in ",".join(r)))
    return calls / max(1, res["requests_total"])


if __name__ == "__main__":
    main()
