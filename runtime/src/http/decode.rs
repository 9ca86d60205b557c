//! Request-body decompression (`Content-Encoding: gzip | deflate | br`) for the routes that
//! parse bodies (document writes). Pass-through routes relay bodies untouched and never call
//! this.
//!
//! The decompressed size is capped (zip bombs): decoding stops one byte past the cap and the
//! request is answered 413 `payload_too_large`, as an oversized plain body would be.
//!
//! ASSUMPTIONS (Meilisearch compatibility, not verified against a live node): Meilisearch
//! accepts gzip, deflate and br request bodies (documented). For an unsupported coding
//! (e.g. `zstd`) Miroir answers 400 `bad_request` naming the coding, and for a body that does
//! not decompress, 400 `malformed_payload`; the exact codes a node gives there are unverified.

use crate::http::types::Request;
use miroir_core::{ErrorCode, MeiliError};
use std::borrow::Cow;
use std::io::Read;

/// One content coding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coding {
    Gzip,
    /// zlib-wrapped (RFC 1950) per HTTP; raw deflate is accepted too (some clients send it).
    Deflate,
    Brotli,
}

/// Parses a `Content-Encoding` value into the codings applied, in application order.
/// `identity` entries are skipped.
pub fn parse_codings(value: &[u8]) -> Result<Vec<Coding>, MeiliError> {
    let mut out = Vec::new();
    for token in value.split(|&b| b == b',') {
        let t = String::from_utf8_lossy(token);
        let t = t.trim();
        match t.to_ascii_lowercase().as_str() {
            "" | "identity" => {}
            "gzip" | "x-gzip" => out.push(Coding::Gzip),
            "deflate" => out.push(Coding::Deflate),
            "br" => out.push(Coding::Brotli),
            other => {
                return Err(MeiliError::new(
                    ErrorCode::BadRequest,
                    format!("Unsupported Content-Encoding `{other}`: use gzip, deflate or br."),
                ))
            }
        }
    }
    if out.len() > 3 {
        return Err(MeiliError::new(
            ErrorCode::BadRequest,
            "Too many stacked Content-Encodings.",
        ));
    }
    Ok(out)
}

fn too_large(max: usize) -> MeiliError {
    crate::http::parse::ParseError::PayloadTooLarge { limit: max as u64 }.to_meili()
}

fn malformed(coding: Coding, e: std::io::Error) -> MeiliError {
    MeiliError::new(
        ErrorCode::MalformedPayload,
        format!("The request body could not be decompressed ({coding:?}): {e}."),
    )
}

/// Reads `r` to the end, failing once more than `max` bytes come out.
fn read_capped(r: impl Read, max: usize, coding: Coding) -> Result<Vec<u8>, MeiliError> {
    let mut out = Vec::new();
    r.take(max as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| malformed(coding, e))?;
    if out.len() > max {
        return Err(too_large(max));
    }
    Ok(out)
}

/// Decodes `data` compressed with `coding`, producing at most `max` bytes.
pub fn decode(coding: Coding, data: &[u8], max: usize) -> Result<Vec<u8>, MeiliError> {
    match coding {
        Coding::Gzip => read_capped(flate2::read::MultiGzDecoder::new(data), max, coding),
        Coding::Deflate => {
            // A zlib stream starts with CMF/FLG where (CMF*256 + FLG) % 31 == 0 and CM == 8.
            let zlib = data.len() >= 2
                && data[0] & 0x0f == 8
                && (u16::from(data[0]) << 8 | u16::from(data[1])) % 31 == 0;
            if zlib {
                read_capped(flate2::read::ZlibDecoder::new(data), max, coding)
            } else {
                read_capped(flate2::read::DeflateDecoder::new(data), max, coding)
            }
        }
        Coding::Brotli => read_capped(
            brotli_decompressor::Decompressor::new(data, 4096),
            max,
            coding,
        ),
    }
}

