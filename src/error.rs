//! Every error Miroir itself produces, and the **one** place that maps it to a Meilisearch
//! error body `{message, code, type, link}` and an HTTP status.
//!
//! Errors that a node returns are forwarded verbatim and never pass through here. Layers keep
//! their own error enums (document parsing, config, HTTP parsing, …) and convert into
//! [`MeiliError`] with an [`ErrorCode`] at the edge.

use serde::Serialize;

/// Meilisearch's error `type` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorType {
    InvalidRequest,
    Internal,
    Auth,
    System,
}

impl ErrorType {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorType::InvalidRequest => "invalid_request",
            ErrorType::Internal => "internal",
            ErrorType::Auth => "auth",
            ErrorType::System => "system",
        }
    }
}

macro_rules! error_codes {
    ($( $variant:ident => ($code:literal, $status:literal, $ty:ident) ),* $(,)?) => {
        /// An error code: its wire name, HTTP status and Meilisearch type, in one table.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ErrorCode { $($variant),* }

        impl ErrorCode {
            /// The `code` field, e.g. `miroir_no_quorum` or `invalid_document_id`.
            pub fn code(self) -> &'static str {
                match self { $(ErrorCode::$variant => $code),* }
            }
            /// The HTTP status this error is answered with.
            pub fn status(self) -> u16 {
                match self { $(ErrorCode::$variant => $status),* }
            }
            /// The `type` field.
            pub fn error_type(self) -> ErrorType {
                match self { $(ErrorCode::$variant => ErrorType::$ty),* }
            }
            /// All codes, for documentation and tests.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant),*];
        }
    };
}

