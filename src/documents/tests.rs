use super::*;
use crate::routing::shard_for_key;
use proptest::prelude::*;
use serde_json::{json, Value};

const S: u32 = 64;

fn opts() -> BatchOptions<'static> {
    BatchOptions::new(S)
}

fn with_pk(pk: &'static str) -> BatchOptions<'static> {
    BatchOptions {
        index_primary_key: Some(pk),
        ..opts()
    }
}

fn prepare(
    body: &str,
    format: PayloadFormat,
    o: &BatchOptions<'_>,
) -> Result<PreparedBatch, DocumentError> {
    prepare_batch(body.as_bytes(), format, o)
}

fn all_shards(b: &PreparedBatch) -> Vec<ShardId> {
    b.shard_ids().collect()
}

fn render_json(b: &PreparedBatch, shards: &[ShardId]) -> Vec<Value> {
    match serde_json::from_slice(&b.render(shards)).unwrap() {
        Value::Array(a) => a,
        other => panic!("not an array: {other}"),
    }
}

// ---- JSON ----

#[test]
fn json_array_is_grouped_by_shard_with_the_shard_field_last() {
    let body = r#"[{"id":42,"title":"a"},{"id":"abc","title":"b"},{"title":"c","id":"doc-00001"}]"#;
    let b = prepare(body, PayloadFormat::Json, &opts()).unwrap();
    assert_eq!(
        b.primary_key(),
        Some(&ResolvedPk {
            name: "id".into(),
            source: PkSource::Inferred
        })
    );
    assert_eq!(b.document_count(), 3);
    assert_eq!(b.fields(), ["id", "title"]);
    assert_eq!(all_shards(&b), [ShardId(25), ShardId(54), ShardId(57)]);
    assert_eq!(b.documents_in(ShardId(57)), 1);
    assert_eq!(b.documents_in(ShardId(0)), 0);
    // Bytes are the client's, with the field spliced in last.
    assert_eq!(
        b.render(&[ShardId(57)]),
        br#"[{"id":42,"title":"a","_miroir_shard":"+."}]"#.to_vec()
    );
    // (serde_json's Map sorts keys, so field order is checked on the bytes.)
    assert_eq!(
        String::from_utf8(b.render(&all_shards(&b))).unwrap(),
        r#"[{"id":"abc","title":"b","_miroir_shard":"(+"},{"title":"c","id":"doc-00001","_miroir_shard":"+*"},{"id":42,"title":"a","_miroir_shard":"+."}]"#
    );
    let docs = render_json(&b, &all_shards(&b));
    assert_eq!(docs[0][SHARD_FIELD], "(+");
    assert_eq!(b.render(&[]), b"[]");
    assert_eq!(
        b.render(&[ShardId(57), ShardId(57), ShardId(3)]),
        b.render(&[ShardId(57)])
    );
    assert_eq!(
        b.documents_in_all(&[ShardId(57), ShardId(57), ShardId(25)]),
        2
    );
}

#[test]
fn json_keeps_input_order_inside_a_shard_and_whitespace_is_harmless() {
    let body = "[ {\"id\": 42 , \"n\": 1 }\n, {\"id\":\"42\",\"n\":2}\t]";
    let b = prepare(body, PayloadFormat::Json, &opts()).unwrap();
    assert_eq!(all_shards(&b), [ShardId(57)]);
    let docs = render_json(&b, &[ShardId(57)]);
    assert_eq!(
        docs,
        vec![
            json!({"id":42,"n":1,"_miroir_shard":"+."}),
            json!({"id":"42","n":2,"_miroir_shard":"+."})
        ]
    );
}

#[test]
fn single_object_and_escaped_keys_and_ids() {
    let b = prepare(
        r#" {"i\u0064":"a\u0062c","t\"x":1} "#,
        PayloadFormat::Json,
        &opts(),
    )
    .unwrap();
    assert_eq!(b.primary_key().unwrap().name, "id");
    assert_eq!(b.fields(), ["id", "t\"x"]);
    // "a\u0062c" is "abc": same shard as the plain string.
    assert_eq!(all_shards(&b), [shard_for_key("abc", S)]);
    let docs = render_json(&b, &all_shards(&b));
    assert_eq!(docs[0]["t\"x"], 1);
}

#[test]
fn ndjson_renders_one_document_per_line() {
    let body = "{\"id\":1,\"a\":true}\n\n{\"id\":2,\"b\":null}\r\n{\"id\":1,\"c\":[1,{\"d\":2}]}";
    let b = prepare(body, PayloadFormat::NdJson, &opts()).unwrap();
    assert_eq!(b.document_count(), 3);
    assert_eq!(b.fields(), ["id", "a", "b", "c"]);
    let s1 = shard_for_key("1", S);
    let t1 = shard_token(s1);
    let rendered = String::from_utf8(b.render(&[s1])).unwrap();
    assert_eq!(
        rendered,
        format!("{{\"id\":1,\"a\":true,\"_miroir_shard\":\"{t1}\"}}\n{{\"id\":1,\"c\":[1,{{\"d\":2}}],\"_miroir_shard\":\"{t1}\"}}\n")
    );
    let all = String::from_utf8(b.render(&all_shards(&b))).unwrap();
    assert_eq!(all.lines().count(), 3);
    for line in all.lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        assert!(parse_shard_token(v[SHARD_FIELD].as_str().unwrap()).is_some());
    }
}