impl Request {
    /// The body with its `Content-Encoding` removed, at most `max` bytes (borrowed when the
    /// body is not encoded).
    pub fn decoded_body(&self, max: usize) -> Result<Cow<'_, [u8]>, MeiliError> {
        let codings = match self.header("content-encoding") {
            Some(v) => parse_codings(v)?,
            None => Vec::new(),
        };
        if codings.is_empty() {
            if self.body.len() > max {
                return Err(too_large(max));
            }
            return Ok(Cow::Borrowed(&self.body));
        }
        let mut data: Cow<'_, [u8]> = Cow::Borrowed(&self.body);
        // Codings are listed in the order they were applied: undo them last to first.
        for coding in codings.iter().rev() {
            data = Cow::Owned(decode(*coding, &data, max)?);
        }
        Ok(data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::types::Method;
    use std::io::Write;

    fn req(encoding: Option<&str>, body: Vec<u8>) -> Request {
        let mut headers = Vec::new();
        if let Some(e) = encoding {
            headers.push(("content-encoding".to_string(), e.as_bytes().to_vec()));
        }
        Request {
            method: Method::Post,
            path: "/".into(),
            query: String::new(),
            headers,
            body,
        }
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn plain_bodies_are_borrowed() {
        let r = req(None, b"[1]".to_vec());
        assert!(matches!(r.decoded_body(10).unwrap(), Cow::Borrowed(b"[1]")));
        assert_eq!(
            r.decoded_body(2).unwrap_err().code,
            ErrorCode::PayloadTooLarge
        );
        assert_eq!(
            req(Some("identity"), b"x".to_vec())
                .decoded_body(10)
                .unwrap()
                .as_ref(),
            b"x"
        );
    }

    #[test]
    fn gzip_deflate_and_raw_deflate() {
        let doc = br#"[{"id":1,"title":"hello"}]"#;
        assert_eq!(
            req(Some("gzip"), gzip(doc))
                .decoded_body(1000)
                .unwrap()
                .as_ref(),
            doc
        );
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(doc).unwrap();
        assert_eq!(
            req(Some("deflate"), z.finish().unwrap())
                .decoded_body(1000)
                .unwrap()
                .as_ref(),
            doc
        );
        let mut d = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        d.write_all(doc).unwrap();
        assert_eq!(
            req(Some("Deflate"), d.finish().unwrap())
                .decoded_body(1000)
                .unwrap()
                .as_ref(),
            doc
        );
    }

    #[test]
    fn brotli() {
        // "hello" compressed with brotli (quality 11), produced by `brotli -c`.
        let br = [0x0b, 0x02, 0x80, 0x68, 0x65, 0x6c, 0x6c, 0x6f, 0x03];
        assert_eq!(
            req(Some("br"), br.to_vec())
                .decoded_body(100)
                .unwrap()
                .as_ref(),
            b"hello"
        );
        assert_eq!(
            req(Some("br"), b"not brotli".to_vec())
                .decoded_body(100)
                .unwrap_err()
                .code,
            ErrorCode::MalformedPayload
        );
    }

    #[test]
    fn bombs_hit_the_cap_and_garbage_is_malformed() {
        let bomb = gzip(&vec![b'a'; 1_000_000]);
        assert!(bomb.len() < 10_000);
        let e = req(Some("gzip"), bomb).decoded_body(4096).unwrap_err();
        assert_eq!((e.code, e.status()), (ErrorCode::PayloadTooLarge, 413));
        let e = req(Some("gzip"), b"definitely not gzip".to_vec())
            .decoded_body(4096)
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::MalformedPayload);
    }

    #[test]
    fn stacked_and_unknown_codings() {
        let twice = gzip(&gzip(b"x"));
        assert_eq!(
            req(Some("gzip, gzip"), twice)
                .decoded_body(100)
                .unwrap()
                .as_ref(),
            b"x"
        );
        assert_eq!(
            req(Some("zstd"), b"x".to_vec())
                .decoded_body(100)
                .unwrap_err()
                .code,
            ErrorCode::BadRequest
        );
    }
}
