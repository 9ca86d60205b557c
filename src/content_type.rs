//! The `Content-Type` check Meilisearch applies to routes whose body is JSON, shared by the
//! data plane (control routes it forwards) and the admin (which parses those bodies).

use crate::error::{ErrorCode, MeiliError};

const ACCEPTED: &str = "Accepted values for the Content-Type header are: `application/json`";

/// Meilisearch 1.50's `415` for a JSON route without a JSON `Content-Type` (parameters such
/// as `charset` allowed, case-insensitive), or `None` when the request may go on.
pub fn json_content_type_error(content_type: Option<&[u8]>) -> Option<MeiliError> {
    let Some(ct) = content_type else {
        return Some(MeiliError::new(
            ErrorCode::MissingContentType,
            format!("A Content-Type header is missing. {ACCEPTED}"),
        ));
    };
    let essence = ct.split(|&b| b == b';').next().unwrap_or_default();
    if essence
        .trim_ascii()
        .eq_ignore_ascii_case(b"application/json")
    {
        return None;
    }
    Some(MeiliError::new(
        ErrorCode::InvalidContentType,
        format!(
            "The Content-Type `{}` is invalid. {ACCEPTED}",
            String::from_utf8_lossy(ct)
        ),
    ))
}

/// Reads a JSON body as Meilisearch does for a JSON route: the `Content-Type` check above,
/// then an empty body is `missing_payload` and invalid JSON `malformed_payload`.
pub fn parse_json_body(
    content_type: Option<&[u8]>,
    body: &[u8],
) -> Result<serde_json::Value, MeiliError> {
    if let Some(e) = json_content_type_error(content_type) {
        return Err(e);
    }
    if body.is_empty() {
        return Err(MeiliError::new(
            ErrorCode::MissingPayload,
            "A json payload is missing.",
        ));
    }
    serde_json::from_slice(body).map_err(|e| {
        MeiliError::new(
            ErrorCode::MalformedPayload,
            format!("The json payload provided is malformed. `{e}`."),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_bodies_missing_or_malformed() {
        let ct = Some(&b"application/json"[..]);
        assert_eq!(
            parse_json_body(ct, b"").unwrap_err().code,
            ErrorCode::MissingPayload
        );
        let e = parse_json_body(ct, b"{").unwrap_err();
        assert_eq!(e.code, ErrorCode::MalformedPayload);
        assert!(e
            .message
            .starts_with("The json payload provided is malformed. `"));
        assert_eq!(
            parse_json_body(None, b"{}").unwrap_err().code,
            ErrorCode::MissingContentType
        );
        assert!(parse_json_body(ct, b"{}").is_ok());
    }

    #[test]
    fn json_with_parameters_passes_anything_else_is_415() {
        assert!(json_content_type_error(Some(b"application/json")).is_none());
        assert!(json_content_type_error(Some(b"Application/JSON; charset=utf-8")).is_none());
        let e = json_content_type_error(Some(b"text/plain")).unwrap();
        assert_eq!((e.code, e.status()), (ErrorCode::InvalidContentType, 415));
        assert_eq!(e.message, "The Content-Type `text/plain` is invalid. Accepted values for the Content-Type header are: `application/json`");
        let e = json_content_type_error(None).unwrap();
        assert_eq!((e.code, e.status()), (ErrorCode::MissingContentType, 415));
        assert_eq!(e.message, "A Content-Type header is missing. Accepted values for the Content-Type header are: `application/json`");
    }
}
