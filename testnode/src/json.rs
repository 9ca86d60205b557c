//! An insertion-ordered JSON object for the places where Meilisearch's key order is part of
//! its observable behaviour: documents (fields come back in the index's field order),
//! `facetDistribution` (count-sorted facets), `_rankingScoreDetails` (ranking-rule order) and
//! task `details`.
//!
//! The workspace builds `serde_json` with `preserve_order` (so every `Value` map — nested
//! document objects included — keeps insertion order, as Meilisearch does); `Obj` remains the
//! explicit, cheap representation for the hot objects above (a `Vec`, no hashing), and it
//! documents where order is part of the contract.

use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use std::fmt;

/// A JSON object that keeps the order keys were inserted in.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Obj(pub Vec<(String, Value)>);

impl Obj {
    pub fn new() -> Self {
        Obj(Vec::new())
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// Sets `key`, keeping its position when it already exists (like an IndexMap).
    pub fn insert(&mut self, key: impl Into<String>, value: Value) {
        let key = key.into();
        match self.0.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => self.0.push((key, value)),
        }
    }

    /// Builder form of [`Obj::insert`].
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.insert(key, value.into());
        self
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|(k, _)| k.as_str())
    }

    /// Converts into a `serde_json::Value` (loses order; for assertions, not for output).
    #[cfg(test)]
    pub fn to_value(&self) -> Value {
        Value::Object(self.0.iter().cloned().collect())
    }

    /// Serialized bytes (order kept).
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Approximate serialized size, used for `rawDocumentDbSize`-like statistics.
    pub fn encoded_len(&self) -> usize {
        self.to_bytes().len()
    }
}

impl Serialize for Obj {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Obj {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Obj;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Obj, A::Error> {
                let mut out = Obj(Vec::with_capacity(a.size_hint().unwrap_or(8)));
                while let Some((k, v)) = a.next_entry::<String, Value>()? {
                    // Duplicate keys: last one wins, like serde_json.
                    out.insert(k, v);
                }
                Ok(out)
            }
        }
        d.deserialize_map(V)
    }
}

/// Either one object or an array of objects: the two JSON document payload forms.
#[derive(Debug)]
pub enum OneOrMany {
    One(Obj),
    Many(Vec<Obj>),
}

impl<'de> Deserialize<'de> for OneOrMany {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = OneOrMany;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a map or a sequence of maps")
            }
            fn visit_map<A: MapAccess<'de>>(self, a: A) -> Result<OneOrMany, A::Error> {
                Obj::deserialize(serde::de::value::MapAccessDeserializer::new(a))
                    .map(OneOrMany::One)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut a: A,
            ) -> Result<OneOrMany, A::Error> {
                let mut out = Vec::new();
                while let Some(o) = a.next_element::<Obj>()? {
                    out.push(o);
                }
                Ok(OneOrMany::Many(out))
            }
        }
        d.deserialize_any(V)
    }
}

/// All values reachable at a dotted path, Meilisearch-style: `a.b` reaches `{"a":{"b":1}}`,
/// `{"a.b":1}` and every element of arrays along the way (`{"a":[{"b":1},{"b":2}]}`).
pub fn values_at_path<'a>(doc: &'a Obj, path: &str, out: &mut Vec<&'a Value>) {
    for (k, v) in &doc.0 {
        descend(k, v, path, out);
    }
}

fn descend<'a>(key: &str, v: &'a Value, path: &str, out: &mut Vec<&'a Value>) {
    if key == path {
        push_flat(v, out);
    } else if let Some(rest) = path.strip_prefix(key).and_then(|r| r.strip_prefix('.')) {
        walk_rest(v, rest, out);
    }
}

fn walk_rest<'a>(v: &'a Value, rest: &str, out: &mut Vec<&'a Value>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                descend(k, v, rest, out);
            }
        }
        Value::Array(a) => {
            for e in a {
                walk_rest(e, rest, out);
            }
        }
        _ => {}
    }
}

fn push_flat<'a>(v: &'a Value, out: &mut Vec<&'a Value>) {
    match v {
        Value::Array(a) => {
            for e in a {
                // Nested arrays flatten; objects inside arrays are kept as values.
                if e.is_array() {
                    push_flat(e, out);
                } else {
                    out.push(e);
                }
            }
        }
        other => out.push(other),
    }
}

