//! Content fingerprints of document sets, for comparing two copies of a shard without moving
//! the documents (the rebalancer's verify step, anti-entropy; docs/architecture.md#fingerprints).
//!
//! A document's *digest* is the xxh64 of its canonical JSON: object keys sorted at every
//! depth, no whitespace, numbers and strings as serde_json writes them, and the top-level
//! reserved fields (`_miroir_*`) left out — they are Miroir's bookkeeping, not content, and a
//! copy written by another path may carry them differently. `_vectors` is content and counts.
//!
//! A set's [`Fingerprint`] combines `(id, digest)` pairs with two commutative operations
//! (wrapping sum and xor of a per-pair hash) plus the count, so it does not depend on the order
//! a node lists its documents in, and two fingerprints of disjoint sets merge by addition.
//! Equal fingerprints mean equal sets with overwhelming probability; unequal ones are narrowed
//! down with [`bucket_of`]: the same id falls in the same bucket on every copy, so only the
//! buckets whose fingerprints differ need their ids compared.

use crate::documents::RESERVED_PREFIX;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use xxhash_rust::xxh64::xxh64;

/// Seed of the per-pair hash (any constant other than routing's seed 0 keeps the two
/// independent).
const PAIR_SEED: u64 = 0x6d69_726f_6972_6670; // "miroirfp"
/// Seed of the bucket hash, independent of both the shard hash and the pair hash.
const BUCKET_SEED: u64 = 0x6d69_726f_6972_626b; // "miroirbk"

/// Order-independent summary of a set of documents.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Fingerprint {
    pub count: u64,
    pub sum: u64,
    pub xor: u64,
}

impl Fingerprint {
    /// Adds one document, given its canonical id and its [`document_digest`].
    pub fn add(&mut self, canonical_id: &str, digest: u64) {
        let pair = pair_hash(canonical_id, digest);
        self.count += 1;
        self.sum = self.sum.wrapping_add(pair);
        self.xor ^= pair;
    }

    /// The fingerprint of the union of two disjoint sets.
    pub fn merge(&mut self, other: &Fingerprint) {
        self.count += other.count;
        self.sum = self.sum.wrapping_add(other.sum);
        self.xor ^= other.xor;
    }

    /// The fingerprint of a set of `(canonical id, digest)` pairs.
    pub fn of<'a>(pairs: impl IntoIterator<Item = (&'a str, u64)>) -> Fingerprint {
        let mut f = Fingerprint::default();
        for (id, d) in pairs {
            f.add(id, d);
        }
        f
    }
}

fn pair_hash(canonical_id: &str, digest: u64) -> u64 {
    let mut buf = Vec::with_capacity(canonical_id.len() + 8);
    buf.extend_from_slice(canonical_id.as_bytes());
    buf.extend_from_slice(&digest.to_le_bytes());
    xxh64(&buf, PAIR_SEED)
}

/// The digest of one document (see the module docs for what is hashed).
pub fn document_digest(doc: &Map<String, Value>) -> u64 {
    let mut out = Vec::with_capacity(256);
    write_object(doc, true, &mut out);
    xxh64(&out, 0)
}

/// The bucket (of `buckets`) a document id falls in, the same on every copy.
pub fn bucket_of(canonical_id: &str, buckets: u32) -> u32 {
    (xxh64(canonical_id.as_bytes(), BUCKET_SEED) % u64::from(buckets.max(1))) as u32
}

fn write_object(map: &Map<String, Value>, top_level: bool, out: &mut Vec<u8>) {
    let mut keys: Vec<&String> = map
        .keys()
        .filter(|k| !(top_level && k.starts_with(RESERVED_PREFIX)))
        .collect();
    keys.sort_unstable();
    out.push(b'{');
    for (i, k) in keys.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_string(k, out);
        out.push(b':');
        write_value(&map[k.as_str()], out);
    }
    out.push(b'}');
}

fn write_value(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Object(m) => write_object(m, false, out),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(item, out);
            }
            out.push(b']');
        }
        Value::String(s) => write_string(s, out),
        other => out.extend_from_slice(other.to_string().as_bytes()),
    }
}

fn write_string(s: &str, out: &mut Vec<u8>) {
    out.extend_from_slice(
        serde_json::to_string(s)
            .expect("a string serialises")
            .as_bytes(),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn digest_ignores_key_order_and_reserved_fields_only_at_top_level() {
        let a = obj(json!({"id": 1, "t": "x", "n": {"b": 1, "a": [1, {"z": 0, "y": 2}]}}));
        let b = obj(
            json!({"n": {"a": [1, {"y": 2, "z": 0}], "b": 1}, "_miroir_shard": "#", "t": "x", "id": 1}),
        );
        assert_eq!(document_digest(&a), document_digest(&b));
        let c = obj(
            json!({"id": 1, "t": "x", "n": {"b": 1, "a": [1, {"z": 0, "y": 2}]}, "m": {"_miroir_x": 1}}),
        );
        assert_ne!(document_digest(&a), document_digest(&c));
    }

    #[test]
    fn digest_sees_vectors_and_array_order() {
        let a = obj(json!({"id": 1, "_vectors": {"e": [0.5, 1.0]}}));
        let b = obj(json!({"id": 1, "_vectors": {"e": [1.0, 0.5]}}));
        assert_ne!(document_digest(&a), document_digest(&b));
    }

    proptest! {
        #[test]
        fn fingerprint_is_order_independent_and_merges(
            docs in proptest::collection::btree_map("[a-z0-9]{1,8}", any::<u64>(), 0..40),
            split in 0usize..40,
        ) {
            let pairs: Vec<(&str, u64)> = docs.iter().map(|(k, v)| (k.as_str(), *v)).collect();
            let whole = Fingerprint::of(pairs.iter().copied());
            let reversed = Fingerprint::of(pairs.iter().rev().copied());
            prop_assert_eq!(whole, reversed);
            let cut = split.min(pairs.len());
            let mut left = Fingerprint::of(pairs[..cut].iter().copied());
            left.merge(&Fingerprint::of(pairs[cut..].iter().copied()));
            prop_assert_eq!(whole, left);
        }

        #[test]
        fn one_changed_digest_changes_the_fingerprint(
            docs in proptest::collection::btree_map("[a-z0-9]{1,8}", any::<u64>(), 1..40),
            delta in 1u64..,
        ) {
            let pairs: Vec<(&str, u64)> = docs.iter().map(|(k, v)| (k.as_str(), *v)).collect();
            let mut changed = pairs.clone();
            changed[0].1 = changed[0].1.wrapping_add(delta);
            prop_assert_ne!(Fingerprint::of(pairs), Fingerprint::of(changed));
        }

        #[test]
        fn buckets_are_in_range(id in "[ -~]{0,20}", buckets in 1u32..512) {
            prop_assert!(bucket_of(&id, buckets) < buckets);
        }
    }
}
