//! `loadgen` — the HTTP/1.1 load generator of `bench/run`.
//!
//! Two modes, both over keep-alive connections, one OS thread per connection (the generator
//! must not share a reactor with what it measures, and threads keep it obviously correct):
//!
//! - **open loop** (`--rate R`): requests are *scheduled* at a fixed rate, spread evenly over
//!   the connections; latency is measured from each request's scheduled start, not from when
//!   it was actually sent, so a stalled server is charged for the requests it delayed
//!   (coordinated-omission correction, as wrk2 does).
//! - **closed loop** (no `--rate`): every connection sends its next request as soon as the
//!   previous answer arrived; reports the maximum throughput.
//!
//! Output: one JSON object on stdout (`achieved_rps`, `p50_us` … `p999_us`, `errors`, and
//! `requests_total`: every answer of the run, warm-up included).
//!
//! `--bodies-file F` (one JSON body per line) sends varied requests: each connection goes
//! through the bodies in turn, starting at its own offset.
//!
//! `--also-url U` (repeatable) makes every request a client-side fan-out: the same body goes
//! to `--url` and to each `--also-url` (one keep-alive connection to each per connection
//! thread), all written before any answer is read, and the request is done when every target
//! answered. This is the floor a scatter-gather proxy is compared with: a client asking the
//! shard nodes itself.

use hdrhistogram::Histogram;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One server a request goes to.
struct Target {
    addr: SocketAddr,
    host: String,
    path: String,
}

struct Args {
    /// `--url` first, then every `--also-url`.
    targets: Vec<Target>,
    method: String,
    bodies: Vec<Vec<u8>>,
    headers: Vec<String>,
    connections: usize,
    duration: Duration,
    warmup: Duration,
    rate: Option<f64>,
    pin: Option<usize>,
}

fn usage() -> ! {
    eprintln!(
        "usage: loadgen --url http://HOST:PORT/PATH [--method POST] [--body-file F | \
         --bodies-file F] [--header 'K: V']... [--connections N] [--duration SECS] \
         [--warmup SECS] [--rate RPS] [--pin CORE] [--also-url URL]..."
    );
    std::process::exit(2)
}

fn parse_args() -> Args {
    let mut it = std::env::args().skip(1);
    let (mut url, mut method, mut bodies, mut headers) =
        (None, "GET".to_string(), vec![Vec::new()], Vec::new());
    let mut also: Vec<String> = Vec::new();
    let (mut connections, mut duration, mut warmup, mut rate, mut pin) =
        (16, 10.0, 1.0, None, None);
    while let Some(a) = it.next() {
        let mut v = || it.next().unwrap_or_else(|| usage());
        match a.as_str() {
            "--url" => url = Some(v()),
            "--also-url" => also.push(v()),
            "--method" => method = v(),
            "--body-file" => bodies = vec![std::fs::read(v()).expect("reading --body-file")],
            "--bodies-file" => {
                let text = std::fs::read_to_string(v()).expect("reading --bodies-file");
                bodies = text
                    .lines()
                    .filter(|l| !l.trim().is_empty())
                    .map(|l| l.as_bytes().to_vec())
                    .collect();
                if bodies.is_empty() {
                    usage();
                }
            }
            "--body" => bodies = vec![v().into_bytes()],
            "--header" => headers.push(v()),
            "--connections" => connections = v().parse().unwrap_or_else(|_| usage()),
            "--duration" => duration = v().parse().unwrap_or_else(|_| usage()),
            "--warmup" => warmup = v().parse().unwrap_or_else(|_| usage()),
            "--rate" => rate = Some(v().parse().unwrap_or_else(|_| usage())),
            "--pin" => pin = Some(v().parse().unwrap_or_else(|_| usage())),
            _ => usage(),
        }
    }
    let url = url.unwrap_or_else(|| usage());
    let targets = std::iter::once(url.as_str())
        .chain(also.iter().map(String::as_str))
        .map(target)
        .collect();
    Args {
        targets,
        method,
        bodies,
        headers,
        connections,
        duration: Duration::from_secs_f64(duration),
        warmup: Duration::from_secs_f64(warmup),
        rate,
        pin,
    }
}

