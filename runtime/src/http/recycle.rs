//! Per-core recycling of body buffers.
//!
//! A search at K=3 passes four 64 KiB buffers per request: each node answer arrives in (and
//! stays in) its connection's read buffer ([`super::body`]), and the merged answer is built
//! in one. Allocated and freed per request, such buffers cost allocator slow paths (glibc's
//! `malloc_consolidate` was 1.4 % of the data plane's CPU in the session-6 profile) and, once
//! an allocator returns their pages, page faults to touch them again. Here a read answer's
//! buffer and a written response's buffer go back to their core ([`give`]) and the next
//! read or merge takes one ([`take`]), so in steady state they are allocated once per core.
//!
//! Buffers never leave their core (monoio is thread-per-core; this is a `thread_local`).
//! What is kept is bounded by count and bytes, and outsized buffers (a 100 MiB document
//! fetch) are freed as before. A buffer that is not handed back is simply freed by its
//! owner: recycling is an optimisation, never an obligation.

use std::cell::RefCell;

/// Smaller requests and buffers bypass the free list: small allocations come from the
/// allocator's per-thread free lists at no cost worth saving.
const MIN_CAPACITY: usize = 4 * 1024;
/// Larger buffers are freed, not kept: one huge answer must not pin memory on a core.
const MAX_CAPACITY: usize = 256 * 1024;
/// At most this many bytes of capacity are kept per core. Node answers arrive in the
/// connections' 64 KiB read buffers ([`super::body`]), so a search passes four such buffers
/// through here at K=3; 32 concurrent searches swing the free list by ~128 of them, and a
/// smaller cap freed buffers only to allocate them again a moment later (seen as
/// `malloc_consolidate` under load). A burst of large answers still does not stay resident.
const MAX_KEPT_BYTES: usize = 8 * 1024 * 1024;

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
