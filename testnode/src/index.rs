//! One index: documents in insertion order (the position is the internal document id that
//! breaks ranking ties, like Meilisearch's docid), an id map, and an inverted index
//! (term → posting list) with a sorted term dictionary for prefix and typo lookups.
//!
//! Each stored document keeps its tokens (term id, searchable-attribute rank, position), so
//! search computes ranking details from the tokens of the candidate documents only, never by
//! scanning the corpus. Posting lists may hold stale entries after a replace or delete; search
//! re-checks each candidate's own tokens, so a stale entry costs time, never correctness.

use crate::json::{values_at_path, Obj};
use crate::settings::{self, View};
use crate::timefmt::Ts;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};

#[derive(Debug, Clone, Copy)]
pub struct Tok {
    pub term: u32,
    /// Rank of the searchable attribute this token came from (0 = most important).
    pub field: u16,
    pub pos: u32,
}

#[derive(Debug)]
pub struct Doc {
    pub obj: Obj,
    pub toks: Vec<Tok>,
}

#[derive(Debug)]
pub struct Index {
    pub uid: String,
    pub primary_key: Option<String>,
    pub created_at: Ts,
    pub updated_at: Ts,
    pub settings: Obj,
    pub view: View,
    /// Top-level fields in first-seen order (Meilisearch's fields-ids map order).
    pub fields: Vec<String>,
    pub docs: Vec<Option<Doc>>,
    pub ids: HashMap<String, u32>,
    pub terms: BTreeMap<Box<str>, u32>,
    pub term_strs: Vec<Box<str>>,
    pub postings: Vec<Vec<u32>>,
    pub doc_bytes: usize,
}

/// Gap between separate values of one attribute, so they never look adjacent
/// (Meilisearch uses the same idea for array elements).
const VALUE_GAP: u32 = 8;

/// Lowercased alphanumeric runs: the test node's whole tokenizer.
pub fn tokenize(s: &str) -> impl Iterator<Item = String> + '_ {
    s.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
}

fn flatten_text(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Number(n) => out.push(n.to_string()),
        Value::Bool(b) => out.push(b.to_string()),
        Value::Array(a) => a.iter().for_each(|e| flatten_text(e, out)),
        Value::Object(m) => m.values().for_each(|e| flatten_text(e, out)),
        Value::Null => {}
    }
}

