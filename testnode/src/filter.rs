//! Meilisearch filter expressions: parser and evaluator.
//!
//! Grammar (case-insensitive keywords), following Meilisearch's `filter-parser` crate:
//! ```text
//! expr      = and ("OR" and)*
//! and       = not ("AND" not)*
//! not       = "NOT" not | "(" expr ")" | condition
//! condition = attr ("=" | "!=" | ">" | ">=" | "<" | "<=") value
//!           | attr value "TO" value
//!           | attr ["NOT"] "IN" "[" value ("," value)* "]"
//!           | attr ["NOT"] "EXISTS" | attr "IS" ["NOT"] ("NULL" | "EMPTY")
//! value     = 'quoted' | "quoted" | bare-word
//! ```
//! The array form (`["a = 1", ["b = 2", "c = 3"]]`) is an AND of its elements where a nested
//! array is an OR. Evaluation is per document (a scan, fine for a test node): equality on
//! strings is case-insensitive like Meilisearch's normalized facets, numbers compare as f64.

use crate::error::{ApiError, Result};
use crate::json::{values_at_path, Obj};
use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
pub enum Cmp {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    And(Vec<Filter>),
    Or(Vec<Filter>),
    Not(Box<Filter>),
    Cmp {
        attr: Attr,
        op: Cmp,
        value: String,
    },
    Range {
        attr: Attr,
        from: String,
        to: String,
    },
    In {
        attr: Attr,
        values: Vec<String>,
    },
    Exists(Attr),
    IsNull(Attr),
    IsEmpty(Attr),
}

/// An attribute name with its character span in the source (for error messages).
#[derive(Debug, Clone, PartialEq)]
pub struct Attr {
    pub name: String,
    pub start: usize,
    pub end: usize,
    pub source: String,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(String, usize, usize), // bare word with char span
    Quoted(String, usize, usize),
    Op(&'static str, usize),
    LParen(usize),
    RParen,
    LBracket,
    RBracket,
    Comma,
}

fn filter_err(code: &str, msg: String) -> ApiError {
    ApiError::bad(code, msg)
}

fn lex(s: &str, code: &str) -> Result<Vec<Tok>> {
    let cs: Vec<char> = s.chars().collect();
    let mut i = 0;
    let mut out = Vec::new();
    while i < cs.len() {
        let c = cs[i];
        match c {
            c if c.is_whitespace() => i += 1,
            '(' => {
                out.push(Tok::LParen(i));
                i += 1
            }
            ')' => {
                out.push(Tok::RParen);
                i += 1
            }
            '[' => {
                out.push(Tok::LBracket);
                i += 1
            }
            ']' => {
                out.push(Tok::RBracket);
                i += 1
            }
            ',' => {
                out.push(Tok::Comma);
                i += 1
            }
            '=' => {
                out.push(Tok::Op("=", i));
                i += 1
            }
            '!' if cs.get(i + 1) == Some(&'=') => {
                out.push(Tok::Op("!=", i));
                i += 2
            }
            '>' | '<' => {
                let eq = cs.get(i + 1) == Some(&'=');
                let op = match (c, eq) {
                    ('>', true) => ">=",
                    ('>', false) => ">",
                    ('<', true) => "<=",
                    _ => "<",
                };
                out.push(Tok::Op(op, i));
                i += if eq { 2 } else { 1 };
            }
            '\'' | '"' => {
                let start = i;
                i += 1;
                let mut v = String::new();
                loop {
                    match cs.get(i) {
                        // Meilisearch shows the opening quote escaped (`\'abc`).
                        None => return Err(filter_err(code, format!("Expression `\\{}` is missing the following closing delimiter: `{c}`.\n{}:{} {s}", &s[byte_at(s, start)..], start + 1, cs.len() + 1))),
                        Some('\\') if cs.get(i + 1).is_some() => { v.push(cs[i + 1]); i += 2 }
                        Some(&q) if q == c => { i += 1; break }
                        Some(&o) => { v.push(o); i += 1 }
                    }
                }
                out.push(Tok::Quoted(v, start, i));
            }
            _ => {
                let start = i;
                while i < cs.len() && !cs[i].is_whitespace() && !"()[],=!<>'\"".contains(cs[i]) {
                    i += 1;
                }
                if i == start {
                    return Err(filter_err(code, format!("Found unexpected characters at the end of the filter: `{}`. You probably forgot an `OR` or an `AND` rule.\n{}:{} {s}", &s[byte_at(s, start)..], start + 1, cs.len() + 1)));
                }
                out.push(Tok::Word(cs[start..i].iter().collect(), start, i));
            }
        }
    }
    Ok(out)
}

fn byte_at(s: &str, char_idx: usize) -> usize {
    s.char_indices()
        .nth(char_idx)
        .map(|(b, _)| b)
        .unwrap_or(s.len())
}

struct Parser<'a> {
    toks: Vec<Tok>,
    at: usize,
    src: &'a str,
    code: &'a str,
}

