//! Document payloads (JSON, NDJSON, CSV), primary-key resolution and document-id validation,
//! with Meilisearch's errors.
//!
//! Split as Meilisearch splits it: payload *syntax* (content type, malformed body) is checked
//! synchronously by the HTTP route (400/415 before any task exists); primary-key inference and
//! id validation happen while the task is processed, so they surface as failed tasks.

use crate::error::{ApiError, Result};
use crate::json::{Obj, OneOrMany};
use serde_json::{Number, Value};

pub const ACCEPTED: &str = "Accepted values for the Content-Type header are: `application/json`, `application/x-ndjson`, `text/csv`";

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Format {
    Json,
    Ndjson,
    Csv,
}

impl Format {
    fn name(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Ndjson => "ndjson",
            Format::Csv => "csv",
        }
    }
}

/// Maps a `Content-Type` header to a payload format (415 errors as Meilisearch words them).
pub fn format_of(content_type: Option<&str>) -> Result<Format> {
    let Some(ct) = content_type else {
        return Err(ApiError::new(
            415,
            "missing_content_type",
            format!("A Content-Type header is missing. {ACCEPTED}"),
        ));
    };
    let mime = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match mime.as_str() {
        "application/json" => Ok(Format::Json),
        "application/x-ndjson" => Ok(Format::Ndjson),
        "text/csv" => Ok(Format::Csv),
        _ => Err(ApiError::new(
            415,
            "invalid_content_type",
            format!("The Content-Type `{ct}` is invalid. {ACCEPTED}"),
        )),
    }
}

fn malformed(f: Format, detail: impl std::fmt::Display) -> ApiError {
    ApiError::bad(
        "malformed_payload",
        format!(
            "The `{}` payload provided is malformed. `{detail}`.",
            f.name()
        ),
    )
}

/// Parses a whole payload into documents.
pub fn parse(format: Format, body: &[u8], csv_delimiter: u8) -> Result<Vec<Obj>> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad(
            "missing_payload",
            format!("A {} payload is missing.", format.name()),
        ));
    }
    match format {
        Format::Json => {
            let err = |e: &dyn std::fmt::Display| {
                malformed(format, format!("Couldn't serialize document value: {e}"))
            };
            // Fast path: a well-formed payload deserializes straight into documents.
            if let Ok(d) = serde_json::from_slice::<OneOrMany>(body) {
                return Ok(match d {
                    OneOrMany::One(o) => vec![o],
                    OneOrMany::Many(v) => v,
                });
            }
            // Error path, as Meilisearch 1.50 reads JSON payloads: first as an array whose
            // elements are skipped over (syntax errors name what was being parsed, data
            // after the array is ignored); if the payload is not an array, as one object
            // (trailing data refused); any type error is "neither an object nor a list".
            let msg = |e: serde_json::Error| match e.classify() {
                serde_json::error::Category::Data => {
                    "data are neither an object nor a list of objects".to_string()
                }
                _ => e.to_string(),
            };
            let mut de = serde_json::Deserializer::from_slice(body);
            let e = match <Vec<serde::de::IgnoredAny> as serde::Deserialize>::deserialize(&mut de) {
                Ok(_) => {
                    let mut de = serde_json::Deserializer::from_slice(body);
                    match <Vec<Obj> as serde::Deserialize>::deserialize(&mut de) {
                        // Only trailing data made the fast path fail: accepted.
                        Ok(docs) => return Ok(docs),
                        // An element that is not an object.
                        Err(e) => return Err(err(&e)),
                    }
                }
                Err(e) if e.classify() != serde_json::error::Category::Data => e,
                Err(_) => match serde_json::from_slice::<Obj>(body) {
                    Err(e) => e,
                    // (The fast path already accepts any lone object.)
                    Ok(o) => return Ok(vec![o]),
                },
            };
            Err(err(&msg(e)))
        }
        Format::Ndjson => {
            // One stream over the whole payload, so error lines count from its start.
            serde_json::Deserializer::from_slice(body)
                .into_iter::<Obj>()
                .map(|r| {
                    r.map_err(|e| {
                        malformed(format, format!("Couldn't serialize document value: {e}"))
                    })
                })
                .collect()
        }
        Format::Csv => parse_csv(body, csv_delimiter),
    }
}

