//! Response compression for clients that send `Accept-Encoding`, as Meilisearch 1.50 does
//! (actix-web's `Compress` middleware): `br`, `gzip` and `deflate` (no `zstd`), chosen by the
//! highest `q`, ties going to `br`, then `gzip`, then `deflate`; `identity`, `*` and unknown
//! codings leave the body as is. Every non-empty body is compressed whatever its size (a
//! 20-byte `/health` answer too), except `204`/`206` and a body that already carries a
//! `content-encoding`. The compressed response says `content-encoding` and
//! `vary: accept-encoding`. Levels are actix's: gzip/deflate "fast" (1), brotli quality 3
//! (its window is sized to the body instead of actix's fixed 22 bits: same output size for
//! a body that fits the smaller window, about a fifth of the CPU for a 20 KiB answer). Decision record: docs/decisions/033-response-compression.md.
//!
//! Cost (docs/benchmarks.md#compression): tens of microseconds per 20 KiB search answer, so
//! bodies of at least [`OFFLOAD_AT_BYTES`] are compressed on the reactor's blocking pool.

use crate::http::types::Response;
use std::io::Write;

/// Bodies at least this large are compressed off the reactor (same threshold as the proxy's
/// batch preparation: below it a thread hand-off costs more than the work).
pub const OFFLOAD_AT_BYTES: usize = 256 * 1024;

/// A content coding Miroir produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coding {
    Br,
    Gzip,
    Deflate,
}

impl Coding {
    pub fn token(self) -> &'static str {
        match self {
            Coding::Br => "br",
            Coding::Gzip => "gzip",
            Coding::Deflate => "deflate",
        }
    }

    /// Tie-break among equal `q` values (higher wins), actix's order.
    fn rank(self) -> u8 {
        match self {
            Coding::Br => 3,
            Coding::Gzip => 2,
            Coding::Deflate => 1,
        }
    }
}

/// The coding to answer with for an `Accept-Encoding` value, or `None` (send as is).
pub fn negotiate(accept: &[u8]) -> Option<Coding> {
    let mut best: Option<(u16, Coding)> = None;
    for item in accept.split(|&b| b == b',') {
        let mut parts = item.split(|&b| b == b';');
        let name = parts.next().unwrap_or_default().trim_ascii();
        let coding = if name.eq_ignore_ascii_case(b"br") {
            Coding::Br
        } else if name.eq_ignore_ascii_case(b"gzip") {
            Coding::Gzip
        } else if name.eq_ignore_ascii_case(b"deflate") {
            Coding::Deflate
        } else {
            continue;
        };
        let mut q = 1000;
        for p in parts {
            let p = p.trim_ascii();
            if p.len() >= 2 && p[..2].eq_ignore_ascii_case(b"q=") {
                match parse_q(&p[2..]) {
                    Some(v) => q = v,
                    None => q = 0,
                }
            }
        }
        if q == 0 {
            continue;
        }
        let better = match best {
            None => true,
            Some((bq, bc)) => q > bq || (q == bq && coding.rank() > bc.rank()),
        };
        if better {
            best = Some((q, coding));
        }
    }
    best.map(|(_, c)| c)
}

/// An RFC 9110 qvalue (`0`, `0.5`, `1.000`) in thousandths; `None` when malformed.
fn parse_q(v: &[u8]) -> Option<u16> {
    let s = std::str::from_utf8(v).ok()?.trim();
    let f: f32 = s.parse().ok()?;
    (0.0..=1.0)
        .contains(&f)
        .then(|| (f * 1000.0).round() as u16)
}

/// Whether `resp` gets compressed at all (see the module docs).
fn applies(resp: &Response) -> bool {
    !resp.body.is_empty()
        && !matches!(resp.status, 204 | 206)
        && !resp.headers.iter().any(|(n, _)| n == "content-encoding")
}

/// `body` encoded with `coding`.
pub fn encode(coding: Coding, body: &[u8]) -> Vec<u8> {
    // Compressed JSON is typically 5-20 % of its size.
    let out = Vec::with_capacity(body.len() / 4 + 64);
    match coding {
        Coding::Gzip => {
            let mut e = flate2::write::GzEncoder::new(out, flate2::Compression::fast());
            e.write_all(body).expect("writing to a Vec cannot fail");
            e.finish().expect("writing to a Vec cannot fail")
        }
        Coding::Deflate => {
            let mut e = flate2::write::ZlibEncoder::new(out, flate2::Compression::fast());
            e.write_all(body).expect("writing to a Vec cannot fail");
            e.finish().expect("writing to a Vec cannot fail")
        }
        Coding::Br => {
            // Window no larger than the body: brotli allocates and clears the whole window
            // per stream: actix's fixed 2^22 (4 MiB) cost ~0.45 ms for a 20 KiB answer.
            let mut e = brotli::CompressorWriter::new(out, 32 * 1024, 3, br_window(body.len()));
            e.write_all(body).expect("writing to a Vec cannot fail");
            e.into_inner()
        }
    }
}