error_codes! {
    // --- Miroir's own codes (docs/contract.md#errors) ---
    MiroirReservedField => ("miroir_reserved_field", 400, InvalidRequest),
    MiroirInvalidAuth => ("miroir_invalid_auth", 401, Auth),
    MiroirIdempotencyKeyReused => ("miroir_idempotency_key_reused", 409, InvalidRequest),
    MiroirMultiAliasNotWritable => ("miroir_multi_alias_not_writable", 409, InvalidRequest),
    MiroirNoQuorum => ("miroir_no_quorum", 503, System),
    MiroirShardUnavailable => ("miroir_shard_unavailable", 503, System),
    MiroirSettingsVersionStale => ("miroir_settings_version_stale", 503, System),
    MiroirAdminUnavailable => ("miroir_admin_unavailable", 503, System),
    MiroirNotImplemented => ("miroir_not_implemented", 501, InvalidRequest),
    MiroirInvalidTopology => ("miroir_invalid_topology", 400, InvalidRequest),
    MiroirRebalanceInProgress => ("miroir_rebalance_in_progress", 409, InvalidRequest),
    MiroirNodeNotFound => ("miroir_node_not_found", 404, InvalidRequest),
    MiroirLastCopy => ("miroir_last_copy", 409, InvalidRequest),
    MiroirControlVersion => ("miroir_control_version", 400, InvalidRequest),
    MiroirNoLeader => ("miroir_no_leader", 503, System),
    // --- Meilisearch codes Miroir produces itself (before any node is touched) ---
    InvalidDocumentId => ("invalid_document_id", 400, InvalidRequest),
    MissingDocumentId => ("missing_document_id", 400, InvalidRequest),
    IndexPrimaryKeyMultipleCandidatesFound => ("index_primary_key_multiple_candidates_found", 400, InvalidRequest),
    IndexPrimaryKeyNoCandidateFound => ("index_primary_key_no_candidate_found", 400, InvalidRequest),
    IndexPrimaryKeyAlreadyExists => ("index_primary_key_already_exists", 400, InvalidRequest),
    MalformedPayload => ("malformed_payload", 400, InvalidRequest),
    BadRequest => ("bad_request", 400, InvalidRequest),
    InvalidExportUrl => ("invalid_export_url", 400, InvalidRequest),
    InvalidExportApiKey => ("invalid_export_api_key", 400, InvalidRequest),
    InvalidExportPayloadSize => ("invalid_export_payload_size", 400, InvalidRequest),
    InvalidExportIndexOverrideSettings => ("invalid_export_index_override_settings", 400, InvalidRequest),
    InvalidContentType => ("invalid_content_type", 415, InvalidRequest),
    MissingContentType => ("missing_content_type", 415, InvalidRequest),
    MissingPayload => ("missing_payload", 400, InvalidRequest),
    PayloadTooLarge => ("payload_too_large", 413, InvalidRequest),
    InvalidSearchQ => ("invalid_search_q", 400, InvalidRequest),
    InvalidSearchOffset => ("invalid_search_offset", 400, InvalidRequest),
    InvalidSearchLimit => ("invalid_search_limit", 400, InvalidRequest),
    InvalidSearchPage => ("invalid_search_page", 400, InvalidRequest),
    InvalidSearchHitsPerPage => ("invalid_search_hits_per_page", 400, InvalidRequest),
    IndexNotFound => ("index_not_found", 404, InvalidRequest),
    DocumentNotFound => ("document_not_found", 404, InvalidRequest),
    TaskNotFound => ("task_not_found", 404, InvalidRequest),
    TaskFileNotFound => ("task_file_not_found", 404, InvalidRequest),
    FeatureNotEnabled => ("feature_not_enabled", 400, InvalidRequest),
    ApiKeyNotFound => ("api_key_not_found", 404, InvalidRequest),
    MissingAuthorizationHeader => ("missing_authorization_header", 401, Auth),
    InvalidApiKey => ("invalid_api_key", 403, Auth),
    MissingMasterKey => ("missing_master_key", 401, Auth),
    NotFound => ("not_found", 404, InvalidRequest),
    Internal => ("internal", 500, Internal),
    RequestHeaderFieldsTooLarge => ("request_header_fields_too_large", 431, InvalidRequest),
    RequestTimeout => ("request_timeout", 408, InvalidRequest),
    TooManyRequests => ("too_many_requests", 429, System),
    Unavailable => ("unavailable", 503, System),
    MethodNotAllowed => ("method_not_allowed", 405, InvalidRequest),
    UriTooLong => ("uri_too_long", 414, InvalidRequest),
    InvalidDocumentCsvDelimiter => ("invalid_document_csv_delimiter", 400, InvalidRequest),
    InvalidSettingsForeignKeys => ("invalid_settings_foreign_keys", 400, InvalidRequest),
    InvalidSearchFilter => ("invalid_search_filter", 400, InvalidRequest),
    MiroirNodeUnreachable => ("miroir_node_unreachable", 503, System),
    MiroirNodeTaskLost => ("miroir_node_task_lost", 500, System),
    WebhookNotFound => ("webhook_not_found", 404, InvalidRequest),
    InvalidWebhookUrl => ("invalid_webhook_url", 400, InvalidRequest),
    InvalidWebhookUuid => ("invalid_webhook_uuid", 400, InvalidRequest),
    InvalidWebhookHeaders => ("invalid_webhook_headers", 400, InvalidRequest),
    InvalidWebhooks => ("invalid_webhooks", 400, InvalidRequest),
    ImmutableWebhook => ("immutable_webhook", 400, InvalidRequest),
    DynamicSearchRuleNotFound => ("dynamic_search_rule_not_found", 404, InvalidRequest),
    InvalidDynamicSearchRuleOffset => ("invalid_dynamic_search_rule_offset", 400, InvalidRequest),
    InvalidDynamicSearchRuleLimit => ("invalid_dynamic_search_rule_limit", 400, InvalidRequest),
    InvalidDynamicSearchRuleFilter => ("invalid_dynamic_search_rule_filter", 400, InvalidRequest),
    InvalidDynamicSearchRuleFilterQuery => ("invalid_dynamic_search_rule_filter_query", 400, InvalidRequest),
    InvalidDynamicSearchRuleFilterActive => ("invalid_dynamic_search_rule_filter_active", 400, InvalidRequest),
    InvalidDynamicSearchRuleDescription => ("invalid_dynamic_search_rule_description", 400, InvalidRequest),
    InvalidDynamicSearchRulePriority => ("invalid_dynamic_search_rule_priority", 400, InvalidRequest),
    InvalidDynamicSearchRuleActive => ("invalid_dynamic_search_rule_active", 400, InvalidRequest),
    InvalidDynamicSearchRuleConditions => ("invalid_dynamic_search_rule_conditions", 400, InvalidRequest),
    InvalidDynamicSearchRuleActions => ("invalid_dynamic_search_rule_actions", 400, InvalidRequest),
    // `/network` and remote federated search (decision 045).
    InvalidNetworkLeader => ("invalid_network_leader", 400, InvalidRequest),
    InvalidNetworkRemotes => ("invalid_network_remotes", 400, InvalidRequest),
    InvalidNetworkShards => ("invalid_network_shards", 400, InvalidRequest),
    InvalidNetworkSelf => ("invalid_network_self", 400, InvalidRequest),
    InvalidNetworkSearchApiKey => ("invalid_network_search_api_key", 400, InvalidRequest),
    InvalidNetworkWriteApiKey => ("invalid_network_write_api_key", 400, InvalidRequest),
    InvalidNetworkUrl => ("invalid_network_url", 400, InvalidRequest),
    MissingNetworkUrl => ("missing_network_url", 400, InvalidRequest),
    UnexpectedNetworkPreviousRemotes => ("unexpected_network_previous_remotes", 400, InvalidRequest),
    RequiresEnterpriseEdition => ("requires_enterprise_edition", 451, InvalidRequest),
    InvalidMultiSearchRemote => ("invalid_multi_search_remote", 400, InvalidRequest),
    InvalidMultiSearchFederationOptions => ("invalid_multi_search_federation_options", 400, InvalidRequest),
    RemoteBadResponse => ("remote_bad_response", 502, System),
    RemoteBadRequest => ("remote_bad_request", 400, InvalidRequest),
    RemoteCouldNotSendRequest => ("remote_could_not_send_request", 502, System),
    RemoteInvalidApiKey => ("remote_invalid_api_key", 403, Auth),
    RemoteRemoteError => ("remote_remote_error", 502, System),
    RemoteTimeout => ("remote_timeout", 502, System),
    IndexAlreadyExists => ("index_already_exists", 409, InvalidRequest),
    BatchNotFound => ("batch_not_found", 404, InvalidRequest),
    // Task and batch queries (`GET|DELETE /tasks`, `POST /tasks/cancel`, `GET /batches`).
    InvalidTaskUids => ("invalid_task_uids", 400, InvalidRequest),
    InvalidBatchUids => ("invalid_batch_uids", 400, InvalidRequest),
    InvalidTaskCanceledBy => ("invalid_task_canceled_by", 400, InvalidRequest),
    InvalidTaskStatuses => ("invalid_task_statuses", 400, InvalidRequest),
    InvalidTaskTypes => ("invalid_task_types", 400, InvalidRequest),
    InvalidIndexUid => ("invalid_index_uid", 400, InvalidRequest),
    InvalidTaskBeforeEnqueuedAt => ("invalid_task_before_enqueued_at", 400, InvalidRequest),
    InvalidTaskAfterEnqueuedAt => ("invalid_task_after_enqueued_at", 400, InvalidRequest),
    InvalidTaskBeforeStartedAt => ("invalid_task_before_started_at", 400, InvalidRequest),
    InvalidTaskAfterStartedAt => ("invalid_task_after_started_at", 400, InvalidRequest),
    InvalidTaskBeforeFinishedAt => ("invalid_task_before_finished_at", 400, InvalidRequest),
    InvalidTaskAfterFinishedAt => ("invalid_task_after_finished_at", 400, InvalidRequest),
    InvalidTaskFrom => ("invalid_task_from", 400, InvalidRequest),
    InvalidTaskLimit => ("invalid_task_limit", 400, InvalidRequest),
    InvalidTaskReverse => ("invalid_task_reverse", 400, InvalidRequest),
    MissingTaskFilters => ("missing_task_filters", 400, InvalidRequest),
    // API keys (`/keys`).
    ApiKeyAlreadyExists => ("api_key_already_exists", 409, InvalidRequest),
    InvalidApiKeyOffset => ("invalid_api_key_offset", 400, InvalidRequest),
    InvalidApiKeyLimit => ("invalid_api_key_limit", 400, InvalidRequest),
    InvalidApiKeyName => ("invalid_api_key_name", 400, InvalidRequest),
    InvalidApiKeyDescription => ("invalid_api_key_description", 400, InvalidRequest),
    MissingApiKeyActions => ("missing_api_key_actions", 400, InvalidRequest),
    MissingApiKeyIndexes => ("missing_api_key_indexes", 400, InvalidRequest),
    MissingApiKeyExpiresAt => ("missing_api_key_expires_at", 400, InvalidRequest),
    ImmutableApiKeyUid => ("immutable_api_key_uid", 400, InvalidRequest),
    ImmutableApiKeyActions => ("immutable_api_key_actions", 400, InvalidRequest),
    ImmutableApiKeyIndexes => ("immutable_api_key_indexes", 400, InvalidRequest),
    ImmutableApiKeyExpiresAt => ("immutable_api_key_expires_at", 400, InvalidRequest),
    ImmutableApiKeyCreatedAt => ("immutable_api_key_created_at", 400, InvalidRequest),
    ImmutableApiKeyUpdatedAt => ("immutable_api_key_updated_at", 400, InvalidRequest),
    // Chat completions (`POST /chats/{workspace}/chat/completions`).
    ChatNotFound => ("chat_not_found", 404, InvalidRequest),
    UnimplementedNonStreamingChatCompletions => ("unimplemented_non_streaming_chat_completions", 501, InvalidRequest),
    UnimplementedMultiChoiceChatCompletions => ("unimplemented_multi_choice_chat_completions", 501, InvalidRequest),
    UnimplementedExternalFunctionCalling => ("unimplemented_external_function_calling", 501, InvalidRequest),
}

