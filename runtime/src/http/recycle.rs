//! Per-core recycling of body buffers.
//!
//! A search at K=1 allocated two ~20 KiB buffers per request (the node's answer, the merged
//! answer) and freed them a few microseconds later. glibc serves such sizes from the main
//! heap, and every allocation of that size first runs `malloc_consolidate` over the small
//! chunks freed meanwhile (1.4 % of the data plane's CPU in the session-6 profile, plus
//! `_int_malloc`/`_int_free` on the large chunks). Here the transport hands a written
//! response body back to its core ([`give`]) and the client takes one for the next node
//! answer ([`take`]), so in steady state the large buffers are allocated once per core.
//!
//! Buffers never leave their core (monoio is thread-per-core; this is a `thread_local`).
//! What is kept is bounded by count and bytes, and outsized buffers (a 100 MiB document
//! fetch) are freed as before. A buffer that is not handed back is simply freed by its
//! owner: recycling is an optimisation, never an obligation.

use std::cell::RefCell;

/// Smaller requests and buffers bypass the free list: small allocations come from glibc's
/// per-thread cache at no cost worth saving.
const MIN_CAPACITY: usize = 4 * 1024;
/// Larger buffers are freed, not kept: one huge answer must not pin memory on a core.
const MAX_CAPACITY: usize = 256 * 1024;
/// At most this many bytes of capacity are kept per core (32 connections × K bodies of
/// ~20 KiB in flight fit, a burst of large answers does not stay resident).
const MAX_KEPT_BYTES: usize = 2 * 1024 * 1024;

#[derive(Default)]
struct Free {
    bufs: Vec<Vec<u8>>,
    bytes: usize,
}

thread_local! {
    static FREE: RefCell<Free> = RefCell::new(Free::default());
}

/// An empty buffer with at least `capacity` bytes of capacity, reused when one is free.
pub fn take(capacity: usize) -> Vec<u8> {
    if capacity < MIN_CAPACITY {
        return Vec::with_capacity(capacity);
    }
    let reused = FREE.with(|f| {
        let mut f = f.borrow_mut();
        let b = f.bufs.pop()?;
        f.bytes -= b.capacity();
        Some(b)
    });
    match reused {
        Some(mut b) => {
            // Same-sized answers are the common case; a larger one grows this buffer once.
            b.reserve(capacity);
            b
        }
        None => Vec::with_capacity(capacity),
    }
}

/// Hands a buffer that is no longer needed back to this core's free list (or frees it).
pub fn give(mut buf: Vec<u8>) {
    let cap = buf.capacity();
    if !(MIN_CAPACITY..=MAX_CAPACITY).contains(&cap) {
        return;
    }
    buf.clear();
    FREE.with(|f| {
        let mut f = f.borrow_mut();
        if f.bytes + cap <= MAX_KEPT_BYTES {
            f.bytes += cap;
            f.bufs.push(buf);
        }
    });
}

/// glibc's allocator thresholds for the data plane, set once at start (before the reactors).
///
/// By default glibc serves allocations above a *dynamic* threshold (128 KiB at start) with
/// `mmap` and returns a freed heap top above 128 KiB to the kernel. A brotli-compressed
/// answer allocates ~300 KiB of encoder tables per response and frees them at once, so
/// depending on the heap's state every such response mapped and faulted those pages in
/// again: 75–87 page faults and ~210 µs of CPU per `br` response, against ~90 µs and no
/// faults when the memory stays in the heap (docs/benchmarks.md, the `br` row). Fixed values
/// (1 MiB, 8 MiB) keep per-request buffers in the heap; larger blocks are still mapped and
/// returned, and at most 8 MiB of freed heap top stays with each arena. An operator's own
/// `GLIBC_TUNABLES` malloc settings take precedence (nothing is set then).
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        if std::env::var("GLIBC_TUNABLES").is_ok_and(|t| t.contains("glibc.malloc.")) {
            return;
        }
        // SAFETY: plain libc calls with valid parameters, made before other threads allocate.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
            libc::mallopt(libc::M_TRIM_THRESHOLD, 8 << 20);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reuses_buffers_within_bounds() {
        let b = take(20_000);
        assert!(b.capacity() >= 20_000);
        let ptr = b.as_ptr();
        let mut b = b;
        b.extend_from_slice(b"data");
        give(b);
        let again = take(10_000);
        assert_eq!(again.as_ptr(), ptr, "the freed buffer is reused");
        assert!(again.is_empty());
        let bigger = {
            give(again);
            take(100_000)
        };
        assert!(bigger.capacity() >= 100_000 && bigger.is_empty());

        // Small and outsized buffers are not kept.
        give(Vec::with_capacity(16));
        give(Vec::with_capacity(MAX_CAPACITY + 1));
        FREE.with(|f| assert!(f.borrow().bufs.is_empty()));

        // The byte bound holds.
        for _ in 0..(MAX_KEPT_BYTES / MAX_CAPACITY + 4) {
            give(Vec::with_capacity(MAX_CAPACITY));
        }
        FREE.with(|f| {
            let f = f.borrow();
            assert!(f.bytes <= MAX_KEPT_BYTES);
            assert_eq!(f.bytes, f.bufs.iter().map(Vec::capacity).sum::<usize>());
        });
    }
}