fn target(url: &str) -> Target {
    let rest = url.strip_prefix("http://").unwrap_or_else(|| usage());
    let (hostport, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let addr = hostport
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .unwrap_or_else(|| usage());
    Target {
        addr,
        host: hostport.to_string(),
        path: path.to_string(),
    }
}

fn request_bytes(a: &Args, t: &Target, body: &[u8]) -> Vec<u8> {
    let mut r = format!("{} {} HTTP/1.1\r\nHost: {}\r\n", a.method, t.path, t.host);
    for h in &a.headers {
        r.push_str(h);
        r.push_str("\r\n");
    }
    if !body.is_empty() || a.method != "GET" {
        r.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    r.push_str("\r\n");
    let mut b = r.into_bytes();
    b.extend_from_slice(body);
    b
}

/// Reads one response; returns its status. Handles Content-Length and chunked bodies.
fn read_response(
    r: &mut BufReader<TcpStream>,
    line: &mut String,
    sink: &mut Vec<u8>,
) -> std::io::Result<u16> {
    let bad = || std::io::Error::new(std::io::ErrorKind::InvalidData, "bad response");
    line.clear();
    if r.read_line(line)? == 0 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "closed",
        ));
    }
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(bad)?;
    let (mut len, mut chunked) = (0usize, false);
    loop {
        line.clear();
        r.read_line(line)?;
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((n, v)) = l.split_once(':') {
            if n.eq_ignore_ascii_case("content-length") {
                len = v.trim().parse().map_err(|_| bad())?;
            } else if n.eq_ignore_ascii_case("transfer-encoding")
                && v.trim().eq_ignore_ascii_case("chunked")
            {
                chunked = true;
            }
        }
    }
    if chunked {
        loop {
            line.clear();
            r.read_line(line)?;
            let n = usize::from_str_radix(line.trim(), 16).map_err(|_| bad())?;
            sink.resize(n + 2, 0);
            r.read_exact(sink)?;
            if n == 0 {
                break;
            }
        }
    } else {
        sink.resize(len, 0);
        r.read_exact(sink)?;
    }
    Ok(status)
}

fn is_closed(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        UnexpectedEof | ConnectionReset | BrokenPipe | ConnectionAborted
    )
}

struct Outcome {
    hist: Histogram<u64>,
    ok: u64,
    errors: u64,
    /// Every answer received, warm-up included (what the server did during the whole run).
    answered: u64,
}

/// A keep-alive connection to one target and the answers it served.
struct Conn {
    w: TcpStream,
    r: BufReader<TcpStream>,
    served: u64,
}

fn connect(t: &Target) -> std::io::Result<Conn> {
    let s = TcpStream::connect(t.addr)?;
    s.set_nodelay(true).ok();
    s.set_read_timeout(Some(Duration::from_secs(30))).ok();
    let r = BufReader::with_capacity(64 * 1024, s.try_clone()?);
    Ok(Conn { w: s, r, served: 0 })
}

/// Sends one request to every target (all written before any answer is read) and returns the
/// worst status. A server may close an idle keep-alive connection between requests (nginx
/// after `keepalive_requests`); that is not a failed request: that target is reconnected and
/// asked once more.
fn exchange(
    a: &Args,
    conns: &mut [Option<Conn>],
    reqs: &[Vec<u8>],
    line: &mut String,
    sink: &mut Vec<u8>,
) -> std::io::Result<u16> {
    let mut written = vec![false; conns.len()];
    for (i, slot) in conns.iter_mut().enumerate() {
        if slot.is_none() {
            *slot = Some(connect(&a.targets[i])?);
        }
        let c = slot.as_mut().unwrap();
        written[i] = c.w.write_all(&reqs[i]).is_ok();
    }
    let mut worst = 0u16;
    for (i, slot) in conns.iter_mut().enumerate() {
        let c = slot.as_mut().unwrap();
        let first = if written[i] {
            read_response(&mut c.r, line, sink)
        } else {
            Err(std::io::Error::new(std::io::ErrorKind::BrokenPipe, "write"))
        };
        let status = match first {
            Ok(s) => s,
            Err(e) if c.served > 0 && is_closed(&e) => {
                let mut fresh = connect(&a.targets[i])?;
                fresh.w.write_all(&reqs[i])?;
                let s = read_response(&mut fresh.r, line, sink)?;
                *c = fresh;
                s
            }
            Err(e) => {
                *slot = None;
                return Err(e);
            }
        };
        c.served += 1;
        worst = worst.max(status);
    }
    Ok(worst)
}

