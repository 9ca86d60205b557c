//! Document batches: primary-key resolution, validation, reserved fields, `_miroir_shard`
//! injection, and one request body per node.
//!
//! A write batch is checked **completely before any node is touched** (docs/contract.md#writes):
//! one bad document rejects the whole batch, because half a batch landing on some shards
//! would be a partial write Meilisearch never produces.
//!
//! # Design
//! Documents are never turned into a `serde_json::Value` tree. A JSON array is split into
//! borrowed [`RawValue`] slices (one syntax pass), each document's top-level keys are scanned
//! with a tiny visitor that also borrows the values as raw slices (second pass, no allocation
//! for keys without escapes), and the output document is the input bytes with
//! `,"_miroir_shard":N` spliced in before the closing brace — so `_miroir_shard` is the last
//! field and every other byte is what the client sent. CSV records are re-emitted through the
//! `csv` writer (same delimiter, RFC 4180 quoting) with an extra last column
//! `_miroir_shard:number`. Documents are grouped by shard as they are read; a body for any set
//! of shards is a concatenation of those groups in the input's format.
//!
//! # Meilisearch behaviour reproduced (checked against Meilisearch v1.50's source: the
//! `documents` route, `meilisearch-types::document_formats` and milli's new indexer)
//! - PK: the index's PK; else `?primaryKey=` (a different one than the index's →
//!   `index_primary_key_already_exists`); else inference from the first document's top-level
//!   fields (CSV: the header) whose lower-cased name ends with `id`: none →
//!   `index_primary_key_no_candidate_found`, several → `index_primary_key_multiple_candidates_found`
//!   (candidates sorted lexicographically, as milli's new indexer does).
//! - Document id: an integer, or a string of 1..=511 bytes of `[A-Za-z0-9_-]`; anything else,
//!   `null` included (a CSV empty cell is `null`) → `invalid_document_id`, the value shown as
//!   `serde_json` prints it. Integers canonicalise to decimal (see [`crate::routing`]).
//! - A document without the PK field → `missing_document_id`, the document shown compact.
//! - CSV headers `name:type` with `type` ∈ `string|number|boolean`; any other suffix keeps the
//!   whole header as a string field name. Empty cells are `null`; `number` cells are trimmed and
//!   parsed as an integer, else a float; `boolean` cells as `true`/`false`.
//! - Known limit: a nested primary key (`a.b`) is looked up as a literal top-level field name.
//!
//! # Synchronous errors and failed tasks
//! Meilisearch refuses a payload *synchronously* only for its syntax (missing or malformed
//! payload; content type is the caller's); everything about primary keys and ids is found
//! while the task is processed, so the client gets `202` and a task that fails
//! ([`DocumentError::is_task_failure`]). [`check_batch`] keeps that split: a batch is read to
//! its end before a task failure is reported, so a syntax error (or a reserved field, Miroir's
//! own synchronous rule) anywhere in it wins over a key error in an earlier document, and a
//! task failure comes with the document count the failed task reports.

use crate::error::{CodedError, ErrorCode, MeiliError};
use crate::ids::{NodeId, ShardId};
use crate::routing::{shard_for_bytes, DecimalBuf, DocumentIdRef, ShardMap};
use crate::snapshot::ShardMigration;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::collections::{BTreeMap, HashSet};
use std::fmt;

/// The prefix of every field Miroir reserves (docs/contract.md#reserved-fields): clients may not send
/// them, and they are removed from every answer.
pub const RESERVED_PREFIX: &str = "_miroir_";

/// The field Miroir injects into every document: the document's shard, as [`shard_token`].
pub const SHARD_FIELD: &str = "_miroir_shard";

/// Punctuation spelling the decimal digits of a shard number in [`shard_token`]: digit `d` is
/// `SHARD_DIGITS[d]`. Each is a separator for Meilisearch's tokenizer (checked against
/// Meilisearch 1.50: a query made of any of them is a placeholder query), and none needs
/// escaping in JSON strings or in filter strings.
const SHARD_DIGITS: [u8; 10] = *b"!#()*+-./;";

/// The value of [`SHARD_FIELD`] for `shard`: its decimal digits spelled with
/// [`SHARD_DIGITS`], e.g. shard 17 is `"#."`. Being made only of separators, the value yields
/// no word, so nodes can keep `searchableAttributes: ["*"]` (and rank attributes as one
/// Meilisearch would) without any query ever matching a document through it; it is still a
/// distinct string facet for the `_miroir_shard IN [...]` restriction (decision 006).
pub fn shard_token(shard: ShardId) -> String {
    let mut digits = DecimalBuf::new();
    digits
        .format_u64(u64::from(shard.0))
        .iter()
        .map(|d| SHARD_DIGITS[usize::from(d - b'0')] as char)
        .collect()
}

/// `_miroir_shard IN ["#", "+", ";"]` for the given shards (sorted as given), each spelled
/// as the token stored in documents ([`shard_token`]; the tokens need no escaping).
pub fn shard_clause(shards: &[ShardId]) -> String {
    let mut s = String::with_capacity(24 + shards.len() * 6);
    s.push_str(SHARD_FIELD);
    s.push_str(" IN [");
    for (i, sh) in shards.iter().enumerate() {
        if i > 0 {
            s.push_str(", ");
        }
        s.push('"');
        s.push_str(&shard_token(*sh));
        s.push('"');
    }
    s.push(']');
    s
}