#[test]
fn pk_resolution_order() {
    let body = r#"[{"id":1,"sku":"x"}]"#;
    let b = prepare(body, PayloadFormat::Json, &with_pk("sku")).unwrap();
    assert_eq!(
        b.primary_key(),
        Some(&ResolvedPk {
            name: "sku".into(),
            source: PkSource::Index
        })
    );
    assert_eq!(all_shards(&b), [shard_for_key("x", S)]);
    let q = BatchOptions {
        query_primary_key: Some("sku"),
        ..opts()
    };
    assert_eq!(
        prepare(body, PayloadFormat::Json, &q)
            .unwrap()
            .primary_key()
            .unwrap()
            .source,
        PkSource::Query
    );
    let same = BatchOptions {
        index_primary_key: Some("sku"),
        query_primary_key: Some("sku"),
        ..opts()
    };
    assert_eq!(
        prepare(body, PayloadFormat::Json, &same)
            .unwrap()
            .primary_key()
            .unwrap()
            .source,
        PkSource::Index
    );
    let clash = BatchOptions {
        index_primary_key: Some("sku"),
        query_primary_key: Some("id"),
        ..opts()
    };
    let e = prepare(body, PayloadFormat::Json, &clash).unwrap_err();
    assert_eq!(
        e,
        DocumentError::PrimaryKeyAlreadyExists {
            existing: "sku".into()
        }
    );
    assert_eq!(e.error_code(), ErrorCode::IndexPrimaryKeyAlreadyExists);
    assert_eq!(e.to_string(), "Index already has a primary key: `sku`.");
}