/// Where Miroir's own codes are documented: `docs/errors.md` of this repository, as a
/// repository-relative path by default, or the published copy when the build sets
/// `MIROIR_ERRORS_DOC_URL` (e.g. `https://git.example.org/miroir/blob/v1.2.0/docs/errors.md`).
/// The one place the base is built; see docs/errors.md ("Links").
pub const MIROIR_ERRORS_DOC: &str = match option_env!("MIROIR_ERRORS_DOC_URL") {
    Some(url) => url,
    None => "docs/errors.md",
};

/// Where an error's `link` points. Meilisearch's own codes link to Meilisearch's error
/// reference (as a node would); Miroir's codes link to [`MIROIR_ERRORS_DOC`]`#code`.
pub fn link_for(code: ErrorCode) -> String {
    let c = code.code();
    if c.starts_with("miroir_") {
        format!("{MIROIR_ERRORS_DOC}#{c}")
    } else {
        format!("https://docs.meilisearch.com/errors#{c}")
    }
}

/// A layer's typed error (document parsing, the task store, …) mapped to the one table, as
/// meilisearch-types' `ErrorCode` trait maps its errors to its `Code`s: the layer keeps its
/// enum, and the code it is answered with is decided here, once per error type.
pub trait CodedError: std::fmt::Display {
    /// The table entry this error is answered with.
    fn error_code(&self) -> ErrorCode;