/// The shard a [`shard_token`] spells, or `None` for any other string.
pub fn parse_shard_token(token: &str) -> Option<ShardId> {
    if token.is_empty() || token.len() > 10 {
        return None;
    }
    let mut n: u64 = 0;
    for b in token.bytes() {
        let d = SHARD_DIGITS.iter().position(|&c| c == b)?;
        n = n * 10 + d as u64;
    }
    u32::try_from(n).ok().map(ShardId)
}

/// Longest string document id Meilisearch accepts (an LMDB key limit).
pub const MAX_DOCUMENT_ID_BYTES: usize = 511;

/// A document payload format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadFormat {
    /// `application/json`: an array of objects, or a single object.
    Json,
    /// `application/x-ndjson`: objects separated by whitespace (normally one per line).
    NdJson,
    /// `text/csv` with a header row; `delimiter` from `?csvDelimiter=` (default `,`).
    Csv { delimiter: u8 },
}

impl PayloadFormat {
    /// The name Meilisearch uses in messages (`json`, `ndjson`, `csv`).
    pub fn name(self) -> &'static str {
        match self {
            PayloadFormat::Json => "json",
            PayloadFormat::NdJson => "ndjson",
            PayloadFormat::Csv { .. } => "csv",
        }
    }

    /// The `Content-Type` to send to nodes for a body in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            PayloadFormat::Json => "application/json",
            PayloadFormat::NdJson => "application/x-ndjson",
            PayloadFormat::Csv { .. } => "text/csv",
        }
    }

    /// The format of a request `Content-Type` (parameters such as `; charset=utf-8` ignored),
    /// `None` for types Meilisearch does not accept for documents.
    pub fn from_content_type(content_type: &str, csv_delimiter: u8) -> Option<PayloadFormat> {
        let mime = content_type
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match mime.as_str() {
            "application/json" => Some(PayloadFormat::Json),
            "application/x-ndjson" => Some(PayloadFormat::NdJson),
            "text/csv" => Some(PayloadFormat::Csv {
                delimiter: csv_delimiter,
            }),
            _ => None,
        }
    }
}

/// Where the batch's primary key came from (wire names match the control protocol).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PkSource {
    /// Already set on the index.
    Index,
    /// From `?primaryKey=`.
    Query,
    /// Inferred from the first document.
    Inferred,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedPk {
    pub name: String,
    pub source: PkSource,
}

/// What the caller knows about the index and the request.
#[derive(Debug, Clone, Copy)]
pub struct BatchOptions<'a> {
    /// The index's primary key, if it has one.
    pub index_primary_key: Option<&'a str>,
    /// `?primaryKey=` of the request.
    pub query_primary_key: Option<&'a str>,
    /// Shard count S of the index.
    pub shards: u32,
    /// Reserved field names besides [`SHARD_FIELD`] (e.g. `_miroir_updated_at` when
    /// anti-entropy is on, `_miroir_expires_at` when TTL is on).
    pub extra_reserved: &'a [String],
}

impl<'a> BatchOptions<'a> {
    pub fn new(shards: u32) -> Self {
        BatchOptions {
            index_primary_key: None,
            query_primary_key: None,
            shards,
            extra_reserved: &[],
        }
    }
}

/// Why a batch was rejected. Converts into a Meilisearch-shaped [`MeiliError`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DocumentError {
    /// The body is empty.
    MissingPayload {
        format: &'static str,
    },
    /// The body does not parse in its declared format.
    MalformedPayload {
        format: &'static str,
        detail: String,
    },
    NoPrimaryKeyCandidate,
    MultiplePrimaryKeyCandidates {
        candidates: Vec<String>,
    },
    /// `?primaryKey=` differs from the index's primary key.
    PrimaryKeyAlreadyExists {
        existing: String,
    },
    /// A document has no primary-key field (`missing_document_id`). `document` is the
    /// document as Meilisearch prints it (compact JSON, field order kept).
    MissingPrimaryKey {
        position: usize,
        primary_key: String,
        document: String,
    },
    /// `value` is the offending id as `serde_json` prints it (strings keep their quotes).
    InvalidDocumentId {
        value: String,
    },
    ReservedField {
        position: usize,
        field: String,
    },
    /// A delete-batch body that is not a JSON array.
    InvalidDeleteBatch {
        detail: String,
    },
}

/// Meilisearch shows long inputs in error messages elided in the middle (issue #2107): the
/// first 50 characters, `...`, the last 85.
fn elide(mut message: String) -> String {
    const PREFIX: usize = 50;
    const SUFFIX: usize = 85;
    let chars: Vec<(usize, char)> = message.char_indices().collect();
    if chars.len() > PREFIX + SUFFIX + 3 {
        let start = chars[PREFIX].0;
        let end = chars[chars.len() - SUFFIX].0;
        message.replace_range(start..end, "...");
    }
    message
}