impl Index {
    pub fn new(uid: &str, primary_key: Option<String>, at: Ts) -> Index {
        let s = settings::defaults();
        Index {
            uid: uid.to_string(),
            primary_key,
            created_at: at,
            updated_at: at,
            view: View::of(&s),
            settings: s,
            fields: Vec::new(),
            docs: Vec::new(),
            ids: HashMap::new(),
            terms: BTreeMap::new(),
            term_strs: Vec::new(),
            postings: Vec::new(),
            doc_bytes: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    pub fn doc(&self, id: &str) -> Option<&Obj> {
        self.ids
            .get(id)
            .and_then(|d| self.docs[*d as usize].as_ref())
            .map(|d| &d.obj)
    }

    pub fn live(&self) -> impl Iterator<Item = (u32, &Doc)> {
        self.docs
            .iter()
            .enumerate()
            .filter_map(|(i, d)| d.as_ref().map(|d| (i as u32, d)))
    }

    /// Searchable attributes in rank order, resolved against the index's fields.
    pub fn searchable_fields(&self) -> Vec<String> {
        match &self.view.searchable {
            Some(list) => list.clone(),
            None => self.fields.clone(),
        }
    }

    fn term_id(&mut self, t: &str) -> u32 {
        if let Some(id) = self.terms.get(t) {
            return *id;
        }
        let id = self.term_strs.len() as u32;
        self.terms.insert(t.into(), id);
        self.term_strs.push(t.into());
        self.postings.push(Vec::new());
        id
    }

    fn tokens_of(&mut self, obj: &Obj, searchable: &[String]) -> Vec<Tok> {
        let mut toks = Vec::new();
        let mut texts = Vec::new();
        for (rank, attr) in searchable.iter().enumerate() {
            texts.clear();
            let mut vals = Vec::new();
            values_at_path(obj, attr, &mut vals);
            for v in vals {
                flatten_text(v, &mut texts);
            }
            let mut pos = 0u32;
            for text in &texts {
                for w in tokenize(text) {
                    let term = self.term_id(&w);
                    toks.push(Tok {
                        term,
                        field: rank.min(u16::MAX as usize) as u16,
                        pos,
                    });
                    pos += 1;
                }
                pos += VALUE_GAP;
            }
        }
        toks
    }

    fn index_doc(&mut self, docid: u32, obj: Obj, searchable: &[String]) {
        let toks = self.tokens_of(&obj, searchable);
        for t in &toks {
            let p = &mut self.postings[t.term as usize];
            if p.last() != Some(&docid) {
                p.push(docid);
            }
        }
        self.doc_bytes += obj.encoded_len();
        self.docs[docid as usize] = Some(Doc { obj, toks });
    }

    fn register_fields(&mut self, obj: &Obj) {
        for k in obj.keys() {
            if !self.fields.iter().any(|f| f == k) {
                self.fields.push(k.to_string());
            }
        }
    }

    /// Adds or replaces (`merge == false`) / updates (`merge == true`) one document.
    /// A replaced document keeps its internal id (its tie-break position), like Meilisearch.
    pub fn upsert(&mut self, id: String, mut obj: Obj, merge: bool) {
        // `_vectors` is Meilisearch's reserved field for embeddings, stored apart from the
        // document; the test node has no embedders, so it keeps nothing of it.
        obj.0.retain(|(k, _)| k != "_vectors");
        self.register_fields(&obj);
        let searchable = self.searchable_fields();
        match self.ids.get(&id).copied() {
            Some(docid) => {
                let old = self.docs[docid as usize]
                    .take()
                    .expect("id map points at a live doc");
                self.doc_bytes = self.doc_bytes.saturating_sub(old.obj.encoded_len());
                let new = if merge {
                    let mut base = old.obj;
                    for (k, v) in obj.0 {
                        base.insert(k, v);
                    }
                    base
                } else {
                    obj
                };
                self.index_doc(docid, new, &searchable);
            }
            None => {
                let docid = self.docs.len() as u32;
                self.docs.push(None);
                self.ids.insert(id, docid);
                self.index_doc(docid, obj, &searchable);
            }
        }
    }

    pub fn delete(&mut self, id: &str) -> bool {
        match self.ids.remove(id) {
            Some(docid) => {
                if let Some(d) = self.docs[docid as usize].take() {
                    self.doc_bytes = self.doc_bytes.saturating_sub(d.obj.encoded_len());
                }
                true
            }
            None => false,
        }
    }

    pub fn clear(&mut self) -> usize {
        let n = self.ids.len();
        let (uid, pk, c, u, s) = (
            self.uid.clone(),
            self.primary_key.clone(),
            self.created_at,
            self.updated_at,
            self.settings.clone(),
        );
        *self = Index::new(&uid, pk, c);
        self.updated_at = u;
        self.set_settings(s);
        n
    }

    /// Replaces the settings; re-tokenizes every document when the searchable attributes
    /// changed (what Meilisearch's reindexing does).
    pub fn set_settings(&mut self, s: Obj) {
        let before = self.view.searchable.clone();
        self.view = View::of(&s);
        self.settings = s;
        if before != self.view.searchable {
            self.rebuild();
        }
    }

    fn rebuild(&mut self) {
        self.terms.clear();
        self.term_strs.clear();
        self.postings.clear();
        self.doc_bytes = 0;
        let searchable = self.searchable_fields();
        let docs = std::mem::take(&mut self.docs);
        self.docs = docs.iter().map(|_| None).collect();
        for (i, d) in docs.into_iter().enumerate() {
            if let Some(d) = d {
                self.index_doc(i as u32, d.obj, &searchable);
            }
        }
    }

    /// Number of documents containing each top-level field.
    pub fn field_distribution(&self) -> Obj {
        let mut counts: HashMap<&str, u64> = HashMap::new();
        for (_, d) in self.live() {
            for k in d.obj.keys() {
                *counts.entry(k).or_default() += 1;
            }
        }
        let mut names: Vec<&str> = counts.keys().copied().collect();
        names.sort_unstable(); // Meilisearch serializes a BTreeMap
        let mut o = Obj::new();
        for n in names {
            o.insert(n, Value::from(counts[n]));
        }
        o
    }

    /// Applies `displayedAttributes` then an optional field list (`attributesToRetrieve`)
    /// to a stored document: what a search hit shows.
    pub fn project(&self, obj: &Obj, fields: Option<&[String]>) -> Obj {
        let shown = |k: &str| -> bool {
            self.view
                .displayed
                .as_ref()
                .is_none_or(|d| d.iter().any(|p| p == k || p.starts_with(&format!("{k}."))))
                && wanted(fields, k)
        };
        Obj(obj.0.iter().filter(|(k, _)| shown(k)).cloned().collect())
    }

    /// Applies only the `fields` list to a stored document: the document routes (`GET
    /// /documents`, `/documents/fetch`, `/documents/{id}`) ignore `displayedAttributes` in
    /// Meilisearch 1.50 (checked against a real node).
    pub fn select(&self, obj: &Obj, fields: Option<&[String]>) -> Obj {
        Obj(obj
            .0
            .iter()
            .filter(|(k, _)| wanted(fields, k))
            .cloned()
            .collect())
    }
}

fn wanted(fields: Option<&[String]>, k: &str) -> bool {
    fields.is_none_or(|f| {
        f.iter()
            .any(|p| p == "*" || p == k || p.starts_with(&format!("{k}.")))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Obj {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn tokenizer_lowercases_and_splits() {
        let t: Vec<_> = tokenize("Hello, World! it's 2024-x").collect();
        assert_eq!(t, ["hello", "world", "it", "s", "2024", "x"]);
    }

    #[test]
    fn replace_keeps_docid_and_merge_keeps_fields() {
        let mut ix = Index::new("m", Some("id".into()), 0);
        ix.upsert("1".into(), obj(json!({"id": 1, "a": "x"})), false);
        ix.upsert("2".into(), obj(json!({"id": 2, "a": "y"})), false);
        ix.upsert("1".into(), obj(json!({"id": 1, "b": "z"})), true);
        assert_eq!(ix.ids["1"], 0);
        assert_eq!(
            ix.doc("1").unwrap().to_value(),
            json!({"id": 1, "a": "x", "b": "z"})
        );
        ix.upsert("1".into(), obj(json!({"id": 1})), false);
        assert_eq!(ix.doc("1").unwrap().to_value(), json!({"id": 1}));
        assert!(ix.delete("2") && !ix.delete("2"));
        assert_eq!(ix.len(), 1);
        assert_eq!(ix.field_distribution().to_value(), json!({"id": 1}));
    }

    #[test]
    fn searchable_change_reindexes() {
        let mut ix = Index::new("m", Some("id".into()), 0);
        ix.upsert(
            "1".into(),
            obj(json!({"id": 1, "a": "apple", "b": "pear"})),
            false,
        );
        let doc_terms = |ix: &Index| -> Vec<String> {
            ix.docs[0]
                .as_ref()
                .unwrap()
                .toks
                .iter()
                .map(|t| ix.term_strs[t.term as usize].to_string())
                .collect()
        };
        // Document field order (serde_json `preserve_order`): id, a, b.
        assert_eq!(doc_terms(&ix), ["1", "apple", "pear"]);
        let mut s = ix.settings.clone();
        settings::apply(
            &mut s,
            &settings::validate_patch(&json!({"searchableAttributes": ["b"]})).unwrap(),
        );
        ix.set_settings(s);
        assert_eq!(doc_terms(&ix), ["pear"]);
    }
}
