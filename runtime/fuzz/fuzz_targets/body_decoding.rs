//! Fuzzes request-body decoding: `Content-Encoding` parsing, gzip/deflate/br decompression
//! under a cap (a decompression bomb stops at the cap, never allocates past it), and the JSON
//! body reading every JSON route shares. Nothing may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use miroir_runtime::http::decode::{decode, parse_codings};

const CAP: usize = 1 << 16;

fuzz_target!(|data: &[u8]| {
    let split = data.first().map_or(0, |b| *b as usize % (data.len() + 1));
    let (header, body) = data.split_at(split);
    if let Ok(codings) = parse_codings(header) {
        let mut current = body.to_vec();
        for coding in codings.into_iter().rev() {
            match decode(coding, &current, CAP) {
                Ok(out) => {
                    assert!(out.len() <= CAP, "decoded past the cap");
                    current = out;
                }
                Err(_) => break,
            }
        }
    }
    let _ = miroir_core::content_type::parse_json_body(Some(b"application/json"), body);
    let _ = miroir_core::content_type::json_content_type_error(Some(header));
});