impl fmt::Display for DocumentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DocumentError::MissingPayload { format } => write!(f, "A {format} payload is missing."),
            DocumentError::MalformedPayload { format: "csv", detail } => {
                write!(f, "The `csv` payload provided is malformed: `{detail}`.")
            }
            DocumentError::MalformedPayload { format, detail } => write!(
                f,
                "The `{format}` payload provided is malformed. `Couldn't serialize document value: {}`.",
                elide(detail.clone())
            ),
            DocumentError::NoPrimaryKeyCandidate => f.write_str(
                "The primary key inference failed as the engine did not find any field ending with `id` in its name. Please specify the primary key manually using the `primaryKey` query parameter.",
            ),
            DocumentError::MultiplePrimaryKeyCandidates { candidates } => write!(
                f,
                "The primary key inference failed as the engine found {} fields ending with `id` in their names: '{}' and '{}'. Please specify the primary key manually using the `primaryKey` query parameter.",
                candidates.len(),
                candidates.first().map(String::as_str).unwrap_or_default(),
                candidates.get(1).map(String::as_str).unwrap_or_default()
            ),
            DocumentError::PrimaryKeyAlreadyExists { existing } => {
                write!(f, "Index already has a primary key: `{existing}`.")
            }
            // Meilisearch's words exactly (milli `UserError::MissingDocumentId`), no elision.
            DocumentError::MissingPrimaryKey { primary_key, document, .. } => write!(
                f,
                "Document doesn't have a `{primary_key}` attribute: `{document}`."
            ),
            DocumentError::InvalidDocumentId { value } => write!(
                f,
                "Document identifier `{value}` is invalid. A document identifier can be of type integer or string, only composed of alphanumeric characters (a-z A-Z 0-9), hyphens (-) and underscores (_), and can not be more than 511 bytes."
            ),
            DocumentError::ReservedField { position, field } => write!(
                f,
                "Document at position {position} contains the field `{field}`, which is reserved by Miroir. Rename the field; nothing was written."
            ),
            DocumentError::InvalidDeleteBatch { detail } => write!(f, "Json deserialize error: {detail}"),
        }
    }
}

impl std::error::Error for DocumentError {}

impl DocumentError {
    /// Whether Meilisearch reports this error as a failed task (`202`, then `failed`) rather
    /// than refusing the request: primary-key resolution and document ids are checked while
    /// its task is processed (milli's indexer), the payload's syntax by the route.
    pub fn is_task_failure(&self) -> bool {
        matches!(
            self,
            DocumentError::NoPrimaryKeyCandidate
                | DocumentError::MultiplePrimaryKeyCandidates { .. }
                | DocumentError::PrimaryKeyAlreadyExists { .. }
                | DocumentError::MissingPrimaryKey { .. }
                | DocumentError::InvalidDocumentId { .. }
        )
    }
}

impl CodedError for DocumentError {
    fn error_code(&self) -> ErrorCode {
        match self {
            DocumentError::MissingPayload { .. } => ErrorCode::MissingPayload,
            DocumentError::MalformedPayload { .. } => ErrorCode::MalformedPayload,
            DocumentError::NoPrimaryKeyCandidate => ErrorCode::IndexPrimaryKeyNoCandidateFound,
            DocumentError::MultiplePrimaryKeyCandidates { .. } => {
                ErrorCode::IndexPrimaryKeyMultipleCandidatesFound
            }
            DocumentError::PrimaryKeyAlreadyExists { .. } => {
                ErrorCode::IndexPrimaryKeyAlreadyExists
            }
            DocumentError::MissingPrimaryKey { .. } => ErrorCode::MissingDocumentId,
            DocumentError::InvalidDocumentId { .. } => ErrorCode::InvalidDocumentId,
            DocumentError::ReservedField { .. } => ErrorCode::MiroirReservedField,
            DocumentError::InvalidDeleteBatch { .. } => ErrorCode::BadRequest,
        }
    }
}

impl From<DocumentError> for MeiliError {
    fn from(e: DocumentError) -> Self {
        e.to_meili()
    }
}

/// Whether `id` is a valid string document id.
pub fn is_valid_string_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_DOCUMENT_ID_BYTES
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Primary key resolution before looking at documents: index PK, then `?primaryKey=`.
/// `Ok(None)` = infer from the documents.
pub fn resolve_declared_pk(opts: &BatchOptions<'_>) -> Result<Option<ResolvedPk>, DocumentError> {
    match (opts.index_primary_key, opts.query_primary_key) {
        (Some(index), Some(query)) if index != query => {
            Err(DocumentError::PrimaryKeyAlreadyExists {
                existing: index.to_string(),
            })
        }
        (Some(index), _) => Ok(Some(ResolvedPk {
            name: index.to_string(),
            source: PkSource::Index,
        })),
        (None, Some(query)) => Ok(Some(ResolvedPk {
            name: query.to_string(),
            source: PkSource::Query,
        })),
        (None, None) => Ok(None),
    }
}

/// Meilisearch's inference over one document's (or the CSV header's) field names.
pub fn infer_primary_key<'a>(
    fields: impl IntoIterator<Item = &'a str>,
) -> Result<String, DocumentError> {
    let mut candidates: Vec<&str> = fields
        .into_iter()
        .filter(|f| f.to_lowercase().ends_with("id"))
        .collect();
    candidates.sort_unstable();
    candidates.dedup();
    match candidates.as_slice() {
        [] => Err(DocumentError::NoPrimaryKeyCandidate),
        [one] => Ok(one.to_string()),
        many => Err(DocumentError::MultiplePrimaryKeyCandidates {
            candidates: many.iter().map(|s| s.to_string()).collect(),
        }),
    }
}

/// A validated batch, grouped by shard, ready to be rendered per node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreparedBatch {
    format: PayloadFormat,
    primary_key: Option<ResolvedPk>,
    fields: Vec<String>,
    documents: usize,
    /// CSV only: the header row with the `_miroir_shard:number` column, newline-terminated.
    csv_header: Vec<u8>,
    chunks: BTreeMap<ShardId, Chunk>,
}