    /// The message of the answer: the error's `Display` unless the layer words it otherwise.
    fn error_message(&self) -> String {
        self.to_string()
    }

    /// The answer.
    fn to_meili(&self) -> MeiliError {
        MeiliError::new(self.error_code(), self.error_message())
    }
}

/// An error ready to be answered: a code and a human message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeiliError {
    pub code: ErrorCode,
    pub message: String,
}

impl MeiliError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        MeiliError {
            code,
            message: message.into(),
        }
    }

    pub fn status(&self) -> u16 {
        self.code.status()
    }

    /// The Meilisearch-shaped body: `{"message","code","type","link"}` (that key order).
    pub fn to_body(&self) -> Vec<u8> {
        #[derive(Serialize)]
        struct Body<'a> {
            message: &'a str,
            code: &'a str,
            #[serde(rename = "type")]
            ty: &'a str,
            link: String,
        }
        serde_json::to_vec(&Body {
            message: &self.message,
            code: self.code.code(),
            ty: self.code.error_type().as_str(),
            link: link_for(self.code),
        })
        .expect("serialising a fixed-shape struct cannot fail")
    }
}

impl std::fmt::Display for MeiliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message, self.code.code())
    }
}

impl std::error::Error for MeiliError {}

impl CodedError for MeiliError {
    fn error_code(&self) -> ErrorCode {
        self.code
    }

