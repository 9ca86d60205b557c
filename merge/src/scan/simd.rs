//! The crate's only `unsafe`: classifying 64-byte blocks of a body into two bitmasks, the
//! positions of `"` and of `\` (bit `j` of a block's mask = byte `j` of the block).
//!
//! Everything built on the masks (escape carry, string ends, escape validation, the hit walk)
//! is safe code in `scan::fast`. Here there are only loads and compares, in three x86-64
//! flavours picked at run time ([`detected`]): AVX-512BW (one 64-byte load, two compares into
//! mask registers), AVX2 (two 32-byte halves) and SSE2 (four 16-byte quarters; part of the
//! x86-64 baseline, so always available there). A body's last partial block is copied into a
//! zero-padded stack buffer first, so no load ever reads past the slice (zero bytes match
//! neither `"` nor `\`). Other architectures get [`Level::Scalar`]: the fast path is off and
//! the scalar scanner does all the work.
//!
//! `MIROIR_MERGE_SCALAR=1` in the environment (read once) forces [`Level::Scalar`], to compare
//! or to rule out the SIMD path in production.

use std::sync::OnceLock;

/// Which block classifier to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// No SIMD classifier: hits are scanned by the scalar scanner only.
    Scalar,
    /// 16-byte compares (x86-64 baseline).
    Sse2,
    /// 32-byte compares.
    Avx2,
    /// 64-byte compares into mask registers (AVX-512BW).
    Avx512,
}

/// Blocks classified per call (1 KiB: about one Meilisearch hit).
pub const BATCH: usize = 16;

/// The best level this CPU supports, or [`Level::Scalar`] when `MIROIR_MERGE_SCALAR` is set to
/// anything but `0` or empty. Detected once per process.
pub fn detected() -> Level {
    static LEVEL: OnceLock<Level> = OnceLock::new();
    *LEVEL.get_or_init(|| {
        let off =
            std::env::var_os("MIROIR_MERGE_SCALAR").is_some_and(|v| !v.is_empty() && v != "0");
        if off {
            Level::Scalar
        } else {
            best()
        }
    })
}

/// Every level this CPU can run, scalar first (the tests compare them all).
pub fn available() -> Vec<Level> {
    #[allow(unused_mut)] // only x86-64 adds levels
    let mut v = vec![Level::Scalar];
    #[cfg(target_arch = "x86_64")]
    {
        v.push(Level::Sse2);
        if std::is_x86_feature_detected!("avx2") {
            v.push(Level::Avx2);
        }
        if std::is_x86_feature_detected!("avx512bw") {
            v.push(Level::Avx512);
        }
    }
    v
}

fn best() -> Level {
    *available().last().unwrap_or(&Level::Scalar)
}