const EXPECTING_OP: &str = "Was expecting an operation `=`, `!=`, `>=`, `>`, `<=`, `<`, `IN`, `NOT IN`, `TO`, `EXISTS`, `NOT EXISTS`, `IS NULL`, `IS NOT NULL`, `IS EMPTY`, `IS NOT EMPTY`, `CONTAINS`, `NOT CONTAINS`, `STARTS WITH`, `NOT STARTS WITH`, `_geoRadius`, `_geoBoundingBox` or `_geoPolygon`";

impl Parser<'_> {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.at)
    }

    fn kw(&self, k: &str) -> bool {
        self.kw_at(self.at, k)
    }

    fn kw_at(&self, at: usize, k: &str) -> bool {
        matches!(self.toks.get(at), Some(Tok::Word(w, ..)) if w.eq_ignore_ascii_case(k))
    }

    /// Meilisearch's error layout: message, then `start:end` (1-based char columns, end
    /// exclusive) of the offending input, then the filter.
    fn err_span(&self, what: &str, start: usize, end: usize) -> ApiError {
        filter_err(
            self.code,
            format!("{what}\n{}:{} {}", start + 1, end + 1, self.src),
        )
    }

    fn n_chars(&self) -> usize {
        self.src.chars().count()
    }

    /// An operation was expected: either the condition's text is quoted (`at `…``) with its
    /// span, or the input ended (`but instead got nothing`).
    fn err_expecting_op(&self, cond_start: Option<usize>) -> ApiError {
        let n = self.n_chars();
        match cond_start {
            Some(st) => {
                let rest: String = self.src.chars().skip(st).collect();
                self.err_span(&format!("{EXPECTING_OP} at `{rest}`."), st, n)
            }
            None => self.err_span(&format!("{EXPECTING_OP} but instead got nothing."), n, n),
        }
    }

    /// The char start of the token at `at` (None past the end).
    fn start_of(&self, at: usize) -> Option<usize> {
        match self.toks.get(at)? {
            Tok::Word(_, s, _) | Tok::Quoted(_, s, _) | Tok::Op(_, s) | Tok::LParen(s) => Some(*s),
            _ => None,
        }
    }

    fn expr(&mut self) -> Result<Filter> {
        let mut parts = vec![self.and()?];
        while self.kw("OR") {
            self.at += 1;
            parts.push(self.and()?);
        }
        Ok(if parts.len() == 1 {
            parts.pop().expect("one")
        } else {
            Filter::Or(parts)
        })
    }

    fn and(&mut self) -> Result<Filter> {
        let mut parts = vec![self.not()?];
        while self.kw("AND") {
            self.at += 1;
            parts.push(self.not()?);
        }
        Ok(if parts.len() == 1 {
            parts.pop().expect("one")
        } else {
            Filter::And(parts)
        })
    }

    fn not(&mut self) -> Result<Filter> {
        if self.kw("NOT") {
            self.at += 1;
            // `NOT` of a negation cancels out, as in Meilisearch's parser (it shows in the
            // canonical filter text of error messages).
            return Ok(match self.not()? {
                Filter::Not(inner) => *inner,
                f => Filter::Not(Box::new(f)),
            });
        }
        if let Some(Tok::LParen(open)) = self.peek().cloned() {
            self.at += 1;
            let e = self.expr()?;
            if self.peek() != Some(&Tok::RParen) {
                let rest: String = self.src.chars().skip(open).collect();
                return Err(self.err_span(
                    &format!(
                        "Expression `{rest}` is missing the following closing delimiter: `)`."
                    ),
                    open,
                    self.n_chars(),
                ));
            }
            self.at += 1;
            return Ok(e);
        }
        self.condition()
    }

    fn value(&mut self) -> Result<String> {
        match self.toks.get(self.at).cloned() {
            Some(Tok::Word(w, ..)) | Some(Tok::Quoted(w, ..)) => {
                self.at += 1;
                Ok(w)
            }
            _ => {
                let n = self.n_chars();
                Err(self.err_span("Was expecting a value but instead got nothing.", n, n))
            }
        }
    }

    fn condition(&mut self) -> Result<Filter> {
        let attr = match self.toks.get(self.at).cloned() {
            Some(Tok::Word(w, s, e)) | Some(Tok::Quoted(w, s, e)) => Attr {
                name: w,
                start: s,
                end: e,
                source: self.src.to_string(),
            },
            _ => return Err(self.err_expecting_op(self.start_of(self.at))),
        };
        let cond_start = attr.start;
        self.at += 1;
        match self.peek().cloned() {
            Some(Tok::Op(op, _)) => {
                self.at += 1;
                let value = self.value()?;
                let op = match op {
                    "=" => Cmp::Eq,
                    "!=" => Cmp::Ne,
                    ">" => Cmp::Gt,
                    ">=" => Cmp::Ge,
                    "<" => Cmp::Lt,
                    _ => Cmp::Le,
                };
                Ok(Filter::Cmp { attr, op, value })
            }
            _ if self.kw("IN") => {
                self.at += 1;
                Ok(Filter::In {
                    attr,
                    values: self.list()?,
                })
            }
            // `CONTAINS` sits behind Meilisearch's `containsFilter` experimental feature,
            // which the test node does not implement: always the feature's error.
            Some(Tok::Word(w, s, e)) if w.eq_ignore_ascii_case("CONTAINS") => Err(filter_err(
                "feature_not_enabled",
                format!("Using `CONTAINS` in a filter requires enabling the `contains filter` experimental feature. See https://github.com/orgs/meilisearch/discussions/763\n{}:{} {}", s + 1, e + 1, self.src),
            )),
            _ if self.kw("EXISTS") => {
                self.at += 1;
                Ok(Filter::Exists(attr))
            }
            _ if self.kw("NOT") && self.kw_at(self.at + 1, "IN") => {
                self.at += 2;
                Ok(Filter::Not(Box::new(Filter::In {
                    attr,
                    values: self.list()?,
                })))
            }
            _ if self.kw("NOT") && self.kw_at(self.at + 1, "EXISTS") => {
                self.at += 2;
                Ok(Filter::Not(Box::new(Filter::Exists(attr))))
            }
            _ if self.kw("IS") => {
                self.at += 1;
                let negate = self.kw("NOT");
                if negate {
                    self.at += 1
                }
                let f = if self.kw("NULL") {
                    Filter::IsNull(attr)
                } else if self.kw("EMPTY") {
                    Filter::IsEmpty(attr)
                } else {
                    return Err(self.err_expecting_op(Some(cond_start)));
                };
                self.at += 1;
                Ok(if negate { Filter::Not(Box::new(f)) } else { f })
            }
            Some(Tok::Word(..)) | Some(Tok::Quoted(..)) if self.kw_at(self.at + 1, "TO") => {
                let from = self.value()?;
                self.at += 1;
                let to = self.value()?;
                Ok(Filter::Range { attr, from, to })
            }
            _ => Err(self.err_expecting_op(Some(cond_start))),
        }
    }

    fn list(&mut self) -> Result<Vec<String>> {
        if self.peek() != Some(&Tok::LBracket) {
            let n = self.n_chars();
            let (st, en) = match self.toks.get(self.at) {
                Some(Tok::Word(_, s, e) | Tok::Quoted(_, s, e)) => (*s, *e),
                _ => (n, n),
            };
            return Err(self.err_span("Expected `[` after `IN` keyword.", st, en));
        }
        self.at += 1;
        let mut out = Vec::new();
        loop {
            match self.peek() {
                Some(Tok::RBracket) => {
                    self.at += 1;
                    return Ok(out);
                }
                Some(Tok::Comma) => self.at += 1,
                Some(Tok::Word(..)) | Some(Tok::Quoted(..)) => out.push(self.value()?),
                _ => {
                    let n = self.n_chars();
                    return Err(self.err_span(
                        "Expected matching `]` after the list of field names given to `IN[`",
                        n,
                        n,
                    ));
                }
            }
        }
    }
}