    fn error_message(&self) -> String {
        self.message.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_has_meilisearch_shape() {
        let e = MeiliError::new(
            ErrorCode::MiroirNoQuorum,
            "no group reached quorum for shard 3",
        );
        let v: serde_json::Value = serde_json::from_slice(&e.to_body()).unwrap();
        assert_eq!(v["code"], "miroir_no_quorum");
        assert_eq!(v["type"], "system");
        assert_eq!(e.status(), 503);
        assert_eq!(v.as_object().unwrap().len(), 4);
    }

    /// Every code of the table has its row and section in `docs/errors.md`, and the page
    /// names no code the table does not have (rows `| [`code`](#code) |` and `### code`
    /// sections are parsed, whatever their status).
    #[test]
    fn errors_page_and_table_list_the_same_codes() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/errors.md");
        let page = std::fs::read_to_string(path).unwrap();
        let mut rows = std::collections::BTreeSet::new();
        let mut sections = std::collections::BTreeSet::new();
        for line in page.lines() {
            if let Some(rest) = line.strip_prefix("| [`") {
                let code = rest.split('`').next().unwrap_or_default();
                assert!(rows.insert(code.to_string()), "row {code} twice");
            } else if let Some(code) = line.strip_prefix("### ") {
                assert!(
                    sections.insert(code.trim().to_string()),
                    "section {code} twice"
                );
            }
        }
        let table: std::collections::BTreeSet<String> = ErrorCode::ALL
            .iter()
            .map(|c| c.code().to_string())
            .collect();
        for (what, listed) in [("rows", &rows), ("sections", &sections)] {
            let missing: Vec<_> = table.difference(listed).collect();
            let unknown: Vec<_> = listed.difference(&table).collect();
            assert!(missing.is_empty(), "docs/errors.md {what} lack {missing:?}");
            assert!(
                unknown.is_empty(),
                "docs/errors.md {what} name codes src/error.rs lacks: {unknown:?}"
            );
        }
    }

    #[test]
    fn typed_errors_answer_through_the_trait() {
        let e = MeiliError::new(ErrorCode::BatchNotFound, "Batch `1` not found.");
        assert_eq!(e.to_meili(), e);
        assert_eq!(ErrorCode::IndexAlreadyExists.status(), 409);
        assert_eq!(ErrorCode::ApiKeyAlreadyExists.status(), 409);
    }

    #[test]
    fn codes_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for c in ErrorCode::ALL {
            assert!(seen.insert(c.code()), "duplicate code {}", c.code());
        }
    }
}