#[derive(Clone, Copy)]
enum CsvType {
    Str,
    Num,
    Bool,
}

/// CSV with Meilisearch's typed headers: `name`, `name:string`, `name:number`, `name:boolean`.
/// Empty cells become `null`.
fn parse_csv(body: &[u8], delimiter: u8) -> Result<Vec<Obj>> {
    let f = Format::Csv;
    let mut rdr = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .has_headers(true)
        .from_reader(body);
    let headers = rdr.headers().map_err(|e| malformed(f, e))?.clone();
    let mut cols = Vec::new();
    for h in headers.iter() {
        let (name, ty) = match h.rsplit_once(':') {
            Some((n, "number")) => (n, CsvType::Num),
            Some((n, "boolean")) => (n, CsvType::Bool),
            Some((n, "string")) => (n, CsvType::Str),
            _ => (h, CsvType::Str),
        };
        cols.push((name.to_string(), ty));
    }
    let mut out = Vec::new();
    for (line, rec) in rdr.records().enumerate() {
        let rec = rec.map_err(|e| malformed(f, e))?;
        let mut o = Obj(Vec::with_capacity(cols.len()));
        for ((name, ty), cell) in cols.iter().zip(rec.iter()) {
            let v = if cell.is_empty() {
                Value::Null
            } else {
                match ty {
                    CsvType::Str => Value::String(cell.to_string()),
                    CsvType::Num => {
                        let t = cell.trim();
                        if let Ok(i) = t.parse::<i64>() {
                            Value::Number(i.into())
                        } else {
                            let x: f64 = t.parse().map_err(|e| csv_data_error(format!("Error parsing number {t:?} at line {}: {e}", line + 1)))?;
                            Number::from_f64(x).map(Value::Number).unwrap_or(Value::Null)
                        }
                    }
                    CsvType::Bool => match cell.trim() {
                        "true" => Value::Bool(true),
                        "false" => Value::Bool(false),
                        other => return Err(csv_data_error(format!("Error parsing boolean {other:?} at line {}: provided string was not `true` or `false`", line + 1))),
                    },
                }
            };
            o.0.push((name.clone(), v));
        }
        out.push(o);
    }
    Ok(out)
}

/// A badly typed CSV cell; Meilisearch words these with a colon (`malformed: `…``) and
/// counts data lines from 1 (the header being line 0).
fn csv_data_error(detail: String) -> ApiError {
    ApiError::bad(
        "malformed_payload",
        format!("The `csv` payload provided is malformed: `{detail}`."),
    )
}

/// Primary-key inference: the single top-level field whose name ends with `id`
/// (case-insensitive), looked up in the first document.
pub fn infer_primary_key(first: Option<&Obj>) -> Result<String> {
    let mut cands: Vec<&str> = first
        .map(|d| {
            d.keys()
                .filter(|k| k.to_lowercase().ends_with("id"))
                .collect()
        })
        .unwrap_or_default();
    // Meilisearch 1.50 sorts the candidates (milli `retrieve_or_guess_primary_key`), so the
    // two names in the message are the first two in byte order, not in document order.
    cands.sort_unstable();
    match cands.as_slice() {
        [one] => Ok(one.to_string()),
        [] => Err(ApiError::bad("index_primary_key_no_candidate_found", "The primary key inference failed as the engine did not find any field ending with `id` in its name. Please specify the primary key manually using the `primaryKey` query parameter.")),
        many => Err(ApiError::bad(
            "index_primary_key_multiple_candidates_found",
            format!(
                "The primary key inference failed as the engine found {} fields ending with `id` in their names: '{}' and '{}'. Please specify the primary key manually using the `primaryKey` query parameter.",
                many.len(), many[0], many[1]
            ),
        )),
    }
}