/// Classifies up to [`BATCH`] consecutive 64-byte blocks of `buf` starting at byte `start`;
/// returns how many blocks were written (0 when `start` is past the end). Bits for bytes past
/// the end of `buf` are 0.
///
/// Every level gives the same masks. A level this CPU lacks (not in [`available`]) runs as
/// SSE2; [`Level::Scalar`] runs the portable loop (the tests' oracle), as does every level off
/// x86-64.
pub fn classify(
    level: Level,
    buf: &[u8],
    start: usize,
    quotes: &mut [u64; BATCH],
    backslashes: &mut [u64; BATCH],
) -> usize {
    if start >= buf.len() {
        return 0;
    }
    let blocks = (buf.len() - start).div_ceil(64).min(BATCH);
    let full = ((buf.len() - start) / 64).min(blocks);
    let at = |j: usize| start + 64 * j;
    // Full blocks straight from `buf`.
    #[cfg(target_arch = "x86_64")]
    {
        let avail = available_cached();
        match level {
            Level::Avx512 if avail.avx512 => {
                // SAFETY: avx512bw was detected on this CPU; `full` counts whole blocks, so
                // `start + 64 * full <= buf.len()`.
                unsafe { x86::avx512(buf, start, full, quotes, backslashes) }
            }
            Level::Avx2 if avail.avx2 => {
                // SAFETY: avx2 was detected on this CPU; `start + 64 * full <= buf.len()`.
                unsafe { x86::avx2(buf, start, full, quotes, backslashes) }
            }
            Level::Sse2 | Level::Avx2 | Level::Avx512 => {
                for j in 0..full {
                    (quotes[j], backslashes[j]) = x86::sse2(buf, at(j));
                }
            }
            Level::Scalar => {
                for j in 0..full {
                    (quotes[j], backslashes[j]) = portable(&buf[at(j)..at(j) + 64]);
                }
            }
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = level;
        for j in 0..full {
            (quotes[j], backslashes[j]) = portable(&buf[at(j)..at(j) + 64]);
        }
    }
    // The last, partial block: a zero-padded copy (the classifier is not speed-critical for
    // one block, so the portable loop does).
    if full < blocks {
        let mut pad = [0u8; 64];
        let tail = &buf[at(full)..];
        pad[..tail.len()].copy_from_slice(tail);
        (quotes[full], backslashes[full]) = portable(&pad);
    }
    blocks
}

/// The portable classifier of one block (bytes past `block.len()` count as no match).
pub fn portable(block: &[u8]) -> (u64, u64) {
    let (mut q, mut b) = (0u64, 0u64);
    for (j, &c) in block.iter().take(64).enumerate() {
        q |= u64::from(c == b'"') << j;
        b |= u64::from(c == b'\\') << j;
    }
    (q, b)
}

#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
struct Avail {
    avx2: bool,
    avx512: bool,
}

/// Feature flags, so that a wrong `level` argument can never reach an unsupported instruction.
#[cfg(target_arch = "x86_64")]
fn available_cached() -> Avail {
    static AVAIL: OnceLock<Avail> = OnceLock::new();
    *AVAIL.get_or_init(|| Avail {
        avx2: std::is_x86_feature_detected!("avx2"),
        avx512: std::is_x86_feature_detected!("avx512bw"),
    })
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    /// Blocks `0..full` of `buf[start..]` with AVX-512BW (one load, two mask compares each).
    ///
    /// # Safety
    /// The CPU supports avx512bw, and `start + 64 * full <= buf.len()`.
    #[target_feature(enable = "avx512bw")]
    pub unsafe fn avx512(
        buf: &[u8],
        start: usize,
        full: usize,
        quotes: &mut [u64; super::BATCH],
        backslashes: &mut [u64; super::BATCH],
    ) {
        debug_assert!(start + 64 * full <= buf.len() && full <= super::BATCH);
        let (q, b) = (_mm512_set1_epi8(b'"' as i8), _mm512_set1_epi8(b'\\' as i8));
        for j in 0..full.min(super::BATCH) {
            // SAFETY: the caller guarantees 64 readable bytes at `start + 64 * j` for
            // j < full; loadu has no alignment requirement.
            let v = unsafe { _mm512_loadu_si512(buf.as_ptr().add(start + 64 * j).cast()) };
            quotes[j] = _mm512_cmpeq_epi8_mask(v, q);
            backslashes[j] = _mm512_cmpeq_epi8_mask(v, b);
        }
    }

    /// Blocks `0..full` of `buf[start..]` with AVX2 (two 32-byte halves each).
    ///
    /// # Safety
    /// The CPU supports avx2, and `start + 64 * full <= buf.len()`.
    #[target_feature(enable = "avx2")]
    pub unsafe fn avx2(
        buf: &[u8],
        start: usize,
        full: usize,
        quotes: &mut [u64; super::BATCH],
        backslashes: &mut [u64; super::BATCH],
    ) {
        debug_assert!(start + 64 * full <= buf.len() && full <= super::BATCH);
        let (q, b) = (_mm256_set1_epi8(b'"' as i8), _mm256_set1_epi8(b'\\' as i8));
        let m = |v, c| _mm256_movemask_epi8(_mm256_cmpeq_epi8(v, c)) as u32 as u64;
        for j in 0..full.min(super::BATCH) {
            // SAFETY: the caller guarantees 64 readable bytes at `start + 64 * j` for
            // j < full (two unaligned 32-byte loads).
            let (lo, hi) = unsafe {
                let p = buf.as_ptr().add(start + 64 * j);
                (
                    _mm256_loadu_si256(p.cast()),
                    _mm256_loadu_si256(p.add(32).cast()),
                )
            };
            quotes[j] = m(lo, q) | m(hi, q) << 32;
            backslashes[j] = m(lo, b) | m(hi, b) << 32;
        }
    }

    /// The block `buf[at..at + 64]` with SSE2 (four 16-byte quarters). SSE2 is part of the
    /// x86-64 baseline, so this needs no detection; the bounds are checked here.
    pub fn sse2(buf: &[u8], at: usize) -> (u64, u64) {
        let block: &[u8; 64] = buf[at..at + 64].try_into().expect("64 bytes");
        let (mut qm, mut bm) = (0u64, 0u64);
        for (i, quarter) in block.chunks_exact(16).enumerate() {
            // SAFETY: `quarter` is 16 readable bytes; SSE2 is always present on x86-64.
            let (q, b) = unsafe {
                let v = _mm_loadu_si128(quarter.as_ptr().cast());
                (
                    _mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8(b'"' as i8))),
                    _mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8(b'\\' as i8))),
                )
            };
            qm |= (q as u32 as u64) << (16 * i);
            bm |= (b as u32 as u64) << (16 * i);
        }
        (qm, bm)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every available level classifies like the portable loop, at every start offset (so
    /// full and partial blocks, and every alignment, are covered).
    #[test]
    fn levels_agree_with_the_portable_classifier() {
        let mut buf: Vec<u8> = (0..700u32)
            .map(|i| match (i * 37 + i / 7) % 11 {
                0 => b'"',
                1 => b'\\',
                2 => 0xE2,
                _ => b'a' + (i % 26) as u8,
            })
            .collect();
        buf[699] = b'"';
        for start in 0..buf.len() + 2 {
            let (mut wq, mut wb) = ([0; BATCH], [0; BATCH]);
            let want = classify(Level::Scalar, &buf, start, &mut wq, &mut wb);
            assert_eq!(
                want,
                buf.len().saturating_sub(start).div_ceil(64).min(BATCH)
            );
            for level in available() {
                let (mut q, mut b) = ([0; BATCH], [0; BATCH]);
                assert_eq!(classify(level, &buf, start, &mut q, &mut b), want);
                assert_eq!(
                    (q[..want].to_vec(), b[..want].to_vec()),
                    (wq[..want].to_vec(), wb[..want].to_vec()),
                    "{level:?} at {start}"
                );
            }
        }
    }

    #[test]
    fn portable_classifier_sets_the_right_bits() {
        let mut block = [b'x'; 64];
        block[0] = b'"';
        block[5] = b'\\';
        block[63] = b'"';
        assert_eq!(portable(&block), (1 | 1 << 63, 1 << 5));
        assert_eq!(portable(b"\\\""), (2, 1));
    }
}
