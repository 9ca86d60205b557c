//! Small JSON helpers that keep the original bytes and member order.
//!
//! Meilisearch returns document fields in its own order, so a response is never re-serialised
//! through a `serde_json::Map` (a `BTreeMap` here: it would sort keys). Instead objects are
//! read as ordered `(key, raw value)` pairs and written back from the original value bytes.

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::fmt;

pub use miroir_core::documents::RESERVED_PREFIX;

/// A JSON object as ordered `(key, raw value)` pairs borrowing the input.
///
/// `RawValue` needs serde_json's `raw_value` feature, which `miroir-core` enables (one feature
/// set per build, so it is on wherever this crate builds).
#[derive(Debug)]
pub struct OrderedObject<'a>(pub Vec<(Cow<'a, str>, &'a RawValue)>);

impl<'de: 'a, 'a> Deserialize<'de> for OrderedObject<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = OrderedObject<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<M: MapAccess<'de>>(self, mut m: M) -> Result<Self::Value, M::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = m.next_entry::<Cow<'de, str>, &'de RawValue>()? {
                    out.push((k, v));
                }
                Ok(OrderedObject(out))
            }
        }
        d.deserialize_map(V(std::marker::PhantomData))
    }
}

impl<'a> OrderedObject<'a> {
    pub fn parse(bytes: &'a [u8]) -> Option<OrderedObject<'a>> {
        serde_json::from_slice(bytes).ok()
    }

    pub fn get(&self, key: &str) -> Option<&'a RawValue> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| *v)
    }

    /// Writes the object back, leaving out members for which `drop` is true.
    pub fn write_without(&self, out: &mut Vec<u8>, drop: impl Fn(&str) -> bool) {
        out.push(b'{');
        let mut first = true;
        for (k, v) in &self.0 {
            if drop(k) {
                continue;
            }
            if !first {
                out.push(b',');
            }
            first = false;
            serde_json::to_writer(&mut *out, k.as_ref()).expect("writing a str to a Vec");
            out.push(b':');
            out.extend_from_slice(v.get().as_bytes());
        }
        out.push(b'}');
    }
}

/// Removes reserved top-level members from a document object, keeping everything else
/// byte-for-byte. `None` when `bytes` is not a JSON object.
pub fn strip_reserved_document(bytes: &[u8]) -> Option<Vec<u8>> {
    let obj = OrderedObject::parse(bytes)?;
    let mut out = Vec::with_capacity(bytes.len());
    obj.write_without(&mut out, |k| k.starts_with(RESERVED_PREFIX));
    Some(out)
}

/// Prefixes a Meilisearch error body's `message` (e.g. ``Inside `.queries[1]`: ``), keeping
/// the other members. Returns the body unchanged when it is not an error object.
pub fn prefix_error_message(body: &[u8], prefix: &str) -> Vec<u8> {
    let Some(obj) = OrderedObject::parse(body) else {
        return body.to_vec();
    };
    let Some(msg) = obj
        .get("message")
        .and_then(|m| serde_json::from_str::<String>(m.get()).ok())
    else {
        return body.to_vec();
    };
    let mut out = Vec::with_capacity(body.len() + prefix.len());
    out.push(b'{');
    for (i, (k, v)) in obj.0.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        serde_json::to_writer(&mut out, k.as_ref()).expect("writing a str to a Vec");
        out.push(b':');
        if k == "message" {
            serde_json::to_writer(&mut out, &format!("{prefix}{msg}")).expect("str to Vec");
        } else {
            out.extend_from_slice(v.get().as_bytes());
        }
    }
    out.push(b'}');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_reserved_keeps_order_and_bytes() {
        let doc = br#"{"z":1,"id":"a\"b","_miroir_shard":7,"nested":{"_miroir_x":1},"a":[1.50]}"#;
        let out = strip_reserved_document(doc).unwrap();
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            r#"{"z":1,"id":"a\"b","nested":{"_miroir_x":1},"a":[1.50]}"#
        );
        assert!(strip_reserved_document(b"[1]").is_none());
        assert!(strip_reserved_document(b"{").is_none());
    }

    #[test]
    fn escaped_keys_round_trip() {
        let doc = br#"{"a\nb":1}"#;
        assert_eq!(strip_reserved_document(doc).unwrap(), doc.to_vec());
    }

    #[test]
    fn error_prefix() {
        let body = br#"{"message":"Index `x` not found.","code":"index_not_found","type":"invalid_request","link":"l"}"#;
        let out = prefix_error_message(body, "Inside `.queries[1]`: ");
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["message"], "Inside `.queries[1]`: Index `x` not found.");
        assert_eq!(v["code"], "index_not_found");
        assert!(std::str::from_utf8(&out)
            .unwrap()
            .starts_with(r#"{"message""#));
        assert_eq!(prefix_error_message(b"oops", "p"), b"oops".to_vec());
    }
}