/// The request body for one node of a write (see [`PreparedBatch::node_bodies`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeBody {
    pub node: NodeId,
    /// Shards this body carries (ascending): the node's quorum accounting is per shard.
    pub shards: Vec<ShardId>,
    /// Documents (or ids, for a delete batch) in `body`.
    pub documents: usize,
    pub body: Vec<u8>,
}

/// One shard's documents. JSON: documents joined by `,`; NDJSON/CSV: one `\n`-terminated
/// document/record after another.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct Chunk {
    count: usize,
    bytes: Vec<u8>,
}

impl PreparedBatch {
    pub fn format(&self) -> PayloadFormat {
        self.format
    }

    /// The batch's primary key; `None` only for an empty batch on an index without one.
    pub fn primary_key(&self) -> Option<&ResolvedPk> {
        self.primary_key.as_ref()
    }

    /// Top-level field names in first-seen order, reserved fields excluded.
    pub fn fields(&self) -> &[String] {
        &self.fields
    }

    /// Fields of this batch that are not in `known` (first-seen order).
    pub fn new_fields(&self, known: &[String]) -> Vec<String> {
        let known: HashSet<&str> = known.iter().map(String::as_str).collect();
        self.fields
            .iter()
            .filter(|f| !known.contains(f.as_str()))
            .cloned()
            .collect()
    }

    pub fn document_count(&self) -> usize {
        self.documents
    }

    /// Shards that have documents in this batch, ascending.
    pub fn shard_ids(&self) -> impl Iterator<Item = ShardId> + '_ {
        self.chunks.keys().copied()
    }

    /// Number of documents of this batch in `shard`.
    pub fn documents_in(&self, shard: ShardId) -> usize {
        self.chunks.get(&shard).map_or(0, |c| c.count)
    }

    /// Number of documents in the union of `shards` (duplicates counted once).
    pub fn documents_in_all(&self, shards: &[ShardId]) -> usize {
        let set: HashSet<ShardId> = shards.iter().copied().collect();
        set.into_iter().map(|s| self.documents_in(s)).sum()
    }

    /// One body per write target: every node that owns (or is migrating in) a shard of this
    /// batch, in any group, with exactly the documents of those shards. Nodes sorted by id.
    pub fn node_bodies(
        &self,
        map: &ShardMap,
        index: &str,
        migrations: &[ShardMigration],
    ) -> Vec<NodeBody> {
        map.writes_by_node(index, self.shard_ids(), migrations)
            .into_iter()
            .map(|(node, shards)| NodeBody {
                documents: self.documents_in_all(&shards),
                body: self.render(&shards),
                node,
                shards,
            })
            .collect()
    }

    /// A body holding the documents of `shards` (in shard order, input order inside a shard),
    /// in the batch's format. Shards without documents contribute nothing; duplicates are
    /// rendered once.
    pub fn render(&self, shards: &[ShardId]) -> Vec<u8> {
        let mut wanted: Vec<ShardId> = shards.to_vec();
        wanted.sort_unstable();
        wanted.dedup();
        let chunks: Vec<&Chunk> = wanted.iter().filter_map(|s| self.chunks.get(s)).collect();
        let size: usize =
            chunks.iter().map(|c| c.bytes.len() + 1).sum::<usize>() + self.csv_header.len() + 2;
        let mut out = Vec::with_capacity(size);
        match self.format {
            PayloadFormat::Json => {
                out.push(b'[');
                for (i, c) in chunks.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    out.extend_from_slice(&c.bytes);
                }
                out.push(b']');
            }
            PayloadFormat::NdJson => chunks.iter().for_each(|c| out.extend_from_slice(&c.bytes)),
            PayloadFormat::Csv { .. } => {
                out.extend_from_slice(&self.csv_header);
                chunks.iter().for_each(|c| out.extend_from_slice(&c.bytes));
            }
        }
        out
    }
}

/// Validates a document payload and groups it by shard. Nothing is partially accepted: the
/// first problem rejects the batch.
pub fn prepare_batch(
    body: &[u8],
    format: PayloadFormat,
    opts: &BatchOptions<'_>,
) -> Result<PreparedBatch, DocumentError> {
    check_batch(body, format, opts)?.map_err(|f| f.error)
}

/// A batch Meilisearch accepts (`202`) but whose task then fails: nothing of it may be
/// written anywhere.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedBatch {
    /// The first error in document order ([`DocumentError::is_task_failure`]).
    pub error: DocumentError,
    /// The documents the payload holds (the task's `receivedDocuments`).
    pub documents: usize,
}

/// [`prepare_batch`] keeping Meilisearch's split (module docs): `Err` = refuse the request
/// (syntax, reserved fields); `Ok(Err)` = a task that fails; `Ok(Ok)` = a batch to write.
pub fn check_batch(
    body: &[u8],
    format: PayloadFormat,
    opts: &BatchOptions<'_>,
) -> Result<Result<PreparedBatch, FailedBatch>, DocumentError> {
    if opts.shards == 0 {
        // A snapshot never has S = 0; refuse rather than divide by zero on bad input.
        return Err(DocumentError::MalformedPayload {
            format: format.name(),
            detail: "the index has 0 shards".into(),
        });
    }
    if body.is_empty() {
        return Err(DocumentError::MissingPayload {
            format: format.name(),
        });
    }
    let mut failure = Deferred::default();
    let declared = resolve_declared_pk(opts).unwrap_or_else(|e| {
        failure.fail(e);
        None
    });
    let batch = match format {
        PayloadFormat::Json | PayloadFormat::NdJson => {
            prepare_json(body, format, declared, opts, &mut failure)?
        }
        PayloadFormat::Csv { delimiter } => {
            prepare_csv(body, delimiter, declared, opts, &mut failure)?
        }
    };
    Ok(match failure.0 {
        // Meilisearch ignores a key error on a payload without documents: its task succeeds.
        Some(error) if batch.documents > 0 => Err(FailedBatch {
            error,
            documents: batch.documents,
        }),
        _ => Ok(batch),
    })
}