/// Brotli window bits for a body of `len` bytes: the smallest window holding it, within
/// brotli's 10..=22 (a larger window finds nothing more in a body that fits a smaller one).
fn br_window(len: usize) -> u32 {
    let bits = usize::BITS - len.saturating_sub(1).leading_zeros();
    bits.clamp(10, 22)
}

/// Compresses `resp` with `coding` when it applies; large bodies on the blocking pool.
pub async fn compress(coding: Coding, mut resp: Response) -> Response {
    if !applies(&resp) {
        return resp;
    }
    let body = std::mem::take(&mut resp.body);
    resp.body = if body.len() >= OFFLOAD_AT_BYTES {
        match monoio::spawn_blocking(move || encode(coding, &body)).await {
            Ok(b) => b.into(),
            // The pool is gone (shutdown): the body went with it; answer uncompressed is
            // impossible, so say the server is going away.
            Err(_) => {
                let e = miroir_core::MeiliError::new(
                    miroir_core::ErrorCode::Unavailable,
                    "The server is shutting down; the request was not processed.",
                );
                return Response::json(e.status(), e.to_body());
            }
        }
    } else {
        encode(coding, &body).into()
    };
    resp.headers.push((
        "content-encoding".into(),
        coding.token().as_bytes().to_vec(),
    ));
    resp.headers
        .push(("vary".into(), b"accept-encoding".to_vec()));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn negotiation_follows_meilisearch() {
        // Each case checked against Meilisearch 1.50's answers.
        let cases: &[(&str, Option<Coding>)] = &[
            ("gzip", Some(Coding::Gzip)),
            ("br", Some(Coding::Br)),
            ("deflate", Some(Coding::Deflate)),
            ("zstd", None),
            ("gzip, br, zstd", Some(Coding::Br)),
            ("deflate, gzip", Some(Coding::Gzip)),
            ("gzip, deflate", Some(Coding::Gzip)),
            ("br;q=0.5, gzip", Some(Coding::Gzip)),
            ("br;q=0.9, gzip;q=1", Some(Coding::Gzip)),
            ("GZIP", Some(Coding::Gzip)),
            ("gzip;q=0", None),
            ("identity", None),
            ("*", None),
            ("x-gzip", None),
            ("", None),
        ];
        for (accept, want) in cases {
            assert_eq!(negotiate(accept.as_bytes()), *want, "{accept:?}");
        }
    }

    fn decode(coding: Coding, b: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        match coding {
            Coding::Gzip => flate2::read::GzDecoder::new(b).read_to_end(&mut out),
            Coding::Deflate => flate2::read::ZlibDecoder::new(b).read_to_end(&mut out),
            Coding::Br => brotli_decompressor::Decompressor::new(b, 4096).read_to_end(&mut out),
        }
        .unwrap();
        out
    }

    #[test]
    fn every_coding_round_trips_and_marks_the_response() {
        let body: Vec<u8> = br#"{"hits":[{"id":1,"title":"Movie"}],"query":"movie"}"#
            .iter()
            .copied()
            .cycle()
            .take(5000)
            .collect();
        for coding in [Coding::Br, Coding::Gzip, Coding::Deflate] {
            let resp = Response::json(200, body.clone());
            let out = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
                .build()
                .unwrap()
                .block_on(compress(coding, resp));
            assert!(out.body.len() < body.len() / 4, "{coding:?} compresses");
            assert_eq!(decode(coding, &out.body), body, "{coding:?}");
            assert!(out
                .headers
                .iter()
                .any(|(n, v)| n == "content-encoding" && v == coding.token().as_bytes()));
            assert!(out
                .headers
                .iter()
                .any(|(n, v)| n == "vary" && v == b"accept-encoding"));
        }
    }

    #[test]
    fn brotli_window_fits_the_body() {
        assert_eq!(br_window(0), 10);
        assert_eq!(br_window(1000), 10);
        assert_eq!(br_window(20_000), 15);
        assert_eq!(br_window(32_768), 15);
        assert_eq!(br_window(32_769), 16);
        assert_eq!(br_window(100 << 20), 22);
    }

    #[test]
    fn empty_no_content_and_already_encoded_bodies_are_left_alone() {
        let rt = || {
            monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
                .build()
                .unwrap()
        };
        let empty = rt().block_on(compress(Coding::Gzip, Response::json(200, Vec::new())));
        assert!(empty.headers.iter().all(|(n, _)| n != "content-encoding"));
        let no_content = Response {
            status: 204,
            headers: Vec::new(),
            body: b"x".into(),
        };
        let no_content = rt().block_on(compress(Coding::Gzip, no_content));
        assert_eq!(no_content.body, b"x");
        let mut encoded = Response::json(200, b"abc".to_vec());
        encoded
            .headers
            .push(("content-encoding".into(), b"br".to_vec()));
        let encoded = rt().block_on(compress(Coding::Gzip, encoded));
        assert_eq!(encoded.body, b"abc");
    }
}
