//! Fuzzes the data plane's request parsing (`runtime/src/http/parse.rs`) and the client's
//! response-head parser: nothing a peer sends may panic, and parsing a buffer incrementally
//! (as the server does, over reads) must agree with parsing it whole.
#![no_main]

use libfuzzer_sys::fuzz_target;
use miroir_runtime::http::client::parse_response_head;
use miroir_runtime::http::parse::{parse_request, ChunkedDecoder, HeadScanner, Limits};

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        max_body_bytes: 1 << 16,
        ..Limits::default()
    };

    // Pipelined requests, whole-buffer.
    let mut at = 0;
    while at < data.len() {
        match parse_request(&data[at..], &limits) {
            Ok(Some((_, body, used))) => {
                assert!(used > 0 && at + used <= data.len());
                assert!(body.len() as u64 <= limits.max_body_bytes);
                at += used;
            }
            _ => break,
        }
    }

    // The head scanner over two reads agrees with one scan of the whole buffer.
    let split = data.first().map_or(0, |b| *b as usize % (data.len() + 1));
    let whole = HeadScanner::new().find_end(data, &limits);
    let mut inc = HeadScanner::new();
    let incremental = match inc.find_end(&data[..split], &limits) {
        Ok(Some(n)) => Ok(Some(n)),
        Ok(None) => inc.find_end(data, &limits),
        Err(e) => Err(e),
    };
    assert_eq!(whole, incremental);

    // The chunked decoder over two feeds agrees with one feed.
    let mut out1 = Vec::new();
    let one = ChunkedDecoder::new().feed(data, &mut out1, 1 << 16);
    let mut dec = ChunkedDecoder::new();
    let mut out2 = Vec::new();
    let two = match dec.feed(&data[..split], &mut out2, 1 << 16) {
        Ok((n, true)) => Ok((n, true)),
        Ok((n, false)) => dec
            .feed(&data[n..], &mut out2, 1 << 16)
            .map(|(m, d)| (n + m, d)),
        Err(e) => Err(e),
    };
    assert_eq!(one, two);
    if one.is_ok() {
        assert_eq!(out1, out2);
    }

    let _ = parse_response_head(data, false, 1 << 16);
});