/// The first task failure met while a batch is read on to its end.
#[derive(Default)]
struct Deferred(Option<DocumentError>);

impl Deferred {
    fn fail(&mut self, e: DocumentError) {
        debug_assert!(e.is_task_failure());
        self.0.get_or_insert(e);
    }

    fn failed(&self) -> bool {
        self.0.is_some()
    }
}

// ---------------------------------------------------------------------------------------------
// JSON / NDJSON

/// A top-level key, borrowed from the input when it has no escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_string())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

/// A document's top-level fields as (name, raw value) pairs, in document order.
struct TopLevel<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

impl<'de> Deserialize<'de> for TopLevel<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = TopLevel<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<TopLevel<'de>, A::Error> {
                let mut fields = Vec::with_capacity(map.size_hint().unwrap_or(8));
                while let Some(Key(k)) = map.next_key::<Key<'de>>()? {
                    let v: &'de RawValue = map.next_value()?;
                    fields.push((k, v));
                }
                Ok(TopLevel(fields))
            }
        }
        d.deserialize_map(V)
    }
}

const NOT_OBJECTS: &str = "data are neither an object nor a list of objects";

fn malformed(format: PayloadFormat, detail: impl Into<String>) -> DocumentError {
    DocumentError::MalformedPayload {
        format: format.name(),
        detail: detail.into(),
    }
}

fn json_error(format: PayloadFormat, e: serde_json::Error) -> DocumentError {
    match e.classify() {
        serde_json::error::Category::Data => malformed(format, NOT_OBJECTS),
        _ => malformed(format, e.to_string()),
    }
}

/// The documents of a JSON/NDJSON body as raw object slices.
fn split_json(text: &str, format: PayloadFormat) -> Result<Vec<&RawValue>, DocumentError> {
    let docs: Vec<&RawValue> = match format {
        PayloadFormat::Json => match text.trim_start().as_bytes().first() {
            Some(b'{') => {
                vec![serde_json::from_str::<&RawValue>(text).map_err(|e| json_error(format, e))?]
            }
            Some(b'[') => {
                serde_json::from_str::<Vec<&RawValue>>(text).map_err(|e| json_error(format, e))?
            }
            // Let serde_json word the error for anything else (EOF, bad literal, …).
            _ => match serde_json::from_str::<&RawValue>(text) {
                Ok(_) => return Err(malformed(format, NOT_OBJECTS)),
                Err(e) => return Err(json_error(format, e)),
            },
        },
        _ => serde_json::Deserializer::from_str(text)
            .into_iter::<&RawValue>()
            .collect::<Result<_, _>>()
            .map_err(|e| json_error(format, e))?,
    };
    if docs.iter().any(|d| !d.get().starts_with('{')) {
        return Err(malformed(format, NOT_OBJECTS));
    }
    Ok(docs)
}

/// A document id value checked and canonicalised.
fn json_id(raw: &RawValue) -> Result<Cow<'_, str>, DocumentError> {
    let text = raw.get();
    let invalid = || DocumentError::InvalidDocumentId {
        value: shown_value(text),
    };
    match text.as_bytes().first() {
        Some(b'"') => {
            let Key(s) = serde_json::from_str::<Key<'_>>(text).map_err(|_| invalid())?;
            if is_valid_string_id(&s) {
                Ok(s)
            } else {
                Err(invalid())
            }
        }
        Some(b'-' | b'0'..=b'9') => {
            let n: serde_json::Number = serde_json::from_str(text).map_err(|_| invalid())?;
            if let Some(i) = n.as_i64() {
                Ok(DocumentIdRef::Int(i).canonical())
            } else if let Some(u) = n.as_u64() {
                Ok(DocumentIdRef::UInt(u).canonical())
            } else {
                Err(invalid())
            }
        }
        // `null` included: milli's id visitor accepts integers and strings only.
        _ => Err(invalid()),
    }
}

/// A JSON value as Meilisearch prints it in an error: parsed, then compact `serde_json`.
fn shown_value(text: &str) -> String {
    serde_json::from_str::<serde_json::Value>(text)
        .map(|v| v.to_string())
        .unwrap_or_else(|_| text.to_string())
}

/// A document as Meilisearch prints it in `missing_document_id` (a `serde_json` map with
/// `preserve_order`, printed compact).
fn compact_document(text: &str) -> String {
    serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(text)
        .map(|m| serde_json::Value::Object(m).to_string())
        .unwrap_or_else(|_| text.to_string())
}

/// Records a field name in first-seen order.
struct FieldSet {
    seen: HashSet<String>,
    order: Vec<String>,
}

/// Below this many distinct fields a linear scan beats hashing every key of every document.
const FIELDSET_LINEAR_MAX: usize = 16;