fn connection(
    a: Arc<Args>,
    reqs: Arc<Vec<Vec<Vec<u8>>>>,
    idx: usize,
    start: Instant,
    measure_from: Instant,
    stop: Arc<AtomicBool>,
) -> Outcome {
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
    let (mut ok, mut errors, mut answered) = (0u64, 0u64, 0u64);
    let mut conns: Vec<Option<Conn>> = a.targets.iter().map(|_| None).collect();
    let (mut line, mut sink) = (String::new(), Vec::new());
    // Open loop: this connection's share of the rate, phase-shifted so connections interleave.
    let interval = a
        .rate
        .map(|r| Duration::from_secs_f64(a.connections as f64 / r));
    let mut k: u32 = 0;
    let mut next = idx;
    while !stop.load(Ordering::Relaxed) {
        let req = &reqs[next % reqs.len()];
        next += 1;
        let intended = match interval {
            Some(iv) => {
                let t = start + iv.mul_f64(k as f64 + idx as f64 / a.connections as f64);
                k += 1;
                let now = Instant::now();
                if t > now {
                    std::thread::sleep(t - now);
                }
                t
            }
            None => Instant::now(),
        };
        let res = exchange(&a, &mut conns, req, &mut line, &mut sink);
        let done = Instant::now();
        answered += u64::from(res.is_ok());
        match res {
            Ok(status) if status < 400 => {
                if intended >= measure_from {
                    ok += 1;
                    hist.saturating_record(done.duration_since(intended).as_micros() as u64);
                }
            }
            Ok(_) => errors += 1,
            Err(_) => {
                errors += 1;
                conns.iter_mut().for_each(|c| *c = None);
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
    Outcome {
        hist,
        ok,
        errors,
        answered,
    }
}

fn main() {
    let a = Arc::new(parse_args());
    let reqs = Arc::new(
        a.bodies
            .iter()
            .map(|b| {
                a.targets
                    .iter()
                    .map(|t| request_bytes(&a, t, b))
                    .collect::<Vec<_>>()
            })
            .collect::<Vec<_>>(),
    );
    if let Some(core) = a.pin {
        if let Some(id) =
            core_affinity::get_core_ids().and_then(|ids| ids.into_iter().find(|c| c.id == core))
        {
            core_affinity::set_for_current(id);
        }
    }
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let measure_from = start + a.warmup;
    let threads: Vec<_> = (0..a.connections)
        .map(|i| {
            let (a, reqs, stop) = (a.clone(), reqs.clone(), stop.clone());
            let pin = a.pin;
            std::thread::spawn(move || {
                if let Some(core) = pin {
                    if let Some(id) = core_affinity::get_core_ids()
                        .and_then(|ids| ids.into_iter().find(|c| c.id == core))
                    {
                        core_affinity::set_for_current(id);
                    }
                }
                connection(a, reqs, i, start, measure_from, stop)
            })
        })
        .collect();
    std::thread::sleep(a.warmup + a.duration);
    stop.store(true, Ordering::Relaxed);
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
    let (mut ok, mut errors, mut answered) = (0, 0, 0);
    for t in threads {
        let o = t.join().expect("connection thread");
        hist.add(&o.hist).unwrap();
        ok += o.ok;
        errors += o.errors;
        answered += o.answered;
    }
    let secs = a.duration.as_secs_f64();
    let q = |p: f64| hist.value_at_quantile(p) as f64;
    let out = serde_json::json!({
        "mode": if a.rate.is_some() { "open" } else { "closed" },
        "target_rps": a.rate,
        "connections": a.connections,
        "duration_s": secs,
        "requests": ok,
        "errors": errors,
        // Warm-up included: divide a server's CPU time over the whole run by this.
        "requests_total": answered,
        "achieved_rps": ok as f64 / secs,
        "p50_us": q(0.5), "p90_us": q(0.9), "p99_us": q(0.99), "p999_us": q(0.999),
        "max_us": hist.max() as f64,
    });
    println!("{out}");
}