/// True when `attr` is selected by `pattern` (exact, nested under it, or `*`).
pub fn attr_matches(pattern: &str, attr: &str) -> bool {
    pattern == "*"
        || pattern == attr
        || (attr.len() > pattern.len()
            && attr.starts_with(pattern)
            && attr.as_bytes()[pattern.len()] == b'.')
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keeps_order_and_replaces_in_place() {
        let mut o: Obj = serde_json::from_str(r#"{"z":1,"a":2}"#).unwrap();
        o.insert("z", json!(3));
        o.insert("b", json!(4));
        assert_eq!(serde_json::to_string(&o).unwrap(), r#"{"z":3,"a":2,"b":4}"#);
    }

    #[test]
    fn nested_paths_reach_objects_arrays_and_dotted_keys() {
        let o: Obj =
            serde_json::from_str(r#"{"a":{"b":1},"a.b":2,"c":[{"d":3},{"d":[4,5]}],"e":[6,[7]]}"#)
                .unwrap();
        let mut out = Vec::new();
        values_at_path(&o, "a.b", &mut out);
        assert_eq!(out, vec![&json!(1), &json!(2)]);
        out.clear();
        values_at_path(&o, "c.d", &mut out);
        assert_eq!(out, vec![&json!(3), &json!(4), &json!(5)]);
        out.clear();
        values_at_path(&o, "e", &mut out);
        assert_eq!(out, vec![&json!(6), &json!(7)]);
    }

    #[test]
    fn attribute_patterns() {
        assert!(attr_matches("*", "x"));
        assert!(attr_matches("a", "a.b"));
        assert!(!attr_matches("a", "ab"));
        assert!(!attr_matches("a.b", "a"));
    }
}

/// Ordered output JSON: like `serde_json::Value` but objects keep insertion order at every
/// level. Responses whose nested key order matters (search hits, `_formatted`,
/// `_rankingScoreDetails`, `facetDistribution`) are built from it.
#[derive(Debug, Clone, PartialEq)]
pub enum Out {
    Val(Value),
    Obj(Vec<(String, Out)>),
    Arr(Vec<Out>),
}

impl Out {
    pub fn obj() -> Out {
        Out::Obj(Vec::new())
    }

    /// Appends (or replaces in place) a key of an object; no-op on other variants.
    pub fn push(&mut self, key: impl Into<String>, v: impl Into<Out>) {
        if let Out::Obj(o) = self {
            let key = key.into();
            let v = v.into();
            match o.iter_mut().find(|(k, _)| *k == key) {
                Some(slot) => slot.1 = v,
                None => o.push((key, v)),
            }
        }
    }

    pub fn with(mut self, key: &str, v: impl Into<Out>) -> Out {
        self.push(key, v);
        self
    }

    #[cfg(test)]
    pub fn get(&self, key: &str) -> Option<&Out> {
        match self {
            Out::Obj(o) => o.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// Keys of an object in order (empty for other variants).
    #[cfg(test)]
    pub fn keys(&self) -> Vec<&str> {
        match self {
            Out::Obj(o) => o.iter().map(|(k, _)| k.as_str()).collect(),
            _ => Vec::new(),
        }
    }

    pub fn to_value(&self) -> Value {
        match self {
            Out::Val(v) => v.clone(),
            Out::Arr(a) => Value::Array(a.iter().map(Out::to_value).collect()),
            Out::Obj(o) => {
                Value::Object(o.iter().map(|(k, v)| (k.clone(), v.to_value())).collect())
            }
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

impl From<Value> for Out {
    fn from(v: Value) -> Out {
        Out::Val(v)
    }
}

impl From<Obj> for Out {
    fn from(o: Obj) -> Out {
        Out::Obj(o.0.into_iter().map(|(k, v)| (k, Out::Val(v))).collect())
    }
}

impl From<&Obj> for Out {
    fn from(o: &Obj) -> Out {
        Out::Obj(
            o.0.iter()
                .map(|(k, v)| (k.clone(), Out::Val(v.clone())))
                .collect(),
        )
    }
}

impl Serialize for Out {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Out::Val(v) => v.serialize(s),
            Out::Arr(a) => a.serialize(s),
            Out::Obj(o) => {
                let mut map = s.serialize_map(Some(o.len()))?;
                for (k, v) in o {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for Out {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Out;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("JSON")
            }
            fn visit_bool<E>(self, b: bool) -> Result<Out, E> {
                Ok(Out::Val(Value::Bool(b)))
            }
            fn visit_i64<E>(self, n: i64) -> Result<Out, E> {
                Ok(Out::Val(Value::from(n)))
            }
            fn visit_u64<E>(self, n: u64) -> Result<Out, E> {
                Ok(Out::Val(Value::from(n)))
            }
            fn visit_f64<E>(self, n: f64) -> Result<Out, E> {
                Ok(Out::Val(Value::from(n)))
            }
            fn visit_str<E>(self, s: &str) -> Result<Out, E> {
                Ok(Out::Val(Value::String(s.to_string())))
            }
            fn visit_string<E>(self, s: String) -> Result<Out, E> {
                Ok(Out::Val(Value::String(s)))
            }
            fn visit_unit<E>(self) -> Result<Out, E> {
                Ok(Out::Val(Value::Null))
            }
            fn visit_none<E>(self) -> Result<Out, E> {
                Ok(Out::Val(Value::Null))
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Out, D::Error> {
                Out::deserialize(d)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut a: A) -> Result<Out, A::Error> {
                let mut v = Vec::new();
                while let Some(e) = a.next_element::<Out>()? {
                    v.push(e);
                }
                Ok(Out::Arr(v))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Out, A::Error> {
                let mut o = Vec::new();
                while let Some((k, v)) = a.next_entry::<String, Out>()? {
                    o.push((k, v));
                }
                Ok(Out::Obj(o))
            }
        }
        d.deserialize_any(V)
    }
}