impl FieldSet {
    fn new() -> Self {
        FieldSet {
            seen: HashSet::new(),
            order: Vec::new(),
        }
    }
    fn add(&mut self, name: &str) {
        let known = if self.order.len() <= FIELDSET_LINEAR_MAX {
            self.order.iter().any(|f| f == name)
        } else {
            self.seen.contains(name)
        };
        if known {
            return;
        }
        self.order.push(name.to_string());
        if self.order.len() > FIELDSET_LINEAR_MAX {
            if self.seen.is_empty() {
                self.seen.extend(self.order.iter().cloned());
            } else {
                self.seen.insert(name.to_string());
            }
        }
    }
}

fn is_reserved(name: &str, opts: &BatchOptions<'_>) -> bool {
    name == SHARD_FIELD || opts.extra_reserved.iter().any(|r| r == name)
}

fn prepare_json(
    body: &[u8],
    format: PayloadFormat,
    declared: Option<ResolvedPk>,
    opts: &BatchOptions<'_>,
    failure: &mut Deferred,
) -> Result<PreparedBatch, DocumentError> {
    let text = std::str::from_utf8(body)
        .map_err(|e| malformed(format, format!("invalid UTF-8 at byte {}", e.valid_up_to())))?;
    let docs = split_json(text, format)?;
    let mut pk = declared;
    let mut fields = FieldSet::new();
    let mut chunks: BTreeMap<ShardId, Chunk> = BTreeMap::new();

    for (position, raw) in docs.iter().enumerate() {
        let TopLevel(top) =
            serde_json::from_str::<TopLevel<'_>>(raw.get()).map_err(|e| json_error(format, e))?;
        if let Some((name, _)) = top.iter().find(|(name, _)| is_reserved(name, opts)) {
            return Err(DocumentError::ReservedField {
                position,
                field: name.to_string(),
            });
        }
        if failure.failed() {
            // Only syntax and reserved fields are still checked (module docs).
            continue;
        }
        let pk_name: &str = match &pk {
            Some(p) => &p.name,
            None => match infer_primary_key(top.iter().map(|(k, _)| k.as_ref())) {
                Ok(name) => {
                    &pk.insert(ResolvedPk {
                        name,
                        source: PkSource::Inferred,
                    })
                    .name
                }
                Err(e) => {
                    failure.fail(e);
                    continue;
                }
            },
        };
        // Last occurrence wins for a duplicated key, as in serde_json's own maps.
        let id = match top.iter().rev().find(|(k, _)| k == pk_name) {
            Some((_, value)) => json_id(value),
            None => Err(DocumentError::MissingPrimaryKey {
                position,
                primary_key: pk_name.to_string(),
                document: compact_document(raw.get()),
            }),
        };
        let id = match id {
            Ok(id) => id,
            Err(e) => {
                failure.fail(e);
                continue;
            }
        };
        for (k, _) in &top {
            fields.add(k);
        }
        let shard = shard_for_bytes(id.as_bytes(), opts.shards);
        let chunk = chunks.entry(shard).or_default();
        if format == PayloadFormat::Json && chunk.count > 0 {
            chunk.bytes.push(b',');
        }
        inject_shard(&mut chunk.bytes, raw.get(), !top.is_empty(), shard);
        if format == PayloadFormat::NdJson {
            chunk.bytes.push(b'\n');
        }
        chunk.count += 1;
    }
    Ok(PreparedBatch {
        format,
        primary_key: pk,
        fields: fields.order,
        documents: docs.len(),
        csv_header: Vec::new(),
        chunks,
    })
}

/// Appends `doc` (a JSON object's exact text) with `"_miroir_shard":"<token>"` as its last
/// field.
fn inject_shard(out: &mut Vec<u8>, doc: &str, has_fields: bool, shard: ShardId) {
    let body = doc.trim_end();
    // `split_json` guarantees an object, so the text ends with `}`.
    let open = body.strip_suffix('}').unwrap_or(body);
    out.extend_from_slice(open.as_bytes());
    if has_fields {
        out.push(b',');
    }
    out.extend_from_slice(b"\"");
    out.extend_from_slice(SHARD_FIELD.as_bytes());
    out.extend_from_slice(b"\":\"");
    out.extend_from_slice(shard_token(shard).as_bytes());
    out.extend_from_slice(b"\"}");
}

// ---------------------------------------------------------------------------------------------
// CSV

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CsvType {
    String,
    Number,
    Boolean,
}

/// `name:type` → (name, type); an unknown `type` keeps the whole header as a string field.
fn parse_csv_header(header: &str) -> (&str, CsvType) {
    match header.rsplit_once(':') {
        Some((name, "string")) => (name, CsvType::String),
        Some((name, "number")) => (name, CsvType::Number),
        Some((name, "boolean")) => (name, CsvType::Boolean),
        _ => (header, CsvType::String),
    }
}

enum CsvNumber {
    Int(i64),
    Float,
}

fn parse_csv_number(cell: &str) -> Option<CsvNumber> {
    let t = cell.trim();
    if let Ok(i) = t.parse::<i64>() {
        return Some(CsvNumber::Int(i));
    }
    match t.parse::<f64>() {
        Ok(f) if f.is_finite() => Some(CsvNumber::Float),
        _ => None,
    }
}