fn invalid_id(v: &Value) -> ApiError {
    let shown = match v {
        Value::String(s) => format!("\"{s}\""),
        other => other.to_string(),
    };
    ApiError::bad("invalid_document_id", format!("Document identifier `{shown}` is invalid. A document identifier can be of type integer or string, only composed of alphanumeric characters (a-z A-Z 0-9), hyphens (-) and underscores (_), and can not be more than 511 bytes."))
}

/// Validates a document id value and returns its canonical string (integers in decimal).
pub fn canonical_id(v: &Value) -> Result<String> {
    match v {
        Value::Number(n) if n.is_i64() || n.is_u64() => Ok(n.to_string()),
        Value::String(s)
            if !s.is_empty()
                && s.len() <= 511
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') =>
        {
            Ok(s.clone())
        }
        other => Err(invalid_id(other)),
    }
}

/// The id of one document under primary key `pk` (nested `a.b` keys supported).
pub fn document_id(doc: &Obj, pk: &str) -> Result<String> {
    let shown = || String::from_utf8_lossy(&doc.to_bytes()).into_owned();
    let mut vals = Vec::new();
    if pk.contains('.') {
        crate::json::values_at_path(doc, pk, &mut vals);
    } else {
        // A flat key is the field itself, an array included (an invalid id for Meilisearch,
        // not a list of ids as a filter path would read it).
        vals.extend(doc.0.iter().filter(|(k, _)| k == pk).map(|(_, v)| v));
    }
    match vals.as_slice() {
        [] => Err(ApiError::bad(
            "missing_document_id",
            format!("Document doesn't have a `{pk}` attribute: `{}`.", shown()),
        )),
        [v] => canonical_id(v),
        _ => Err(ApiError::bad(
            "invalid_document_id",
            format!(
                "Document have too many matching `{pk}` attribute: `{}`.",
                shown()
            ),
        )),
    }
}