/// Parses one filter string; `None` for an empty/blank filter.
pub fn parse_str(s: &str, code: &str) -> Result<Option<Filter>> {
    let toks = lex(s, code)?;
    if toks.is_empty() {
        return Ok(None);
    }
    let mut p = Parser {
        toks,
        at: 0,
        src: s,
        code,
    };
    let f = p.expr()?;
    if p.at != p.toks.len() {
        let n = s.chars().count();
        let st = p.start_of(p.at).unwrap_or(n);
        let rest: String = s.chars().skip(st).collect();
        return Err(p.err_span(&format!("Found unexpected characters at the end of the filter: `{rest}`. You probably forgot an `OR` or an `AND` rule."), st, n));
    }
    Ok(Some(f))
}

/// Parses a filter in any of Meilisearch's JSON forms (string, array, nested arrays).
pub fn parse(v: &Value, code: &str) -> Result<Option<Filter>> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) => parse_str(s, code),
        Value::Array(items) => {
            let mut and = Vec::new();
            for it in items {
                match it {
                    Value::String(s) => and.extend(parse_str(s, code)?),
                    Value::Array(inner) => {
                        let mut or = Vec::new();
                        for x in inner {
                            match x {
                                Value::String(s) => or.extend(parse_str(s, code)?),
                                _ => return Err(filter_err(code, format!("Invalid syntax for the filter parameter: `expected String, found: {x}`."))),
                            }
                        }
                        // Like Meilisearch: a one-element group is just its element.
                        match or.len() {
                            0 => {}
                            1 => and.extend(or.pop()),
                            _ => and.push(Filter::Or(or)),
                        }
                    }
                    _ => return Err(filter_err(code, format!("Invalid syntax for the filter parameter: `expected String, [String], found: {it}`."))),
                }
            }
            Ok(match and.len() {
                0 => None,
                1 => and.pop(),
                _ => Some(Filter::And(and)),
            })
        }
        _ => Err(filter_err(
            code,
            format!(
                "Invalid syntax for the filter parameter: `expected String, Array, found: {v}`."
            ),
        )),
    }
}