#[test]
fn inference_rules() {
    assert_eq!(
        infer_primary_key(["title", "ProductID"]).unwrap(),
        "ProductID"
    );
    assert_eq!(infer_primary_key(["uid", "x"]).unwrap(), "uid");
    assert_eq!(
        infer_primary_key(["idx", "identity"]).unwrap_err(),
        DocumentError::NoPrimaryKeyCandidate
    );
    let e = infer_primary_key(["user_id", "id", "title"]).unwrap_err();
    assert_eq!(
        e,
        DocumentError::MultiplePrimaryKeyCandidates {
            candidates: vec!["id".into(), "user_id".into()]
        }
    );
    assert_eq!(
        e.to_string(),
        "The primary key inference failed as the engine found 2 fields ending with `id` in their names: 'id' and 'user_id'. Please specify the primary key manually using the `primaryKey` query parameter."
    );
    assert_eq!(
        e.error_code(),
        ErrorCode::IndexPrimaryKeyMultipleCandidatesFound
    );
    let none = prepare(r#"[{"title":"x"}]"#, PayloadFormat::Json, &opts()).unwrap_err();
    assert_eq!(
        none.error_code(),
        ErrorCode::IndexPrimaryKeyNoCandidateFound
    );
    assert!(none.to_string().starts_with(
        "The primary key inference failed as the engine did not find any field ending with `id`"
    ));
    // Inference looks at the first document only.
    let b = prepare(
        r#"[{"id":1},{"id":2,"user_id":3}]"#,
        PayloadFormat::Json,
        &opts(),
    )
    .unwrap();
    assert_eq!(b.primary_key().unwrap().name, "id");
}

#[test]
fn missing_pk_rejects_the_whole_batch() {
    let body = r#"[{"id":1},{"title":"no id"},{"id":3}]"#;
    let e = prepare(body, PayloadFormat::Json, &with_pk("id")).unwrap_err();
    assert_eq!(
        e,
        DocumentError::MissingPrimaryKey {
            position: 1,
            primary_key: "id".into(),
            document: r#"{"title":"no id"}"#.into()
        }
    );
    // Meilisearch's code and words (a failed task there, docs/contract.md#primary-key).
    assert!(e.is_task_failure());
    let m = MeiliError::from(e);
    assert_eq!(m.code, ErrorCode::MissingDocumentId);
    assert_eq!(
        m.message,
        "Document doesn't have a `id` attribute: `{\"title\":\"no id\"}`."
    );
    // The document is shown as serde_json prints it: compact, field order kept.
    let e = prepare(
        "[{\"id\":1},{ \"b\" : 1.50, \"a\": {\"z\": 1, \"y\": \"\\u00e9\"} }]",
        PayloadFormat::Json,
        &with_pk("id"),
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "Document doesn't have a `id` attribute: `{\"b\":1.5,\"a\":{\"z\":1,\"y\":\"é\"}}`."
    );
    // `null` is a value milli refuses as an id, not a missing one.
    let null = prepare(r#"[{"id":null}]"#, PayloadFormat::Json, &with_pk("id")).unwrap_err();
    assert_eq!(
        null,
        DocumentError::InvalidDocumentId {
            value: "null".into()
        }
    );
}

#[test]
fn invalid_ids_use_meilisearch_error() {
    for (doc, shown) in [
        (r#"{"id":"a b"}"#, r#""a b""#),
        (r#"{"id":""}"#, r#""""#),
        (r#"{"id":1.5}"#, "1.5"),
        (r#"{"id":true}"#, "true"),
        (r#"{"id":[1]}"#, "[1]"),
        (r#"{"id":{"a":1}}"#, r#"{"a":1}"#),
        (r#"{"id":"é"}"#, r#""é""#),
        // Shown as serde_json prints the parsed value (an f64 here), as Meilisearch does.
        (r#"{"id":100000000000000000000}"#, "1e+20"),
        (r#"{"id":1.50}"#, "1.5"),
        (r#"{"id":"\u0041 b"}"#, r#""A b""#),
        (r#"{"id":null}"#, "null"),
    ] {
        let e = prepare(doc, PayloadFormat::Json, &opts()).unwrap_err();
        assert_eq!(
            e,
            DocumentError::InvalidDocumentId {
                value: shown.into()
            },
            "{doc}"
        );
        assert_eq!(e.error_code(), ErrorCode::InvalidDocumentId);
    }
    let e = DocumentError::InvalidDocumentId {
        value: "\"a b\"".into(),
    };
    assert_eq!(
        e.to_string(),
        "Document identifier `\"a b\"` is invalid. A document identifier can be of type integer or string, only composed of alphanumeric characters (a-z A-Z 0-9), hyphens (-) and underscores (_), and can not be more than 511 bytes."
    );
    let long_ok = format!(r#"{{"id":"{}"}}"#, "a".repeat(511));
    assert!(prepare(&long_ok, PayloadFormat::Json, &opts()).is_ok());
    let too_long = format!(r#"{{"id":"{}"}}"#, "a".repeat(512));
    assert_eq!(
        prepare(&too_long, PayloadFormat::Json, &opts())
            .unwrap_err()
            .error_code(),
        ErrorCode::InvalidDocumentId
    );
    // Integers of any sign and u64 range are valid.
    for id in ["-5", "0", "18446744073709551615"] {
        let b = prepare(&format!(r#"{{"id":{id}}}"#), PayloadFormat::Json, &opts()).unwrap();
        assert_eq!(all_shards(&b), [shard_for_key(id, S)]);
    }
}

#[test]
fn reserved_fields_are_refused() {
    let e = prepare(
        r#"[{"id":1},{"id":2,"_miroir_shard":3}]"#,
        PayloadFormat::Json,
        &opts(),
    )
    .unwrap_err();
    assert_eq!(
        e,
        DocumentError::ReservedField {
            position: 1,
            field: SHARD_FIELD.into()
        }
    );
    assert_eq!(e.error_code(), ErrorCode::MiroirReservedField);
    let extra = vec!["_miroir_updated_at".to_string()];
    let o = BatchOptions {
        extra_reserved: &extra,
        ..opts()
    };
    let e = prepare(
        r#"{"id":1,"_miroir_updated_at":5}"#,
        PayloadFormat::Json,
        &o,
    )
    .unwrap_err();
    assert_eq!(e.error_code(), ErrorCode::MiroirReservedField);
    assert!(e.to_string().contains("`_miroir_updated_at`"));
    // Nested names are not reserved (they flatten to `a._miroir_shard`).
    assert!(prepare(
        r#"{"id":1,"a":{"_miroir_shard":1}}"#,
        PayloadFormat::Json,
        &opts()
    )
    .is_ok());
    // The reserved check comes before PK inference, so it is reported even without an id.
    let e = prepare(r#"{"_miroir_shard":1}"#, PayloadFormat::Json, &opts()).unwrap_err();
    assert_eq!(e.error_code(), ErrorCode::MiroirReservedField);
}

#[test]
fn payload_errors() {
    let e = prepare("", PayloadFormat::Json, &opts()).unwrap_err();
    assert_eq!(e.to_string(), "A json payload is missing.");
    assert_eq!(e.error_code(), ErrorCode::MissingPayload);
    assert_eq!(
        prepare("", PayloadFormat::Csv { delimiter: b',' }, &opts())
            .unwrap_err()
            .to_string(),
        "A csv payload is missing."
    );
    for (body, detail) in [
        ("[1,2]", NOT_OBJECTS),
        ("\"x\"", NOT_OBJECTS),
        ("42", NOT_OBJECTS),
        (
            "[{\"id\":1},",
            "EOF while parsing a value at line 1 column 10",
        ),
        (
            "{\"id\":1",
            "EOF while parsing an object at line 1 column 7",
        ),
        ("   ", "EOF while parsing a value at line 1 column 3"),
        ("nope", "expected ident at line 1 column 2"),
    ] {
        let e = prepare(body, PayloadFormat::Json, &opts()).unwrap_err();
        assert_eq!(
            e,
            DocumentError::MalformedPayload {
                format: "json",
                detail: detail.into()
            },
            "{body}"
        );
        assert_eq!(e.error_code(), ErrorCode::MalformedPayload);
    }
    assert_eq!(
        DocumentError::MalformedPayload { format: "json", detail: NOT_OBJECTS.into() }.to_string(),
        "The `json` payload provided is malformed. `Couldn't serialize document value: data are neither an object nor a list of objects`."
    );
    let e = prepare("{\"id\":1}\n2\n", PayloadFormat::NdJson, &opts()).unwrap_err();
    assert_eq!(
        e,
        DocumentError::MalformedPayload {
            format: "ndjson",
            detail: NOT_OBJECTS.into()
        }
    );
    let e = prepare_batch(b"[{\"id\":\"\xff\"}]", PayloadFormat::Json, &opts()).unwrap_err();
    assert_eq!(e.error_code(), ErrorCode::MalformedPayload);
}

#[test]
fn deep_nesting_does_not_overflow_the_stack() {
    // Values other than the primary key are skipped iteratively (never built), so nesting
    // depth costs no stack; the node applies its own limits to the document. The delete-batch
    // path builds `Value`s for non-string ids and hits serde_json's recursion limit instead.
    let deep = format!(
        "[{{\"id\":1,\"a\":{}{}}}]",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    for format in [PayloadFormat::Json, PayloadFormat::NdJson] {
        let body = if format == PayloadFormat::Json {
            &deep[..]
        } else {
            &deep[1..deep.len() - 1]
        };
        let b = prepare(body, format, &opts()).map_err(|e| e.error_code());
        assert_eq!(b.map(|b| b.document_count()), Ok(1));
    }
    let ids = format!("[{}{}]", "[".repeat(100_000), "]".repeat(100_000));
    let e = prepare_delete_batch(ids.as_bytes(), S).map(|d| d.id_count());
    assert!(
        matches!(e, Err(DocumentError::InvalidDeleteBatch { ref detail }) if detail.starts_with("recursion limit exceeded"))
    );
}

#[test]
fn long_messages_are_elided_like_meilisearch() {
    let long = "x".repeat(300);
    let out = elide(long.clone());
    assert_eq!(out.len(), 50 + 3 + 85);
    assert!(out.starts_with(&"x".repeat(50)) && out.contains("..."));
    assert_eq!(elide("short".into()), "short");
    // Multi-byte characters are cut on character boundaries.
    let wide = "é".repeat(300);
    assert_eq!(elide(wide).chars().count(), 50 + 3 + 85);
}

#[test]
fn empty_batches() {
    let b = prepare("[]", PayloadFormat::Json, &opts()).unwrap();
    assert_eq!(
        (b.document_count(), b.primary_key(), b.shard_ids().count()),
        (0, None, 0)
    );
    let b = prepare("[]", PayloadFormat::Json, &with_pk("id")).unwrap();
    assert_eq!(b.primary_key().unwrap().name, "id");
    let b = prepare("\n\n", PayloadFormat::NdJson, &opts()).unwrap();
    assert_eq!(b.document_count(), 0);
    let b = prepare(
        "id,title\n",
        PayloadFormat::Csv { delimiter: b',' },
        &opts(),
    )
    .unwrap();
    assert_eq!((b.document_count(), b.primary_key()), (0, None));
    assert_eq!(b.fields(), ["id", "title"]);
}

#[test]
fn field_order_survives_the_switch_to_hashing() {
    // More distinct fields than the linear-scan threshold, repeated across documents, in an
    // order that is not sorted; a later document brings one more field.
    let fields: String = (0..40).rev().map(|f| format!(",\"f{f:02}\":{f}")).collect();
    let body = format!("[{{\"id\":1{fields}}},{{\"id\":2{fields}}},{{\"zz\":0,\"id\":3{fields}}}]");
    let b = prepare(&body, PayloadFormat::Json, &opts()).unwrap();
    let mut expected = vec!["id".to_string()];
    expected.extend((0..40).rev().map(|f| format!("f{f:02}")));
    expected.push("zz".into());
    assert_eq!(b.fields(), expected.as_slice());
}

#[test]
fn new_fields_against_known() {
    let b = prepare(
        r#"[{"id":1,"a":1},{"id":2,"b":1,"a":2}]"#,
        PayloadFormat::Json,
        &opts(),
    )
    .unwrap();
    assert_eq!(b.new_fields(&["id".to_string()]), ["a", "b"]);
    assert!(b
        .new_fields(&["b".into(), "a".into(), "id".into()])
        .is_empty());
}

// ---- CSV ----

fn csv_rows(bytes: &[u8], delimiter: u8) -> Vec<Vec<String>> {
    let mut r = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .has_headers(false)
        .from_reader(bytes);
    r.records()
        .map(|rec| rec.unwrap().iter().map(String::from).collect())
        .collect()
}

#[test]
fn csv_gets_an_extra_typed_column() {
    let body = "id,title,price:number,ok:boolean\n42,\"Hello, world\",1.5,true\nabc,x,,false\n";
    let b = prepare(body, PayloadFormat::Csv { delimiter: b',' }, &opts()).unwrap();
    assert_eq!(
        b.primary_key(),
        Some(&ResolvedPk {
            name: "id".into(),
            source: PkSource::Inferred
        })
    );
    assert_eq!(b.fields(), ["id", "title", "price", "ok"]);
    assert_eq!(b.document_count(), 2);
    let rows = csv_rows(&b.render(&all_shards(&b)), b',');
    assert_eq!(
        rows[0],
        ["id", "title", "price:number", "ok:boolean", "_miroir_shard"]
    );
    assert_eq!(rows[1], ["abc", "x", "", "false", "(+"].map(String::from));
    assert_eq!(
        rows[2],
        ["42", "Hello, world", "1.5", "true", "+."].map(String::from)
    );
    let only57 = String::from_utf8(b.render(&[ShardId(57)])).unwrap();
    assert_eq!(
        only57,
        "id,title,price:number,ok:boolean,_miroir_shard\n42,\"Hello, world\",1.5,true,+.\n"
    );
}

#[test]
fn csv_delimiter_and_string_ids() {
    let body = "sku;name\n42;a\n\"doc-00001\";\"semi;colon\"\n";
    let b = prepare(
        body,
        PayloadFormat::Csv { delimiter: b';' },
        &with_pk("sku"),
    )
    .unwrap();
    assert_eq!(all_shards(&b), [ShardId(54), ShardId(57)]);
    let rows = csv_rows(&b.render(&[ShardId(54)]), b';');
    assert_eq!(rows[1], ["doc-00001", "semi;colon", "+*"].map(String::from));
    assert_eq!(b.format().content_type(), "text/csv");
}

#[test]
fn csv_errors() {
    let csv = PayloadFormat::Csv { delimiter: b',' };
    // An empty cell is `null` for Meilisearch: an invalid id, not a missing one.
    let e = prepare("id,title\n,x\n", csv, &opts()).unwrap_err();
    assert_eq!(
        e,
        DocumentError::InvalidDocumentId {
            value: "null".into()
        }
    );
    let e = prepare("title,n:number\nx,\n", csv, &with_pk("id")).unwrap_err();
    assert!(
        matches!(e, DocumentError::MissingPrimaryKey { position: 0, ref document, .. } if document == r#"{"title":"x","n":null}"#),
        "{e:?}"
    );
    assert_eq!(e.error_code(), ErrorCode::MissingDocumentId);
    let e = prepare("id:number\n1.5\n", csv, &opts()).unwrap_err();
    assert_eq!(
        e,
        DocumentError::InvalidDocumentId {
            value: "1.5".into()
        }
    );
    let e = prepare("id\na b\n", csv, &opts()).unwrap_err();
    assert_eq!(
        e,
        DocumentError::InvalidDocumentId {
            value: "\"a b\"".into()
        }
    );
    let e = prepare("id:boolean\ntrue\n", csv, &opts()).unwrap_err();
    assert_eq!(e.error_code(), ErrorCode::InvalidDocumentId);
    let e = prepare("id,n:number\n1,abc\n", csv, &opts()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "The `csv` payload provided is malformed: `could not parse `abc` as a number for the field `n` at line 2`."
    );
    let e = prepare("id,b:boolean\n1,yes\n", csv, &opts()).unwrap_err();
    assert_eq!(e.error_code(), ErrorCode::MalformedPayload);
    let e = prepare("id,a\n1,2,3\n", csv, &opts()).unwrap_err();
    assert_eq!(e.error_code(), ErrorCode::MalformedPayload);
    let e = prepare("id,_miroir_shard:number\n1,2\n", csv, &opts()).unwrap_err();
    assert_eq!(
        e,
        DocumentError::ReservedField {
            position: 0,
            field: SHARD_FIELD.into()
        }
    );
}

#[test]
fn csv_unknown_annotation_keeps_the_whole_header() {
    let b = prepare(
        "id,url:http\n1,x\n",
        PayloadFormat::Csv { delimiter: b',' },
        &opts(),
    )
    .unwrap();
    assert_eq!(b.fields(), ["id", "url:http"]);
    let b = prepare(
        "id:number\n 7 \n",
        PayloadFormat::Csv { delimiter: b',' },
        &opts(),
    )
    .unwrap();
    assert_eq!(all_shards(&b), [shard_for_key("7", S)]);
}

#[test]
fn node_bodies_cover_every_target_with_its_shards_only() {
    use crate::ids::{GroupId, NodeId};
    use crate::routing::ShardMap;
    use crate::snapshot::ShardMigration;
    use crate::topology::{Node, NodeStatus, Topology};
    let node = |id: &str, g: u32| Node {
        id: NodeId::new(id),
        address: String::new(),
        replica_group: GroupId(g),
        status: NodeStatus::Active,
    };
    let topo = Topology::new(
        1,
        2,
        [
            node("meili-0", 0),
            node("meili-1", 0),
            node("meili-2", 0),
            node("r-0", 1),
        ],
    )
    .unwrap();
    let map = ShardMap::new(&topo, 16);
    let body = r#"[{"id":"doc-00001"},{"id":"x1"},{"id":"x2"},{"id":"x3"}]"#;
    let b = prepare(body, PayloadFormat::Json, &BatchOptions::new(16)).unwrap();
    let migrations = [ShardMigration {
        index: "movies".into(),
        shard: ShardId(6),
        group: GroupId(0),
        from: NodeId::new("meili-2"),
        to: NodeId::new("meili-9"),
    }];
    let bodies = b.node_bodies(&map, "movies", &migrations);
    // Group 1 has one node: it receives everything.
    let r0 = bodies.iter().find(|nb| nb.node.as_str() == "r-0").unwrap();
    assert_eq!(r0.documents, 4);
    assert_eq!(r0.body, b.render(&b.shard_ids().collect::<Vec<_>>()));
    // Group 0 splits the batch: every document exactly once across its nodes.
    let g0: usize = bodies
        .iter()
        .filter(|nb| nb.node.as_str().starts_with("meili-") && nb.node.as_str() != "meili-9")
        .map(|nb| nb.documents)
        .sum();
    assert_eq!(g0, 4);
    // doc-00001 is shard 6 at S=16: the migration target gets exactly that document.
    let m9 = bodies
        .iter()
        .find(|nb| nb.node.as_str() == "meili-9")
        .unwrap();
    assert_eq!(
        (m9.shards.as_slice(), m9.documents),
        ([ShardId(6)].as_slice(), 1)
    );
    assert_eq!(
        String::from_utf8(m9.body.clone()).unwrap(),
        r#"[{"id":"doc-00001","_miroir_shard":"-"}]"#
    );
    for nb in &bodies {
        let docs: Vec<Value> = serde_json::from_slice(&nb.body).unwrap();
        assert_eq!(docs.len(), nb.documents);
        for d in docs {
            assert!(nb
                .shards
                .contains(&parse_shard_token(d[SHARD_FIELD].as_str().unwrap()).unwrap()));
        }
    }
    let del = prepare_delete_batch(br#"["doc-00001","x1"]"#, 16).unwrap();
    let del_bodies = del.node_bodies(&map, "movies", &[]);
    assert_eq!(
        del_bodies.iter().map(|nb| nb.documents).sum::<usize>(),
        4,
        "2 ids x 2 groups"
    );
}

// ---- formats & delete ----

#[test]
fn content_types() {
    assert_eq!(
        PayloadFormat::from_content_type("application/json; charset=utf-8", b','),
        Some(PayloadFormat::Json)
    );
    assert_eq!(
        PayloadFormat::from_content_type("application/x-ndjson", b','),
        Some(PayloadFormat::NdJson)
    );
    assert_eq!(
        PayloadFormat::from_content_type("TEXT/CSV", b';'),
        Some(PayloadFormat::Csv { delimiter: b';' })
    );
    assert_eq!(PayloadFormat::from_content_type("text/plain", b','), None);
}

#[test]
fn delete_batch_routes_like_meilisearch_stringifies() {
    let d = prepare_delete_batch(br#"[42, "42", "abc", 1.5, "doc-00001"]"#, S).unwrap();
    assert_eq!(d.id_count(), 5);
    assert_eq!(d.ids_in(ShardId(57)), 2);
    assert_eq!(d.render(&[ShardId(57)]), br#"[42,"42"]"#.to_vec());
    assert_eq!(
        d.render(&[ShardId(25), ShardId(54)]),
        br#"["abc","doc-00001"]"#.to_vec()
    );
    let float_shard = shard_for_key("1.5", S);
    assert_eq!(d.ids_in(float_shard), 1);
    let all: Vec<ShardId> = d.shard_ids().collect();
    let v: Value = serde_json::from_slice(&d.render(&all)).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 5);
    assert_eq!(d.render(&[]), b"[]");
    let e = prepare_delete_batch(br#"{"ids":[1]}"#, S).unwrap_err();
    assert_eq!(e.error_code(), ErrorCode::BadRequest);
    assert!(
        e.to_string()
            .starts_with("Json deserialize error: invalid type: map"),
        "{e}"
    );
    assert!(prepare_delete_batch(b"", S).is_err());
    assert_eq!(prepare_delete_batch(b"[]", S).unwrap().id_count(), 0);
}

#[test]
fn zero_shards_is_an_error_not_a_panic() {
    assert!(prepare(r#"{"id":1}"#, PayloadFormat::Json, &BatchOptions::new(0)).is_err());
    assert!(prepare_delete_batch(b"[1]", 0).is_err());
}

// ---- properties ----

fn arb_id() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::from),
        "[A-Za-z0-9_-]{1,20}".prop_map(Value::from)
    ]
}

fn arb_doc() -> impl Strategy<Value = serde_json::Map<String, Value>> {
    (
        arb_id(),
        proptest::collection::vec(
            (
                "[a-z]{1,6}",
                prop_oneof![
                    any::<i32>().prop_map(Value::from),
                    "\\PC{0,10}".prop_map(Value::from)
                ],
            ),
            0..4,
        ),
    )
        .prop_map(|(id, extra)| {
            let mut m = serde_json::Map::new();
            m.insert("id".into(), id);
            for (k, v) in extra {
                if k != "id" && !k.ends_with("id") {
                    m.insert(k, v);
                }
            }
            m
        })
}

fn canonical(id: &Value) -> String {
    match id {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

    #[test]
    fn prop_never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..200), delim in any::<u8>()) {
        for format in [PayloadFormat::Json, PayloadFormat::NdJson, PayloadFormat::Csv { delimiter: delim }] {
            if let Ok(b) = prepare_batch(&bytes, format, &opts()) {
                let all: Vec<ShardId> = b.shard_ids().collect();
                let _ = b.render(&all);
            }
        }
        let _ = prepare_delete_batch(&bytes, S);
    }

    #[test]
    fn prop_never_panics_on_json_like_text(text in "[\\[\\]{}\",:a-z0-9 \\n_\\\\-]{0,80}") {
        for format in [PayloadFormat::Json, PayloadFormat::NdJson, PayloadFormat::Csv { delimiter: b',' }] {
            let _ = prepare_batch(text.as_bytes(), format, &opts());
        }
    }

    #[test]
    fn prop_json_batches_round_trip_every_document_once(
        docs in proptest::collection::vec(arb_doc(), 1..20), pick in proptest::collection::vec(any::<bool>(), 64),
    ) {
        let body = serde_json::to_vec(&docs).unwrap();
        let b = prepare_batch(&body, PayloadFormat::Json, &opts()).unwrap();
        prop_assert_eq!(b.document_count(), docs.len());
        // Render a random subset of shards, then the complement: together, every doc once.
        let all: Vec<ShardId> = b.shard_ids().collect();
        let (left, right): (Vec<ShardId>, Vec<ShardId>) = all.iter().partition(|s| pick[s.0 as usize]);
        let mut seen = 0;
        for part in [&left, &right] {
            let rendered: Vec<serde_json::Map<String, Value>> = serde_json::from_slice(&b.render(part)).unwrap();
            prop_assert_eq!(rendered.len(), b.documents_in_all(part));
            for mut d in rendered {
                let shard = parse_shard_token(d.remove(SHARD_FIELD).unwrap().as_str().unwrap()).unwrap().0;
                prop_assert!(part.contains(&ShardId(shard)));
                prop_assert_eq!(ShardId(shard), shard_for_key(&canonical(&d["id"]), S));
                prop_assert!(docs.contains(&d));
                seen += 1;
            }
        }
        prop_assert_eq!(seen, docs.len());
    }

    #[test]
    fn prop_csv_round_trips_every_record_with_its_shard(
        rows in proptest::collection::vec((arb_id(), "[^\r]{0,12}", any::<Option<i32>>()), 1..20),
        delimiter in prop::sample::select(vec![b',', b';', b'\t', b'|']),
    ) {
        let mut w = csv::WriterBuilder::new().delimiter(delimiter).from_writer(Vec::new());
        w.write_record(["id", "text", "n:number"]).unwrap();
        let expected: Vec<Vec<String>> = rows
            .iter()
            .map(|(id, text, n)| vec![canonical(id), text.clone(), n.map(|n| n.to_string()).unwrap_or_default()])
            .collect();
        for r in &expected {
            w.write_record(r).unwrap();
        }
        let body = w.into_inner().unwrap();
        let b = prepare_batch(&body, PayloadFormat::Csv { delimiter }, &opts()).unwrap();
        prop_assert_eq!(b.document_count(), rows.len());
        let all: Vec<ShardId> = b.shard_ids().collect();
        let out = csv_rows(&b.render(&all), delimiter);
        prop_assert_eq!(&out[0], &["id", "text", "n:number", "_miroir_shard"].map(String::from).to_vec());
        let mut got: Vec<Vec<String>> = Vec::new();
        for mut row in out.into_iter().skip(1) {
            let shard: u32 = parse_shard_token(&row.pop().unwrap()).unwrap().0;
            prop_assert_eq!(ShardId(shard), shard_for_key(&row[0], S));
            got.push(row);
        }
        let mut want = expected.clone();
        want.sort();
        got.sort();
        prop_assert_eq!(got, want);
    }

    #[test]
    fn prop_ndjson_and_csv_agree_with_json_on_shards(docs in proptest::collection::vec(arb_id(), 1..20)) {
        let objs: Vec<Value> = docs.iter().map(|id| json!({"id": id})).collect();
        let json = prepare_batch(&serde_json::to_vec(&objs).unwrap(), PayloadFormat::Json, &opts()).unwrap();
        let nd: String = objs.iter().map(|o| format!("{o}\n")).collect();
        let nd = prepare_batch(nd.as_bytes(), PayloadFormat::NdJson, &opts()).unwrap();
        let csv: String = std::iter::once("id\n".to_string()).chain(docs.iter().map(|id| format!("{}\n", canonical(id)))).collect();
        let csv = prepare_batch(csv.as_bytes(), PayloadFormat::Csv { delimiter: b',' }, &opts()).unwrap();
        let shards = |b: &PreparedBatch| b.shard_ids().map(|s| (s, b.documents_in(s))).collect::<Vec<_>>();
        prop_assert_eq!(shards(&json), shards(&nd));
        prop_assert_eq!(shards(&json), shards(&csv));
    }
}

#[test]
fn shard_tokens_are_punctuation_and_round_trip() {
    assert_eq!(shard_token(ShardId(0)), "!");
    assert_eq!(shard_token(ShardId(17)), "#.");
    assert_eq!(shard_token(ShardId(1_234_567_890)), "#()*+-./;!");
    for n in (0..5000).chain([u32::MAX - 1, u32::MAX]) {
        let t = shard_token(ShardId(n));
        // No letter or digit (no word for the tokenizer), nothing to escape in JSON or filters.
        assert!(t
            .bytes()
            .all(|b| b.is_ascii_punctuation() && b != b'"' && b != b'\\'));
        assert_eq!(parse_shard_token(&t), Some(ShardId(n)));
    }
    for bad in ["", "1", "a", "!!!!!!!!!!!", "#.x", "\"", ";;;;;;;;;;"] {
        assert_eq!(parse_shard_token(bad), None, "{bad}");
    }
}

// ---- synchronous errors vs failed tasks (docs/contract.md#primary-key) ----

fn check(
    body: &str,
    format: PayloadFormat,
    o: &BatchOptions<'_>,
) -> Result<Result<PreparedBatch, FailedBatch>, DocumentError> {
    check_batch(body.as_bytes(), format, o)
}

#[test]
fn key_errors_become_failed_batches_with_the_document_count() {
    let csv = PayloadFormat::Csv { delimiter: b',' };
    for (body, format, o, code) in [
        (
            r#"[{"title":"a"},{"title":"b"}]"#,
            PayloadFormat::Json,
            opts(),
            ErrorCode::IndexPrimaryKeyNoCandidateFound,
        ),
        (
            "{\"a_id\":1,\"b_id\":2}\n{\"a_id\":3}\n",
            PayloadFormat::NdJson,
            opts(),
            ErrorCode::IndexPrimaryKeyMultipleCandidatesFound,
        ),
        (
            r#"[{"id":1},{"title":"b"}]"#,
            PayloadFormat::Json,
            opts(),
            ErrorCode::MissingDocumentId,
        ),
        (
            "id,title\n1,a\nbad id,b\n",
            csv,
            opts(),
            ErrorCode::InvalidDocumentId,
        ),
        (
            r#"[{"sku":1},{"sku":2}]"#,
            PayloadFormat::Json,
            BatchOptions {
                index_primary_key: Some("id"),
                query_primary_key: Some("sku"),
                ..opts()
            },
            ErrorCode::IndexPrimaryKeyAlreadyExists,
        ),
    ] {
        let failed = check(body, format, &o).unwrap().unwrap_err();
        assert_eq!(failed.documents, 2, "{body}");
        assert_eq!(failed.error.error_code(), code, "{body}");
        assert!(failed.error.is_task_failure());
        // `prepare_batch` still answers the error itself.
        assert_eq!(prepare(body, format, &o).unwrap_err(), failed.error);
    }
}

#[test]
fn the_first_key_error_in_document_order_is_the_one_reported() {
    let f = check(
        r#"[{"id":1},{"id":"a b"},{"title":"x"}]"#,
        PayloadFormat::Json,
        &opts(),
    )
    .unwrap()
    .unwrap_err();
    assert_eq!(
        f.error,
        DocumentError::InvalidDocumentId {
            value: "\"a b\"".into()
        }
    );
    assert_eq!(f.documents, 3);
}

#[test]
fn syntax_and_reserved_fields_anywhere_stay_synchronous() {
    // A key error in the first document does not hide a later reserved field…
    let e = check(
        r#"[{"title":"no id"},{"id":2,"_miroir_shard":1}]"#,
        PayloadFormat::Json,
        &with_pk("id"),
    )
    .unwrap_err();
    assert_eq!(e.error_code(), ErrorCode::MiroirReservedField);
    // …nor a failed inference a later one.
    let e = check(
        r#"[{"title":"x"},{"_miroir_shard":1}]"#,
        PayloadFormat::Json,
        &opts(),
    )
    .unwrap_err();
    assert_eq!(e.error_code(), ErrorCode::MiroirReservedField);
    // …nor a later malformed CSV cell (Meilisearch reads the whole CSV before enqueuing).
    let csv = PayloadFormat::Csv { delimiter: b',' };
    let e = check("id,n:number\n,1\n2,abc\n", csv, &opts()).unwrap_err();
    assert_eq!(e.error_code(), ErrorCode::MalformedPayload);
    let e = check("title,n:number\nx,1\ny,abc\n", csv, &opts()).unwrap_err();
    assert_eq!(e.error_code(), ErrorCode::MalformedPayload);
    // NDJSON syntax is checked to the end as well.
    let e = check("{\"title\":1}\n{\"id\":", PayloadFormat::NdJson, &opts()).unwrap_err();
    assert_eq!(e.error_code(), ErrorCode::MalformedPayload);
    for e in [
        DocumentError::MissingPayload { format: "json" },
        DocumentError::ReservedField {
            position: 0,
            field: "_miroir_shard".into(),
        },
        DocumentError::InvalidDeleteBatch { detail: "x".into() },
    ] {
        assert!(!e.is_task_failure(), "{e:?}");
    }
}

#[test]
fn key_errors_on_an_empty_payload_are_ignored_as_meilisearch_does() {
    let clash = BatchOptions {
        index_primary_key: Some("id"),
        query_primary_key: Some("sku"),
        ..opts()
    };
    let b = check("[]", PayloadFormat::Json, &clash).unwrap().unwrap();
    assert_eq!(b.document_count(), 0);
    let b = check("title\n", PayloadFormat::Csv { delimiter: b',' }, &opts())
        .unwrap()
        .unwrap();
    assert_eq!(b.document_count(), 0);
}