/// A string id from the URL or a delete-batch body (path ids are strings; numbers accepted).
pub fn id_from_value(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_payload_errors_read_like_meilisearch() {
        let m = |b: &[u8]| parse(Format::Json, b, b',').unwrap_err().message;
        let pre = "The `json` payload provided is malformed. `Couldn't serialize document value: ";
        assert_eq!(
            m(b"12"),
            format!("{pre}data are neither an object nor a list of objects`.")
        );
        assert_eq!(
            m(b"[{\"id\":1,"),
            format!("{pre}EOF while parsing an object at line 1 column 9`.")
        );
        assert_eq!(
            m(b"[{\"id\":1},"),
            format!("{pre}EOF while parsing a value at line 1 column 10`.")
        );
        assert_eq!(
            m(b"{\"id\":1"),
            format!("{pre}EOF while parsing an object at line 1 column 7`.")
        );
        // Data after the array is ignored, as Meilisearch's array reader does.
        assert_eq!(
            parse(Format::Json, b"[{\"id\":1}] x", b',').unwrap().len(),
            1
        );
        let e = parse(Format::Ndjson, b"{\"id\":1}\n{bad", b',').unwrap_err();
        assert!(
            e.message
                .ends_with("key must be a string at line 2 column 2`."),
            "{}",
            e.message
        );
    }

    #[test]
    fn content_types() {
        assert_eq!(
            format_of(Some("application/json; charset=utf-8")).unwrap(),
            Format::Json
        );
        assert_eq!(format_of(Some("text/csv")).unwrap(), Format::Csv);
        assert_eq!(format_of(Some("text/plain")).unwrap_err().status, 415);
        assert_eq!(format_of(None).unwrap_err().code, "missing_content_type");
    }

    #[test]
    fn json_ndjson_csv() {
        assert_eq!(parse(Format::Json, br#"{"id":1}"#, b',').unwrap().len(), 1);
        assert_eq!(
            parse(Format::Json, br#"[{"id":1},{"id":2}]"#, b',')
                .unwrap()
                .len(),
            2
        );
        assert_eq!(
            parse(Format::Json, br#"[{"id":1},"#, b',')
                .unwrap_err()
                .code,
            "malformed_payload"
        );
        assert_eq!(
            parse(Format::Json, b"  ", b',').unwrap_err().code,
            "missing_payload"
        );
        assert_eq!(
            parse(Format::Ndjson, b"{\"id\":1}\n\n{\"id\":2}\n", b',')
                .unwrap()
                .len(),
            2
        );
        let docs = parse(
            Format::Csv,
            b"id:number,title,ok:boolean,price:number\n1,\"a, b\",true,1.5\n2,,false,\n",
            b',',
        )
        .unwrap();
        assert_eq!(
            docs[0].to_value(),
            json!({"id": 1, "title": "a, b", "ok": true, "price": 1.5})
        );
        assert_eq!(
            docs[1].to_value(),
            json!({"id": 2, "title": null, "ok": false, "price": null})
        );
        let docs = parse(Format::Csv, b"id;t\n1;x\n", b';').unwrap();
        assert_eq!(docs[0].to_value(), json!({"id": "1", "t": "x"}));
        assert_eq!(
            parse(Format::Csv, b"n:number\nabc\n", b',')
                .unwrap_err()
                .code,
            "malformed_payload"
        );
    }

    #[test]
    fn primary_key_inference() {
        let d: Obj = serde_json::from_value(json!({"title": "x", "movieId": 1})).unwrap();
        assert_eq!(infer_primary_key(Some(&d)).unwrap(), "movieId");
        let d: Obj = serde_json::from_value(json!({"title": "x"})).unwrap();
        assert_eq!(
            infer_primary_key(Some(&d)).unwrap_err().code,
            "index_primary_key_no_candidate_found"
        );
        let d: Obj = serde_json::from_value(json!({"id": 1, "author_id": 2})).unwrap();
        assert_eq!(
            infer_primary_key(Some(&d)).unwrap_err().code,
            "index_primary_key_multiple_candidates_found"
        );
    }

    #[test]
    fn ids() {
        assert_eq!(canonical_id(&json!(42)).unwrap(), "42");
        assert_eq!(canonical_id(&json!("a-B_9")).unwrap(), "a-B_9");
        assert_eq!(
            canonical_id(&json!("a b")).unwrap_err().code,
            "invalid_document_id"
        );
        assert_eq!(
            canonical_id(&json!(1.5)).unwrap_err().code,
            "invalid_document_id"
        );
        assert_eq!(
            canonical_id(&json!("x".repeat(512))).unwrap_err().code,
            "invalid_document_id"
        );
        let d: Obj = serde_json::from_value(json!({"title": "x"})).unwrap();
        assert_eq!(
            document_id(&d, "id").unwrap_err().code,
            "missing_document_id"
        );
        // Flat keys are read as milli reads them: an array or `null` is an invalid id.
        for v in [json!([1]), json!(null), json!([])] {
            let d: Obj = serde_json::from_value(json!({"id": v})).unwrap();
            let e = document_id(&d, "id").unwrap_err();
            assert_eq!(e.code, "invalid_document_id", "{v}");
        }
        let d: Obj = serde_json::from_value(json!({"a": {"id": 3}})).unwrap();
        assert_eq!(document_id(&d, "a.id").unwrap(), "3");
    }

    #[test]
    fn candidates_are_named_in_byte_order() {
        let d: Obj = serde_json::from_value(json!({"b_id": 1, "a_id": 2})).unwrap();
        assert!(infer_primary_key(Some(&d))
            .unwrap_err()
            .message
            .contains("'a_id' and 'b_id'"));
    }
}