impl Filter {
    pub fn attrs<'a>(&'a self, out: &mut Vec<&'a Attr>) {
        match self {
            Filter::And(v) | Filter::Or(v) => v.iter().for_each(|f| f.attrs(out)),
            Filter::Not(f) => f.attrs(out),
            Filter::Cmp { attr, .. } | Filter::Range { attr, .. } | Filter::In { attr, .. } => {
                out.push(attr)
            }
            Filter::Exists(a) | Filter::IsNull(a) | Filter::IsEmpty(a) => out.push(a),
        }
    }

    /// Checks every attribute is filterable; Meilisearch's error otherwise.
    ///
    /// `search_index`: for searches, Meilisearch 1.50 re-serializes the parsed filter in a
    /// canonical quoted form (see [`Filter::canonical`]) and reports the error against that
    /// text, prefixed with the index (`Index `uid`: …`). Other routes report the client's
    /// filter as written; `prefix_index` adds the index prefix alone (document deletion
    /// tasks do).
    pub fn check_filterable(
        &self,
        view: &crate::settings::View,
        code: &str,
        search_index: Option<&str>,
        prefix_index: Option<&str>,
    ) -> Result<()> {
        let mut attrs = Vec::new();
        self.attrs(&mut attrs);
        let Some(bad) = attrs.into_iter().find(|a| !view.is_filterable(&a.name)) else {
            return Ok(());
        };
        let tail = if view.filterable.is_empty() {
            "This index does not have configured filterable attributes.".to_string()
        } else {
            format!(
                "Available filterable attribute patterns are: {}.",
                crate::search::sorted_patterns(view, ", ", true)
            )
        };
        let (start, end, text) = match search_index {
            Some(_) => {
                let mut spans = Vec::new();
                let text = self.canonical(&mut spans);
                let (_, st, en) = spans
                    .into_iter()
                    .find(|(name, ..)| *name == bad.name)
                    .expect("every attribute is serialized");
                (st, en, text)
            }
            None => (bad.start, bad.end, bad.source.clone()),
        };
        let prefix = search_index
            .or(prefix_index)
            .map(|i| format!("Index `{i}`: "))
            .unwrap_or_default();
        Err(filter_err(
            code,
            format!(
                "{prefix}Attribute `{}` is not filterable. {tail}\n{}:{} {text}",
                bad.name,
                start + 1,
                end + 1,
            ),
        ))
    }

    /// Meilisearch 1.50's canonical filter text: every attribute and value JSON-quoted,
    /// each `AND`/`OR` operand and `NOT` operand parenthesized. `spans` receives each
    /// attribute's char span (inside its quotes) in the output.
    pub fn canonical(&self, spans: &mut Vec<(String, usize, usize)>) -> String {
        let mut out = String::new();
        self.write_canonical(&mut out, spans);
        out
    }

    fn write_canonical(&self, out: &mut String, spans: &mut Vec<(String, usize, usize)>) {
        fn quoted(s: &str) -> String {
            serde_json::to_string(s).expect("a string serializes")
        }
        let attr = |out: &mut String, spans: &mut Vec<(String, usize, usize)>, a: &Attr| {
            let q = quoted(&a.name);
            let start = out.chars().count() + 1;
            spans.push((a.name.clone(), start, start + q.chars().count() - 2));
            out.push_str(&q);
        };
        match self {
            Filter::And(v) | Filter::Or(v) => {
                let sep = if matches!(self, Filter::And(_)) {
                    " AND "
                } else {
                    " OR "
                };
                for (i, f) in v.iter().enumerate() {
                    if i > 0 {
                        out.push_str(sep);
                    }
                    out.push('(');
                    f.write_canonical(out, spans);
                    out.push(')');
                }
            }
            Filter::Not(f) => {
                out.push_str("NOT (");
                f.write_canonical(out, spans);
                out.push(')');
            }
            Filter::Cmp { attr: a, op, value } => {
                attr(out, spans, a);
                let op = match op {
                    Cmp::Eq => "=",
                    Cmp::Ne => "!=",
                    Cmp::Gt => ">",
                    Cmp::Ge => ">=",
                    Cmp::Lt => "<",
                    Cmp::Le => "<=",
                };
                out.push_str(&format!(" {op} {}", quoted(value)));
            }
            Filter::Range { attr: a, from, to } => {
                attr(out, spans, a);
                out.push_str(&format!(" {} TO {}", quoted(from), quoted(to)));
            }
            Filter::In { attr: a, values } => {
                attr(out, spans, a);
                let list: Vec<String> = values.iter().map(|v| quoted(v)).collect();
                out.push_str(&format!(" IN [{}]", list.join(", ")));
            }
            Filter::Exists(a) => {
                attr(out, spans, a);
                out.push_str(" EXISTS");
            }
            Filter::IsNull(a) => {
                attr(out, spans, a);
                out.push_str(" IS NULL");
            }
            Filter::IsEmpty(a) => {
                attr(out, spans, a);
                out.push_str(" IS EMPTY");
            }
        }
    }

    pub fn matches(&self, doc: &Obj) -> bool {
        match self {
            Filter::And(v) => v.iter().all(|f| f.matches(doc)),
            Filter::Or(v) => v.iter().any(|f| f.matches(doc)),
            Filter::Not(f) => !f.matches(doc),
            Filter::Cmp { attr, op, value } => {
                let vals = values(doc, &attr.name);
                match op {
                    Cmp::Eq => vals.iter().any(|v| eq(v, value)),
                    Cmp::Ne => !vals.iter().any(|v| eq(v, value)),
                    _ => vals.iter().any(|v| {
                        ord(v, value).is_some_and(|o| match op {
                            Cmp::Gt => o.is_gt(),
                            Cmp::Ge => o.is_ge(),
                            Cmp::Lt => o.is_lt(),
                            _ => o.is_le(),
                        })
                    }),
                }
            }
            Filter::Range { attr, from, to } => values(doc, &attr.name).iter().any(|v| {
                ord(v, from).is_some_and(|o| o.is_ge()) && ord(v, to).is_some_and(|o| o.is_le())
            }),
            Filter::In { attr, values: vs } => {
                let vals = values(doc, &attr.name);
                vs.iter().any(|x| vals.iter().any(|v| eq(v, x)))
            }
            Filter::Exists(a) => exists(doc, &a.name),
            Filter::IsNull(a) => raw_values(doc, &a.name).iter().any(|v| v.is_null()),
            Filter::IsEmpty(a) => raw_values(doc, &a.name).iter().any(|v| match v {
                Value::String(s) => s.is_empty(),
                Value::Array(a) => a.is_empty(),
                Value::Object(o) => o.is_empty(),
                _ => false,
            }),
        }
    }
}