fn prepare_csv(
    body: &[u8],
    delimiter: u8,
    declared: Option<ResolvedPk>,
    opts: &BatchOptions<'_>,
    failure: &mut Deferred,
) -> Result<PreparedBatch, DocumentError> {
    let format = PayloadFormat::Csv { delimiter };
    let csv_err = |e: csv::Error| malformed(format, e.to_string());
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .has_headers(true)
        .from_reader(body);
    let headers = reader.headers().map_err(csv_err)?.clone();
    let columns: Vec<(&str, CsvType)> = headers.iter().map(parse_csv_header).collect();

    let mut fields = FieldSet::new();
    for (name, _) in &columns {
        if is_reserved(name, opts) {
            return Err(DocumentError::ReservedField {
                position: 0,
                field: name.to_string(),
            });
        }
        fields.add(name);
    }
    let pk = match declared {
        Some(p) => Some(p),
        // A header without any row still names the fields; infer only when rows exist, as an
        // empty batch needs no key.
        None if !failure.failed() && body_has_records(body, delimiter) => {
            match infer_primary_key(columns.iter().map(|(n, _)| *n)) {
                Ok(name) => Some(ResolvedPk {
                    name,
                    source: PkSource::Inferred,
                }),
                Err(e) => {
                    failure.fail(e);
                    None
                }
            }
        }
        None => None,
    };
    let pk_column = pk
        .as_ref()
        .and_then(|p| columns.iter().rposition(|(n, _)| *n == p.name));

    let new_writer = || {
        csv::WriterBuilder::new()
            .delimiter(delimiter)
            .terminator(csv::Terminator::Any(b'\n'))
            .from_writer(Vec::new())
    };
    let mut header_writer = new_writer();
    let mut header_row: Vec<&str> = headers.iter().collect();
    // A string column: the token is punctuation; the CSV writer quotes it when it contains
    // the client's delimiter.
    header_row.push(SHARD_FIELD);
    header_writer.write_record(&header_row).map_err(csv_err)?;
    let csv_header = header_writer
        .into_inner()
        .map_err(|e| malformed(format, e.to_string()))?;

    let mut writers: BTreeMap<ShardId, (usize, csv::Writer<Vec<u8>>)> = BTreeMap::new();
    let mut documents = 0;
    let mut record = csv::StringRecord::new();
    let mut position = 0;
    while reader.read_record(&mut record).map_err(csv_err)? {
        let line = record
            .position()
            .map_or(position + 2, |p| p.line() as usize);
        for (cell, (name, ty)) in record.iter().zip(&columns) {
            let ok = cell.is_empty()
                || match ty {
                    CsvType::String => true,
                    CsvType::Number => parse_csv_number(cell).is_some(),
                    CsvType::Boolean => matches!(cell.trim(), "true" | "false"),
                };
            if !ok {
                let kind = if *ty == CsvType::Number {
                    "number"
                } else {
                    "boolean"
                };
                return Err(malformed(
                    format,
                    format!("could not parse `{cell}` as a {kind} for the field `{name}` at line {line}"),
                ));
            }
        }
        documents += 1;
        position += 1;
        if failure.failed() {
            // Only the cells' syntax is still checked (module docs).
            continue;
        }
        match csv_id(&columns, pk.as_ref(), pk_column, &record, position - 1) {
            Ok(id) => {
                let shard = shard_for_bytes(id.as_bytes(), opts.shards);
                let (count, writer) = writers.entry(shard).or_insert_with(|| (0, new_writer()));
                let token = shard_token(shard);
                writer
                    .write_record(
                        record
                            .iter()
                            .map(str::as_bytes)
                            .chain(std::iter::once(token.as_bytes())),
                    )
                    .map_err(csv_err)?;
                *count += 1;
            }
            Err(e) => failure.fail(e),
        }
    }
    let mut chunks = BTreeMap::new();
    for (shard, (count, writer)) in writers {
        let bytes = writer
            .into_inner()
            .map_err(|e| malformed(format, e.to_string()))?;
        chunks.insert(shard, Chunk { count, bytes });
    }
    Ok(PreparedBatch {
        format,
        primary_key: pk,
        fields: fields.order,
        documents,
        csv_header,
        chunks,
    })
}

/// The id of one CSV record under the batch's primary key, or the task failure it causes
/// (read as Meilisearch reads the record: empty cells `null`, typed columns).
fn csv_id<'r>(
    columns: &[(&str, CsvType)],
    pk: Option<&ResolvedPk>,
    pk_column: Option<usize>,
    record: &'r csv::StringRecord,
    position: usize,
) -> Result<Cow<'r, str>, DocumentError> {
    let (Some(_), Some(column)) = (pk, pk_column) else {
        return Err(DocumentError::MissingPrimaryKey {
            position,
            primary_key: pk.map_or(String::new(), |p| p.name.clone()),
            document: csv_record_as_json(columns, record),
        });
    };
    let cell = record.get(column).unwrap_or_default();
    let invalid = |value: serde_json::Value| DocumentError::InvalidDocumentId {
        value: value.to_string(),
    };
    if cell.is_empty() {
        return Err(invalid(serde_json::Value::Null));
    }
    match columns[column].1 {
        CsvType::String if is_valid_string_id(cell) => Ok(Cow::Borrowed(cell)),
        CsvType::String => Err(invalid(cell.into())),
        CsvType::Number => match parse_csv_number(cell) {
            Some(CsvNumber::Int(i)) => Ok(DocumentIdRef::Int(i).canonical()),
            _ => Err(invalid(csv_typed_value(cell, CsvType::Number))),
        },
        CsvType::Boolean => Err(invalid(csv_typed_value(cell, CsvType::Boolean))),
    }
}

