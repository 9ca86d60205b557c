//! Tenant tokens as a client application signs them.

use serde_json::Value;

/// An HS256 tenant token (JWT) over `payload`, signed with an API key's value.
pub fn tenant_token(api_key: &str, payload: &Value) -> String {
    use hmac::{KeyInit, Mac};
    let h = b64url(br#"{"alg":"HS256","typ":"JWT"}"#);
    let p = b64url(payload.to_string().as_bytes());
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(api_key.as_bytes())
        .expect("HMAC takes keys of any length");
    mac.update(format!("{h}.{p}").as_bytes());
    format!("{h}.{p}.{}", b64url(&mac.finalize().into_bytes()))
}

/// Unpadded base64url (RFC 4648 §5), as JWTs use. A test-side encoder on purpose: tokens made
/// here must not share code with the verifiers under test.
fn b64url(data: &[u8]) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, &b)| acc | (u32::from(b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn b64url_matches_rfc4648_vectors_without_padding() {
        for (input, want) in [
            ("", ""),
            ("f", "Zg"),
            ("fo", "Zm8"),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg"),
            ("fooba", "Zm9vYmE"),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(super::b64url(input.as_bytes()), want);
        }
        assert_eq!(super::b64url(&[0xfb, 0xff]), "-_8");
    }
}