fn values<'a>(doc: &'a Obj, path: &str) -> Vec<&'a Value> {
    let mut out = Vec::new();
    values_at_path(doc, path, &mut out);
    out
}

/// Values without array flattening (for IS EMPTY / IS NULL on the field itself).
fn raw_values<'a>(doc: &'a Obj, path: &str) -> Vec<&'a Value> {
    if let Some(v) = doc.get(path) {
        return vec![v];
    }
    values(doc, path)
}

fn exists(doc: &Obj, path: &str) -> bool {
    doc.get(path).is_some() || !values(doc, path).is_empty()
}

fn eq(v: &Value, target: &str) -> bool {
    match v {
        // ASCII fast path: no allocation per document on the hot filter-scan path.
        Value::String(s) if s.is_ascii() && target.is_ascii() => s.eq_ignore_ascii_case(target),
        Value::String(s) => s.to_lowercase() == target.to_lowercase(),
        Value::Number(n) => match (n.as_f64(), target.trim().parse::<f64>()) {
            (Some(a), Ok(b)) => a == b,
            _ => false,
        },
        Value::Bool(b) => target.eq_ignore_ascii_case(if *b { "true" } else { "false" }),
        _ => false,
    }
}

fn ord(v: &Value, target: &str) -> Option<std::cmp::Ordering> {
    match v {
        Value::Number(n) => {
            let t = target.trim().parse::<f64>().ok()?;
            n.as_f64()?.partial_cmp(&t)
        }
        // Meilisearch compares strings lexicographically (normalized) when the bound is not a number.
        Value::String(s) if target.trim().parse::<f64>().is_err() => Some(
            s.to_lowercase()
                .as_str()
                .cmp(target.to_lowercase().as_str()),
        ),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn doc(v: Value) -> Obj {
        serde_json::from_value(v).unwrap()
    }

    fn m(f: &str, d: &Obj) -> bool {
        parse_str(f, "invalid_search_filter")
            .unwrap()
            .unwrap()
            .matches(d)
    }

    #[test]
    fn operators() {
        let d = doc(
            json!({"genre": "Horror", "year": 1999, "tags": ["a", "b"], "n": null, "e": [], "o": {"x": 2}, "ok": true}),
        );
        assert!(m("genre = horror", &d));
        assert!(m("genre = 'Horror'", &d));
        assert!(m("genre != drama", &d));
        assert!(m("missing != drama", &d));
        assert!(m("year > 1998 AND year <= 1999", &d));
        assert!(!m("year < 1999", &d));
        assert!(m("year 1990 TO 2000", &d));
        assert!(m("tags IN [c, b]", &d));
        assert!(m("tags NOT IN [c, d]", &d));
        assert!(m("n IS NULL AND e IS EMPTY AND genre IS NOT EMPTY", &d));
        assert!(m("o.x = 2 AND o EXISTS AND zz NOT EXISTS", &d));
        assert!(m("NOT (genre = drama OR year = 1)", &d));
        assert!(m("ok = true", &d));
        assert!(m("genre = drama OR year = 1999 AND tags = a", &d));
        assert!(!m("(genre = drama OR year = 1999) AND tags = z", &d));
    }

    proptest::proptest! {
        /// Boolean structure: NOT negates, the array form equals the AND/OR string form.
        #[test]
        fn boolean_laws(a in 0i64..4, b in 0i64..4, x in 0i64..4, y in 0i64..4) {
            let d = doc(json!({"a": a, "b": b}));
            let c1 = format!("a = {x}");
            let c2 = format!("b > {y}");
            let f = |s: &str| parse_str(s, "c").unwrap().unwrap().matches(&d);
            proptest::prop_assert_eq!(f(&format!("NOT ({c1} AND {c2})")), !(f(&c1) && f(&c2)));
            proptest::prop_assert_eq!(f(&format!("{c1} OR {c2}")), (a == x) || (b > y));
            let arr = parse(&json!([[c1.clone(), c2.clone()], c1.clone()]), "c").unwrap().unwrap().matches(&d);
            proptest::prop_assert_eq!(arr, f(&format!("({c1} OR {c2}) AND {c1}")));
            proptest::prop_assert_eq!(f(&format!("a {x} TO {y}")), x <= a && a <= y);
        }
    }

    #[test]
    fn array_form_is_and_of_ors() {
        let d = doc(json!({"a": 1, "b": 2}));
        let f = parse(&json!(["a = 1", ["b = 3", "b = 2"]]), "c")
            .unwrap()
            .unwrap();
        assert!(f.matches(&d));
        let f = parse(&json!(["a = 1", ["b = 3"]]), "c").unwrap().unwrap();
        assert!(!f.matches(&d));
        assert!(parse(&json!([]), "c").unwrap().is_none());
    }

    #[test]
    fn syntax_errors_and_not_filterable() {
        assert_eq!(
            parse_str("genre horror", "invalid_search_filter")
                .unwrap_err()
                .code,
            "invalid_search_filter"
        );
        assert!(parse_str("a = 1 b", "x").is_err());
        assert!(parse_str("(a = 1", "x").is_err());
        assert!(parse_str("a = 'x", "x").is_err());
        let mut s = crate::settings::defaults();
        crate::settings::apply(
            &mut s,
            &crate::settings::validate_patch(&json!({"filterableAttributes": ["id", "title"]}))
                .unwrap(),
        );
        let view = crate::settings::View::of(&s);
        let e = parse_str("genre = horror", "invalid_search_filter")
            .unwrap()
            .unwrap()
            .check_filterable(&view, "invalid_search_filter", None, None)
            .unwrap_err();
        assert_eq!(e.message, "Attribute `genre` is not filterable. Available filterable attribute patterns are: `id`, `title`.\n1:6 genre = horror");
        // Searches report against the canonical text, positions included (observed on
        // Meilisearch 1.50: `"x" IN …` inside `NOT` and `OR` groups).
        let f = parse(
            &json!(["id = 1", ["genre IN [a, b]", "NOT id = 3"]]),
            "invalid_search_filter",
        )
        .unwrap()
        .unwrap();
        let e = f
            .check_filterable(&view, "invalid_search_filter", Some("m"), None)
            .unwrap_err();
        assert_eq!(e.message, "Index `m`: Attribute `genre` is not filterable. Available filterable attribute patterns are: `id`, `title`.\n21:26 (\"id\" = \"1\") AND ((\"genre\" IN [\"a\", \"b\"]) OR (NOT (\"id\" = \"3\")))");
        let e = parse_str("a = 1 h = 2", "x").unwrap_err();
        assert_eq!(e.message, "Found unexpected characters at the end of the filter: `h = 2`. You probably forgot an `OR` or an `AND` rule.\n7:12 a = 1 h = 2");
        let e = parse_str("g = ", "x").unwrap_err();
        assert_eq!(
            e.message,
            "Was expecting a value but instead got nothing.\n5:5 g = "
        );
        let e = parse_str("g IN a", "x").unwrap_err();
        assert_eq!(e.message, "Expected `[` after `IN` keyword.\n6:7 g IN a");
        let e = parse_str("(g = 1", "x").unwrap_err();
        assert_eq!(
            e.message,
            "Expression `(g = 1` is missing the following closing delimiter: `)`.\n1:7 (g = 1"
        );
    }
}