/// Whether a CSV body has at least one record after its header.
fn body_has_records(body: &[u8], delimiter: u8) -> bool {
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .has_headers(true)
        .from_reader(body);
    let mut record = csv::ByteRecord::new();
    matches!(reader.read_byte_record(&mut record), Ok(true))
}

/// A CSV record shown as Meilisearch shows a document in messages (typed values).
fn csv_record_as_json(columns: &[(&str, CsvType)], record: &csv::StringRecord) -> String {
    let mut map = serde_json::Map::new();
    for (cell, (name, ty)) in record.iter().zip(columns) {
        let value = if cell.is_empty() {
            serde_json::Value::Null
        } else {
            csv_typed_value(cell, *ty)
        };
        map.insert(name.to_string(), value);
    }
    serde_json::Value::Object(map).to_string()
}

/// A non-empty CSV cell as the JSON value Meilisearch makes of it (`read_csv`).
fn csv_typed_value(cell: &str, ty: CsvType) -> serde_json::Value {
    match ty {
        CsvType::String => serde_json::Value::from(cell),
        CsvType::Number => match cell.trim().parse::<i64>() {
            Ok(i) => i.into(),
            Err(_) => cell
                .trim()
                .parse::<f64>()
                .map(Into::into)
                .unwrap_or(serde_json::Value::Null),
        },
        CsvType::Boolean => serde_json::Value::from(cell.trim() == "true"),
    }
}

// ---------------------------------------------------------------------------------------------
// Delete by ids

/// A `POST /indexes/{uid}/documents/delete-batch` body grouped by shard.
///
/// Meilisearch turns every element into a string id (a string as itself, anything else as its
/// JSON text) and deletes what matches; ids that cannot exist simply match nothing. Miroir
/// routes each element by that same string, so the right node sees exactly the ids it would
/// have seen, and forwards the client's own JSON for them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteBatch {
    ids: usize,
    chunks: BTreeMap<ShardId, Chunk>,
}

impl DeleteBatch {
    pub fn id_count(&self) -> usize {
        self.ids
    }

    pub fn shard_ids(&self) -> impl Iterator<Item = ShardId> + '_ {
        self.chunks.keys().copied()
    }

    pub fn ids_in(&self, shard: ShardId) -> usize {
        self.chunks.get(&shard).map_or(0, |c| c.count)
    }

    /// One JSON-array body per write target (see [`PreparedBatch::node_bodies`]).
    pub fn node_bodies(
        &self,
        map: &ShardMap,
        index: &str,
        migrations: &[ShardMigration],
    ) -> Vec<NodeBody> {
        map.writes_by_node(index, self.shard_ids(), migrations)
            .into_iter()
            .map(|(node, shards)| NodeBody {
                documents: shards.iter().map(|s| self.ids_in(*s)).sum(),
                body: self.render(&shards),
                node,
                shards,
            })
            .collect()
    }

    /// A JSON array of the ids of `shards` (duplicates rendered once).
    pub fn render(&self, shards: &[ShardId]) -> Vec<u8> {
        let mut wanted = shards.to_vec();
        wanted.sort_unstable();
        wanted.dedup();
        let mut out = vec![b'['];
        let mut first = true;
        for chunk in wanted.iter().filter_map(|s| self.chunks.get(s)) {
            if !first {
                out.push(b',');
            }
            first = false;
            out.extend_from_slice(&chunk.bytes);
        }
        out.push(b']');
        out
    }
}

/// Parses a delete-batch body (a JSON array) and groups its ids by shard.
pub fn prepare_delete_batch(body: &[u8], shards: u32) -> Result<DeleteBatch, DocumentError> {
    if shards == 0 {
        return Err(DocumentError::InvalidDeleteBatch {
            detail: "the index has 0 shards".into(),
        });
    }
    let bad = |e: serde_json::Error| DocumentError::InvalidDeleteBatch {
        detail: e.to_string(),
    };
    let text = std::str::from_utf8(body).map_err(|e| DocumentError::InvalidDeleteBatch {
        detail: format!("invalid UTF-8 at byte {}", e.valid_up_to()),
    })?;
    let ids: Vec<&RawValue> = serde_json::from_str(text).map_err(bad)?;
    let mut chunks: BTreeMap<ShardId, Chunk> = BTreeMap::new();
    for raw in &ids {
        let text = raw.get();
        let canonical: Cow<'_, str> = if text.starts_with('"') {
            serde_json::from_str::<Key<'_>>(text).map_err(bad)?.0
        } else {
            // Meilisearch stringifies non-strings through serde_json::Value's Display, which
            // is compact: re-serialise so `[1, 2]` and `[1,2]` route alike.
            let value: serde_json::Value = serde_json::from_str(text).map_err(bad)?;
            Cow::Owned(value.to_string())
        };
        let shard = shard_for_bytes(canonical.as_bytes(), shards);
        let chunk = chunks.entry(shard).or_default();
        if chunk.count > 0 {
            chunk.bytes.push(b',');
        }
        chunk.bytes.extend_from_slice(text.as_bytes());
        chunk.count += 1;
    }
    Ok(DeleteBatch {
        ids: ids.len(),
        chunks,
    })
}

#[cfg(test)]
mod tests;
